"""`watchdog drill` against a real daemon: on the sandbox and on a real engine's drill project,
one drill passes and one fails and pages at P2 through the daemon's outbox.

The daemon runs as `watchdog demo` runs it (songnodes, clock compressed tenfold) or as
test_docker_daemon runs it (the generic policy on a throwaway Compose project, marked
`stack.drill: true`); the drill is the real command line in this process, sharing the
daemon's journal. Every wait is on a condition, never a fixed sleep. The `unhealthy`
drill runs the generic policy by labels alone (no targets), its `web` checked by an HTTP
healthcheck as real images are: a frozen server fails it and is restarted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
import yaml

from tests.dockerengine import BROKEN, GOOD, Projects, nokill_image, run_service, www_folder
from tests.integration.notify_stage import WEBHOOK_TOKEN, Vendors
from tests.integration.test_docker_daemon import (
    GENERIC,
    Project,
    compose_project,
    start_daemon,
    write_policy,
)
from tests.pgserver import PgServer
from watchdog.cli import main
from watchdog.demo import free_port, has_last_good, quiet, running_daemon, wait_for
from watchdog.demosetup import demo_policy
from watchdog.drill.faults import docker_injector, postgres_injector
from watchdog.drill.run import last_result
from watchdog.policy.drillspecs import DrillSpec
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow

SONGNODES = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
CRASH = {"fault": "sandbox", "kind": "crash", "body": {"service": "dlq-manager"}}


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The drill reads its settings from the environment, as the daemon does."""
    for name in [n for n in os.environ if n.startswith("WATCHDOG_")]:
        monkeypatch.delenv(name)
    yield monkeypatch


def test_a_sandbox_drill_passes_and_one_too_strict_fails_and_pages_at_p2(
    tmp_path: Path, sandbox_stack: SandboxStack, fakes: Vendors, settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = demo_policy(SONGNODES, tmp_path, 10, lambda _line: None)
    data = yaml.safe_load(policy.read_text())
    data["drills"] = {"scenarios": {
        "q1-service": {**CRASH, "timeout": "450s", "schedule": "Q1"},  # 45 s at 10x
        "too-strict": {**CRASH, "timeout": "2s"},  # 0.2 s: no daemon verifies that fast
    }}
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    pager = {"WATCHDOG_WEBHOOK_URL": fakes.webhook.hook_url,
             "WATCHDOG_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    with running_daemon(sandbox_stack, tmp_path, policy=policy, environment=pager) as daemon:
        for name, value in {**pager, "WATCHDOG_STATE": str(tmp_path / "journal.db"),
                            "WATCHDOG_ORCHESTRATOR": f"sandbox+{sandbox_stack.control_url}",
                            "WATCHDOG_TIME_SCALE": "10"}.items():
            settings_env.setenv(name, value)
        wait_for(lambda: has_last_good(tmp_path), 30, "a last known good configuration")
        metrics = tmp_path / "drills.prom"
        passed = main(["drill", "q1-service", "--policy", str(policy),
                       "--out", str(tmp_path / "q1.md"), "--metrics-file", str(metrics)])
        printed = capsys.readouterr().out
        assert passed == 0, printed
        assert "injected: sandbox fault crash" in printed and "detected: incident" in printed
        report = (tmp_path / "q1.md").read_text()
        assert report.startswith("# Drill q1-service: PASSED")
        assert "| yes | yes | yes |" in report
        assert 'watchdog_drills_total{outcome="passed",scenario="q1-service"} 1.0' in (
            metrics.read_text())

        wait_for(lambda: quiet(daemon.url, daemon.read_token), 30, "the stack quiet again")
        failed = main(["drill", "too-strict", "--policy", str(policy)])
        printed = capsys.readouterr().out
        assert failed == 1, printed
        assert "# Drill too-strict: FAILED" in printed
        assert "Paged through: webhook (delivered by the daemon)." in printed
        # 0.2 s: the daemon has not yet seen the crash, or not yet restarted and verified it.
        assert "no incident within 0.2 s" in printed or "incident" in printed.split(
            "Verdict:")[1], printed

        def drill_paged() -> list[dict[str, Any]]:
            return [e for e in fakes.webhook.events() if e["event"] == "trigger"
                    and e["incident"]["scenario"] == "drill_failed"]

        wait_for(lambda: bool(drill_paged()), 20, "the failed drill's page")
        (page,) = drill_paged()
        assert page["incident"]["severity"] == "P2" and page["incident"]["state"] == "escalated"
        assert "drill too-strict failed" in page["incident"]["why_now"]

    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        passed_result = last_result(journal, "q1-service")
        assert passed_result is not None and passed_result["outcome"] == "passed"
        assert passed_result["detect_seconds"] < passed_result["recover_seconds"]
        drilled = journal.timeline(passed_result["incident"])
        assert [e.data["outcome"] for e in drilled if e.kind == "drill"] == ["passed"]
        failed_result = last_result(journal, "too-strict")
        assert failed_result is not None and failed_result["outcome"] == "failed"
        paged = journal.find_open("drill/too-strict")
        assert paged is not None and paged.severity.value == "P2"
        assert paged.state == "escalated" and paged.scenario == "drill_failed"
    finally:
        journal.close()


def test_a_drill_on_a_real_engines_drill_project_passes_and_a_too_strict_one_fails_and_pages(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str, fakes: Vendors,
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    with compose_project(docker_client, tmp_path, prefix="wddrill") as project:
        try:
            path = write_policy(project)
            data = yaml.safe_load(path.read_text())
            data["stack"]["drill"] = True
            data["drills"] = {"scenarios": {
                "q1-service": {"fault": "kill", "service": "web", "timeout": "600s"},
                "too-strict": {"fault": "kill", "service": "api", "timeout": "2s"}}}
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            settings_env.setenv("WATCHDOG_WEBHOOK_URL", fakes.webhook.hook_url)  # the daemon's
            settings_env.setenv("WATCHDOG_WEBHOOK_TOKEN", WEBHOOK_TOKEN)  # pager, and the drill's
            start_daemon(project, docker_url, policy=path)
            wait_for(lambda: project.last_good_recorded("web"), 30, "web's last known good")
            before = project.container("web").id
            for name, value in {
                "DOCKER_HOST": docker_url, "WATCHDOG_COMPOSE_PROJECT": project.name,
                "WATCHDOG_ORCHESTRATOR": f"docker+{docker_url}", "WATCHDOG_TIME_SCALE": "10",
                "WATCHDOG_STATE": str(project.folder / "journal.db"),
            }.items():
                settings_env.setenv(name, value)
            code = main(["drill", "q1-service", "--policy", str(path)])
            printed = capsys.readouterr().out
            assert code == 0, printed
            assert f"killed {project.name}-web-1" in printed
            assert "# Drill q1-service: PASSED" in printed
            after = project.container("web")
            assert after.id == before and after.attrs["State"]["Running"]
            (incident,) = project.incidents()
            assert incident["state"] == "resolved" and incident["key"] == "service_failure/web"

            # 0.2 s to detect, act and verify a killed api: no daemon does; paged at P2.
            assert main(["drill", "too-strict", "--policy", str(path)]) == 1
            printed = capsys.readouterr().out
            assert f"killed {project.name}-api-1" in printed and "FAILED" in printed, printed
            assert "Paged through: webhook (delivered by the daemon)." in printed

            def drill_paged() -> list[dict[str, Any]]:
                return [e for e in fakes.webhook.events() if e["event"] == "trigger"
                        and e["incident"]["scenario"] == "drill_failed"]

            wait_for(lambda: bool(drill_paged()), 20, "the failed drill's page")
            (page,) = drill_paged()
            assert page["incident"]["severity"] == "P2" and page["incident"]["state"] == (
                "escalated")
            assert "drill too-strict failed" in page["incident"]["why_now"]
        finally:
            if project.process is not None:
                project.process.terminate()
                project.process.wait(30)


def test_the_engine_injectors_pause_a_service_and_deploy_a_wrong_tag_and_the_database_one_corrupts(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str, musicdb: PgServer,
) -> None:
    with compose_project(docker_client, tmp_path, prefix="wdinject", services=("web", "api")) as (
        project
    ):
        inject = docker_injector(lambda: docker.DockerClient(base_url=docker_url), project.name)
        said = inject(DrillSpec(fault="pause", service="web"))
        assert said == f"paused {project.name}-web-1"
        assert project.container("web").status == "paused"

        before = project.container("api").attrs
        said = inject(DrillSpec(fault="wrong_image", service="api", image=BROKEN))
        assert said == f"recreated {project.name}-api-1 from {BROKEN} (was {GOOD})"
        after = project.container("api").attrs
        assert after["Id"] != before["Id"] and after["Config"]["Image"] == BROKEN
        assert after["Config"]["Labels"] == before["Config"]["Labels"]  # still the service

    corrupt = postgres_injector(musicdb.dsn)
    said = corrupt(DrillSpec(fault="corrupt_config", table="metadata_enrichment_config",
                             column="priority_1_provider"))
    with psycopg.connect(musicdb.dsn) as connection:
        rows, named = connection.execute(
            "SELECT count(*), count(priority_1_provider) FROM metadata_enrichment_config"
        ).fetchone() or (0, 0)
    assert said == f"set metadata_enrichment_config.priority_1_provider to NULL in {rows} rows"
    assert rows > 0 and named == 0


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthy", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_unhealthy_drill_freezes_web_running_and_the_generic_policy_restarts_it(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str,
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """compose-generic.yaml by labels (no targets), marked a drill stack: `web` (init, an HTTP
    healthcheck as real images have) frozen by `unhealthy` stays running, turns unhealthy, and
    is restarted; `api` stays healthy, so one service of two is down (P2, not P1)."""
    with Projects(docker_client, prefix="wdsick") as projects:
        project = Project(projects.new(), tmp_path, docker_client, {}, {})
        try:
            drill_a_frozen_web(project, tmp_path, docker_url, settings_env, capsys)
        finally:
            if project.process is not None:
                project.process.terminate()
                project.process.wait(30)


def drill_a_frozen_web(
    project: Project, tmp_path: Path, docker_url: str, settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docker_client = project.client
    for service in ("web", "api"):
        port = project.ports[service] = free_port()
        www = project.www[service] = www_folder(tmp_path, f"www-{service}")
        run_service(docker_client, project=project.name, service=service, port=port,
                    www=www, http_health=service == "web")
    data = yaml.safe_load(GENERIC.read_text())
    data["stack"]["drill"] = True
    data["drills"] = {"scenarios": {
        "q1-sick": {"fault": "unhealthy", "service": "web", "timeout": "600s"}}}
    # A frozen process never acts on SIGTERM: Docker SIGKILLs it after the stop timeout,
    # 1 s here rather than the policy's 10 (step timeouts are not compressed).
    (restart,) = data["scenarios"]["restart_service"]["steps"]
    restart["params"]["stop_timeout"] = 1
    path = tmp_path / "drill-generic.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    start_daemon(project, docker_url, policy=path)
    wait_for(lambda: project.last_good_recorded("web"), 30, "web's last known good")
    web = project.container("web")
    since = int(time.time())
    for name, value in {
        "DOCKER_HOST": docker_url, "WATCHDOG_COMPOSE_PROJECT": project.name,
        "WATCHDOG_ORCHESTRATOR": f"docker+{docker_url}", "WATCHDOG_TIME_SCALE": "10",
        "WATCHDOG_STATE": str(tmp_path / "journal.db"),
    }.items():
        settings_env.setenv(name, value)
    code = main(["drill", "q1-sick", "--policy", str(path), "--out", str(tmp_path / "sick.md")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    froze = f"froze {project.name}-web-1: SIGSTOP to PID 1 and to every other process"
    assert f"injected: {froze}" in printed
    report = (tmp_path / "sick.md").read_text()
    assert report.startswith("# Drill q1-sick: PASSED") and f"({froze})" in report
    assert "| yes | yes | yes |" in report

    # The engine's own record, in order: frozen by SIGSTOP, unhealthy with no pause nor
    # exit before it, then the daemon's restart: SIGTERM (ignored), SIGKILL, a new start.
    seen = [(e["Action"], e["Actor"]["Attributes"].get("signal", "")) for e in
            docker_client.events(since=since, until=int(time.time()), decode=True,
                                 filters={"container": web.id})
            if not e["Action"].startswith("exec_")]
    frozen = seen.index(("kill", "19"))
    sick = seen.index(("health_status: unhealthy", ""), frozen)
    assert not {a for a, _ in seen[frozen:sick]} & {"pause", "die", "stop"}, seen
    assert "pause" not in {a for a, _ in seen}, seen
    killed = seen.index(("kill", "9"), seen.index(("kill", "15"), sick))
    assert ("start", "") in seen[killed:] and ("restart", "") in seen[killed:], seen
    after = project.container("web")
    assert after.id == web.id and after.status == "running"
    assert after.attrs["State"]["StartedAt"] != web.attrs["State"]["StartedAt"]

    (incident,) = project.incidents()
    assert incident["key"] == "service_failure/web" and incident["state"] == "resolved"
    assert [(s["name"], s["status"]) for s in incident["steps"]] == [
        ("restart the failed service", "succeeded")]
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        result = last_result(journal, "q1-sick")
        assert result is not None and result["outcome"] == "passed"
        assert result["injected"] == froze and result["incident"] == incident["id"]
        assert [e.data["outcome"] for e in journal.timeline(incident["id"])
                if e.kind == "drill"] == ["passed"]
    finally:
        journal.close()


def test_the_unhealthy_injector_freezes_a_server_that_is_pid_1_even_without_kill_in_its_image(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str,
) -> None:
    """No init (Compose's default): httpd is PID 1, which `kill -STOP -1` inside never
    reaches; the engine's SIGSTOP does, in an image with `kill` and in one without."""
    with Projects(docker_client, prefix="wdfreeze") as projects:
        project = projects.new()
        ports = {"web": free_port(), "bare": free_port()}
        for service, image in (("web", GOOD), ("bare", nokill_image(docker_client))):
            run_service(docker_client, project=project, service=service, port=ports[service],
                        www=www_folder(tmp_path, service), image=image, init=False,
                        healthcheck=False)
            wait_for(lambda p=ports[service]: answers(p), 10, f"{service} answering")
        inject = docker_injector(lambda: docker.DockerClient(base_url=docker_url), project)
        said = {s: inject(DrillSpec(fault="unhealthy", service=s)) for s in ports}
        for service, port in ports.items():
            with pytest.raises(httpx.TimeoutException):  # accepted by the kernel, never read
                httpx.get(f"http://127.0.0.1:{port}/healthy", timeout=0.5)
            container = docker_client.containers.get(f"{project}-{service}-1")
            assert container.status == "running" and not container.attrs["State"]["Paused"]
        assert said == {
            "web": f"froze {project}-web-1: SIGSTOP to PID 1, its only process",
            "bare": f"froze PID 1 of {project}-bare-1 (SIGSTOP); no kill in the image for "
            "the others, if any",
        }
        # `docker restart` still ends it (SIGKILL after the stop timeout) and brings it back.
        docker_client.containers.get(f"{project}-web-1").restart(timeout=1)
        wait_for(lambda: answers(ports["web"]), 10, "web answering after docker restart")
