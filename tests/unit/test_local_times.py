"""Times shown to people are the office's local time, dd/mm/yyyy HH:MM: text, PDF stamps, `records verify`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.writer import PdfFileWriter

from edudesk.core.signing.stamp import stamp_style
from edudesk.core.signing.verify import RecordReport, SignatureReport, format_report
from edudesk.core.text import local_time


def test_local_time_is_day_month_year_then_hours_in_the_configured_zone() -> None:
    moment = datetime(2026, 9, 1, 8, 5, tzinfo=UTC)
    assert local_time(moment, "Asia/Ho_Chi_Minh") == "01/09/2026 15:05"
    assert local_time("2026-09-01T08:05:00+00:00", "Asia/Ho_Chi_Minh") == "01/09/2026 15:05"
    assert local_time(datetime(2026, 9, 1, 8, 5), "UTC") == "01/09/2026 08:05"  # naive = stored UTC


def test_pdf_stamp_shows_the_local_signing_time_not_the_servers_zone() -> None:
    stamp = stamp_style("Asia/Ho_Chi_Minh").create_stamp(PdfFileWriter(), BoxConstraints(200, 50),
                                                         {"signer": "Nguyễn Văn An"})
    assert stamp.text_params is not None
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", stamp.text_params["ts"])
    assert stamp.text_params["ts"][:10] == local_time(datetime.now(UTC), "Asia/Ho_Chi_Minh")[:10]
    assert stamp.text_params["signer"] == "Nguyễn Văn An"


def test_records_verify_report_prints_local_times() -> None:
    signature = SignatureReport(field="gvbm_toan", role="Giáo viên bộ môn", signer="Lê Thị Mai",
                                signed_at=datetime(2026, 5, 20, 2, 30, tzinfo=UTC), intact=True, valid=True,
                                trusted=True, certified=False, modification="form_filling", changes_after="")
    report = RecordReport((signature,), ())
    text = format_report(report, lang="vi", timezone="Asia/Ho_Chi_Minh")
    assert "lúc 20/05/2026 09:30:" in text and "UTC" not in text
