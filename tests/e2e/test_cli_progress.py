"""Long command-line work shows a progress bar on standard error with `--progress` (or on a terminal), and
leaves standard output, and a pipe's standard error, exactly as before."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edudesk.cli.progress import progress
from tests.e2e.test_cli import ROOT, edudesk
from tests.mails import registry_xlsx

STUDENTS = [("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", ""),
            ("20201235", "Trần Thị Bình", "12/11/2003", "CNTT-01 K65", ""),
            ("20201236", "Lê Hoàng Cường", "01/01/2003", "CNTT-02 K65", "")]


def _config(tmp_path: Path, lang: str = "vi") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\nlanguage = "{lang}"\n'
                    f'[intake]\nparser_processes = 1\n', encoding="utf-8")
    return path


def test_registry_import_with_progress_draws_a_bar_on_stderr_and_prints_the_same_result(tmp_path: Path) -> None:
    config = _config(tmp_path)
    edudesk(config, "db", "migrate")
    xlsx = registry_xlsx(tmp_path / "sv.xlsx", STUDENTS)
    quiet = edudesk(config, "registry", "import", str(xlsx), "--population", "student")
    shown = edudesk(config, "registry", "import", str(xlsx), "--population", "student", "--progress")
    assert quiet.stdout == "Đã nhập: 3 mới, 0 cập nhật, 0 bỏ qua.\n"
    assert quiet.stderr == ""  # a pipe: no bar
    assert shown.stdout == "Đã nhập: 0 mới, 3 cập nhật, 0 bỏ qua.\n"  # the bar never reaches standard output
    last = shown.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("Nhập danh sách: 100%|") and "3/3 người" in last, shown.stderr


def test_progress_speaks_the_configured_language(tmp_path: Path) -> None:
    config = _config(tmp_path, "en")
    edudesk(config, "db", "migrate")
    shown = edudesk(config, "registry", "import", str(registry_xlsx(tmp_path / "sv.xlsx", STUDENTS)),
                    "--population", "student", "--progress")
    assert "Importing the registry: 100%|" in shown.stderr and "3/3 people" in shown.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_drawn_on_a_terminal_without_the_flag_and_not_on_a_pipe() -> None:
    pipe, terminal = io.StringIO(), _Terminal()
    for stream in (pipe, terminal):
        with progress("records_export", "vi", stream=stream) as on_progress:
            for done in range(4):
                on_progress(done, 3)
    assert pipe.getvalue() == ""
    assert "Xuất học bạ: 100%|" in terminal.getvalue() and "3/3 học bạ" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")  # the bar's line is ended: what follows starts on its own line


@pytest.mark.slow
def test_records_demo_and_export_with_progress_show_each_stage(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           "records", "demo", "--students", "3", "--sign", "--out", str(out), "--progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    bars = done.stderr.replace("\r", "\n")
    assert "Tạo học bạ mẫu: 100%|" in bars and "3/3 học bạ" in bars
    assert "Ký học bạ mẫu: 100%|" in bars and "45/45 chữ ký" in bars  # 3 records x 15 signatures
    assert "Xuất học bạ: 100%|" in bars
    assert "%|" not in done.stdout and "Đã ghi 3 học bạ đã ký" in done.stdout
    klass = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["class"]
    again = edudesk(config, "records", "export", klass, "--out", str(tmp_path / "again"), "--progress")
    assert again.stdout == f"Đã xuất 3 học bạ vào {tmp_path / 'again'}\n"
    assert "Xuất học bạ: 100%|" in again.stderr and "3/3 học bạ" in again.stderr
    quiet = edudesk(config, "records", "export", klass, "--out", str(tmp_path / "quiet"))
    assert quiet.stderr == ""
