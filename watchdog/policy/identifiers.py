"""SQL identifiers named in a policy: checked here, quoted by psycopg.sql at the edge.

A table or column name in a policy file ends up in SQL text (values never do:
they are always parameters). Quoting alone would make `config; DROP TABLE x`
a legal, if odd, identifier; we refuse anything but a plain lower-case name,
optionally schema-qualified, so a policy typo or an injected name fails
`watchdog validate` instead of reaching the database.
"""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
EXPECTED = "a plain SQL name such as metadata_enrichment_config or public.tracks (a-z, 0-9, _)"


def is_identifier(name: str) -> bool:
    return IDENTIFIER.fullmatch(name) is not None


def is_table_name(name: str) -> bool:
    """`table` or `schema.table`, each part a plain identifier."""
    parts = name.split(".")
    return 1 <= len(parts) <= 2 and all(is_identifier(part) for part in parts)


def table_name(name: str) -> str:
    """For pydantic validators: the name, or ValueError saying what was expected."""
    if not is_table_name(name):
        raise ValueError(EXPECTED)
    return name


def split_table(name: str) -> tuple[str, ...]:
    """('schema', 'table') or ('table',), for psycopg.sql.Identifier(*parts)."""
    return tuple(table_name(name).split("."))
