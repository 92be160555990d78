"""The command line of issue #18, run as a school's IT officer would: `records demo --sign` makes B-LTA
records with its own TSA, OCSP and CRL on 127.0.0.1; `records verify --at` says per signature who signed, in
which role, when (local time), the timestamp and its TSA, whether revocation was checked, the PAdES level and
whether it still validates at a date ten years ahead; the same for a class by its name; `records refresh-ltv`
renews the archival timestamp; a B-B demo does not validate ten years ahead."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.signing.pki import DemoPki

ROOT = Path(__file__).resolve().parents[2]
AHEAD = (dt.date.today() + dt.timedelta(days=3652)).isoformat()

pytestmark = pytest.mark.slow


def edudesk(config: Path, *args: str, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the command line from the checkout."""
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f'[general]\ndata_dir = "{folder / "data"}"\n[intake]\nparser_processes = 1\n', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("ltv-demo")
    config = _config(folder)
    done = edudesk(config, "records", "demo", "--students", "2", "--sign", "--out", str(folder / "out"))
    assert "Dịch vụ TSA/OCSP/CRL thử nghiệm: http://127.0.0.1:" in done.stdout and "B-LTA" in done.stdout
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    return config, sorted((folder / "out").glob("HS*.pdf"))


def test_verify_at_ten_years_ahead_reports_b_lta_for_every_signature(demo: tuple[Path, list[Path]]) -> None:
    config, pdfs = demo
    assert len(pdfs) == 2
    done = edudesk(config, "records", "verify", str(pdfs[0]), "--at", AHEAD)
    text = done.stdout
    day = dt.date.fromisoformat(AHEAD).strftime("%d/%m/%Y")
    facts = [line for line in text.splitlines() if line.strip().startswith("PAdES")]
    assert len(facts) == 15, text
    for line in facts:
        assert re.search(r"PAdES B-LTA; dấu thời gian \d\d/\d\d/\d{4} \d\d:\d\d \(edudesk — dịch vụ dấu thời gian "
                         r"thử nghiệm\); đã kiểm tra thu hồi: có; vẫn kiểm chứng được vào ngày " + re.escape(day) +
                         r": có$", line.strip()), line
    assert "[Giáo viên bộ môn]" in text and re.search(r"\[Ký phát hành\] .+ lúc \d\d/\d\d/\d{4} \d\d:\d\d", text)
    assert "dấu thời gian lưu trữ: 1, gần nhất lúc" in text and "records refresh-ltv" in text
    assert text.rstrip().endswith("ĐẠT: mọi chữ ký đều hợp lệ")
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr


def test_verify_in_english_and_json(demo: tuple[Path, list[Path]]) -> None:
    config, pdfs = demo
    english = edudesk(config, "records", "verify", str(pdfs[1]), "--at", AHEAD, "--lang", "en").stdout
    assert english.count("revocation checked: yes; still validates on") == 15
    assert "document timestamps: 1, the last" in english and english.rstrip().endswith("OK: every signature holds")
    assert "đã kiểm tra thu hồi" not in english and "lưu trữ" not in english  # (the TSA's own name stays as it is)
    line = edudesk(config, "records", "verify", str(pdfs[1]), "--json", "--at", AHEAD).stdout.strip()
    data = json.loads(line)
    assert data["ok"] is True and data["at"] == AHEAD
    levels = {s["ltv"]["level"] for s in data["report"]["signatures"]}
    assert levels == {"B-LTA"} and all(s["ltv"]["valid_at"] for s in data["report"]["signatures"])


def test_verify_a_class_by_name_then_refresh_ltv_renews_the_archival_timestamp(demo: tuple[Path, list[Path]]) -> None:
    config, _pdfs = demo
    by_class = edudesk(config, "records", "verify", "10A1").stdout
    assert by_class.count("== 10A1/HS") == 2 and by_class.count("ĐẠT: mọi chữ ký đều hợp lệ") == 2
    refused = edudesk(config, "records", "refresh-ltv", ok=False)  # the demo's TSA ran only during the demo
    assert refused.returncode != 0 and "tsa_url" in refused.stdout + refused.stderr
    with LocalPkiService(DemoPki.load(config.parent / "data" / "records-demo")) as service:  # its port again
        text = config.read_text(encoding="utf-8").replace("[records]", f'[records]\ntsa_url = "{service.tsa_url}"', 1)
        config.write_text(text, encoding="utf-8")
        assert "cho 0 học bạ (đã xem 2" in edudesk(config, "records", "refresh-ltv").stdout  # not due for years
        renewed = edudesk(config, "records", "refresh-ltv", "--before-days", "100000").stdout
        assert "Đã gia hạn dấu thời gian lưu trữ cho 2 học bạ (đã xem 2" in renewed
    after = edudesk(config, "records", "verify", "10A1", "--at", AHEAD).stdout
    assert after.count("dấu thời gian lưu trữ: 2, gần nhất lúc") == 2 and after.count("PAdES B-LTA") == 30


def test_demo_at_b_b_does_not_validate_ten_years_ahead(tmp_path: Path) -> None:
    config = _config(tmp_path / "bb")
    edudesk(config, "records", "demo", "--students", "1", "--sign", "--ltv", "B-B", "--out", str(tmp_path / "out"))
    [pdf] = sorted((tmp_path / "out").glob("HS*.pdf"))
    done = edudesk(config, "records", "verify", str(pdf), "--at", AHEAD, ok=False)
    assert done.returncode == 1
    assert done.stdout.count("PAdES B-B; dấu thời gian không có") == 15
    assert "vẫn kiểm chứng được vào ngày" in done.stdout and ": KHÔNG" in done.stdout
    assert done.stdout.rstrip().endswith("KHÔNG ĐẠT")
