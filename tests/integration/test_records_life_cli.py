"""`edudesk records replace|withdraw|adjust|revisions` on a real database with real signatures, run through the
command line's own parser and dispatcher: what the office types, what it reads back, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import build_parser
from edudesk.cli.mistakes import explain
from edudesk.cli.records import run as records_cli
from edudesk.core.errors import EdudeskError
from edudesk.core.signing.importer import import_roster
from edudesk.core.signing.lifemodels import RecordChange, RecordRevision
from edudesk.core.signing.models import SchoolRecord
from edudesk.core.signing.spec import Stage
from tests.integration.test_records_lifecycle import (
    VICE,
    corrected,
    exported,
    leadership_roster,
    make_kit,
    sign_all,
    sign_minutes,
)
from tests.records_kit import ADMIN, small_roster

pytestmark = pytest.mark.db


@pytest.fixture
def school(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_kit(app_factory, settings_factory, tmp_path, monkeypatch)


async def cli(kit: Any, *argv: str) -> int:
    """One `edudesk records ...` command on the kit's App, as `edudesk` dispatches it."""
    return int(await records_cli(kit.app, build_parser().parse_args(["records", *argv])))


async def test_records_replace_takes_the_corrected_pdf_and_names_what_is_wrong(
        school: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school(small_roster())
    await kit.sign("GV01", Stage.SUBJECT)
    other = small_roster()
    other.classes["10A2"] = other.classes.pop("10A1")
    other.classes["10A2"].name = "10A2"
    await import_roster(other, {}, actor=ADMIN, clock=kit.clock, make_pdf=lambda r, s, ro: exported(kit, 0))
    first = (await kit.records())[0]
    ret = await kit.app.records.return_record(await kit.actor("GV02"), first.id, "Sai ngày sinh")
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    wrong, right = tmp_path / "khac.pdf", tmp_path / "da-sua.pdf"
    wrong.write_bytes(exported(kit, 1))
    right.write_bytes(corrected(kit, 0))
    with pytest.raises(EdudeskError) as ambiguous:
        await cli(kit, "replace", "HS001", "--pdf", str(right))
    assert "10A1 (2025-2026), 10A2 (2025-2026)" in str(ambiguous.value) and "--class" in str(ambiguous.value)
    with pytest.raises(EdudeskError) as mismatch:
        await cli(kit, "replace", "HS001", "--class", "10A1", "--pdf", str(wrong))
    line, status = explain(mismatch.value, kit.app.settings)
    assert status == 2 and "không phải học bạ của học sinh này" in line and "HS001" in line
    english = kit.app.settings.model_copy(
        update={"general": kit.app.settings.general.model_copy(update={"language": "en"})})
    assert explain(mismatch.value, english)[0] == ("The uploaded file is not this student's record (no student code "
                                                   "or name in it).")
    assert await cli(kit, "replace", "HS001", "--class", "10A1", "--pdf", str(right)) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("Đã thay học bạ của Học Sinh Số 1 (HS001), lớp 10A1 (2025-2026) bằng bản đã sửa: bản "
                          "lập lần 2")
    remade = await SchoolRecord.get(id=first.id)
    assert (remade.state, remade.revision, bytes(remade.original)) == ("signing", 1, right.read_bytes())
    with pytest.raises(EdudeskError, match="duyệt huỷ"):  # once only: it is signing again
        await cli(kit, "replace", "HS001", "--class", "10A1", "--pdf", str(right))


async def test_records_withdraw_then_revisions_writes_the_chain_that_verify_proves(
        school: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school(leadership_roster())
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    issued = bytes((await kit.records())[0].pdf)
    assert await cli(kit, "withdraw", "HS001", "--reason", "Học sinh chuyển trường") == 0
    assert capsys.readouterr().out.strip() == (
        "Đã lập biên bản thu hồi số 01/2025-2026/BB-THHB cho học bạ của Học Sinh Số 1 (HS001), lớp 10A1 (2025-2026); "
        "học bạ bị thu hồi khi Ban giám hiệu ký xong biên bản.")
    with pytest.raises(EdudeskError, match="đang có một biên bản"):
        await cli(kit, "withdraw", "HS001", "--reason", "Lần nữa")
    change = await RecordChange.get(record__student_code="HS001")
    await kit.settle()
    await sign_minutes(kit, change, (*VICE, "BGH01"))
    out = tmp_path / "lich-su"
    assert await cli(kit, "revisions", "HS001", "--out", str(out)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Học bạ của Học Sinh Số 1 (HS001), lớp 10A1 (2025-2026):"
    assert lines[1].startswith("  Bản lập lần 1 — thu hồi lúc 20/05/2026 ") and "8 chữ ký" in lines[1]
    assert lines[1].endswith("lý do: Học sinh chuyển trường")
    assert lines[2] == "    biên bản số 01/2025-2026/BB-THHB, 3 chữ ký của Ban giám hiệu"
    assert lines[-1] == "  Bản lập lần 1 (hiện tại): Đã thu hồi, 8 chữ ký"
    archived = sorted((out / "revisions").glob("*.pdf"))
    assert [p.name for p in archived] == [f"HS001_Hoc_Sinh_So_1.bb{change.id}.pdf", "HS001_Hoc_Sinh_So_1.r0.pdf"]
    assert archived[1].read_bytes() == issued
    assert await cli(kit, "verify", *map(str, archived)) == 0
    report = capsys.readouterr().out
    assert report.count("ĐẠT: mọi chữ ký đều hợp lệ") == 2 and "bgh_bgh01" in report
    assert await cli(kit, "revisions", "HS001", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "withdrawn" and data["revisions"][0]["minutes"]["number"] == "01/2025-2026/BB-THHB"


async def test_records_adjust_needs_the_corrected_pdf_and_an_issued_record(
        school: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit = await school(leadership_roster())
    fixed = tmp_path / "da-sua.pdf"
    fixed.write_bytes(corrected(kit, 1))
    with pytest.raises(EdudeskError, match="đã ký đủ và đã ký phát hành"):
        await cli(kit, "adjust", "HS002", "--reason", "Sửa điểm", "--pdf", str(fixed))
    with pytest.raises(SystemExit):  # --pdf is required: argparse says so, exit 2
        build_parser().parse_args(["records", "adjust", "HS002", "--reason", "Sửa điểm"])
    await sign_all(kit)
    with pytest.raises(EdudeskError, match="Không có học bạ"):
        await cli(kit, "adjust", "HS999", "--reason", "Sửa", "--pdf", str(fixed))
    assert await cli(kit, "adjust", "HS002", "--reason", "Sửa điểm Toán", "--pdf", str(fixed)) == 0
    assert "biên bản điều chỉnh số 01/2025-2026/BB-ĐCHB" in capsys.readouterr().out
    change = await RecordChange.get(record__student_code="HS002")
    await kit.settle()
    await sign_minutes(kit, change, (*VICE, "BGH01"))
    record = await SchoolRecord.get(student_code="HS002")
    assert (record.state, record.revision, bytes(record.original)) == ("signing", 1, fixed.read_bytes())
    assert await RecordRevision.filter(record_id=record.id, kind="adjustment").count() == 1
