"""`make demo` needs only Python; `make test` names the Debian packages it lacks.

The demo runs on the built-in sandbox with an SQLite journal, so its provisioning must
work for a user who has python3 and its venv module and nothing else: no root, no
apt-get, no sudo. The first test runs the demo's real provisioning target (`make
.venv/.demo-provisioned`: the venv and a real pip install of the project) as an
unprivileged user in a copy of the repository, with `apt-get`, `apt`, `sudo` and `dpkg`
replaced by stubs that record the call and fail; it passes only if none of them ran.
The others run scripts/provision.sh unprivileged with components hidden from PATH: it
must print the apt-get line that installs exactly what is missing, and exit 1 without
installing anything.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# What `pip install -e .` and the Makefile read: the rest of the repository is not copied.
PROJECT_FILES = ("Makefile", "pyproject.toml", "README.md", "requirements", "scripts", "watchdog")
# Debian's own interpreter (python3 + python3-venv); the PATH of the test process may
# lead to one the unprivileged user cannot read (pyenv under /root).
DEBIAN_PYTHON = "/usr/bin/python3"
GUARDED = ("apt-get", "apt", "sudo", "dpkg")
UNPRIVILEGED = "nobody"


def _as_unprivileged(folder: Path, argv: list[str], path: str) -> subprocess.CompletedProcess[str]:
    """Run argv as an ordinary user: `nobody` through runuser when we are root."""
    env = [f"HOME={folder / 'home'}", f"PATH={path}", "LANG=C.UTF-8"]
    # pip's settings of this machine (index mirrors, wheel folder) travel with the call.
    env += [f"{key}={value}" for key, value in os.environ.items() if key.startswith("PIP_")]
    command = ["/usr/bin/env", "-i", *env, *argv]
    if os.geteuid() == 0:
        command = ["runuser", "-u", UNPRIVILEGED, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder the unprivileged user owns (pytest's own tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="watchdog-provision-") as name:
        root = Path(name)
        (root / "home").mkdir()
        yield root


def _hand_over(root: Path) -> None:
    """Give the folder to the unprivileged user when the test runs as root."""
    if os.geteuid() != 0:
        return
    uid = int(subprocess.run(["id", "-u", UNPRIVILEGED], capture_output=True, text=True,
                             check=True).stdout)
    for where, dirs, files in os.walk(root):
        os.chown(where, uid, uid)
        for name in dirs + files:
            os.chown(os.path.join(where, name), uid, uid, follow_symlinks=False)


def _stubs(
    root: Path, *, python: str | None = DEBIAN_PYTHON, guarded: tuple[str, ...] = GUARDED
) -> tuple[Path, Path]:
    """A bin folder of recording stubs for the package tools, and the log they write."""
    bin_dir, log = root / "stub-bin", root / "stub-calls.log"
    bin_dir.mkdir()
    for name in guarded:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n')
        stub.chmod(0o755)
    if python is not None:
        (bin_dir / "python3").symlink_to(python)
    return bin_dir, log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_the_demo_provisioning_installs_no_debian_package(folder: Path) -> None:
    project = folder / "repo"
    project.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, project / name)
    bin_dir, log = _stubs(folder)
    _hand_over(folder)

    done = _as_unprivileged(folder, ["make", "-C", str(project), ".venv/.demo-provisioned"],
                            path=f"{bin_dir}:/usr/bin:/bin")

    assert _calls(log) == [], f"make demo called the package tools: {_calls(log)}"
    assert done.returncode == 0, done.stdout + done.stderr
    venv = project / ".venv"
    assert (venv / ".demo-provisioned").exists()
    # The light level only: the suite's stamp and its dev tools are not there.
    assert not (venv / ".provisioned").exists() and not (venv / "bin" / "pytest").exists()
    if os.geteuid() == 0:
        assert (venv / "bin" / "python").lstat().st_uid != 0, "the venv is not the user's"
    # The installed project answers, as the unprivileged user, with what the demo runs.
    ran = _as_unprivileged(folder, [str(venv / "bin" / "python"), "-c",
                                    "import watchdog.demo, watchdog.cli; print('ready')"],
                           path="/usr/bin:/bin")
    assert ran.returncode == 0 and ran.stdout.strip() == "ready", ran.stderr


def test_the_demo_without_venv_names_python3_venv_and_installs_nothing(folder: Path) -> None:
    bin_dir, log = _stubs(folder, python=None)
    # A python3 without venv/ensurepip, as Debian's python3 before python3-venv.
    fake = bin_dir / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    _hand_over(folder)

    done = _as_unprivileged(folder, ["/bin/bash", str(REPO / "scripts" / "provision.sh"), "demo"],
                            path=str(bin_dir))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "sudo apt-get update && sudo apt-get install -y python3-venv\n" in done.stderr
    assert _calls(log) == []


def _expected_heavy_packages() -> list[str]:
    """What provision.sh test must name when PATH holds only python3: everything found
    through PATH or dpkg, plus the two it finds by absolute path when they are absent."""
    need = [] if os.access("/usr/sbin/dockerd", os.X_OK) else ["docker.io"]
    need.append("busybox-static")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        need.append("postgresql")
    need += ["postgresql-client", "prometheus", "prometheus-alertmanager", "docker-compose"]
    if not os.access("/usr/bin/chromium", os.X_OK):
        need.append("chromium")
    return need


def test_make_test_without_root_prints_the_apt_get_line_and_installs_nothing(
    folder: Path,
) -> None:
    bin_dir, log = _stubs(folder)
    _hand_over(folder)

    done = _as_unprivileged(folder, ["/bin/bash", str(REPO / "scripts" / "provision.sh"), "test"],
                            path=str(bin_dir))

    assert done.returncode == 1, done.stdout + done.stderr
    line = "sudo apt-get update && sudo apt-get install -y " + " ".join(_expected_heavy_packages())
    assert line + "\n" in done.stderr, done.stderr
    assert "`make demo` needs none of these" in done.stderr
    # dpkg -s (the busybox-static query) is the one tool it may ask; nothing installs.
    assert _calls(log) == ["dpkg -s busybox-static"]


def test_make_test_as_an_ordinary_user_finds_what_is_installed(folder: Path) -> None:
    """With the login PATH of a non-root user (no /usr/sbin), the components this suite
    runs on (make test installed them before pytest) are all found: no false apt-get line."""
    bin_dir, log = _stubs(folder, guarded=("apt-get", "apt", "sudo"))
    _hand_over(folder)

    done = _as_unprivileged(folder, ["/bin/bash", str(REPO / "scripts" / "provision.sh"), "test"],
                            path=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin")

    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert _calls(log) == []
