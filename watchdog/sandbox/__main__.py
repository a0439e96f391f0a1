"""Command line of the sandbox.

    python -m watchdog.sandbox up [--port P] [--state-dir DIR]
    python -m watchdog.sandbox service ROLE --port P --control URL [--name NAME]

A stub imports only its own role's module (looked up by name, not imported up front),
which keeps each process's start-up well under 0.3 s.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from watchdog.sandbox.catalog import PORTLESS_ROLES, ROLES

#: role -> (module, function); each function takes (port, control_url, name).
ROLE_ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "enrichment": ("watchdog.sandbox.enrichment", "main"),
    "gateway": ("watchdog.sandbox.gateway", "main"),
    "dlq": ("watchdog.sandbox.dlq", "main"),
    "rabbitmq": ("watchdog.sandbox.rabbitmq", "main"),
    "rest": ("watchdog.sandbox.rest", "main"),
    "health": ("watchdog.sandbox.basic", "main"),
    "tcp": ("watchdog.sandbox.rawtcp", "main_tcp"),
    "redis": ("watchdog.sandbox.rawtcp", "main_redis"),
    "worker": ("watchdog.sandbox.worker", "main"),
    "backlog": ("watchdog.sandbox.worker", "main"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m watchdog.sandbox",
                                     description="Stand-in of the guarded stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the supervisor and every stub service")
    up.add_argument("--port", type=int, default=0, help="control API port (0: any free port)")
    up.add_argument("--state-dir", type=Path, default=None,
                    help="where tables and logs are kept (default: a new temporary folder)")
    service = commands.add_parser("service", help="run one stub (started by the supervisor)")
    service.add_argument("role", choices=sorted(ROLES))
    service.add_argument("--port", type=int, default=None)
    service.add_argument("--control", required=True, help="the supervisor's control URL")
    service.add_argument("--name", default=None, help="service name (default: the role)")
    return parser


def run_service(role: str, port: int | None, control_url: str, name: str) -> None:
    """Run one stub until SIGTERM/SIGINT or until its supervisor disappears."""
    from watchdog.sandbox import runtime

    if os.environ.get("WATCHDOG_SANDBOX_FAILS") == "1":
        _fail_at_start(name, os.environ.get("WATCHDOG_SANDBOX_VERSION", "?"))
    runtime.install_exit_signals()
    runtime.start_orphan_guard()
    module_name, function_name = ROLE_ENTRY_POINTS[role]
    entry = cast(Callable[[int, str, str], None],
                 getattr(importlib.import_module(module_name), function_name))
    entry(port or 0, control_url, name)


def _fail_at_start(name: str, version: str) -> None:
    """A release that cannot come up: it says why on stderr and exits 1, every start."""
    print(f"{name} {version} starting", flush=True)
    print(f"ERROR {name} {version}: settings validation failed: DLQ_REPLAY_BATCH_SIZE "
          "is required (added in this release, not set in the environment)",
          file=sys.stderr, flush=True)
    print(f"{name} {version}: exiting with status 1", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "up":
        import tempfile

        from watchdog.sandbox.controlapi import run_up

        state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="watchdog-sandbox-"))
        return run_up(args.port, state_dir.resolve())
    if args.role not in PORTLESS_ROLES and not args.port:
        parser.error(f"role {args.role!r} needs --port")
    run_service(args.role, args.port, args.control, args.name or args.role)
    return 0


if __name__ == "__main__":
    sys.exit(main())
