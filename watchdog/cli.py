"""The `watchdog` command: run, check, validate, rollback, config, incidents, pause, token, demo.

Commands that change what the daemon does (pause, resume) only write intent to
the journal; the running daemon reads it on its next tick, as a controller
reads a desired state. Exit codes: 0 success, 1 unhealthy or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TextIO

from pydantic import ValidationError

from watchdog.logs import configure_logging
from watchdog.policy.scaling import compress_time
from watchdog.policy.schema import Policy
from watchdog.policyfile import PolicyError, load_policy
from watchdog.scrub import register_startup_secrets, scrub_text
from watchdog.settings import Settings
from watchdog.store import render
from watchdog.store.journal import open_journal
from watchdog.store.records import PAUSED_FLAG

#: Files the process writes (the journal, its WAL, backups, CSVs) are its owner's only.
PRIVATE_UMASK = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    """Every word the command prints, errors and tracebacks included, goes through the
    process's scrubber (watchdog/scrub.py); secrets are registered before anything runs."""
    os.umask(PRIVATE_UMASK)
    with _scrubbed_output():
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


class _Scrubbing(io.TextIOBase):
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
def _scrubbed_output() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Scrubbing(out), _Scrubbing(err)
    # An error nobody caught is printed by the interpreter after `main` returns: its
    # traceback goes through the scrubber too.
    sys.excepthook = _scrubbing_excepthook
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _scrubbing_excepthook(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    sys.stderr.write(scrub_text("".join(traceback.format_exception(kind, error, tb))))


def _register_secrets(args: argparse.Namespace) -> None:
    """The environment's secrets and the settings' (a --state URL typed with a password)."""
    try:
        settings: Settings | None = _settings(args)
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

    p = command("validate", "check policy files; exit 2 naming every problem", _validate)
    p.add_argument("files", nargs="+")

    p = command("run", "run the daemon until SIGTERM", _run)
    p.add_argument("--policy", required=True)
    p.add_argument("--state", help="journal path or sqlite:/// URL (WATCHDOG_STATE)")
    p.add_argument("--listen", help="host:port for the API (WATCHDOG_LISTEN)")
    p.add_argument("--dry-run", action="store_true", help="journal and print steps, touch nothing")
    p.add_argument("--time-scale", type=float, help="divide policy durations by this (drills)")

    p = command("check", "probe every target once; exit 0 when all healthy, 1 otherwise", _check)
    p.add_argument("--policy", required=True)

    p = command(
        "rollback",
        "by hand, journaled: restart or revert a service, restore the database, or undo a "
        "provider disable",
        _rollback,
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
        _config,
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
        _incidents,
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

    for name, value, words in (("pause", "1", "stop"), ("resume", "0", "allow")):
        p = command(name, f"{words} all automatic actions (the kill switch)", _flagger(value))
        p.add_argument("--state", help="journal path or sqlite:/// URL")

    p = command(
        "token",
        "`token new` prints a fresh key for WATCHDOG_ALERTMANAGER_TOKEN or WATCHDOG_READ_TOKEN",
        _token,
    )
    p.add_argument("action", choices=["new"])

    p = command("demo", "run the daemon on the sandbox and inject five faults", _demo)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")

    p = command("sandbox", "run the sandbox stack until interrupted", _sandbox)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state-dir", default=None)

    for name in ("approve", "reject"):
        p = command(
            name,
            f"{name} an incident's plan as a person in the people file "
            "(exit 0 recorded, 1 refused, 2 bad input)",
            _decider(name),
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
        _people,
    )
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", action="append", help="oncall, lead or team (repeatable)")
    p.add_argument("--people", help="the people file (WATCHDOG_PEOPLE)")
    p.add_argument("--policy", help="check roles against this policy's (default: the usual)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("state", "listen", "time_scale") if (v := getattr(args, k, None))}
    return Settings(**overrides)


def load_scaled(path: str, settings: Settings) -> Policy:
    return compress_time(_load_policy(path), settings.time_scale)


def _load_policy(path: str) -> Policy:
    """The policy, its secrets (a broker or Redis password) registered with the scrubber."""
    policy = load_policy(path)
    register_startup_secrets(policy)
    return policy


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            policy = _load_policy(path)
        except PolicyError as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        print(
            f"{path}: ok ({len(policy.signals)} signals, {len(policy.rules)} rules, "
            f"{len(policy.scenarios)} scenarios)"
        )
    return 2 if failed else 0


def _run(args: argparse.Namespace) -> int:
    from watchdog.commands.runner import refuse_weak_keys, serve

    settings = _settings(args)
    refuse_weak_keys(settings)
    configure_logging(settings.log_format, settings.log_level)
    policy = load_scaled(args.policy, settings)
    return asyncio.run(serve(policy, settings, dry_run=args.dry_run))


def _check(args: argparse.Namespace) -> int:
    from watchdog.commands.check import render_rows, run_check

    rows = asyncio.run(run_check(_load_policy(args.policy), _settings(args)))
    print(render_rows(rows))
    return 1 if any(r.status == "FAIL" for r in rows) else 0


def _rollback(args: argparse.Namespace) -> int:
    from watchdog.commands.configcmd import undo_change
    from watchdog.commands.manual import manual_database_rollback, manual_rollback

    settings = _settings(args)
    policy = load_scaled(args.policy, settings)
    if args.undo is not None:
        undone: int = asyncio.run(
            undo_change(policy, settings, incident=args.undo, force=args.force)
        )
        return undone
    if args.database:
        restored: int = asyncio.run(
            manual_database_rollback(
                policy,
                settings,
                backup=args.backup,
                target_version=args.target_version,
                dry_run=args.dry_run,
            )
        )
        return restored
    code: int = asyncio.run(
        manual_rollback(
            policy,
            settings,
            service=args.service,
            to_last_good=args.to_last_good,
            dry_run=args.dry_run,
        )
    )
    return code


def _config(args: argparse.Namespace) -> int:
    from watchdog.commands.configcmd import diff_text, snapshots_text

    settings = _settings(args)
    policy = _load_policy(args.policy)
    tables = [args.table] if args.table else policy.last_good.tables
    if args.action == "snapshots":
        journal = open_journal(settings.state)
        try:
            print(snapshots_text(journal, tables))
        finally:
            journal.close()
        return 0
    print(
        asyncio.run(
            diff_text(policy, settings, table=tables[0], snapshot_id=args.snapshot, key=args.key)
        )
    )
    return 0


def _incidents(args: argparse.Namespace) -> int:
    if args.action == "close":
        return _close(args)
    journal = open_journal(_settings(args).state)
    try:
        if args.action == "show":
            if args.id is None:
                raise ValueError(
                    "`incidents show` needs an incident ID, e.g. watchdog incidents show 3"
                )
            record = journal.incident(args.id)
            print(
                render.incident_report(
                    record,
                    events=journal.timeline(record.id),
                    steps=journal.steps(record.id),
                    plan=journal.plan(record.id),
                    findings=journal.findings(record.id),
                    approvals=journal.approvals(record.id),
                )
            )
        else:
            records = journal.list_incidents(limit=100, include_closed=not args.open)
            print(render.incidents_table(records, time.time()))
    finally:
        journal.close()
    return 0


def _close(args: argparse.Namespace) -> int:
    from watchdog.commands.approvecmd import people_path
    from watchdog.commands.closecmd import close_command
    from watchdog.engine.closing import DEFAULT_CLOSE_ROLES

    settings = _settings(args)
    close_roles = _load_policy(args.policy).close_roles if args.policy else DEFAULT_CLOSE_ROLES
    return close_command(
        incident_id=args.id,
        person_name=args.person,
        comment=args.comment,
        state=settings.state,
        people_file=people_path(args.people, settings.people),
        close_roles=close_roles,
    )


def _flagger(value: str) -> object:
    def handler(args: argparse.Namespace) -> int:
        journal = open_journal(_settings(args).state)
        try:
            journal.set_flag(PAUSED_FLAG, value, at=time.time())
        finally:
            journal.close()
        print("automatic actions paused" if value == "1" else "automatic actions resumed")
        return 0

    return handler


def _token(args: argparse.Namespace) -> int:
    from watchdog.keys import new_key

    print(new_key())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from watchdog.demo import run_demo

    return run_demo(keep=args.keep)


def _sandbox(args: argparse.Namespace) -> int:
    from watchdog.sandbox.__main__ import main as sandbox_main

    argv = ["up", "--port", str(args.port)]
    if args.state_dir:
        argv += ["--state-dir", args.state_dir]
    code: int = sandbox_main(argv)
    return code


def _decider(decision: str) -> object:
    def handler(args: argparse.Namespace) -> int:
        from watchdog.commands.approvecmd import decide_command, people_path

        settings = _settings(args)
        path = people_path(args.people, settings.people)
        return decide_command(args, settings.state, path, decision)

    return handler


def _people(args: argparse.Namespace) -> int:
    from watchdog.commands.approvecmd import people_command, people_path

    roles = _load_policy(args.policy).roles if args.policy else None
    return people_command(args, people_path(args.people, Settings().people), roles)


if __name__ == "__main__":
    sys.exit(main())
