"""`summarize` and the crash history on hand-made `docker inspect` dicts: no engine needed."""

from __future__ import annotations

from typing import Any

from watchdog.probes.docker import (
    CrashHistory,
    Sample,
    ServiceSummary,
    replica,
    summarize,
    transitions,
)

PROJECT = "songnodes"


def inspect(
    name: str,
    service: str,
    *,
    status: str = "running",
    health: str | None = None,
    exit_code: int = 0,
    restarts: int = 0,
    oom: bool = False,
    oneoff: str = "False",
    started: str = "2026-11-25T10:00:00.000000001Z",
    finished: str = "0001-01-01T00:00:00Z",
) -> dict[str, Any]:
    """The parts of `docker inspect` that matter, shaped as the engine returns them."""
    state: dict[str, Any] = {
        "Status": status,
        "Running": status == "running",
        "ExitCode": exit_code,
        "OOMKilled": oom,
        "StartedAt": started,
        "FinishedAt": finished,
    }
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return {
        "Id": f"id-{name}",
        "Name": f"/{name}",
        "RestartCount": restarts,
        "State": state,
        "Config": {
            "Labels": {
                "com.docker.compose.project": PROJECT,
                "com.docker.compose.service": service,
                "com.docker.compose.oneoff": oneoff,
            }
        },
    }


def test_a_running_replica_without_healthcheck_is_healthy() -> None:
    summary = summarize([inspect("songnodes-redis-1", "redis")])["redis"]
    assert (summary.running, summary.healthy, summary.restarts, summary.oom_killed) == (
        1.0,
        1.0,
        0.0,
        0.0,
    )
    assert summary.detail == "songnodes-redis-1 running restarts=0"


def test_health_must_be_healthy_starting_is_not_yet() -> None:
    for health, expected in (("healthy", 1.0), ("starting", 0.0), ("unhealthy", 0.0)):
        summary = summarize([inspect("songnodes-api-1", "api", health=health)])["api"]
        assert summary.running == 1.0
        assert summary.healthy == expected, health
        assert f"songnodes-api-1 running {health} restarts=0" == summary.detail


def test_an_exited_replica_shows_its_exit_code_and_restarts() -> None:
    dead = inspect(
        "songnodes-dlq-manager-1", "dlq-manager", status="exited", exit_code=1, restarts=3
    )
    summary = summarize([dead])["dlq-manager"]
    assert (summary.running, summary.healthy, summary.restarts) == (0.0, 0.0, 3.0)
    assert summary.detail == "songnodes-dlq-manager-1 exited exit=1 restarts=3"


def test_a_stopped_replica_does_not_show_its_stale_health() -> None:
    dead = inspect("songnodes-api-1", "api", status="exited", health="healthy", exit_code=137)
    assert summarize([dead])["api"].detail == "songnodes-api-1 exited exit=137 restarts=0"


def test_every_replica_must_run_and_be_healthy_and_the_bad_one_comes_first() -> None:
    summary = summarize(
        [
            inspect("songnodes-worker-1", "worker", health="healthy", restarts=1),
            inspect("songnodes-worker-2", "worker", health="unhealthy", restarts=2),
        ]
    )["worker"]
    assert (summary.running, summary.healthy, summary.restarts) == (1.0, 0.0, 3.0)
    assert summary.detail.startswith("songnodes-worker-2 running unhealthy")
    assert "songnodes-worker-1 running healthy restarts=1" in summary.detail


def test_restarting_is_not_running() -> None:
    summary = summarize([inspect("songnodes-api-1", "api", status="restarting", exit_code=1)])
    assert summary["api"].running == 0.0


def test_oom_on_any_replica() -> None:
    summary = summarize(
        [
            inspect("songnodes-audio-1", "audio", status="exited", exit_code=137, oom=True),
            inspect("songnodes-audio-2", "audio"),
        ]
    )["audio"]
    assert summary.oom_killed == 1.0
    assert "songnodes-audio-1 exited exit=137 restarts=0 oom=true" in summary.detail


def test_services_are_grouped_one_offs_and_unlabelled_containers_ignored() -> None:
    stray = inspect("stray", "x")
    stray["Config"]["Labels"] = {}
    summaries = summarize(
        [
            inspect("songnodes-api-1", "api"),
            inspect("songnodes-api-run-1a2b", "api", status="exited", exit_code=2, oneoff="True"),
            inspect("songnodes-redis-1", "redis"),
            stray,
        ]
    )
    assert list(summaries) == ["api", "redis"]
    assert [r.name for r in summaries["api"].replicas] == ["songnodes-api-1"]
    assert replica(stray) is None


def test_missing_fields_do_not_break_the_summary() -> None:
    bare = {"Config": {"Labels": {"com.docker.compose.service": "web"}}}
    summary = summarize([bare])["web"]
    assert (summary.running, summary.healthy, summary.restarts) == (0.0, 0.0, 0.0)
    assert "unknown" in summary.detail


def test_a_service_with_no_container() -> None:
    empty = ServiceSummary("ghost", ())
    assert (empty.running, empty.healthy, empty.detail) == (0.0, 0.0, "no container")


# ---- the crash history ---------------------------------------------------------------


def sample(at: float, restarts: int, started: str, finished: str = "f0") -> Sample:
    return Sample(at, restarts, started, finished, 1)


def test_one_cycle_counts_once_several_policy_restarts_count_each() -> None:
    before = sample(0, 0, "s0", "f0")
    assert transitions(before, before) == 0
    assert transitions(before, sample(1, 1, "s1", "f1")) == 1
    assert transitions(before, sample(1, 4, "s4", "f4")) == 4
    # a manual restart resets RestartCount but starts anew
    assert transitions(sample(0, 5, "s0"), sample(1, 0, "s1", "f1")) == 1
    # a death that stays dead
    assert transitions(before, sample(1, 0, "s0", "f1")) == 1


def test_crash_history_counts_within_the_window_only() -> None:
    history = CrashHistory(window=60)
    history.record("c", sample(0, 0, "s0"))
    assert history.count("c", now=0) == 0  # the first sight counts nothing
    history.record("c", sample(10, 2, "s2", "f2"))
    history.record("c", sample(20, 3, "s3", "f3"))
    assert history.count("c", now=20) == 3
    history.record("c", sample(75, 3, "s3", "f3"))
    assert history.count("c", now=75) == 1  # the change seen at 10 s is out of the window
    assert history.count("c", now=200) == 0


def test_crash_history_ignores_late_answers_and_forgets_removed_containers() -> None:
    history = CrashHistory(window=60)
    history.record("c", sample(10, 1, "s1"))
    history.record("c", sample(5, 0, "s0"))  # an older answer arriving late
    assert history.count("c", now=10) == 0
    history.keep_only([])
    history.record("c", sample(20, 2, "s2"))
    assert history.count("c", now=20) == 0
