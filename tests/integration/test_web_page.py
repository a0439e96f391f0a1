"""The web page in a real headless Chromium: sign in, approve a P1 migration rollback, watch it run.

A real PostgreSQL with a migration that broke it (orphaned enrichment_status
rows after 004_drop_track_fk), a real `watchdog run` guarding it whose plan
waits for a lead (tests/integration/pg_stage.py), and Debian's chromium driven
by Playwright with `executable_path` and flags that keep it off the network:
only 127.0.0.1 resolves. The page has no JavaScript; the browser signs in,
opens the pending incident from the list, clicks Approve, and the incident page
(which refreshes itself while the plan runs) shows the steps as they finish.
Screenshots land in the test's tmp folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.enrichment_stub import enrichment_stub
from tests.integration.approvals_fixtures import write_crew
from tests.integration.pg_stage import pg_stage
from tests.integration.test_pg_daemon import (
    FAILING,
    MIGRATIONS,
    ORPHANS,
    rows,
    take_backup,
    write_and_apply,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
OFFLINE_FLAGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-pings",
    "--password-store=basic",
    "--disable-dev-shm-usage",
    # Belt and braces: no name but 127.0.0.1 resolves, so nothing can leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
PLAN_ACTIONS = 5  # dump, restore, migrations down, integrity, backup


@pytest.fixture
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(
            f"Playwright is missing: pip install playwright (never `playwright install`)"
            f" into the venv ({error})"
        )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
        except Exception as error:  # any launch failure: say what to install
            pytest.fail(
                f"Chromium at {CHROMIUM} did not start; install Debian's `chromium` "
                f"package (apt-get install chromium) and `pip install playwright`: {error}"
            )
        try:
            yield browser
        finally:
            browser.close()


def step_statuses(page: Any) -> list[str]:
    """The status cell of every plan step as the page shows it now ([] mid-reload)."""
    try:
        return [
            cell.strip()
            for cell in page.locator("#steps tr.step td:nth-child(4)").all_inner_texts()
        ]
    except Exception:  # the page is between two loads
        return []


def test_sign_in_approve_a_pending_p1_migration_rollback_and_see_the_plan_run(
    musicdb: PgServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "sql" / "migrations"
    write_and_apply(musicdb, root, MIGRATIONS)
    take_backup(musicdb, tmp_path / "backups")
    write_and_apply(musicdb, root, dict([FAILING]))
    crew = write_crew(tmp_path)
    # Only now: Playwright's own event loop would refuse the backup's asyncio.run.
    chromium = request.getfixturevalue("chromium")

    with (
        enrichment_stub(musicdb.dsn) as stub,
        pg_stage(
            tmp_path,
            musicdb,
            stub,
            environment={
                "WATCHDOG_MIGRATIONS_DIR": str(root),
                "WATCHDOG_MIGRATION_TARGET": "001_base",
                "WATCHDOG_PEOPLE": str(crew.path),
            },
        ) as stage,
    ):
        incident = stage.follow(
            set(), ("awaiting_approval", "escalated"), scenario="database_migration_failure"
        )
        assert incident["state"] == "awaiting_approval" and incident["severity"] == "P1"
        number = incident["id"]

        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(stage.url + "/")
        assert page.url == stage.url + "/ui/"
        assert "Pending approvals" not in page.content(), "the incidents are for people"
        assert "Sign in with your name and personal token" in page.content()

        page.fill("input[name=name]", "lee")
        page.fill("input[name=token]", crew.tokens["lee"])
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("text=signed in as")
        assert "lee" in page.locator("header .who").inner_text()
        pending = page.locator("h2", has_text="Pending approvals")
        assert pending.inner_text() == "Pending approvals (1)"
        page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)

        page.click(f"a[href='/ui/incidents/{number}']")
        page.wait_for_url(f"**/ui/incidents/{number}")
        assert page.locator("#state").inner_text() == "awaiting_approval"
        body = page.locator("main").inner_text()
        assert "need approval by one lead" in body and "will be lost" in body
        assert step_statuses(page) == ["not run"] * PLAN_ACTIONS
        page.screenshot(path=str(tmp_path / "pending.png"), full_page=True)

        page.fill("input[aria-label='approval comment']", "backup is from this morning")
        page.click("button.approve")
        page.wait_for_url(f"**/ui/incidents/{number}?recorded=approve")
        assert "Your approval is recorded." in page.locator("#recorded").inner_text()

        # From here the test never reloads: the page refreshes itself while the plan
        # runs. Note each (state, step statuses) it shows on the way.
        loads: list[str] = []
        page.on("load", lambda _: loads.append(page.url))
        seen: list[tuple[str, ...]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (seen and seen[-1][0] == "resolved"):
            try:
                shown = (page.locator("#state").inner_text(timeout=2000), *step_statuses(page))
            except Exception:  # between two loads
                continue
            if len(shown) == PLAN_ACTIONS + 1 and (not seen or seen[-1] != shown):
                seen.append(shown)
            page.wait_for_timeout(100)
        # What the page showed on the way, kept beside the screenshots.
        (tmp_path / "seen.txt").write_text("\n".join(" | ".join(s) for s in seen) + "\n")
        page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)

        states = [shown[0] for shown in seen]
        assert states[-1] == "resolved", seen
        assert seen[-1][1:] == ("succeeded",) * PLAN_ACTIONS, seen
        assert "verifying" in states or "executing" in states, seen
        finished = [shown.count("succeeded") for shown in seen]
        assert finished == sorted(finished) and finished[0] < PLAN_ACTIONS, seen
        assert len(loads) >= 2, "the page refreshed itself while the plan ran"
        timeline = page.locator("#timeline").inner_text()
        assert "lee (lead) approved: backup is from this morning" in timeline
        assert "approved by lee (lead)" in timeline

        page.goto(stage.url + "/ui/")
        rollbacks = page.locator("table").last.inner_text()
        assert "database_migration_failure" in rollbacks and "resolved" in rollbacks
        page.screenshot(path=str(tmp_path / "list.png"), full_page=True)

    assert rows(musicdb.dsn, ORPHANS)[0]["count"] == 0
    for name in ("signed-in.png", "pending.png", "approved.png", "list.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
