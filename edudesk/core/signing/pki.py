"""The demo certification authority of `edudesk records demo` and the tests: a root CA, teachers' and the
school's certificates, an expired one, one from a stranger CA, and a CRL; kept in a folder to be reused.

Demo only: keys are stored unencrypted (mode 0600) in the demo folder. RSA keys come from a per-process
pool (the n-th certificate of every demo CA gets the n-th key), because an RSA-2048 key takes ~50 ms to make
and tests make many certificates; the root CAs are EC P-256 and always fresh.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_NAME = "edudesk — CA thử nghiệm"
STRANGER_NAME = "CA lạ — không được tin cậy"
DEFAULT_SCHOOL = "Trường thử nghiệm edudesk"  # the demo CA's organisation; `records demo` names the configured school
# Named in certificates so validators look for revocation info; never fetched (allow_fetching=False).
CRL_URL = "http://crl.edudesk.invalid/demo.crl"
TSA_NAME = "edudesk — dịch vụ dấu thời gian thử nghiệm"
OCSP_NAME = "edudesk — dịch vụ OCSP thử nghiệm"
TSA_DAYS = 6 * 365  # a demo TSA certificate outlives its teachers' (one year) but not the records: refresh-ltv renews

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_RSA_POOL: list[rsa.RSAPrivateKey] = []


def pooled_rsa_key(index: int) -> rsa.RSAPrivateKey:
    """The index-th RSA-2048 key of this process's pool (made on first use)."""
    while len(_RSA_POOL) <= index:
        _RSA_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA_POOL[index]


@dataclass(frozen=True)
class Credential:
    """A certificate with its private key and the CA certificates above it (root last)."""

    name: str
    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def der(self) -> bytes:
        """The certificate, DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def serial(self) -> int:
        """The certificate's serial number."""
        return self.cert.serial_number

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        """The CA certificates above it, DER."""
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    @property
    def key_der(self) -> bytes:
        """The private key, unencrypted PKCS#8 DER (for importing into a token)."""
        return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def pkcs12(self, passphrase: bytes) -> bytes:
        """PKCS#12 bytes (key, certificate, CA chain) under the passphrase."""
        return pkcs12.serialize_key_and_certificates(
            self.name.encode(), self.key, self.cert, list(self.chain),
            serialization.BestAvailableEncryption(passphrase))


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, signing: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=signing, content_commitment=signing, key_encipherment=not (signing or ca),
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _root(common_name: str, now: dt.datetime) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, "edudesk")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # wide window: tests run on fake clocks months away from the real date
            .not_valid_before(now - dt.timedelta(days=730)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Credential(common_name, cert, key)


@dataclass
class DemoPki:
    """A demo CA that issues signer certificates, revokes them and publishes a CRL."""

    ca: Credential
    school: str = DEFAULT_SCHOOL
    issued: list[Credential] = field(default_factory=list)
    revoked: dict[int, dt.datetime] = field(default_factory=dict)
    directory: Path | None = None
    pooled_keys: bool = True  # False: fresh keys (a stranger CA must not share our keys)
    # The local TSA/OCSP/CRL service (cli/localpki.py), "http://127.0.0.1:<port>": certificates issued while it
    # is set point their OCSP (AIA) and CRL distribution point there, so validation fetches them.
    service_url: str = ""
    _stranger: DemoPki | None = field(default=None, repr=False)

    @classmethod
    def create(cls, *, name: str = ROOT_NAME, school: str = DEFAULT_SCHOOL, now: dt.datetime | None = None) -> DemoPki:
        """A fresh demo CA (EC P-256 root, valid from two years back to ten years ahead)."""
        return cls(_root(name, now or dt.datetime.now(dt.UTC)), school)

    @classmethod
    def open(cls, directory: Path, *, school: str = DEFAULT_SCHOOL, now: dt.datetime | None = None) -> DemoPki:
        """The demo CA kept in `directory`, made and saved there the first time."""
        if (directory / "pki.json").exists():
            return cls.load(directory)
        pki = cls.create(school=school, now=now)
        pki.save(directory)
        return pki

    @classmethod
    def load(cls, directory: Path) -> DemoPki:
        """Read a demo CA saved by `save`."""
        meta = json.loads((directory / "pki.json").read_text())
        ca = _read_credential(directory, "ca", meta["ca_name"], ())
        issued = [_read_credential(directory / "issued", f"{entry['serial']:x}", entry["name"], (ca.cert,))
                  for entry in meta["issued"]]
        revoked = {int(s, 16): dt.datetime.fromisoformat(when) for s, when in meta["revoked"].items()}
        return cls(ca, meta["school"], issued, revoked, directory, service_url=meta.get("service_url", ""))

    def save(self, directory: Path) -> None:
        """Write the CA, every issued credential and the revocations to `directory` (keys mode 0600)."""
        self.directory = directory
        (directory / "issued").mkdir(parents=True, exist_ok=True)
        _write_credential(directory, "ca", self.ca)
        for cred in self.issued:
            _write_credential(directory / "issued", f"{cred.serial:x}", cred)
        meta = {"ca_name": self.ca.name, "school": self.school,
                "issued": [{"serial": c.serial, "name": c.name} for c in self.issued],
                "revoked": {f"{s:x}": when.isoformat() for s, when in self.revoked.items()},
                "service_url": self.service_url}
        (directory / "pki.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))

    @property
    def root_der(self) -> bytes:
        """The root certificate, DER (what `[records] trusted_roots` should name)."""
        return self.ca.der

    @property
    def root_pem(self) -> bytes:
        """The root certificate, PEM."""
        return self.ca.pem

    def issue(self, name: str, *, days: int = 365, not_before: dt.datetime | None = None,
              organisation: str | None = None, signing: bool = True, key: PrivateKey | None = None,
              usage: x509.ObjectIdentifier | None = None, ocsp: bool = True) -> Credential:
        """An RSA-2048 certificate for `name` (CN), O= the school; `signing=False` gives a TLS-only one."""
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        key = key or (pooled_rsa_key(len(self.issued)) if self.pooled_keys
                      else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        ca_key = self.ca.key
        eku = usage or (ExtendedKeyUsageOID.EMAIL_PROTECTION if signing else ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (x509.CertificateBuilder().subject_name(_name(name, organisation or self.school))
                   .issuer_name(self.ca.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(signing=signing), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([eku]), critical=usage is not None)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                       [x509.UniformResourceIdentifier(self.crl_url)], None, None, None)]), critical=False))
        if usage == ExtendedKeyUsageOID.OCSP_SIGNING:  # its own answers are not checked (RFC 6960 4.2.2.2.1)
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        elif self.service_url and ocsp:
            builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{self.service_url}/ocsp"))]),
                critical=False)
        cred = Credential(name, builder.sign(ca_key, hashes.SHA256()), key, (self.ca.cert,))
        self.issued.append(cred)
        if self.directory is not None:
            self.save(self.directory)
        return cred

    def issue_organisation(self, school: str | None = None, *, days: int = 1095) -> Credential:
        """The school's organisation certificate (CN and O = the school) for the issuing signature."""
        school = school or self.school
        return self.issue(school, days=days, organisation=school)

    @property
    def crl_url(self) -> str:
        """Where certificates say the CRL is: the local service's, or a name nobody fetches."""
        return f"{self.service_url}/crl/demo.crl" if self.service_url else CRL_URL

    def issue_tsa(self, name: str = TSA_NAME, *, days: int = TSA_DAYS) -> Credential:
        """The demo timestamping authority's certificate (EC P-256, extended key usage timeStamping, critical);
        its revocation is published in the CRL only, so records carry both kinds of revocation data."""
        return self.issue(name, days=days, organisation="edudesk", key=ec.generate_private_key(ec.SECP256R1()),
                          usage=ExtendedKeyUsageOID.TIME_STAMPING, ocsp=False)

    def issue_ocsp_responder(self, name: str = OCSP_NAME, *, days: int = TSA_DAYS) -> Credential:
        """The demo OCSP responder's certificate (EC P-256, OCSPSigning, id-pkix-ocsp-nocheck)."""
        return self.issue(name, days=days, organisation="edudesk", key=ec.generate_private_key(ec.SECP256R1()),
                          usage=ExtendedKeyUsageOID.OCSP_SIGNING)

    def revoke(self, cred: Credential, when: dt.datetime | None = None) -> None:
        """Revoke a certificate from `when` (now by default): in the CRL and the OCSP answers from then on."""
        self.revoked[cred.serial] = when or dt.datetime.now(dt.UTC)
        if self.directory is not None:
            self.save(self.directory)

    def issue_expired(self, name: str, *, now: dt.datetime | None = None) -> Credential:
        """A certificate for `name` that expired 30 days before `now`."""
        now = now or dt.datetime.now(dt.UTC)
        return self.issue(name, days=365, not_before=now - dt.timedelta(days=395))

    def issue_from_stranger(self, name: str) -> Credential:
        """A certificate for `name` from a different CA, which nobody trusts."""
        if self._stranger is None:
            self._stranger = DemoPki.create(name=STRANGER_NAME, school=self.school)
            self._stranger.pooled_keys = False
        return self._stranger.issue(name)

    def find(self, name: str) -> Credential | None:
        """The last credential issued for `name` by this CA, if any."""
        return next((c for c in reversed(self.issued) if c.name == name), None)

    def crl(self, *, now: dt.datetime | None = None, days: int = 7) -> bytes:
        """A CRL (DER) listing the revoked serials, valid from `now` for `days`."""
        now = now or dt.datetime.now(dt.UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.ca.cert.subject)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days))
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                                  critical=False))
        for serial, when in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _write_credential(folder: Path, stem: str, cred: Credential) -> None:
    (folder / f"{stem}.crt.pem").write_bytes(cred.pem)
    key_path = folder / f"{stem}.key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cred.key_pem)


def _read_credential(folder: Path, stem: str, name: str, chain: tuple[x509.Certificate, ...]) -> Credential:
    cert = x509.load_pem_x509_certificate((folder / f"{stem}.crt.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / f"{stem}.key.pem").read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"unexpected key type in {folder / stem}")
    return Credential(name, cert, key, chain)
