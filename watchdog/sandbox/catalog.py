"""The sandbox's fixed facts: which services exist, what role each plays, shared secrets.

Kept in one place so the supervisor, the stubs and the tests agree on names without
importing each other (each stub process should import as little as possible to start fast).
"""

from __future__ import annotations

from typing import Final

PROVIDERS: Final = ("spotify", "musicbrainz", "lastfm", "discogs", "beatport")

#: Compose service name -> stub role. Order is start order and listing order.
SERVICES: Final[dict[str, str]] = {
    "postgres": "tcp",
    "redis": "redis",
    "rabbitmq": "rabbitmq",
    "api-gateway-internal": "gateway",
    "metadata-enrichment": "enrichment",
    "dlq-manager": "dlq",
    "rest-api": "rest",
    "audio-analysis": "health",
    "api-gateway": "health",
    "graph-visualization-api": "health",
    "scraper-mixesdb": "health",
    "scraper-1001tracklists": "health",
    "enrichment-worker-1": "worker",
    "enrichment-worker-2": "worker",
    "enrichment-worker-3": "worker",
    "enrichment-backlog-worker": "backlog",
}

#: Roles that answer HTTP and are ready once GET /health answers.
HTTP_HEALTH_ROLES: Final = frozenset({"enrichment", "gateway", "dlq", "rest", "health"})
#: Roles that are ready once a TCP connect succeeds.
TCP_ROLES: Final = frozenset({"tcp", "redis", "rabbitmq"})
#: Roles without a port. "backlog" runs the worker code but is not a replica of the
#: enrichment-worker service, so the dlq_overflow fault leaves it alone.
PORTLESS_ROLES: Final = frozenset({"worker", "backlog"})
ROLES: Final = HTTP_HEALTH_ROLES | TCP_ROLES | PORTLESS_ROLES

#: The version every service runs when the sandbox starts (a `deploy` fault changes one).
INITIAL_VERSION: Final = "1.4.0"

#: Compose service -> the services it depends on (`depends_on`), as TARGET-STACK.md
#: describes the stack: the scrapers enrich through metadata-enrichment and the
#: internal gateway, enrichment calls providers through the gateway, the workers
#: consume from RabbitMQ and write through enrichment. The sandbox hands this to the
#: orchestrator the way Compose's `depends_on` label hands it to Docker. Nothing
#: depends on dlq-manager: it only replays what RabbitMQ dead-lettered.
DEPENDS_ON: Final[dict[str, tuple[str, ...]]] = {
    "api-gateway-internal": ("redis",),
    "metadata-enrichment": ("postgres", "redis", "api-gateway-internal"),
    "dlq-manager": ("rabbitmq",),
    "rest-api": ("postgres", "redis"),
    "audio-analysis": ("postgres", "rabbitmq"),
    "graph-visualization-api": ("postgres", "redis"),
    "api-gateway": ("rest-api", "graph-visualization-api"),
    "scraper-mixesdb": ("metadata-enrichment", "api-gateway-internal", "rabbitmq"),
    "scraper-1001tracklists": ("metadata-enrichment", "api-gateway-internal", "rabbitmq"),
    "enrichment-worker": ("rabbitmq", "metadata-enrichment"),
    "enrichment-backlog-worker": ("postgres", "metadata-enrichment"),
}

REDIS_PASSWORD: Final = "sandbox-redis"
RABBITMQ_USER: Final = "guest"
RABBITMQ_PASSWORD: Final = "guest"
RABBITMQ_VHOST: Final = "musicdb"
DLQ_QUEUE: Final = "enrichment.dlq.queue"

CONFIG_TABLE: Final = "metadata_enrichment_config"
PROVIDERS_TABLE: Final = "enrichment_providers"
#: table name -> primary-key column, which every row must carry.
TABLE_KEYS: Final[dict[str, str]] = {
    CONFIG_TABLE: "metadata_field",
    PROVIDERS_TABLE: "provider_name",
}


def service_url(role: str, port: int | None) -> str | None:
    """The address a client would use for a service of this role, or None if portless."""
    if port is None or role in PORTLESS_ROLES:
        return None
    if role == "tcp":
        return f"tcp://127.0.0.1:{port}"
    if role == "redis":
        return f"redis://127.0.0.1:{port}"
    return f"http://127.0.0.1:{port}"


def compose_service(name: str) -> str:
    """The Compose service a sandbox process is a replica of (`enrichment-worker-2` →
    `enrichment-worker`); a process that is no replica is its own service."""
    base, dash, number = name.rpartition("-")
    if dash and number.isdigit() and base not in SERVICES:
        return base
    return name
