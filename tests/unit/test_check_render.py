"""`watchdog check` prints a failure's whole cause (issue 14: it cut every detail at 110
characters, so "Docker engine unreachable: ... Permission denied" lost its reason)."""

from __future__ import annotations

from watchdog.commands.check import DETAIL_WIDTH, CheckRow, render_rows

CAUSE = (
    "Docker engine unreachable: DockerException: Error while fetching server API version: "
    "('Connection aborted.', PermissionError(13, 'Permission denied')): the socket "
    "/var/run/docker.sock belongs to group 107; set DOCKER_GID=107"
)


def test_a_failure_keeps_its_whole_detail() -> None:
    text = render_rows([CheckRow("containers_healthy", "", "-", "FAIL", CAUSE)])
    assert CAUSE in text
    assert text.splitlines()[-1] == "1 readings, 1 failing"


def test_a_long_ok_detail_is_shortened_and_says_so() -> None:
    detail = "x" * (DETAIL_WIDTH + 40)
    text = render_rows([CheckRow("web_health", "", "1", "ok", detail)])
    line = text.splitlines()[1]
    assert line.endswith("x" * (DETAIL_WIDTH - 1) + "…")
    assert detail not in text
