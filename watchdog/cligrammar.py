"""The `watchdog` command line's grammar: every command, its options, help and examples.

The top-level help lists the commands by what an on-call engineer is doing (look,
act, approve, set up), each group generated from `GROUPS`, so a command added to the
parser but to no group fails the help test rather than vanishing from `--help`. Every
option has help text and every command one or two examples (its epilog): at 3 a.m. the
help is read instead of the README. What each command does is in `watchdog.clihandlers`.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path

from watchdog import clihandlers as handle

SUMMARY = "watchdog: an ops runbook as code, beside a Docker Compose stack"

#: (group, commands) in the order the top-level help shows them.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("look (what is happening)",
     ("status", "incidents", "explain", "replay", "followups", "report", "check", "config")),
    ("act (change what happens)",
     ("pause", "resume", "rollback", "emergency-stop", "drill")),
    ("approve (decide on a plan that waits)", ("approve", "reject")),
    ("set up", ("run", "validate", "init", "people", "token", "demo", "sandbox")),
)

STATE = "the journal: a path, sqlite:/// or postgresql:// URL (WATCHDOG_STATE; default: " \
    "journal.db in WATCHDOG_STATE_DIR, ~/.local/state/watchdog)"
PEOPLE = "the people file of names, roles and hashed tokens (WATCHDOG_PEOPLE)"
POLICY = "the policy file (YAML), e.g. policies/compose-generic.yaml"
FULL = (
    "scenario 5: the policy's prepared plan (snapshot, emergency stop, disk and memory, "
    "rebuild from last good, database restore, health check); asks you to type the stack's "
    "name, then each risky step's number"
)
YES = "confirm without asking: refused (exit 2) when a step is risky or destructive"
SCALE = "divide the policy's durations by this, for drills (WATCHDOG_TIME_SCALE)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="watchdog",
        usage="watchdog [-h] COMMAND ...",
        description=SUMMARY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 success, 1 unhealthy, failed or refused, 2 bad input\n"
        "`watchdog COMMAND --help` shows a command's options and examples",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    summaries: dict[str, str] = {}

    def command(
        name: str, help_text: str, handler: Callable[..., object] | object, *examples: str
    ) -> argparse.ArgumentParser:
        summaries[name] = help_text
        p = sub.add_parser(
            name,
            description=textwrap.fill(help_text, 79),
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    p = command("validate", "check policy files; exit 2 naming every problem", handle.validate,
                "watchdog validate policies/compose-generic.yaml",
                "watchdog validate policies/*.yaml",
                "watchdog validate policies/songnodes.yaml --people /state/people.yaml")
    p.add_argument("files", nargs="+", metavar="FILE", help="policy files to check")
    p.add_argument("--people", help=PEOPLE + ": warn of quorums its people cannot meet")

    p = command("init", "print a starting policy for a Compose stack from what its containers' "
                "labels and images say (the generic policy, pinned to that project)", handle.init,
                "watchdog init --compose-project shop > policies/shop.yaml",
                "DOCKER_HOST=unix:///run/docker.sock watchdog init --compose-project shop")
    p.add_argument("--compose-project", required=True, metavar="NAME",
                   help="the Compose project (its com.docker.compose.project label)")
    p.add_argument("--from", dest="template", metavar="FILE",
                   help="the policy to start from (default: policies/compose-generic.yaml)")

    p = command("run", "run the daemon until SIGTERM (creates the journal)", handle.run,
                "watchdog run --policy policies/compose-generic.yaml",
                "watchdog run --policy policies/songnodes.yaml --dry-run --listen 127.0.0.1:9095",
                "watchdog run --policy policies/songnodes.yaml --shadow-policy stricter.yaml")
    p.add_argument("--policy", required=True, help=POLICY)
    p.add_argument("--state", help=STATE)
    p.add_argument("--listen", help="host:port of the API and web page (WATCHDOG_LISTEN; "
                   "default 127.0.0.1:9095)")
    p.add_argument("--dry-run", action="store_true", help="journal and print steps, touch nothing")
    p.add_argument("--time-scale", type=float, help=SCALE)
    p.add_argument("--shadow-policy", metavar="FILE", help="a second policy evaluated beside "
                   "the live one on the same observations, acting on nothing and paging no "
                   "one; its would-be decisions are journaled as shadow, with their agreement")

    p = command("check", "probe every target once; exit 0 when all healthy, 1 otherwise",
                handle.check, "watchdog check --policy policies/compose-generic.yaml")
    p.add_argument("--policy", required=True, help=POLICY)

    p = command(
        "rollback",
        "by hand, journaled: restart or revert a service, restore the database, undo a "
        "provider disable, or (--full) scenario 5's whole prepared plan",
        handle.rollback,
        "watchdog rollback --policy policies/songnodes.yaml --service redis",
        "watchdog rollback --policy policies/songnodes.yaml --service api --to-last-good",
        "watchdog rollback --policy policies/songnodes.yaml --full",
    )
    p.add_argument("--policy", required=True, help=POLICY)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--service", help="the Compose service to restart (or --to-last-good)")
    what.add_argument(
        "--database", action="store_true", help="scenario 2: restore a backup, migrations down"
    )
    what.add_argument(
        "--undo", type=int, metavar="INCIDENT", help="put back the rows a provider disable changed"
    )
    what.add_argument("--full", action="store_true", help=FULL)
    p.add_argument("--to-last-good", action="store_true", help="revert to the last good image")
    p.add_argument("--backup", help="with --database: this backup file instead of the newest")
    p.add_argument("--target-version", help="with --database: roll migrations back to this one")
    p.add_argument(
        "--force", action="store_true",
        help="with --undo: also rows someone changed since; with --full: stop the stateful "
        "services too (last)",
    )
    p.add_argument("--yes", action="store_true", help=YES)
    p.add_argument("--dry-run", action="store_true", help="journal and print, touch nothing")
    p.add_argument("--state", help=STATE)
    p.add_argument("--time-scale", type=float, help=SCALE)

    p = command(
        "emergency-stop",
        "scenario 5 by hand: a forensic snapshot, then every service stopped tier by tier "
        "(stateful ones only with --force); asks for the stack's name first",
        handle.emergency_stop,
        "watchdog emergency-stop --policy policies/songnodes.yaml",
        "watchdog emergency-stop --policy policies/songnodes.yaml --force",
    )
    p.add_argument("--policy", required=True, help=POLICY)
    p.add_argument("--force", action="store_true", help="stop the stateful services too, last")
    p.add_argument("--yes", action="store_true", help=YES)
    p.add_argument("--dry-run", action="store_true", help="print the plan, ask and touch nothing")
    p.add_argument("--state", help=STATE)

    p = command(
        "config",
        "configuration tables: `config snapshots` lists the last known good versions; "
        "`config diff [SNAPSHOT]` shows how the live table differs",
        handle.config,
        "watchdog config snapshots --policy policies/songnodes.yaml",
        "watchdog config diff --policy policies/songnodes.yaml --table providers",
    )
    p.add_argument("action", choices=["snapshots", "diff"], help="list snapshots, or diff one")
    p.add_argument("snapshot", nargs="?", type=int, help="snapshot ID (default: the newest)")
    p.add_argument("--policy", required=True, help=POLICY)
    p.add_argument("--table", help="default: the policy's first last_good table")
    p.add_argument("--key", help="the column that identifies rows (default: found)")
    p.add_argument("--state", help=STATE)

    p = command(
        "incidents",
        "list incidents, `incidents show ID` for one, or `incidents close ID --as NAME "
        "--comment TEXT` to end one by hand (exit 0 closed, 1 refused, 2 bad input)",
        handle.incidents,
        "watchdog incidents --open",
        "watchdog incidents show 3",
    )
    p.add_argument("action", nargs="?", choices=["list", "show", "close"], default="list",
                   help="list (the default), show ID, or close ID")
    p.add_argument("id", nargs="?", type=int, help="the incident's number (show, close)")
    p.add_argument("--state", help=STATE)
    p.add_argument("--all", action="store_true", help="include closed incidents (default)")
    p.add_argument("--open", action="store_true", help="only open incidents")
    p.add_argument("--as", dest="person", metavar="NAME", help="close: who closes it")
    p.add_argument("--comment", help="close: why (required)")
    p.add_argument("--people", help=PEOPLE)
    p.add_argument("--policy", help="close: its close_roles (default: oncall, lead)")

    p = command(
        "followups",
        "the runbook's 24-hour and 1-week items owed after a rollback: open ones, overdue first "
        "(--all: done too); `followups done ID --as NAME` closes one",
        handle.followups,
        "watchdog followups",
        "watchdog followups done 4 --as alice",
    )
    p.add_argument("action", nargs="?", choices=["list", "done"], default="list",
                   help="list (the default), or done ID")
    p.add_argument("id", nargs="?", type=int, help="done: the follow-up's number")
    p.add_argument("--all", action="store_true", help="include follow-ups already done")
    p.add_argument("--as", dest="person", metavar="NAME", help="done: who did it")
    p.add_argument("--state", help=STATE)
    p.add_argument("--people", help=PEOPLE + ": owners' names, --as")

    p = command(
        "explain",
        "why an incident went as it did: observations, rule, finding, severity, authority, "
        "guards, plan, each step and its verification, each policy link with its file and "
        "line; then the rules on the same signals that did not fire, and why",
        handle.explain,
        "watchdog explain 3 --policy policies/songnodes.yaml",
        "watchdog explain 3 --state /state/journal.db",
    )
    p.add_argument("id", type=int, metavar="ID", help="the incident's number")
    p.add_argument("--policy", help=POLICY + " to cite and weigh near misses with "
                   "(without it: the journal alone)")
    p.add_argument("--state", help=STATE)
    p.add_argument("--time-scale", type=float, help=SCALE + ": the daemon's, to weigh `for`s")

    p = command(
        "replay",
        "run the journal's recorded observations through another policy in the decision core "
        "(no I/O) and print, incident by incident, where it decides otherwise than the policy "
        "the daemon ran: opened or not, severity, scenario, plan, authority, timing",
        handle.replay,
        "watchdog replay --journal /state/journal.db --policy stricter.yaml",
        "watchdog replay --journal journal.db --policy new.yaml --from 2026-12-04T00:00Z "
        "--to 2026-12-05T00:00Z",
    )
    p.add_argument("--journal", required=True, metavar="FILE|URL",
                   help="the journal that recorded the history: a path, sqlite:/// or "
                   "postgresql:// URL")
    p.add_argument("--policy", required=True, help=POLICY + ": the new policy to try")
    p.add_argument("--baseline", metavar="FILE", help="the policy to compare with (default: "
                   "the one the journal's daemon last ran, recorded at its start)")
    p.add_argument("--from", dest="since", metavar="T",
                   help="start: ISO 8601 (UTC unless a zone is given) or Unix seconds "
                   "(default: the first observation kept)")
    p.add_argument("--to", dest="until", metavar="T", help="end, likewise (default: the last)")
    p.add_argument("--time-scale", type=float, help=SCALE + ": applied to --policy and "
                   "--baseline")

    p = command("report", "write an incident's report as Markdown (stdout, or --out FILE)",
                handle.report, "watchdog report 3 --out incident-3.md")
    p.add_argument("id", type=int, metavar="ID", help="the incident's number")
    p.add_argument("--out", metavar="FILE", help="write here instead of printing")
    p.add_argument("--state", help=STATE)
    p.add_argument("--people", help=PEOPLE + ": owners' names")

    for name, value, words in (("pause", "1", "stop"), ("resume", "0", "allow")):
        p = command(name, f"{words} all automatic actions (the kill switch); the daemon reads "
                    "it on its next tick", handle.flagger(value), f"watchdog {name}",
                    f"watchdog {name} --as alice --state /state/journal.db")
        p.add_argument("--state", help=STATE)
        p.add_argument("--as", dest="person", metavar="NAME",
                       help="who, for the status strip (default: your login name)")

    p = command(
        "status",
        "live or dry-run, paused, pagers, policy and journal, from the journal without "
        "reaching the daemon (exit 0 heartbeat fresh, 1 stale or no daemon, 2 no journal)",
        handle.status,
        "watchdog status",
        "watchdog status --state /state/journal.db --json",
    )
    p.add_argument("--state", help=STATE)
    p.add_argument("--json", action="store_true", help="print the lines and facts as JSON")

    p = command(
        "token",
        "`token new` prints a fresh key for WATCHDOG_ALERTMANAGER_TOKEN or WATCHDOG_READ_TOKEN",
        handle.token,
        "watchdog token new",
    )
    p.add_argument("action", choices=["new"], help="new: print a fresh key")

    p = command(
        "drill",
        "rehearse one of the policy's drills: inject its fault into the sandbox or a stack "
        "marked stack.drill: true (never a live one: exit 2), follow the daemon through the "
        "journal, record and report the result (exit 0 passed, 1 failed and paged)",
        handle.drill,
        "watchdog drill q1-service --policy policies/staging.yaml",
        "watchdog drill q3-config --policy policies/staging.yaml --out drill.md",
    )
    p.add_argument("scenario", metavar="NAME", help="the drill (a key of drills.scenarios)")
    p.add_argument("--policy", required=True, help=POLICY)
    p.add_argument("--state", help=STATE + "; the daemon guarding the target writes it")
    p.add_argument("--time-scale", type=float, help=SCALE + ": the drill's timeout too")
    p.add_argument("--out", metavar="FILE", help="write the Markdown report here")
    p.add_argument("--metrics-file", metavar="FILE",
                   help="write the drill's metrics here (Prometheus textfile collector)")

    p = command("demo", "run the daemon on the sandbox and inject five faults", handle.demo,
                "watchdog demo", "watchdog demo --keep")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")

    p = command("sandbox", "run the sandbox stack until interrupted", handle.sandbox,
                "watchdog sandbox --port 18080",
                "watchdog sandbox --env-file sandbox.env &  set -a; . ./sandbox.env; set +a\n"
                "  watchdog run --policy policies/songnodes.yaml")
    p.add_argument("--port", type=int, default=0, help="its HTTP port (default: a free one)")
    p.add_argument("--state-dir", default=None, help="its folder (default: a temporary one)")
    p.add_argument("--env-file", type=Path, default=None,
                   help="write there the settings `watchdog run --policy "
                   "policies/songnodes.yaml` needs to guard it (journal in --state-dir), "
                   "once it is up")
    p.add_argument("--time-scale", type=float, default=10.0,
                   help="WATCHDOG_TIME_SCALE in --env-file (default 10, as the demo)")

    for name in ("approve", "reject"):
        p = command(
            name,
            f"{name} an incident's plan as a person in the people file "
            "(exit 0 recorded, 1 refused, 2 bad input)",
            handle.decider(name),
            *(
                ("watchdog approve 3 --as alice", "watchdog approve 3 --as alice --comment go")
                if name == "approve"
                else ('watchdog reject 3 --as alice --comment "redis is being migrated"',)
            ),
        )
        p.add_argument("id", type=int, metavar="ID", help="the incident's number")
        p.add_argument("--as", dest="person", required=True, metavar="NAME",
                       help="who decides: a name in the people file")
        p.add_argument("--comment", required=name == "reject",
                       help="why (required to reject), for the timeline")
        p.add_argument("--state", help=STATE)
        p.add_argument("--people", help=PEOPLE)

    p = command(
        "people",
        "`people add NAME --role R` writes a person with a new token (printed once, stored "
        "hashed; --rotate to replace one); `people list`",
        handle.people,
        "watchdog people add alice --role oncall --people /state/people.yaml",
        "watchdog people add alice --role lead --rotate --people /state/people.yaml",
    )
    p.add_argument("action", choices=["add", "list"], help="add a person, or list them")
    p.add_argument("name", nargs="?", help="add: the person's name")
    p.add_argument("--role", action="append", help="oncall, lead or team (repeatable)")
    p.add_argument("--rotate", action="store_true",
                   help="add: replace an existing person's roles and token")
    p.add_argument("--people", help=PEOPLE)
    p.add_argument("--policy", help="check roles against this policy's (default: the usual)")

    top.description = SUMMARY + "\n\n" + _grouped(summaries)
    return top


def _grouped(summaries: dict[str, str]) -> str:
    """The commands under their group headings, each with its one-line summary."""
    width = max(map(len, summaries)) + 2
    lines: list[str] = []
    for title, names in GROUPS:
        lines += ["", f"{title}:"] if lines else [f"{title}:"]
        for name in names:
            text = textwrap.wrap(summaries[name], 76 - width) or [""]
            lines.append(f"  {name.ljust(width)}{text[0]}")
            lines += [" " * (width + 2) + more for more in text[1:]]
    return "\n".join(lines)
