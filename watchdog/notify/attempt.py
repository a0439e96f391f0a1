"""One delivery attempt: a vendor call bounded as a whole, and the claim that covers it.

Several daemons may share one journal (PostgreSQL, issue 17). An outbox sends only the
rows it claimed, under its holder name, for a claim lease: if it dies or freezes, the
rows go to the next claim after the lease, so the lease must outlast any one attempt.
httpx's timeout bounds each phase of a request (connect, write, each read), not the
whole of it; `send_once` bounds the whole, so "one attempt" has a known longest time.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import httpx

from watchdog.notify.channels import Channel
from watchdog.notify.retry import RetryPolicy, Verdict, classify
from watchdog.store.records import DeliveryRecord

CLAIM_MARGIN_S = 10.0
"""What a claim lease adds to the send timeout: a pass's journal writes after its sends,
a slow journal, and the clock skew between two hosts sharing one journal."""


def default_holder() -> str:
    """This process's name on the outbox rows it claims: unique per live process."""
    return f"{socket.gethostname()}#{os.getpid()}"


def exited_here(holder: str, me: str) -> bool:
    """Whether `holder` named an exited process of this sidecar (the name before '#', the
    host's by default, is `me`'s), or is `me` itself, asked by a sender that has claimed
    nothing yet: the name's previous life (a daemon restarted in its container as pid 1
    again). Nobody is sending those rows: their claims need not wait out their lease.
    Another sidecar's holder is never judged here; a recycled pid reads as alive (the
    lease is then waited: the safe side). Names must differ between live senders."""
    if holder == me:
        return True
    mine, _, _ = me.rpartition("#")
    sidecar, _, pid = holder.rpartition("#")
    if not mine or sidecar != mine or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def claim_lease(retry: RetryPolicy) -> float:
    """How long a pass's claim on its rows lasts: one attempt's whole time limit (the
    sends of a pass run at once, each cut at `retry.timeout_seconds`) plus the margin."""
    return retry.timeout_seconds + CLAIM_MARGIN_S


async def send_once(
    client: httpx.AsyncClient,
    channel: Channel,
    delivery: DeliveryRecord,
    retry: RetryPolicy,
    clock: Callable[[], float],
) -> Verdict:
    """Post one row to its vendor, within `retry.timeout_seconds` in all; what it means."""
    limit = retry.timeout_seconds
    try:
        request = channel.request(delivery)
        async with asyncio.timeout(limit):
            response = await client.post(
                request.url, json=request.json, headers=request.headers, timeout=limit
            )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        return Verdict("rejected", f"the {channel.name} URL is not usable: {error}")
    except httpx.HTTPError as error:
        return Verdict("retry", f"network error: {type(error).__name__}: {error}")
    except TimeoutError:
        return Verdict("retry", f"network error: no answer within {limit} s")
    return classify(
        response.status_code,
        response.text,
        retry_after=response.headers.get("Retry-After"),
        now=clock(),
        retry_after_max=retry.retry_after_max_seconds,
    )
