"""The daemon's whole HTTP surface fuzzed: every route of `create_app`, with and without a key.

The stand (tests/api_stand.py) is the daemon's own app served by a real uvicorn
on 127.0.0.1 over a real SQLite journal holding incidents in six states.

The cases come from schemathesis over the app's own OpenAPI document, completed
where the app cannot describe itself (`fuzz_document`): the web routes (left
out of the schema on purpose) and the request bodies the routes read by hand
(the approval and close APIs, the Alertmanager webhook, the web forms). Both
schema-conforming and schema-violating cases, plus raw bodies no schema names
(deep nesting, binary, over the size ceilings, the wrong media type). Each case
is sent with one of the `keys` (no credentials, wrong ones, a person's token,
Alertmanager's token, a signed-out or signed-in web session) and judged:

- no answer is a 5xx;
- no journal change (SQLite's `PRAGMA data_version`, which moves on every commit
  by another connection) unless the key is valid for that route;
- every 4xx names what was wrong: a non-empty JSON `detail`, or the text of the
  web page's error notice.

The credentials live in one place, `tests.api_stand.keys()`.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from tests.alertmanager_payloads import alert, webhook
from tests.api_stand import Key, Stand
from watchdog.api.access import WINDOW_SECONDS
from watchdog.api.alertmanager import WebhookV4
from watchdog.api.approvals import DecisionBody

# ---- the document: the app's own, completed ----------------------------------------

JSON_BODIES: dict[str, type[Any]] = {
    "/api/incidents/{incident_id}/approve": DecisionBody,
    "/api/incidents/{incident_id}/reject": DecisionBody,
    "/api/incidents/{incident_id}/close": DecisionBody,
    "/api/alertmanager": WebhookV4,
}
FORM_FIELDS: dict[str, tuple[str, ...]] = {
    "/ui/signin": ("csrf", "name", "token", "next"),
    "/ui/signout": ("csrf",),
    "/ui/incidents/{incident_id}/approve": ("csrf", "comment"),
    "/ui/incidents/{incident_id}/reject": ("csrf", "comment"),
    "/ui/incidents/{incident_id}/close": ("csrf", "comment"),
}
SCALARS = {int: "integer", bool: "boolean", str: "string", float: "number"}
# What the models and the rules behind them check in code (RFC 3339 times; a comment of
# printable text, required to close), told to the generator so that valid cases get through.
HINTS: dict[str, dict[str, dict[str, str]]] = {
    # A start the receiver takes: after 2000 and not ahead of the clock (the fuzz's own
    # negative cases break the pattern); any date-time would almost never be one.
    "WebhookAlert": {
        "startsAt": {"pattern": r"^20(0[1-9]|1[0-9]|2[0-5])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
                                r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"},
        "endsAt": {"format": "date-time"},
    },
    "DecisionBody": {"comment": {"pattern": "^[ -~]{1,80}$"}},
}


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """Every (METHOD, path) the app answers, HEAD aside (Starlette adds it to each GET)."""
    return {
        (method, context.path_format)
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
        if method != "HEAD"
    }


def fuzz_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document plus what it leaves out: the routes outside the schema
    (their path and query parameters, from the routes themselves) and the bodies the
    routes read by hand."""
    document = copy.deepcopy(app.openapi())
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    paths = document["paths"]
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        for method in sorted((context.methods or set()) - {"HEAD"}):
            operation = paths.setdefault(path, {}).setdefault(method.lower(), {})
            if "responses" not in operation:
                operation["responses"] = {"default": {"description": "any"}}
                operation["parameters"] = _parameters(context)
            if method == "POST" and path in JSON_BODIES:
                model = JSON_BODIES[path]
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                for hinted, fields in HINTS.items():
                    for name, hint in fields.items():
                        if hinted in schemas:
                            schemas[hinted]["properties"][name].update(hint)
                ref = {"$ref": f"#/components/schemas/{model.__name__}"}
                operation["requestBody"] = {"content": {"application/json": {"schema": ref}}}
            if method == "POST" and path in FORM_FIELDS:
                form = {
                    "type": "object",
                    "properties": {name: {"type": "string"} for name in FORM_FIELDS[path]},
                    "required": ["csrf"],
                }
                operation["requestBody"] = {
                    "content": {"application/x-www-form-urlencoded": {"schema": form}}
                }
    return document


def _parameters(context: Any) -> list[dict[str, Any]]:
    dependant = getattr(context, "dependant", None)
    if dependant is None:
        return []
    found = []
    for where, fields in (("path", dependant.path_params), ("query", dependant.query_params)):
        for parameter in fields:
            kind = SCALARS.get(parameter.field_info.annotation, "string")
            found.append(
                {"name": parameter.name, "in": where, "required": where == "path",
                 "schema": {"type": kind}}
            )
    return found


# ---- the cases and their verdicts --------------------------------------------------

# Bodies no schema names, each was or could be a way to a 5xx; by name, so that hypothesis
# never holds (or prints) the large ones.
VALID_WEBHOOK = "a valid webhook"
RAW_BODIES: dict[str, Callable[[], bytes]] = {
    "16,000 [": lambda: b"[" * 16_000,
    "16,000 {": lambda: b"{" * 16_000,
    "5,000 nested comments": lambda: b'{"comment":' * 5_000,
    "13 levels of []": lambda: b"[" * 13 + b"]" * 13,
    "one byte over 16 KiB": lambda: b"x" * (16 * 1024 + 1),
    "one byte over 1 MiB": lambda: b"[" + b" " * (1 << 20) + b"]",
    "not UTF-8": lambda: b"\xff\xfe\x00",
    "NaN": lambda: b"NaN",
    "a lone surrogate": lambda: b'{"comment": "\\ud800"}',
    "bad percent-escapes": lambda: b"csrf=%ZZ&comment=%00",
    "a multipart part": lambda: (
        b"--x\r\nContent-Disposition: form-data; name=csrf\r\n\r\nx\r\n--x--"
    ),
    # A webhook the receiver takes (started a minute ago), drawn as often as all the
    # other raw bodies together, so the fuzz goes past the receiver's checks to the journal.
    VALID_WEBHOOK: lambda: json.dumps(webhook(alert(
        "DLQDepthCritical", summary="fuzz", severity="critical",
        starts_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
    ))).encode(),
}
RAW_TYPES = st.sampled_from([
    None, "application/json", "application/x-www-form-urlencoded", "text/plain",
    "multipart/form-data; boundary=x", "multipart/form-data",
])


@dataclass(frozen=True)
class Attempt:
    """A schemathesis case, the key it is sent with, and what the harness changes in it."""

    case: Any
    key: Key
    incident: int | None  # an index into the journal's incidents, instead of a random id
    raw: str | bytes | None  # a body no schema names (RAW_BODIES, or bytes), not the case's
    raw_type: str | None
    csrf: bool  # a web key's session puts its real CSRF token in the form
    grant: int | None  # instead of `key`, the grant-th key valid for the case's route
    decide: bool = False  # with a granted key, a decision route gets a well-formed decision


@dataclass
class Tally:
    """What a run found: cases per route and status, and every violation with its case."""

    cases: int = 0
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unkeyed_changes: list[str] = field(default_factory=list)
    unnamed_4xx: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return [*self.server_errors, *self.unkeyed_changes, *self.unnamed_4xx]


def attempts(schema: Any, keyring: list[Key]) -> st.SearchStrategy[Attempt]:
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    return st.builds(
        Attempt,
        case=cases,
        key=st.sampled_from(keyring),
        incident=st.sampled_from([None, *range(12)]),
        raw=st.none() | st.none() | st.none() | st.sampled_from(sorted(RAW_BODIES))
        | st.binary(max_size=300) | st.just(VALID_WEBHOOK),
        raw_type=RAW_TYPES,
        csrf=st.integers(0, 7).map(bool),
        grant=st.sampled_from([None, None, None, 0, 1, 2]),  # half the cases: a valid key
        decide=st.integers(0, 2).map(lambda n: n == 0),
    )


def send(fuzzed: Stand, attempt: Attempt, tally: Tally) -> None:
    """Send one case and judge its answer into `tally`."""
    case, key = attempt.case, attempt.key
    path = case.path
    granting = [k for k in fuzzed.keys if k.may_write(path)]
    if attempt.grant is not None and granting:
        key = granting[attempt.grant % len(granting)]
    if attempt.incident is not None and "incident_id" in case.path_parameters:
        # A granted key on an incident that waits for a person: the decision is taken, not
        # refused at the door (some thirty in a thousand cases; any incident otherwise).
        known = (attempt.grant is not None and fuzzed.waiting()) or fuzzed.incidents()
        case.path_parameters["incident_id"] = known[attempt.incident % len(known)]
        if attempt.decide and attempt.grant is not None and JSON_BODIES.get(path) is DecisionBody:
            # A third of those: a body the route takes, so the decision itself runs (a
            # thousand generated bodies alone reach it a handful of times, or not at all).
            case.body = {"comment": "fuzzed: a decision past the doors"}
    headers = dict(key.headers)
    cookies: dict[str, str] = {}
    if key.web is not None:
        cookies, csrf = fuzzed.web(key.web)
        if attempt.csrf and isinstance(case.body, dict) and "csrf" in FORM_FIELDS.get(path, ()):
            case.body["csrf"] = csrf
            if path == "/ui/signin" and key.web:
                case.body.update(name=key.web, token=fuzzed.tokens[key.web])
    fuzzed.health.ticks, fuzzed.health.last_tick_at = 1, fuzzed.clock()  # a daemon ticking
    before = fuzzed.data_version()
    try:
        if attempt.raw is not None:
            raw = attempt.raw if isinstance(attempt.raw, bytes) else RAW_BODIES[attempt.raw]()
            if attempt.raw_type is not None and attempt.raw != VALID_WEBHOOK:
                headers["Content-Type"] = attempt.raw_type
            answer = fuzzed.http.request(
                case.method, fuzzed.base + case.formatted_path, params=case.query,
                data=raw, headers={**(case.headers or {}), **headers},
                cookies=cookies, allow_redirects=False, timeout=30,
            )
        else:
            answer = case.call(base_url=fuzzed.base, session=fuzzed.http, headers=headers,
                               cookies=cookies, allow_redirects=False, timeout=30)
    except requests.exceptions.ConnectionError as dropped:  # the server hung up: as bad as a 500
        tally.cases += 1
        tally.statuses[(case.method, path, 599)] += 1
        tally.server_errors.append(f"{case.method} {case.formatted_path} as {key.name}: {dropped}")
        fuzzed.http = requests.Session()
        return
    except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
        return  # a request the HTTP client itself will not send
    status = int(answer.status_code)
    tally.cases += 1
    tally.statuses[(case.method, path, status)] += 1
    what = f"{case.method} {case.formatted_path} as {key.name}: {status} {_clip(answer.text)}"
    if status >= 500:
        sent = case.body if attempt.raw is None else attempt.raw
        tally.server_errors.append(f"{what} (body {_clip(repr(sent))})")
    if fuzzed.data_version() != before and not key.may_write(path):
        tally.unkeyed_changes.append(what)
    if 400 <= status < 500 and not named(answer):
        tally.unnamed_4xx.append(what)
    if key.web and path in ("/ui/signin", "/ui/signout") and status == 303:
        fuzzed.web(key.web, fresh=True)  # that session was just replaced
    if status in (200, 303) and path.endswith(("/close", "/approve", "/reject")):
        fuzzed.replenish()


def named(answer: Any) -> bool:
    """A 4xx names what was wrong: a JSON `detail`, or the web page's error notice."""
    kind = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), "")
    kind = kind[0] if isinstance(kind, list) else kind  # schemathesis keeps every value
    if kind.startswith("application/json"):
        try:
            detail = answer.json().get("detail")
        except (ValueError, AttributeError):
            return False
        if isinstance(detail, list):
            return bool(detail) and all(isinstance(d, dict) and d.get("msg") for d in detail)
        return isinstance(detail, str) and bool(detail.strip())
    if kind.startswith("text/html"):
        notice = re.search(r'<div class="notice error"><p>(.*?)</p>', answer.text, re.S)
        return notice is not None and bool(notice.group(1).strip())
    return False


#: Every this many cases the stand's clock skips the sign-in throttle's minute (SkippingClock).
THROTTLE_OPENS_EVERY = 50


def run(fuzzed: Stand, cases: int, *, seed_value: int = 13,
        progress: Callable[[Tally], None] | None = None) -> Tally:
    """`cases` cases over every route of the stand's app, judged into one tally."""
    schema = schemathesis.openapi.from_dict(fuzz_document(fuzzed.app))
    tally = Tally()

    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(attempts(schema, fuzzed.keys))
    def one(attempt: Attempt) -> None:
        send(fuzzed, attempt, tally)
        if tally.cases % THROTTLE_OPENS_EVERY == 0:
            fuzzed.clock.skip(WINDOW_SECONDS + 1)
        if progress is not None and tally.cases % 500 == 0:
            progress(tally)

    one()
    return tally


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
