"""Signers from stored credentials: a teacher's PKCS#12 (sealed), VNPT SmartCA or CSC account, or the
school's organisation credential (PKCS#11 token, or PKCS#12) from `[records.issuer]`. One signer per
credential is kept open (parsed key, token session, HTTP session) until `close`."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC
from typing import Any

from cryptography import x509

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.ports import Clock, Signer
from edudesk.core.secrets import SecretBox
from edudesk.core.signing.models import SignerCredential
from edudesk.core.signing.pin import PinNotSet, PinRequired, seal_under_pin

PIN_NOT_SET = ("Chứng thư số của Thầy/Cô được đăng ký khi chưa có mã PIN ký nên chưa ký được: hãy đặt mã PIN tại "
               "trang quản trị (Học bạ số → Chứng thư số của tôi → Đặt mã PIN), rồi ký lại.")

ISSUER_LABEL = "Chứng thư số của nhà trường (ký phát hành)"


def seal_pkcs12(box: SecretBox, data: bytes, passphrase: str, pin: str) -> dict[str, Any]:
    """The `config` of a teacher's PKCS#12 credential: the file and its passphrase sealed under the PIN (see
    core/signing/pin.py), then with the server's secret box. Slow on purpose (scrypt): call it in a thread."""
    return {"pin_sealed": box.seal(json.dumps(seal_under_pin(pin, data, passphrase)))}


def open_legacy_pkcs12(box: SecretBox, config: dict[str, Any]) -> tuple[bytes, str]:
    """The file and passphrase of a credential registered before PINs (only to seal them under a PIN)."""
    return base64.b64decode(box.open(config["pkcs12"])), box.open(config["passphrase"])


def certificate_facts(der: bytes) -> dict[str, Any]:
    """What the credential row keeps of a certificate: subject CN and expiry."""
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return {"subject_name": str(names[0].value) if names else cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.astimezone(UTC)}


class SignerFactory:
    """Builds and keeps the signer of each credential."""

    def __init__(self, settings: Settings, clock: Clock, box: SecretBox,
                 fixed: dict[int, Signer] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.box = box
        self._signers: dict[int, Signer] = dict(fixed or {})
        # session id -> (credential id, a teacher's key opened by their PIN for that session)
        self._unlocked: dict[int, tuple[int, Signer]] = {}
        self._pool: Any = None
        self._issuer_lock = asyncio.Lock()

    def pool(self) -> Any:
        """The process pool of the local (PKCS#12) signers, made on first use."""
        if self._pool is None:
            from edudesk.core.signing.engine import SigningPool
            from edudesk.core.signing.pades import pades_profile

            self._pool = SigningPool(general=self.settings.general, pades=pades_profile(self.settings))
        return self._pool

    def hand(self, session_id: int, credential_id: int, signer: Signer) -> None:
        """Keep a signer unlocked by its teacher's PIN for one signing session (memory only)."""
        self._unlocked[session_id] = (credential_id, signer)

    async def forget(self, session_id: int) -> None:
        """The session ended (or was never stored): the key its PIN opened is dropped."""
        held = self._unlocked.pop(session_id, None)
        if held is not None:
            await held[1].close()

    async def for_session(self, session_id: int, credential: SignerCredential) -> Signer:
        """The signer of a session: the PIN-unlocked key handed for it, else the credential's own signer.

        A key is only ever used for the credential it was opened for, even if a session id came round again.
        """
        held = self._unlocked.get(session_id)
        if held is not None and held[0] == credential.id:
            return held[1]
        if held is not None:
            await self.forget(session_id)
        if credential.kind == "pkcs12" and credential.teacher_id is not None:
            raise PinRequired("Phiên ký không còn mã PIN trên máy chủ (máy chủ vừa khởi động lại?): hãy bấm «Ký ngay» "
                              "trên trang quản trị và nhập lại mã PIN.")
        return await self.signer(credential)

    async def signer(self, credential: SignerCredential) -> Signer:
        """The open signer of a credential."""
        if credential.id not in self._signers:
            self._signers[credential.id] = self.build(credential)
        return self._signers[credential.id]

    def build(self, credential: SignerCredential) -> Signer:
        """A new signer for a credential (not kept: the caller closes it)."""
        config, records = credential.config or {}, self.settings.records
        if credential.kind == "pkcs12":
            if credential.teacher_id is None and not config:
                return self._issuer_pkcs12()
            # A teacher's key the server holds opens only with the PIN typed for one session (`unlocked`):
            # never from what the database (and the server's own secret) holds alone.
            if "pin_sealed" in config:
                raise PinRequired("Ký bằng chứng thư số lưu trên máy chủ cần mã PIN của Thầy/Cô: hãy bấm «Ký ngay» "
                                  "trên trang quản trị (Học bạ số) và nhập mã PIN.")
            raise PinNotSet(PIN_NOT_SET)
        if credential.kind == "pkcs11":
            from edudesk.core.signing.pades import pades_profile
            from edudesk.core.signing.pkcs11 import Pkcs11Signer

            issuer = records.issuer
            return Pkcs11Signer(module=issuer.pkcs11_module, token_label=issuer.token_label,
                                key_label=issuer.key_label, pin=self.settings.secret(issuer.pin_env),
                                pades=pades_profile(self.settings))
        if credential.kind == "smartca":
            from edudesk.core.signing.smartca import SmartCaSigner

            if not records.smartca.url:
                raise ConfigError("[records.smartca] chưa có url của VNPT SmartCA.", code="config_records")
            return SmartCaSigner(records.smartca.url, records.smartca.sp_id,
                                 self.settings.secret(records.smartca.sp_password_env), str(config["user_id"]),
                                 credential_id=str(config.get("credential_id", "")), clock=self.clock,
                                 pades=self._pades())
        if credential.kind == "csc":
            from edudesk.core.signing.csc import CscSigner

            token = self.box.open(config["token"]) if config.get("token") else \
                self.settings.secret(records.csc.token_env)
            return CscSigner(url=records.csc.url, token=token, credential_id=str(config["credential_id"]),
                             pades=self._pades())
        raise EdudeskError(f"Loại chứng thư số không hỗ trợ: {credential.kind}.", code="signer_kind")

    def _pades(self) -> Any:
        """The PAdES profile of `[records]` (TSA, trust anchors) the signers above B-B need."""
        from edudesk.core.signing.pades import pades_profile

        return pades_profile(self.settings)

    def _issuer_pkcs12(self) -> Signer:
        from pathlib import Path

        from edudesk.core.signing.pkcs12 import Pkcs12Signer

        issuer = self.settings.records.issuer
        if not issuer.pkcs12_path:
            raise ConfigError("[records.issuer] chưa có pkcs12_path (hoặc kind = \"pkcs11\").", code="config_records")
        data = Path(issuer.pkcs12_path).read_bytes()
        return Pkcs12Signer(data, self.settings.secret(issuer.passphrase_env).encode(), pool=self.pool())

    async def issuer(self) -> SignerCredential:
        """The school's organisation credential row (made from `[records.issuer]` the first time)."""
        async with self._issuer_lock:  # two classes finishing at once make one row, one token session
            row = await SignerCredential.filter(teacher_id__isnull=True, state="approved").order_by("-id").first()
            if row is not None:
                return row
            kind = self.settings.records.issuer.kind
            now = self.clock.now()
            row = SignerCredential(kind=kind, label=ISSUER_LABEL, config={}, state="approved", decided_by="config",
                                   decided_at=now, created_at=now)
            signer = self.build(row)
            try:
                der = await signer.certificate()
                for k, v in certificate_facts(der).items():
                    setattr(row, k, v)
                row.certificate = der
                await row.save()
            except BaseException:
                await signer.close()
                raise
            self._signers[row.id] = signer  # kept open: the issuing session signs with it next
            return row

    async def close(self) -> None:
        """Close every signer and the pool."""
        for signer in [*self._signers.values(), *(held[1] for held in self._unlocked.values())]:
            await signer.close()
        self._signers.clear()
        self._unlocked.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
