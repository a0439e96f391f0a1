"""The migration guard: no automatic image revert past a schema migration.

An image recorded as "last known good" before a migration was written for the
old schema. Putting it back on the migrated database can fail in ways a health
check does not see (writes to a dropped column, reads of a renamed one). So a
service the policy marks `schema_coupled` is reverted automatically only if
`schema_migrations` shows nothing applied since its image was recorded;
otherwise the step refuses and the page carries both ways out, for a human.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from watchdog.actions.base import ActionFailed
from watchdog.actions.docker import LAST_GOOD_TABLE, SnapshotStore


class SchemaGuard:
    def __init__(
        self,
        dsn: str | None,
        snapshots: SnapshotStore,
        coupled: set[str],
        *,
        timeout: float = 5.0,
        describe_time: Callable[[float], str] = lambda at: time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(at)
        ),
    ) -> None:
        self._dsn = dsn
        self._snapshots = snapshots
        self._coupled = coupled
        self._timeout = timeout
        self._describe = describe_time

    async def migrations_since(self, at: float) -> list[tuple[str, float]]:
        """(version, applied_at) of every migration applied after `at`, oldest first."""
        if not self._dsn:
            raise ActionFailed(
                "cannot tell whether a migration ran since the last good image was recorded "
                "(no WATCHDOG_DATABASE_URL): not reverting a schema-coupled service automatically"
            )
        # Imported here, with a database to ask: psycopg costs 9 MB at start-up otherwise.
        import psycopg

        from watchdog.postgres import DatabaseError, connect, scrub

        try:
            async with await connect(self._dsn, timeout=self._timeout, read_only=True) as db:
                cursor = await db.execute(
                    "SELECT version, extract(epoch FROM applied_at)::float8 AS at "
                    "FROM schema_migrations WHERE applied_at > to_timestamp(%s) "
                    "ORDER BY applied_at, version",
                    (at,),
                )
                rows = await cursor.fetchall()
        except (DatabaseError, psycopg.Error) as error:
            raise ActionFailed(
                "cannot tell whether a migration ran since the last good image was recorded "
                f"({scrub(str(error).strip(), self._dsn)}): not reverting automatically"
            ) from None
        return [(str(r["version"]), float(r["at"])) for r in rows]

    async def check(self, service: str) -> str:
        """Why the revert is safe for the schema; raises ActionFailed, with both plans, if not."""
        if service not in self._coupled:
            return ""
        snapshot = self._snapshots.latest_snapshot(LAST_GOOD_TABLE.format(service=service))
        if snapshot is None:
            return ""  # the revert itself refuses: nothing recorded to go back to
        applied = await self.migrations_since(snapshot.at)
        if not applied:
            return (
                f"no migration applied since {service}'s image was recorded at "
                f"{self._describe(snapshot.at)}"
            )
        names = ", ".join(f"{v} ({self._describe(at)})" for v, at in applied)
        raise ActionFailed(
            f"not reverting {service} automatically: it is schema-coupled and migration(s) "
            f"{names} were applied after its last good image was recorded at "
            f"{self._describe(snapshot.at)}; the old image may not work on the new schema. "
            f"Two plans for a human: (1) revert {service} together with the database rollback "
            "(scenario 'database_migration_failure': restore the backup and apply the down "
            f"migrations, needs approval), or (2) keep the schema and fix forward: a build of "
            f"{service} that works on it"
        )
