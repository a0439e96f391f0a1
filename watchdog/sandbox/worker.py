"""Stub of an `enrichment-worker` replica (and of `enrichment-backlog-worker`, which the
runbook stops alongside them): no port, only a failure mode.

On SIGUSR1 (the supervisor's `dlq_overflow` fault) the worker becomes "broken": every
0.1 s it dead-letters 100 messages into RabbitMQ's DLQ (1000 messages/s). The state
lives only in the process, so the one cure is what the runbook prescribes: restart it.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from types import FrameType

from watchdog.sandbox import jsonhttp, runtime

TICK_SECONDS = 0.1
BATCH = 100


class Worker:
    """A flag flipped by a signal, read by a loop; no locks needed for one bool."""

    def __init__(self, control_url: str, name: str) -> None:
        self.name = name
        self.peers = runtime.Peers(control_url)
        self.broken = False

    def on_sigusr1(self, signum: int, frame: FrameType | None) -> None:
        """Break (idempotent)."""
        self.broken = True

    def tick(self) -> None:
        """One step: if broken, dead-letter a batch; lost batches are simply lost."""
        if not self.broken:
            return
        try:
            url = f"{self.peers.http_url('rabbitmq')}/_sandbox/dead-letter?n={BATCH}"
            jsonhttp.request("POST", url, {}, timeout=1.0)
        except OSError as exc:
            print(f"{self.name}: cannot reach rabbitmq: {exc}", file=sys.stderr)

    def run(self) -> None:
        """Tick every 0.1 s until signalled to stop."""
        while True:
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # keep the failure mode going whatever one tick hit
                traceback.print_exc(file=sys.stderr)
            time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - started)))


def main(port: int, control_url: str, name: str) -> None:
    """Install the break signal first, then loop."""
    worker = Worker(control_url, name)
    signal.signal(signal.SIGUSR1, worker.on_sigusr1)
    worker.run()
