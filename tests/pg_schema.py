"""The musicdb tables the watchdog touches, as TARGET-STACK.md describes them, with a seed.

Why a real schema rather than the sandbox's JSON "tables": the hard parts of restoring
the enrichment configuration are the ones only PostgreSQL enforces — foreign keys with
ON DELETE CASCADE (the runbook's `TRUNCATE ... CASCADE` wipes the performance history),
CHECK constraints (a confidence of 1.7 must be refused), numeric(3,2) rounding, jsonb
and text[] columns. Tests that restore or edit the table must meet all of them.

The seed is deterministic (fixed UUIDs, timestamps and counts), so a test can compare
a table before and after an action byte for byte. The configuration rows are the
sandbox's (`watchdog.sandbox.seed`): spotify routes 12 of the 14 fields there and here.

API: `schema_sql()` is the DDL; `seed(conn, extra_config_rows)` fills the tables on an
open connection; `load(dsn, extra_config_rows)` replaces schema `public` with both in
one transaction, which is what a test wants before it starts.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from watchdog.sandbox.catalog import PROVIDERS
from watchdog.sandbox.seed import SEED_TIMESTAMP, config_rows, provider_rows

CONFIG_ROWS: Final = 14
PROVIDER_ROWS: Final = len(PROVIDERS)
TRACK_ROWS: Final = 50
#: one history row per (field, provider) on priority 1 or 2 of the seeded waterfalls
HISTORY_ROWS: Final = 24
#: every track but each fifth one has an enrichment_status row
STATUS_ROWS: Final = 40
SPOTIFY_ROWS: Final = 12

#: Column order of metadata_enrichment_config, used by the COPY of the seed.
CONFIG_COLUMNS: Final = (
    "metadata_field",
    "priority_1_provider", "priority_1_confidence",
    "priority_2_provider", "priority_2_confidence",
    "priority_3_provider", "priority_3_confidence",
    "priority_4_provider", "priority_4_confidence",
    "enabled", "retry_on_low_confidence", "min_acceptable_confidence", "field_type",
    "field_description", "required_for_gold", "validation_rules", "last_updated",
    "updated_by",
)
FIELD_TYPES: Final = ("identifier", "musical_attribute", "metadata", "text", "date", "numeric")

# Plausible per-provider request budgets (the sandbox seed has no such column).
_RATE_LIMITS: Final = {"spotify": 180, "musicbrainz": 60, "lastfm": 300, "discogs": 60,
                       "beatport": 120}
_TRACK_NAMESPACE: Final = uuid.UUID("6f1c3c52-6a43-4c8e-9d0b-2f3c1f0a7b11")
_STATUSES: Final = ("completed", "completed", "partial", "failed")


def _confidence_check(column: str) -> str:
    return f"CHECK ({column} IS NULL OR ({column} >= 0 AND {column} <= 1))"


def schema_sql() -> str:
    """DDL for the six tables, in dependency order (one multi-statement script)."""
    priorities = ",\n".join(
        f"    priority_{n}_provider text,\n"
        f"    priority_{n}_confidence numeric(3,2) {_confidence_check(f'priority_{n}_confidence')}"
        for n in range(1, 5)
    )
    field_types = ", ".join(f"'{t}'" for t in FIELD_TYPES)
    return f"""
CREATE TABLE metadata_enrichment_config (
    metadata_field text PRIMARY KEY,
{priorities},
    enabled boolean NOT NULL DEFAULT true,
    retry_on_low_confidence boolean NOT NULL DEFAULT true,
    min_acceptable_confidence numeric(3,2)
        {_confidence_check('min_acceptable_confidence')},
    field_type text NOT NULL CHECK (field_type IN ({field_types})),
    field_description text,
    required_for_gold boolean NOT NULL DEFAULT false,
    validation_rules jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    last_updated timestamp NOT NULL DEFAULT now(),
    updated_by text
);

CREATE TABLE enrichment_providers (
    provider_name text PRIMARY KEY,
    provider_type text NOT NULL CHECK (provider_type IN ('api', 'scraper', 'manual')),
    supported_fields text[] NOT NULL DEFAULT '{{}}',
    enabled boolean NOT NULL DEFAULT true,
    health_status text NOT NULL DEFAULT 'healthy'
        CHECK (health_status IN ('healthy', 'degraded', 'down')),
    rate_limit_per_minute integer CHECK (rate_limit_per_minute IS NULL
                                         OR rate_limit_per_minute > 0),
    avg_confidence_score numeric(3,2) {_confidence_check('avg_confidence_score')},
    success_rate numeric(5,4) {_confidence_check('success_rate')},
    last_health_check timestamp
);

CREATE TABLE provider_performance_history (
    id bigserial PRIMARY KEY,
    provider_name text NOT NULL
        REFERENCES enrichment_providers (provider_name) ON DELETE CASCADE,
    metadata_field text NOT NULL
        REFERENCES metadata_enrichment_config (metadata_field) ON DELETE CASCADE,
    success_count integer NOT NULL DEFAULT 0 CHECK (success_count >= 0),
    failure_count integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tracks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title text NOT NULL,
    normalized_title text,
    isrc text,
    spotify_id text,
    bpm numeric,
    key text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE enrichment_status (
    track_id uuid REFERENCES tracks (id),
    status text,
    retry_count integer DEFAULT 0
);

CREATE TABLE schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    description text
);
"""


def synthetic_config_row(number: int) -> dict[str, Any]:
    """A valid extra configuration row `field_NNNN`, for benchmarks on a large table.

    Waterfalls of one to four providers rotate through PROVIDERS, so every provider
    appears in about as many rows and a surgical edit has work to do on each.
    """
    depth = 1 + number % 4
    row: dict[str, Any] = {"metadata_field": f"field_{number:04d}"}
    for index in range(4):
        provider = PROVIDERS[(number + index) % len(PROVIDERS)] if index < depth else None
        row[f"priority_{index + 1}_provider"] = provider
        row[f"priority_{index + 1}_confidence"] = (
            round(0.95 - 0.05 * index, 2) if provider else None
        )
    row.update({
        "enabled": True,
        "retry_on_low_confidence": number % 2 == 0,
        "min_acceptable_confidence": 0.70,
        "field_type": FIELD_TYPES[number % len(FIELD_TYPES)],
        "field_description": f"Synthetic benchmark field {number}",
        "required_for_gold": False,
        "validation_rules": {"max_length": 100},
        "last_updated": SEED_TIMESTAMP,
        "updated_by": "tests.pg_schema",
    })
    return row


def track_id(number: int) -> uuid.UUID:
    """The fixed id of seeded track `number` (0..TRACK_ROWS-1)."""
    return uuid.uuid5(_TRACK_NAMESPACE, f"track-{number}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _track_rows() -> list[tuple[Any, ...]]:
    """Each fifth track is not enriched yet: no spotify_id, bpm or key, no status row."""
    rows: list[tuple[Any, ...]] = []
    for number in range(TRACK_ROWS):
        digest = _digest(f"track-{number}")
        title = f"  Seed Track {number:02d} (Original Mix) "
        enriched = number % 5 != 0
        rows.append((
            track_id(number),
            title,
            " ".join(title.lower().split()),
            f"GBSDB25{number:05d}",
            digest[:22] if enriched else None,
            120 + number % 10 if enriched else None,
            f"{number % 12 + 1}{'AB'[number % 2]}" if enriched else None,
            f"{SEED_TIMESTAMP}+00:00",
        ))
    return rows


def _history_rows() -> list[tuple[str, str, int, int, str]]:
    rows: list[tuple[str, str, int, int, str]] = []
    for row in config_rows():
        for n in (1, 2):
            provider = row[f"priority_{n}_provider"]
            if provider:
                number = int(_digest(f"{provider}:{row['metadata_field']}")[:6], 16)
                rows.append((provider, row["metadata_field"], 500 + number % 500,
                             number % 40, f"{SEED_TIMESTAMP}+00:00"))
    return rows


def seed(conn: psycopg.Connection[Any], extra_config_rows: int = 0) -> None:
    """Fill freshly created tables; the caller commits.

    The configuration goes in through COPY, so 10,000 extra rows cost tens of
    milliseconds rather than a round trip each.
    """
    configs = config_rows() + [synthetic_config_row(n + 1) for n in range(extra_config_rows)]
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY metadata_enrichment_config ({', '.join(CONFIG_COLUMNS)}) FROM STDIN"
        ) as copy:
            for row in configs:
                copy.write_row([
                    Jsonb(row[c]) if c == "validation_rules" else row[c] for c in CONFIG_COLUMNS
                ])
        cur.executemany(
            "INSERT INTO enrichment_providers (provider_name, provider_type, supported_fields,"
            " enabled, health_status, rate_limit_per_minute, avg_confidence_score,"
            " success_rate, last_health_check) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(p["provider_name"], p["provider_type"], p["supported_fields"], p["enabled"],
              p["health_status"], _RATE_LIMITS.get(p["provider_name"]),
              p["avg_confidence_score"], p["success_rate"], p["last_health_check"])
             for p in provider_rows()],
        )
        cur.executemany(
            "INSERT INTO provider_performance_history (provider_name, metadata_field,"
            " success_count, failure_count, recorded_at) VALUES (%s, %s, %s, %s, %s)",
            _history_rows(),
        )
        cur.executemany(
            "INSERT INTO tracks (id, title, normalized_title, isrc, spotify_id, bpm, key,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            _track_rows(),
        )
        cur.executemany(
            "INSERT INTO enrichment_status (track_id, status, retry_count) VALUES (%s, %s, %s)",
            [(track_id(n), _STATUSES[n % 4], 0 if _STATUSES[n % 4] == "completed" else n % 3)
             for n in range(TRACK_ROWS) if n % 5 != 0],
        )


def load(dsn: str, extra_config_rows: int = 0) -> None:
    """Replace schema `public` with the tables and their seed, in one transaction.

    Run as the database owner (musicdb_user): in PostgreSQL 15 schema public belongs to
    pg_database_owner, so the owner may drop it, and the new one is then its own. A
    lock_timeout turns a session left open by an earlier test into an error instead of
    a hang.
    """
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        conn.execute(schema_sql())
        seed(conn, extra_config_rows)

