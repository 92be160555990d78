"""What a record says, read back with pypdf from a demo record signed through the whole workflow: the stamps
in Hà Nội time (a signing at 23:30 UTC is the next morning there), "Trang x/y" right on every page, the
configured school on the header, the issuing box and its stamp, the place-and-date line with the issuing day,
the terms of Circular 22/2021, and Vietnamese text in NFC even when the roster's names came decomposed."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject

from edudesk.core.ports import FakeClock
from edudesk.core.signing.demo import demo_pdf, demo_roster
from edudesk.core.signing.importer import class_fields, import_roster
from edudesk.core.signing.models import SchoolClass, SchoolRecord
from edudesk.core.signing.pdfs import RecordContent, RecordPdfError, SubjectScore, add_signature_fields, record_pdf
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.recordtext import date_line, result_level, school_name
from edudesk.core.signing.roster import RosterError, TeacherRow
from edudesk.core.signing.sigpage import DATE_FIELD, fill_date_line
from edudesk.core.signing.spec import FieldSpec, Stage
from edudesk.core.signing.verify import verify_record
from tests.records_kit import ADMIN, RecordsKit, records_settings

SCHOOL = "Trường THPT Chuyên Nguyễn Huệ"
NIGHT = datetime(2026, 5, 20, 23, 30, tzinfo=UTC)  # 06:30 on 21/05/2026 in Hà Nội
STUDENT = "Nguyễn Thị Ánh Dương"
TEACHER = "Đặng Thị Huyền Trâm"  # GV03, the English teacher, written decomposed in the roster


def texts(pdf: bytes) -> list[str]:
    """The text pypdf extracts from each page's own content, as it comes (not normalised)."""
    return [page.extract_text() for page in PdfReader(BytesIO(pdf)).pages]


def widgets(pdf: bytes) -> dict[str, str]:
    """The text each field's appearance shows (signature stamps, the date line), by field name."""
    out = {}
    for page in PdfReader(BytesIO(pdf)).pages:
        for annot in page.get("/Annots") or []:
            widget = annot.get_object()
            if "/AP" in widget:
                out[str(widget["/T"])] = page.extract_xform_text(widget["/AP"]["/N"].get_object())
    return out


def decomposed(text: str) -> bool:
    """Whether any combining mark stands on its own (NFD text)."""
    return any(unicodedata.combining(c) for c in text)


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordsKit:
    """The demo class (2 students) of SCHOOL, whose own organisation certificate issues; place Hà Nội; night."""
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    issuer = tmp_path / "school.p12"
    issuer.write_bytes(pki.issue_organisation(SCHOOL).pkcs12(b"issuer-pass"))
    records = records_settings(tmp_path, pki, school=SCHOOL, place="Hà Nội", quiet_hours="",
                               issuer={"kind": "pkcs12", "pkcs12_path": str(issuer),
                                       "passphrase_env": "EDUDESK_TEST_ISSUER_PASS"})
    clock = FakeClock(NIGHT)
    app = await app_factory(settings_factory(records=records, web={"enabled": False}), clock=clock,
                            inline_analysis=True)
    roster = demo_roster(students=2)  # "Trường" left empty: the import names the configured school
    row = roster.classes["10A1"]
    row.students[0] = (row.students[0][0], unicodedata.normalize("NFD", STUDENT), row.students[0][2])
    code = next(c for c, subjects in row.subjects.items() if subjects == ["Tiếng Anh"])
    roster.teachers[code] = TeacherRow(code, unicodedata.normalize("NFD", TEACHER), roster.teachers[code].email)
    return RecordsKit(app, pki, clock, roster)


async def load(kit: RecordsKit) -> None:
    """Import as `records import --generate` does (school from the settings), with credentials for all."""
    kit.result = await import_roster(kit.roster, {}, actor=ADMIN, clock=kit.clock, make_pdf=demo_pdf,
                                     school=school_name(kit.app.settings))
    for n, code in enumerate(kit.roster.teachers, start=1):
        kit.telegram_ids[code] = 7000 + n
        await kit.pkcs12(code)


async def sign_everything(kit: RecordsKit) -> None:
    """Every stage in turn (the issuing signature by the server)."""
    row = kit.roster.classes["10A1"]
    for code in row.subjects:
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign(row.homeroom, Stage.HOMEROOM)
    for code in row.leaders:
        await kit.sign(code, Stage.LEADERSHIP)
    await kit.settle()


@pytest.mark.db
async def test_a_record_signed_at_night_reads_right_in_hanoi(kit: RecordsKit) -> None:
    await load(kit)
    assert (await SchoolClass.get(id=kit.class_id)).school == SCHOOL
    await kit.start()
    await sign_everything(kit)
    records = await kit.records()
    assert [r.state for r in records] == ["signed", "signed"]
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(kit.app.settings)
    for record in records:
        pdf = bytes(record.pdf)
        report = await verify_record(pdf, trusted_roots=roots, crls=crls)
        assert report.ok, (report.problems, [s.problems for s in report.signatures])
        pages, boxes = texts(pdf), widgets(pdf)
        everything = "\n".join(pages + list(boxes.values()))
        # Local time: 23:30 UTC on the 20th is 06:30 on the 21st in Hà Nội, on every stamp.
        stamps = {name: text for name, text in boxes.items() if name != DATE_FIELD}
        assert len(stamps) == 15 and "phat_hanh" in stamps
        for name, text in stamps.items():
            assert re.search(r"Ngày ký: 21/05/2026 06:3\d \(GMT\+7\)", text), (name, text)
        assert "20/05/2026" not in everything
        # The place-and-date line, filled by the issuing signature with the issuing day.
        assert boxes[DATE_FIELD] == "Hà Nội, ngày 21 tháng 5 năm 2026"
        # Trang x/y on every page, counted over the final document.
        total = len(pages)
        assert total == 2
        for n, text in enumerate(pages, start=1):
            assert re.findall(r"Trang \d+/\d+", text) == [f"Trang {n}/{total}"], text
        # One school, the configured one: header, issuing box, issuing stamp.
        assert SCHOOL.upper() in pages[0]
        assert f"Ký phát hành — {SCHOOL}" in " ".join(pages[-1].split())
        assert stamps["phat_hanh"].startswith(f"Đã ký số: {SCHOOL}\n")
        # Circular 22/2021.
        assert re.search(r"Kết quả rèn luyện: (Tốt|Khá|Đạt|Chưa đạt)\n", pages[0])
        assert re.search(r"Kết quả học tập: (Tốt|Khá|Đạt|Chưa đạt)\n", pages[0])
        assert not re.search("hạnh kiểm|học lực", everything, re.IGNORECASE)
        assert not decomposed(everything)
    first = [" ".join(text.split()) for text in texts(bytes(records[0].pdf))]
    assert STUDENT in first[0]  # the decomposed names, written composed: in the header and the scores,
    assert TEACHER in first[0] and f"GVBM Tiếng Anh — {TEACHER}" in first[1]  # under the box,
    assert any(text.startswith(f"Đã ký số: {TEACHER}\n") for text in widgets(bytes(records[0].pdf)).values())


@pytest.mark.db
async def test_the_date_line_cannot_change_after_the_record_is_issued(kit: RecordsKit) -> None:
    await load(kit)
    await kit.start()
    await sign_everything(kit)
    record = (await kit.records())[0]
    altered = fill_date_line(bytes(record.pdf), "Hà Nội, ngày 01 tháng 01 năm 2020")
    assert widgets(altered)[DATE_FIELD] == "Hà Nội, ngày 01 tháng 01 năm 2020"
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(kit.app.settings)
    report = await verify_record(altered, trusted_roots=roots, crls=crls)
    assert not report.ok
    issuing = next(s for s in report.signatures if s.field == "phat_hanh")
    assert issuing.problems and issuing.modification == "OTHER"


@pytest.mark.db
async def test_a_corrected_record_is_numbered_over_its_new_document(kit: RecordsKit) -> None:
    from edudesk.core.signing.correction import replace_record

    await load(kit)
    await kit.start()
    row = kit.roster.classes["10A1"]
    await kit.sign(next(iter(row.subjects)), Stage.SUBJECT)
    record = (await kit.records())[1]
    assert record.signatures == 1
    ret = await kit.app.records.return_record(await kit.actor(row.homeroom), record.id, "Sai điểm môn Toán")
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    # The corrected export runs over two pages (a longer comment): three pages in all, each numbered of 3.
    student = next(s for s in row.students if s[0] == record.student_code)
    long_row = dataclasses.replace(row, school=SCHOOL, subjects={**row.subjects, **{
        f"GVX{n}": [f"Chuyên đề {n}"] for n in range(25)}})
    roster = dataclasses.replace(kit.roster, teachers={**kit.roster.teachers, **{
        f"GVX{n}": TeacherRow(f"GVX{n}", "Lê Văn Hùng") for n in range(25)}})
    corrected = demo_pdf(long_row, student, roster)
    await replace_record(kit.app.records, ADMIN, record.id, corrected)
    remade = await SchoolRecord.get(id=record.id)
    assert remade.signatures == 0 and bytes(remade.pdf).startswith(corrected)
    pages = texts(bytes(remade.pdf))
    assert [re.findall(r"Trang \d+/\d+", t) for t in pages] == [["Trang 1/3"], ["Trang 2/3"], ["Trang 3/3"]]
    assert widgets(bytes(remade.pdf))[DATE_FIELD] == "…, ngày … tháng … năm …"


@pytest.mark.db
async def test_a_roster_of_another_school_is_refused_before_anything_is_stored(kit: RecordsKit) -> None:
    roster = demo_roster(students=1, school="Trường THPT Lê Lợi")
    with pytest.raises(RosterError) as caught:
        await import_roster(roster, {}, actor=ADMIN, clock=kit.clock, make_pdf=demo_pdf,
                            school=school_name(kit.app.settings))
    assert "Trường THPT Lê Lợi" in caught.value.message and SCHOOL in caught.value.message
    assert not await SchoolClass.exists()
    same = demo_roster(students=1, school=unicodedata.normalize("NFD", SCHOOL.upper()))  # the same school
    result = await import_roster(same, {}, actor=ADMIN, clock=kit.clock, make_pdf=demo_pdf, school=SCHOOL)
    assert (await SchoolClass.get(id=result.class_ids[0])).school == SCHOOL


def test_the_school_is_the_records_setting_else_the_institution(settings_factory: Any) -> None:
    assert school_name(settings_factory(records={"school": unicodedata.normalize("NFD", SCHOOL)})) == SCHOOL
    settings = settings_factory(records={"school": ""})
    assert school_name(settings) == settings.institution.name != ""


def test_the_date_line_follows_the_administrative_style() -> None:
    zone = "Asia/Ho_Chi_Minh"
    assert date_line("Hà Nội", datetime(2026, 1, 4, 18, 0, tzinfo=UTC), zone) == "Hà Nội, ngày 05 tháng 01 năm 2026"
    assert date_line("Huế", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), zone) == "Huế, ngày 30 tháng 11 năm 2026"
    assert date_line("", datetime(2026, 3, 9, 3, 0, tzinfo=UTC), zone) == "Ngày 09 tháng 3 năm 2026"
    assert date_line("Hà Nội", None, zone) == "Hà Nội, ngày … tháng … năm …"


def test_old_levels_are_written_in_the_current_terms() -> None:
    assert [result_level(x) for x in ("Giỏi", "khá", " Trung bình ", "Yếu", "Kém", "Chưa đạt", "Xuất sắc")] == [
        "Tốt", "Khá", "Đạt", "Chưa đạt", "Chưa đạt", "Chưa đạt", None]
    scores = (SubjectScore("Toán", "Nguyễn Thị Bình", "8,0", "9,0", "8,7"),)
    old = record_pdf(RecordContent(SCHOOL, "2025-2026", "10A1", "HS1", "An", "", "Nam", "", scores, "Tốt", "Giỏi", ""))
    assert "Kết quả học tập: Tốt" in texts(old)[0]
    with pytest.raises(RecordPdfError) as caught:
        record_pdf(RecordContent(SCHOOL, "2025-2026", "10A1", "HS1", "An", "", "Nam", "", scores, "Tốt", "8,5", ""))
    assert caught.value.code == "record_content" and "Kết quả học tập" in caught.value.message


def long_record() -> bytes:
    """A record whose scores run over two pages, with 20 subject teachers (two signature pages)."""
    roster = demo_roster(students=1, school=SCHOOL)
    row = roster.classes["10A1"]
    content = RecordContent(SCHOOL, "2025-2026", "10A1", "HS1", STUDENT, "01/01/2010", "Nữ", "Lê Văn Hùng",
                            tuple(SubjectScore(f"Chuyên đề {n}", "Lê Văn Hùng", "8,0", "8,0", "8,0", "Tốt. " * 30)
                                  for n in range(40)), "Tốt", "Khá", "")
    fields = [FieldSpec(f"gvbm_{n}", Stage.SUBJECT, f"GVBM Chuyên đề {n} — Lê Văn Hùng") for n in range(20)]
    fields += [spec for spec, _ in class_fields(row, roster.teachers) if spec.stage > Stage.SUBJECT]
    return add_signature_fields(record_pdf(content), fields)


def test_every_page_of_a_long_record_is_numbered_over_the_final_document() -> None:
    pdf = long_record()
    pages = texts(pdf)
    assert len(pages) >= 5  # several pages of scores and two signature pages
    assert [re.findall(r"Trang \d+/\d+", t) for t in pages] == [[f"Trang {n}/{len(pages)}"]
                                                                 for n in range(1, len(pages) + 1)]
    assert DATE_FIELD in widgets(pdf)


def test_the_number_stands_at_the_foot_of_a_page_as_it_is_shown_rotated_or_not() -> None:
    scores = (SubjectScore("Toán", "Nguyễn Thị Bình", "8,0", "9,0", "8,7"),)
    content = RecordContent(SCHOOL, "2025-2026", "10A1", "HS1", "An", "", "Nam", "", scores, "Tốt", "Khá", "")
    fields = [FieldSpec("gvbm_1", Stage.SUBJECT, "GVBM Toán — Nguyễn Thị Bình")]
    for rotate in (0, 90, 180, 270):
        writer = PdfWriter(clone_from=BytesIO(record_pdf(content)))
        writer.pages[0][NameObject("/Rotate")] = NumberObject(rotate)
        source = BytesIO()
        writer.write(source)
        page = PdfReader(BytesIO(add_signature_fields(source.getvalue(), fields))).pages[0]
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        found: list[tuple[float, float]] = []

        def seen(text: str, cm: list[float], tm: list[float], _font: Any, _size: Any, found: list = found) -> None:
            if "Trang" in text:
                found.append((tm[4] * cm[0] + tm[5] * cm[2] + cm[4], tm[4] * cm[1] + tm[5] * cm[3] + cm[5]))

        page.extract_text(visitor_text=seen, orientations=(0, 90, 180, 270))
        ((x, y),) = found
        # Where the shown page's bottom right corner lies in the page's own space, for each rotation.
        corner = {0: (width, 0.0), 90: (width, height), 180: (0.0, height), 270: (0.0, 0.0)}[rotate]
        assert abs(x - corner[0]) < 120 and abs(y - corner[1]) < 120, (rotate, x, y)


def test_the_stamp_shows_the_items_moment_in_the_office_zone() -> None:
    from pyhanko.pdf_utils.layout import BoxConstraints
    from pyhanko.pdf_utils.writer import PdfFileWriter

    from edudesk.core.signing.stamp import stamp_style

    for zone, at, shown in (("Asia/Ho_Chi_Minh", NIGHT, "21/05/2026 06:30 (GMT+7)"),
                            ("UTC", NIGHT + timedelta(hours=1), "21/05/2026 00:30 (GMT)"),
                            ("Asia/Kolkata", NIGHT, "21/05/2026 05:00 (GMT+5:30)")):
        stamp = stamp_style(zone, at).create_stamp(PdfFileWriter(), BoxConstraints(200, 50),
                                                   {"signer": unicodedata.normalize("NFD", TEACHER)})
        params = stamp.text_params
        assert stamp.style.stamp_text % params == f"Đã ký số: {TEACHER}\nNgày ký: {shown}"
