"""The web page's follow-ups and incident reports: what `watchdog.api.web` shows and links.

Kept apart from the page's routes so that module stays small; both read the
journal only, behind the same read access as the incident page (the routes check it).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from watchdog.people import People
from watchdog.store.journal import Journal
from watchdog.store.markdown import incident_markdown, owner_words, read_facts

#: Markdown, shown as text by a browser rather than downloaded or interpreted.
MARKDOWN = "text/markdown; charset=utf-8"


def open_followups(journal: Journal, people: People | None, now: float) -> list[dict[str, Any]]:
    """The index's list: every open follow-up, overdue first, with its owner in words."""
    holders = people.holders() if people is not None else {}
    return [
        {
            "followup": f,
            "owner": owner_words(f.owner, holders),
            "overdue": f.overdue(now),
        }
        for f in journal.followups()
    ]


def report_response(
    journal: Journal,
    people: People | None,
    incident_id: int,
    now: float,
    headers: dict[str, str],
) -> Response | None:
    """The incident report as Markdown (`watchdog report ID`'s text), or None when there is
    no such incident (the route answers with the page's own 404 notice, as for the page)."""
    try:
        facts = read_facts(journal, incident_id, people.holders() if people is not None else {})
    except KeyError:
        return None
    return Response(incident_markdown(facts, now=now), headers=headers, media_type=MARKDOWN)
