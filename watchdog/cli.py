"""The `watchdog` command: run, check, validate, rollback, config, incidents, followups, report,
pause, token, demo.

Commands that change what the daemon does (pause, resume) only write intent to
the journal; the running daemon reads it on its next tick, as a controller
reads a desired state. Exit codes: 0 success, 1 unhealthy or failed, 2 bad input.

This module is the entry point and the command line's grammar; what each
subcommand does is in `watchdog.clihandlers`, and the scrubbed standard streams
every command prints through are in `watchdog.scrubstream`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from watchdog import clihandlers as handle
from watchdog.policyfile import PolicyError
from watchdog.scrub import register_startup_secrets, scrub_text
from watchdog.scrubstream import scrubbed_output
from watchdog.settings import Settings

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
            code: int = args.handler(args)
        except PolicyError as error:
            print(error, file=sys.stderr)
            return 2
        except (ValueError, KeyError) as error:
            print(f"watchdog {args.command}: {scrub_text(str(error))}", file=sys.stderr)
            return 2
        return code


def _register_secrets(args: argparse.Namespace) -> None:
    """The environment's secrets and the settings' (a --state URL typed with a password)."""
    try:
        settings: Settings | None = handle.settings_for(args)
    except ValidationError:
        settings = None  # the command reports the bad setting itself, scrubbed
    register_startup_secrets(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchdog", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")

    def command(name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("validate", "check policy files; exit 2 naming every problem", handle.validate)
    p.add_argument("files", nargs="+")

    p = command("run", "run the daemon until SIGTERM", handle.run)
    p.add_argument("--policy", required=True)
    p.add_argument("--state", help="journal path or sqlite:/// URL (WATCHDOG_STATE)")
    p.add_argument("--listen", help="host:port for the API (WATCHDOG_LISTEN)")
    p.add_argument("--dry-run", action="store_true", help="journal and print steps, touch nothing")
    p.add_argument("--time-scale", type=float, help="divide policy durations by this (drills)")

    p = command(
        "check", "probe every target once; exit 0 when all healthy, 1 otherwise", handle.check
    )
    p.add_argument("--policy", required=True)

    p = command(
        "rollback",
        "by hand, journaled: restart or revert a service, restore the database, or undo a "
        "provider disable",
        handle.rollback,
    )
    p.add_argument("--policy", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--service", help="the Compose service to restart (or --to-last-good)")
    what.add_argument(
        "--database", action="store_true", help="scenario 2: restore a backup, migrations down"
    )
    what.add_argument(
        "--undo", type=int, metavar="INCIDENT", help="put back the rows a provider disable changed"
    )
    p.add_argument("--to-last-good", action="store_true", help="revert to the last good image")
    p.add_argument("--backup", help="with --database: this backup file instead of the newest")
    p.add_argument("--target-version", help="with --database: roll migrations back to this one")
    p.add_argument(
        "--force", action="store_true", help="with --undo: also rows someone changed since"
    )
    p.add_argument("--dry-run", action="store_true", help="journal and print, touch nothing")
    p.add_argument("--state", help="journal path or sqlite:/// URL")
    p.add_argument("--time-scale", type=float, help="divide policy durations by this (drills)")

    p = command(
        "config",
        "configuration tables: `config snapshots` lists the last known good versions; "
        "`config diff [SNAPSHOT]` shows how the live table differs",
        handle.config,
    )
    p.add_argument("action", choices=["snapshots", "diff"])
    p.add_argument("snapshot", nargs="?", type=int, help="snapshot ID (default: the newest)")
    p.add_argument("--policy", required=True)
    p.add_argument("--table", help="default: the policy's first last_good table")
    p.add_argument("--key", help="the column that identifies rows (default: found)")
    p.add_argument("--state", help="journal path or sqlite:/// URL")

    p = command(
        "incidents",
        "list incidents, `incidents show ID` for the timeline, or `incidents close ID --as NAME "
        "--comment TEXT` to end one by hand (exit 0 closed, 1 refused, 2 bad input)",
        handle.incidents,
    )
    p.add_argument("action", nargs="?", choices=["list", "show", "close"], default="list")
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--state", help="journal path or sqlite:/// URL")
    p.add_argument("--all", action="store_true", help="include closed incidents (default)")
    p.add_argument("--open", action="store_true", help="only open incidents")
    p.add_argument("--as", dest="person", metavar="NAME", help="close: who closes it")
    p.add_argument("--comment", help="close: why (required)")
    p.add_argument("--people", help="close: the people file (WATCHDOG_PEOPLE)")
    p.add_argument("--policy", help="close: its close_roles (default: oncall, lead)")

    p = command(
        "followups",
        "the runbook's 24-hour and 1-week items owed after a rollback: open ones, overdue first "
        "(--all: done too); `followups done ID --as NAME` closes one",
        handle.followups,
    )
    p.add_argument("action", nargs="?", choices=["list", "done"], default="list")
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="include follow-ups already done")
    p.add_argument("--as", dest="person", metavar="NAME", help="done: who did it")
    p.add_argument("--state", help="journal path or sqlite:/// URL")
    p.add_argument("--people", help="the people file (WATCHDOG_PEOPLE): owners' names, --as")

    p = command(
        "report", "write an incident's report as Markdown (stdout, or --out FILE)", handle.report
    )
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--out", metavar="FILE", help="write here instead of printing")
    p.add_argument("--state", help="journal path or sqlite:/// URL")
    p.add_argument("--people", help="the people file (WATCHDOG_PEOPLE): owners' names")

    for name, value, words in (("pause", "1", "stop"), ("resume", "0", "allow")):
        p = command(name, f"{words} all automatic actions (the kill switch)", handle.flagger(value))
        p.add_argument("--state", help="journal path or sqlite:/// URL")

    p = command(
        "token",
        "`token new` prints a fresh key for WATCHDOG_ALERTMANAGER_TOKEN or WATCHDOG_READ_TOKEN",
        handle.token,
    )
    p.add_argument("action", choices=["new"])

    p = command("demo", "run the daemon on the sandbox and inject five faults", handle.demo)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")

    p = command("sandbox", "run the sandbox stack until interrupted", handle.sandbox)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state-dir", default=None)

    for name in ("approve", "reject"):
        p = command(
            name,
            f"{name} an incident's plan as a person in the people file "
            "(exit 0 recorded, 1 refused, 2 bad input)",
            handle.decider(name),
        )
        p.add_argument("id", type=int, metavar="ID")
        p.add_argument("--as", dest="person", required=True, metavar="NAME")
        p.add_argument("--comment", required=name == "reject", help="why (required to reject)")
        p.add_argument("--state", help="journal path or sqlite:/// URL")
        p.add_argument("--people", help="the people file (WATCHDOG_PEOPLE)")

    p = command(
        "people",
        "`people add NAME --role R` writes a person with a new token (printed once, stored "
        "hashed); `people list`",
        handle.people,
    )
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", action="append", help="oncall, lead or team (repeatable)")
    p.add_argument("--people", help="the people file (WATCHDOG_PEOPLE)")
    p.add_argument("--policy", help="check roles against this policy's (default: the usual)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
