"""The wheel works anywhere: built from the checkout, installed into a fresh venv outside it, run from a folder
that is not the checkout, as `pip install` or pipx leave it on a server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = re.compile(r"web console on (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class Installed:
    """A venv holding only the wheel and its dependencies, and a working folder with its config.toml."""

    bin: Path
    site: Path
    work: Path
    env: dict[str, str]

    def edudesk(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The installed `edudesk` command, run from the working folder; fails the test on a non-zero exit."""
        done = subprocess.run([str(self.bin / "edudesk"), *args], cwd=self.work, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        return done


def _clean_env() -> dict[str, str]:
    """The caller's environment without anything that would point the venv back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EDUDESK_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> float:
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.is_relative_to(ROOT)
    env = _clean_env()
    dist = base / "dist"
    # pip fetches the build back end (setuptools>=77) from its cache, PIP_FIND_LINKS or the index.
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
                 base, env, 600)
    [wheel] = dist.glob("edudesk-*.whl")
    venv.create(base / "venv", with_pip=False, symlinks=True)
    python = base / "venv" / "bin" / "python"
    # This interpreter's pip installs into the new venv (--python): no ensurepip, the same cache and indexes.
    took = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
                base, env, 900)
    print(f"\nwheel built in {built:.1f} s, installed with its dependencies in {took:.1f} s")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=env).stdout.strip())
    work = base / "work"
    work.mkdir()
    (work / "config.toml").write_text(
        '[general]\ndata_dir = "data"\n'
        '[intake]\nparser_processes = 1\n'
        '[smtpd]\nport = 0\n'
        '[web]\nport = 0\n', encoding="utf-8")
    return Installed(bin=python.parent, site=site, work=work, env=env)


def test_the_wheel_carries_the_templates_inside_the_package(installed: Installed) -> None:
    for generic in ("templates", "core", "mailer", "bot", "cli", "directories", "main.py"):
        assert not (installed.site / generic).exists(), generic  # one import package, `edudesk`, nothing else
    package = installed.site / "edudesk" / "templates"
    for name in ("email/received.vi.txt.j2", "chat/request.html.j2", "web/base.html.j2", "web/static/live.js",
                 "forms/BM01.docx", "forms/BM02.docx", "forms/BM-CNTT31.xlsx"):
        assert (package / name).is_file(), name
    assert (installed.site / "edudesk" / "core" / "signing" / "fonts" / "DejaVuSans.ttf").is_file()
    assert (package / "config.toml").is_file()  # the example `edudesk init` starts from


def test_it_imports_from_the_venv_without_the_checkout(installed: Installed) -> None:
    probe = ("import edudesk.app as main, edudesk.bot.web.render as r, edudesk.resources as e; "
             "print(main.__file__); print(r.STATIC); print(e.templates_dir())")
    done = subprocess.run([str(installed.bin / "python"), "-c", probe], cwd=installed.work, env=installed.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    main_file, static, templates = done.stdout.split()
    for path in (main_file, static, templates):
        assert Path(path).is_relative_to(installed.site), path
        assert not Path(path).is_relative_to(ROOT), path
    assert Path(static).is_dir()


def test_version_from_the_command_and_from_python_m(installed: Installed) -> None:
    from importlib.metadata import version

    expected = f"edudesk {version('edudesk')}"
    assert installed.edudesk("--version").stdout.strip() == expected
    done = subprocess.run([str(installed.bin / "python"), "-m", "edudesk", "--version"], cwd=installed.work,
                          env=installed.env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, expected)


@pytest.fixture
def service(installed: Installed) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    installed.edudesk("db", "migrate")
    proc = subprocess.Popen([str(installed.bin / "edudesk"), "run"], cwd=installed.work, env=installed.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_migrate_then_run_answers_on_the_web_console(service: tuple[subprocess.Popen[str], list[str]]) -> None:
    proc, lines = service
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    base = ""
    while not base:
        line = proc.stdout.readline()  # the service prints the console's address once it listens
        assert line or proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        lines.append(line)
        if found := CONSOLE.search(line):
            base = found.group(1)
    with urllib.request.urlopen(f"{base}/static/live.js", timeout=30) as answer:
        assert answer.status == 200 and b"/api/version" in answer.read()
    try:
        urllib.request.urlopen(f"{base}/", timeout=30)  # a page rendered from the packaged templates
    except urllib.error.HTTPError as refused:  # not signed in: a page of its own, never a 500
        assert refused.code < 500, refused.read()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    lines.append(out)
    assert proc.returncode in (0, -signal.SIGTERM), "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_records_demo_signs_two_students(installed: Installed) -> None:
    out = installed.work / "signed"
    installed.edudesk("records", "demo", "--students", "2", "--sign", "--out", str(out), timeout=600)
    assert len(list(out.glob("*.pdf"))) == 2
    assert (out / "manifest.json").is_file()


def test_init_writes_a_commented_config_from_the_shipped_example(installed: Installed) -> None:
    target = installed.work / "init" / "config.toml"
    target.parent.mkdir()
    installed.edudesk("init", "--config", str(target), "--name", "Trường THPT Nguyễn Huệ", "--short-name", "THPT NH",
                      "--domain", "thpt-nguyenhue.edu.vn", "--office-address", "cntt@thpt-nguyenhue.edu.vn")
    text = target.read_text(encoding="utf-8")
    assert 'name = "Trường THPT Nguyễn Huệ"' in text and "[mail_oauth]" in text  # the whole example, filled in
