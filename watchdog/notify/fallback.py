"""Which page an outbox row belongs to, and what a page nobody can take any more says: pure.

A page is one `enqueue_page` (one timeline event of kind 'page', naming its rows),
plus the pages that stood in for it when a channel refused it or gave up (their
event names the first one as `fallback_of`). A channel that fails hands the page
to the routed channels not yet on it (`routing.decide_fallback`); when none is
left the page is lost, and the journal, the log and a metric say so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from watchdog.model import Severity
from watchdog.store.records import EventRecord


@dataclass(frozen=True, slots=True)
class PageOnTimeline:
    """One page as the timeline holds it, its fallbacks included."""

    event_id: int  # the first page event: what a fallback names as `fallback_of`
    reason: str  # why the first page went out
    channels: tuple[str, ...]  # every channel the page went to, fallbacks included
    delivery_ids: tuple[int, ...]  # every outbox row of the page


def page_of(timeline: Sequence[EventRecord], delivery_id: int) -> PageOnTimeline | None:
    """The page outbox row `delivery_id` belongs to, or None if no page event names it."""
    pages = [e for e in timeline if e.kind == "page"]
    mine = next((e for e in pages if delivery_id in e.data.get("delivery_ids", ())), None)
    if mine is None:
        return None
    root_id = int(mine.data.get("fallback_of", mine.id))
    group = [e for e in pages if e.id == root_id or e.data.get("fallback_of") == root_id]
    root = next((e for e in group if e.id == root_id), mine)
    channels = [c for e in group for c in e.data.get("channels", ())]
    ids = [int(i) for e in group for i in e.data.get("delivery_ids", ())]
    return PageOnTimeline(
        event_id=root_id,
        reason=str(root.data.get("reason", root.summary)),
        channels=tuple(dict.fromkeys(channels)),
        delivery_ids=tuple(ids),
    )


def lost_summary(
    *,
    channel: str,
    event: str,
    error: str,
    severity: Severity,
    reached: Collection[str],
    incident_open: bool = True,
) -> str:
    """The timeline's line for a page `channel` could not take and no channel took over."""
    if event == "trigger" and not incident_open:
        why = "the incident is closed, so no channel is paged in its place"
    elif event == "trigger":
        why = f"no other channel routed for {severity.value} is left to fall back to"
    else:
        why = f"the {event} goes only to the channels that had the trigger"
    where = (
        f"the page did reach or may still reach: {', '.join(sorted(reached))}"
        if reached
        else "no channel has this page"
    )
    return f"{channel} {event} lost: {error}; {why}; {where}"
