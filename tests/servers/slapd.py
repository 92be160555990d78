"""A private, throwaway OpenLDAP slapd for integration tests and benchmarks, and the `slapd` fixture."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from string import Template
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import BASE, MODIFY_REPLACE, Connection, Server, Tls

from tests.servers.dovecot import free_port

SUFFIX = "dc=school,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=edudesk,{SUFFIX}"  # what the backend binds as: write access to the two OUs, not rootdn
STAFF_BASE = f"ou=staff,{SUFFIX}"
STUDENT_BASE = f"ou=students,{SUFFIX}"
POLICY_DN = f"cn=default,ou=policies,{SUFFIX}"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ldap"
AD_SCHEMA = FIXTURES / "ad-lite.ldif"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")





def _template(name: str) -> Template:
    return Template((FIXTURES / name).read_text())


def find_slapd() -> str | None:
    """The slapd binary, also when /usr/sbin is not on PATH."""
    found = shutil.which("slapd")
    if found is None and os.access("/usr/sbin/slapd", os.X_OK):
        found = "/usr/sbin/slapd"
    return found


def ssha(password: str) -> str:
    """An {SSHA} userPassword value (what slapd's olcPasswordHash writes)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the scheme slapd itself uses
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _write_tls(folder: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""
    folder.mkdir()
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edudesk test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(IPv4Address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class SlapdServer:
    """OpenLDAP 2.5 with its own cn=config, mdb database, TLS certificates and ports under a temp dir.

    Suffix dc=school,dc=test with ou=staff and ou=students, a rootdn, a service account (SERVICE_DN,
    `service_password`) allowed to write both OUs, ppolicy with a default policy, userPassword hashed as
    {SSHA}. `ad_schema` adds the AD stand-in schema of tests/fixtures/ldap; `audit` records every write in
    `audit_log` (slapo-auditlog), in order. start() again after stop() reuses the ports and the data:
    that is how tests simulate an outage.
    """

    def __init__(self, *, ad_schema: bool = False, audit: bool = False, binary: str | None = None) -> None:
        self.ad_schema = ad_schema
        self.audit = audit
        self.binary = binary or find_slapd() or "slapd"
        self.host = "127.0.0.1"
        self.port = 0
        self.tls_port = 0
        self.suffix = SUFFIX
        self.root_dn = ROOT_DN
        self.root_password = secrets.token_urlsafe(12)
        self.service_dn = SERVICE_DN
        self.service_password = secrets.token_urlsafe(12)
        self.staff_base = STAFF_BASE
        self.student_base = STUDENT_BASE
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SlapdServer:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ will not run: do not leave the temp dir behind
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The plain ldap:// address."""
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """The ldaps:// address (certificate for 127.0.0.1 signed by `ca_file`)."""
        return f"ldaps://{self.host}:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        """The PEM file of the throwaway CA that signed the server certificate."""
        assert self.root is not None
        return str(self.root / "tls" / "ca.pem")

    @property
    def audit_log(self) -> str:
        """The writes slapd made so far as LDIF (with `audit=True`): the operations as they arrived."""
        assert self.root is not None
        path = self.root / "audit.ldif"
        return path.read_text() if path.exists() else ""

    def start(self) -> SlapdServer:
        """Start (or restart) the server and wait until it answers a bind."""
        if self._proc is not None:
            return self
        if self.root is None:
            self._prepare()
        assert self.root is not None
        # -d keeps slapd in the foreground (our child, stopped by pid); "0" logs nothing to stderr.
        with (self.root / "stderr.log").open("ab") as stderr:
            self._proc = subprocess.Popen(
                [self.binary, "-d", "0", "-F", str(self.root / "slapd.d"), "-h", f"{self.url} {self.ldaps_url}"],
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Stop the server (clients see their connections drop); the data stays for a restart."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(proc.pid, sig)
                proc.wait(grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        proc.poll()

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def connect(self, dn: str | None = None, password: str | None = None, *, tls: bool = False) -> Connection:
        """A bound connection (rootdn by default); raises when the bind fails."""
        conn = self._connection(dn or self.root_dn, self.root_password if password is None else password, tls)
        if not conn.bind():
            raise RuntimeError(f"bind as {dn or self.root_dn} failed: {conn.result['description']}")
        return conn

    def can_bind(self, dn: str, password: str) -> bool:
        """Whether a simple bind as `dn` with `password` succeeds (a real sign-in check)."""
        conn = self._connection(dn, password, False)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()

    def entry(self, dn: str) -> dict[str, list[Any]] | None:
        """All attributes of one entry, operational ones too (pwdReset, pwdAccountLockedTime), as rootdn."""
        conn = self.connect()
        try:
            if not conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "+"]):
                return None
            return {k: list(v) for k, v in conn.response[0]["raw_attributes"].items()}
        finally:
            conn.unbind()

    def _connection(self, dn: str, password: str, tls: bool) -> Connection:
        if tls:
            server = Server(self.ldaps_url, connect_timeout=5,
                            tls=Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file))
        else:
            server = Server(self.url, connect_timeout=5)
        return Connection(server, dn, password, receive_timeout=10)

    def _prepare(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="edudesk-slapd-"))
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        for sub in ("slapd.d", "data"):
            (self.root / sub).mkdir()
        _write_tls(self.root / "tls")
        includes = "".join(f"include: file:///etc/ldap/schema/{name}.ldif\n\n" for name in SCHEMAS)
        if self.ad_schema:
            includes += f"include: file://{AD_SCHEMA}\n\n"
        audit = "\n" + _template("auditlog.ldif").substitute(root=self.root) if self.audit else ""
        config = _template("config.ldif").substitute(
            root=self.root, suffix=self.suffix, root_dn=self.root_dn, root_pw=ssha(self.root_password),
            service_dn=self.service_dn, policy_dn=POLICY_DN, includes=includes, audit=audit,
            ad_index="olcDbIndex: sAMAccountName eq\n" if self.ad_schema else "")
        data = _template("data.ldif").substitute(suffix=self.suffix, policy_dn=POLICY_DN,
                                                 service_dn=self.service_dn, service_pw=ssha(self.service_password))
        (self.root / "config.ldif").write_text(config)
        (self.root / "data.ldif").write_text(data)
        slapadd = [self.binary.replace("slapd", "slapadd") if self.binary.endswith("slapd") else "slapadd",
                   "-F", str(self.root / "slapd.d")]
        for args in (["-n0", "-l", str(self.root / "config.ldif")], ["-n1", "-l", str(self.root / "data.ldif")]):
            done = subprocess.run([*slapadd, "-q", *args], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"slapadd {args[0]} failed:\n{done.stderr[-3000:]}")

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self._proc.returncode}:\n{self._log_tail()}")
            try:
                self.connect().unbind()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.02)
        raise RuntimeError(f"slapd did not answer on port {self.port}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        assert self.root is not None
        path = self.root / "stderr.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def person_attributes(uid: str, domain: str, number: int) -> dict[str, Any]:
    """The attributes LdapProvisioner writes for an inetOrgPerson (openldap flavour defaults)."""
    return {"objectClass": ["inetOrgPerson"], "uid": uid, "cn": f"Nguyễn Văn {number}", "sn": "Nguyễn",
            "givenName": str(number), "displayName": f"Nguyễn Văn {number}", "mail": f"{uid}@{domain}",
            "employeeNumber": f"HS{number:06d}", "description": f"bench-{number}"}


def add_people(server: SlapdServer, count: int, *, base: str = STUDENT_BASE, domain: str = "hs.school.test",
               password: str = "Bench-Pass-1", threads: int = 4, prefix: str = "bench") -> float:
    """Add `count` inetOrgPerson entries as fast as plain ldap3 can; returns the seconds taken.

    The benchmark's ceiling: each entry gets the backend's writes (add, RFC 3062 Password Modify so slapd
    hashes the password, pwdReset TRUE) over `threads` bound service-account connections, without the
    lookup-before-create, retries or asyncio hand-offs the backend adds.
    """
    def work(numbers: range) -> None:
        conn = server.connect(server.service_dn, server.service_password)
        try:
            for number in numbers:
                uid = f"{prefix}{number}"
                dn = f"uid={uid},{base}"
                if not conn.add(dn, attributes=person_attributes(uid, domain, number)):
                    raise RuntimeError(f"add {dn}: {conn.result['description']} {conn.result['message']}")
                if not conn.extend.standard.modify_password(dn, new_password=password):
                    raise RuntimeError(f"password {dn}: {conn.result['description']}")
                if not conn.modify(dn, {"pwdReset": [(MODIFY_REPLACE, ["TRUE"])]}):
                    raise RuntimeError(f"pwdReset {dn}: {conn.result['description']}")
        finally:
            conn.unbind()

    threads = max(1, min(threads, count))
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, range(i, count, threads)) for i in range(threads)]:
            future.result()
    return time.perf_counter() - started


@pytest.fixture(name="slapd")
def slapd_fixture() -> Iterator[SlapdServer]:
    """A running private slapd (ldap:// and ldaps://, ppolicy, AD stand-in schema, audit log); skipped only
    off CI."""
    binary = find_slapd()
    if binary is None:
        message = "slapd is not installed: apt-get install slapd ldap-utils"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with SlapdServer(binary=binary, ad_schema=True, audit=True) as server:
        yield server
