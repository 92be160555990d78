"""Signing that carries legal weight (issue #13): a key the server holds signs only with its teacher's PIN
(wrong PINs refused, audited, locked after five), the database and the server's own secret cannot open it,
a chat tap never signs with it; a signature failing its own check fails the session in plain words; a
credential the school cannot trust is refused when it is registered. Real database, signatures, jobs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.errors import EdudeskError
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.ports import FakeClock
from edudesk.core.signing.credentials import CredentialRefused
from edudesk.core.signing.factory import certificate_facts, seal_pkcs12
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignerCredential, SignSession, Teacher
from edudesk.core.signing.pin import PinError, PinNotSet, PinRequired, open_with_pin
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from tests.records_kit import ADMIN, PIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
CONSOLE = "https://hocba.thpt.edu.vn"


def _kit(app: Any, pki: DemoPki, clock: FakeClock) -> RecordsKit:
    return RecordsKit(app, pki, clock, small_roster())


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordsKit:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki, clock = DemoPki.create(), FakeClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki),
                                web={"enabled": False, "public_url": CONSOLE})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    return _kit(app, pki, clock)


async def _admin(kit: RecordsKit) -> Staff:
    return await Staff.create(name="Quản trị", email="admin@thpt.edu.vn", roles=["admin"], created_at=kit.clock.now())


async def _texts(audience: str) -> list[str]:
    return [j.payload["text"] for j in await Job.filter(kind="chat_notice").order_by("id")
            if j.payload.get("audience") == audience]


async def test_wrong_pin_is_refused_audited_and_locks_then_the_right_pin_signs(kit: RecordsKit) -> None:
    admin = await _admin(kit)
    await kit.load()
    await kit.start()
    gv01 = await kit.actor("GV01")
    start = kit.app.records.start_signing
    for left in (4, 3, 2, 1):
        with pytest.raises(PinError, match=f"Mã PIN không đúng; còn {left} lần thử"):
            await start(gv01, kit.class_id, Stage.SUBJECT, pin="000000")
    with pytest.raises(PinError, match="sai mã PIN 5 lần liên tiếp"):
        await start(gv01, kit.class_id, Stage.SUBJECT, pin="111111")
    with pytest.raises(PinError, match="tạm khoá"):  # locked: even the right PIN waits 15 minutes
        await start(gv01, kit.class_id, Stage.SUBJECT, pin=PIN)
    assert not await SignSession.exists()
    reasons = [e.detail["reason"] for e in await kit.audit("records_refused")]
    assert reasons == ["pin_wrong"] * 4 + ["pin_locked", "pin_locked"]
    for event in await AuditEvent.all():  # a PIN, right or wrong, is never in the audit trail
        assert not any(p in json.dumps(event.detail, ensure_ascii=False) for p in (PIN, "000000", "111111"))
    assert any("bị tạm khoá" in t and "Nguyễn Thị Bích" in t for t in await _texts(f"staff:{admin.id}"))
    kit.clock.advance(timedelta(minutes=15, seconds=1))
    session = await kit.sign("GV01", Stage.SUBJECT)
    assert session.state == "done" and len(session.steps) == 3
    assert await SignatureStep.filter(field="gvbm_gv01", state="signed").count() == 3
    gv02 = await kit.actor("GV02")
    for left in (4, 3):
        with pytest.raises(PinError, match=f"còn {left} lần thử"):
            await start(gv02, kit.class_id, Stage.SUBJECT, pin="000000")
    await start(gv02, kit.class_id, Stage.SUBJECT, pin=PIN)  # the right PIN starts the count again
    teacher = await Teacher.get(code="GV02")
    assert (await SignerCredential.get(teacher_id=teacher.id)).config["pin_failures"] == 0


async def test_wrong_pins_sent_in_parallel_cannot_outrun_the_lock(kit: RecordsKit) -> None:
    import asyncio

    await kit.load()
    await kit.start()
    gv01 = await kit.actor("GV01")
    start = kit.app.records.start_signing
    results = await asyncio.gather(*(start(gv01, kit.class_id, Stage.SUBJECT, pin=f"{n:06d}")
                                     for n in range(100, 112)), return_exceptions=True)
    assert all(isinstance(r, PinError) for r in results), results
    reasons = [e.detail["reason"] for e in await kit.audit("records_refused")]
    assert reasons.count("pin_wrong") <= 4, reasons  # never more than MAX_TRIES PINs checked before the lock
    assert reasons.count("pin_wrong") + reasons.count("pin_locked") == 12, reasons
    with pytest.raises(PinError, match="tạm khoá"):  # the lock holds, also for the right PIN
        await start(gv01, kit.class_id, Stage.SUBJECT, pin=PIN)
    assert not await SignSession.exists()


async def test_the_database_and_the_servers_secret_cannot_open_a_teachers_key(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    teacher = await Teacher.get(code="GV01")
    row = await SignerCredential.get(teacher_id=teacher.id, state="approved")
    assert set(row.config) == {"pin_sealed", "chain"}  # the chain: public CA certificates
    # Everything the server holds (the row and its secret key) opens one layer: a scrypt + AES-GCM box.
    inner = json.loads(kit.app.box.open(row.config["pin_sealed"]))
    assert set(inner) == {"kdf", "n", "r", "p", "salt", "nonce", "sealed"} and inner["n"] >= 2**15
    p12 = kit.pki.find(teacher.name)
    assert p12 is not None and p12.key_der not in base64.b64decode(inner["sealed"])
    assert open_with_pin("000000", inner) is None and open_with_pin(PIN, inner) is not None
    with pytest.raises(PinRequired):  # no signer is ever built from the database alone
        kit.app.signers.build(row)
    # A session whose PIN-opened key is gone (a restart) signs nothing and says to type the PIN again.
    session = await kit.app.records.start_signing(await kit.actor("GV01"), kit.class_id, Stage.SUBJECT, pin=PIN)
    await kit.app.signers.forget(session.id)
    await kit.settle()
    ended = await SignSession.get(id=session.id)
    assert ended.state == "refused" and "nhập lại mã PIN" in ended.detail
    assert not await SignatureStep.filter(state="signed").exists()
    assert any("Chưa ký được" in t for t in await kit.notices("GV01"))


async def test_a_tap_without_the_pin_signs_nothing_and_points_to_the_console(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    [notice] = [j for j in await Job.filter(kind="chat_notice")
                if "Mời Thầy/Cô ký" in j.payload["text"] and j.payload["audience"].endswith(
                    f":{(await Teacher.get(code='GV01')).staff_id}")]
    assert "mã PIN" in notice.payload["text"]
    [sign] = notice.payload["buttons"][0]
    assert sign["label"] == "Ký ngay" and sign["action"] == "noop", "the button opens the page, it never signs"
    assert sign["url"] == f"{CONSOLE}/records?class={kit.class_id}&stage=1#turns"
    with pytest.raises(PinRequired) as refused:  # a tap, /ky or an action link: no PIN, no signature
        await kit.app.records.start_signing(await kit.actor("GV01"), kit.class_id, Stage.SUBJECT)
    assert f"{CONSOLE}/records?class={kit.class_id}&stage=1" in refused.value.message
    assert "không tự ký" in refused.value.message
    assert not await SignSession.exists()
    assert [e.detail["reason"] for e in await kit.audit("records_refused")] == ["pin_required"]


async def test_a_credential_from_before_pins_signs_nothing_until_a_pin_is_set(kit: RecordsKit) -> None:
    admin = await _admin(kit)
    await kit.load(skip=("GV03",))
    await kit.start()
    teacher = await Teacher.get(code="GV03")
    cred, box = kit.pki.issue(teacher.name), kit.app.box
    old = await SignerCredential.create(
        teacher_id=teacher.id, kind="pkcs12", state="approved", created_at=kit.clock.now(), certificate=cred.der,
        config={"pkcs12": box.seal(base64.b64encode(cred.pkcs12(b"cu")).decode()), "passphrase": box.seal("cu")},
        **certificate_facts(cred.der))
    actor = await kit.actor("GV03")
    with pytest.raises(PinNotSet, match="Đặt mã PIN"):
        await kit.app.records.start_signing(actor, kit.class_id, Stage.SUBJECT, pin=PIN)
    with pytest.raises(PinError, match="không giống nhau"):
        await kit.app.records.credentials.pins.set_pin(actor, teacher, old.id, PIN, "246811")
    await kit.app.records.credentials.pins.set_pin(actor, teacher, old.id, PIN, PIN)
    assert "pkcs12" not in (await SignerCredential.get(id=old.id)).config, "the copy under the server's key is gone"
    told = [t for t in await _texts(f"staff:{admin.id}") if "Mã PIN ký" in t and "vừa được đặt" in t]
    assert told and teacher.name in told[0], "whoever set it, the admins hear of it"
    if teacher.staff_id is not None:
        assert any("vừa được đặt" in t for t in await _texts(f"staff:{teacher.staff_id}"))
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "done" and len(session.steps) == 3


async def test_a_signature_failing_its_own_check_fails_the_session_in_plain_words(kit: RecordsKit) -> None:
    admin = await _admin(kit)
    await kit.load(skip=("GV03",))
    await kit.start()
    teacher = await Teacher.get(code="GV03")
    # A credential approved before the school's trust list changed: its chain is no longer trusted.
    stranger = kit.pki.issue_from_stranger(teacher.name)
    await SignerCredential.create(
        teacher_id=teacher.id, kind="pkcs12", state="approved", created_at=kit.clock.now(),
        certificate=stranger.der, config=seal_pkcs12(kit.app.box, stranger.pkcs12(b"pw"), "pw", PIN),
        **certificate_facts(stranger.der))
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "refused", "a signature that fails its check is never reported as signed"
    assert "không qua được bước kiểm tra" in session.detail
    assert "không do nhà cung cấp (CA) mà nhà trường tin cậy cấp" in session.detail
    assert not await SignatureStep.filter(field="gvbm_gv03", state="signed").exists()
    assert all(r.signatures == 0 and r.held_by is None for r in await SchoolRecord.all())
    assert await SignatureStep.filter(field="gvbm_gv03", state="open", session_id__isnull=True).count() == 3
    [told] = [t for t in await kit.notices("GV03") if "Chưa ký được" in t]
    assert "KHÔNG được lưu" in told and "đã ký xong" not in told.lower()
    [admin_text] = [t for t in await _texts(f"staff:{admin.id}") if "Ký học bạ không thành công" in t]
    assert "Lê Thị Hoa" in admin_text and "3 học bạ" in admin_text
    assert [e.detail["session"] for e in await kit.audit("records_sign_refused")] == [session.id]
    assert not await kit.audit("records_sign_done")


@pytest.mark.parametrize("roots", ["none", "other"])
async def test_an_untrusted_credential_is_refused_when_registered(app_factory: Any, settings_factory: Any,
                                                                  tmp_path: Path, roots: str) -> None:
    pki, clock = DemoPki.create(), FakeClock(START)
    records = records_settings(tmp_path, pki)
    if roots == "none":  # a fresh install: nothing trusted yet
        records.update(trusted_roots=[], crls=[])
    app = await app_factory(settings_factory(records=records, web={"enabled": False}), clock=clock,
                            inline_analysis=True)
    kit = _kit(app, pki, clock)
    await kit.load(credentials=False)
    teacher = await Teacher.get(code="GV01")
    stranger = pki.issue_from_stranger(teacher.name) if roots == "other" else pki.issue(teacher.name)
    with pytest.raises(CredentialRefused) as refused:
        await app.records.credentials.register(teacher, "pkcs12", actor=ADMIN, pkcs12=stranger.pkcs12(b"pw"),
                                               passphrase="pw", pin=PIN)
    assert "Không đăng ký được chứng thư số" in refused.value.message
    assert ("chưa cấu hình CA tin cậy" in refused.value.message) == (roots == "none")
    assert not await SignerCredential.exists()
    [event] = await kit.audit("records_refused")
    assert event.detail["reason"] == "cred_untrusted" and "untrusted" in event.detail["findings"]


async def test_registering_a_file_key_needs_a_pin(kit: RecordsKit) -> None:
    await kit.load(credentials=False)
    teacher = await Teacher.get(code="GV01")
    p12 = kit.pki.issue(teacher.name).pkcs12(b"pw")
    with pytest.raises(EdudeskError, match="Mã PIN ký cần từ 6"):
        await kit.app.records.credentials.register(teacher, "pkcs12", actor=ADMIN, pkcs12=p12, passphrase="pw",
                                                   pin="123")
    assert not await SignerCredential.exists()


class _BusyClock(FakeClock):
    """A loaded machine's clock: every look at it finds time has passed (0.4 s)."""

    def now(self) -> datetime:
        self.advance(timedelta(seconds=0.4))
        return super().now()


async def test_the_sign_now_notice_counts_every_record_even_if_the_worker_runs_mid_opening(
        app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki, clock = DemoPki.create(), _BusyClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki, notice_delay_seconds=1.0),
                                web={"enabled": False})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster(students=12))
    await kit.load()
    opening = asyncio.ensure_future(app.records.start_class(kit.class_id))  # noqa: TID251 - test harness
    while not opening.done():  # the worker keeps running due jobs while the class opens (as under load)
        await app.worker.drain()
        await asyncio.sleep(0)
    await opening
    await kit.settle()
    for code in ("GV01", "GV02", "GV03"):
        texts = [t for t in await kit.notices(code) if "Mời Thầy/Cô ký" in t]
        assert len(texts) == 1 and "Số học bạ chờ Thầy/Cô ký: <b>12</b>" in texts[0], (code, texts)
