"""Closing an incident from its page in a real headless Chromium.

The daemon's app behind a real uvicorn over a real journal and people file (the
approvals fixtures), and Debian's chromium driven by Playwright, kept off the
network as in test_web_page.py. The incident is executing, so its page refreshes
itself every second; the browser signs in, follows "Close this incident…" (which
holds the page still), finds an empty comment refused by the form itself, writes
why and closes. Screenshots land in the test's tmp folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.approvals_fixtures import Api, api, awaiting, crew
from tests.integration.test_web_page import chromium

__all__ = ["api", "chromium", "crew"]  # pytest fixtures, used by name

pytestmark = pytest.mark.slow

P1 = "database_migration_failure"


def test_sign_in_and_close_a_running_incident_from_its_page(
    api: Api, chromium: Any, tmp_path: Path
) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    api.journal.set_state(incident, state="executing", at=time.time(), reason="approved")
    base = str(api.client.base_url).rstrip("/")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})

    page.goto(f"{base}/ui/incidents/{incident}")  # the incident is for people signed in
    assert page.locator("#state").count() == 0 and "Sign in with your name" in page.content()

    page.fill("input[name=name]", "lee")
    page.fill("input[name=token]", api.crew.tokens["lee"])
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("text=signed in as")
    assert page.url == f"{base}/ui/incidents/{incident}"
    assert page.locator("#state").inner_text() == "executing"
    # Refreshing while the plan runs: the form is one click away, on a page that holds still.
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    page.click("#start-close")
    page.wait_for_url(f"**/ui/incidents/{incident}?closing=1")
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    page.screenshot(path=str(tmp_path / "closing.png"), full_page=True)

    page.click("button:has-text('Close incident')")  # no comment: the form will not send
    page.wait_for_timeout(300)
    assert page.url.endswith("?closing=1") and api.journal.incident(incident).is_open
    validation = page.locator("input[aria-label='closing comment']").evaluate(
        "field => field.validationMessage"
    )
    assert validation, "the browser names the missing comment"

    page.fill("input[aria-label='closing comment']", "rolled back by hand at 14:02")
    page.click("button:has-text('Close incident')")
    page.wait_for_url(f"**/ui/incidents/{incident}?recorded=close")
    assert page.locator("#state").inner_text() == "closed"
    assert page.locator("#close").count() == 0
    timeline = page.locator("#timeline").inner_text()
    assert "executing → closed by lee (lead): rolled back by hand at 14:02" in timeline
    page.screenshot(path=str(tmp_path / "closed.png"), full_page=True)

    record = api.journal.incident(incident)
    assert (record.state, record.is_open) == ("closed", False)
    (event,) = [e for e in api.journal.timeline(incident) if e.kind == "closed_by_human"]
    assert (event.data["person"], event.data["role"]) == ("lee", "lead")
    for name in ("closing.png", "closed.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
