"""Last known good on a bad day: the sandbox, `watchdog run`, and an unrelated incident open.

A snapshot of a table is the table's business: a P3 warning from Alertmanager
(a disk filling somewhere) stays open for as long as the alert fires, and the
configuration table must still be snapshotted when it changes to a new valid
version. A provider the watchdog has disabled is another matter: the snapshot
is still taken, but marked so, and a restore from it says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.alertmanager_payloads import alert, webhook
from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from watchdog.demo import wait_for
from watchdog.keys import new_key
from watchdog.store.records import SnapshotRecord

pytestmark = pytest.mark.slow

CONFIG = "metadata_enrichment_config"
TOKEN = new_key()  # `watchdog run` refuses a guessable one


def disable_stands(data: dict[str, Any]) -> None:
    """The sandbox's breaker stays CLOSED once spotify is out of the waterfall, so the
    re-enable would follow within seconds; here the disable stands for the module."""
    data["scenarios"]["provider_failure"]["reenable"]["healthy_for"] = "1h"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    folder = tmp_path_factory.mktemp("lastgood")
    policy = songnodes_variant(folder, disable_stands)
    environment = {"WATCHDOG_ALERTMANAGER_TOKEN": TOKEN}
    with staged_daemon(folder, policy, environment=environment) as stage:
        yield stage


def post_alerts(stage: Stage, *alerts: dict[str, Any]) -> None:
    reply = httpx.post(
        stage.url + "/api/alertmanager", json=webhook(*alerts),
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )
    assert reply.status_code == 200, reply.text


def newest_snapshot(stage: Stage) -> SnapshotRecord | None:
    journal = stage.journal()
    try:
        return journal.latest_snapshot(CONFIG)
    finally:
        journal.close()


def edit_descriptions(stage: Stage, words: str) -> list[dict[str, Any]]:
    """A new, valid version of the table: every field's description changed."""
    rows = stage.stack.control.table(CONFIG)
    for row in rows:
        row["field_description"] = words
    stage.stack.control.put_table(CONFIG, rows)
    return rows


def snapshot_says(words: str) -> Any:
    def check(snapshot: SnapshotRecord | None) -> bool:
        return snapshot is not None and all(
            r.get("field_description") == words for r in snapshot.rows
        )

    return check


def test_a_new_valid_table_is_snapshotted_while_an_unrelated_incident_stays_open(
    stage: Stage,
) -> None:
    known = {i["id"] for i in stage.incidents()}
    disk = alert("DiskSpaceLow", severity="warning", component="host",
                 summary="disk above 85 % on the backup volume")
    post_alerts(stage, disk)
    unrelated = stage.follow(known, ("notified",), 30)
    assert (unrelated["severity"], unrelated["scenario"]) == ("P3", "fix_forward")

    edit_descriptions(stage, "version 2, edited while the disk warning is open")
    taken = snapshot_says("version 2, edited while the disk warning is open")
    wait_for(lambda: taken(newest_snapshot(stage)), 40, "a snapshot of the new version")

    snapshot = newest_snapshot(stage)
    assert snapshot is not None and snapshot.caveat == ""
    still = {i["id"]: i for i in stage.incidents()}[unrelated["id"]]
    assert still["state"] == "notified", "the unrelated incident was open all along"
    assert snapshot.at > unrelated["opened_at"]

    post_alerts(stage, {**disk, "status": "resolved", "endsAt": "2026-11-29T10:05:00Z"})
    stage.follow(known, ("closed",), 30)


def test_a_snapshot_taken_while_a_provider_is_disabled_says_so_and_so_does_its_restore(
    stage: Stage,
) -> None:
    disabled = stage.inject_and_follow("provider_outage", provider="spotify")
    assert disabled["state"] == "resolved", disabled["timeline"]

    edit_descriptions(stage, "version 3, edited while spotify is disabled")
    taken = snapshot_says("version 3, edited while spotify is disabled")
    wait_for(lambda: taken(newest_snapshot(stage)), 40, "a snapshot while spotify is disabled")
    snapshot = newest_snapshot(stage)
    assert snapshot is not None
    assert snapshot.caveat == (
        f"taken while the watchdog had spotify disabled (incident {disabled['id']})"
    )

    restored = stage.inject_and_follow("corrupt_config")
    assert restored["state"] == "resolved", restored["timeline"]
    output = {s["name"]: s["output"] for s in restored["steps"]}[
        "restore the last known good configuration"
    ]
    assert output.startswith(
        f"CAVEAT: this snapshot was taken while the watchdog had spotify disabled "
        f"(incident {disabled['id']}). restored {CONFIG} from last known good snapshot "
        f"{snapshot.id} "
    ), output
