"""`Pkcs11Signer`: signatures made by a PKCS#11 token or HSM (the school's organisation key for the issuing
signature, a teacher's USB token), on pyHanko's `PKCS11Signer`; and loading a key into a private SoftHSM2.

One PKCS#11 session must not run two operations at once (pyHanko signs in a worker thread, so two tasks
would interleave C_SignInit/C_Sign on the same session): every token call is serialised on one lock.
The log-in state of a token belongs to the whole process, not to a session: a second C_Login fails with
UserAlreadyLoggedIn, and closing a logged-in session logs every session out. So the signers of one token
share one session (and its lock), counted, and the last one to close logs out.
The PIN is handed in by the caller (read from the environment variable the config names); it is never
logged nor put into an error message.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edudesk.core.errors import EdudeskError
from edudesk.core.ports import SignItem, SignOutcome
from edudesk.core.signing.pades import PadesBatch, PadesProfile

if TYPE_CHECKING:
    from pyhanko.stamp import TextStampStyle

log = logging.getLogger(__name__)
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass
class _Shared:
    """One open session of a token, the lock its calls take, and how many signers use it."""

    session: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


_SHARED: dict[tuple[str, str, int], _Shared] = {}  # (module, token label, event loop) -> session
_SHARED_GUARD = threading.Lock()  # opening and closing run in threads


def _take(module: str, token_label: str, pin: str, loop: int) -> _Shared:
    """The token's shared session, opened and logged in by the first user (in a thread)."""
    from pkcs11 import exceptions as p11
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import open_pkcs11_session

    with _SHARED_GUARD:
        entry = _SHARED.get((module, token_label, loop))
        if entry is None:
            criteria = TokenCriteria(label=token_label)
            try:
                session = open_pkcs11_session(module, token_criteria=criteria, user_pin=pin)
            except p11.UserAlreadyLoggedIn:  # by a session of another event loop in this process
                session = open_pkcs11_session(module, token_criteria=criteria, user_pin=None)
            entry = _SHARED[(module, token_label, loop)] = _Shared(session)
        entry.users += 1
        return entry


def _give_back(key: tuple[str, str, int], entry: _Shared) -> None:
    """One user fewer; the last one closes the session (and so logs out)."""
    with _SHARED_GUARD:
        entry.users -= 1
        if entry.users > 0:
            return
        if _SHARED.get(key) is entry:
            del _SHARED[key]
    entry.session.close()


class Pkcs11Error(EdudeskError):
    """The signing token refused or could not be reached (wrong PIN, token absent, key not on it)."""

    code = "pkcs11"


def _translate(exc: Exception, *, token_label: str, key_label: str) -> Pkcs11Error:
    """A Vietnamese message for what python-pkcs11 / pyHanko raised (never containing the PIN)."""
    from pkcs11 import exceptions as p11

    text = str(exc)
    if isinstance(exc, p11.PinIncorrect | p11.PinLenRange | p11.PinInvalid):
        message, code = "Mã PIN của thiết bị ký (token) không đúng.", "pin_incorrect"
    elif isinstance(exc, p11.PinLocked):
        message = "Thiết bị ký đã bị khoá do nhập sai mã PIN quá nhiều lần; hãy liên hệ cán bộ CNTT."
        code = "pin_locked"
    elif isinstance(exc, p11.NoSuchToken | p11.TokenNotPresent) or text.startswith("No token"):
        message = f"Không tìm thấy thiết bị ký có nhãn «{token_label}»; hãy kiểm tra token đã được cắm vào máy."
        code = "token_missing"
    elif "OS exception while loading" in text:
        message = "Không nạp được thư viện PKCS#11 của thiết bị ký; hãy kiểm tra đường dẫn trong cấu hình."
        code = "module"
    elif "private key" in text:
        message, code = f"Không tìm thấy khoá ký «{key_label}» trên thiết bị ký «{token_label}».", "key_missing"
    elif "certificate" in text:
        message = f"Không tìm thấy chứng thư số của khoá «{key_label}» trên thiết bị ký «{token_label}»."
        code = "cert_missing"
    else:
        message, code = f"Thiết bị ký báo lỗi ({type(exc).__name__}); hãy thử lại hoặc liên hệ cán bộ CNTT.", "token"
    return Pkcs11Error(message, code=code)


def _locked_signer_class() -> type:
    """pyHanko's PKCS11Signer with every token call taken under one asyncio lock."""
    from pyhanko.sign.pkcs11 import PKCS11Signer

    class LockedPkcs11Signer(PKCS11Signer):  # type: ignore[misc]
        lock: asyncio.Lock

        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if dry_run:  # a size estimate, no token call
                return await super().async_sign_raw(data, digest_algorithm, dry_run=True)
            async with self.lock:
                return await super().async_sign_raw(data, digest_algorithm)

    return LockedPkcs11Signer


class Pkcs11Signer:
    """A `Signer` on one PKCS#11 token: opens one session on first use and keeps it until `close`."""

    kind = "pkcs11"

    def __init__(self, *, module: str, token_label: str, pin: str, key_label: str = "", key_id: bytes = b"",
                 cert_label: str = "", chain: Sequence[bytes] = (), stamp_style: TextStampStyle | None = None,
                 pades: PadesProfile | None = None) -> None:
        if not (key_label or key_id or cert_label):
            raise Pkcs11Error("Cấu hình thiết bị ký thiếu nhãn khoá (key_label).", code="config")
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self.key_id = key_id
        self.cert_label = cert_label
        self._pin = pin
        self._chain = tuple(chain)
        self._stamp_style = stamp_style
        self._pades = pades  # TSA and trust anchors of signatures above B-B
        self._lock = asyncio.Lock()
        self._session: Any = None
        self._signer: Any = None

    def __repr__(self) -> str:  # no PIN in logs or tracebacks
        return f"Pkcs11Signer(module={self.module!r}, token_label={self.token_label!r}, key_label={self.key_label!r})"

    def _fail(self, exc: Exception) -> Pkcs11Error:
        return _translate(exc, token_label=self.token_label, key_label=self.key_label or self.key_id.hex())

    async def open(self) -> None:
        """Open the session, log in and find the key and certificate (done by the first call otherwise)."""
        async with self._lock:
            if self._signer is None:
                await self._open_locked()

    async def _open_locked(self) -> None:
        from asn1crypto import x509 as asn1_x509
        from pkcs11 import PKCS11Error

        key = (self.module, self.token_label, id(asyncio.get_running_loop()))
        try:
            shared = await asyncio.to_thread(_take, *key[:2], self._pin, key[2])
        except PKCS11Error as exc:
            raise self._fail(exc) from None  # the chained exception may quote the token call, not the PIN
        signer = _locked_signer_class()(
            shared.session, cert_label=self.cert_label or None, key_label=self.key_label or None,
            key_id=self.key_id or None, ca_chain=[asn1_x509.Certificate.load(c) for c in self._chain],
            other_certs_to_pull=None)  # also the CA certificates stored on the token, to embed the chain
        signer.lock = shared.lock
        try:
            async with shared.lock:
                await signer.ensure_objects_loaded()
        except PKCS11Error as exc:
            await asyncio.to_thread(_give_back, key, shared)
            raise self._fail(exc) from None
        if signer.signing_cert.public_key.algorithm == "ec":
            signer.use_raw_mechanism = True  # tokens (SoftHSM2 too) rarely offer hash-then-sign ECDSA
        self._session, self._signer = (key, shared), signer
        log.info("PKCS#11 session open on token %r, key %r", self.token_label, self.key_label)

    async def _ready(self) -> Any:
        if self._signer is None:
            await self.open()
        return self._signer

    async def certificate(self) -> bytes:
        """The token's signing certificate (DER)."""
        signer = await self._ready()
        return bytes(signer.signing_cert.dump())

    async def sign(self, items: Sequence[SignItem]) -> SignOutcome:
        """Sign each item in its existing field with the spec's metadata; token calls are serialised."""
        from pkcs11 import PKCS11Error

        from edudesk.core.signing.engine import sign_one

        signer = await self._ready()
        signed: list[bytes] = []
        batch = PadesBatch(self._pades)
        try:
            for item in items:
                try:
                    signed.append(await sign_one(signer, item, batch, self._stamp_style))
                except PKCS11Error as exc:
                    raise self._fail(exc) from None
        finally:
            await batch.aclose()
        return SignOutcome(signed=tuple(signed))

    async def resume(self, pending: Mapping[str, object], prepared: Sequence[bytes]) -> SignOutcome:
        """A token signs at once and never leaves anything pending."""
        raise Pkcs11Error("Thiết bị ký PKCS#11 không có giao dịch ký đang chờ.", code="no_pending")

    async def close(self) -> None:
        """Give the shared session back (the last signer of the token logs out and closes it)."""
        async with self._lock:
            held, self._session, self._signer = self._session, None, None
            if held is not None:
                key, shared = held
                async with shared.lock:  # not while another signer of the token is mid-call
                    await asyncio.to_thread(_give_back, key, shared)


def write_softhsm_conf(token_dir: Path) -> Path:
    """A SoftHSM2 config keeping its tokens in `token_dir` (made if absent), written beside it."""
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = token_dir.parent / f"{token_dir.name}.conf"
    conf.write_text(f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n")
    return conf


async def load_into_softhsm(*, conf: Path, token_label: str, so_pin: str, pin: str, key_der: bytes,
                            cert_der: bytes, chain: Sequence[bytes] = (), key_label: str = "signer",
                            key_id: bytes = b"\x01", module: str = SOFTHSM_MODULE) -> None:
    """Make a SoftHSM2 token under `conf` and import a private key (PKCS#8 DER), its certificate and chain.

    softhsm2-util is told `conf` in its own environment; the library in this process reads SOFTHSM2_CONF
    when it initialises, so the caller (the command line, a test) points the process at `conf` first. The
    library is re-initialised: sessions opened before on this module are closed. The PINs go on
    softhsm2-util's command line: fine for the demo and tests, not for a production token.
    """
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise Pkcs11Error("Không tìm thấy softhsm2-util (apt-get install softhsm2).", code="softhsm")
    with _SHARED_GUARD:
        _SHARED.clear()  # the library is re-initialised below: sessions opened before are gone
    proc = await asyncio.create_subprocess_exec(
        tool, "--init-token", "--free", "--label", token_label, "--so-pin", so_pin, "--pin", pin,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"SOFTHSM2_CONF": str(conf)})
    out, err = await proc.communicate()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise Pkcs11Error(f"Không khởi tạo được token SoftHSM2 «{token_label}»: {detail}", code="softhsm")
    await asyncio.to_thread(_import_objects, module, token_label, pin, key_der, cert_der, tuple(chain),
                            key_label, key_id)


def _import_objects(module: str, token_label: str, pin: str, key_der: bytes, cert_der: bytes,
                    chain: tuple[bytes, ...], key_label: str, key_id: bytes) -> None:
    import pkcs11
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from pkcs11 import Attribute
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.rsa import decode_rsa_private_key
    from pkcs11.util.x509 import decode_x509_certificate

    key = serialization.load_der_private_key(key_der, password=None)
    # python-pkcs11 decodes PKCS#1 (RSA) and SEC1 (EC) keys, not PKCS#8
    traditional = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    if isinstance(key, rsa.RSAPrivateKey):
        attrs = decode_rsa_private_key(traditional)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        attrs = decode_ec_private_key(traditional)
    else:
        raise Pkcs11Error("Chỉ nạp được khoá RSA hoặc EC vào SoftHSM2.", code="softhsm")
    lib = pkcs11.lib(module)
    lib.reinitialize()  # see the token made by softhsm2-util after the library was first loaded
    token = lib.get_token(token_label=token_label)
    common = {Attribute.TOKEN: True, Attribute.ID: key_id}
    with token.open(rw=True, user_pin=pin) as session:
        session.create_object({**attrs, **common, Attribute.LABEL: key_label, Attribute.PRIVATE: True,
                               Attribute.SENSITIVE: True, Attribute.SIGN: True})
        session.create_object({**decode_x509_certificate(cert_der), **common, Attribute.LABEL: key_label})
        for n, ca_der in enumerate(chain):
            session.create_object({**decode_x509_certificate(ca_der), Attribute.TOKEN: True,
                                   Attribute.LABEL: f"ca-{n}", Attribute.ID: bytes([0xCA, n])})
