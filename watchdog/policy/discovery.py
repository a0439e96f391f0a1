"""Any Compose stack guarded by labels alone: what a service's labels and image say.

A policy with a `discovery:` section (policies/compose-generic.yaml has one) needs no
hand-written `targets:`: its Docker signals read every service of the Compose project,
and each service's own labels say how to treat it:

- `watchdog.enable=false` opts it out: never probed, so never failing, never acted on;
- `watchdog.protected=true` marks it stateful (never stopped, restarted or recreated
  automatically: the incident pages instead), as does a well-known stateful image
  (postgres, mysql, redis, kafka, ...) unless `watchdog.protected=false` says otherwise;
- `watchdog.health.url=http://...` is probed over HTTP besides Docker's healthcheck.

The label names and the image list are policy data, declared and validated here; this
module only decides, from labels and an image name handed to it (no engine, no I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from watchdog.policy.specbase import Strict

#: Images whose containers hold data: restarting or recreating them is never automatic.
STATEFUL_IMAGES = (
    "postgres", "postgis", "timescaledb", "mysql", "mariadb", "percona", "mongo", "redis",
    "valkey", "keydb", "memcached", "rabbitmq", "kafka", "zookeeper", "nats", "minio",
    "elasticsearch", "opensearch", "cassandra", "clickhouse", "influxdb", "etcd", "consul",
    "vault", "neo4j", "couchdb", "cockroach",
)
SERVICE_LABEL = "com.docker.compose.service"
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class DiscoverySpec(Strict):
    """How services are found and judged from their Compose labels (no `targets:` needed)."""

    enable_label: str = Field(
        "watchdog.enable", description="a service with this label false is left out entirely"
    )
    protected_label: str = Field(
        "watchdog.protected", description="true: stateful, never acted on automatically"
    )
    health_url_label: str = Field(
        "watchdog.health.url", description="an http(s) URL also probed for the service's health"
    )
    protected_images: list[str] = Field(
        default_factory=lambda: list(STATEFUL_IMAGES),
        description="image names (the last path part, without tag) that mark a service stateful",
    )

    @field_validator("protected_images")
    @classmethod
    def _plain_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v or "/" in v or ":" in v or v != v.lower()]
        if bad:
            raise ValueError(f"plain lower-case image names such as 'postgres', not {bad}")
        return value


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """One service as its labels and image describe it."""

    service: str
    image: str = ""
    enabled: bool = True
    protected: bool = False
    why_protected: str = ""
    health_url: str = ""
    problem: str = ""

    def words(self) -> str:
        """One line for logs and `watchdog init`: what was found and what it means."""
        said = [self.service, f"image {self.image or '?'}"]
        if not self.enabled:
            said.append("opted out")
        if self.protected:
            said.append(f"protected ({self.why_protected})")
        if self.health_url:
            said.append(f"health {self.health_url}")
        if self.problem:
            said.append(self.problem)
        return ", ".join(said)


def flag(value: str | None) -> bool | None:
    """A label read as a yes/no: None when absent or not a word Compose users write."""
    word = (value or "").strip().lower()
    return True if word in _TRUE else False if word in _FALSE else None


def image_name(image: str) -> str:
    """The image's own name: "docker.io/bitnami/postgresql:16@sha256:..." → "postgresql"."""
    bare = image.split("@", 1)[0]
    last = bare.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def stateful_image(image: str, names: list[str] | tuple[str, ...]) -> str:
    """The well-known stateful name one word of the image's name is ("cp-kafka",
    "redis-stack-server"), or is with "ql" or "db" after it ("postgresql", "mongodb");
    "" for any other image. Whole words only: "consultant-api" is not consul."""
    words = set(re.split(r"[-_.]", image_name(image)))
    for name in names:
        if words & {name, name + "ql", name + "db"}:
            return name
    return ""


def service_facts(
    service: str, labels: dict[str, str], image: str, spec: DiscoverySpec
) -> ServiceFacts:
    """What the labels of one container of `service` (and its image) say about it."""
    enabled = flag(labels.get(spec.enable_label)) is not False
    marked = flag(labels.get(spec.protected_label))
    by_image = stateful_image(image, spec.protected_images)
    if marked is True:
        why = f"label {spec.protected_label}=true"
    elif marked is None and by_image:
        why = f"{by_image} image"
    else:
        why = ""
    url = (labels.get(spec.health_url_label) or "").strip()
    problem = ""
    if url and not url.startswith(("http://", "https://")):
        problem = f"label {spec.health_url_label}={url!r} ignored: not an http(s) URL"
        url = ""
    return ServiceFacts(service, image, enabled, bool(why), why, url, problem)


def merge(facts: list[ServiceFacts]) -> ServiceFacts:
    """One service's facts from its replicas: opted out or protected if any replica is."""
    first = facts[0]
    enabled = all(f.enabled for f in facts)
    shielded = [f for f in facts if f.protected]
    url = next((f.health_url for f in facts if f.health_url), "")
    problem = next((f.problem for f in facts if f.problem), "")
    why = shielded[0].why_protected if shielded else ""
    return ServiceFacts(first.service, first.image, enabled, bool(shielded), why, url, problem)


def container_facts(
    containers: list[dict[str, Any]], spec: DiscoverySpec
) -> dict[str, ServiceFacts]:
    """Each Compose service's facts from its containers' `docker inspect` data."""
    found: dict[str, list[ServiceFacts]] = {}
    for attrs in containers:
        config = attrs.get("Config") or {}
        labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
        service = labels.get(SERVICE_LABEL)
        if service:
            facts = service_facts(service, labels, str(config.get("Image") or ""), spec)
            found.setdefault(service, []).append(facts)
    return {service: merge(facts) for service, facts in sorted(found.items())}
