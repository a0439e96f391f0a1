"""Structured logs: one JSON line per event off a terminal, readable lines on one.

Every line passes `scrub_log_event` last before it is rendered: the event and
every value, nested, with each registered secret and each credential-shaped
string (a URL's password, a bearer token) replaced. Records of the stdlib
`logging` (uvicorn, libraries) are scrubbed as they are made.
"""

from __future__ import annotations

import logging
import sys

import structlog
import structlog.tracebacks

from watchdog.scrub import scrub_log_event, scrub_stdlib_logging


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    pretty = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks as data, but never with frame locals: a local may hold a token,
            # a routing key or a database URL, and logs are read by many.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            # After the traceback became data, so its messages are scrubbed too.
            scrub_log_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    scrub_stdlib_logging()
    # APScheduler warns on every skipped probe run; the probe scheduler counts and
    # logs those itself, once, in structured form.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
