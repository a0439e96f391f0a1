"""Real Prometheus and Alertmanager for the tests, started from Debian's binaries.

Why the real ones: rules, PromQL and Alertmanager's routing and webhook payloads are
exactly what the daemon and the shipped files must agree with, and only the real
programs parse them the way production will. Each process runs in a folder of its own
(config, storage, log), listens on 127.0.0.1 at a free port, and is stopped on exit.

- Alertmanager runs with gossip off (`--cluster.listen-address=` empty): a lone
  instance needs no peers and must not open a cluster port.
- Both are awaited on `/-/ready`; a process that dies first fails the test with the
  tail of its stderr, and a missing binary names the Debian package to install.
- `query` (instant PromQL, raising with Prometheus's own error text), `alerts`,
  `rule_groups` and `wait_scraped` read Prometheus's HTTP API; `local_server` runs
  the small exporters and webhook receivers the tests point them at.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from watchdog.demo import free_port

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3
_PACKAGES = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


class PromStackError(RuntimeError):
    """A Prometheus/Alertmanager process could not start, or a query failed."""


@dataclass(frozen=True)
class Running:
    """One started process: where it answers (`url`, `port`) and its `process` handle."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def log_path(self) -> Path:
        """The file the process writes its stdout and stderr to."""
        return self.folder / "process.log"


def find_binary(name: str) -> str:
    """The path of a Debian binary, or an error saying which package provides it."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                   else None)
    if found is None:
        package = _PACKAGES.get(name, name)
        raise PromStackError(
            f"{name} not found on PATH: apt-get install -y {package} "
            "(scripts/provision.sh installs it)"
        )
    return found


def _log_tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(no log: {exc})"


def _wait_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `/-/ready` until it answers 200; fail with the log when the process exits."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise PromStackError(
                    f"{name} exited with status {code} before it was ready; its output:\n"
                    f"{_log_tail(log)}"
                )
            try:
                answer = client.get(f"{url}/-/ready")
                if answer.status_code == 200:
                    return
                last = f"HTTP {answer.status_code}: {answer.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
    raise PromStackError(
        f"{name} at {url} not ready after {READY_TIMEOUT_SECONDS:.0f} s ({last}); its output:\n"
        f"{_log_tail(log)}"
    )


@contextlib.contextmanager
def _launch(
    program: str, folder: Path, config: dict[str, Any], flags: list[str]
) -> Iterator[Running]:
    """Write `config`, start `program` on a free port with output to `folder/process.log`,
    await readiness, and stop it on exit. `{url}` and `{folder}` in `flags` are filled in.

    A free port can be taken by someone else before the program binds it (other
    suites share the machine): that start is retried on a new port, twice at most.
    """
    binary = find_binary(program)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = folder / "process.log"
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        url = f"http://{HOST}:{port}"
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
            *(flag.format(url=url, folder=folder) for flag in flags),
        ]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(program, url, process, log)
            break
        except PromStackError:
            _stop(process)
            if attempt + 1 < PORT_ATTEMPTS and "address already in use" in _log_tail(log):
                continue
            raise
    try:
        yield Running(url=url, port=port, process=process, folder=folder)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_SECONDS."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def prometheus(
    folder: Path, config: dict[str, Any], rules: dict[str, str] | None = None
) -> Iterator[Running]:
    """A real Prometheus on 127.0.0.1 with `config` (a prometheus.yml as a dict).

    `rules` maps file names to rule-file text; they are written next to the config and
    appended to its `rule_files`, so tests can pass the shipped rules unchanged.
    """
    folder.mkdir(parents=True, exist_ok=True)
    full = dict(config)
    if rules:
        names = list(full.get("rule_files") or [])
        for file_name, text in rules.items():
            (folder / file_name).write_text(text)
            names.append(file_name)
        full["rule_files"] = names
    flags = ["--storage.tsdb.path={folder}/data", "--web.enable-lifecycle"]
    with _launch("prometheus", folder, full, flags) as running:
        yield running


@contextlib.contextmanager
def alertmanager(folder: Path, config: dict[str, Any]) -> Iterator[Running]:
    """A real Alertmanager on 127.0.0.1 with `config` (an alertmanager.yml as a dict).

    Gossip is off (an empty `--cluster.listen-address`): a lone instance needs no peers.
    """
    flags = ["--storage.path={folder}/data", "--web.external-url={url}",
             "--cluster.listen-address="]
    with _launch("prometheus-alertmanager", folder, config, flags) as running:
        yield running


@contextlib.contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1 at a free port in a thread; yields its base URL.

    For the small exporters and receivers that tests point Prometheus and
    Alertmanager at; shut down and joined on exit.
    """
    server = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _api_get(url: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET a Prometheus API path and return its `data`, raising with Prometheus's error."""
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        answer = client.get(f"{url}{path}", params=params)
    try:
        body = answer.json()
    except ValueError as exc:
        raise PromStackError(
            f"{path} answered HTTP {answer.status_code} with non-JSON: {answer.text[:300]}"
        ) from exc
    if answer.status_code != 200 or body.get("status") != "success":
        raise PromStackError(
            f"{path} {params or ''} failed (HTTP {answer.status_code}): "
            f"{body.get('errorType')}: {body.get('error')}"
        )
    return body["data"]


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (or a one-element list for a scalar/string).

    A query Prometheus cannot parse raises PromStackError carrying Prometheus's text.
    """
    data = _api_get(url, "/api/v1/query", {"query": promql})
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": result}]
    return list(result)


def alerts(url: str) -> list[dict[str, Any]]:
    """The alerts Prometheus's rules hold now (pending and firing), from /api/v1/alerts."""
    return list(_api_get(url, "/api/v1/alerts")["alerts"])


def rule_groups(url: str) -> list[dict[str, Any]]:
    """Prometheus's rule groups with each rule's health and last error (/api/v1/rules)."""
    return list(_api_get(url, "/api/v1/rules")["groups"])


def wait_scraped(url: str, job: str, timeout: float = 30.0) -> None:
    """Wait until Prometheus has scraped `job` successfully (`up == 1`).

    Prometheus hands new targets to its scrapers only every 5 s, so the first scrape
    comes seconds after /-/ready: a test that injects a fault before then loses the
    "before" samples that rate() and increase() need. Fails with the target's last error.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(url, f'up{{job="{job}"}} == 1'):
            return
        time.sleep(0.2)
    targets = _api_get(url, "/api/v1/targets")["activeTargets"]
    errors = [
        f"{t['scrapeUrl']}: {t['health']} {t['lastError']}"
        for t in targets
        if t["labels"].get("job") == job
    ]
    raise PromStackError(
        f"Prometheus at {url} has not scraped job {job!r} within {timeout:.0f} s: "
        f"{errors or 'no such target'}"
    )


Received = queue.Queue[tuple[str, dict[str, str], dict[str, Any]]]


def webhook_recorder() -> tuple[type[BaseHTTPRequestHandler], Received]:
    """A webhook receiver for Alertmanager: a handler (for `local_server`) that records each
    POST as (path, headers, JSON body) and answers 200, and the queue it records into."""
    received: Received = queue.Queue()

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.put((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Recorder, received
