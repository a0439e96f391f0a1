"""Keys that are keys (issue 13, point 1), over HTTP with a real uvicorn and real scrypt.

An empty Alertmanager token turns the receiver off (503 naming the setting), never
on; a placeholder or short key stops `watchdog run` before it starts; the incidents
(API and web page) need a person or the read token; sign-in failures are limited
per client, and the personal tokens' scrypt runs in a bounded pool.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

import watchdog.people as people_module
from tests.alertmanager_payloads import alert, webhook
from tests.integration.approvals_fixtures import Api, Crew, awaiting, crew
from tests.served import served
from watchdog.api.alertmanager import ReceiverSettings
from watchdog.api.app import create_app
from watchdog.demo import POLICY, DaemonProcess, free_port, wait_for
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.health import Health
from watchdog.keys import new_key
from watchdog.metrics import Metrics
from watchdog.people import HASH_WORKERS, People
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
READ_TOKEN = new_key()
__all__ = ["crew"]  # a pytest fixture, used by name


def tiny_policy(folder: Path) -> Path:
    """One probe of a closed 127.0.0.1 port: a daemon with nothing to reach beyond loopback."""
    policy = {
        "version": 1,
        "stack": {"name": "keys"},
        "targets": {"gone": {"url": f"http://127.0.0.1:{free_port()}", "service": "gone"}},
        "signals": [{"name": "gone_health", "kind": "http", "target": "gone", "unit": "bool",
                     "interval": "1s", "timeout": "0.5s"}],
        "rules": [{"name": "gone-down", "signal": "gone_health", "op": "<", "threshold": 1,
                   "for": "1s", "severity": "P3", "scenario": "notify", "group": "gone"}],
        "scenarios": {"notify": {"title": "notify only"}},
        "authority": {p: {"safe": "never", "risky": "never", "destructive": "never"}
                      for p in ("P0", "P1", "P2", "P3")},
        "last_good": {"tables": []},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture
def reader(tmp_path: Path, crew: Crew) -> Iterator[Api]:
    """The daemon's app with people and a read token, and one incident awaiting approval."""
    policy = load_policy(POLICY)
    journal = open_journal(str(tmp_path / "journal.db"))
    metrics = Metrics.for_policy(policy)
    app = create_app(
        journal, metrics, Health(started_at=time.time()), time.time,
        people=People(crew.path, policy.roles), read_token=READ_TOKEN,
    )
    awaiting(journal, policy, "database_migration_failure", reason="secret evidence here")
    with served(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Api(client, journal, policy, crew, app, metrics)
    journal.close()


def test_an_empty_alertmanager_token_turns_the_receiver_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_ALERTMANAGER_TOKEN", "")
    policy = load_policy(POLICY, environ={})
    journal = open_journal(str(tmp_path / "journal.db"))
    app = create_app(
        journal, Metrics.for_policy(policy), Health(started_at=0.0), time.time,
        alerts=AlertIntake(policy, journal, time.time), receiver=ReceiverSettings(),
    )
    body = webhook(alert("CircuitBreakerOpen", severity="critical", provider="spotify"))
    with served(app) as url:
        # (httpx sends no trailing space; the server would strip it anyway)
        for header in ("Bearer", "Basic", "Bearer anything", ""):
            reply = httpx.post(url + "/api/alertmanager", json=body,
                               headers={"Authorization": header} if header else {})
            assert reply.status_code == 503, (header, reply.text)
            assert "WATCHDOG_ALERTMANAGER_TOKEN" in reply.json()["detail"]
            assert "WATCHDOG_ALERTMANAGER_USERNAME" in reply.json()["detail"]
    assert journal._read("SELECT COUNT(*) FROM alerts")[0][0] == 0  # type: ignore[attr-defined]
    journal.close()


def test_a_configured_receiver_never_takes_an_empty_bearer(tmp_path: Path) -> None:
    policy = load_policy(POLICY, environ={})
    journal = open_journal(str(tmp_path / "journal.db"))
    token = new_key()
    app = create_app(
        journal, Metrics.for_policy(policy), Health(started_at=0.0), time.time,
        alerts=AlertIntake(policy, journal, time.time), receiver=ReceiverSettings(token=token),
    )
    body = webhook(alert("CircuitBreakerOpen", severity="critical", provider="spotify"))
    with served(app) as url:
        for header in ("Bearer", f"Bearer {token[:-1]}", f"bearer {token}x", token):
            reply = httpx.post(url + "/api/alertmanager", json=body,
                               headers={"Authorization": header})
            assert reply.status_code == 401, header
        good = httpx.post(url + "/api/alertmanager", json=body,
                          headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200, good.text
    journal.close()


def _run(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """`watchdog run` with these settings; it must refuse at once (a timeout fails the test)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "WATCHDOG_STATE": str(tmp_path / "journal.db"),
        "WATCHDOG_LISTEN": f"127.0.0.1:{free_port()}",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", "run", "--policy", str(tiny_policy(tmp_path))],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("WATCHDOG_ALERTMANAGER_TOKEN", "CHANGE-ME"),
        ("WATCHDOG_ALERTMANAGER_TOKEN", "am-token-0123456789abcdef"),
        ("WATCHDOG_READ_TOKEN", "x" * 80),
        ("WATCHDOG_READ_TOKEN", "my-" + "example-" * 8 + "Key1"),
    ],
)
def test_watchdog_run_refuses_a_weak_key_naming_the_setting_not_the_value(
    tmp_path: Path, setting: str, value: str
) -> None:
    done = _run(tmp_path, **{setting: value})
    assert done.returncode == 2, done.stderr
    assert setting in done.stderr and "watchdog token new" in done.stderr
    assert value not in done.stderr + done.stdout
    assert not (tmp_path / "journal.db").exists(), "refused before anything started"


def test_watchdog_run_refuses_a_weak_basic_auth_password(tmp_path: Path) -> None:
    done = _run(tmp_path, WATCHDOG_ALERTMANAGER_USERNAME="am",
                WATCHDOG_ALERTMANAGER_PASSWORD="password123")
    assert done.returncode == 2 and "WATCHDOG_ALERTMANAGER_PASSWORD" in done.stderr
    assert "password123" not in done.stderr


def test_token_new_prints_a_key_run_accepts(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "watchdog.cli", "token", "new"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", printed)
    daemon = DaemonProcess(
        None, tmp_path, policy=tiny_policy(tmp_path),
        environment={"WATCHDOG_ALERTMANAGER_TOKEN": "", "WATCHDOG_READ_TOKEN": printed},
    ).start()
    try:
        # It runs its probes: the closed port becomes an incident, read with the new key.
        wait_for(lambda: bool(daemon.incidents()), 20, "the probe's incident")
        off = httpx.post(daemon.url + "/api/alertmanager", json={},
                         headers={"Authorization": "Bearer"})
        assert off.status_code == 503 and "WATCHDOG_ALERTMANAGER_TOKEN" in off.json()["detail"]
    finally:
        assert daemon.stop() == 0


def test_incidents_need_a_person_or_the_read_token(reader: Api) -> None:
    client = reader.client
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {READ_TOKEN}"},
                    {"Authorization": f"Bearer {READ_TOKEN[:-1]}"}):
        for path in ("/incidents", "/incidents/1"):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401, (path, headers)
            assert "secret evidence" not in refused.text
            assert "WATCHDOG_READ_TOKEN" in refused.json()["detail"]
    by_key = client.get("/incidents", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert by_key.status_code == 200 and by_key.json()["incidents"][0]["id"] == 1
    for name in ("olga", "tara"):  # any role reads
        one = client.get("/incidents/1", headers=reader.bearer(name))
        assert one.status_code == 200 and "secret evidence" in one.json()["reason"]
    assert client.get("/healthz").status_code in (200, 503)  # open: says how, not what
    assert client.get("/metrics").status_code == 200


def test_the_web_page_needs_a_signed_in_person(reader: Api) -> None:
    with httpx.Client(base_url=str(reader.client.base_url), timeout=10) as browser:
        for path in ("/ui/", "/ui/incidents/1"):
            page = browser.get(path)
            assert page.status_code == 401 and "secret evidence" not in page.text
            assert 'action="/ui/signin"' in page.text and "Sign in" in page.text
        token = CSRF.search(browser.get("/ui/incidents/1").text)
        assert token is not None
        signed = browser.post("/ui/signin", data={
            "csrf": token.group(1), "name": "tara", "token": reader.crew.tokens["tara"],
            "next": "/ui/incidents/1",
        })
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/incidents/1"
        assert "secret evidence" in browser.get("/ui/incidents/1").text
        assert "secret evidence" in browser.get("/ui/").text


def test_with_no_people_the_page_says_how_to_add_the_first(tmp_path: Path) -> None:
    policy = load_policy(POLICY)
    journal = open_journal(str(tmp_path / "journal.db"))
    app = create_app(journal, Metrics.for_policy(policy), Health(started_at=0.0), time.time)
    with served(app) as url:
        page = httpx.get(url + "/ui/")
        assert page.status_code == 401
        assert "watchdog people add NAME --role oncall --people FILE" in page.text
        assert "WATCHDOG_PEOPLE=FILE" in page.text
        refused = httpx.get(url + "/incidents")
        assert refused.status_code == 401 and "watchdog token new" in refused.json()["detail"]
    journal.close()


def test_sign_in_failures_are_limited_per_client(reader: Api) -> None:
    with httpx.Client(base_url=str(reader.client.base_url), timeout=10) as browser:
        token = CSRF.search(browser.get("/ui/").text)
        assert token is not None
        form = {"csrf": token.group(1), "name": "lee", "token": "a-guess"}
        answers = [browser.post("/ui/signin", data=form).status_code for _ in range(5)]
        assert answers == [401] * 5
        limited = browser.post("/ui/signin", data=form)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        right = {**form, "token": reader.crew.tokens["lee"]}
        assert browser.post("/ui/signin", data=right).status_code == 429, "no more tries"
        reads = reader.client.get("/incidents", headers={"Authorization": "Bearer wrong"})
        assert reads.status_code == 429, "the same client, the same count"


def test_token_checks_run_in_a_bounded_pool(
    reader: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty-four requests at once, each a real scrypt: never more than HASH_WORKERS run
    together, the rest wait or get 503 with Retry-After, none gets a 500."""
    running, most = 0, 0
    lock = threading.Lock()
    real = people_module.token_matches

    def counted(token: str, stored: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.1)  # hold the slot long enough for the requests to overlap
            return real(token, stored)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(people_module, "token_matches", counted)
    # A token naming lee's public salt but a wrong secret: each one costs a scrypt.
    guess = reader.crew.tokens["lee"].split(".")[0] + ".wrong"
    url = f"{reader.client.base_url}/api/incidents/1/approve"

    def post(_: int) -> httpx.Response:
        return httpx.post(url, headers={"Authorization": f"Bearer {guess}"}, timeout=30)

    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(post, range(24)))
    statuses = sorted({r.status_code for r in replies})
    assert set(statuses) <= {401, 503}, statuses
    assert 503 in statuses, "the pool refuses past its waiting room"
    assert all(r.headers["retry-after"] == "1" for r in replies if r.status_code == 503)
    assert 1 <= most <= HASH_WORKERS, most
