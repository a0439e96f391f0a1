"""Drills as data: which fault each rehearsal injects, where, how long it may take, when.

A drill is the runbook's "Rollback Testing" made routine: inject a known fault into
a drill target (the sandbox, or a Compose project whose policy says `stack.drill:
true`), let the daemon detect, act and verify, and record what happened. The
runbook tests one procedure per quarter (Q1 service, Q2 database, Q3
configuration, Q4 complete system), so a drill's `schedule` is a quarter
(`Q1`..`Q4`: once a year, on `day` of that quarter's first month at `at` UTC), a
five-field crontab line, or `every DURATION` (a staging stack rehearsed all day long,
first one interval after the daemon starts, the interval divided by the time scale like
every policy duration); `watchdog.drill.schedule` turns each into a trigger.
No field is a command or a statement (tests/unit/test_policy_powers.py): `unhealthy`
freezes every process of the service's container, PID 1 included (SIGSTOP: it stays
`running`, answers nothing, and an HTTP healthcheck turns `unhealthy`), and
`corrupt_config` sets a named column to NULL, each with what the watchdog builds itself.
Only the shape of a crontab line is checked here (the pure core imports no scheduler);
APScheduler parses it when `watchdog run` schedules it, and a bad one stops the start
with exit 2 naming the line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from watchdog.model import Severity
from watchdog.policy.durations import Duration, parse_duration
from watchdog.policy.identifiers import table_name
from watchdog.policy.specbase import Strict

#: The faults a drill can inject: four on a real engine's container, one on a drill
#: database's configuration table, and any of the sandbox's own (`sandbox`, with `kind`).
FaultKind = Literal["kill", "pause", "unhealthy", "wrong_image", "corrupt_config", "sandbox"]
QUARTERS = ("Q1", "Q2", "Q3", "Q4")
EVERY = "every "
_AT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class DrillSpec(Strict):
    """One rehearsal: its fault, its target service, its deadline and its schedule."""

    fault: FaultKind
    service: str | None = Field(
        None, description="the Compose service the fault hits (kill, pause, unhealthy, "
        "wrong_image; sandbox faults name theirs in `body`)"
    )
    kind: str | None = Field(None, description="sandbox: the sandbox fault (crash, ...)")
    body: dict[str, Any] = Field(default_factory=dict, description="sandbox: its arguments")
    image: str | None = Field(None, description="wrong_image: the image:tag deployed instead")
    table: str | None = Field(
        None, description="corrupt_config: the configuration table in the drill database "
        "(WATCHDOG_DATABASE_URL)"
    )
    column: str | None = Field(
        None, description="corrupt_config: the column of `table` set to NULL in every row"
    )
    timeout: Duration = Field(300.0, gt=0, description="detect, act and verify within this")
    schedule: str | None = Field(
        None, description="Q1..Q4 (the runbook's quarterly test), a crontab line (UTC) "
        "or `every DURATION`"
    )
    day: int = Field(15, ge=1, le=28, description="a quarter's schedule: the day of its month")
    at: str = Field("10:00", description="a quarter's schedule: HH:MM UTC")

    @model_validator(mode="after")
    def _fault_has_what_it_needs(self) -> DrillSpec:
        needs: dict[str, tuple[str, object]] = {
            "kill": ("service", self.service),
            "pause": ("service", self.service),
            "unhealthy": ("service", self.service),
            "wrong_image": ("image", self.image and self.service),
            "corrupt_config": ("table and column", self.table and self.column),
            "sandbox": ("kind", self.kind),
        }
        field, value = needs[self.fault]
        if not value:
            also = " and service" if self.fault == "wrong_image" else ""
            raise ValueError(f"fault {self.fault} needs {field}{also}")
        for name in (self.table, self.column):
            if name is not None:
                table_name(name)  # an identifier (schema.table), never a statement
        if not _AT.match(self.at):
            raise ValueError(f"at: expected HH:MM (UTC), found {self.at!r}")
        if self.schedule is not None:
            _check_schedule(self.schedule)
        return self

    @property
    def interval(self) -> float | None:
        """Seconds between runs of an `every DURATION` schedule, else None."""
        if self.schedule is None or not self.schedule.startswith(EVERY):
            return None
        return parse_duration(self.schedule[len(EVERY):])


def _check_schedule(schedule: str) -> None:
    expected = "expected Q1..Q4, a five-field crontab line or 'every DURATION' (every 6h)"
    if schedule.startswith(EVERY):
        try:
            seconds = parse_duration(schedule[len(EVERY):])
        except ValueError as error:
            raise ValueError(f"schedule {schedule!r}: {error}") from error
        if seconds < 1:
            raise ValueError(f"schedule {schedule!r}: at least 1s between drills")
    elif schedule not in QUARTERS and len(schedule.split()) != 5:
        raise ValueError(f"schedule: {expected}, found {schedule!r}")


class DrillsSpec(Strict):
    """The policy's drills by name, and the severity a failed one pages at."""

    page_severity: Severity = Field(
        Severity.P2, description="a failed drill opens an incident at this severity and pages"
    )
    scenarios: dict[str, DrillSpec] = Field(default_factory=dict)
