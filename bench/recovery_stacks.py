"""Recovery on a real Docker engine, by stack size, fault, scope and policy (issue 14 points 4, 5).

Stacks of 1, 3 and 10 busybox httpd services (tests/dockerengine.py: labelled as
Compose labels them, host network, 127.0.0.1) are guarded by the real daemon
(`watchdog run`, policies/compose-generic.yaml, targets set to the stack's
services), a fresh project, journal and daemon per run. Faults:

- crash: the process is killed and the container exits. Docker's own restart
  policy (`restart: unless-stopped`) would already bring it back; the stacks run
  with restart "no" so that the watchdog is what is measured;
- unhealthy: the process keeps running but its health fails (its `healthy` file
  gone: GET /healthy 404, and Docker's healthcheck `unhealthy` where there is one)
  until the container is restarted. Docker's restart policy does NOT handle this.

Healthcheck: `docker` gives every container a Docker healthcheck every 1 s, so the
20 s `container-unhealthy` rule decides; `http` gives none (as in many real
stacks): only the HTTP probe sees a running service fail, and `{target}-down`
(P2) races the share rules (P1/P0), which supersede it. Scope: `one` service
faulted, or `all` of them at once (the P0 `every-service-down`; on one service,
one is all). Two policies: SHIPPED is compose-generic.yaml unchanged (real
seconds, its cooldown and hourly budget too, from a fresh journal); TUNED has 1 s
probes, `for: 0s` and cooldown 0. Measured: fault → first incident opened (its
own `opened_at`) and fault → EVERY service's HTTP health answers 200 again
(polled every 50 ms). Read back from the journal: which rules opened incidents,
their severity, scenario, steps and states once the steps have finished (the
verification's `verify_for` is not waited out). A run not healed, or healed
without the rule the cell expects, is printed loudly.

Run: .venv/bin/python bench/recovery_stacks.py [--sizes 1,3] [--faults crash]
     [--scopes all] [--healthchecks http] [--policies shipped] [--shipped-runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dockerengine import build_images, docker_engine, run_service, sick_until_restarted
from watchdog.demo import free_port, wait_for
from watchdog.keys import new_key
from watchdog.store.journal import open_journal

GENERIC = Path(__file__).resolve().parents[1] / "policies" / "compose-generic.yaml"
SIZES = (1, 3, 10)
FAULTS = ("crash", "unhealthy")
SCOPES = ("one", "all")
HEALTHCHECKS = ("docker", "http")
POLICIES = ("tuned", "shipped")  # the quick cells first
#: Runs a cell by default: (healthcheck, policy) → runs.
RUNS = {("docker", "tuned"): 5, ("docker", "shipped"): 3,
        ("http", "tuned"): 3, ("http", "shipped"): 2}
BUSY = frozenset({"detected", "triaged", "approved", "executing", "failed"})
SHARE = ("every-service-down", "most-services-down")


@dataclass(frozen=True)
class Cell:
    healthcheck: str
    scope: str
    size: int
    fault: str
    policy: str

    def __str__(self) -> str:
        return (f"{self.size:>2} svc, {self.fault}, {self.healthcheck} hc, {self.scope}, "
                f"{self.policy}")

    def expected(self) -> frozenset[str]:
        """The rules that should heal it, from the policy's clocks.

        Shipped: an exited container is unhealthy to the Docker probe (5 s, `for:` 20 s)
        before any HTTP rule (10 s, `for:` 30 s) fires; a running one is seen by the
        Docker healthcheck if there is one, else by the HTTP rules only, where the share
        rule supersedes the P2 when every service is down. Tuned (`for: 0s`, 1 s probes):
        whichever rule watching the faulted services sees it first.
        """
        whole = self.scope == "all" or self.size == 1
        down = {f"svc{i}-down" for i in range(self.size if whole else 1)}
        if self.policy == "tuned":
            docker_sees = self.fault == "crash" or self.healthcheck == "docker"
            return frozenset(down | (set(SHARE) if whole else set())
                             | ({"container-unhealthy"} if docker_sees else set()))
        if self.fault == "crash" or self.healthcheck == "docker":
            return frozenset({"container-unhealthy"})
        return frozenset({"every-service-down"} if whole else down)


@dataclass
class Run:
    opened: float | None
    healed: float | None
    incidents: list[str] = field(default_factory=list)
    acted: set[str] = field(default_factory=set)


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
    return (
        f"http {signals['{target}_health']['interval']}, docker "
        f"{signals['container_healthy']['interval']}; for: down "
        f"{rules['{target}-down']['for']}, unhealthy {rules['container-unhealthy']['for']}, "
        f"share {rules['every-service-down']['for']}; verify_for restart "
        f"{scenarios['restart_service']['verify_for']}, share "
        f"{scenarios['start_everything']['verify_for']}; actions/hour "
        f"{policy['guards']['actions_per_hour']}"
    )


def all_healthy(http: httpx.Client, ports: list[int]) -> bool:
    return all(_ok(http, f"http://127.0.0.1:{p}/healthy") for p in ports)


def seen_failing(http: httpx.Client, ports: list[int], seen: set[int]) -> bool:
    seen.update(p for p in ports if not _ok(http, f"http://127.0.0.1:{p}/healthy"))
    return len(seen) == len(ports)


def _ok(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def poll(predicate: Callable[[], bool], seconds: float) -> bool:
    """True as soon as `predicate` holds (checked every 50 ms), False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def stack(
    client: docker.DockerClient, size: int, folder: Path, healthcheck: bool
) -> Iterator[tuple[str, dict[str, int]]]:
    project = f"benchr{uuid.uuid4().hex[:8]}"
    ports = {f"svc{i}": free_port() for i in range(size)}
    try:
        for service, port in ports.items():
            www = folder / service
            www.mkdir()
            (www / "healthy").write_text("ok\n")
            run_service(client, project=project, service=service, port=port, www=www,
                        healthcheck=healthcheck)
        yield project, ports
    finally:
        for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def baseline(http: httpx.Client, base: str, services: list[str]) -> bool:
    """Every probe has read the stack healthy once (the daemon's own /metrics)."""
    try:
        page = http.get(base + "/metrics", timeout=1).text
    except httpx.HTTPError:
        return False
    values = [line for line in page.splitlines() if line.startswith("watchdog_signal_value{")]

    def seen(signal: str, value: str, count: int = 1) -> bool:
        return sum(f'signal="{signal}"' in v and v.endswith(f" {value}") for v in values) >= count

    return (all(seen(f"{s}_health", "1.0") for s in services)
            and seen("services_down_share", "0.0")
            and seen("container_healthy", "1.0", len(services)))


def one_run(client: docker.DockerClient, url: str, cell: Cell) -> tuple[Run, str]:
    folder = Path(tempfile.mkdtemp(prefix="watchdog-benchr-"))
    tuned = cell.policy == "tuned"
    with (stack(client, cell.size, folder, cell.healthcheck == "docker") as (project, ports),
          httpx.Client() as http):
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
        base = f"http://{listen}"
        try:
            wait_for(lambda: baseline(http, base, list(ports)), 60, "every probe healthy once")
            faulted = list(ports) if cell.scope == "all" else list(ports)[:1]
            began = time.time()
            with contextlib.ExitStack() as faults:
                for service in faulted:
                    container = client.containers.get(f"{project}-{service}-1")
                    if cell.fault == "crash":
                        container.kill()
                    else:
                        faults.enter_context(
                            sick_until_restarted(client, container, folder / service))
                seen: set[int] = set()  # each seen failing once: the first may heal early
                wait_for(lambda: seen_failing(http, [ports[s] for s in faulted], seen), 10,
                         "the fault to show")
                healed = poll(lambda: all_healthy(http, list(ports.values())),
                              90 if tuned else 240)
                recovered = time.time() - began if healed else None
            # the steps' final states (verification not waited out), then read the journal
            poll(lambda: settled(folder / "journal.db", began), 60)
        finally:
            daemon.terminate()
            daemon.wait(30)
        return read_back(folder / "journal.db", began, recovered), settings(policy)


def settled(journal_path: Path, began: float) -> bool:
    journal = open_journal(str(journal_path))
    try:
        opened = [i for i in journal.list_incidents(limit=200) if i.opened_at >= began]
        return bool(opened) and not any(
            i.state in BUSY or any(s.status == "running" for s in journal.steps(i.id))
            for i in opened)
    finally:
        journal.close()


def read_back(journal_path: Path, began: float, recovered: float | None) -> Run:
    """Which rules opened incidents after the fault, and what their plans did."""
    journal = open_journal(str(journal_path))
    try:
        opened = sorted((i for i in journal.list_incidents(limit=200)
                         if i.opened_at >= began and i.severity.value != "P3"),
                        key=lambda i: i.opened_at)
        run = Run(opened[0].opened_at - began if opened else None, recovered)
        for incident in opened:
            rules = list(dict.fromkeys(f.rule for f in journal.findings(incident.id)))
            steps = journal.steps(incident.id)
            did = ", ".join(f"{s.action} {s.status}" for s in steps) or "no step"
            joined = Counter(re.sub(r"^svc\d+-", "{target}-", r) for r in rules[1:])
            also = ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in joined.items())
            run.incidents.append(f"{rules[0] if rules else '?'} {incident.severity.value} "
                                 f"{incident.scenario}{f' (joined: {also})' if also else ''}: "
                                 f"{did}; {incident.state}")
            if any(s.status == "succeeded" for s in steps):
                run.acted.update(rules[:1])
            if recovered is None or incident.state in ("escalated", "failed"):
                run.incidents.extend(f"    {e.summary}" for e in journal.timeline(incident.id)[-4:])
        return run
    finally:
        journal.close()


def defect(cell: Cell, run: Run) -> str:
    if run.healed is None:
        return "NOT HEALED"
    if not run.acted & cell.expected():
        return f"healed without {'/'.join(sorted(cell.expected()))} acting"
    return ""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    missing = f" ({len(values) - len(known)} never)" if len(known) < len(values) else ""
    return f"{statistics.median(known):.2f} / {p95(known):.2f}{missing}" if known else "never"


def cells(args: argparse.Namespace) -> list[Cell]:
    chosen: list[Cell] = []
    for policy in args.policies:
        for healthcheck in args.healthchecks:
            for scope in args.scopes:
                if healthcheck == "docker" and scope == "all":
                    continue  # not measured: the Docker healthcheck decides as for one
                for size in (s for s in args.sizes if scope == "one" or s > 1):  # 1: one is all
                    chosen.extend(Cell(healthcheck, scope, size, fault, policy)
                                  for fault in args.faults)
    return chosen


def listed(
    kind: Callable[[str], Any], allowed: tuple[Any, ...]
) -> Callable[[str], tuple[Any, ...]]:
    """An option taking a comma-separated subset of `allowed`."""

    def parse(text: str) -> tuple[Any, ...]:
        values = tuple(kind(v) for v in text.split(","))
        if not set(values) <= set(allowed):
            raise argparse.ArgumentTypeError(f"choose among {allowed}")
        return values
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=listed(int, SIZES), default=SIZES)
    parser.add_argument("--faults", type=listed(str, FAULTS), default=FAULTS)
    parser.add_argument("--scopes", type=listed(str, SCOPES), default=SCOPES)
    parser.add_argument("--healthchecks", type=listed(str, HEALTHCHECKS), default=HEALTHCHECKS)
    parser.add_argument("--policies", type=listed(str, POLICIES), default=POLICIES)
    parser.add_argument("--shipped-runs", type=int,
                        help="runs of every shipped cell (default 3 docker, 2 http)")
    parser.add_argument("--tuned-runs", type=int,
                        help="runs of every tuned cell (default 5 docker, 3 http)")
    args = parser.parse_args()
    rows, loud, started = [], [], time.monotonic()
    with docker_engine() as url:
        client = docker.DockerClient(base_url=url, timeout=30)
        build_images(client)
        for cell in cells(args):
            given = args.tuned_runs if cell.policy == "tuned" else args.shipped_runs
            runs: list[Run] = []
            said = ""
            for number in range(given or RUNS[cell.healthcheck, cell.policy]):
                run, said = one_run(client, url, cell)
                runs.append(run)
                wrong = defect(cell, run)
                print(f"  {cell}, run {number + 1}: opened "
                      f"{'never' if run.opened is None else f'{run.opened:.2f} s'}, healthy "
                      f"{'NEVER' if run.healed is None else f'{run.healed:.2f} s'}"
                      f"{f'  !!! {wrong} !!!' if wrong else ''}", flush=True)
                for line in run.incidents:
                    print(f"      {line}", flush=True)
                if wrong:
                    loud.append(f"{cell}, run {number + 1}: {wrong}: {run.incidents}")
            rows.append((cell, said, runs))
        client.close()
    print(f"\n{len(rows)} cells in {(time.monotonic() - started) / 60:.1f} min. fault → first "
          "incident opened, and fault → every service's HTTP health 200 again (median / p95, "
          "s); restart 'no': Docker's restart policy would handle a crash, never a running "
          "service whose health fails. What acted: the incidents' first rule, severity, "
          "scenario, steps and state once the steps finished (× incidents over the runs).\n")
    print("| services | fault | healthcheck | scope | policy | settings | runs | opened | "
          "healthy | what acted |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cell, said, runs in rows:
        acted = Counter(line for run in runs for line in run.incidents
                        if not line.startswith("    "))
        what = "; ".join(f"{line} ×{n}" for line, n in acted.items())
        bad = [w for w in (defect(cell, r) for r in runs) if w]
        print(f"| {cell.size} | {cell.fault} | {cell.healthcheck} | {cell.scope} | "
              f"{cell.policy} | {said} | {len(runs)} | {spread([r.opened for r in runs])} | "
              f"{spread([r.healed for r in runs])} | {what}"
              f"{f' **!!! {len(bad)} run(s): {bad[0]}**' if bad else ''} |")
    if loud:
        print("\n!!! DEFECTS: runs not healed, or healed without the expected rule:")
        for line in loud:
            print(f"!!! {line}")


if __name__ == "__main__":
    main()
