"""`edudesk reports bm03|list|get` as a user runs them (a subprocess on a real SQLite or PostgreSQL database):
the seeded data set (tests/reports_seed.py) gives exactly its figures in the .xlsx (read back with openpyxl,
charts present) and in the PDF (text read back with pypdf); a unit and English; every report made is archived,
listed and given back byte for byte; each mistake is one line, a non-zero exit, and nothing archived."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from edudesk.core.db import close_database, open_database
from edudesk.core.reports.bm03 import problem_label
from edudesk.core.reports.models import ReportArchive
from edudesk.core.words import words
from tests.conftest import fresh_database, make_settings
from tests.reports_seed import U1, SeedExpectations, seed_bm03

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[2]
INSTITUTION, OFFICE_UNIT = "Trường Đại học Bách khoa Hà Nội", "Trung tâm Mạng Thông tin"
STEP_VI = {"office": "Văn phòng kiểm tra (tiếp nhận → duyệt/từ chối)",
           "technical": "Kỹ thuật thực hiện (duyệt → hoàn thành)", "total": "Toàn bộ (tiếp nhận → hoàn thành)"}


@dataclass
class Seeded:
    """A seeded database, the config that points the command line at it, and what its figures must be."""

    config: Path
    folder: Path
    expected: SeedExpectations

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`edudesk --config ... <args>` in a subprocess, as a user types it."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("EDUDESK_") or k == "EDUDESK_TEST_DATABASE_URL"}
        return subprocess.run([sys.executable, "-m", "edudesk", "--config", str(self.config), *args],
                              cwd=self.folder, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, timeout=300)

    def bm03(self, out: str, *more: str) -> subprocess.CompletedProcess[str]:
        """`reports bm03` over the seeded period."""
        p = self.expected.period
        return self.run("reports", "bm03", "--from", p.start.isoformat(), "--to", p.end.isoformat(), "--out", out,
                        *more)


@pytest.fixture
async def seeded(tmp_path: Path, _db_template_dir: Path) -> Seeded:
    """The BM03 data set in a fresh database (closed again, so only the command line uses it)."""
    settings = make_settings(tmp_path)
    await fresh_database(settings, tmp_path)
    await open_database(settings, migrate_first=False)
    try:
        expected = await seed_bm03(datetime.now(UTC))  # the command line reads the real clock
    finally:
        await close_database()
    config = tmp_path / "config.toml"
    config.write_text(
        f"[general]\ndata_dir = {json.dumps(str(tmp_path / 'data'))}\n"
        f"[database]\nurl = {json.dumps(settings.database_url)}\nurl_env = \"EDUDESK_TEST_UNSET_DATABASE_URL\"\n"
        f"[institution]\nname = \"{INSTITUTION}\"\noffice_unit = \"{OFFICE_UNIT}\"\n", encoding="utf-8")
    return Seeded(config, tmp_path, expected)


async def _archive_of(seeded: Seeded) -> list[ReportArchive]:
    """The archive's rows, read directly from the database the command line wrote."""
    await open_database(make_settings(seeded.folder), migrate_first=False)
    try:
        return await ReportArchive.all().order_by("id")
    finally:
        await close_database()


def _rows(ws: Any) -> list[tuple[Any, ...]]:
    return [tuple(c.value for c in row) for row in ws.iter_rows()]


def _section(ws: Any, heading: str) -> list[tuple[Any, ...]]:
    """The data rows of the table under `heading` (after its column titles, up to the blank row)."""
    rows = _rows(ws)
    start = next(i for i, r in enumerate(rows) if r[0] == heading) + 2
    end = next((i for i in range(start, len(rows)) if rows[i][0] is None), len(rows))
    return rows[start:end]


def _flat_pdf(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


async def test_bm03_xlsx_and_pdf_from_the_cli_show_exactly_the_seeded_figures(seeded: Seeded) -> None:
    e, w = seeded.expected, words("vi")
    made = seeded.bm03("bm03.xlsx", "--by", "Lê Văn Phòng")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (
        f"Đã lập báo cáo BM03 ({e.period.start:%d/%m/%Y} – {e.period.end:%d/%m/%Y}) → bm03.xlsx "
        f"(18 yêu cầu; lưu trữ số 1).") and made.stderr == ""

    book = load_workbook(seeded.folder / "bm03.xlsx")
    summary, daily = book["Tổng hợp"], book["Theo ngày"]
    assert summary["A1"].value == INSTITUTION.upper() and summary["A2"].value == OFFICE_UNIT.upper()
    groups = _section(summary, "1. Yêu cầu theo loại, đối tượng và đơn vị")
    assert [r[:8] for r in groups[:-1]] == [(w.label("kind", g.kind), w.label("population", g.population),
                                             g.unit or "(không ghi đơn vị)", g.received, g.approved, g.rejected,
                                             g.done, g.open) for g in e.groups]
    t = e.totals
    assert groups[-1][:8] == ("Tổng cộng", None, None, t.received, t.approved, t.rejected, t.done, t.open) == (
        "Tổng cộng", None, None, 18, 10, 5, 8, 5)
    by_kind = {r[0]: r[1] for r in _section(summary, "Yêu cầu theo loại")}
    assert by_kind == {w.label("kind", k): n for k, n in e.received_by_kind.items()}
    steps = _section(summary, "2. Thời gian xử lý từng bước so với thời hạn")
    assert [r[:6] for r in steps] == [
        (STEP_VI[name], s.count, s.within_limit, pytest.approx(s.within_limit / s.count), limit, s.median_hours)
        for name, s, limit in ((n, e.steps[n], h) for n, h in (("office", 24), ("technical", 24), ("total", 48)))]
    slowest = _section(summary, "3. Các yêu cầu xử lý chậm nhất")
    assert [(r[0], r[1]) for r in slowest] == [(STEP_VI[n], e.ids[r]) for n in ("office", "technical", "total")
                                               for r in e.steps[n].slowest]
    accounts = dict(r[:2] for r in _section(summary, "4. Tài khoản đã xử lý (theo nhật ký tài khoản)"))
    a = e.accounts
    assert accounts == {"Tạo mới": a.created, "Cấp lại mật khẩu": a.reset, "Tạm khoá": a.suspended,
                        "Xoá": a.deleted, "Thao tác không thành công": a.failed} == {
        "Tạo mới": 6, "Cấp lại mật khẩu": 4, "Tạm khoá": 1, "Xoá": 1, "Thao tác không thành công": 2}
    problems = [r[:2] for r in _section(summary, "5. Vấn đề phát hiện khi tiếp nhận (thường gặp nhất)")]
    assert problems == [(problem_label(code, "vi"), n) for code, n in e.problems]
    overdue = _section(summary, "6. Yêu cầu quá hạn tại thời điểm cuối kỳ")
    assert [r[0] for r in overdue] == list(e.overdue_ids)
    assert all(isinstance(r[4], datetime) and isinstance(r[5], datetime) and r[6] > 0 for r in overdue)
    assert [r[1:] for r in _rows(daily)[1:]] == [(d.received, d.finished) for d in e.days]
    assert [r[0].date() for r in _rows(daily)[1:]] == [d.day for d in e.days]
    assert len(summary._charts) == 2 and len(daily._charts) == 1  # type: ignore[attr-defined]

    made = seeded.bm03("bm03.pdf", "--by", "Lê Văn Phòng")
    assert made.returncode == 0, made.stderr
    text = _flat_pdf(seeded.folder / "bm03.pdf")
    office = e.steps["office"]
    for expected in (INSTITUTION.upper(), OFFICE_UNIT.upper(), "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                     f"Từ ngày {e.period.start:%d/%m/%Y} đến ngày {e.period.end:%d/%m/%Y}",
                     "Tổng cộng 18 10 5 8 5", f"{STEP_VI['office']} 15 13 86,7% 24,0 3,0",
                     f"{STEP_VI['technical']} 8 7 87,5% 24,0 2,0", f"{STEP_VI['total']} 8 7 87,5% 48,0 10,0",
                     "Tạo mới 6", "Cấp lại mật khẩu 4", "Tạm khoá 1", "Xoá 1", "Thao tác không thành công 2",
                     f"{problem_label(e.problems[0][0], 'vi')} 3", "Trang 1/"):
        assert expected in text, expected
    assert (office.count, office.within_limit) == (15, 13)
    listed = [int(part[3:]) for part in text.split() if part.startswith("YC-")]
    overdue_part = text[text.index("6. Yêu cầu quá hạn"):]
    assert [int(p[3:]) for p in overdue_part.split() if p.startswith("YC-")] == list(e.overdue_ids)
    assert set(listed) >= {e.ids[n] for n in e.steps["office"].slowest}
    assert len([img for page in PdfReader(seeded.folder / "bm03.pdf").pages for img in page.images]) == 3


async def test_a_units_report_in_english_has_only_that_units_figures(seeded: Seeded) -> None:
    e, w = seeded.expected, words("en")
    made = seeded.bm03("unit.xlsx", "--unit", U1, "--lang", "en")
    assert made.returncode == 0, made.stderr
    book = load_workbook(seeded.folder / "unit.xlsx")
    summary = book["Summary"]
    groups = _section(summary, "1. Requests by kind, population and unit")
    assert [r[:8] for r in groups[:-1]] == [(w.label("kind", g.kind), w.label("population", g.population), g.unit,
                                             g.received, g.approved, g.rejected, g.done, g.open)
                                            for g in e.unit_groups]
    assert groups[-1][:8] == ("Total", None, None, 8, 5, 1, 3, 4)
    assert f"Unit: {U1}" in summary["A4"].value
    accounts = dict(r[:2] for r in _section(summary, "4. Accounts changed (from the account log)"))
    assert accounts == {"Created": 2, "Password reset": 2, "Suspended": 0, "Deleted": 0, "Failed changes": 1}
    overdue = _section(summary, "6. Requests overdue at the end of the period")
    assert [r[0] for r in overdue] == list(e.unit_overdue_ids)
    assert [r[1] for r in _rows(book["By day"])[1:]] == list(e.unit_days_received)

    made = seeded.bm03("unit.pdf", "--unit", U1, "--lang", "en")
    assert made.returncode == 0, made.stderr
    text = _flat_pdf(seeded.folder / "unit.pdf")
    for expected in ("SOCIALIST REPUBLIC OF VIET NAM", f"Unit: {U1}", "Total 8 5 1 3 4", "Created 2",
                     "Failed changes 1", "Page 1/"):
        assert expected in text, expected
    assert "Tổng cộng" not in text and "Trang" not in text


async def test_every_report_made_is_archived_listed_and_given_back_byte_for_byte(seeded: Seeded) -> None:
    assert seeded.bm03("a.xlsx").returncode == 0
    assert seeded.bm03("b.pdf", "--by", "Trần Thị Lan", "--unit", U1).returncode == 0
    archived = await _archive_of(seeded)
    p = seeded.expected.period
    assert [(r.id, r.fmt, r.filename, r.made_by, r.unit, r.period_start, r.period_end, r.scheduled)
            for r in archived] == [
        (1, "xlsx", "a.xlsx", getpass.getuser(), "", p.start, p.end, False),
        (2, "pdf", "b.pdf", "Trần Thị Lan", U1, p.start, p.end, False)]
    assert archived[0].content == (seeded.folder / "a.xlsx").read_bytes()

    listing = seeded.run("reports", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["Số", "Lập", "lúc", "Kỳ", "báo", "cáo", "Đơn", "vị", "Định", "dạng", "Người", "lập",
                                "Dung", "lượng"]
    period = f"{p.start:%d/%m/%Y} – {p.end:%d/%m/%Y}"
    assert lines[1].split()[0] == "2" and period in lines[1] and U1 in lines[1] and "Trần Thị Lan" in lines[1]
    assert " pdf " in lines[1] and " xlsx " in lines[2] and "Tất cả đơn vị" in lines[2]
    made_at = archived[1].made_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert f"{made_at:%d/%m/%Y %H:%M}" in lines[1]
    assert lines[1].rstrip().endswith(f"{archived[1].size / 1024:.1f} KB")

    got = seeded.run("reports", "get", "2", "--out", "again.pdf")
    assert got.returncode == 0, got.stderr
    assert (seeded.folder / "again.pdf").read_bytes() == (seeded.folder / "b.pdf").read_bytes()
    assert got.stdout.startswith("Đã ghi báo cáo số 2 (BM03 ")


MISTAKES = [
    (["bm03", "--from", "2026-03-31", "--to", "2026-03-01", "--out", "x.xlsx"],
     "edudesk: Ngày bắt đầu 31/03/2026 sau ngày kết thúc 01/03/2026.", 1),
    (["bm03", "--from", "2026-03-01", "--to", "2026-03-31", "--out", "x.docx"],
     "edudesk: Tệp báo cáo phải có đuôi .xlsx hoặc .pdf: x.docx", 1),
    (["bm03", "--from", "2026-03-01", "--to", "2026-03-31", "--out", "missing/x.pdf"],
     "edudesk: Thư mục missing không tồn tại.", 1),
    (["bm03", "--from", "2026-02-30", "--to", "2026-03-31", "--out", "x.pdf"],
     "edudesk reports bm03: argument --from: '2026-02-30' không phải ngày dạng YYYY-MM-DD (ví dụ: 2025-09-01) "
     "(edudesk reports bm03 --help)", 2),  # a malformed argument: argparse's usage status, as every command
    (["get", "99", "--out", "x.pdf"],
     "edudesk: Không có báo cáo số 99 trong kho lưu trữ (xem: edudesk reports list).", 1),
    (["get", "1", "--out", "x.pdf"], "edudesk: Báo cáo số 1 là tệp .xlsx; hãy đặt tên tệp có đuôi .xlsx.", 1),
]


async def test_each_mistake_is_one_line_a_non_zero_exit_and_nothing_archived(seeded: Seeded) -> None:
    assert seeded.bm03("first.xlsx").returncode == 0  # report no. 1, an .xlsx
    before = sorted(p.name for p in seeded.folder.iterdir())
    for args, line, status in MISTAKES:
        result = seeded.run("reports", *args)
        assert (result.returncode, result.stderr, result.stdout) == (status, line + "\n", ""), args
        assert sorted(p.name for p in seeded.folder.iterdir()) == before, args  # no file written
    assert [r.id for r in await _archive_of(seeded)] == [1]
