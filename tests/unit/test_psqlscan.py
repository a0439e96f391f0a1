"""The scan that keeps psql meta-commands out of a restore: lines in, a verdict out."""

from __future__ import annotations

import pytest

from watchdog.policy.psqlscan import assess_psql_script

DUMP = """--
-- PostgreSQL database dump
--

\\restrict Ab12cd34
SET standard_conforming_strings = on;
CREATE FUNCTION f() RETURNS text AS $body$
\\! inside a function body is text, not a command
$body$ LANGUAGE sql;
COMMENT ON TABLE t IS 'a\\b -- \\o not a command';
-- \\! in a comment
/* \\! in a block
   comment */
COPY public.t (a, b) FROM stdin;
\\N\t\\\\server\\share
1\t\\!not a command in data
\\.
SELECT E'it\\'s \\! fine';
\\unrestrict Ab12cd34
"""


def test_a_plain_dump_with_copy_data_escapes_and_restrict_passes() -> None:
    verdict = assess_psql_script(DUMP.splitlines(keepends=True))
    assert verdict.ok, verdict.reason
    assert verdict.reason == "no psql meta-command in 19 line(s)"


@pytest.mark.parametrize(
    ("script", "line", "command"),
    [
        ("SELECT 1;\n\\! id\n", 2, "\\!"),
        ("SELECT 1;\n  \\o |sh\n", 2, "\\o"),
        ("SELECT 1; \\! id\n", 1, "\\!"),  # psql runs it after SQL on the same line too
        ("\\connect other\n", 1, "\\connect"),
        ("\\c other\n", 1, "\\c"),
        ("\\set ON_ERROR_STOP off\n", 1, "\\set"),
        ("\\.\n", 1, "\\."),  # the terminator outside COPY data
        ("\\restrict abc; \\! id\n", 1, "\\restrict"),  # not exactly as pg_dump writes it
        # COPY data ends at \. and the next line is SQL again
        ("COPY t (a) FROM stdin;\n\\N\n\\.\n\\! id\n", 4, "\\!"),
        # a COPY inside a string or a function body starts no data block
        ("SELECT '\nCOPY t (a) FROM stdin;\n';\n\\! id\n\\.\n", 4, "\\!"),
        ("DO $$\nCOPY t (a) FROM stdin;\n$$;\n\\! id\n\\.\n", 4, "\\!"),
        ("/*\nCOPY t (a) FROM stdin;\n*/\n\\! id\n\\.\n", 4, "\\!"),
    ],
)
def test_every_meta_command_is_refused_naming_its_line(
    script: str, line: int, command: str
) -> None:
    verdict = assess_psql_script(script.splitlines(keepends=True))
    assert not verdict.ok
    assert (verdict.line, verdict.command) == (line, command)
    assert verdict.reason.startswith(f"line {line} holds the psql meta-command {command!r}")


def test_a_backslash_before_a_quote_in_a_plain_string_is_refused_not_guessed() -> None:
    verdict = assess_psql_script(["SELECT 'a\\'; \\! id --';\n"])
    assert not verdict.ok and verdict.line == 1
    assert "standard_conforming_strings" in verdict.reason


def test_sql_after_a_copy_statement_on_its_line_is_refused() -> None:
    verdict = assess_psql_script(["COPY t (a) FROM stdin; SELECT 1;\n", "\\.\n"])
    assert not verdict.ok and verdict.line == 1
    assert "goes on after a COPY ... FROM stdin;" in verdict.reason
