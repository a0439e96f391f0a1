"""What the shipped drills cost a daemon's start: songnodes.yaml with and without `drills:`.

Since songnodes.yaml ships the runbook's four quarterly drills, every songnodes
daemon on the sandbox (the demo, every sandbox test) schedules them at start
(`start_drills`: a live Docker target is checked, a scheduler started, four jobs
added); none runs unless the daemon is up on a quarter's day at 10:00 UTC. Measured:

1. `start_drills` alone, in a fresh interpreter each time (the first call pays the
   lazy work: APScheduler's executor and job store, the outbox), shipped policy vs
   the same policy without `drills:` (which returns at once), and warm repeats;
2. `watchdog run` from spawn to its first `/healthz` answer (polled every 0.1 s), on
   one sandbox, alternating the two policies (each first in every other pair).

"Without drills" is the shipped file with its drills section cut, comments and all,
so the YAML parse differs by those 64 lines only.

Run: .venv/bin/python bench/drill_startup.py [--cold 7] [--warm 200] [--daemons 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watchdog.demo import DaemonProcess  # noqa: E402
from watchdog.demosetup import demo_policy  # noqa: E402
from watchdog.sandbox.stack import SandboxStack  # noqa: E402

SONGNODES = ROOT / "policies" / "songnodes.yaml"
DRILLS = "\n# Drills (issue 18)"  # where songnodes.yaml's drills section starts

PROBE = """
import asyncio, sys, time, httpx
from watchdog.drill.scheduled import start_drills
from watchdog.metrics import Metrics
from watchdog.policyfile import load_policy
from watchdog.settings import Settings
from watchdog.store.journal import open_journal

policy = load_policy(sys.argv[1])
settings = Settings()
journal = open_journal(settings.state)
metrics = Metrics.for_policy(policy)
warm = int(sys.argv[2])

async def main() -> None:
    client = httpx.AsyncClient()
    times = []
    for _ in range(1 + warm):
        started = time.perf_counter()
        scheduler = start_drills(policy, settings, journal, client, metrics, "bench")
        times.append(time.perf_counter() - started)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    await client.aclose()
    print("TIMES", " ".join(f"{t * 1000:.3f}" for t in times))

asyncio.run(main())
"""


def in_process(policy: Path, folder: Path, warm: int) -> list[float]:
    """start_drills' times in ms (first call first) in a fresh interpreter."""
    env = {"WATCHDOG_STATE": str(folder / "journal.db"), "WATCHDOG_LOG_LEVEL": "warning",
           "WATCHDOG_ORCHESTRATOR": "sandbox+http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(policy), str(warm)], env=env,
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("TIMES ")]
    return [float(x) for x in line.split()[1:]]


def summary(values: list[float], unit: str) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"median {statistics.median(values):.3f} {unit}, p95 {p95:.3f} {unit}, "
            f"min {ordered[0]:.3f}, max {ordered[-1]:.3f} (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", type=int, default=7, help="fresh interpreters per policy")
    parser.add_argument("--warm", type=int, default=200, help="repeat calls in one of them")
    parser.add_argument("--daemons", type=int, default=5, help="daemon starts per policy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shipped = demo_policy(SONGNODES, folder, 10, lambda _line: None)
        text = shipped.read_text()
        assert len(yaml.safe_load(text)["drills"]["scenarios"]) == 4, "four drills shipped"
        bare = folder / "songnodes-no-drills.yaml"  # the same file, its drills section cut
        bare.write_text(text[:text.index(DRILLS)] + "\n")
        assert "drills" not in yaml.safe_load(bare.read_text())
        policies = {"shipped (4 drills)": shipped, "without drills:": bare}

        print(f"python {sys.version.split()[0]}; settings: WATCHDOG_ORCHESTRATOR=sandbox+URL, "
              "SQLite journal in a temporary folder, time scale 10")
        print("\n1. start_drills(), fresh interpreter each time")
        for label, policy in policies.items():
            cold = [in_process(policy, folder, 0)[0] for _ in range(args.cold)]
            warm = in_process(policy, folder, args.warm)[1:]
            print(f"  {label:19} first call: {summary(cold, 'ms')}")
            print(f"  {label:19} warm calls: {summary(warm, 'ms')}")

        print(f"\n2. `watchdog run` spawn to first /healthz (sandbox, {args.daemons} each, "
              "alternating)")
        starts: dict[str, list[float]] = {label: [] for label in policies}
        with SandboxStack(folder / "sandbox") as stack:
            for run in range(args.daemons):
                pair = list(policies.items())
                for label, policy in pair if run % 2 else pair[::-1]:  # neither always first
                    state = folder / f"run-{run}-{len(starts[label])}-{label[:4]}"
                    state.mkdir()
                    daemon = DaemonProcess(stack, state, policy=policy)
                    started = time.perf_counter()
                    daemon.start()
                    starts[label].append(time.perf_counter() - started)
                    daemon.stop()
        for label, values in starts.items():
            print(f"  {label:19} {summary(values, 's')}")


if __name__ == "__main__":
    main()
