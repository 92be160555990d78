"""Throwaway signing keys for tests and the signing bench: a root CA and RSA-2048 signer certificates with
Vietnamese common names, as DER certificates and PKCS#12 bytes. Made with `cryptography`, nothing cached on
disk; independent of the product's demo CA (core/signing/pki.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSPHRASE = b"mat-khau-thu"


@dataclass(frozen=True)
class TestCa:
    """A self-signed root CA: its certificate (DER) and key."""

    __test__ = False  # not a pytest class
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class TestSigner:
    """A signer's certificate and key, and the PKCS#12 bytes (key, certificate, CA) under PASSPHRASE."""

    __test__ = False
    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    pkcs12: bytes

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "CA Thử nghiệm Trường THPT Lê Quý Đôn") -> TestCa:
    """A fresh root CA (RSA-2048, ten years)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name, "Trường THPT Lê Quý Đôn")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return TestCa(cert, key)


def make_signer(ca: TestCa, common_name: str, *, days: int = 365) -> TestSigner:
    """An RSA-2048 signer certificate issued by `ca`, with its PKCS#12 (key, certificate, CA certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name, "Trường THPT Lê Quý Đôn"))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    p12 = pkcs12.serialize_key_and_certificates(
        common_name.encode(), key, cert, [ca.cert], serialization.BestAvailableEncryption(PASSPHRASE))
    return TestSigner(common_name, cert, key, p12)
