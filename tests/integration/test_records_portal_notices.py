"""Telling the receiving portal about a record it accepted that was then withdrawn (thu hồi) or adjusted (điều
chỉnh): a class signed end to end on a real database, sent to the fake portal (tests/fakes/records_portal.py)
through the real HTTP adapter, then changed with minutes the leadership signs. The notice goes as its own package
through the `portal_send` job (retries with the queue's backoff on the test clock), the fake portal checks it
against the version it holds, and each record's send state shows it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from lxml import etree

from edudesk.app import build_parser
from edudesk.cli.records import run as records_cli
from edudesk.core.models import AuditEvent, Job
from edudesk.core.signing.changes import start_change
from edudesk.core.signing.lifemodels import ChangeKind, RecordChange
from edudesk.core.signing.models import SchoolRecord
from edudesk.core.signing.portalnotice import notice_errors
from edudesk.core.signing.sending import PortalRefusal, request_send, send_rows
from edudesk.core.signing.sendmodels import RecordNotice, RecordSend, SendState
from edudesk.core.signing.spec import Stage
from tests.fakes.records_portal import NOTICE_NS, FakeRecordsPortal
from tests.integration import test_records_portal as base
from tests.integration.test_records_lifecycle import corrected
from tests.integration.test_records_portal import retry_now, send, states
from tests.records_kit import ADMIN, PIN, RecordsKit

pytestmark = pytest.mark.db

school = base.school  # the fixtures of the portal's tests: a signed, confirmed class and the fake portal
portal = base.portal
REASON = "Học sinh chuyển trường trước khi kết thúc năm học"


async def record(kit: RecordsKit, code: str) -> SchoolRecord:
    return await SchoolRecord.get(klass_id=kit.class_id, student_code=code)


async def change_signed(kit: RecordsKit, code: str, kind: ChangeKind, reason: str = REASON,
                        pdf: bytes | None = None) -> RecordChange:
    """The admin starts the change; the leadership (BGH01) signs its minutes; the jobs run."""
    change = await start_change(kit.app.records, ADMIN, (await record(kit, code)).id, kind, reason, pdf)
    await kit.settle()
    book = (await SchoolRecord.get(id=change.minutes_id)).klass_id
    await kit.app.records.start_signing(await kit.actor("BGH01"), book, Stage.LEADERSHIP, pin=PIN)
    await kit.app.worker.drain()  # the signature, then the notice's send (no time passes: a retry waits)
    return await RecordChange.get(id=change.id)


async def test_a_withdrawal_of_an_accepted_record_goes_to_the_portal_with_its_signed_minutes(
        school: Any, portal: FakeRecordsPortal, capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school()
    await send(kit)
    held = (await states(kit))["HS001"]
    issued = await record(kit, "HS001")
    assert held.state == SendState.SENT and not portal.notices
    change = await change_signed(kit, "HS001", ChangeKind.WITHDRAWAL)
    assert (await record(kit, "HS001")).state == "withdrawn"
    # The withdrawal went at once, by itself, as its own package (not in a class package).
    [upload] = portal.notices
    assert len(portal.uploads) == 1
    assert upload.manifest["format"] == "edudesk-record-notice/1" and upload.manifest["school_code"] == "79000701"
    [entry] = upload.manifest["records"]
    assert entry["status"] == "withdrawn" and entry["reason"] == REASON and entry["new_revision"] is None
    assert entry["replaces"] == {"receipt": held.receipt, "sha256": hashlib.sha256(bytes(issued.pdf)).hexdigest()}
    [revision] = entry["revisions"]
    assert (revision["revision"], revision["kind"], revision["sha256"]) == (0, "withdrawal", held.sha256)
    minutes = bytes((await SchoolRecord.get(id=change.minutes_id)).pdf)
    assert revision["minutes"]["number"] == change.number == "01/2025-2026/BB-THHB"
    assert upload.files == {revision["minutes"]["file"]: minutes}
    assert revision["minutes"]["sha256"] == hashlib.sha256(minutes).hexdigest()
    assert notice_errors(upload.manifest_xml) == []
    doc = etree.fromstring(upload.manifest_xml)
    assert doc.findtext("n:notice/n:status", namespaces=NOTICE_NS) == "withdrawn"
    assert doc.findtext("n:notice/n:replaces/n:receipt", namespaces=NOTICE_NS) == held.receipt
    assert notice_errors(upload.manifest_xml.replace(b">withdrawn<", b">deleted<"))
    # The portal holds it as withdrawn; the record's send state shows the notice and its receipt.
    [notice] = await RecordNotice.all()
    assert (notice.kind, notice.state, notice.replaces_receipt) == ("withdrawn", SendState.SENT, held.receipt)
    assert notice.receipt.startswith("TH-2025-") and portal.withdrawn[
        ("Trường THPT Lê Quý Đôn", "2025-2026", "10A1", "HS001")]["notice"] == notice.receipt
    rows = {r.student_code: r for r in await send_rows(kit.class_id)}
    assert (rows["HS001"].label(), rows["HS001"].notice, rows["HS001"].receipt) == ("đã gửi", "withdrawn",
                                                                                    notice.receipt)
    assert f"Thông báo thu hồi học bạ đã được nhận (biên nhận {held.receipt})" in rows["HS001"].answer
    assert "Withdrawal notice" in {r.student_code: r for r in await send_rows(kit.class_id, "en")}["HS001"].answer
    assert await records_cli(kit.app, build_parser().parse_args(["records", "sent", "10A1"])) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("HS001"))
    assert "đã gửi" in line and notice.receipt in line
    assert f"Thông báo thu hồi học bạ đã được nhận (biên nhận {held.receipt})" in line
    [audit] = await AuditEvent.filter(action="records_portal_notice")
    assert audit.detail["notice"] == "withdrawn" and audit.detail["accepted"] == 1
    # Nothing is left to tell or send; the withdrawn record never goes again.
    with pytest.raises(PortalRefusal, match="không còn học bạ nào"):
        await request_send(kit.app.records, ADMIN, kit.class_id)
    assert portal.times_stored("HS001") == 1


async def test_a_busy_portal_gets_the_withdrawal_again_after_backoff_and_a_refusal_is_lỗi_until_sent_again(
        school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school()
    await send(kit)
    portal.fail_next.append(503)
    await change_signed(kit, "HS002", ChangeKind.WITHDRAWAL)
    [notice] = await RecordNotice.all()
    assert notice.state == SendState.UNSENT and "503" in notice.answer and "tự gửi lại" in notice.answer
    job = await Job.filter(key__startswith="portal-notice:").get()
    assert job.state == "pending" and job.run_after > kit.clock.now()
    await retry_now(kit)
    notice = await RecordNotice.get(id=notice.id)
    assert notice.state == SendState.SENT and notice.attempts == 2 and len(portal.notices) == 1
    keys = [h["Idempotency-Key"] for h in portal.requests[1:]]
    assert len(keys) == 2 and keys[0] == keys[1] == portal.notices[0].package_id
    # A notice the portal refuses (it does not hold that version) is lỗi, the admins are told; sent again later.
    portal.stored.pop(("Trường THPT Lê Quý Đôn", "2025-2026", "10A1", "HS003"))
    await change_signed(kit, "HS003", ChangeKind.WITHDRAWAL, "Hồ sơ lập trùng")
    failed = await RecordNotice.get(record_id=(await record(kit, "HS003")).id)
    assert failed.state == SendState.FAILED and "không phải bản học bạ" in failed.answer
    assert {r.student_code: r.label() for r in await send_rows(kit.class_id)}["HS003"] == "lỗi"
    assert any("từ chối thông báo thu hồi" in j.payload["text"] and "HS003" in j.payload["text"]
               for j in await Job.filter(kind="chat_notice"))
    portal.stored[("Trường THPT Lê Quý Đôn", "2025-2026", "10A1", "HS003")] = {
        "receipt": failed.replaces_receipt, "sha256": failed.replaces_sha256}
    asked = await request_send(kit.app.records, ADMIN, kit.class_id)
    assert asked.queued and asked.records == 1
    await kit.app.worker.drain()
    assert (await RecordNotice.get(id=failed.id)).state == SendState.SENT
    # The class package path refuses a withdrawn record as the portal would (it is never offered again).
    assert "HS003" not in [e["student_code"] for u in portal.uploads[1:] for e in u.manifest["records"]]


async def test_an_adjusted_record_goes_as_a_replacement_of_the_accepted_version_once_issued_again(
        school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school()
    await send(kit)
    held = (await states(kit))["HS002"]
    fixed = corrected(kit, 1)
    change = await change_signed(kit, "HS002", ChangeKind.ADJUSTMENT, "Điểm Toán học kì II nhập nhầm", fixed)
    [notice] = await RecordNotice.all()
    assert (notice.kind, notice.state, notice.replaces_receipt) == ("replaced", SendState.UNSENT, held.receipt)
    assert not portal.notices and not await Job.filter(key__startswith="portal-notice:").exists()
    rows = {r.student_code: r for r in await send_rows(kit.class_id)}
    assert rows["HS002"].label() == "chưa gửi" and held.receipt in rows["HS002"].answer
    # The new revision is signed through every stage and the class confirmed again, then sent.
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    again = await record(kit, "HS002")
    assert again.state == "signed" and again.revision == 1
    await send(kit)
    assert len(portal.uploads) == 1, "the new revision does not go in a class package"
    [upload] = portal.notices
    [entry] = upload.manifest["records"]
    assert entry["status"] == "replaced" and entry["replaces"]["receipt"] == held.receipt
    new = entry["new_revision"]
    assert new["revision"] == 1 and new["sha256"] == hashlib.sha256(bytes(again.pdf)).hexdigest()
    assert upload.files[new["file"]] == bytes(again.pdf)
    [revision] = entry["revisions"]
    assert (revision["kind"], revision["sha256"], revision["minutes"]["number"]) == ("adjustment", held.sha256,
                                                                                     change.number)
    assert notice_errors(upload.manifest_xml) == []
    sent = (await states(kit))["HS002"]
    notice = await RecordNotice.get(id=notice.id)
    assert notice.state == SendState.SENT and sent.state == SendState.SENT
    assert sent.receipt == notice.receipt != held.receipt and sent.sha256 == new["sha256"]
    assert portal.stored[("Trường THPT Lê Quý Đôn", "2025-2026", "10A1", "HS002")]["receipt"] == sent.receipt
    rows = {r.student_code: r for r in await send_rows(kit.class_id)}
    assert rows["HS002"].label() == "đã gửi" and rows["HS002"].receipt == sent.receipt
    with pytest.raises(PortalRefusal, match="không còn học bạ nào"):
        await request_send(kit.app.records, ADMIN, kit.class_id)


async def test_a_record_withdrawn_before_the_portal_accepted_it_tells_the_portal_nothing(
        school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school()
    await change_signed(kit, "HS001", ChangeKind.WITHDRAWAL)
    assert not await RecordNotice.exists() and not portal.requests
    await send(kit)
    [upload] = portal.uploads
    assert sorted(e["student_code"] for e in upload.manifest["records"]) == ["HS002", "HS003"]
    assert not portal.notices
    assert not await RecordSend.filter(record_id=(await record(kit, "HS001")).id).exists()
    # History only: not a record to send, so it is neither listed as chưa gửi nor counted as waiting.
    rows = await send_rows(kit.class_id)
    assert [r.student_code for r in rows] == ["HS002", "HS003"]
    assert all(r.state == SendState.SENT for r in rows)
    from edudesk.core.signing.sending import overview

    assert (await overview([kit.class_id]))[kit.class_id] == {SendState.UNSENT: 0, SendState.SENT: 2,
                                                              SendState.FAILED: 0}
