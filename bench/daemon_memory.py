"""Resident memory of the daemon with the songnodes policy, sampled over ten minutes.

The real daemon (`watchdog run`) guards the sandbox at the policy's own
intervals (no time compression), the way it would sit beside production; its
VmRSS is read from /proc every 30 s. Goal (issue 3): under 80 MB after ten
minutes. A fault is injected and recovered halfway, so incidents, plans and the
journal are exercised too.

Run: .venv/bin/python bench/daemon_memory.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from watchdog.demo import running_daemon
from watchdog.sandbox.stack import SandboxStack


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watchdog-bench-") as folder:
        state = Path(folder)
        with SandboxStack(state / "sandbox") as stack, running_daemon(
            stack, state, time_scale=1.0
        ) as daemon:
            pid = int(httpx.get(daemon.url + "/healthz").json()["pid"])
            began = time.monotonic()
            end = began + args.minutes * 60
            injected = False
            samples: list[tuple[float, float]] = []
            while time.monotonic() < end:
                elapsed = time.monotonic() - began
                samples.append((elapsed, rss_mb(pid)))
                print(f"{elapsed / 60:5.1f} min  RSS {samples[-1][1]:6.1f} MB", flush=True)
                if not injected and elapsed > args.minutes * 30:
                    stack.inject("crash", service="dlq-manager")
                    injected = True
                time.sleep(min(30.0, max(0.0, end - time.monotonic())))
            samples.append((time.monotonic() - began, rss_mb(pid)))
            incidents = daemon.incidents()
    print(f"\nafter {samples[-1][0] / 60:.1f} min: RSS {samples[-1][1]:.1f} MB "
          f"(peak {max(s[1] for s in samples):.1f} MB; goal under 80 MB); "
          f"{len(incidents)} incident(s) handled")


if __name__ == "__main__":
    main()
