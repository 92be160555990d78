"""The secret key in a backup, sealed under a passphrase: scrypt derives an AES-256-GCM key; the salt and the
scrypt parameters are stored beside the sealed key, so a later version can still open it."""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# scrypt at 2^15 x 8: ~32 MiB and a tenth of a second per try, on the office's small server as on an attacker's.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAX_N = 2**20  # a damaged or hostile file must not make restore allocate gigabytes
_AAD = b"edudesk backup: secret key v1"


class WrongPassphrase(Exception):
    """The passphrase does not open the sealed key."""


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def seal_key(key: bytes, passphrase: str) -> bytes:
    """The key encrypted under the passphrase, as a small JSON document."""
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, key, _AAD)
    doc = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "cipher": "AES-256-GCM",
           "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
           "sealed": base64.b64encode(sealed).decode()}
    return json.dumps(doc, indent=2).encode() + b"\n"


def unseal_key(blob: bytes, passphrase: str) -> bytes:
    """The key back; `WrongPassphrase` when the passphrase does not open it, ValueError for a damaged file."""
    try:
        doc = json.loads(blob)
        n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
        salt, nonce, sealed = (base64.b64decode(doc[k], validate=True) for k in ("salt", "nonce", "sealed"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"sealed key unreadable: {exc}") from None
    if doc.get("kdf") != "scrypt" or doc.get("cipher") != "AES-256-GCM" or not 2 <= n <= _MAX_N or r * p > 64:
        raise ValueError("sealed key: unknown algorithm or parameters")
    try:
        return AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, sealed, _AAD)
    except InvalidTag:
        raise WrongPassphrase from None
