"""Sending issued records to the receiving portal: a class signed end to end on a real database (real PKCS#12
signatures, the issuing signature included), confirmed by the admin, then uploaded by the `portal_send` job
through the real HTTP adapter to the fake portal (tests/fakes/records_portal.py), which checks the package as a
real one would. Retries go through the job queue with the test clock; nothing sleeps for a deadline."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edudesk.app import build_parser
from edudesk.cli.records import run as records_cli
from edudesk.core.errors import NotAllowed
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import FakeClock, PortalError
from edudesk.core.signing.complete import export_class
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.portal import build_packages, manifest_errors
from edudesk.core.signing.sending import PortalRefusal, request_send, send_rows
from edudesk.core.signing.sendmodels import RecordSend, SendState
from edudesk.core.signing.spec import Stage
from edudesk.mailer.portal_http import HttpRecordsPortal
from tests.fakes.records_portal import NS, FakeRecordsPortal
from tests.records_kit import ADMIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
TOKEN_ENV = "EDUDESK_TEST_PORTAL_TOKEN"
CODES = ["HS001", "HS002", "HS003"]


@pytest.fixture
async def portal() -> AsyncIterator[FakeRecordsPortal]:
    async with FakeRecordsPortal() as fake:
        yield fake


@pytest.fixture
def school(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           portal: FakeRecordsPortal) -> Callable[..., Any]:
    """A class of three records, signed by every teacher and the school, confirmed by the admin; `portal`
    overrides the [portal] settings, `token` what the school's variable holds."""
    async def make(*, confirm: bool = True, sign: bool = True, token: str | None = None,
                   **overrides: Any) -> RecordsKit:
        monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
        monkeypatch.setenv(TOKEN_ENV, portal.token if token is None else token)
        pki = DemoPki.create()
        clock = FakeClock(START)
        config = {"enabled": True, "url": portal.upload_url, "token_env": TOKEN_ENV, "school_code": "79000701",
                  **overrides}
        settings = settings_factory(records=records_settings(tmp_path, pki), web={"enabled": False}, portal=config)
        app = await app_factory(settings, clock=clock, inline_analysis=True)
        kit = RecordsKit(app, pki, clock, small_roster())
        await kit.load()
        await kit.start()
        if sign:
            for code in ("GV01", "GV02", "GV03"):
                await kit.sign(code, Stage.SUBJECT)
            await kit.sign("GV02", Stage.HOMEROOM)
            await kit.sign("BGH01", Stage.LEADERSHIP)
            await kit.settle()  # the issuing signature, by the server
        if confirm:
            await app.records.confirm_class(ADMIN, kit.class_id)
        return kit
    return make


async def send(kit: RecordsKit) -> None:
    """The admin taps "Gửi lên hệ thống"; the worker runs what is due."""
    await request_send(kit.app.records, ADMIN, kit.class_id)
    await kit.app.worker.drain()


async def states(kit: RecordsKit) -> dict[str, RecordSend]:
    rows = await RecordSend.filter(klass_id=kit.class_id).prefetch_related("record")
    return {r.record.student_code: r for r in rows}


async def send_job(kit: RecordsKit) -> Job:
    return await Job.filter(kind="portal_send").order_by("-id").first()  # type: ignore[return-value]


async def retry_now(kit: RecordsKit) -> None:
    """Let the queue's backoff pass on the test clock (at most [jobs].backoff_max_seconds) and run the retry."""
    kit.clock.advance(timedelta(seconds=1))
    await kit.app.worker.drain()


async def test_an_issued_class_goes_as_one_package_and_every_record_gets_its_receipt(
        school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school()
    await send(kit)
    [upload] = portal.uploads
    assert sorted(upload.files) == sorted(e["file"] for e in upload.manifest["records"])
    sent = await states(kit)
    assert sorted(sent) == CODES
    for code in CODES:
        row = sent[code]
        assert row.state == SendState.SENT and row.sent_at == kit.clock.now() and row.attempts == 1
        assert row.receipt == next(r["receipt"] for r in upload.answer["records"] if r["student_code"] == code)
        assert row.receipt.startswith("TN-2025-") and row.answer == ""
    assert len({r.receipt for r in sent.values()}) == 3
    headers = portal.requests[0]
    assert headers["Authorization"] == f"Bearer {portal.token}" and headers["Idempotency-Key"] == upload.package_id
    assert (await send_job(kit)).state == "done"
    [audit] = await AuditEvent.filter(action="records_portal_sent")
    assert audit.detail["accepted"] == 3 and audit.detail["refused"] == 0
    # Nothing is left to send: asking again is refused with a line that says so, and nothing goes.
    with pytest.raises(PortalRefusal, match="đã nhận mọi học bạ"):
        await request_send(kit.app.records, ADMIN, kit.class_id)
    assert len(portal.requests) == 1


async def test_the_package_carries_the_exports_content_and_its_xml_passes_the_xsd(school: Any, tmp_path: Path,
                                                                                   portal: FakeRecordsPortal) -> None:
    kit = await school()
    exported = await export_class(kit.class_id, tmp_path / "out")
    await send(kit)
    [upload] = portal.uploads
    sent = upload.manifest
    assert sent["format"] == "edudesk-class-package/1" and sent["school_code"] == "79000701"
    assert (sent["school"], sent["year"], sent["class"]) == ("Trường THPT Lê Quý Đôn", "2025-2026", "10A1")
    assert sent["confirmed_by"] == exported["confirmed_by"] and sent["confirmed_at"] == exported["confirmed_at"]
    for mine, theirs in zip(sent["records"], exported["records"], strict=True):
        theirs.pop("revisions", None)  # the export's archive of earlier versions (files of the export only)
        assert {k: mine[k] for k in theirs} == theirs  # every fact of the export, unchanged
        assert mine["size"] == len((tmp_path / "out" / theirs["file"]).read_bytes())
        pdf = upload.files[theirs["file"]]
        assert pdf == (tmp_path / "out" / theirs["file"]).read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == theirs["sha256"]
    # manifest.xml: valid against the XSD, with the same facts (issuedAt = the issuing signature's time).
    assert manifest_errors(upload.manifest_xml) == []
    doc = etree.fromstring(upload.manifest_xml)
    school_node = doc.find("p:school", NS)
    assert school_node.text == "Trường THPT Lê Quý Đôn" and school_node.get("code") == "79000701"
    first = doc.find("p:records/p:record", NS)
    record = await SchoolRecord.get(klass_id=kit.class_id, student_code="HS001")
    issuing = await SignatureStep.get(record_id=record.id, stage=Stage.ISSUER)
    assert first.findtext("p:studentName", namespaces=NS) == "Học Sinh Số 1"
    assert first.findtext("p:signatures", namespaces=NS) == "6"
    assert datetime.fromisoformat(first.findtext("p:issuedAt", namespaces=NS)) == issuing.signed_at
    assert doc.find("p:records", NS).get("count") == "3"
    # The XSD refuses what a portal would: a second entry of a student, a hash that is not SHA-256 hex.
    twice = bytearray(upload.manifest_xml)
    twice = twice.replace(b"<studentCode>HS002</studentCode>", b"<studentCode>HS001</studentCode>")
    assert any("HS001" in e or "unique" in e.lower() for e in manifest_errors(bytes(twice)))
    bad_hash = upload.manifest_xml.replace(sent["records"][0]["sha256"].encode(), b"not-a-hash")
    assert manifest_errors(bad_hash)
    assert manifest_errors(b"<classPackage/>")


async def test_a_busy_portal_is_retried_through_the_job_queue_with_the_same_package(school: Any,
                                                                                    portal: FakeRecordsPortal) -> None:
    kit = await school()
    portal.fail_next.extend([503, 503])
    await send(kit)
    job = await send_job(kit)
    assert job.state == "pending" and job.attempts == 1 and job.run_after > kit.clock.now()
    sent = await states(kit)
    assert all(r.state == SendState.UNSENT for r in sent.values())
    assert "503" in sent["HS001"].answer and "tự gửi lại" in sent["HS001"].answer
    await kit.app.worker.drain()  # not due yet: nothing more goes
    assert len(portal.requests) == 1
    await retry_now(kit)  # the second 503
    assert (await send_job(kit)).attempts == 2 and len(portal.requests) == 2
    await retry_now(kit)
    job = await send_job(kit)
    assert job.state == "done" and job.attempts == 3
    assert [s.state for s in (await states(kit)).values()] == [SendState.SENT] * 3
    keys = {h["Idempotency-Key"] for h in portal.requests}
    assert len(portal.requests) == 3 and len(keys) == 1  # one package, sent three times under one id
    assert all(r.attempts == 3 and r.answer == "" for r in (await states(kit)).values())


async def test_a_refused_record_is_lỗi_with_the_answer_and_a_resend_carries_only_it(school: Any,
                                                                                    portal: FakeRecordsPortal) -> None:
    kit = await school()
    portal.refuse["HS002"] = "Số định danh cá nhân của học sinh không khớp CSDL ngành."
    await send(kit)
    sent = await states(kit)
    assert sent["HS002"].state == SendState.FAILED and sent["HS002"].receipt == ""
    assert sent["HS002"].answer == "Số định danh cá nhân của học sinh không khớp CSDL ngành."
    assert sent["HS001"].state == sent["HS003"].state == SendState.SENT
    rows = await send_rows(kit.class_id)
    assert [(r.student_code, r.label("vi")) for r in rows] == [("HS001", "đã gửi"), ("HS002", "lỗi"),
                                                               ("HS003", "đã gửi")]
    assert [r.label("en") for r in rows] == ["sent", "failed", "sent"]
    assert (await send_job(kit)).state == "done"  # answered: nothing to retry by itself
    notices = [j.payload["text"] for j in await Job.filter(kind="chat_notice") if "Cổng tiếp nhận" in j.payload["text"]]
    assert notices and "2/3" in notices[0] and "HS002: Số định danh" in notices[0]
    # The school fixes the record at the portal's side; the admin sends again: only HS002 goes.
    portal.refuse.clear()
    await send(kit)
    assert sorted(portal.uploads[1].files) == ["HS002_Hoc_Sinh_So_2.pdf"]
    assert portal.uploads[1].package_id != portal.uploads[0].package_id
    again = await states(kit)
    assert all(r.state == SendState.SENT for r in again.values())
    assert again["HS001"].receipt == sent["HS001"].receipt and again["HS001"].attempts == 1
    assert [portal.times_stored(c) for c in CODES] == [1, 1, 1]


async def test_a_record_changed_after_it_was_accepted_is_sent_again_alone(school: Any,
                                                                         portal: FakeRecordsPortal) -> None:
    kit = await school()
    await send(kit)
    first = {code: row.receipt for code, row in (await states(kit)).items()}
    kit.clock.advance(timedelta(days=3))
    record = await SchoolRecord.get(klass_id=kit.class_id, student_code="HS002")
    # What a revision does to a record issued again (core/signing/revisions.py): a new PDF, a later updated_at.
    await SchoolRecord.filter(id=record.id).update(pdf=bytes(record.pdf) + b"\n% revision 1\n", revision=1,
                                                   updated_at=kit.clock.now())
    rows = {r.student_code: r for r in await send_rows(kit.class_id)}
    assert rows["HS002"].state == SendState.UNSENT and first["HS002"] in rows["HS002"].answer
    assert rows["HS001"].state == rows["HS003"].state == SendState.SENT
    assert "old receipt" in {r.student_code: r for r in await send_rows(kit.class_id, "en")}["HS002"].answer
    await send(kit)
    assert sorted(portal.uploads[1].files) == ["HS002_Hoc_Sinh_So_2.pdf"]
    after = await states(kit)
    assert after["HS002"].state == SendState.SENT and after["HS002"].receipt not in ("", first["HS002"])
    assert after["HS001"].receipt == first["HS001"] and after["HS001"].attempts == 1
    assert [portal.times_stored(c) for c in CODES] == [1, 2, 1]


async def test_a_wrong_token_fails_for_good_at_once_and_is_reported(school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school(token="not-the-token")
    await send(kit)
    job = await send_job(kit)
    assert job.state == "dead" and job.attempts == 1 and "401" in job.last_error
    assert len(portal.requests) == 1 and not portal.uploads
    sent = await states(kit)
    for row in sent.values():
        assert row.state == SendState.FAILED
        assert "HTTP 401" in row.answer and "Mã truy cập không hợp lệ" in row.answer
        assert "not-the-token" not in row.answer
    [failed] = await AuditEvent.filter(action="records_portal_failed")
    assert failed.detail["status"] == 401 and failed.detail["records"] == 3
    notices = [j.payload["text"] for j in await Job.filter(kind="chat_notice")
               if "không thành công" in j.payload["text"]]
    assert notices and "HTTP 401" in notices[0]
    assert not [e for e in await AuditEvent.all() if "not-the-token" in json.dumps(e.detail)]


async def test_a_portal_that_stays_down_gives_up_after_max_attempts(school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school(max_attempts=2)
    portal.fail_next.extend([502] * 5)
    await send(kit)
    await retry_now(kit)
    job = await send_job(kit)
    assert job.state == "dead" and job.attempts == 2 and len(portal.requests) == 2
    for row in (await states(kit)).values():
        assert row.state == SendState.FAILED and "sau 2 lần gửi" in row.answer and "502" in row.answer


async def test_a_lost_answer_is_sent_again_under_the_same_id_and_stored_once(school: Any,
                                                                             portal: FakeRecordsPortal) -> None:
    kit = await school()
    portal.lose_next = 1  # the portal stored the package; the answer never came back
    await send(kit)
    assert all(r.state == SendState.UNSENT for r in (await states(kit)).values())
    await retry_now(kit)
    sent = await states(kit)
    assert all(r.state == SendState.SENT for r in sent.values())
    assert portal.replays == 1 and [portal.times_stored(c) for c in CODES] == [1, 1, 1]
    assert sorted(r.receipt for r in sent.values()) == sorted(v["receipt"] for v in portal.stored.values())


async def test_a_class_larger_than_the_limit_goes_in_several_packages(school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school(max_package_mb=0.01)  # 10 KB: less than one signed record, so one record per package
    await send(kit)
    assert [len(u.files) for u in portal.uploads] == [1, 1, 1]
    assert all(manifest_errors(u.manifest_xml) == [] for u in portal.uploads)
    assert all(r.state == SendState.SENT for r in (await states(kit)).values())


async def test_a_package_over_the_portals_size_limit_is_refused_for_good(school: Any,
                                                                          portal: FakeRecordsPortal) -> None:
    kit = await school()
    portal.max_bytes = 50_000  # smaller than one signed record
    await send(kit)
    job = await send_job(kit)
    assert job.state == "dead" and job.attempts == 1
    for row in (await states(kit)).values():
        assert row.state == SendState.FAILED and "HTTP 413" in row.answer and "max_package_mb" in row.answer


async def test_the_portal_refuses_a_pdf_that_is_not_the_one_in_the_manifest(school: Any,
                                                                            portal: FakeRecordsPortal) -> None:
    kit = await school()
    klass = await SchoolClass.get(id=kit.class_id)
    [package] = await build_packages(klass, await kit.records(), now=kit.clock.now())
    name, pdf = package.pdfs[1]
    changed = pdf.replace(b"%%EOF", b"%%EOF\n% changed after signing\n")
    tampered = dataclasses.replace(package, pdfs=(package.pdfs[0], (name, changed), package.pdfs[2]))
    adapter = HttpRecordsPortal(kit.app.settings.portal, portal.token)
    receipts = {r.student_code: r for r in await adapter.send_class(tampered)}
    assert receipts["HS001"].accepted and receipts["HS003"].accepted
    assert not receipts["HS002"].accepted and "SHA-256" in receipts["HS002"].answer


async def test_an_invalid_xml_manifest_is_refused_for_good(school: Any, portal: FakeRecordsPortal) -> None:
    kit = await school()
    klass = await SchoolClass.get(id=kit.class_id)
    [package] = await build_packages(klass, await kit.records(), now=kit.clock.now())
    broken = package.manifest_xml.replace(b"<year>2025-2026</year>", b"<year>2025/26</year>")
    assert manifest_errors(broken)
    adapter = HttpRecordsPortal(kit.app.settings.portal, portal.token)
    with pytest.raises(PortalError) as caught:
        await adapter.send_class(dataclasses.replace(package, manifest_xml=broken))
    assert caught.value.permanent and caught.value.status == 422 and "manifest.xml" in caught.value.message
    assert not portal.uploads


async def test_basic_credentials_and_a_timeout_that_is_retried(school: Any, portal: FakeRecordsPortal) -> None:
    portal.username, portal.password = "thpt-lqd", "mat-khau-cong"
    kit = await school(auth="basic", username="thpt-lqd", password_env=TOKEN_ENV, token="mat-khau-cong",
                       timeout_seconds=0.3)
    portal.delay_next = 1.0  # longer than [portal].timeout_seconds: the upload gives up, the job retries
    await send(kit)
    sent = await states(kit)
    assert all(r.state == SendState.UNSENT and "0.3 giây" in r.answer for r in sent.values())
    assert (await send_job(kit)).state == "pending"
    await retry_now(kit)
    assert all(r.state == SendState.SENT for r in (await states(kit)).values())
    assert portal.requests[-1]["Authorization"].startswith("Basic ")


async def test_only_an_issued_class_by_an_admin_can_be_sent(school: Any, portal: FakeRecordsPortal,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school(confirm=False)  # every record signed, the admin has not confirmed
    with pytest.raises(PortalRefusal, match="chưa được quản trị viên xác nhận hoàn tất") as caught:
        await request_send(kit.app.records, ADMIN, kit.class_id)
    assert "has not been confirmed complete" in caught.value.in_words("en")
    args = build_parser().parse_args(["records", "send", "10A1", "--wait"])
    assert await records_cli(kit.app, args) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "edudesk: Lớp 10A1 (2025-2026) chưa được" in err
    teacher = await kit.actor("BGH01")  # the principal signs, but sending is the admin's
    with pytest.raises(NotAllowed):
        await request_send(kit.app.records, teacher, kit.class_id)
    refused = await AuditEvent.filter(action="records_refused").order_by("id").values_list("detail", flat=True)
    assert [d["reason"] for d in refused if d["action"] == "rec_portal"] == ["not_issued", "not_issued", "not_allowed"]
    assert not portal.requests and not await Job.filter(kind="portal_send").exists()


async def test_cli_send_wait_prints_each_records_result_and_sent_lists_them(school: Any, portal: FakeRecordsPortal,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school()
    portal.refuse["HS003"] = "Học bạ của học sinh này đã được trường khác gửi."
    args = build_parser().parse_args(["records", "send", "10A1", "--wait"])
    assert await records_cli(kit.app, args) == 1  # one record was refused
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Đã xếp lịch gửi 3 học bạ lớp 10A1 (2025-2026) lên Cổng tiếp nhận."
    sent = await states(kit)
    local = "20/05/2026 08:"  # the test clock's day in Hà Nội, dd/mm/yyyy HH:MM
    assert out[1].startswith("HS001") and "Học Sinh Số 1" in out[1] and "đã gửi" in out[1]
    assert f"biên nhận {sent['HS001'].receipt}, {local}" in out[1]
    assert out[3].split()[0] == "HS003" and "lỗi" in out[3] and "đã được trường khác gửi" in out[3]
    assert out[4] == "Lớp 10A1 (2025-2026): 2 đã gửi, 1 lỗi, 0 chưa gửi."
    assert len(out) == 5
    listing = build_parser().parse_args(["records", "sent", "10A1", "--json"])
    assert await records_cli(kit.app, listing) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["student_code"], d["state"]) for d in data] == [("HS001", "sent"), ("HS002", "sent"),
                                                               ("HS003", "failed")]
    portal.refuse.clear()
    assert await records_cli(kit.app, build_parser().parse_args(["records", "send", "10A1", "--wait"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Đã xếp lịch gửi 1 học bạ") and out[-1].endswith("3 đã gửi, 0 lỗi, 0 chưa gửi.")
    assert [portal.times_stored(c) for c in CODES] == [1, 1, 1]


async def test_cli_send_without_wait_queues_and_a_busy_portal_is_told(school: Any, portal: FakeRecordsPortal,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school()
    assert await records_cli(kit.app, build_parser().parse_args(["records", "send", "10A1"])) == 0
    assert capsys.readouterr().out.strip() == "Đã xếp lịch gửi 3 học bạ lớp 10A1 (2025-2026) lên Cổng tiếp nhận."
    assert not portal.requests and await Job.filter(kind="portal_send", state="pending").count() == 1
    # A second send while the first waits queues nothing more.
    assert await records_cli(kit.app, build_parser().parse_args(["records", "send", "10A1"])) == 0
    assert "không xếp thêm" in capsys.readouterr().out
    portal.fail_next.append(503)
    assert await records_cli(kit.app, build_parser().parse_args(["records", "send", "10A1", "--wait"])) == 1
    out = capsys.readouterr().out.splitlines()
    assert "không xếp thêm" in out[0] and "0 đã gửi, 0 lỗi, 3 chưa gửi." in out[-2]
    assert out[-1].startswith("Cổng tiếp nhận chưa nhận hết; lần gửi lại tiếp theo lúc 20/05/2026 08:")
    assert await Job.filter(kind="portal_send").count() == 1
