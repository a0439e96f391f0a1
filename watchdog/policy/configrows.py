"""The enrichment configuration table as pure row arithmetic: validity and waterfalls.

`invalid_rows` is the validation query of the runbook's scenario 4 done over rows
in hand, so any store (the sandbox's table, PostgreSQL) can be checked the same
way: an enabled row with no first provider, a provider twice in one waterfall,
or a confidence outside 0..1.

Taking a provider out of the enrichment waterfall:
Two modes, as TARGET-STACK.md asks. `runbook`: the runbook's UPDATE — disable
every row that routes through the provider (12 of 14 fields for Spotify).
`surgical`: remove the provider from each row's priorities, later priorities
moving up with their confidences, and disable only rows left with no provider.
Both return the exact before-image of every changed row, so an undo restores
exactly those rows and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PRIORITIES = 4


@dataclass(frozen=True, slots=True)
class WaterfallChange:
    rows: list[dict[str, Any]]
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    summary: str


@dataclass(frozen=True, slots=True)
class UndoPlan:
    """Which before-images to write back, and which rows changed again since (conflicts)."""

    rows: list[dict[str, Any]]
    conflicts: list[str]
    conflicts_before: list[dict[str, Any]]
    already: list[str] = field(default_factory=list)


def invalid_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per problem, naming the row and what is wrong with it."""
    problems = []
    for row in rows:
        field = row.get("metadata_field", "?")
        if row.get("enabled") and not row.get("priority_1_provider"):
            problems.append(f"{field}: enabled with no first provider")
        named = providers_of(row)
        twice = sorted({p for p in named if named.count(p) > 1})
        if twice:
            problems.append(f"{field}: {', '.join(twice)} twice in one waterfall")
        for n in range(1, PRIORITIES + 1):
            confidence = row.get(f"priority_{n}_confidence")
            if confidence is not None and not 0 <= float(confidence) <= 1:
                problems.append(f"{field}: priority_{n}_confidence {confidence} outside 0..1")
    return problems


def routes_through(row: Mapping[str, Any], provider: str) -> bool:
    return any(row.get(f"priority_{n}_provider") == provider for n in range(1, PRIORITIES + 1))


def providers_of(row: Mapping[str, Any]) -> list[str]:
    """The row's waterfall in priority order, skipping empty slots."""
    found = []
    for n in range(1, PRIORITIES + 1):
        provider = row.get(f"priority_{n}_provider")
        if provider:
            found.append(str(provider))
    return found


def disable_provider(
    rows: Sequence[Mapping[str, Any]], provider: str, mode: Literal["runbook", "surgical"]
) -> WaterfallChange:
    new_rows: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    disabled: list[str] = []
    rerouted: list[str] = []
    for row in rows:
        if not routes_through(row, provider):
            new_rows.append(dict(row))
            continue
        changed, emptied = _without(row, provider, mode)
        if changed == row:  # already out (a second run): no write, no before-image
            new_rows.append(dict(row))
            continue
        before.append(dict(row))
        (disabled if emptied else rerouted).append(str(row.get("metadata_field")))
        new_rows.append(changed)
        after.append(changed)
    summary = (
        f"{provider} removed ({mode}): {len(rerouted)} field(s) rerouted"
        + (f" [{', '.join(rerouted)}]" if rerouted else "")
        + f", {len(disabled)} disabled"
        + (f" [{', '.join(disabled)}]" if disabled else "")
    )
    return WaterfallChange(new_rows, before, after, summary)


def undo_plan(
    live: Sequence[Mapping[str, Any]],
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    key: str = "metadata_field",
) -> UndoPlan:
    """Before-images whose rows still look exactly as our change left them.

    Matching is by `key`; a row whose live version differs from our after-image
    was edited by someone since, and is reported instead of overwritten. A row
    already back at its before-image is left as it is (`already`), so running
    an undo twice (a retry, a restart mid-step) writes nothing the second time.
    """
    now = {row.get(key): row for row in live}
    ours = {row.get(key): row for row in after}
    rows: list[dict[str, Any]] = []
    conflicts: list[str] = []
    conflicts_before: list[dict[str, Any]] = []
    already: list[str] = []
    for image in before:
        name = image.get(key)
        current, written = now.get(name), ours.get(name)
        if current is not None and written is not None and _same(current, image):
            already.append(str(name))
        elif current is not None and written is not None and not _same(current, written):
            conflicts.append(str(name))
            conflicts_before.append(dict(image))
        else:
            rows.append(dict(image))
    return UndoPlan(rows, conflicts, conflicts_before, already)


@dataclass(frozen=True, slots=True)
class IntentOutcome:
    """What became of a change whose undo record was written ahead: 'applied' or 'not_applied'."""

    status: Literal["applied", "not_applied"]
    reason: str


def _without(
    row: Mapping[str, Any], provider: str, mode: Literal["runbook", "surgical"]
) -> tuple[dict[str, Any], bool]:
    """The row with `provider` taken out, and whether that leaves it disabled."""
    changed = dict(row)
    changed["updated_by"] = "watchdog"
    if mode == "runbook":
        changed["enabled"] = False
        return changed, True
    kept = [
        (row.get(f"priority_{n}_provider"), row.get(f"priority_{n}_confidence"))
        for n in range(1, PRIORITIES + 1)
        if row.get(f"priority_{n}_provider") and row.get(f"priority_{n}_provider") != provider
    ]
    for n in range(1, PRIORITIES + 1):
        name, confidence = kept[n - 1] if n <= len(kept) else (None, None)
        changed[f"priority_{n}_provider"] = name
        changed[f"priority_{n}_confidence"] = confidence
    if not kept:
        changed["enabled"] = False
    return changed, not kept


def assess_intent(
    live: Sequence[Mapping[str, Any]],
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    key: str = "metadata_field",
) -> IntentOutcome:
    """Whether a change recorded as intended reached the table, from the rows as they are now.

    The change was one transaction: if any row holds our after-image, it was
    committed (rows that hold neither image were edited since). Only when every
    row still holds its before-image did it never land. Rows that hold neither
    image and none that holds ours cannot tell; the record is kept as applied, so
    an undo still names those rows (and `--force` can put them back) rather than
    forgetting them.
    """
    now = {row.get(key): row for row in live}
    landed = [
        str(r.get(key)) for r in after if r.get(key) in now and _same(now[r.get(key)], r)
    ]
    back = [
        str(r.get(key)) for r in before if r.get(key) in now and _same(now[r.get(key)], r)
    ]
    if landed:
        others = len(before) - len(landed)
        return IntentOutcome(
            "applied",
            f"{len(landed)} row(s) hold the change's after-image, so it was committed"
            + (f"; {others} other(s) changed since" if others else ""),
        )
    if len(back) == len(before):
        return IntentOutcome(
            "not_applied",
            f"all {len(before)} row(s) still hold their before-image: the change never landed",
        )
    return IntentOutcome(
        "applied",
        f"no row holds the change's after-image and {len(before) - len(back)} of "
        f"{len(before)} hold neither image (edited since): kept as applied so an undo "
        "names them",
    )


def _same(live: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """The columns we wrote still hold what we wrote (timestamps a trigger sets aside)."""
    return all(
        live.get(column) == value
        for column, value in written.items()
        if column not in ("last_updated",)
    )
