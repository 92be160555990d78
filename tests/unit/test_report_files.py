"""The BM03 files from hand-made figures: the workbook's cells are typed (numbers, fractions, local datetimes)
and carry native charts; the PDF's text (read back with pypdf) holds the header and every figure; English is
complete; an empty period still makes both files; the charts are inline-safe SVG and Vietnamese-capable PNG."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from edudesk.core.reports.charts import bar_chart, bm03_charts, line_chart
from edudesk.core.reports.figures import (
    AccountCounts,
    Bm03Figures,
    DayCount,
    GroupRow,
    OverdueRequest,
    Period,
    ProblemCount,
    SlowRequest,
    StepTimes,
)
from edudesk.core.reports.pdf import bm03_pdf
from edudesk.core.reports.xlsx import bm03_xlsx

ROOT = Path(__file__).resolve().parents[2]
TZ = "Asia/Ho_Chi_Minh"
PERIOD = Period(start=date(2026, 3, 1), end=date(2026, 3, 7), timezone=TZ)
MADE = datetime(2026, 3, 8, 1, 30, tzinfo=UTC)  # 08/03/2026 08:30 in Hà Nội


def figures(period: Period = PERIOD) -> Bm03Figures:
    """A week of requests: two kinds, two units, slow and overdue ones, problems and account changes."""
    return Bm03Figures(
        period=period, generated_at=MADE, institution="Trường Đại học Sư phạm Kỹ thuật Vĩnh Long",
        office_unit="Phòng Hành chính – Tổng hợp", form="MTT.QT06.BM03",
        groups=(GroupRow("new_account", "staff", "Khoa Công nghệ thông tin", 4, 3, 1, 2, 1),
                GroupRow("new_account", "student", "Khoa Cơ khí", 7, 6, 0, 6, 1),
                GroupRow("password_reset", "student", "", 5, 4, 1, 4, 0)),
        steps=(StepTimes("office", 15, 12, 24.0, 5.5, (SlowRequest(41, "new_account", "Khoa Cơ khí", 30.25),)),
               StepTimes("technical", 13, 13, 24.0, 2.0, ()),
               StepTimes("total", 12, 9, 48.0, 9.75, (SlowRequest(41, "new_account", "Khoa Cơ khí", 52.5),))),
        accounts=AccountCounts(created=8, reset=4, suspended=1, deleted=2, failed=3),
        problems=(ProblemCount("name_missing", "Thiếu họ tên người dùng", 3),
                  ProblemCount("unit_unknown", "Đơn vị không có trong danh mục", 1)),
        overdue=(OverdueRequest(57, "password_reset", "Khoa Cơ khí", "received",
                                datetime(2026, 3, 5, 2, 0, tzinfo=UTC), datetime(2026, 3, 6, 2, 0, tzinfo=UTC),
                                46.5),),
        days=tuple(DayCount(period.start + timedelta(days=i), r, f)
                   for i, (r, f) in enumerate([(3, 1), (2, 2), (0, 0), (4, 3), (5, 2), (1, 3), (1, 1)])))


def empty() -> Bm03Figures:
    """A period in which nothing happened."""
    return Bm03Figures(period=PERIOD, generated_at=MADE, institution="Trường THPT Lê Quý Đôn", office_unit="Tổ Tin học",
                       form="BM03", groups=(), steps=(StepTimes("office", 0, 0, 24.0, None, ()),
                                                      StepTimes("technical", 0, 0, 24.0, None, ()),
                                                      StepTimes("total", 0, 0, 48.0, None, ())),
                       accounts=AccountCounts(0, 0, 0, 0, 0), problems=(), overdue=(),
                       days=tuple(DayCount(PERIOD.start + timedelta(days=i), 0, 0) for i in range(7)))


def rows_of(ws) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [tuple(c.value for c in row) for row in ws.iter_rows()]


def row_starting(ws, text: object) -> tuple:  # type: ignore[no-untyped-def]
    """The first row whose first cell is `text`."""
    return next(r for r in rows_of(ws) if r[0] == text)


def cell_of(ws, text: str):  # type: ignore[no-untyped-def]
    return next(c for row in ws.iter_rows() for c in row if c.value == text)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_workbook_cells_are_numbers_fractions_and_local_datetimes() -> None:
    book = load_workbook(io.BytesIO(bm03_xlsx(figures())))
    summary, daily = book["Tổng hợp"], book["Theo ngày"]
    assert summary["A1"].value == "TRƯỜNG ĐẠI HỌC SƯ PHẠM KỸ THUẬT VĨNH LONG"
    assert summary["D1"].value == "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    assert summary["D2"].value == "Độc lập - Tự do - Hạnh phúc"
    assert summary["A2"].value == "PHÒNG HÀNH CHÍNH – TỔNG HỢP"
    assert summary["A3"].value == "Tổng hợp, thống kê kết quả thực hiện cấp TKĐT, cấp lại mật khẩu TKĐT"
    assert summary["A4"].value == ("Biểu mẫu: MTT.QT06.BM03 · Từ ngày 01/03/2026 đến ngày 07/03/2026 · "
                                   "Đơn vị: Tất cả đơn vị")
    assert summary["A5"].value == "Lập lúc: 08/03/2026 08:30"
    assert summary.freeze_panes == "A6" and daily.freeze_panes == "A2"
    groups = [r for r in rows_of(summary) if r[1] in ("Cán bộ", "Sinh viên")]
    assert [r[:8] for r in groups] == [("Cấp tài khoản", "Cán bộ", "Khoa Công nghệ thông tin", 4, 3, 1, 2, 1),
                                       ("Cấp tài khoản", "Sinh viên", "Khoa Cơ khí", 7, 6, 0, 6, 1),
                                       ("Cấp lại mật khẩu", "Sinh viên", "(không ghi đơn vị)", 5, 4, 1, 4, 0)]
    assert row_starting(summary, "Tổng cộng")[:8] == ("Tổng cộng", None, None, 16, 13, 2, 12, 2)
    office = row_starting(summary, "Văn phòng kiểm tra (tiếp nhận → duyệt/từ chối)")
    assert office[1:6] == (15, 12, 0.8, 24.0, 5.5)
    share = cell_of(summary, 0.8)
    assert share.number_format == "0.0%" and isinstance(share.value, float)
    assert row_starting(summary, "Toàn bộ (tiếp nhận → hoàn thành)")[1:6] == (12, 9, 0.75, 48.0, 9.75)
    assert row_starting(summary, "Tạo mới")[:2] == ("Tạo mới", 8)
    assert row_starting(summary, "Thao tác không thành công")[:2] == ("Thao tác không thành công", 3)
    assert row_starting(summary, "Thiếu họ tên người dùng")[:2] == ("Thiếu họ tên người dùng", 3)
    overdue = row_starting(summary, 57)
    assert overdue[:7] == (57, "Cấp lại mật khẩu", "Khoa Cơ khí", "Chờ kiểm tra", datetime(2026, 3, 5, 9, 0),
                           datetime(2026, 3, 6, 9, 0), 46.5)
    received_at = cell_of(summary, datetime(2026, 3, 5, 9, 0))
    assert received_at.number_format == "dd/mm/yyyy hh:mm" and received_at.is_date
    assert cell_of(summary, 57).number_format == '"YC-"0'
    assert rows_of(daily)[0] == ("Ngày", "Tiếp nhận", "Xử lý xong")
    assert rows_of(daily)[1] == (datetime(2026, 3, 1), 3, 1) and daily["A2"].number_format == "dd/mm/yyyy"
    assert len(rows_of(daily)) == 8


def test_workbook_has_native_charts_over_its_cells() -> None:
    book = load_workbook(io.BytesIO(bm03_xlsx(figures())))
    summary, daily = book["Tổng hợp"], book["Theo ngày"]
    kinds = sorted(type(c).__name__ for c in summary._charts)
    assert kinds == ["BarChart", "BarChart"] and [type(c).__name__ for c in daily._charts] == ["LineChart"]
    line = daily._charts[0]
    assert [s.val.numRef.f for s in line.series] == ["'Theo ngày'!$B$2:$B$8", "'Theo ngày'!$C$2:$C$8"]
    by_kind = next(c for c in summary._charts if c.type == "col")
    # Each series names itself from a column title and spans the per-kind table, every kind of request.
    assert [summary[s.tx.strRef.f.split("!")[1]].value for s in by_kind.series] == [
        "Tiếp nhận", "Hoàn thành", "Từ chối", "Đang xử lý"]
    cat = by_kind.series[0].cat
    categories = (cat.strRef or cat.numRef).f.split("!")[1].replace("$", "")
    assert [c.value for (c,) in summary[categories]] == [
        "Cấp tài khoản", "Cấp lại mật khẩu", "Cấp tài khoản theo danh sách", "Xoá tài khoản", "Câu hỏi"]
    received = by_kind.series[0].val.numRef.f.split("!")[1].replace("$", "")
    assert [c.value for (c,) in summary[received]] == [11, 5, 0, 0, 0]
    steps = next(c for c in summary._charts if c.type == "bar")
    shares = steps.series[0].val.numRef.f.split("!")[1].replace("$", "")
    assert [c.value for (c,) in summary[shares]] == [0.8, 1, 0.75]


def test_pdf_text_has_the_administrative_header_and_every_figure() -> None:
    text = pdf_text(bm03_pdf(figures()))
    flat = " ".join(text.split())
    for expected in ("TRƯỜNG ĐẠI HỌC SƯ PHẠM KỸ THUẬT VĨNH LONG", "PHÒNG HÀNH CHÍNH – TỔNG HỢP",
                     "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "Biểu mẫu: MTT.QT06.BM03",
                     "TỔNG HỢP, THỐNG KÊ KẾT QUẢ THỰC HIỆN CẤP TKĐT, CẤP LẠI MẬT KHẨU TKĐT",
                     "Từ ngày 01/03/2026 đến ngày 07/03/2026", "Lập lúc: 08/03/2026 08:30",
                     "Cấp tài khoản Cán bộ Khoa Công nghệ thông tin 4 3 1 2 1",
                     "Cấp lại mật khẩu Sinh viên (không ghi đơn vị) 5 4 1 4 0", "Tổng cộng 16 13 2 12 2",
                     "15 12 80,0% 24,0 5,5", "12 9 75,0% 48,0 9,8", "YC-41", "30,3", "52,5",
                     "Tạo mới 8", "Cấp lại mật khẩu 4", "Tạm khoá 1", "Xoá 2", "Thao tác không thành công 3",
                     "Thiếu họ tên người dùng 3", "Đơn vị không có trong danh mục 1",
                     "YC-57 Cấp lại mật khẩu Khoa Cơ khí Chờ kiểm tra 05/03/2026 09:00 06/03/2026 09:00 46,5",
                     "7. Biểu đồ"):
        assert expected in flat, expected
    pages = len(PdfReader(io.BytesIO(bm03_pdf(figures()))).pages)
    assert f"Trang 1/{pages}" in flat and f"Trang {pages}/{pages}" in flat


def test_pdf_carries_the_three_charts_as_images() -> None:
    reader = PdfReader(io.BytesIO(bm03_pdf(figures())))
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 3
    assert all(image.image.width >= 900 for image in images)  # 150 dpi: sharp when printed


def test_english_report_is_complete() -> None:
    fig = figures()
    book = load_workbook(io.BytesIO(bm03_xlsx(fig, "en")))
    assert book.sheetnames == ["Summary", "By day"]
    summary = book["Summary"]
    assert summary["D1"].value == "SOCIALIST REPUBLIC OF VIET NAM"
    assert row_starting(summary, "Total")[:8] == ("Total", None, None, 16, 13, 2, 12, 2)
    assert row_starting(summary, "Office check (received → approved/rejected)")[1:6] == (15, 12, 0.8, 24.0, 5.5)
    vietnamese = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)
    fixed = {fig.institution.upper(), fig.office_unit.upper(), "Khoa Công nghệ thông tin", "Khoa Cơ khí",
             "Thiếu họ tên người dùng", "Đơn vị không có trong danh mục"}  # data, not the report's words
    leaks = [v for ws in book for row in rows_of(ws) for v in row
             if isinstance(v, str) and v not in fixed and vietnamese.search(v)]
    assert not leaks
    text = " ".join(pdf_text(bm03_pdf(fig, "en")).split())
    for expected in ("SOCIALIST REPUBLIC OF VIET NAM", "From 01/03/2026 to 07/03/2026", "Made at: 08/03/2026 08:30",
                     "New account Staff Khoa Công nghệ thông tin 4 3 1 2 1", "15 12 80.0% 24.0 5.5",
                     "Password reset Student (no unit given) 5 4 1 4 0", "Page 1/"):
        assert expected in text, expected
    assert "Trang" not in text and "Tiếp nhận" not in text


def test_an_empty_period_still_makes_both_files() -> None:
    book = load_workbook(io.BytesIO(bm03_xlsx(empty())))
    summary = book["Tổng hợp"]
    assert row_starting(summary, "Cấp tài khoản")[:6] == ("Cấp tài khoản", 0, 0, 0, 0, 0)
    assert sum(1 for r in rows_of(summary) if r[0] == "Không có.") == 4  # groups, slowest, problems, overdue
    assert len(summary._charts) == 2 and len(book["Theo ngày"]._charts) == 1
    text = " ".join(pdf_text(bm03_pdf(empty())).split())
    assert "TRƯỜNG THPT LÊ QUÝ ĐÔN" in text and "Không có." in text and "Tạo mới 0" in text


def test_svg_charts_are_safe_to_inline_and_scale() -> None:
    svg = bar_chart(["Cấp tài khoản", "Khoa <Cơ> & khí"], {"Tiếp nhận": [3, 5], "Hoàn thành": [2, 0]},
                    title="Yêu cầu theo loại", ylabel="Số yêu cầu").decode()
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = svg[:svg.index(">")]
    assert "viewBox=" in root and " width=" not in root and " height=" not in root
    assert "<script" not in svg and "<style" not in svg and "<metadata" not in svg
    assert not re.search(r'href="(?!#)', svg) and "url(http" not in svg  # only references inside the chart
    texts = [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert "Cấp tài khoản" in texts and "Khoa &lt;Cơ&gt; &amp; khí" in texts  # text kept as (escaped) text
    assert not re.search(r'\sid="(figure|axes|patch)_', svg)  # no generic ids to clash with the page's
    # The console's CSP ignores style attributes: colours are presentation attributes, or the chart is black.
    assert ' style="' not in svg and 'fill="#ffffff"' in svg
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(5)]
    assert line_chart(days, {"Tiếp nhận": [1, 2, 0, 4, 1]}, title="Theo ngày").startswith(b"<svg")


def test_png_charts_are_printable_images() -> None:
    from PIL import Image

    png = bar_chart(["Cấp lại mật khẩu"], {"Đúng hạn": [80.0]}, title="Tỷ lệ", fmt="png", horizontal=True,
                    scale_max=100)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.info.get("dpi", (0,))[0] == pytest.approx(150, abs=1)
    charts = bm03_charts(figures(), "vi", "png")
    assert set(charts) == {"by_kind", "steps", "daily"} and all(c.startswith(b"\x89PNG") for c in charts.values())
    with pytest.raises(ValueError):
        bar_chart(["a"], {"x": [1]}, title="t", fmt="gif")
    with pytest.raises(ValueError):
        bar_chart(["a", "b"], {"x": [1]}, title="t")


def test_a_capped_overdue_list_says_how_many_there_are_in_all() -> None:
    fig = dataclasses.replace(figures(), overdue_total=250)
    book = load_workbook(io.BytesIO(bm03_xlsx(fig)))
    note = "Liệt kê 1 yêu cầu trễ nhất trong tổng số 250 yêu cầu quá hạn."
    assert any(r[0] == note for r in rows_of(book["Tổng hợp"]))
    assert note in " ".join(pdf_text(bm03_pdf(fig)).split())
    assert not any(r[0] == note for r in rows_of(load_workbook(io.BytesIO(bm03_xlsx(figures())))["Tổng hợp"]))


def test_charts_drawn_in_several_threads_at_once_are_the_same_as_one_by_one() -> None:
    def draw(_: int) -> tuple[bytes, bytes]:
        return (bar_chart(["Cấp tài khoản", "Xoá tài khoản"], {"Tiếp nhận": [4, 1]}, title="Theo loại"),
                line_chart([date(2026, 3, 1), date(2026, 3, 2)], {"Tiếp nhận": [1, 3]}, title="Theo ngày"))

    alone = draw(0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(draw, range(16)))
    assert all(result == alone for result in together)


def test_matplotlib_is_imported_only_to_draw_and_settles_in_a_writable_config_dir(tmp_path: Path) -> None:
    """`edudesk --help` does not import it; a home that cannot be written (a service user's) gives no warning:
    the composition root points matplotlib at `<data_dir>/matplotlib`."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(not_a_folder / "home"), PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    data = tmp_path / "data"
    script = ("import os, sys, edudesk.app\n"
              "from edudesk.core.config import load_settings\n"
              "assert 'matplotlib' not in sys.modules\n"
              "from edudesk.core.reports.charts import bar_chart\n"
              "assert 'matplotlib' not in sys.modules\n"
              f"edudesk.app.matplotlib_home(load_settings(None, overrides={{'general': {{'data_dir': {str(data)!r}}}}},"
              " environ={}))\n"
              "png = bar_chart(['Cấp tài khoản'], {'Tiếp nhận': [3]}, title='Yêu cầu', fmt='png')\n"
              "assert png.startswith(bytes([137, 80, 78, 71]))\n"
              "print(os.environ['MPLCONFIGDIR'])\n")
    for _ in range(2):  # the second start finds the folder (and its font cache) the first one made
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        folder = Path(run.stdout.strip())
        assert folder == data / "matplotlib" and any(folder.iterdir())  # the font cache is kept there
        assert folder.stat().st_mode & 0o077 == 0  # the user's alone
