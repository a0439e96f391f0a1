"""Follow-ups and the incident report, end to end on the sandbox daemon.

A crashed service is restarted by `watchdog run` (songnodes, with two follow-ups:
one due at once, one in an hour); the resolve writes them, `watchdog followups`
lists them overdue first, watchdog_followups_overdue counts the overdue one,
`followups done` closes it once (twice is refused naming who), `watchdog report`
prints every section, and the web page serves the same report behind its read access.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from watchdog.cli import main
from watchdog.demo import wait_for
from watchdog.store.markdown import SECTIONS

pytestmark = pytest.mark.slow


def short_followups(data: dict[str, Any]) -> None:
    data["followups"] = [
        {"text": "Incident report filed", "due_after": "0s", "owner": "oncall"},
        {"text": "Post-mortem completed", "due_after": "1h", "owner": "lead"},
    ]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    folder = tmp_path_factory.mktemp("followups")
    with staged_daemon(folder, songnodes_variant(folder, short_followups)) as stage:
        yield stage


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_rollback_owes_follow_ups_closed_once_and_reported(
    stage: Stage, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = ("--state", str(stage.folder / "journal.db"))
    incident = stage.inject_and_follow("crash", service="dlq-manager")
    assert incident["state"] == "resolved", incident["timeline"]
    number = str(incident["id"])

    wait_for(lambda: stage.metric("watchdog_followups_overdue") == 1, 15, "one overdue follow-up")
    code, out, _ = cli(capsys, "followups", *state)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "INCIDENT", "DUE", "STATUS", "OWNER", "ITEM"]
    assert "OVERDUE" in lines[1] and lines[1].endswith("Incident report filed")
    assert "due in 59m" in lines[2] and lines[2].endswith("Post-mortem completed")
    overdue = lines[1].split()[0]

    code, out, _ = cli(capsys, "followups", "done", overdue, "--as", "lee", *state)
    assert (code, out.strip()) == (
        0, f"follow-up {overdue} of incident {number} done by lee: Incident report filed"
    )
    code, _, err = cli(capsys, "followups", "done", overdue, "--as", "kim", *state)
    assert code == 2
    assert f"follow-up {overdue} ('Incident report filed') was already closed by lee" in err
    code, _, err = cli(capsys, "followups", "done", "--as", "kim", *state)
    assert code == 2 and "`followups done` needs ID" in err
    wait_for(lambda: stage.metric("watchdog_followups_overdue") == 0, 15, "none overdue")
    code, out, _ = cli(capsys, "followups", *state)
    assert "Incident report filed" not in out and "Post-mortem completed" in out
    code, out, _ = cli(capsys, "followups", "--all", *state)
    assert "done by lee" in out

    report = tmp_path / "report.md"
    code, out, _ = cli(capsys, "report", number, "--out", str(report), *state)
    assert code == 0 and str(report) in out
    text = report.read_text()
    assert [line[3:] for line in text.splitlines() if line.startswith("## ")] == list(SECTIONS)
    assert "| restart the failed service | service.restart | safe |" in text
    assert "**Time to recover:** " in text and "(opened → verified at" in text
    assert "done by lee at" in text and "| Post-mortem completed | lead |" in text

    web = httpx.get(
        f"{stage.url}/ui/incidents/{number}/report.md",
        headers={"Authorization": f"Bearer {stage.daemon.read_token}"}, timeout=5,
    )
    assert web.status_code == 200 and web.headers["content-type"].startswith("text/markdown")
    assert web.text.split("\n## Timeline")[0] == text.split("\n## Timeline")[0]
    assert [line for line in web.text.splitlines() if line.startswith("## ")] == [
        f"## {section}" for section in SECTIONS
    ]
    assert httpx.get(f"{stage.url}/ui/incidents/{number}/report.md", timeout=5).status_code == 401
    page = httpx.get(
        f"{stage.url}/ui/", headers={"Authorization": f"Bearer {stage.daemon.read_token}"},
        timeout=5,
    ).text
    assert "Follow-ups owed (1)" in page and "Post-mortem completed" in page
    incident_page = httpx.get(
        f"{stage.url}/ui/incidents/{number}",
        headers={"Authorization": f"Bearer {stage.daemon.read_token}"}, timeout=5,
    ).text
    assert f'href="/ui/incidents/{number}/report.md"' in incident_page
