"""The alerts still firing, held in memory for the tick: compact, and without pauses.

The alert intake answers each webhook only once it is journaled, and p99 of that
answer is a goal (bench/alert_intake.py: under 20 ms at 200 webhooks a second).
A storm of new alerts (100 a webhook) leaves hundreds of thousands of firings
here, and three things about holding them stalled every request in flight:

- **The garbage collector.** It rescans an Alert object (and, for one pass more,
  a tuple of tuples) in every collection of the middle generation: 20-30 ms with
  300,000 firing. A flat tuple of strings and numbers is untracked after its
  first collection, so each firing is kept as one (`Packed`).
- **Growing one dict.** A dict that outgrows its table copies it whole: 7 ms at
  87,000 entries, 14 ms at 175,000, 28 ms at 350,000 (two dicts here, the
  firings and their index by fingerprint). Spread over `SHARDS` dicts by
  fingerprint, each copy is a 256th of that.
- **The dicts themselves.** A plain dict is untracked by the collector while it
  holds no container, and tracked again, as a young object, by its next insert;
  each middle-generation collection then walked every entry of every shard
  (11-28 ms at 150,000). The shards are dict subclasses, which CPython tracks
  from birth and never untracks, so `watchdog.heap.settle_heap` freezes them
  with the rest of the daemon built at start-up and no collection walks them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

from watchdog.model import Alert

SHARDS = 256

Packed = tuple[str | float | None, ...]
"""One Alert as a flat tuple: fingerprint, status, starts_at, ends_at, generator_url,
the number of labels, then the names and values of the labels and then of the
annotations, in turn."""

Key = tuple[str, float]
"""(fingerprint, startsAt): one firing of one alert."""


def pack(alert: Alert) -> Packed:
    return (
        alert.fingerprint,
        alert.status,
        alert.starts_at,
        alert.ends_at,
        alert.generator_url,
        float(len(alert.labels)),
        *chain.from_iterable(alert.labels),
        *chain.from_iterable(alert.annotations),
    )


def unpack(row: Packed) -> Alert:
    fingerprint, status, starts_at, ends_at, generator_url, count = row[:6]
    texts = [str(text) for text in row[6:]]
    pairs = tuple(zip(texts[::2], texts[1::2], strict=True))
    labels = int(count or 0)
    return Alert(
        fingerprint=str(fingerprint),
        status=str(status),
        starts_at=float(starts_at or 0.0),
        ends_at=None if ends_at is None else float(ends_at),
        labels=pairs[:labels],
        annotations=pairs[labels:],
        generator_url=str(generator_url),
    )


class _Rows(dict[Key, Packed]):
    """A shard of the firings (a dict subclass: see the module's docstring)."""


class _Starts(dict[str, tuple[float, ...]]):
    """A shard of the index by fingerprint (likewise)."""


class FiringView:
    """Firings by (fingerprint, startsAt), and each fingerprint's startsAt (a newer
    firing ends the older ones)."""

    def __init__(self) -> None:
        self._rows = [_Rows() for _ in range(SHARDS)]
        # Tuples of floats, not sets, for the same reason as the rows.
        self._starts = [_Starts() for _ in range(SHARDS)]
        self._count = 0

    def hold(self, alert: Alert) -> bool:
        """Hold a firing; whether it is new here (holding one again only updates it)."""
        shard = hash(alert.fingerprint) % SHARDS
        rows, key = self._rows[shard], (alert.fingerprint, alert.starts_at)
        new = key not in rows
        if new:
            starts = self._starts[shard]
            starts[alert.fingerprint] = (*starts.get(alert.fingerprint, ()), alert.starts_at)
            self._count += 1
        rows[key] = pack(alert)
        return new

    def release(self, key: Key) -> Alert | None:
        """Stop holding a firing; the alert it was, or None if it was not held."""
        fingerprint, starts_at = key
        shard = hash(fingerprint) % SHARDS
        row = self._rows[shard].pop(key, None)
        if row is None:
            return None
        self._count -= 1
        starts = self._starts[shard]
        left = tuple(s for s in starts.get(fingerprint, ()) if s != starts_at)
        if left:
            starts[fingerprint] = left
        else:
            starts.pop(fingerprint, None)
        return unpack(row)

    def starts(self, fingerprint: str) -> tuple[float, ...]:
        """The startsAt of this fingerprint's firings held here, in the order they came."""
        return self._starts[hash(fingerprint) % SHARDS].get(fingerprint, ())

    def alerts(self) -> Iterator[Alert]:
        """Every firing held, in no particular order."""
        for rows in self._rows:
            for row in rows.values():
                yield unpack(row)

    def __len__(self) -> int:
        return self._count
