"""Scenario 1's "confirm backup availability" on a real folder of backup files.

A schema-coupled service (songnodes.yaml's `schema_coupled_services`) is reverted
only with a readable backup younger than the step's `max_backup_age`; the check is
also the plan's preflight, so a refusal comes before the failed service is touched.
Any other service: the item does not apply, and the step says so without looking.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from watchdog.actions.backup_confirm import BackupConfirm
from watchdog.actions.base import ActionFailed
from watchdog.model import Risk, Step
from watchdog.policyfile import load_policy

ROOT = Path(__file__).resolve().parents[2]


def confirm_step(service: str, folder: Path) -> Step:
    params = {"service": service, "backup_dir": str(folder), "max_backup_age": "6h"}
    return Step("confirm a backup", "backup.confirm", Risk.SAFE, tuple(sorted(params.items())))


def backup(folder: Path, hours_ago: float) -> Path:
    taken = time.time() - hours_ago * 3600
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(taken))
    path = folder / f"musicdb_backup_{stamp}.sql.gz"
    path.write_bytes(b"\x1f\x8b")
    return path


@pytest.mark.asyncio
async def test_a_schema_coupled_revert_needs_a_recent_backup(tmp_path: Path) -> None:
    policy = load_policy(ROOT / "policies" / "songnodes.yaml", environ={})
    checker = BackupConfirm(policy.stack.schema_coupled_services)
    folder = tmp_path / "backups"

    skipped = await checker.confirm(confirm_step("api-gateway-internal", folder))
    assert skipped.output.startswith("not applicable: api-gateway-internal is not schema-coupled")

    with pytest.raises(ActionFailed, match=r"backup folder .* does not exist"):
        await checker.preflight(confirm_step("dlq-manager", folder))
    folder.mkdir()
    with pytest.raises(ActionFailed, match="nothing matches musicdb_backup_"):
        await checker.confirm(confirm_step("dlq-manager", folder))
    old = backup(folder, hours_ago=9)
    too_old = re.escape(f"{old.name} is 9 h old; the policy allows 6 h")
    with pytest.raises(ActionFailed, match=too_old):
        await checker.preflight(confirm_step("dlq-manager", folder))

    fresh = backup(folder, hours_ago=1)
    done = await checker.confirm(confirm_step("dlq-manager", folder))
    assert done.output.startswith(f"dlq-manager is schema-coupled: newest backup {fresh.name}")
    assert "(1 h ago)" in done.output and done.data["backup"] == str(fresh)
