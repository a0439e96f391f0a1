"""The status strip on the web page: the same verdict `watchdog status` prints.

Shown at the top of the pages a reader has been let in to (the overview and an
incident), never on the sign-in page: it names the host, the journal and the pagers.
The lines come from `watchdog.policy.statusview.judge_status`, so the page, the CLI
and `incidents` say the same words; here only the choice of page and the reading of
the journal (one short read per page) live.
"""

from __future__ import annotations

from watchdog.policy.statusview import StatusVerdict, judge_status
from watchdog.store.journal import Journal

#: The templates that show the strip: those behind the read check.
STRIP_PAGES = frozenset({"index.html", "incident.html"})


def strip_for(journal: Journal, template: str, now: float) -> StatusVerdict | None:
    """The strip for `template` at `now`, or None for a page that does not show it.

    A journal that cannot be read for the strip does not take the page down with it."""
    if template not in STRIP_PAGES:
        return None
    try:
        return judge_status(journal.status_facts(), now)
    except Exception:  # the page below still says what it can
        return None
