"""Pre-flight of a signer's certificate before their turn: expiry, revocation (CRLs), a trusted issuer,
key usage, and the name against the roster (NFC/NFD and case alike)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


@dataclass(frozen=True)
class Finding:
    """One problem of a certificate, in words for the teacher and the admin."""

    code: str  # expired | expires_soon | not_yet_valid | revoked | untrusted | name_mismatch | not_for_signing
    text: str
    blocking: bool


def _norm(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
        else:
            return False
    except Exception:  # noqa: BLE001 - any failure means "not signed by this issuer"
        return False
    return True


def _chains(cert: x509.Certificate, pool: list[x509.Certificate], roots: list[x509.Certificate]) -> bool:
    current = cert
    for _ in range(6):
        if any(_signed_by(current, r) for r in roots):
            return True
        parent = next((c for c in pool if _signed_by(current, c)), None)
        if parent is None or parent == current:
            return False
        current = parent
    return False


def check_certificate(cert_der: bytes, *, roster_name: str, trusted_roots: Sequence[bytes],
                      crls: Sequence[bytes] = (), chain: Sequence[bytes] = (), now: datetime,
                      warn_days: int = 14) -> list[Finding]:
    """Every finding about a signer's certificate (empty: fit to sign)."""
    cert = x509.load_der_x509_certificate(cert_der)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    out: list[Finding] = []
    until = cert.not_valid_after_utc
    if now >= until:
        out.append(Finding("expired", f"chứng thư số đã hết hạn ngày {until:%d/%m/%Y}", True))
    elif until - now <= timedelta(days=warn_days):
        out.append(Finding("expires_soon", f"chứng thư số sắp hết hạn ({until:%d/%m/%Y}, còn "
                                           f"{(until - now).days} ngày)", False))
    if now < cert.not_valid_before_utc:
        out.append(Finding("not_yet_valid", "chứng thư số chưa đến ngày có hiệu lực", True))
    roots = [x509.load_der_x509_certificate(d) for d in trusted_roots]
    pool = [x509.load_der_x509_certificate(d) for d in chain]
    if not _chains(cert, pool, roots):
        out.append(Finding("untrusted", f"chứng thư số do «{cert.issuer.rfc4514_string()}» cấp, không thuộc CA "
                                        "được nhà trường tin cậy", True))
    for data in crls:
        crl = x509.load_der_x509_crl(data)
        if crl.issuer == cert.issuer and crl.get_revoked_certificate_by_serial_number(cert.serial_number):
            out.append(Finding("revoked", "chứng thư số đã bị thu hồi (có trong danh sách thu hồi CRL)", True))
            break
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (usage.digital_signature or usage.content_commitment):
            out.append(Finding("not_for_signing", "chứng thư số không dùng để ký số", True))
    except x509.ExtensionNotFound:
        pass
    if roster_name and _norm(_cn(cert)) != _norm(roster_name) and _norm(roster_name) not in _norm(_cn(cert)):
        out.append(Finding("name_mismatch", f"tên trên chứng thư số «{_cn(cert)}» không khớp với danh sách "
                                            f"«{roster_name}»", False))
    return out


def summarise(findings: Sequence[Finding]) -> str:
    """One Vietnamese line per finding."""
    return "\n".join(f"• {f.text}{' (không ký được)' if f.blocking else ''}" for f in findings)
