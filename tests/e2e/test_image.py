"""The Docker image itself: built from host wheels on the Debian base, run as non-root with its state in a /data
volume, answering /healthz soon after `docker run` (bench/image_start.py times it against the issue's 5 s),
taking mail on its SMTP port, keeping the requests when the container is replaced, and reporting healthy through
its own HEALTHCHECK.

Reached only through `docker` (run, exec of the `edudesk` command, inspect), HTTP and SMTP: nothing of edudesk is
imported here. Skipped, with the reason, where no Docker engine can run (tests/servers/docker.py says why).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from edudesk.core.config import InstitutionSettings
from tests.servers.docker import (
    BuiltImage,
    Containers,
    answers,
    build_image,
    docker,
    ensure_engine,
    host_port,
    inspect,
    wait_for,
)

pytestmark = [pytest.mark.image, pytest.mark.slow]

# The figure, /healthz within 5 s of `docker run`, is measured by bench/image_start.py (median of several
# starts, nothing else running). Here only a bound that says the image starts at all, loaded machine or not.
START_BOUND = 30.0
OFFICE = InstitutionSettings().office_address  # the office mailbox of the built-in example school the image starts with


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    why_not = ensure_engine()
    if why_not:
        pytest.skip(f"no Docker engine on this machine: {why_not}")
    built = build_image(tmp_path_factory.mktemp("image"))
    print(f"\nbase image {built.base}: {'present' if not built.base_seconds else f'{built.base_seconds:.0f} s'}; "
          f"wheels {built.wheels_seconds:.1f} s; docker build {built.build_seconds:.1f} s; "
          f"image {built.size_bytes / 1e6:.0f} MB")
    yield built
    docker("rmi", "--force", built.tag, check=False)
    # The install stage of the legacy builder stays as an untagged image: 440 MB a run.
    # Only stages older than an hour: another test run on this engine may be building its own right now.
    docker("image", "prune", "--force", "--filter", "label=edudesk.stage=install", "--filter", "until=1h",
           check=False)


@pytest.fixture
def containers(image: BuiltImage) -> Iterator[Containers]:
    made = Containers(image)
    yield made
    made.cleanup()


def _send_form(name: str, student_id: str) -> tuple[int, bytes]:
    """A student's account form, as a requester's server sends it to the container's SMTP port; the DATA reply."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"sv{student_id}@gmail.com", OFFICE
    msg["Subject"] = "Đề nghị cấp tài khoản email sinh viên"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@gmail.com>"
    msg.set_content(f"Họ và tên: Nguyễn Văn An\nMSSV: {student_id}\nNgày sinh: 05/03/2007\n"
                    "Lớp: CNTT-01 K70\nĐiện thoại: 0900 000 101\n")
    with smtplib.SMTP("127.0.0.1", host_port(name, 2525), timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(msg["From"])
        smtp.rcpt(OFFICE)
        return smtp.data(msg.as_bytes())


def _requests(name: str) -> list[dict[str, Any]]:
    """`edudesk requests list --json` inside the container (the image's own command and settings)."""
    listed: list[dict[str, Any]] = json.loads(docker("exec", name, "edudesk", "requests", "list", "--json").stdout)
    return listed


def _changed_outside_data(name: str) -> list[str]:
    """What the container wrote to its own file system (volumes are not in `docker diff`)."""
    return [line for line in docker("diff", name).stdout.splitlines() if line.strip()]


def test_image_answers_healthz_as_non_root_keeping_state_only_in_data(containers: Containers) -> None:
    name, took = containers.run(containers.volume())
    print(f"\n/healthz {took:.2f} s after docker run (new volume: database created and migrated)")
    assert took < START_BOUND
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    config = inspect(name)["Config"]
    assert config["User"] == "edudesk"
    assert "/data" in config["Volumes"]
    files = docker("exec", name, "ls", "-a", "/data").stdout.split()
    assert {"edudesk.sqlite3", "secret.key"} <= set(files)
    assert _changed_outside_data(name) == []


def test_mail_to_the_smtp_port_becomes_a_request_that_survives_a_new_container(containers: Containers) -> None:
    volume = containers.volume()
    first, _ = containers.run(volume)
    code, _ = _send_form(first, "20250001")
    assert code == 250
    [request] = wait_for(lambda: _requests(first), 30, "the request of the mail")
    assert (request["number"], request["kind"], request["population"]) == (1, "new_account", "student")
    # docker stop sends SIGTERM to edudesk (PID 1): it stops by itself, well before docker's SIGKILL at 20 s.
    started = time.monotonic()
    docker("stop", "--time", "20", first, timeout=60)
    stopped = time.monotonic() - started
    assert stopped < 15, f"docker stop took {stopped:.1f} s"
    assert inspect(first)["State"]["ExitCode"] != 137
    docker("rm", first)

    second, took = containers.run(volume)
    print(f"\n/healthz {took:.2f} s after docker run on the kept volume; docker stop {stopped:.1f} s")
    assert took < START_BOUND
    assert [r["number"] for r in _requests(second)] == [1]
    code, _ = _send_form(second, "20250002")
    assert code == 250
    wait_for(lambda: sorted(r["number"] for r in _requests(second)) == [1, 2], 30, "the second request")
    assert _changed_outside_data(second) == []


def test_healthcheck_of_the_image_turns_healthy(containers: Containers) -> None:
    name, _ = containers.run(containers.volume())
    check = inspect(name)["Config"]["Healthcheck"]
    assert "/healthz" in " ".join(check["Test"])

    def status() -> str:
        return str(inspect(name)["State"]["Health"]["Status"])

    # The image's own interval (10 s): the first check runs 10 s after the start.
    wait_for(lambda: status() == "healthy", 60, "HEALTHCHECK healthy", interval=0.5)


# deploy/compose.yaml, started by docker-compose. No Docker Hub here: its postgres and redis services cannot be
# pulled, so an override puts the replicas on the host's network, PostgreSQL (a database of this run) and Redis.
PG_ADMIN = os.environ.get("EDUDESK_IMAGE_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EDUDESK_IMAGE_REDIS_URL", "redis://127.0.0.1:6379/0")
BURST = 40


def _pg(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


class Compose:
    """deploy/compose.yaml with the test's override, as project `name`."""

    def __init__(self, work: Path, image: BuiltImage, database_url: str) -> None:
        self.name = f"edudesk-test-{uuid.uuid4().hex[:8]}"
        self.ports = {svc: (_free_port(), _free_port()) for svc in ("edudesk-1", "edudesk-2")}
        self.env = {**os.environ, "EDUDESK_IMAGE": image.tag, "POSTGRES_PASSWORD": "unused-here",
                    "EDUDESK_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
        # compose v1 cannot take `ports` away in an override, and host networking refuses them: the shipped
        # file, resolved by `docker-compose config`, is rewritten (its YAML read by Debian's python3-yaml, which
        # docker-compose itself runs on) and started as the project's only file.
        resolved = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "config"], capture_output=True,
                                  text=True, timeout=60, env=self.env, check=True).stdout
        spec: dict[str, Any] = json.loads(subprocess.run(
            ["/usr/bin/python3", "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=resolved, capture_output=True, text=True, timeout=60, check=True).stdout)
        services = spec["services"]
        del services["postgres"], services["redis"]
        common = {"EDUDESK_DATABASE_URL": database_url, "EDUDESK_REDIS_URL": REDIS_URL,
                  # A job whose worker died is taken over after its lease: 5 s instead of 60 for the test.
                  "EDUDESK_JOBS__LEASE_SECONDS": "5"}
        for svc, conf in services.items():
            conf.pop("ports", None)
            conf.pop("depends_on", None)
            conf["network_mode"] = "host"
            conf["restart"] = "no"
            conf["environment"].update(common)
            if svc in self.ports:
                smtp, web = self.ports[svc]
                conf["environment"].update({"EDUDESK_SMTPD__PORT": str(smtp), "EDUDESK_WEB__PORT": str(web)})
        spec["volumes"] = {k: v for k, v in spec.get("volumes", {}).items() if k != "postgres"}
        self.file = work / "compose.json"
        self.file.write_text(json.dumps(spec))  # JSON is YAML

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker-compose", "-p", self.name, "-f", str(self.file), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def container(self, service: str) -> str:
        return self("ps", "-q", service).stdout.strip()


COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deliver(ports: list[int], student_id: str, message_id: str) -> int | None:
    """Like a sending MTA: the mail to the first replica that takes it (the same Message-ID each time); the port
    that answered 250, or None."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"sv{student_id}@gmail.com", OFFICE
    msg["Subject"] = "Đề nghị cấp tài khoản email sinh viên"
    msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 07 Dec 2026 08:00:00 +0700"
    msg.set_content(f"Họ và tên: Nguyễn Văn An\nMSSV: {student_id}\nNgày sinh: 05/03/2007\nLớp: CNTT-01 K70\n")
    for port in ports:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.send_message(msg)
                return port
        except (OSError, smtplib.SMTPException):
            continue
    return None


def _acknowledged(compose: Compose, image: BuiltImage, service: str) -> list[str]:
    """The recipients of the mails in a replica's outbox (its volume, read by a container of its own)."""
    [volume] = docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={compose.name}",
                      "--filter", f"label=com.docker.compose.volume={service}").stdout.split()
    out = docker("run", "--rm", "-v", f"{volume}:/data", "--entrypoint", "sh", image.tag, "-c",
                 "cat /data/outbox/new/* /data/outbox/cur/* 2>/dev/null | grep '^To: ' || true").stdout
    return [line[4:].strip() for line in out.splitlines()]


def test_compose_replicas_store_each_accepted_mail_once_when_one_is_killed_mid_burst(
        image: BuiltImage, tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("no docker-compose (Debian's docker-compose, compose v1)")
    database = f"edudesk_image_{uuid.uuid4().hex[:10]}"
    try:
        _pg(f'CREATE DATABASE "{database}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN} for the replicas: {exc}")
    compose = Compose(tmp_path, image, PG_ADMIN.rsplit("/", 1)[0] + f"/{database}")
    try:
        compose("run", "--rm", "--no-deps", "migrate", timeout=300)
        compose("up", "-d", "--no-deps", "edudesk-1", "edudesk-2", timeout=300)
        for _smtp, web in compose.ports.values():
            wait_for(lambda web=web: answers(f"http://127.0.0.1:{web}/healthz"), 60, f"replica on {web}")
        killed, survivor = compose.ports["edudesk-1"][0], compose.ports["edudesk-2"][0]
        accepted: dict[str, int] = {}
        for i in range(BURST):
            if i == BURST // 2:
                docker("kill", "--signal", "KILL", compose.container("edudesk-1"))
            student = f"2025{i:04d}"
            order = [killed, survivor] if i % 2 == 0 else [survivor, killed]
            port = _deliver(order, student, f"<burst-{i}-{compose.name}@gmail.com>")
            assert port is not None, f"no replica took mail {i}"
            accepted[f"sv{student}@gmail.com"] = port
        assert set(accepted.values()) == {killed, survivor}
        survivor_box = compose.container("edudesk-2")

        def senders() -> list[str]:
            listed = json.loads(docker("exec", survivor_box, "edudesk", "requests", "list", "--json").stdout)
            return sorted(r["sender"] for r in listed)

        # Every 250 is exactly one request, those the killed replica stored but did not finish included.
        wait_for(lambda: senders() == sorted(accepted), 90, "one request per accepted mail", interval=0.5)
        acks = wait_for(lambda: (lambda a: a if sorted(a) == sorted(accepted) else None)(
            _acknowledged(compose, image, "edudesk-1") + _acknowledged(compose, image, "edudesk-2")),
            90, "one acknowledgement per request", interval=1)
        assert len(acks) == BURST
    finally:
        logs = compose("logs", "--no-color", check=False).stdout
        compose("down", "--volumes", "--timeout", "5", check=False)
        _pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert "Traceback" not in logs, logs[-5000:]
