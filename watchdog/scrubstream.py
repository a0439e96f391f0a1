"""The process's standard streams through the scrubber (watchdog/scrub.py).

The CLI's `main` wraps stdout and stderr for the length of a command, and sets
an excepthook so a traceback nobody caught is scrubbed too: every word the
command prints reaches the terminal only after `scrub_text`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

from watchdog.scrub import scrub_text


class Scrubbing(io.TextIOBase):
    """A text stream that scrubs what it is given, then writes it to the real one."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub_text(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


@contextlib.contextmanager
def scrubbed_output() -> Iterator[None]:
    """stdout and stderr scrubbed until the block ends; uncaught errors scrubbed after it."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Scrubbing(out), Scrubbing(err)
    # An error nobody caught is printed by the interpreter after `main` returns: its
    # traceback goes through the scrubber too.
    sys.excepthook = scrubbing_excepthook
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def scrubbing_excepthook(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """The interpreter's report of an error nobody caught, scrubbed."""
    sys.stderr.write(scrub_text("".join(traceback.format_exception(kind, error, tb))))
