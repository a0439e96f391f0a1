"""What every PostgreSQL adapter shares: connecting, keeping the password out of words.

The probe, the configuration store and the database actions all reach the guarded
database through `connect`, with a connect timeout so a dead server is an answer
within the probe's budget, not a hang. Any text that may travel to a log line, a
journal row or a page goes through `scrub` first: libpq's own messages can quote
a malformed connection string, password included.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row


async def connect(
    dsn: str, *, timeout: float, read_only: bool = False
) -> psycopg.AsyncConnection[DictRow]:
    """A new connection (dict rows), failing within `timeout` seconds when the server is gone."""
    try:
        connection = await psycopg.AsyncConnection.connect(
            dsn,
            connect_timeout=max(1, round(timeout)),
            row_factory=dict_row,
            application_name="watchdog",
        )
    except psycopg.Error as error:
        raise DatabaseError(scrub(str(error), dsn)) from None
    if read_only:
        await connection.set_read_only(True)
    return connection


class DatabaseError(Exception):
    """A database failure whose message has been scrubbed of the password."""


def password_of(dsn: str) -> str:
    try:
        return str(conninfo_to_dict(dsn).get("password") or "")
    except psycopg.Error:
        return ""


def scrub(text: str, dsn: str) -> str:
    """`text` with the DSN's password (and the DSN itself) replaced by '***'."""
    secret = password_of(dsn)
    cleaned = text.replace(dsn, "***") if dsn else text
    return cleaned.replace(secret, "***") if secret else cleaned


def where(dsn: str) -> str:
    """host:port/dbname, for messages: everything but the credentials."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the configured database"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def jsonable(value: Any) -> Any:
    """A column's value as the journal stores it: JSON types only, losslessly for our tables.

    numeric → float (numeric(3,2) confidences round-trip exactly through CAST),
    timestamps → ISO 8601 text, uuid → text; arrays and jsonb keep their shape.
    """
    if isinstance(value, decimal.Decimal):
        whole = value == value.to_integral_value() and "." not in str(value)
        return int(value) if whole else float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
