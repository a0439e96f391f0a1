"""The `watchdog` command's entry point: parse, run the handler, end every mistake in one line.

Commands that change what the daemon does (pause, resume) only write intent to
the journal; the running daemon reads it on its next tick, as a controller
reads a desired state. Exit codes: 0 success, 1 unhealthy or failed, 2 bad input.

This module is the entry point; the grammar (commands, options, help, examples) is
in `watchdog.cligrammar`, what each subcommand does in `watchdog.clihandlers`, and
the scrubbed standard streams every command prints through in `watchdog.scrubstream`.

A mistake ends in one line on stderr and exit 2: a bad setting names its variable,
what was found and what was expected (never pydantic's dump); an unknown id is said
plainly (a KeyError's message, not its repr). A reader that closes the pipe early
(`watchdog incidents | head`) ends the command quietly, with exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from watchdog import cligrammar
from watchdog import clihandlers as handle
from watchdog.policyfile import PolicyError
from watchdog.scrub import register_startup_secrets, scrub_text
from watchdog.scrubstream import scrubbed_output
from watchdog.settings import Settings, settings_problem
from watchdog.store.pg_base import JournalUnavailable
from watchdog.store.sqlite_base import JournalLocked

#: Files the process writes (the journal, its WAL, backups, CSVs) are its owner's only.
PRIVATE_UMASK = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    """Every word the command prints, errors and tracebacks included, goes through the
    process's scrubber (watchdog/scrub.py); secrets are registered before anything runs."""
    os.umask(PRIVATE_UMASK)
    with scrubbed_output():
        parser = _parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        _register_secrets(args)
        try:
            return _handled(args)
        except BrokenPipeError:
            _quiet_stdout()
            return 0


def _handled(args: argparse.Namespace) -> int:
    """The handler's exit code, or 2 with the mistake in one line."""
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handling, not at exit
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 2
    except ValidationError as error:
        _say(args, settings_problem(error))
        return 2
    except KeyError as error:
        _say(args, str(error.args[0]) if error.args else "not found")
        return 2
    except (ValueError, JournalLocked, JournalUnavailable) as error:
        _say(args, str(error))
        return 2
    return code


def _say(args: argparse.Namespace, message: str) -> None:
    print(f"watchdog {args.command}: {scrub_text(message)}", file=sys.stderr)


def _quiet_stdout() -> None:
    """The reader has gone: point stdout at /dev/null so the interpreter's last flush at
    exit finds nowhere to fail (Python's own advice for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _register_secrets(args: argparse.Namespace) -> None:
    """The environment's secrets and the settings' (a --state URL typed with a password)."""
    try:
        settings: Settings | None = handle.settings_for(args)
    except ValidationError:
        settings = None  # the command reports the bad setting itself, scrubbed
    register_startup_secrets(settings)


def _parser() -> argparse.ArgumentParser:
    return cligrammar.parser()


if __name__ == "__main__":
    sys.exit(main())
