"""The sidecar container's footprint: image sizes, build times, memory and idle CPU.

Builds (or reuses, see tests/sidecar_image.py) both targets of deploy/Dockerfile on the
local Debian base, then starts the runtime image as the sidecar would run (uid 10001,
read-only root, the generic policy, the engine's socket) guarding a three-service busybox
stack that stays healthy, lets it settle, and samples the container's cgroup for 60 s:
memory (`docker stats`' usage, i.e. the cgroup's current memory less inactive file
pages) and CPU (cpu usage delta over the window). Prints every figure with its settings.
Run: .venv/bin/python bench/sidecar_container.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dockerengine import build_images, docker_engine, run_service, www_folder
from tests.sidecar_image import CACHE, sidecar_image
from watchdog.demo import free_port, wait_for

SERVICES = ("web", "api", "worker")


def _memory(stats: dict[str, object]) -> float:
    memory = stats["memory_stats"]
    assert isinstance(memory, dict)
    inactive = memory.get("stats", {}).get("inactive_file", 0)
    return float(memory["usage"] - inactive) / 2**20


def _cpu_ns(stats: dict[str, object]) -> int:
    cpu = stats["cpu_stats"]
    assert isinstance(cpu, dict)
    return int(cpu["cpu_usage"]["total_usage"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0)
    args = parser.parse_args()
    with docker_engine() as url, tempfile.TemporaryDirectory() as tmp:
        client = docker.DockerClient(base_url=url, timeout=60)
        build_images(client)
        print(f"engine: {client.version()['Version']}, cache folder {CACHE}")
        for target in ("runtime", "postgres"):
            built = sidecar_image(url, target)
            size = client.images.get(built.tag).attrs["Size"] / 1e6
            context = f", build context {built.context_bytes / 1e6:.2f} MB" if (
                built.context_bytes > 0) else ""
            print(f"image {target}: {size:.0f} MB on the Debian bookworm base "
                  f"(debootstrap minbase + python3), {built.how} in {built.seconds:.1f} s"
                  f"{context}")
        stack = f"wdbench{uuid.uuid4().hex[:6]}"
        ports = {s: free_port() for s in SERVICES}
        listen = f"127.0.0.1:{free_port()}"
        socket = url.removeprefix("unix://")
        started = []
        try:
            for s in SERVICES:
                started.append(run_service(client, project=stack, service=s, port=ports[s],
                                           www=www_folder(Path(tmp), s)))
            env = {"WATCHDOG_LISTEN": listen, "WATCHDOG_STATE": "/state/journal.db",
                   "WATCHDOG_ORCHESTRATOR": "docker", "WATCHDOG_COMPOSE_PROJECT": stack,
                   "WATCHDOG_HEALTH_PATH": "/healthy",
                   **{f"WATCHDOG_URL_{s.upper()}": f"http://127.0.0.1:{ports[s]}"
                      for s in SERVICES}}
            sidecar = client.containers.run(
                sidecar_image(url).tag, name=f"{stack}-watchdog", detach=True,
                network_mode="host", user="10001:10001", read_only=True,
                group_add=[str(Path(socket).stat().st_gid)], tmpfs={"/tmp": ""},
                volumes={socket: {"bind": "/var/run/docker.sock"},
                         f"{stack}-state": {"bind": "/state"}},
                environment=env)
            started.append(sidecar)
            wait_for(lambda: client.api.inspect_container(sidecar.id)["State"]
                     .get("Health", {}).get("Status") == "healthy", 60, "healthy")
            time.sleep(args.settle)
            first = sidecar.stats(stream=False)
            t0 = time.monotonic()
            peak = _memory(first)
            while time.monotonic() - t0 < args.seconds:
                time.sleep(5)
                peak = max(peak, _memory(sidecar.stats(stream=False)))
            last = sidecar.stats(stream=False)
            elapsed = time.monotonic() - t0
            cpu = (_cpu_ns(last) - _cpu_ns(first)) / 1e9 / elapsed * 100
            print(f"sidecar idle, generic policy guarding 3 healthy busybox services, "
                  f"settled {args.settle:.0f} s, sampled {elapsed:.0f} s every 5 s:")
            print(f"  memory {_memory(last):.1f} MiB at the end, peak {peak:.1f} MiB "
                  f"(cgroup usage less inactive file)")
            print(f"  CPU {cpu:.2f} % of one core on average")
        finally:
            for container in started:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(f"{stack}-state").remove(force=True)
            client.close()


if __name__ == "__main__":
    main()
