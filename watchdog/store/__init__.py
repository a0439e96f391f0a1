"""The journal: every decision and action written down before the daemon acts.

`open_journal(url_or_path)` returns a `Journal`; reads return the records of
`watchdog.store.records`, and `watchdog.store.render` turns them into text.
"""

from watchdog.store.journal import Journal, open_journal

__all__ = ["Journal", "open_journal"]
