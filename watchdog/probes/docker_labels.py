"""Docker signals of a policy with `discovery:`: the project's services as their labels say.

The base `DockerProbe` already reads every service of the Compose project (no
`services:` list: every service it finds). With discovery it also

- leaves out each service whose containers carry `watchdog.enable=false` (never read,
  so never failing, never acted on);
- for a `healthy` signal, GETs the `watchdog.health.url` of each running service that
  has one: a service is healthy only when Docker's healthcheck AND its URL say so (2xx
  or 3xx within the signal's timeout), the URL's answer in the reading's words;
- forgets a service whose containers are all gone (removed from the stack at run
  time) instead of reading it as down forever; a service that appears is read from its
  first container on (the event stream's `start` and `destroy` make both show at once);
- keeps `facts`: what the labels and image say of each service (protected or not), which
  the daemon hands to the decision core and `watchdog init` prints.

Its HTTP checks run in the SDK's worker thread, bounded by the signal's timeout.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchdog.model import Observation
from watchdog.policy.discovery import DiscoverySpec, ServiceFacts, container_facts
from watchdog.policy.schema import DockerSignal
from watchdog.probes.docker import (
    SERVICE_LABEL,
    ClientFactory,
    DockerProbe,
    ServiceSummary,
    _Answer,
)
from watchdog.probes.stamp import Stamp

log = structlog.get_logger("watchdog.probes.docker")


def url_health(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, words) for one GET of a service's health URL."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as error:  # a 4xx/5xx answer: its body left unread
        status = int(error.code)
        error.close()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"health url {url}: {type(error).__name__}: {reason}"
    return 200 <= status < 400, f"health url {url}: {status}"


@dataclass(frozen=True, slots=True)
class _Labelled(_Answer):
    """The base answer, opted-out services removed, with the facts and the URLs' answers."""

    facts: dict[str, ServiceFacts] = field(default_factory=dict)
    urls: dict[str, tuple[bool, str]] = field(default_factory=dict)


class LabelledProbe(DockerProbe):
    """A Docker signal of a policy with `discovery:` (see the module's words)."""

    def __init__(
        self, signal: DockerSignal, client_factory: ClientFactory, spec: DiscoverySpec
    ) -> None:
        super().__init__(signal, client_factory)
        self.spec = spec
        #: Service → what its labels and image say, as of the latest listing.
        self.facts: dict[str, ServiceFacts] = {}
        self._urls: dict[str, tuple[bool, str]] = {}
        self._told: set[str] = set()

    def protected_services(self) -> list[str]:
        return sorted(s for s, f in self.facts.items() if f.protected and f.enabled)

    def _list(self) -> _Answer:
        answer = super()._list()
        if answer.known_projects is not None:
            return answer
        facts = container_facts(answer.containers, self.spec)
        kept = [c for c in answer.containers if facts.get(_service(c), _ON).enabled]
        urls: dict[str, tuple[bool, str]] = {}
        if self.signal.metric == "healthy":
            limit = max(0.5, self.signal.timeout / 2)
            for service, fact in facts.items():
                running = any(_service(c) == service and _running(c) for c in kept)
                if fact.enabled and fact.health_url and running:
                    urls[service] = url_health(fact.health_url, limit)
        return _Labelled(kept, answer.at, answer.deaths, None, facts, urls)

    def _readings(self, stamp: Stamp, answer: _Answer) -> list[Observation]:
        if isinstance(answer, _Labelled):
            self._note(answer.facts)
            self._urls = answer.urls
        return super()._readings(stamp, answer)

    def _note(self, facts: dict[str, ServiceFacts]) -> None:
        """Keep the facts; log each service's once, and each removal."""
        for service in sorted(set(self.facts) - set(facts)):
            log.info("service_removed", signal=self.signal.name, service=service)
            self._told.discard(service)
        for service, fact in facts.items():
            if service not in self._told:
                self._told.add(service)
                log.info("service_discovered", signal=self.signal.name, service=service,
                         facts=fact.words())
        self.facts = facts

    def _present(self, service: str, summaries: dict[str, ServiceSummary]) -> bool:
        if self.signal.services:  # services named in the policy: as without discovery
            return super()._present(service, summaries)
        return service in summaries  # every service found now; a removed one is forgotten

    def _value(self, summary: ServiceSummary, now: float) -> tuple[float, str]:
        value, detail = super()._value(summary, now)
        checked = self._urls.get(summary.service)
        if self.signal.metric != "healthy" or checked is None:
            return value, detail
        ok, words = checked
        return (value if ok else 0.0), f"{detail}; {words}"


_ON = ServiceFacts("")


def _service(attrs: dict[str, Any]) -> str:
    return str(((attrs.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL) or "")


def _running(attrs: dict[str, Any]) -> bool:
    return str((attrs.get("State") or {}).get("Status")) == "running"
