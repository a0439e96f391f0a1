"""What labels and images say of a Compose service (watchdog.policy.discovery), the generic
policy read without targets, and `watchdog init`'s text: pure, no engine."""

from __future__ import annotations

import http.server
from pathlib import Path
from typing import Any

import pytest

from watchdog.commands.initcmd import starting_policy
from watchdog.policy.discovery import (
    DiscoverySpec,
    container_facts,
    image_name,
    service_facts,
    stateful_image,
)
from watchdog.policy.schema import DerivedSignal
from watchdog.policyfile import PolicyError, load_policy, parse_policy

GENERIC = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"
SPEC = DiscoverySpec()


@pytest.mark.parametrize(
    ("image", "name", "stateful"),
    [
        ("postgres:16", "postgres", "postgres"),
        ("docker.io/library/postgres:16-alpine@sha256:abc", "postgres", "postgres"),
        ("bitnami/postgresql:15", "postgresql", "postgres"),
        ("confluentinc/cp-kafka:7.5.0", "cp-kafka", "kafka"),
        ("redis/redis-stack-server", "redis-stack-server", "redis"),
        ("registry.local:5000/team/mariadb", "mariadb", "mariadb"),
        ("ghcr.io/acme/api:1.2", "api", ""),
        ("nginx", "nginx", ""),
        ("acme/postgres-exporter-ui", "postgres-exporter-ui", "postgres"),  # safe side
        ("bitnami/mongodb:7", "mongodb", "mongo"),
        ("acme/consultant-api", "consultant-api", ""),  # a word, not a prefix
    ],
)
def test_the_image_name_says_whether_a_service_is_stateful(
    image: str, name: str, stateful: str
) -> None:
    assert image_name(image) == name
    assert stateful_image(image, SPEC.protected_images) == stateful


def test_labels_opt_out_protect_unprotect_and_name_a_health_url() -> None:
    plain = service_facts("api", {}, "acme/api:1", SPEC)
    assert plain.enabled and not plain.protected and plain.health_url == ""
    assert not service_facts("api", {"watchdog.enable": "false"}, "acme/api", SPEC).enabled
    assert service_facts("api", {"watchdog.enable": "TRUE"}, "acme/api", SPEC).enabled
    marked = service_facts("cache", {"watchdog.protected": "true"}, "acme/cache", SPEC)
    assert marked.protected and marked.why_protected == "label watchdog.protected=true"
    db = service_facts("db", {}, "postgres:16", SPEC)
    assert db.protected and db.why_protected == "postgres image"
    # A label says no: a throwaway Redis used as a cache may be restarted.
    assert not service_facts("cache", {"watchdog.protected": "false"}, "redis:7", SPEC).protected
    url = service_facts("web", {"watchdog.health.url": "http://127.0.0.1:8080/ready"}, "w", SPEC)
    assert url.health_url == "http://127.0.0.1:8080/ready" and not url.problem
    bad = service_facts("web", {"watchdog.health.url": "127.0.0.1:8080"}, "w", SPEC)
    assert bad.health_url == "" and "not an http(s) URL" in bad.problem


def inspect(service: str, image: str, **labels: str) -> dict[str, Any]:
    return {"Config": {"Image": image, "Labels": {
        "com.docker.compose.service": service, **labels}}}


def test_replicas_merge_to_one_service_opted_out_or_protected_if_any_replica_is() -> None:
    facts = container_facts(
        [
            inspect("web", "acme/web"),
            inspect("web", "acme/web", **{"watchdog.enable": "false"}),
            inspect("db", "mysql:8"),
            inspect("db", "mysql:8"),
            {"Config": {"Image": "x", "Labels": {}}},  # not a Compose container
        ],
        SPEC,
    )
    assert sorted(facts) == ["db", "web"]
    assert not facts["web"].enabled and facts["db"].protected
    assert facts["db"].words() == "db, image mysql:8, protected (mysql image)"


def test_the_discovery_section_is_validated() -> None:
    with pytest.raises(ValueError, match="plain lower-case image names"):
        DiscoverySpec(protected_images=["library/postgres:16"])
    text = GENERIC.read_text().replace("enable_label:", "enabled_label:")
    with pytest.raises(PolicyError, match=r"discovery\.enabled_label"):
        parse_policy(text, "generic", {})


def share(policy_text: str, environ: dict[str, str]) -> DerivedSignal:
    found = parse_policy(policy_text, "generic", environ).signal("services_down_share")
    assert isinstance(found, DerivedSignal)
    return found


def test_the_generic_policy_unedited_shares_the_docker_health_and_with_targets_theirs() -> None:
    text = GENERIC.read_text()
    assert "\ntargets:" not in text  # nothing to write by hand
    policy = load_policy(GENERIC, environ={})
    assert policy.targets == {} and policy.discovery is not None
    assert share(text, {}).of == ["container_healthy"]
    assert not [s for s in policy.signals if s.kind == "http"]
    with_targets = text.replace(
        "\ndiscovery:\n", '\ntargets:\n  web: {url: "http://127.0.0.1:8000", service: web}\n'
        "discovery:\n"
    )
    assert share(with_targets, {}).of == ["web_health"]


def test_init_pins_the_stack_and_says_what_it_found() -> None:
    facts = container_facts(
        [inspect("db", "postgres:16"), inspect("web", "acme/web"),
         inspect("tool", "acme/tool", **{"watchdog.enable": "false"}),
         inspect("queue", "acme/q", **{"watchdog.protected": "true"})],
        SPEC,
    )
    text = starting_policy(GENERIC.read_text(), 'sh"op', facts)
    policy = parse_policy(text, "init", {"WATCHDOG_COMPOSE_PROJECT": "other"})
    assert policy.stack.compose_project == 'sh"op' and policy.stack.name == 'sh"op'
    assert policy.stack.protected_services == ["db", "queue"]
    assert "#   tool, image acme/tool, opted out\n" in text
    assert text.count("\nstack:\n") == 1 and "\nsignals:\n" in text


class Recovering:
    """An orchestrator that only records what `service.recover` asked of it."""

    def __init__(self) -> None:
        self.asked: list[tuple[list[str], list[str]]] = []

    async def recover(self, services: list[str], *, failing: list[str], stop_timeout: float) -> str:
        self.asked.append((list(services), list(failing)))
        return "recovered"


def test_a_recover_step_naming_no_services_recovers_the_failing_ones_protected_refused() -> None:
    import asyncio

    import httpx

    from watchdog.actions.base import ActionFailed
    from watchdog.actions.http import HttpActions
    from watchdog.actions.registry import build_handlers
    from watchdog.model import Risk, Step

    policy = load_policy(GENERIC, environ={})
    fake = Recovering()

    async def run(failing: str) -> str:
        async with httpx.AsyncClient() as client:
            handlers = build_handlers(http=HttpActions(policy, client), orchestrator=fake,  # type: ignore[arg-type]
                                      config=None, protected=["postgres"])
            step = Step("recover", "service.recover", Risk.SAFE,
                        (("services", []), ("failing", failing)))
            return (await handlers["service.recover"](step)).output

    assert asyncio.run(run("api,web")) == "recovered"
    assert fake.asked == [(["api", "web"], ["api", "web"])]
    with pytest.raises(ActionFailed, match="protected"):
        asyncio.run(run("postgres,web"))


class _Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_a_labelled_probe_leaves_out_the_opted_out_and_reads_health_urls_too() -> None:
    import asyncio
    import threading
    from types import SimpleNamespace

    from watchdog.policy.schema import DockerSignal
    from watchdog.probes.docker_labels import LabelledProbe

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def container(service: str, image: str, **labels: str) -> SimpleNamespace:
        attrs = inspect(service, image, **{"com.docker.compose.project": "p", **labels})
        attrs.update(Id=f"id-{service}", Name=f"/p-{service}-1",
                     State={"Status": "running", "Health": {"Status": "healthy"}})
        return SimpleNamespace(id=attrs["Id"], attrs=attrs)

    found = [
        container("web", "acme/web", **{"watchdog.health.url": base + "/down"}),
        container("api", "acme/api", **{"watchdog.health.url": base + "/ok"}),
        container("tool", "acme/tool", **{"watchdog.enable": "false"}),
        container("db", "postgres:16"),
    ]
    client = SimpleNamespace(api=SimpleNamespace(timeout=5), close=lambda: None,
                             containers=SimpleNamespace(list=lambda **_: found))
    signal = DockerSignal(name="container_healthy", kind="docker", project="p", metric="healthy")
    probe = LabelledProbe(signal, lambda: client, SPEC)
    try:
        readings = {o.series: o for o in asyncio.run(probe.observe())}
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(readings) == ["api", "db", "web"]  # tool is never read
    assert readings["web"].value == 0 and f"health url {base}/down: 503" in readings["web"].detail
    assert readings["api"].value == 1 and readings["db"].value == 1
    assert probe.protected_services() == ["db"]
    found.pop(1)  # api removed from the stack: forgotten, not read as down
    assert "api" not in {o.series for o in asyncio.run(probe.observe())}


def test_scenario_five_by_hand_counts_services_stateful_by_label_or_image_as_stateful() -> None:
    from types import SimpleNamespace

    from watchdog.actions.docker_system import DockerSystem

    groups = {s: [SimpleNamespace(attrs=inspect(s, image, **labels))] for s, image, labels in (
        ("db", "postgres:16", {}), ("web", "acme/web", {}),
        ("queue", "acme/q", {"watchdog.protected": "true"}), ("cache", "acme/cache", {}))}
    named = DockerSystem(lambda: None, "p", protected=["cache"], reverter=None, records=None)  # type: ignore[arg-type]
    assert named._stateful(groups) == {"cache"}  # no discovery: the policy's names alone
    found = DockerSystem(lambda: None, "p", protected=["cache"], reverter=None, records=None,  # type: ignore[arg-type]
                         spec=SPEC)
    assert found._stateful(groups) == {"cache", "db", "queue"}
