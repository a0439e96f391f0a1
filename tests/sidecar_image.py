"""The sidecar image built from deploy/Dockerfile on the local Debian base, cached.

No registry is reachable, so the base is scripts/base-image.sh's (debootstrap + `docker
import`) and the build uses the host's network (`--network host`) for PyPI, with the
host's CA bundle handed to the build stage through deploy/build-ca/ (the runtime stages
never copy it).

Why a tarball cache rather than the engine's layer cache: the suite starts its own
dockerd on a temporary data root per pytest-xdist worker, and two dockerds cannot share
one persistent data root, so a second run begins with an empty engine. The built image
is therefore saved (`docker save`) in ~/.cache/watchdog-test (WATCHDOG_TEST_CACHE),
named by the hash of everything the build reads (the files of the build context as
.dockerignore selects them, the target, the base script), and loaded on the next run:
a change to any of them builds afresh. The base's debootstrap tarball is cached by
scripts/base-image.sh itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WATCHDOG_TEST_CACHE", Path.home() / ".cache" / "watchdog-test"))
BASE = "watchdog-test/debian-python:bookworm"
REPOSITORY = "watchdog-test/sidecar"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = ROOT / "deploy" / "build-ca" / "host-bundle.crt"


@dataclass(frozen=True)
class Built:
    """An image ready in the engine, and what getting it cost (for the bench's figures)."""

    tag: str
    how: str  # "engine" (already there), "loaded" (from the cache) or "built"
    seconds: float
    context_bytes: int


def context_files() -> list[str]:
    """The build context as the legacy builder and docker-compose 1.29 send it: docker-py's
    own reading of the root .dockerignore (the same code docker-compose 1.29 runs)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return sorted(p for p in exclude_paths(str(ROOT), patterns) if (ROOT / p).is_file())


def _docker(docker_url: str, *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["docker", *args], env={**os.environ, "DOCKER_HOST": docker_url},
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    return done.stdout


def _key(target: str) -> str:
    digest = hashlib.sha256(target.encode())
    digest.update((ROOT / "scripts" / "base-image.sh").read_bytes())
    for name in ["deploy/Dockerfile", *context_files()]:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def base_image(docker_url: str) -> None:
    """scripts/base-image.sh: reuses the engine's image or the cached root filesystem."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "base-image.sh"), BASE],
        env={**os.environ, "DOCKER_HOST": docker_url, "WATCHDOG_TEST_CACHE": str(CACHE)},
        capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/base-image.sh failed:\n{done.stdout}{done.stderr[-3000:]}")


def _place_host_ca() -> None:
    """The host's bundle for pip in the build stage (rewritten only when it differs)."""
    if HOST_CA.exists() and (
        not BUILD_CA.exists() or BUILD_CA.read_bytes() != HOST_CA.read_bytes()
    ):
        shutil.copyfile(HOST_CA, BUILD_CA)


def build(docker_url: str, target: str, tag: str) -> int:
    """`docker build` of deploy/Dockerfile on the local base; the context's size in bytes."""
    base_image(docker_url)
    output = _docker(
        docker_url, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}",
        "--target", target, "-f", "deploy/Dockerfile", "-t", tag, str(ROOT), timeout=1200,
    )
    sizes = [line for line in output.splitlines() if line.startswith("Sending build context")]
    return _size(sizes[0].rsplit(" ", 1)[1]) if sizes else -1


def _size(text: str) -> int:
    units = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1.0}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text.removesuffix(unit)) * factor)
    return -1


def sidecar_image(docker_url: str, target: str = "runtime") -> Built:
    """The image of `target`, from the engine, the cache folder or a build, in that order."""
    _place_host_ca()
    key = _key(target)
    tag = f"{REPOSITORY}:{target}-{key}"
    started = time.monotonic()
    if _docker(docker_url, "images", "-q", tag).strip():
        return Built(tag, "engine", time.monotonic() - started, -1)
    tarball = CACHE / f"sidecar-{target}-{key}.tar"
    if tarball.exists():
        _docker(docker_url, "load", "-q", "-i", str(tarball))
        return Built(tag, "loaded", time.monotonic() - started, -1)
    context = build(docker_url, target, tag)
    seconds = time.monotonic() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"sidecar-{target}-*.tar"):
        old.unlink()
    _docker(docker_url, "save", "-o", f"{tarball}.part", tag)
    Path(f"{tarball}.part").rename(tarball)
    return Built(tag, "built", seconds, context)
