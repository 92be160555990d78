"""The demo class end to end: 40 students, 12 subject teachers → ONE sign-now message each in the (fake)
Telegram, counting all 40 records → each taps Ký ngay (3 then confirm on the fake VNPT SmartCA; for the 9
whose PKCS#12 the server holds the tap signs nothing and says to sign with their PIN in the console, which
they do) → homeroom → leadership → issuing signature on a SoftHSM2 token → the admin confirms in the head
chat → every PDF verifies with all 15 signatures in order; a tampered copy does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep, SignSession, Teacher
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.trust import trust_material
from edudesk.core.signing.verify import verify_record
from tests.conftest import wait_until
from tests.fakes.smartca import FakeSmartCa, fake_smartca_fixture  # noqa: F401
from tests.fakes.telegram import FakeTelegram
from tests.records_kit import PIN, RecordsKit, demo_class_roster, records_settings
from tests.servers.softhsm import SoftHsm, softhsm_fixture  # noqa: F401

pytestmark = [pytest.mark.db, pytest.mark.slow]

HEAD_CHAT, ADMIN_USER = -1002001, 999
REMOTE = ("GV03", "GV06", "GV09")


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                fake_smartca: FakeSmartCa, softhsm: SoftHsm) -> AsyncIterator[tuple[RecordsKit, FakeTelegram]]:
    fake = FakeTelegram()  # Telegram's real limits: 30 messages a second, one a second per chat
    await fake.start()
    pki = DemoPki.create()
    org = pki.issue_organisation("Trường THPT Lê Quý Đôn")
    token = await softhsm.load(org)
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", fake.token)
    monkeypatch.setenv("EDUDESK_SMARTCA_SP_PASSWORD", fake_smartca.client_secret)
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PIN", softhsm.pin)
    records = records_settings(
        tmp_path, pki, (fake_smartca.ca.root_der,), notice_delay_seconds=0.3,
        smartca={"url": fake_smartca.url, "sp_id": fake_smartca.client_id, "poll_seconds": 0.3},
        issuer={"kind": "pkcs11", "pkcs11_module": softhsm.module, "token_label": token, "key_label": "signer",
                "pin_env": "EDUDESK_TEST_ISSUER_PIN"})
    settings = settings_factory(
        records=records, web={"enabled": False},
        telegram={"enabled": True, "api_server": fake.url, "head_chat_id": HEAD_CHAT},
        roles={"admin": [f"tg:{ADMIN_USER}"]})
    app: App = await app_factory(settings, inline_analysis=True)
    kit = RecordsKit(app, pki, app.clock, demo_class_roster())  # type: ignore[arg-type]
    await kit.load(skip=REMOTE)
    for n, code in enumerate(REMOTE):
        teacher = await Teacher.get(code=code)
        sub = fake_smartca.add_subscriber(f"0790850012{n:02d}", teacher.name)
        row = await app.records.credentials.register(teacher, "smartca", actor=kit_admin(), user_id=sub.user_id)
        await app.records.credentials.decide(kit_admin(), row.id, True)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    yield kit, fake
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


async def opened(field: str) -> bool:
    return await SignatureStep.filter(field=field, state="open", notified_at__isnull=False).count() == 40


def kit_admin() -> Any:
    from tests.records_kit import ADMIN

    return ADMIN


def sign_now(fake: FakeTelegram, chat: int, role: str) -> list[Any]:
    return [m for m in fake.bot_messages(chat) if "Mời Thầy/Cô ký" in m.text and role in m.text]


async def tap_sign(kit: RecordsKit, fake: FakeTelegram, code: str, role: str, stage: int) -> None:
    """Ký ngay in Telegram: a remote signer's tap starts the session (the phone confirms); a key the server
    holds is never used by a tap: the answer sends the teacher to the console, where the PIN signs."""
    chat = kit.telegram_ids[code]
    await fake.wait_for(lambda: sign_now(fake, chat, role), 60.0)
    sessions = await SignSession.all().count()
    query = fake.press(chat, chat, "Ký ngay")
    answer = await fake.wait_for(lambda: fake.answers.get(query), 20.0)
    if code in REMOTE:
        assert "Đang ký 40 học bạ" in (answer.text or ""), answer.text
        return
    assert "mã PIN" in (answer.text or "") and "Đang ký" not in (answer.text or ""), answer.text
    assert await SignSession.all().count() == sessions, "a chat tap never signs with a key the server holds"
    session = await kit.app.records.start_signing(await kit.actor(code), kit.class_id, stage, pin=PIN)
    assert len(session.steps) == 40


async def test_demo_class_is_signed_end_to_end(world: tuple[RecordsKit, FakeTelegram],
                                               fake_smartca: FakeSmartCa, tmp_path: Path) -> None:
    kit, fake = world
    started = time.monotonic()
    await kit.app.records.start_class(kit.class_id)
    subject_teachers = [c for c in kit.roster.teachers if c.startswith("GV")]
    assert len(subject_teachers) == 12
    for code in subject_teachers:
        chat = kit.telegram_ids[code]
        [message] = await fake.wait_for(lambda chat=chat: sign_now(fake, chat, "Giáo viên bộ môn"), 30.0)
        assert "Số học bạ chờ Thầy/Cô ký: 40\n" in message.text, message.text  # every record, one message
        labels = [b["text"] for b in message.buttons()]
        assert "Ký ngay" in labels
    assert not sign_now(fake, kit.telegram_ids["BGH01"], ""), "leadership is not told before its turn"
    for code in subject_teachers:
        await tap_sign(kit, fake, code, "Giáo viên bộ môn", 1)
    for _ in REMOTE:  # each remote teacher confirms once on the phone for all 40 records
        # (after the local sessions free the records: one confirmation for all 40, not two)
        tran = await fake.wait_for(lambda: fake_smartca.waiting(), 240.0)
        assert len(tran[0].datas) == 40
        fake_smartca.confirm(tran[0].id)
    for code, field, role, stage in (("GV02", "gvcn", "Giáo viên chủ nhiệm", 2),
                                     ("BGH01", "bgh_bgh01", "Ban giám hiệu", 3)):
        await wait_until(lambda field=field: opened(field), 240.0)  # the stage open on every record
        await tap_sign(kit, fake, code, role, stage)
    card = await fake.wait_for(lambda: next((m for m in fake.bot_messages(HEAD_CHAT)
                                             if "Xác nhận hoàn tất" in str(m.buttons())), None), 240.0)
    assert "40 học bạ" in card.text
    query = fake.press(HEAD_CHAT, ADMIN_USER, "Xác nhận hoàn tất")
    await fake.wait_for(lambda: fake.answers.get(query), 10.0)
    assert (await SchoolClass.get(id=kit.class_id)).state == "confirmed"
    elapsed = time.monotonic() - started
    roots, crls = trust_material(kit.app.settings)
    records = await kit.records()
    assert len(records) == 40
    for record in records:
        report = await verify_record(bytes(record.pdf), trusted_roots=roots, crls=crls)
        assert report.ok, (record.student_code, report.problems, [s.problems for s in report.signatures])
        fields = [s.field for s in report.signatures]
        assert len(fields) == 15 and all(f.startswith("gvbm_") for f in fields[:12])
        assert fields[12:] == ["gvcn", "bgh_bgh01", "phat_hanh"]
        assert report.signatures[0].certified
    tampered = bytearray(records[0].pdf)
    at = tampered.find(b"/Producer")  # a byte of the original revision, covered by every signature
    tampered[at + 12] ^= 0x01
    assert not (await verify_record(bytes(tampered), trusted_roots=roots, crls=crls)).ok
    assert fake.count_429 == 0, "the pacer kept within Telegram's limits"
    for code in subject_teachers:  # ONE sign-now message per teacher, class and stage, counting every record
        texts = [m.text for m in sign_now(fake, kit.telegram_ids[code], "Giáo viên bộ môn")]
        assert len(texts) == 1 and "Số học bạ chờ Thầy/Cô ký: 40\n" in texts[0], (code, texts)
    for code, role in (("GV02", "Giáo viên chủ nhiệm"), ("BGH01", "Ban giám hiệu")):
        texts = [m.text for m in sign_now(fake, kit.telegram_ids[code], role)]
        assert len(texts) == 1 and "Số học bạ chờ Thầy/Cô ký: 40\n" in texts[0], (code, texts)
    print(f"40 records × 15 signatures through the workflow in {elapsed:.1f} s")
    assert all(r.state == "signed" for r in await SchoolRecord.filter(klass_id=kit.class_id))
