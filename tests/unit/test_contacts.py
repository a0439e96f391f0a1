"""The runbook's Emergency Contacts as roles with a route each (`notify.contacts`).

P0 pages the engineering manager, the database scenarios page the DBA, the status
page hears of P0 and P1 on the webhook; each contact's channels join the
severity's, its Opsgenie responders are named on the page, a bad contact is named
by its key, and a plan's impact names the contacts by role with who holds them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.helpers import SONGNODES, songnodes
from tests.unit.test_impact import _impact, _plan
from tests.unit.test_pages import page
from watchdog.model import Severity
from watchdog.notify.routing import decide_escalation_page, decide_pages
from watchdog.notify.vendors import opsgenie_body, webhook_body
from watchdog.policy.contacts import paged_contacts
from watchdog.policy.impact import ImpactFacts
from watchdog.policy.schema import NotifySpec, Responder
from watchdog.policyfile import PolicyError, parse_policy

DBA = Responder(type="team", name="songnodes-dba")
MANAGER = Responder(type="user", name="songnodes-eng-manager")


def test_p0_database_pages_the_dba_the_manager_and_the_status_page() -> None:
    spec = songnodes().notify
    decision = decide_pages(
        spec, severity=Severity.P0, scenario="database_unavailable", from_state="detected",
        to_state="triaged", move_reason="", triggered=(),
    )
    assert decision is not None
    assert decision.contacts == ("dba", "eng_manager", "status_page")
    assert set(decision.responders) == {DBA, MANAGER}
    assert decision.reason.endswith("contacts: dba, eng_manager, status_page")
    # A P2 restart pages no contact; a P1 partial outage the DevOps lead and the status page.
    assert paged_contacts(spec, Severity.P2, "service_failure") == ()
    assert paged_contacts(spec, Severity.P1, "partial_outage") == ("devops_lead", "status_page")


def test_a_contacts_own_channel_joins_the_route_and_an_escalation_reaches_it() -> None:
    spec = NotifySpec.model_validate(
        {
            "routes": {"P2": ["slack"], "P0": ["slack"]},
            "contacts": {
                "dba": {"channels": ["opsgenie"], "scenarios": ["database_migration_failure"]},
                "eng_manager": {"channels": ["pagerduty"], "severities": ["P0"]},
            },
        }
    )
    opened = decide_pages(
        spec, severity=Severity.P2, scenario="database_migration_failure",
        from_state="awaiting_approval", to_state="awaiting_approval", move_reason="approve",
        triggered=(),
    )
    assert opened is not None and opened.channels == ("slack", "opsgenie")
    risen = decide_escalation_page(
        spec, from_severity=Severity.P2, to_severity=Severity.P0,
        scenario="database_migration_failure", triggered=("slack", "opsgenie"),
    )
    assert risen is not None and risen.channels == ("pagerduty",)
    assert risen.contacts == ("dba", "eng_manager")


def test_the_page_names_the_contacts_and_opsgenie_their_responders() -> None:
    paged = replace(page(), contacts=("dba", "status_page"), responders=(DBA,))
    body = opsgenie_body(paged, [Responder(type="team", name="songnodes-oncall")])
    assert body is not None
    assert body["responders"] == [
        {"type": "team", "name": "songnodes-oncall"}, {"type": "team", "name": "songnodes-dba"}
    ]
    assert webhook_body(paged)["incident"]["contacts"] == ["dba", "status_page"]
    assert "Contacts paged:\ndba, status_page" in paged.text()


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("    dba:            #", "    dbaa:           #", "notify.contacts.dbaa"),
        ("      scenarios: [database_migration_failure, database_unavailable]",
         "      scenarios: [database_migration]", "notify.contacts.dba.scenarios[0]"),
        ("      severities: [P0]\n", "      severity: [P0]\n", "severity"),
        ("      notice: true\n", "", "notify.contacts.status_page"),
    ],
)
def test_a_bad_contact_is_refused_naming_its_key(old: str, new: str, named: str) -> None:
    text = SONGNODES.read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(PolicyError) as error:
        parse_policy(text.replace(old, new, 1), str(SONGNODES), {})
    assert named in str(error.value)


def test_the_impact_names_the_contacts_by_role_and_who_holds_them() -> None:
    plan = _plan("database_migration_failure", Severity.P0)
    holders = {"oncall": ["ana"], "dba": ["dana"]}
    lines = _impact(plan, ImpactFacts(holders=holders, contacts=("dba", "eng_manager")))
    assert lines["on call"].endswith(
        "; contacts paged: dba: dana; eng_manager: nobody holds eng_manager"
    )
