"""The secret key in a backup, sealed under a passphrase: scrypt derives an AES-256-GCM key; the salt and the
scrypt parameters are stored beside the sealed key, so a later version can still open it. The same passphrase
signs the manifest (an HMAC over every member's hash), so an altered archive is refused before it is restored."""

from __future__ import annotations

import base64
import hashlib
import hmac
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


_MANIFEST_INFO = b"edudesk backup: manifest v1"


def sign_manifest(manifest: bytes, passphrase: str) -> bytes:
    """An HMAC-SHA256 of the manifest (which holds every member's hash) under a key derived from the passphrase:
    whoever lacks the passphrase cannot alter a member and the manifest to match."""
    salt = os.urandom(16)
    mac = hmac.new(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P), _MANIFEST_INFO + manifest,
                   hashlib.sha256).digest()
    doc = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "mac": "HMAC-SHA256",
           "salt": base64.b64encode(salt).decode(), "value": base64.b64encode(mac).decode()}
    return json.dumps(doc, indent=2).encode() + b"\n"


def manifest_signed(manifest: bytes, signature: bytes, passphrase: str) -> bool:
    """Whether `signature` is the passphrase's HMAC of `manifest`; ValueError for an unreadable signature."""
    try:
        doc = json.loads(signature)
        n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
        salt, value = (base64.b64decode(doc[k], validate=True) for k in ("salt", "value"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"manifest signature unreadable: {exc}") from None
    if doc.get("kdf") != "scrypt" or doc.get("mac") != "HMAC-SHA256" or not 2 <= n <= _MAX_N or r * p > 64:
        raise ValueError("manifest signature: unknown algorithm or parameters")
    mac = hmac.new(_derive(passphrase, salt, n, r, p), _MANIFEST_INFO + manifest, hashlib.sha256).digest()
    return hmac.compare_digest(mac, value)
