"""The status strip on the web page in a real headless Chromium (issue 16, point 1).

The daemon's app over a real journal and people file (the approvals fixtures), kept
off the network as in test_web_page.py. The journal holds what a running daemon
writes (its status row, as `StatusBeat` writes it; a page delivered to PagerDuty) and
one P1 plan waiting for approval; between page loads the test changes what an
operator would: pause as alice, then the row of a dry-run daemon with no pager.
Each situation is checked on what is visible (words, the red of "nobody can be
paged") and screenshotted, overview and incident page, into the test's tmp folder.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.approvals_fixtures import Api, api, awaiting, crew
from tests.integration.test_web_page import chromium
from watchdog.policy.statusview import DaemonRow
from watchdog.store.records import PageRows

__all__ = ["api", "chromium", "crew"]  # pytest fixtures, used by name

pytestmark = pytest.mark.slow

RED = "rgb(179, 20, 27)"  # base.html's .level-alert background


def test_the_strip_says_live_paused_and_nobody_can_be_paged(
    api: Api, chromium: Any, tmp_path: Path
) -> None:
    now = time.time()
    incident = awaiting(api.journal, api.policy, "database_migration_failure")
    live = DaemonRow(
        stack="songnodes", pid=4242, host="sidecar", started_at=now - 600, heartbeat_at=now,
        heartbeat_seconds=3600.0, dry_run=False, journal="/state/journal.db",
        policy_name="songnodes", policy_version="version 1, digest 0123456789ab",
        channels=("pagerduty", "slack"), p0_routes=("pagerduty", "slack"),
    )
    api.journal.write_status(live)
    (sent,) = api.journal.enqueue_page(
        incident, PageRows("trigger", "k", {"pagerduty": {}}, "waits", "pending"), at=now)
    api.journal.delivery_sent(sent, at=now, summary="202 Accepted")
    base = str(api.client.base_url).rstrip("/")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})

    page.goto(f"{base}/ui/")  # not signed in: no strip naming hosts and pagers
    assert page.locator("#status").count() == 0
    page.fill("input[name=name]", "lee")
    page.fill("input[name=token]", api.crew.tokens["lee"])
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("#status")

    def strip(situation: str) -> Any:
        """Both pages show the same strip; screenshots of each; the overview's strip."""
        page.goto(f"{base}/ui/incidents/{incident}")
        lines = _lines(page)
        page.screenshot(path=str(tmp_path / f"{situation}-incident.png"), full_page=True)
        page.goto(f"{base}/ui/")
        assert _lines(page) == lines
        page.screenshot(path=str(tmp_path / f"{situation}-overview.png"), full_page=True)
        return page.locator("#status")

    shown = strip("live")
    assert "Pending approvals (1)" in page.locator("main").inner_text()
    assert shown.locator(".status-mode").inner_text() == "LIVE: safe steps act on the stack"
    assert shown.locator(".status-pagers").inner_text().startswith(
        "pagers: pagerduty ok ") and "slack (nothing sent yet)" in shown.inner_text()
    assert "daemon running since" in shown.locator(".status-daemon").inner_text()
    assert "policy songnodes (version 1, digest 0123456789ab)" in shown.inner_text()
    assert "journal /state/journal.db" in shown.inner_text()
    assert shown.locator(".level-alert").count() == 0 and "strip-ok" in _classes(shown)

    api.journal.set_paused(True, by="alice", at=time.time())
    shown = strip("paused")
    pause = shown.locator(".status-pause")
    assert pause.inner_text().startswith("PAUSED since ") and "by alice" in pause.inner_text()
    assert "level-warn" in _classes(pause) and "strip-warn" in _classes(shown)

    api.journal.set_paused(False, by="alice", at=time.time())
    api.journal.write_status(replace(live, dry_run=True, channels=(), heartbeat_at=time.time()))
    shown = strip("dry-run-no-pagers")
    assert shown.locator(".status-mode").inner_text().startswith("DRY-RUN")
    pagers = shown.locator(".status-pagers")
    assert pagers.inner_text().startswith("NOBODY CAN BE PAGED")
    assert pagers.evaluate("e => getComputedStyle(e).backgroundColor") == RED
    assert {"strip-alert", "nobody-paged"} <= _classes(shown)
    assert shown.locator(".status-pause").inner_text() == "not paused: automatic actions allowed"

    for situation in ("live", "paused", "dry-run-no-pagers"):
        for view in ("overview", "incident"):
            shot = tmp_path / f"{situation}-{view}.png"
            assert shot.read_bytes().startswith(b"\x89PNG"), shot


def _classes(locator: Any) -> set[str]:
    return set((locator.get_attribute("class") or "").split())


def _lines(page: Any) -> list[str | None]:
    """The strip's lines by kind and level (their ages move on between two loads)."""
    found: list[str | None] = [
        line.get_attribute("class") for line in page.locator("#status .status-line").all()
    ]
    return found
