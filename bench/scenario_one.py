"""Runbook scenario 1 beside a plain restart: fault to verified, on a real Docker engine.

The three-service project of tests/integration/test_docker_daemon.py (web, api
depending on web, postgres protected; busybox httpd, host network, 127.0.0.1) is
guarded by the real daemon with policies/compose-generic.yaml, its fixtures
reused (compose_project, write_policy, start_daemon, deploy). Two faults on web,
each in a fresh project and daemon:

- plain: web's container is killed, same image as its last known good record
  (`restart_service`: one restart, then its checklist held for `verify_for`);
- scenario 1: a crash-looping new image is deployed over web (`new_service_failure`:
  keep logs and dependents' status, backup check, stop, revert to the last good
  image, restart api, then the checklist held for `verify_for`).

Measured: from the fault to the incident resolved (its own `closed_at`, the
journal's clock), and fault → incident opened. Clocks, stated with the figures:
the policy's durations divided by WATCHDOG_TIME_SCALE (default 10, as the tests),
and both scenarios' `verify_for` set to the same value (default 30 s of policy
time, 3 s at the tenfold clock) so the two are compared on their actions, not on
how long each is watched (scenario 1's shipped watch is the runbook's 15 minutes).

Run: .venv/bin/python bench/scenario_one.py [--runs 3] [--scale 10] [--verify 30s]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dockerengine import BROKEN, build_images, docker_engine
from tests.integration.test_docker_daemon import (
    Project,
    compose_project,
    deploy,
    start_daemon,
    write_policy,
)
from watchdog.demo import wait_for


def one_run(client: docker.DockerClient, url: str, fault: str, verify: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wd-s1-") as folder, compose_project(
        client, Path(folder), prefix="wdbench"
    ) as project:
        path = write_policy(project)
        data = yaml.safe_load(path.read_text())
        for name in ("restart_service", "new_service_failure"):
            data["scenarios"][name]["verify_for"] = verify
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            start_daemon(project, url, policy=path)
            wait_for(
                lambda: project.last_good_recorded("web") and project.last_good_recorded("api"),
                60,
                "last known good records",
            )
            began = time.time()
            if fault == "plain":
                project.container("web").kill()
            else:
                deploy(project, "web", BROKEN)
            incident = _first_finished(project)
            expected = "restart_service" if fault == "plain" else "new_service_failure"
            if incident["scenario"] != expected or incident["state"] != "resolved":
                raise SystemExit(f"{fault}: {incident['scenario']} {incident['state']}")
            return {
                "opened": incident["opened_at"] - began,
                "verified": incident["closed_at"] - began,
            }
        finally:
            if project.process is not None:
                project.process.terminate()
                project.process.wait(30)


def _first_finished(project: Project) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def finished() -> bool:
        mine = [i for i in project.incidents() if i["key"] == "service_failure/web"]
        if mine:
            found.update(min(mine, key=lambda i: i["id"]))
        return bool(found) and found["state"] in ("resolved", "escalated")

    wait_for(finished, 180, "web's incident to finish")
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=10.0, help="WATCHDOG_TIME_SCALE")
    parser.add_argument("--verify", default="30s", help="verify_for of both (policy time)")
    args = parser.parse_args()
    os.environ["WATCHDOG_TIME_SCALE"] = f"{args.scale:g}"
    results: dict[str, list[dict[str, float]]] = {"plain": [], "scenario 1": []}
    with docker_engine() as url:
        client = docker.DockerClient(base_url=url, timeout=30)
        build_images(client)
        for run in range(args.runs):
            for fault, done in results.items():
                done.append(one_run(client, url, fault, args.verify))
                got = done[-1]
                print(f"  run {run + 1} {fault:>10}: opened {got['opened']:.2f} s, "
                      f"verified {got['verified']:.2f} s", flush=True)
        client.close()
    print(f"\nfault → incident resolved, compose-generic.yaml at WATCHDOG_TIME_SCALE="
          f"{args.scale:g} (probes every {5 / args.scale:g} s), verify_for {args.verify} "
          f"of policy time for both, {args.runs} run(s) each:")
    for fault, runs in results.items():
        opened = statistics.median(r["opened"] for r in runs)
        verified = statistics.median(r["verified"] for r in runs)
        print(f"  {fault:>10}: opened after {opened:.2f} s, verified after {verified:.2f} s "
              f"(median; min {min(r['verified'] for r in runs):.2f}, "
              f"max {max(r['verified'] for r in runs):.2f})")


if __name__ == "__main__":
    main()
