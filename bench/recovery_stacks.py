"""Recovery on a real Docker engine, by stack size, fault and policy (issue 14 points 4 and 5).

Stacks of 1, 3 and 10 busybox httpd services (tests/dockerengine.py: labelled as
Compose labels them, host network, 127.0.0.1) are guarded by the real daemon
(`watchdog run`, policies/compose-generic.yaml, targets set to the stack's
services). One service is faulted per run:

- crash: its process is killed and the container exits. Docker's own restart
  policy (`restart: unless-stopped`) would already bring it back; the stacks run
  with restart "no" so that the watchdog is what is measured;
- unhealthy: the process keeps running but its health fails (its `healthy` file
  gone: GET /healthy 404 and Docker's healthcheck `unhealthy`) until the container
  is restarted. Docker's restart policy does NOT handle this one.

On the 1-service stack either fault is also "every service down" (the P0 share
rule). Two policies: SHIPPED is compose-generic.yaml unchanged (real seconds, its
own intervals, `for:` and verification) except the cooldown, which never blocks
here because every run is a fresh project and a fresh daemon; TUNED has 1 s
probes, `for: 0s` and cooldown 0. Measured: fault → incident opened (the
incident's own `opened_at`) and fault → the service's HTTP health answers 200
again (polled every 50 ms).

Run: .venv/bin/python bench/recovery_stacks.py [--shipped-runs 3] [--tuned-runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dockerengine import build_images, docker_engine, run_service, sick_until_restarted
from watchdog.demo import free_port, read_incidents, wait_for
from watchdog.keys import new_key

GENERIC = Path(__file__).resolve().parents[1] / "policies" / "compose-generic.yaml"
SIZES = (1, 3, 10)
FAULTS = ("crash", "unhealthy")


def policy_for(ports: dict[str, int], tuned: bool) -> dict[str, Any]:
    policy: dict[str, Any] = yaml.safe_load(GENERIC.read_text())
    policy["targets"] = {
        s: {"url": f"http://127.0.0.1:{p}", "service": s} for s, p in ports.items()
    }
    if tuned:
        for signal in policy["signals"]:
            if signal.get("kind") in ("http", "docker", "derived"):
                signal.update(interval="1s", timeout="1s")
        for rule in policy["rules"]:
            if rule.get("severity") != "P3":
                rule["for"] = "0s"
        policy["guards"].update(cooldown="0s", actions_per_hour=1000)
    return policy


def settings(policy: dict[str, Any]) -> str:
    """The settings that matter, read back from the policy that ran."""
    signals = {s["name"]: s for s in policy["signals"]}
    rules = {r["name"]: r for r in policy["rules"]}
    scenarios = policy["scenarios"]
    web = next(iter(policy["targets"]))
    return (
        f"http {signals['{target}_health']['interval']}, docker "
        f"{signals['container_healthy']['interval']}; for: down "
        f"{rules['{target}-down']['for']}, unhealthy {rules['container-unhealthy']['for']}, "
        f"share {rules['every-service-down']['for']}; verify_for restart "
        f"{scenarios['restart_service']['verify_for']}, share "
        f"{scenarios['start_everything']['verify_for']} ({web} faulted)"
    )


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthy", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def stack(
    client: docker.DockerClient, size: int, folder: Path
) -> Iterator[tuple[str, dict[str, int]]]:
    project = f"benchr{uuid.uuid4().hex[:8]}"
    ports = {f"svc{i}": free_port() for i in range(size)}
    try:
        for service, port in ports.items():
            www = folder / service
            www.mkdir()
            (www / "healthy").write_text("ok\n")
            run_service(client, project=project, service=service, port=port, www=www)
        yield project, ports
    finally:
        for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def one_run(
    client: docker.DockerClient, url: str, size: int, fault: str, tuned: bool
) -> tuple[float, float, str]:
    folder = Path(tempfile.mkdtemp(prefix="watchdog-benchr-"))
    with stack(client, size, folder) as (project, ports):
        policy = policy_for(ports, tuned)
        (folder / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        listen, token = f"127.0.0.1:{free_port()}", new_key()
        env = {
            **os.environ, "DOCKER_HOST": url, "WATCHDOG_COMPOSE_PROJECT": project,
            "WATCHDOG_ORCHESTRATOR": f"docker+{url}", "WATCHDOG_HEALTH_PATH": "/healthy",
            "WATCHDOG_STATE": str(folder / "journal.db"), "WATCHDOG_LISTEN": listen,
            "WATCHDOG_LOG_FORMAT": "json", "WATCHDOG_READ_TOKEN": token,
        }
        with (folder / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "watchdog.cli", "run", "--policy",
                 str(folder / "policy.yaml")],
                env=env, stdout=log, stderr=log,
            )
        try:
            base = f"http://{listen}"
            wait_for(lambda: _answers(base), 30, "the daemon")
            time.sleep(2.0 if tuned else 12.0)  # one full round of every probe seen healthy
            service, port = next(iter(ports.items()))
            container = client.containers.get(f"{project}-{service}-1")
            began = time.time()
            with contextlib.ExitStack() as faults:
                if fault == "crash":
                    container.kill()
                else:
                    faults.enter_context(
                        sick_until_restarted(client, container, folder / service)
                    )
                wait_for(lambda: not healthy(port), 10, "the fault to show")
                wait_for(lambda: healthy(port), 300, f"{service} healthy again")
                recovered = time.time() - began
            wait_for(lambda: bool(read_incidents(base, token)), 60, "the incident")
            first = min(read_incidents(base, token), key=lambda i: i["opened_at"])
            return first["opened_at"] - began, recovered, settings(policy)
        finally:
            daemon.terminate()
            daemon.wait(30)


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shipped-runs", type=int, default=3)
    parser.add_argument("--tuned-runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with docker_engine() as url:
        client = docker.DockerClient(base_url=url, timeout=30)
        build_images(client)
        for tuned in (True, False):  # the quick cells first
            runs = args.tuned_runs if tuned else args.shipped_runs
            for size in SIZES:
                for fault in FAULTS:
                    opened, healed, said = [], [], ""
                    for run in range(runs):
                        o, h, said = one_run(client, url, size, fault, tuned)
                        opened.append(o)
                        healed.append(h)
                        print(f"  {size:>2} services, {fault}, {'tuned' if tuned else 'shipped'}"
                              f", run {run + 1}: opened {o:.2f} s, healthy {h:.2f} s", flush=True)
                    rows.append((size, fault, "tuned" if tuned else "shipped", said, runs,
                                 opened, healed))
        client.close()
    print("\nfault → incident opened, and fault → HTTP health 200 again (median / p95, seconds);")
    print("the stacks run with restart 'no': Docker's restart policy would handle a crash itself,")
    print("never a running service whose health fails.\n")
    print("| services | fault | policy | settings | runs | opened median / p95 | "
          "healthy median / p95 |")
    print("|---|---|---|---|---|---|---|")
    for size, fault, name, said, runs, opened, healed in rows:
        print(f"| {size} | {fault} | {name} | {said} | {runs} | "
              f"{statistics.median(opened):.2f} / {p95(opened):.2f} | "
              f"{statistics.median(healed):.2f} / {p95(healed):.2f} |")


if __name__ == "__main__":
    main()
