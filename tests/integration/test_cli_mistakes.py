"""The usual command-line mistakes at 3 a.m., each run as a user runs it (issue 16, 5 and 6).

Each ends in one line on stderr that names what was wrong, what was found and what was
expected, and exit 2; never a traceback, a model dump or a quiet "no incidents". The
commands run as their own process (`python -m watchdog.cli`), with a clean environment
and a home folder of their own, so the default journal is under `tmp_path`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.approvals_fixtures import awaiting, write_crew
from watchdog.demo import POLICY
from watchdog.people import load_people
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal


def cli(
    *args: str, home: Path, cwd: Path | None = None, **environment: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), **environment}
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd or home, check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit 2, nothing on stdout, one line on stderr (no traceback)."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr
    return lines[0]


READERS = (
    ("incidents",),
    ("incidents", "show", "1"),
    ("followups",),
    ("report", "1"),
    ("explain", "1"),
    ("pause",),
    ("resume",),
)


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_journal_that_does_not_exist_is_refused_not_created(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "typo.db"
    line = one_line(cli(*command, "--state", str(typo), home=tmp_path))
    assert str(typo) in line and "no journal" in line
    assert str(tmp_path / ".local/state/watchdog/journal.db") in line, "names the default"
    assert not typo.exists()


def test_a_journal_url_in_a_missing_folder_does_not_create_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "nonexistent" / "dir"
    line = one_line(cli("incidents", "--state", f"sqlite:///{folder}/j.db", home=tmp_path))
    assert f"{folder}/j.db" in line
    assert not folder.parent.exists()


def test_the_default_journal_is_absolute_whatever_the_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    line = one_line(cli("incidents", home=tmp_path, cwd=elsewhere))
    default = tmp_path / ".local/state/watchdog/journal.db"
    assert str(default) in line
    assert not (elsewhere / "state").exists()
    state_dir = tmp_path / "var"
    line = one_line(cli("incidents", home=tmp_path, WATCHDOG_STATE_DIR=str(state_dir)))
    assert str(state_dir / "journal.db") in line


def test_an_existing_journal_is_read(tmp_path: Path) -> None:
    open_journal(str(tmp_path / "j.db")).close()
    done = cli("incidents", "--state", str(tmp_path / "j.db"), home=tmp_path)
    assert done.returncode == 0 and done.stdout.endswith("\n\nno incidents\n"), done.stderr
    assert done.stdout.startswith("!! no daemon has written its status")  # the strip first


def test_an_unknown_incident_is_named_plainly(tmp_path: Path) -> None:
    open_journal(str(tmp_path / "j.db")).close()
    state = str(tmp_path / "j.db")
    line = one_line(cli("incidents", "show", "99", "--state", state, home=tmp_path))
    assert line == "watchdog incidents: no incident with id 99"


def test_explain_names_an_unknown_id_and_a_policy_that_no_longer_has_the_rule(
    tmp_path: Path,
) -> None:
    from watchdog.model import Finding, Severity

    state = str(tmp_path / "j.db")
    journal = open_journal(state)
    try:
        gone = Finding(
            rule="retired-rule", signal="dlq_depth", series="", severity=Severity.P1,
            scenario="dlq_overflow", group="dlq", subject="", since=time.time() - 5,
            reason="P1: DLQ depth 9000 > 5000 for 5 s (rule retired-rule, for 5 s)",
            evidence=("DLQ depth 9000 > 5000 for 5 s",), value=9000.0,
        )
        incident = journal.open_incident(
            key="dlq", severity=Severity.P1, scenario="dlq_overflow", subject="",
            state="detected", reason=gone.reason, at=time.time(), findings=[gone],
        )
    finally:
        journal.close()
    line = one_line(cli("explain", "99", "--state", state, home=tmp_path))
    assert line == "watchdog explain: no incident with id 99"
    done = cli("explain", str(incident), "--state", state, "--policy", str(POLICY),
               home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note: the policy no longer has rule 'retired-rule'" in done.stdout
    assert "as journaled (no longer in the policy): P1: DLQ depth 9000" in done.stdout
    # The other rule on dlq_depth is weighed against the value the finding recorded.
    assert "dlq-filling on dlq_depth: no recorded value: it measures change per minute" \
        in done.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules: [\n", encoding="utf-8")
    done = cli("explain", str(incident), "--state", state, "--policy", str(broken),
               home=tmp_path)
    assert done.returncode == 0 and f"the policy {broken} does not load" in done.stderr
    assert "explaining from the journal alone" in done.stderr
    assert done.stdout.startswith(f"Incident {incident}: P1 dlq_overflow, detected")


def test_a_listen_address_without_a_host_names_the_setting(tmp_path: Path) -> None:
    line = one_line(
        cli("run", "--policy", "policies/none.yaml", "--listen", "18702", home=tmp_path,
            WATCHDOG_STATE=str(tmp_path / "j.db"))
    )
    assert "--listen" in line and "WATCHDOG_LISTEN" in line
    assert "'18702'" in line and "host:port" in line
    assert "errors.pydantic.dev" not in line
    assert not (tmp_path / "j.db").exists()


def test_a_bad_signal_kind_names_the_key_not_the_whole_dict(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(yaml.safe_dump({"signals": [{"name": "a", "kind": "bogus", "target": "t"}]}))
    done = cli("validate", str(policy), home=tmp_path)
    assert done.returncode == 2
    kind = [line for line in done.stderr.splitlines() if "signals[0]" in line]
    assert kind == [f"{policy}: signals[0].kind: found 'bogus'; expected one of http, "
                    "prometheus, tcp, host, table, postgres, docker, derived, alert"], kind
    assert "{" not in done.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    journal = open_journal(str(tmp_path / "j.db"))
    journal.close()
    read, write = os.pipe()
    os.close(read)  # the reader (`head`) has gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "watchdog.cli", "incidents", "--state", str(tmp_path / "j.db")],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 0, done.stderr


def test_people_add_refuses_to_replace_a_token_without_rotate(tmp_path: Path) -> None:
    people = tmp_path / "people.yaml"
    first = cli("people", "add", "alice", "--role", "oncall", "--people", str(people),
                home=tmp_path)
    assert first.returncode == 0, first.stderr
    before = people.read_text()
    line = one_line(cli("people", "add", "alice", "--role", "lead", "--people", str(people),
                        home=tmp_path))
    assert "alice" in line and "--rotate" in line
    assert people.read_text() == before
    rotated = cli("people", "add", "alice", "--role", "lead", "--people", str(people),
                  "--rotate", home=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert [p.roles for p in load_people(people)] == [("lead",)]
    assert rotated.stdout.splitlines()[-1] != first.stdout.splitlines()[-1]


def test_help_lists_every_command_by_task_with_examples(tmp_path: Path) -> None:
    from watchdog.cli import _parser

    top = cli("--help", home=tmp_path)
    assert top.returncode == 0
    headings = [line for line in top.stdout.splitlines() if line.endswith(":")]
    for group in ("look", "act", "approve", "set up"):
        assert any(line.startswith(group) for line in headings), top.stdout
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = dict(sub.choices)  # type: ignore[arg-type]
    for name, command in commands.items():
        assert f"  {name} " in top.stdout, name
        epilog = command.epilog or ""
        assert "example" in epilog.lower() and f"watchdog {name}" in epilog, name
        for action in command._actions:
            assert action.help, f"watchdog {name} {action.option_strings or action.dest}"


def test_refusals_say_states_in_words_and_a_reject_needs_a_comment(tmp_path: Path) -> None:
    crew = write_crew(tmp_path)
    db = tmp_path / "j.db"
    journal = open_journal(str(db))
    try:
        incident = awaiting(journal, load_policy(POLICY), "database_migration_failure")
        where = ("--state", str(db), "--people", str(crew.path))
        line = one_line(cli("reject", str(incident), "--as", "lee", "--comment", " ", *where,
                            home=tmp_path))
        assert line == "watchdog reject: a rejection needs a comment saying why"
        journal.set_state(incident, state="escalated", at=time.time(), reason="by hand")
        late = cli("approve", str(incident), "--as", "lee", *where, home=tmp_path)
    finally:
        journal.close()
    assert late.returncode == 1 and late.stdout == "", late
    assert late.stderr.splitlines() == [
        f"watchdog approve: incident {incident} is escalated (a human has taken over), "
        "not waiting for an approval"
    ]


def test_the_timeline_numbers_steps_from_1_as_the_plan_does(tmp_path: Path) -> None:
    from watchdog.model import Risk, Step

    journal = open_journal(str(tmp_path / "j.db"))
    try:
        incident = awaiting(journal, load_policy(POLICY), "database_migration_failure")
        step = Step("restart", "service.restart", Risk.SAFE, (("service", "api"),))
        journal.step_started(incident, index=0, step=step, at=time.time())
        summaries = [event.summary for event in journal.timeline(incident)]
    finally:
        journal.close()
    assert any(s.startswith("step 1 restart") for s in summaries), summaries


def test_a_bad_shadow_policy_ends_the_start_naming_its_file(tmp_path: Path) -> None:
    """`run --shadow-policy` validates the shadow like the live policy (issue 18): one line
    naming the file and the problem, exit 2, and no journal created for a daemon that never ran."""
    data = yaml.safe_load(POLICY.read_text())
    data["rules"][0]["severity"] = "P9"
    shadow = tmp_path / "stricter.yaml"
    shadow.write_text(yaml.safe_dump(data, sort_keys=False))
    journal = tmp_path / "journal.db"
    line = one_line(cli("run", "--policy", str(POLICY), "--shadow-policy", str(shadow),
                        home=tmp_path, WATCHDOG_STATE=str(journal)))
    assert line.startswith(f"{shadow}: rules[0]") and "P9" in line, line
    assert not journal.exists()
