"""`watchdog init --compose-project NAME`: a starting policy for one stack, from what it finds.

The generic policy guards any stack by its labels; a team that outgrows it wants a
file of its own to edit. This reads the project's containers once (labels and images,
as the daemon's discovery reads them), and prints the generic policy with its `stack:`
pinned to the project: its name, and the protected services found (by label or by a
well-known stateful image) written out, so they stay protected if the labels change.
A comment block above says, service by service, what was found. The text printed is
validated before it is printed: `watchdog validate` accepts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.policy.discovery import DiscoverySpec, ServiceFacts, container_facts
from watchdog.policyfile import parse_policy
from watchdog.probes.composeproject import PROJECT_LABEL, empty_project_error, engine_projects

#: Where the generic policy is: this checkout's, else the sidecar image's.
TEMPLATES = (
    Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml",
    Path("/etc/watchdog/policies/compose-generic.yaml"),
)
_STACK = re.compile(r"^stack:\n(?:[ \t]+.*\n|\n)*", re.MULTILINE)


def template_text(path: str | None) -> tuple[str, str]:
    """(source, text) of the policy to start from: `path`, or the generic one."""
    candidates = [Path(path)] if path else list(TEMPLATES)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate), candidate.read_text(encoding="utf-8")
    raise ValueError(f"no policy to start from at {', '.join(map(str, candidates))}; "
                     "give one with --from")


def project_facts(
    client_factory: Callable[[], Any], project: str, spec: DiscoverySpec
) -> dict[str, ServiceFacts]:
    """Each service of `project` as its containers' labels and images describe it."""
    client = client_factory()
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={project}"}, ignore_removed=True
        )
        if not found:
            raise ValueError(empty_project_error(project, engine_projects(client)))
        return container_facts([dict(c.attrs) for c in found], spec)
    finally:
        client.close()


def starting_policy(text: str, project: str, facts: dict[str, ServiceFacts]) -> str:
    """The template with its `stack:` pinned to `project` and what was found said above it."""
    protected = [s for s, f in facts.items() if f.protected and f.enabled]
    stack = (
        "stack:\n"
        f"  name: {_quoted(project)}\n"
        f"  compose_project: {_quoted(project)}\n"
        "  # Found stateful (by label or image) when this file was made: protected by name.\n"
        f"  protected_services: [{', '.join(_quoted(s) for s in protected)}]\n\n"
    )
    if not _STACK.search(text):
        raise ValueError("the policy to start from has no top-level `stack:` section")
    found = "\n".join(f"#   {f.words()}" for f in facts.values())
    header = (
        f"# Starting policy for Compose project {project!r} (`watchdog init`).\n"
        f"# Services found ({len(facts)}):\n{found}\n#\n"
    )
    return header + _STACK.sub(lambda _: stack, text, count=1)


def _quoted(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_init(
    client_factory: Callable[[], Any], project: str, template: str | None
) -> str:
    """The starting policy's text, validated as `watchdog validate` would."""
    source, text = template_text(template)
    spec = parse_policy(text, source, {}).discovery or DiscoverySpec()
    policy = starting_policy(text, project, project_facts(client_factory, project, spec))
    parse_policy(policy, f"init {project}", {})  # a PolicyError here is our mistake
    return policy
