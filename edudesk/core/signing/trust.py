"""The trust anchors and CRLs of `[records]`: read once from the files config names (PEM or DER)."""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError


def _certificates(path: str) -> list[bytes]:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
    return [x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.DER)]


def _crl(path: str) -> bytes:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.DER)


@functools.cache
def _load(roots: tuple[str, ...], crls: tuple[str, ...]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    try:
        return (tuple(der for path in roots for der in _certificates(path)), tuple(_crl(path) for path in crls))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"[records] không đọc được chứng thư gốc hoặc CRL: {exc}", code="config_records") from None


def trust_material(settings: Settings) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(trusted root certificates, CRLs), DER, from `[records] trusted_roots` and `crls`."""
    return _load(tuple(settings.records.trusted_roots), tuple(settings.records.crls))
