"""A real Docker engine for the tests, and the busybox images they run.

If DOCKER_HOST (or the default socket) answers, that engine is used. Otherwise
the suite starts its own: Debian's `dockerd` with no bridge, no iptables and its
own data root, exec root, pidfile and socket under a temporary folder, stopped
at the end. Images are never pulled: `docker import` turns a root filesystem made
of Debian's `busybox-static` into

- `watchdog-test/web:good`: busybox httpd serving /www, a folder the test binds,
  so a test makes a service healthy or unhealthy by creating or removing
  `/www/healthy` (GET /healthy answers 200 or 404; the Docker healthcheck reads it);
- `watchdog-test/web:broken`: the same root filesystem whose command exits 1 at
  once, a "new version" that crash-loops.
- `watchdog-test/web:nokill` (`nokill_image`, imported on first use): GOOD without
  the `kill` applet, as the many images with no shell tools are.

Containers run with host networking, `--init` unless a test asks for httpd as PID 1
(busybox httpd as PID 1 ignores SIGTERM) and bind to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

BUSYBOX = Path("/bin/busybox")
GOOD = "watchdog-test/web:good"
BROKEN = "watchdog-test/web:broken"
NOKILL = "watchdog-test/web:nokill"
HTTPD = '["/bin/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]'
MISSING = (
    "no Docker engine answers and none can be started here: install Debian's docker.io and "
    "busybox-static (make test runs scripts/provision.sh, which does) and run as root"
)


def _listening(path: str) -> bool:
    """A plain connect first: the docker SDK leaves the socket of a failed connect open."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    if url.startswith("unix://") and not _listening(url.removeprefix("unix://")):
        return False
    try:
        client = docker.DockerClient(base_url=url, timeout=5)
    except (docker.errors.DockerException, OSError):
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


@contextlib.contextmanager
def docker_engine() -> Iterator[str]:
    """Yields a DOCKER_HOST URL for a working engine; starts one when none answers."""
    existing = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if _answers(existing):
        yield existing
        return
    folder = Path(tempfile.mkdtemp(prefix="watchdog-dockerd-", dir="/tmp"))
    try:
        with Dockerd(folder) as engine:
            yield engine.url
    finally:
        release(folder)


def release(folder: Path) -> None:
    """Unmount what dockerd leaves mounted (its data root, the netns) and delete the folder."""
    prefix = str(folder) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mounted in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mounted], capture_output=True, check=False)
    # rm rather than shutil.rmtree: a mount still being released is not the test's error
    subprocess.run(["rm", "-rf", str(folder)], capture_output=True, check=False)


class Dockerd:
    """One dockerd on its own data root, exec root, pidfile and socket under `folder`.

    It can be stopped and started again on the same data root, which is how a
    test takes the engine away from the daemon and brings it back.
    """

    def __init__(self, folder: Path) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None or not BUSYBOX.exists():
            raise RuntimeError(MISSING)
        self.folder = folder
        self.sock = folder / "docker.sock"
        self.url = f"unix://{self.sock}"
        self._command = [
            dockerd,
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--data-root",
            str(folder / "data"),
            "--exec-root",
            str(folder / "exec"),
            "--pidfile",
            str(folder / "dockerd.pid"),
            "-H",
            self.url,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Dockerd:
        with (self.folder / "dockerd.log").open("ab") as log:
            self._process = subprocess.Popen(
                self._command, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not (self.sock.exists() and _answers(self.url)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / "dockerd.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"dockerd did not start ({MISSING}); its log ends:\n{tail}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Dockerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _rootfs_tar(command: list[str] | None = None, without: tuple[str, ...] = ()) -> bytes:
    """A tar of a busybox root filesystem: /bin/busybox, its applets but `without`, an empty
    /www."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "www", "tmp", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in (
            "sh",
            "httpd",
            "sleep",
            "cat",
            "echo",
            "ls",
            "kill",
            "false",
            "true",
            "test",
        ):
            if applet in without:
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def build_images(client: docker.DockerClient) -> None:
    """Import the good and broken images once per engine (idempotent)."""
    have = {tag for image in client.images.list() for tag in image.tags}
    if GOOD in have and BROKEN in have:
        return
    tar = _rootfs_tar()
    good = client.api.import_image_from_data(
        tar,
        repository="watchdog-test/web",
        tag="good",
        changes=[f"CMD {HTTPD}"],
    )
    broken = client.api.import_image_from_data(
        tar,
        repository="watchdog-test/web",
        tag="broken",
        changes=['CMD ["/bin/sh", "-c", "echo new version cannot start >&2; exit 1"]'],
    )
    if not (good and broken):
        raise RuntimeError("docker import of the busybox root filesystem failed")


def nokill_image(client: docker.DockerClient) -> str:
    """NOKILL, imported into this engine once: an image in which `docker exec kill` fails."""
    if not client.images.list(name=NOKILL):
        client.api.import_image_from_data(
            _rootfs_tar(without=("kill",)), repository="watchdog-test/web", tag="nokill",
            changes=[f"CMD {HTTPD}"],
        )
    return NOKILL


def run_service(
    client: docker.DockerClient,
    *,
    project: str,
    service: str,
    port: int,
    www: Path,
    image: str = GOOD,
    number: int = 1,
    depends_on: str = "",
    restart: str = "no",
    healthcheck: bool = True,
    http_health: bool = False,
    init: bool = True,
    volumes: dict[str, dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> docker.models.containers.Container:
    """A container as Compose would label it, serving `www` on 127.0.0.1:`port`.

    `healthcheck=False` leaves out the Docker healthcheck (the image has none), as in
    the many stacks where only an HTTP probe sees a running service's health fail;
    `http_health=True` makes it ask the server (GET /healthy within 1 s), as real images'
    checks do, so a frozen server fails it where the default `cat /www/healthy` passes.
    `init=False` runs httpd as PID 1 (Docker's `init: false`, the default in Compose).
    `volumes` are mounted besides `www` (a named volume: {name: {"bind": path}}); `labels`
    are added to Compose's (`watchdog.enable`, ...). Any image but BROKEN serves `www`
    (a tag of GOOD such as "watchdog-test/postgres:16" too).
    """
    labels = {
        **(labels or {}),
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "False",
    }
    if depends_on:
        labels["com.docker.compose.depends_on"] = depends_on
    return client.containers.run(
        image,
        command=None
        if image == BROKEN
        else ["/bin/httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"],
        name=f"{project}-{service}-{number}",
        labels=labels,
        network_mode="host",
        init=init,
        detach=True,
        volumes={str(www): {"bind": "/www", "mode": "ro"}, **(volumes or {})},
        environment={"SERVICE": service, "PORT": str(port)},
        restart_policy={"Name": restart} if restart != "no" else None,
        healthcheck={
            # /bin/busybox, not /bin/wget: an engine that kept older images has no such link.
            # No `-T 1`: Debian's static busybox wget lacks it (and crashes on it); Docker's
            # own 1 s timeout fails a check the server does not answer.
            "test": ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null",
                     f"http://127.0.0.1:{port}/healthy"]
            if http_health else ["CMD", "/bin/cat", "/www/healthy"],
            "interval": 1_000_000_000,
            "timeout": 1_000_000_000,
            "retries": 1,
            "start_period": 0,
        }
        if healthcheck
        else None,
    )


class Projects:
    """Unique Compose project names; every container labelled with one is removed at the end."""

    def __init__(self, client: docker.DockerClient, prefix: str = "wdtest") -> None:
        self.client = client
        self.prefix = prefix
        self.names: list[str] = []

    def new(self) -> str:
        name = f"{self.prefix}-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def containers(self, project: str) -> list[docker.models.containers.Container]:
        """The project's containers now; one removed between the list and its inspect (a
        revert replacing it) is left out, as the orchestrator's own listing does."""
        filters = {"label": f"com.docker.compose.project={project}"}
        return list(self.client.containers.list(all=True, filters=filters, ignore_removed=True))

    def __enter__(self) -> Projects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_all()

    def remove_all(self) -> None:
        for name in self.names:
            for container in self.containers(name):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)


def www_folder(tmp_path: Path, name: str, *, healthy: bool = True) -> Path:
    """The folder a test container serves; `healthy` holds its health file."""
    folder = tmp_path / name
    folder.mkdir()
    if healthy:
        (folder / "healthy").write_text("ok\n")
    return folder


@contextlib.contextmanager
def sick_until_restarted(
    client: docker.DockerClient,
    container: docker.models.containers.Container,
    www: Path,
    files: tuple[str, ...] = ("healthy",),
) -> Iterator[None]:
    """A running service whose health fails until its container is (re)started.

    The `files` go away (`healthy`: GET /healthy answers 404 and Docker's healthcheck
    turns `unhealthy`; another name fails only an HTTP check that reads it) and come
    back on the container's next `start` event, as an application whose bad state
    lives in its process is healed by a restart. Docker's own restart policy never
    fires: the process keeps running.
    """
    events = client.events(
        decode=True, filters={"container": container.id, "event": "start"}, since=int(time.time())
    )
    for name in files:
        (www / name).unlink()

    def heal() -> None:
        with contextlib.suppress(Exception):  # the stream is closed at the end
            for _ in events:
                for name in files:
                    (www / name).write_text("ok\n")
                return

    thread = threading.Thread(target=heal, daemon=True, name=f"heal {container.name}")
    thread.start()
    try:
        yield
    finally:
        events.close()
        thread.join(5)
