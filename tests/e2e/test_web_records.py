"""School records in the web console, in headless Chromium: a teacher's turn and Ký ngay, Báo sai sót and the
admin's decision, registering a credential, Nhắc tất cả in quiet hours, and checking a signed (and a
tampered) record PDF. Real database, jobs, signatures and console; the clock is a test clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.models import AuditEvent
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import (
    RecordReturn,
    SchoolRecord,
    SignatureStep,
    SignerCredential,
    SignSession,
    Teacher,
)
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from tests.records_kit import PIN, RecordsKit, records_settings, small_roster
from tests.webauth import CHROMIUM, NEEDS_CHROMIUM, chromium, open_page, sign_in_admin, sign_in_teacher

pytestmark = [pytest.mark.db, pytest.mark.slow, NEEDS_CHROMIUM]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page
    from playwright.async_api import Error as PlaywrightError

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@dataclass
class School:
    """The records world with its console and a browser; `seen` keeps every page the browser received."""

    kit: RecordsKit
    browser: Browser
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def _keep(self, response: Any) -> None:
        if response.request.resource_type in ("document", "fetch", "xhr"):
            try:
                self.seen.append(await response.text())
            except PlaywrightError:
                pass  # redirects have no body

    async def teacher(self, code: str) -> Page:
        """The roster's teacher signed in."""
        return await sign_in_teacher(self.browser, self.kit.app, code, on_response=self._keep)

    async def admin(self) -> Page:
        """An administrator signed in."""
        return await sign_in_admin(self.browser, self.kit.app, on_response=self._keep)


@pytest.fixture
async def school(app_factory: Any, settings_factory: Any, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[School]:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"port": 0})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load(skip=("GV03",))
    await kit.start()
    assert app.web is not None
    await app.web.start()
    try:
        async with chromium() as browser:
            yield School(kit, browser)
    finally:
        await app.web.stop()


async def _post(page: Page, url: str, fields: dict[str, str]) -> dict[str, Any]:
    """POST a form with the page's session and CSRF token (what a forged or stale form would send)."""
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    return dict(await page.evaluate("""async ([url, fields]) => {
        const r = await fetch(url, {method: "POST", body: new URLSearchParams(fields)});
        return {status: r.status, text: await r.text()};
    }""", [url, {"csrf": csrf or "", **fields}]))


async def test_teacher_sees_the_turn_and_signs_with_the_pin(school: School, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kit = school.kit
    page = await school.teacher("GV01")
    assert (await page.locator("#nav-records .badge").inner_text()).strip() == "3"  # the console's sign-now
    await page.locator("#nav-records").click()
    row = page.locator(f'#turns tr[data-class="{kit.class_id}"][data-stage="{int(Stage.SUBJECT)}"]')
    text = await row.inner_text()
    assert "10A1" in text and "Toán, Tin học" in text and "còn" in text
    assert await row.locator("td").nth(2).inner_text() == "3"
    # The key is held by the server: Ký ngay asks for the teacher's PIN; a wrong one signs nothing.
    wrong = await _post(page, "/records/sign", {"class_id": str(kit.class_id), "stage": str(int(Stage.SUBJECT)),
                                                "pin": "999999"})
    assert wrong["status"] == 200 and "Mã PIN không đúng" in wrong["text"]
    assert not await SignSession.exists()
    await row.locator('input[name="pin"]').fill(PIN)
    await row.get_by_role("button", name="Ký ngay").click()
    await page.locator("#session").wait_for()
    assert "Đã ghi nhận" in await page.locator(".flash.ok").first.inner_text()
    await kit.settle()  # the worker runs the session's signatures
    assert await SignatureStep.filter(field="gvbm_gv01", state="signed").count() == 3
    await open_page(page, page.url)
    assert await page.locator("#session").get_attribute("data-state") == "done"
    assert "Không có học bạ nào chờ Thầy/Cô ký" in await page.locator("#my-turns").inner_text()
    assert await page.locator("#nav-records .badge").count() == 0
    school.seen.append(await page.content())
    for secret in (PIN, "999999"):  # the PINs never reached a page, a log line or the audit trail
        assert not [p for p in school.seen if secret in p] and secret not in caplog.text
        assert not [e for e in await AuditEvent.all() if secret in str(e.detail)]
    # The homeroom teacher's turn has not come: no button, and a forged tap is refused by the service.
    homeroom = await school.teacher("GV02")
    await open_page(homeroom, f"{school.url}/records")
    later = homeroom.locator(f'#turns tr[data-stage="{int(Stage.HOMEROOM)}"]')
    assert await later.get_by_role("button").count() == 0
    answer = await _post(homeroom, "/records/sign", {"class_id": str(kit.class_id), "stage": str(int(Stage.HOMEROOM))})
    assert answer["status"] == 200 and "Chưa đến lượt" in answer["text"]
    # A teacher without an approved credential is told to register one.
    lacking = await school.teacher("GV03")
    await open_page(lacking, f"{school.url}/records")
    assert "chưa có chứng thư số được duyệt" in await lacking.locator("#my-turns").inner_text()


async def test_teacher_reports_an_error_and_the_admin_approves_the_return(school: School) -> None:
    kit = school.kit
    page = await school.teacher("GV02")
    await open_page(page, f"{school.url}/records/classes/{kit.class_id}?stage=1#bao-sai-sot")
    first = (await kit.records())[0]
    row = page.locator(f'#bao-sai-sot tr[data-record="{first.id}"]')
    # Without a reason the service says what is missing (the browser's `required` would stop a person).
    blank = await _post(page, f"/records/classes/{kit.class_id}/return", {"record_id": str(first.id), "reason": " "})
    assert blank["status"] == 200 and "Hãy ghi rõ sai sót" in blank["text"]
    await row.get_by_text("Báo sai sót").click()
    await row.locator("textarea").fill("Sai điểm môn Ngữ văn học kì II")
    await row.get_by_role("button", name="Gửi").click()
    await page.locator(f'tr[data-record="{first.id}"][data-state="returned"]').wait_for()
    assert "Đã báo sai sót" in await page.locator(f'tr[data-record="{first.id}"]').inner_text()
    assert (await SchoolRecord.get(id=first.id)).state == "returned"
    ret = await RecordReturn.get(record_id=first.id)
    assert ret.reason == "Sai điểm môn Ngữ văn học kì II" and ret.state == "open"
    # A teacher may not decide it; the administrator does, on /records.
    refused = await _post(page, f"/records/returns/{ret.id}", {"approve": "1"})
    assert "Chỉ quản trị viên" in refused["text"]
    admin = await school.admin()
    await open_page(admin, f"{school.url}/records")
    pending = admin.locator(f'#returns tr[data-return="{ret.id}"]')
    assert "Sai điểm môn Ngữ văn" in await pending.inner_text() and "Học Sinh Số 1" in await pending.inner_text()
    await pending.get_by_role("button", name="Duyệt huỷ, làm lại").click()
    await admin.locator("#returns", has_text="Không có báo sai sót nào chờ duyệt").wait_for()
    assert (await RecordReturn.get(id=ret.id)).state == "approved"
    waiting = await SchoolRecord.get(id=first.id)
    assert (waiting.state, waiting.revision) == ("correcting", 0), "it waits for the corrected PDF (/records/life)"


async def test_teacher_registers_a_pkcs12_and_the_admin_approves_it(school: School,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kit = school.kit
    teacher = await Teacher.get(code="GV03")
    p12 = kit.pki.issue(teacher.name).pkcs12(b"mat-khau-rat-kin")
    page = await school.teacher("GV03")
    await open_page(page, f"{school.url}/records/credentials")
    form = page.locator("#register-pkcs12")
    await form.locator('input[name="pkcs12"]').set_input_files(
        files=[{"name": "gv03.p12", "mimeType": "application/x-pkcs12", "buffer": p12}])
    await form.locator('input[name="passphrase"]').fill("sai-mat-khau-123")
    await form.locator('input[name="pin"]').fill("135792")
    await form.locator('input[name="pin_repeat"]').fill("135792")
    await form.get_by_role("button", name="Đăng ký chứng thư số").click()
    assert "Mật khẩu của tệp chứng thư số" in await page.locator(".flash.error").inner_text()
    form = page.locator("#register-pkcs12")
    await form.locator('input[name="pkcs12"]').set_input_files(
        files=[{"name": "gv03.p12", "mimeType": "application/x-pkcs12", "buffer": p12}])
    await form.locator('input[name="passphrase"]').fill("mat-khau-rat-kin")
    await form.locator('input[name="pin"]').fill("135792")
    await form.locator('input[name="pin_repeat"]').fill("135792")
    await form.get_by_role("button", name="Đăng ký chứng thư số").click()
    await page.locator("#my-credentials tr[data-state=pending]").wait_for()
    row = await SignerCredential.get(teacher_id=teacher.id)
    assert row.state == "pending" and row.subject_name == teacher.name
    admin = await school.admin()
    await open_page(admin, f"{school.url}/records")
    await admin.locator(f'#credentials tr[data-credential="{row.id}"]').get_by_role("button", name="Duyệt").click()
    await admin.locator("#credentials", has_text="Không có chứng thư số nào chờ duyệt").wait_for()
    assert (await SignerCredential.get(id=row.id)).state == "approved"
    await open_page(page, f"{school.url}/records/credentials")
    assert "Đã duyệt" in await page.locator("#my-credentials").inner_text()
    # The passphrases never reached a page or a log line.
    school.seen.append(await page.content())
    for secret in ("mat-khau-rat-kin", "sai-mat-khau-123", "135792"):
        assert not [p for p in school.seen if secret in p] and secret not in caplog.text
        assert secret not in str(row.config) and not [e for e in await AuditEvent.all() if secret in str(e.detail)]


async def test_leader_reminds_everyone_and_in_quiet_hours_it_waits_for_the_morning(school: School) -> None:
    kit = school.kit
    kit.clock.advance(timedelta(hours=14))  # 22:00 in Hà Nội
    page = await school.teacher("BGH01")
    await open_page(page, f"{school.url}/records")
    section = page.locator("#blocking")
    assert "10A1: Giáo viên bộ môn 0/3" in await section.inner_text()
    assert "sẽ gửi lúc 21/05/2026 07:00" in await page.locator("#quiet").inner_text()  # the next morning
    await section.get_by_role("button", name="Nhắc tất cả").click()
    await page.locator(".flash.ok", has_text="Đã nhắc 3 giáo viên").wait_for()
    assert "lúc 21/05/2026 07:00" in await page.locator(".flash.ok").inner_text()
    teacher = await school.teacher("GV01")
    answer = await _post(teacher, "/records/remind", {})
    assert "Chỉ ban giám hiệu" in answer["text"]


async def test_verify_shows_every_signature_and_a_tampered_copy_fails(school: School) -> None:
    kit = school.kit
    for code in ("GV01", "GV02"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.pkcs12("GV03")
    await kit.sign("GV03", Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()  # the issuing signature, by the server
    record = (await kit.records())[0]
    assert record.state == "signed"
    pdf = bytes(record.pdf)
    page = await school.teacher("GV01")

    async def verify(data: bytes, name: str) -> None:
        await open_page(page, f"{school.url}/records/verify")
        await page.locator('input[name="pdf"]').set_input_files(
            files=[{"name": name, "mimeType": "application/pdf", "buffer": data}])
        await page.get_by_role("button", name="Kiểm tra").click()
        await page.locator("#report").wait_for()

    await verify(pdf, "HS001.pdf")
    assert await page.locator("#report").get_attribute("data-ok") == "1"
    fields = await page.locator("#signatures tr[data-field]").evaluate_all("rows => rows.map(r => r.dataset.field)")
    assert set(fields[:3]) == {"gvbm_gv01", "gvbm_gv02", "gvbm_gv03"}
    assert fields[3:] == ["gvcn", "bgh_bgh01", "phat_hanh"]
    table = await page.locator("#signatures").inner_text()
    assert "Nguyễn Thị Bích" in table and "Phạm Quốc Hùng" in table
    assert "ĐẠT" in await page.locator("#verdict").inner_text()
    # No TSA configured: basic signatures, no timestamp, no archival timestamp (the page says so: issue #18).
    levels = await page.locator("#signatures tr[data-field]").evaluate_all("rows => rows.map(r => r.dataset.level)")
    assert set(levels) == {"B-B"}
    assert "chưa đạt mức B-LTA" in await page.locator("#renew").inner_text()

    tampered = bytearray(pdf)
    at = tampered.find(b"/Producer")  # a byte of the original revision, covered by every signature
    tampered[at + 12] ^= 0x01
    await verify(bytes(tampered), "HS001-sua.pdf")
    assert await page.locator("#report").get_attribute("data-ok") == "0"
    assert "KHÔNG ĐẠT" in await page.locator("#verdict").inner_text()
    assert await page.locator('#signatures tr[data-ok="0"]').count() >= 1

    # A file far above the console's usual 256 KB body limit is accepted here (and only here).
    big = b"%PDF-1.7\n" + b"0" * (3 * 1024 * 1024)
    await verify(big, "to.pdf")
    assert "không đọc được tệp PDF" in await page.locator("#report").inner_text()
    elsewhere = await page.evaluate("""async (size) => {
        const csrf = document.querySelector('input[name="csrf"]').value;
        const body = new FormData(); body.set("csrf", csrf); body.set("kind", "pkcs12");
        body.set("pkcs12", new Blob([new Uint8Array(size)]), "x.p12");
        return (await fetch("/records/credentials", {method: "POST", body})).status;
    }""", 3 * 1024 * 1024)
    assert elsewhere == 413


async def test_untrusted_credential_is_refused_and_an_old_one_signs_only_after_its_teacher_sets_a_pin(
        school: School) -> None:
    import base64

    from edudesk.core.signing.factory import certificate_facts

    kit = school.kit
    teacher = await Teacher.get(code="GV03")
    page = await school.teacher("GV03")
    await open_page(page, f"{school.url}/records/credentials")
    form = page.locator("#register-pkcs12")
    stranger = kit.pki.issue_from_stranger(teacher.name).pkcs12(b"pw-la")
    await form.locator('input[name="pkcs12"]').set_input_files(
        files=[{"name": "la.p12", "mimeType": "application/x-pkcs12", "buffer": stranger}])
    await form.locator('input[name="passphrase"]').fill("pw-la")
    await form.locator('input[name="pin"]').fill("135792")
    await form.locator('input[name="pin_repeat"]').fill("135792")
    await form.get_by_role("button", name="Đăng ký chứng thư số").click()
    refusal = await page.locator(".flash.error").inner_text()
    assert "Không đăng ký được chứng thư số" in refusal and "tin cậy" in refusal
    assert not await SignerCredential.filter(teacher_id=teacher.id).exists(), "refused when registered"
    # A credential registered before PINs (file and passphrase sealed with the server's key only).
    cred = kit.pki.issue(teacher.name)
    box = kit.app.box
    old = await SignerCredential.create(
        teacher_id=teacher.id, kind="pkcs12", label="Tệp chứng thư số (PKCS#12)", state="approved",
        config={"pkcs12": box.seal(base64.b64encode(cred.pkcs12(b"cu")).decode()), "passphrase": box.seal("cu")},
        certificate=cred.der, created_at=kit.clock.now(), **certificate_facts(cred.der))
    await open_page(page, f"{school.url}/records")
    row = page.locator(f'#turns tr[data-class="{kit.class_id}"][data-stage="{int(Stage.SUBJECT)}"]')
    await row.locator('input[name="pin"]').fill("135792")
    await row.get_by_role("button", name="Ký ngay").click()
    assert "chưa có mã PIN" in await page.locator(".flash.error").inner_text()
    assert not await SignSession.exists()
    await open_page(page, f"{school.url}/records/credentials")
    form = page.locator(f"#set-pin-{old.id}")
    await form.locator('input[name="pin"]').fill("135792")
    await form.locator('input[name="pin_repeat"]').fill("135792")
    await form.get_by_role("button", name="Đặt mã PIN").click()
    await page.locator(".flash.ok", has_text="Đã đặt mã PIN ký").wait_for()
    config = (await SignerCredential.get(id=old.id)).config
    assert "pin_sealed" in config and "pkcs12" not in config, "the copy sealed with the server's key alone is gone"
    session = await kit.app.records.start_signing(await kit.actor("GV03"), kit.class_id, Stage.SUBJECT, pin="135792")
    await kit.settle()
    assert (await SignSession.get(id=session.id)).state == "done"
    assert await SignatureStep.filter(field="gvbm_gv03", state="signed").count() == 3
