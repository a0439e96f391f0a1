"""Whether a SQL script may be fed to psql: no psql meta-command anywhere in it.

A backup is restored by piping it into psql, and psql runs a backslash command
wherever it finds one outside a quoted string or comment: at the start of a line
(`\\! rm -rf /`, `\\o |cmd`) or after SQL on the same line (`SELECT 1; \\! id`).
The only backslashes a plain pg_dump writes outside quotes are COPY data (which
psql passes to the server as is), the COPY terminator `\\.`, and `\\restrict KEY`
/ `\\unrestrict KEY` (pg_dump 13.22/14.19/15.14/16.10/17.6 and later), which put psql
in a mode where it refuses every other meta-command: those two are allowed,
exactly as pg_dump writes them; every other backslash is refused with its line.

The scan follows psql's own lexer closely enough never to see less than psql does:
quoted strings ('...', E'...', "..."), dollar quotes, -- and /* */ comments, and
COPY ... FROM stdin blocks, entered only when a top-level statement that is a
COPY FROM STDIN ends on its line. Where psql's reading would depend on a setting
(a backslash before a quote in a '...' string, under standard_conforming_strings),
the script is refused rather than guessed. Pure: lines in, a verdict out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_RESTRICT = re.compile(r"^\\(un)?restrict [A-Za-z0-9]+$")
_COPY_STDIN = re.compile(r"^COPY\b.*\bFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$")
_COMMAND = re.compile(r"\\[^\s\\]*")


@dataclass(frozen=True, slots=True)
class ScriptVerdict:
    """May the script go to psql; if not, the line (1-based) and the command found."""

    ok: bool
    reason: str
    line: int | None = None
    command: str | None = None


class PsqlScan:
    """The scan, one line at a time, for a stream too big to hold (a restore's feed)."""

    def __init__(self) -> None:
        self.number = 0
        self._copy = False
        self._quote: str | None = None  # "'", "E'", '"', or a dollar tag such as "$body$"
        self._comment = 0  # nesting depth of /* */
        self._statement: list[str] = []  # the top-level words of the statement so far

    def feed(self, line: str) -> ScriptVerdict | None:
        """None while the script may go on; a refusal naming this line otherwise."""
        self.number += 1
        text = line.rstrip("\r\n")
        if self._copy:
            if text == "\\.":
                self._copy = False
            return None
        if self._quote is None and self._comment == 0 and _RESTRICT.match(text.strip()):
            return None
        return self._sql(text)

    def finish(self) -> ScriptVerdict:
        return ScriptVerdict(True, f"no psql meta-command in {self.number} line(s)")

    def _refuse(self, text: str, at: int, why: str = "") -> ScriptVerdict:
        match = _COMMAND.match(text, at)
        command = match.group(0) if match else text[at : at + 20]
        return ScriptVerdict(
            False,
            why
            or f"line {self.number} holds the psql meta-command {command!r}: only psql runs it, "
            "and a backup may not run psql commands",
            self.number,
            command,
        )

    def _sql(self, text: str) -> ScriptVerdict | None:
        i, n = 0, len(text)
        ended_copy = False
        while i < n:
            char = text[i]
            if ended_copy and not char.isspace():
                return self._refuse(
                    text, i, f"line {self.number} goes on after a COPY ... FROM stdin; "
                    f"({text[i : i + 20]!r}): psql would read it after the data",
                )
            if self._comment:
                if text.startswith("*/", i):
                    self._comment -= 1
                    i += 2
                elif text.startswith("/*", i):
                    self._comment += 1
                    i += 2
                else:
                    i += 1
                continue
            if self._quote is not None:
                i = self._in_quote(text, i)
                if i < 0:
                    return self._refuse(
                        text, -i - 1,
                        f"line {self.number} has a backslash before a quote in a '...' string: "
                        "where psql ends that string depends on standard_conforming_strings",
                    )
                continue
            if char == "\\":
                return self._refuse(text, i)
            if text.startswith("--", i):
                break
            if text.startswith("/*", i):
                self._comment = 1
                i += 2
                continue
            if char == "'":
                before = text[i - 1] if i else ""
                prior = text[i - 2] if i > 1 else ""
                escaped = before in "eE" and not (prior.isalnum() or prior in "_$")
                self._quote = "E'" if escaped else "'"
                i += 1
                continue
            if char == '"':
                self._quote = '"'
                i += 1
                continue
            if char == "$" and not (i and (text[i - 1].isalnum() or text[i - 1] in "_$")):
                tag = _DOLLAR_TAG.match(text, i)
                if tag is not None:
                    self._quote = tag.group(0)
                    self._statement.append(" $$ ")
                    i = tag.end()
                    continue
            if char == ";":
                statement = "".join(self._statement).strip()
                self._statement = []
                if _COPY_STDIN.match(statement):
                    self._copy = ended_copy = True
                i += 1
                continue
            self._statement.append(char)
            i += 1
        if not self._quote and not self._comment:
            self._statement.append("\n")
        return None

    def _in_quote(self, text: str, i: int) -> int:
        """Past the quoted text from `i`; -(position + 1) for an ambiguous backslash."""
        quote = self._quote or ""
        if quote.startswith("$"):
            end = text.find(quote, i)
            if end < 0:
                return len(text)
            self._quote = None
            return end + len(quote)
        close = '"' if quote == '"' else "'"
        while i < len(text):
            char = text[i]
            if char == "\\" and quote == "E'":
                i += 2
                continue
            if char == "\\" and quote == "'" and text.startswith("\\'", i):
                return -(i + 1)
            if char == close:
                if text.startswith(close * 2, i):
                    i += 2
                    continue
                self._quote = None
                return i + 1
            i += 1
        return i


def assess_psql_script(lines: Iterable[str]) -> ScriptVerdict:
    """The first psql meta-command in `lines` (outside quotes, comments, COPY data), or ok."""
    scan = PsqlScan()
    for line in lines:
        refusal = scan.feed(line)
        if refusal is not None:
            return refusal
    return scan.finish()
