"""A Docker engine for the image tests, and the edudesk image built the way a school without Docker Hub builds it.

The engine: the running one, or Debian's `dockerd` started here in the background (root; it stays up for later
runs, as a system service would). The image: wheels built on the host (`pip wheel`), the Debian base made by
`scripts/make-base-image.sh` (debootstrap + docker import, kept), then `docker build` of a build context that
holds only the Dockerfile and the wheels. Nothing here imports edudesk: the image is reached through the
`docker` command only, so the test does not depend on where the code lives in the checkout.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = os.environ.get("EDUDESK_IMAGE_BASE", "edudesk-base:bookworm")
ENGINE_WAIT = 60.0
# redis wants async-timeout on Python < 3.11.3; Debian 12's python3 is 3.11.2, so pip on a newer host Python
# would leave it out of the wheelhouse (Makefile `wheelhouse` does the same).
EXTRA_WHEELS = ["async-timeout>=4.0.3"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def docker(*args: str, check: bool = True, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    """One `docker` command; fails with its output when `check` and it exits non-zero."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def _engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_engine() -> str | None:
    """None when a Docker engine answers (started here if need be), else why not: the reason to skip."""
    if shutil.which("docker") is None:
        return "no docker command (scripts/install-test-deps.sh installs Debian's docker.io)"
    if _engine_answers():
        return None
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        return "no Docker engine answers and dockerd is not installed (Debian's docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine answers and dockerd needs root to start"
    log = Path(tempfile.gettempdir()) / "edudesk-dockerd.log"
    with log.open("ab") as out:
        # Its own session: it outlives this test run, as the system service it stands in for would.
        subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_for(_engine_answers, ENGINE_WAIT, "dockerd answering", interval=0.5)
    except AssertionError:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        return f"dockerd did not start within {ENGINE_WAIT:.0f} s; {log}:\n" + "\n".join(tail)
    return None


@dataclass
class BuiltImage:
    """The image under test and what building it took."""

    tag: str
    base: str
    base_seconds: float
    wheels_seconds: float
    build_seconds: float
    size_bytes: int


def ensure_base() -> tuple[str, float]:
    """The base image (made from Debian's packages unless it exists) and the seconds making it took.

    Two test runs on one host make it once: the second waits on a lock file, then finds it."""
    with (Path(tempfile.gettempdir()) / "edudesk-base-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_base()


def _ensure_base() -> tuple[str, float]:
    if docker("image", "inspect", BASE_TAG, check=False).returncode == 0:
        return BASE_TAG, 0.0
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise RuntimeError(f"no base image {BASE_TAG} and no debootstrap to make it (Debian's debootstrap)")
    started = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "make-base-image.sh"), BASE_TAG],
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"make-base-image.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return BASE_TAG, time.monotonic() - started


def build_image(work: Path) -> BuiltImage:
    """Wheels on the host, then `docker build` with a context of the Dockerfile and the wheels only."""
    base, base_seconds = ensure_base()
    context = work / "context"
    wheelhouse = context / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDUDESK_", "PIP_REQUIRE"))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheelhouse), str(ROOT),
                           *EXTRA_WHEELS], capture_output=True, text=True, timeout=900, env=env, cwd=work)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    wheels_seconds = time.monotonic() - started
    shutil.copy(ROOT / "Dockerfile", context / "Dockerfile")
    shutil.copy(ROOT / ".dockerignore", context / ".dockerignore")
    tag = f"edudesk-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    docker("build", "--build-arg", f"BASE={base}", "-t", tag, str(context), timeout=1200)
    build_seconds = time.monotonic() - started
    size = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
    return BuiltImage(tag, base, base_seconds, wheels_seconds, build_seconds, size)


def inspect(container: str) -> dict[str, Any]:
    """`docker inspect` of one container."""
    [data] = json.loads(docker("inspect", container).stdout)
    return data


def host_port(container: str, port: int) -> int:
    """The random loopback port docker published for the container's `port`."""
    out = docker("port", container, f"{port}/tcp").stdout.split()
    return int(next(line for line in out if line.startswith("127.0.0.1:")).rsplit(":", 1)[1])


def answers(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def exited(name: str) -> bool:
    """Whether the container has stopped."""
    return not inspect(name)["State"]["Running"]


class Containers:
    """Containers and volumes of one test, removed after it."""

    def __init__(self, image: BuiltImage) -> None:
        self.image = image
        self.names: list[str] = []
        self.volumes: list[str] = []

    def volume(self) -> str:
        name = f"edudesk-test-{uuid.uuid4().hex[:12]}"
        docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def run(self, volume: str, *options: str) -> tuple[str, float]:
        """`docker run -d` with /data on `volume`, ports on random loopback ports; (name, seconds to /healthz)."""
        name = f"edudesk-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        started = time.monotonic()
        docker("run", "-d", "--name", name, "-v", f"{volume}:/data", "-p", "127.0.0.1::2525",
               "-p", "127.0.0.1::8080", *options, self.image.tag)
        url = f"http://127.0.0.1:{host_port(name, 8080)}/healthz"
        wait_for(lambda: answers(url) or exited(name), 60, f"/healthz of {name}", interval=0.05)
        took = time.monotonic() - started
        assert answers(url), f"{name} stopped:\n{docker('logs', name, check=False).stderr[-3000:]}"
        return name, took

    def cleanup(self) -> None:
        """Remove every container and volume made so far; the object can be used again."""
        for name in self.names:
            docker("rm", "--force", "--volumes", name, check=False)
        for volume in self.volumes:
            docker("volume", "rm", "--force", volume, check=False)
        self.names.clear()
        self.volumes.clear()
