"""deploy/edudesk.service: the unit for a plain server runs the installed command with systemd's hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "edudesk.service"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native", "SystemCallFilter": "@system-service", "CapabilityBoundingSet": "",
    "UMask": "0077",
}


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


def test_the_unit_runs_migrate_then_the_service_as_its_own_user() -> None:
    service = _service()
    assert service["User"] == "edudesk" and service["WorkingDirectory"] == "/var/lib/edudesk"
    assert service["ExecStartPre"].endswith(" db migrate") and service["ExecStart"].endswith(" run")
    assert service["ExecStart"].split()[0] == service["ExecStartPre"].split()[0]
    assert service["EnvironmentFile"] == "/etc/edudesk/edudesk.env"
    assert service["Restart"] == "on-failure"
    assert service["ReadWritePaths"] == "/var/lib/edudesk"


def test_the_unit_has_every_hardening_option_and_no_capability() -> None:
    service = _service()
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert "AmbientCapabilities" not in service  # only as a commented option, for port 25


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify also checks that the command exists: point it at one that does (the unit names /opt/edudesk).
    unit = tmp_path / "edudesk.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/edudesk/bin/edudesk", "/bin/true"),
                    encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
