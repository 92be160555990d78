"""`records demo` on a fresh install: the demo CA (and its CRL) written into the config file it ran with, so
`records verify`, the console and every later signature trust what the demo signed. Only an empty
`[records] trusted_roots` is filled: a school's real trust list is never mixed with a test CA."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tomllib
from pathlib import Path

from edudesk.core.config import Settings
from edudesk.core.signing.recordtext import school_name

_HEADER = re.compile(r"^\s*\[\s*records\s*\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")


def _set_in_section(lines: list[str], start: int, key: str, value: list[str]) -> None:
    """Replace an empty `key = []` of the section starting at `start`, or add the key under its header."""
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    line = f"{key} = {json.dumps(value, ensure_ascii=False)}  # written by `edudesk records demo`"
    for i in range(start + 1, end):
        if re.match(rf"^\s*{key}\s*=", lines[i]):
            lines[i] = line
            return
    lines.insert(start + 1, line)


def trust_demo_ca(config: Path | None, ca_file: Path, crl_file: Path) -> str:
    """Write the demo CA into `config` when its trust list is empty; what was done, in one line for the CLI."""
    ca, crl = str(ca_file.resolve()), str(crl_file.resolve())
    if config is None or not config.exists():
        return (f"(không có tệp config.toml: hãy thêm vào mục [records] trusted_roots = [\"{ca}\"] và "
                f"crls = [\"{crl}\"] để tin cậy CA thử nghiệm)")
    text = config.read_text(encoding="utf-8")
    records = tomllib.loads(text).get("records", {})
    roots = list(records.get("trusted_roots", []))
    if ca in roots:
        return f"(CA thử nghiệm đã có trong [records] trusted_roots của {config})"
    if roots:
        return (f"([records] trusted_roots của {config} đã có CA khác: CA thử nghiệm KHÔNG được thêm vào (không trộn "
                f"với CA của nhà trường); `records verify` sẽ không tin cậy học bạ demo)")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        lines += ["", "[records]"]
        start = len(lines) - 1
    crls = list(records.get("crls", []))
    _set_in_section(lines, start, "crls", crls + ([crl] if crl not in crls else []))
    _set_in_section(lines, start, "trusted_roots", [ca])
    updated = "\n".join(lines) + "\n"
    if tomllib.loads(updated).get("records", {}).get("trusted_roots") != [ca]:  # never leave a broken config
        return f"(không sửa được {config}: hãy thêm [records] trusted_roots = [\"{ca}\"] bằng tay)"
    config.write_text(updated, encoding="utf-8")
    return f"Đã ghi CA thử nghiệm vào [records] trusted_roots của {config}."


def demo_settings(settings: Settings, *, with_pin: bool = False) -> Settings:
    """Settings for the demo: its CA trusted, its CRL read, the issuer on SoftHSM2 when present, and (with
    `with_pin`) the issuer's PIN, made once in the demo folder, as the secret `EDUDESK_DEMO_PIN`."""
    from edudesk.core.signing.pkcs11 import SOFTHSM_MODULE

    folder = Path(settings.records.demo_dir.replace("{data_dir}", str(settings.data_dir)))
    records = settings.records.model_copy(update={
        "trusted_roots": (str(folder / "ca.crt.pem"),), "crls": (str(folder / "demo.crl"),),
        "school": school_name(settings)})
    if os.path.exists(SOFTHSM_MODULE) and shutil.which("softhsm2-util"):
        issuer = records.issuer.model_copy(update={"kind": "pkcs11", "pkcs11_module": SOFTHSM_MODULE,
                                                   "token_label": "edudesk-demo", "key_label": "phat-hanh",
                                                   "pin_env": "EDUDESK_DEMO_PIN"})
    else:
        issuer = records.issuer.model_copy(update={"kind": "pkcs12", "pkcs12_path": str(folder / "issuer.p12"),
                                                   "passphrase_env": "EDUDESK_DEMO_PIN"})
    demo = settings.model_copy(update={"records": records.model_copy(update={"issuer": issuer})})
    return demo.with_secrets({"EDUDESK_DEMO_PIN": issuer_pin(folder)}) if with_pin else demo


def issuer_pin(folder: Path) -> str:
    """The demo issuer's PIN (PKCS#11) or passphrase (PKCS#12), made once and kept in the demo folder."""
    pin_file = folder / "issuer.pin"
    if not pin_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pin_file.write_text(secrets.token_hex(8))
        pin_file.chmod(0o600)
    return pin_file.read_text().strip()
