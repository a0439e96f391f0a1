"""`watchdog validate`: good files pass, bad ones name the file, the path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.helpers import ROOT, SONGNODES
from watchdog.cli import main


def write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(SONGNODES.read_text())
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shipped_policies_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (ROOT / "policies").glob("*.yaml"))
    assert len(files) >= 2
    assert main(["validate", *files]) == 0
    out = capsys.readouterr().out
    assert "songnodes.yaml: ok" in out and "compose-generic.yaml: ok" in out


def _set_rule(index: int, key: str, value: object) -> object:
    def mutate(data: dict[str, list[dict[str, object]]]) -> None:
        data["rules"][index][key] = value

    return mutate


CASES = [
    (
        "a malformed duration",
        _set_rule(3, "for", "soon"),
        "rules[3].for: found 'soon'; expected a duration such as",
    ),
    (
        "a rule on an unknown signal",
        _set_rule(2, "signal", "dlq_depht"),
        "rules[2].signal: found 'dlq_depht'; expected one of the signals",
    ),
    (
        "an impossible threshold on a ratio",
        lambda d: next(r for r in d["rules"] if r["name"] == "degradation-over-half").update(
            threshold=1.5
        ),
        "].threshold: found > 1.5; expected a threshold that signal 'enrichment_error_rate'",
    ),
    (
        "a misspelt key",
        _set_rule(0, "clear_fro", "1m"),
        "rules[0].clear_fro: found '1m'; expected no such key",
    ),
    (
        "an unknown severity",
        _set_rule(1, "severity", "P5"),
        "rules[1].severity: found 'P5'; expected 'P0', 'P1', 'P2' or 'P3'",
    ),
    (
        "an unknown scenario",
        _set_rule(1, "scenario", "reboot_everything"),
        "rules[1].scenario: found 'reboot_everything'",
    ),
    (
        "a JMESPath expression that does not compile",
        lambda d: d["signals"][0]["healthy_when"].append("connections.[database"),
        "signals[0].healthy_when[4]: found 'connections.[database'; expected a JMESPath expression",
    ),
    (
        "a rate window shorter than two scrapes",
        lambda d: d["signals"][11].update(window="6s"),
        "signals[11].window: found 6 s; expected at least two intervals (10 s)",
    ),
    (
        "an unknown action",
        lambda d: d["scenarios"]["service_failure"]["steps"][0].update(action="service.reboot"),
        "scenarios.service_failure.steps[0].action: found 'service.reboot'; expected one of",
    ),
    (
        "a missing action parameter",
        lambda d: d["scenarios"]["service_failure"]["steps"][0]["params"].pop("services"),
        "scenarios.service_failure.steps[0].params: found no 'services'",
    ),
    (
        "a duplicate signal name",
        lambda d: d["signals"].append(dict(d["signals"][0])),
        "].name: found 'enrichment_health'; expected a unique name (signals[0] already has it)",
    ),
    (
        "a duplicate rule name",
        lambda d: d["rules"].append(dict(d["rules"][0])),
        "].name: found 'complete-outage'; expected a unique name (rules[0] already has it)",
    ),
    (
        "automatic destructive steps",
        lambda d: d["authority"]["P0"].update(destructive="auto"),
        "authority.P0.destructive: found 'auto'; expected approval or never",
    ),
    (
        "an approval by an unknown role",
        lambda d: d["authority"]["P1"].update(risky={"role": "cto", "quorum": 1}),
        "authority.P1.risky.role: found 'cto'",
    ),
    (
        "a table name that would smuggle SQL",
        lambda d: d["signals"][16].update(table="config; DROP TABLE tracks"),
        "signals[16].table: found 'config; DROP TABLE tracks'; expected a plain SQL name",
    ),
    (
        "a step naming a table that is not a plain name",
        lambda d: d["scenarios"]["configuration_corruption"]["steps"][1]["params"].update(
            table='metadata_enrichment_config"; DELETE FROM tracks; --'
        ),
        "scenarios.configuration_corruption.steps[1].params.table: found "
        "'metadata_enrichment_config\"; DELETE FROM tracks; --'; expected a plain SQL name",
    ),
    (
        "a last_good table that is not a plain name",
        lambda d: d["last_good"].update(tables=["enrichment_providers WHERE 1=1"]),
        "last_good.tables: found",
    ),
    (
        "a step lowering database.restore's own risk",
        lambda d: d["scenarios"]["database_migration_failure"]["steps"][2].update(risk="safe"),
        "scenarios.database_migration_failure.steps[2].risk: found 'safe' (step 'restore the "
        "newest backup'); expected at least 'risky', the own risk of database.restore",
    ),
    (
        "a step lowering migrations.down's own risk",
        lambda d: d["scenarios"]["database_migration_failure"]["steps"][3].update(risk="safe"),
        "scenarios.database_migration_failure.steps[3].risk: found 'safe' (step 'apply down "
        "migrations newest first'); expected at least 'risky', the own risk of migrations.down",
    ),
    (
        "a step lowering system.rebuild's own risk",
        lambda d: d["scenarios"]["database_migration_failure"]["steps"].append(
            {"name": "rebuild", "action": "system.rebuild", "risk": "risky"}
        ),
        "scenarios.database_migration_failure.steps[7].risk: found 'risky' (step 'rebuild'); "
        "expected at least 'destructive', the own risk of system.rebuild",
    ),
    (
        "migration files from a folder outside stack.migrations_dir",
        lambda d: d["scenarios"]["database_migration_failure"]["steps"][3]["params"].update(
            migration_dirs=["/etc/cron.d"]
        ),
        "scenarios.database_migration_failure.steps[3].params.migration_dirs[0]: found "
        "'/etc/cron.d'; expected a folder inside stack.migrations_dir ('sql/migrations')",
    ),
    (
        "migration files from a folder reached by '..'",
        lambda d: d["scenarios"]["database_migration_failure"]["steps"][3]["params"].update(
            migration_dirs=["sql/migrations/../../tmp"]
        ),
        "steps[3].params.migration_dirs[0]: found 'sql/migrations/../../tmp'; "
        "expected a path without '..'",
    ),
    (
        "migration files with no declared migrations folder",
        lambda d: d["stack"].pop("migrations_dir"),
        "scenarios.database_migration_failure.steps[2].params.migration_dirs: found "
        "['sql/migrations', 'sql/migrations/medallion']; expected folders inside "
        "stack.migrations_dir, which this policy does not declare",
    ),
    (
        "a check template the rule cannot fill",
        lambda d: next(r for r in d["rules"] if r["name"] == "enrichment-down")["params"].update(
            health_signal="nope_health"
        ),
        "].params: found {health_signal} = 'nope_health'; expected the name of a signal",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_policy_names_file_path_found_and_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, mutate: object, message: str
) -> None:
    path = write(tmp_path, mutate)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err
    assert message in err, err


def test_malformed_yaml_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nstack: {name: x\nrules: [\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line " in err and "well-formed YAML" in err


def test_missing_file_and_missing_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "expected a readable file" in capsys.readouterr().err
    path = tmp_path / "env.yaml"
    path.write_text(
        SONGNODES.read_text().replace("${WATCHDOG_RABBITMQ_USER:-guest}", "${NO_SUCH_VAR_X}")
    )
    assert main(["validate", str(path)]) == 2
    assert "environment variable NO_SUCH_VAR_X set" in capsys.readouterr().err


def test_every_problem_is_reported_not_just_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def two(d: dict[str, list[dict[str, object]]]) -> None:
        d["rules"][2]["signal"] = "nope"
        d["rules"][5]["scenario"] = "nope"

    assert main(["validate", str(write(tmp_path, two))]) == 2
    err = capsys.readouterr().err
    assert "rules[2].signal" in err and "rules[5].scenario" in err
