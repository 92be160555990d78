"""A teacher's key held by the server, sealed under the teacher's own PIN: scrypt derives an AES-256-GCM key
from the PIN, which seals the PKCS#12 file and its passphrase (the result is sealed once more with the
server's secret box). The PIN is never stored, so neither a copy of the database nor the server alone can
sign: every signature needs the teacher to type the PIN. Wrong PINs are counted per credential."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from edudesk.core.errors import EdudeskError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~32 MiB and ~0.1 s per try: a stolen database resists guessing
MIN_PIN, MAX_PIN = 6, 64
MAX_TRIES = 5  # wrong PINs in a row before the credential is locked
LOCK_TIME = timedelta(minutes=15)
_AAD = b"edudesk:pkcs12-under-pin:v1"


class PinError(EdudeskError):
    """A PIN refused: wrong, locked after too many tries, or not fit to be a PIN."""

    code = "pin_wrong"


class PinRequired(EdudeskError):
    """Signing with a key the server holds needs the teacher's PIN, which only the web console asks for."""

    code = "pin_required"


class PinNotSet(EdudeskError):
    """A credential registered before PINs existed: it signs nothing until its teacher sets a PIN."""

    code = "pin_not_set"


def needs_pin(credential: Any) -> bool:
    """Whether signing with this credential (a SignerCredential) needs its teacher's PIN: a key the server holds."""
    return credential is not None and credential.kind == "pkcs12" and credential.teacher_id is not None


def check_new_pin(pin: str, repeat: str | None = None) -> str:
    """The PIN to set (6 to 64 characters, typed twice alike when a repeat is given), or PinError."""
    pin = pin.strip()
    if not MIN_PIN <= len(pin) <= MAX_PIN:
        raise PinError(f"Mã PIN ký cần từ {MIN_PIN} đến {MAX_PIN} ký tự.", code="pin_format")
    if repeat is not None and repeat.strip() != pin:
        raise PinError("Hai lần nhập mã PIN không giống nhau.", code="pin_format")
    return pin


def _key(pin: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pin.strip().encode())


def seal_under_pin(pin: str, pkcs12: bytes, passphrase: str) -> dict[str, Any]:
    """The PKCS#12 file and its passphrase sealed under a key derived from the PIN (CPU work: ~0.1 s)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps({"pkcs12": base64.b64encode(pkcs12).decode(), "passphrase": passphrase}).encode()
    sealed = AESGCM(_key(pin, salt)).encrypt(nonce, plain, _AAD)
    return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(nonce).decode(), "sealed": base64.b64encode(sealed).decode()}


def open_with_pin(pin: str, box: dict[str, Any]) -> tuple[bytes, str] | None:
    """(PKCS#12 file, passphrase) when the PIN is right, else None (CPU work: ~0.1 s)."""
    key = _key(pin, base64.b64decode(box["salt"]), int(box["n"]), int(box["r"]), int(box["p"]))
    try:
        plain = AESGCM(key).decrypt(base64.b64decode(box["nonce"]), base64.b64decode(box["sealed"]), _AAD)
    except InvalidTag:
        return None
    data = json.loads(plain)
    return base64.b64decode(data["pkcs12"]), str(data["passphrase"])
