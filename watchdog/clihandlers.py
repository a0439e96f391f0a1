"""What each `watchdog` subcommand does once its arguments are parsed.

`watchdog.cli` builds the parser and points every subcommand at one function
here; each takes the parsed arguments and returns the exit code (0 success,
1 unhealthy or failed, 2 bad input). The heavy wiring (daemon, API, backends)
lives in `watchdog.commands` and is imported inside each handler, so that a
quick command such as `validate` or `token` does not load the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from watchdog.commands.journalfile import existing_journal
from watchdog.logs import configure_logging
from watchdog.policy.scaling import compress_time
from watchdog.policy.schema import Policy
from watchdog.policy.statusview import judge_status
from watchdog.policyfile import PolicyError, load_policy
from watchdog.scrub import register_startup_secrets
from watchdog.settings import Settings
from watchdog.store import render
from watchdog.store.glancefacts import seen_of
from watchdog.store.journal import open_journal


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings from the environment, with what the command line gave overriding it."""
    overrides = {k: v for k in ("state", "listen", "time_scale") if (v := getattr(args, k, None))}
    return Settings(**overrides)


def load_scaled(path: str, settings: Settings) -> Policy:
    """The policy with its durations divided by `--time-scale` (drills)."""
    return compress_time(load_registered(path), settings.time_scale)


def load_registered(path: str) -> Policy:
    """The policy, its secrets (a broker or Redis password) registered with the scrubber."""
    policy = load_policy(path)
    register_startup_secrets(policy)
    return policy


def load_guarding(path: str, time_scale: float = 1.0) -> Policy:
    """The policy of a command that reads the guarded stack (`run`, `check`): with no
    WATCHDOG_COMPOSE_PROJECT, a daemon in a container guards its own Compose project."""
    from watchdog.commands.runner import docker_factory, docker_host
    from watchdog.probes.composeproject import guarded_environment

    environ = guarded_environment(os.environ, docker_factory(docker_host()))
    policy = load_policy(path, environ)
    register_startup_secrets(policy)
    return compress_time(policy, time_scale)


def validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            policy = load_registered(path)
        except PolicyError as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        print(
            f"{path}: ok ({len(policy.signals)} signals, {len(policy.rules)} rules, "
            f"{len(policy.scenarios)} scenarios)"
        )
        people = args.people or os.environ.get("WATCHDOG_PEOPLE")
        if people:
            for warning in quorum_warnings(policy, people):
                print(f"{path}: warning: {warning}")
    return 2 if failed else 0


def quorum_warnings(policy: Policy, people_file: str) -> list[str]:
    """What the people file cannot approve under this policy (validate and start-up say it)."""
    from watchdog.people import People
    from watchdog.policy.quorums import unmeetable_quorums

    path = Path(people_file)
    if not path.exists():
        return [f"no people file at {path}: every plan that needs approval waits in vain"]
    return list(unmeetable_quorums(policy.authority, People(path, policy.roles).holders()))


def run(args: argparse.Namespace) -> int:
    from watchdog.commands.daemonkeys import refuse_weak_keys
    from watchdog.commands.serving import serve

    settings = settings_for(args)
    refuse_weak_keys(settings)
    configure_logging(settings.log_format, settings.log_level)
    from watchdog.policymarks import policy_places

    policy = load_guarding(args.policy, settings.time_scale)
    places = policy_places(args.policy, policy)
    shadow = (  # validated as the live one is: a bad file ends the start, naming it
        (args.shadow_policy, load_guarding(args.shadow_policy, settings.time_scale))
        if getattr(args, "shadow_policy", None) else None
    )
    return asyncio.run(
        serve(policy, settings, dry_run=args.dry_run, places=places, shadow=shadow)
    )


def check(args: argparse.Namespace) -> int:
    from watchdog.commands.check import render_rows, run_check

    rows = asyncio.run(run_check(load_guarding(args.policy), settings_for(args)))
    print(render_rows(rows))
    return 1 if any(r.status == "FAIL" for r in rows) else 0


def rollback(args: argparse.Namespace) -> int:
    from watchdog.commands.configcmd import undo_change
    from watchdog.commands.manual import manual_database_rollback, manual_rollback

    settings = settings_for(args)
    policy = load_scaled(args.policy, settings)
    if args.full:
        return _full(args, policy, settings, stop_only=False)
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


def emergency_stop(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    return _full(args, load_scaled(args.policy, settings), settings, stop_only=True)


def _full(args: argparse.Namespace, policy: Policy, settings: Settings, *, stop_only: bool) -> int:
    from watchdog.commands.fullrollback import full_rollback

    code: int = asyncio.run(
        full_rollback(
            policy, settings, stop_only=stop_only, force=args.force, yes=args.yes,
            dry_run=args.dry_run,
        )
    )
    return code


def config(args: argparse.Namespace) -> int:
    from watchdog.commands.configcmd import diff_text, snapshots_text

    settings = settings_for(args)
    policy = load_registered(args.policy)
    tables = [args.table] if args.table else policy.last_good.tables
    if args.action == "snapshots":
        journal = open_journal(existing_journal(settings))
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


def incidents(args: argparse.Namespace) -> int:
    if args.action == "close":
        return close(args)
    journal = open_journal(existing_journal(settings_for(args)))
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
                    now=time.time(),
                )
            )
        else:
            records = journal.list_incidents(limit=100, include_closed=not args.open)
            print(judge_status(journal.status_facts(), time.time()).short() + "\n")
            seen = {r.id: seen_of(journal.findings(r.id), r.reason) for r in records}
            print(render.incidents_table(records, time.time(), seen))
    finally:
        journal.close()
    return 0


def close(args: argparse.Namespace) -> int:
    from watchdog.commands.approvecmd import people_path
    from watchdog.commands.closecmd import close_command
    from watchdog.engine.closing import DEFAULT_CLOSE_ROLES

    settings = settings_for(args)
    policy = load_registered(args.policy) if args.policy else None
    close_roles = policy.close_roles if policy is not None else DEFAULT_CLOSE_ROLES
    return close_command(
        incident_id=args.id,
        person_name=args.person,
        comment=args.comment,
        state=existing_journal(settings),
        people_file=people_path(args.people, settings.people),
        close_roles=close_roles,
        followup_items=policy.followups if policy is not None else None,
    )


def followups(args: argparse.Namespace) -> int:
    from watchdog.commands.followupscmd import done_command, list_command

    settings = settings_for(args)
    people_file = Path(args.people) if args.people else settings.people
    if args.action == "done":
        return done_command(
            state=existing_journal(settings),
            followup_id=args.id,
            person_name=args.person,
            people_file=people_file,
        )
    return list_command(
        state=existing_journal(settings), include_done=args.all, people_file=people_file
    )


def init(args: argparse.Namespace) -> int:
    from watchdog.commands.initcmd import run_init
    from watchdog.commands.runner import docker_factory, docker_host

    print(run_init(docker_factory(docker_host()), args.compose_project, args.template), end="")
    return 0


def explain(args: argparse.Namespace) -> int:
    from watchdog.commands.explaincmd import explain_command

    settings = settings_for(args)
    return explain_command(
        existing_journal(settings), args.id, args.policy, settings.time_scale
    )


def replay(args: argparse.Namespace) -> int:
    from watchdog.commands.replaycmd import replay_command

    return replay_command(
        args.journal, args.policy, baseline_file=args.baseline, since=args.since,
        until=args.until, time_scale=args.time_scale,
    )


def report(args: argparse.Namespace) -> int:
    from watchdog.commands.followupscmd import report_command

    settings = settings_for(args)
    return report_command(
        state=existing_journal(settings),
        incident_id=args.id,
        out=args.out,
        people_file=Path(args.people) if args.people else settings.people,
    )


def flagger(value: str) -> object:
    def handler(args: argparse.Namespace) -> int:
        import getpass

        who = args.person or getpass.getuser()
        journal = open_journal(existing_journal(settings_for(args)))
        try:
            journal.set_paused(value == "1", by=who, at=time.time())
        finally:
            journal.close()
        print(f"automatic actions {'paused' if value == '1' else 'resumed'} by {who}")
        return 0

    return handler


def status(args: argparse.Namespace) -> int:
    from watchdog.commands.statuscmd import status_command

    return status_command(existing_journal(settings_for(args)), as_json=args.json)


def token(args: argparse.Namespace) -> int:
    from watchdog.keys import new_key

    print(new_key())
    return 0


def drill(args: argparse.Namespace) -> int:
    from watchdog.commands.drillcmd import drill_command

    return drill_command(
        settings_for(args), load_registered(args.policy), args.policy, args.scenario,
        out=Path(args.out) if args.out else None,
        metrics_file=Path(args.metrics_file) if args.metrics_file else None,
    )


def demo(args: argparse.Namespace) -> int:
    from watchdog.demo import run_demo

    return run_demo(keep=args.keep)


def sandbox(args: argparse.Namespace) -> int:
    import tempfile

    from watchdog.demo import sandbox_settings
    from watchdog.sandbox.controlapi import run_up

    state = Path(args.state_dir or tempfile.mkdtemp(prefix="watchdog-sandbox-")).resolve()
    env_file: Path | None = args.env_file

    def write_settings(control_url: str, urls: dict[str, str]) -> None:
        if env_file is None:
            return
        settings = sandbox_settings(control_url, urls, state, args.time_scale)
        written = env_file.with_name(env_file.name + ".tmp")  # whole, or not there at all
        written.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
        written.replace(env_file)
        print(f"settings for `watchdog run --policy policies/songnodes.yaml`: {env_file} "
              f"(set -a; . {env_file}; set +a)", file=sys.stderr, flush=True)

    code: int = run_up(args.port, state, write_settings)
    return code


def decider(decision: str) -> object:
    def handler(args: argparse.Namespace) -> int:
        from watchdog.commands.approvecmd import decide_command, people_path

        settings = settings_for(args)
        path = people_path(args.people, settings.people)
        return decide_command(args, existing_journal(settings), path, decision)

    return handler


def people(args: argparse.Namespace) -> int:
    from watchdog.commands.approvecmd import people_command, people_path

    roles = load_registered(args.policy).roles if args.policy else None
    return people_command(args, people_path(args.people, Settings().people), roles)

