"""Signer accounts (seed 003): a teacher registers a signing credential, the admin approves or rejects it;
only an approved credential signs. Registration runs the pre-flight checks so the admin decides knowing
whether the certificate is trusted, valid long enough, not revoked and in the teacher's own name."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from html import escape as esc
from typing import Any

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role, staff_holding
from edudesk.core.ports import Clock, Signer
from edudesk.core.secrets import SecretBox
from edudesk.core.signing.factory import SignerFactory, certificate_facts, seal_pkcs12
from edudesk.core.signing.models import SignerCredential, Teacher
from edudesk.core.signing.pin import check_new_pin
from edudesk.core.signing.service import NotAllowed
from edudesk.core.signing.trust import trust_material
from edudesk.core.signing.unlock import PinGuard
from edudesk.core.text import local_time

REFUSED_FINDINGS = ("untrusted", "revoked")  # a credential that could never make a signature the school trusts


class CredentialRefused(EdudeskError):
    """A credential whose certificate the school cannot trust: not registered at all."""

    code = "cred_untrusted"


def untrusted_text(settings: Settings, findings: Sequence[Any]) -> str:
    """Why a credential is refused, and what the school's admin can do about it."""
    why = "; ".join(f.text for f in findings)
    if not settings.records.trusted_roots:
        return (f"Không đăng ký được chứng thư số: {why}. Máy chủ chưa cấu hình CA tin cậy ([records] trusted_roots "
                "trong config.toml): quản trị viên cần thêm chứng thư gốc của nhà cung cấp chứng thư số trước.")
    return (f"Không đăng ký được chứng thư số: {why}. Hãy dùng chứng thư số do nhà cung cấp được nhà trường tin cậy "
            "cấp, hoặc nhờ quản trị viên thêm CA đó vào [records] trusted_roots.")


KIND_LABELS = {"pkcs12": "Tệp chứng thư số (PKCS#12)", "smartca": "VNPT SmartCA", "csc": "Ký số từ xa (CSC)",
               "pkcs11": "Thiết bị ký (token)"}


class CredentialDesk:
    """Register and decide signing credentials."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, box: SecretBox,
                 signers: SignerFactory) -> None:
        self.settings, self.clock, self.queue, self.box, self.signers = settings, clock, queue, box, signers
        self.pins = PinGuard(settings, clock, queue, box, signers)

    async def register(self, teacher: Teacher, kind: str, *, actor: Actor, pkcs12: bytes = b"", passphrase: str = "",
                       pin: str = "", user_id: str = "", credential_id: str = "") -> SignerCredential:
        """Store a credential as pending (its certificate read and checked) and ask the admins to decide.

        A PKCS#12 file is kept sealed under the teacher's PIN (required here, never stored); a certificate
        that chains to no trusted CA (or is revoked) is refused now rather than failing at signing time."""
        config: dict[str, Any]
        signer: Signer
        if kind == "pkcs12":
            from edudesk.core.signing.pkcs12 import Pkcs12Signer

            pin = check_new_pin(pin)
            signer = Pkcs12Signer(pkcs12, passphrase.encode())  # a wrong passphrase fails here, not at signing
            config = await asyncio.to_thread(seal_pkcs12, self.box, pkcs12, passphrase, pin)
        elif kind in ("smartca", "csc"):
            if not user_id and kind == "smartca" or not credential_id and kind == "csc":
                raise EdudeskError("Thiếu mã thuê bao hoặc mã chứng thư của nhà cung cấp ký số.", code="cred_missing")
            config = {"user_id": user_id, "credential_id": credential_id}
        else:
            raise EdudeskError(f"Loại chứng thư số không hỗ trợ: {kind}.", code="signer_kind")
        now = self.clock.now()
        row = SignerCredential(teacher_id=teacher.id, kind=kind, label=KIND_LABELS[kind], config=config,
                               created_at=now)
        if kind != "pkcs12":
            signer = self.signers.build(row)  # reads the provider's certificate
        try:
            der = await signer.certificate()
            chain = getattr(signer, "chain", None)  # the CA certificates that came with it, to find a trusted root
            config["chain"] = [base64.b64encode(c).decode() for c in (await chain() if chain else ())]
        finally:
            await signer.close()
        facts = certificate_facts(der)
        row.certificate, row.subject_name, row.not_after = der, facts["subject_name"], facts["not_after"]
        findings = self.findings(row, teacher)
        refused = [f for f in findings if f.code in REFUSED_FINDINGS]
        if refused:
            await AuditEvent.create(at=now, actor=actor.label, action="records_refused",
                                    detail={"action": "rec_cred", "reason": "cred_untrusted", "teacher": teacher.code,
                                            "kind": kind, "subject": row.subject_name,
                                            "findings": [f.code for f in findings]})
            raise CredentialRefused(untrusted_text(self.settings, refused))
        await row.save()
        await AuditEvent.create(at=now, actor=actor.label, action="signer_registered",
                                detail={"credential": row.id, "teacher": teacher.code, "kind": kind,
                                        "subject": row.subject_name, "findings": [f.code for f in findings]})
        text = (f"<b>Đăng ký chứng thư số</b> — {esc(teacher.name)} ({esc(teacher.code)})\n"
                f"Loại: {row.label}\nChủ thể: {row.subject_name}\n"
                f"Hết hạn: {local_time(row.not_after, self.settings.general.timezone)}")
        if findings:
            from edudesk.core.signing.preflight import summarise

            text += "\n" + summarise(findings)
        buttons = [[{"label": "Duyệt", "action": "rec_cred_ok", "request_id": row.id},
                    {"label": "Từ chối", "action": "rec_cred_no", "request_id": row.id}]]
        for admin in await staff_holding(Role.ADMIN, self.settings):
            await enqueue_notice(None, self.queue, f"credential:{row.id}:{admin.id}", f"staff:{admin.id}", text,
                                 buttons=buttons)
        self.queue.wake()
        return row

    def findings(self, row: SignerCredential, teacher: Teacher) -> list[Any]:
        """The pre-flight findings of a credential's certificate for its teacher."""
        from edudesk.core.signing.preflight import check_certificate

        roots, crls = trust_material(self.settings)
        chain = [base64.b64decode(c) for c in (row.config or {}).get("chain", [])]
        return check_certificate(bytes(row.certificate or b""), roster_name=teacher.name, trusted_roots=roots,
                                 crls=crls, chain=chain, now=self.clock.now(),
                                 warn_days=self.settings.records.warn_days)

    async def decide(self, actor: Actor, credential_id: int, approve: bool) -> SignerCredential:
        """The admin approves (the teacher's earlier credentials are replaced) or rejects a credential."""
        if not actor.has(Role.ADMIN):
            await AuditEvent.create(at=self.clock.now(), actor=actor.label, action="records_refused",
                                    detail={"action": "rec_cred", "reason": "not_allowed", "credential": credential_id})
            raise NotAllowed("Chỉ quản trị viên duyệt chứng thư số.")
        now = self.clock.now()
        row = await SignerCredential.get_or_none(id=credential_id)
        if row is None or not await SignerCredential.filter(id=credential_id, state="pending").update(
                state="approved" if approve else "rejected", decided_by=actor.label, decided_at=now):
            raise EdudeskError("Chứng thư số này đã được xử lý hoặc không tồn tại.", code="already_decided")
        if approve and row.teacher_id is not None:
            await SignerCredential.filter(teacher_id=row.teacher_id, state="approved").exclude(id=row.id).update(
                state="revoked", decided_by=actor.label, decided_at=now)
        await AuditEvent.create(at=now, actor=actor.label, action="signer_approved" if approve else "signer_rejected",
                                detail={"credential": credential_id})
        teacher = await Teacher.get_or_none(id=row.teacher_id) if row.teacher_id else None
        if teacher is not None and teacher.staff_id is not None:
            text = ("Chứng thư số của Thầy/Cô đã được duyệt; Thầy/Cô có thể ký học bạ." if approve else
                    "Chứng thư số của Thầy/Cô không được duyệt; hãy liên hệ quản trị viên.")
            await enqueue_notice(None, self.queue, f"credential-decided:{credential_id}", f"staff:{teacher.staff_id}",
                                 text)
            self.queue.wake()
        return await SignerCredential.get(id=credential_id)
