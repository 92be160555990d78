"""`edudesk records` trust on the command line, in real subprocesses on a real config and database: the demo
writes its CA into the config it ran with (so `records verify` trusts it, without the fallback), prints the
teachers' PIN; `records credential` seals the file under a PIN and refuses a certificate the school does not
trust when it is registered (also on a fresh install with `trusted_roots = []`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edudesk.core.signing.demo import demo_roster
from edudesk.core.signing.pki import DemoPki

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def edudesk(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command line as the office runs it (stdin is not a terminal)."""
    return subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def test_demo_trusts_its_ca_in_the_config_and_credentials_are_checked_when_registered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndata_dir = "{data}"\n[intake]\nparser_processes = 1\n', encoding="utf-8")
    out = tmp_path / "out"
    demo = edudesk(config, "records", "demo", "--students", "3", "--sign", "--out", str(out))
    assert demo.returncode == 0, demo.stderr
    assert re.search(r"Mã PIN ký của mọi giáo viên demo: \d{6}", demo.stdout), demo.stdout
    ca = (data / "records-demo" / "ca.crt.pem").resolve()
    records = tomllib.loads(config.read_text(encoding="utf-8"))["records"]
    assert records["trusted_roots"] == [str(ca)] and records["crls"] == [str(ca.parent / "demo.crl")]
    pdfs = sorted(map(str, out.glob("HS*.pdf")))
    verify = edudesk(config, "records", "verify", *pdfs)
    assert verify.returncode == 0, verify.stdout
    assert verify.stdout.count("ĐẠT: mọi chữ ký đều hợp lệ") == 3
    assert "chưa cấu hình [records] trusted_roots" not in verify.stdout, "trusted through the config, no fallback"
    assert edudesk(config, "records", "demo", "--students", "3").returncode == 0  # again: the config stays valid
    assert tomllib.loads(config.read_text(encoding="utf-8"))["records"]["trusted_roots"] == [str(ca)]

    name = demo_roster().teachers["GV01"].name
    p12 = tmp_path / "gv01.p12"
    p12.write_bytes(DemoPki.load(ca.parent).issue(name).pkcs12(b"mk-tep"))
    stranger = tmp_path / "la.p12"
    stranger.write_bytes(DemoPki.create(name="CA lạ").issue(name).pkcs12(b"mk-tep"))
    env = {"EDUDESK_P12_PASSPHRASE": "mk-tep", "PIN_GV01": "975310"}
    no_pin = edudesk(config, "records", "credential", "GV01", "--pkcs12", str(p12), env=env)
    assert no_pin.returncode == 2 and "--pin-env" in no_pin.stderr
    refused = edudesk(config, "records", "credential", "GV01", "--pkcs12", str(stranger), "--pin-env", "PIN_GV01",
                      env=env)
    assert refused.returncode == 2 and "Không đăng ký được chứng thư số" in refused.stderr, refused.stderr
    done = edudesk(config, "records", "credential", "GV01", "--pkcs12", str(p12), "--pin-env", "PIN_GV01", env=env)
    assert done.returncode == 0 and "chờ quản trị viên duyệt" in done.stdout, done.stderr
    assert "975310" not in done.stdout + done.stderr

    fresh = tmp_path / "fresh.toml"  # a fresh install trusts nothing yet: refused now, not at signing time
    fresh.write_text(f'[general]\ndata_dir = "{data}"\n[records]\ntrusted_roots = []\n', encoding="utf-8")
    nothing = edudesk(fresh, "records", "credential", "GV01", "--pkcs12", str(p12), "--pin-env", "PIN_GV01", env=env)
    assert nothing.returncode == 2 and "chưa cấu hình CA tin cậy" in nothing.stderr, nothing.stderr
