"""Principal last, as pure functions and as the roster says it: inside the leadership stage the principal's turn
opens once every vice principal has signed; the roster marks the principal in its "Chức vụ" column."""

from __future__ import annotations

import io

import pytest

from edudesk.core.signing.models import StepState as Turn
from edudesk.core.signing.roster import read_roster
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.stages import OutOfOrder, StepState, after_signing, check_may_sign, first_turns

# Homeroom (already signed), two vice principals (turn 0), the principal (turn 1), the issuing signature.
RECORD = (StepState(1, Stage.HOMEROOM, Turn.SIGNED, 11), StepState(2, Stage.LEADERSHIP, Turn.WAITING, 21),
          StepState(3, Stage.LEADERSHIP, Turn.WAITING, 22), StepState(4, Stage.LEADERSHIP, Turn.WAITING, 20, 1),
          StepState(5, Stage.ISSUER, Turn.WAITING, None))


def opened(steps: tuple[StepState, ...], ids: tuple[int, ...]) -> tuple[StepState, ...]:
    return tuple(StepState(s.id, s.stage, Turn.OPEN if s.id in ids else s.state, s.teacher_id, s.turn) for s in steps)


def test_the_vice_principals_open_together_and_the_principal_after_both() -> None:
    first = first_turns(RECORD)
    assert first.opened == (2, 3) and first.stage == Stage.LEADERSHIP
    steps = opened(RECORD, first.opened)
    with pytest.raises(OutOfOrder, match="hiệu trưởng ký sau cùng"):
        check_may_sign(steps, 4)
    check_may_sign(steps, 3)
    assert after_signing(steps, (2,)).opened == (), "one vice principal left: nothing opens"
    done = after_signing(steps, (2, 3))
    assert done.opened == (4,) and done.stage == Stage.LEADERSHIP and not done.complete
    assert after_signing(opened(steps, (4,)), (2, 3, 4)).opened == (5,)


def test_without_turns_the_leadership_signs_in_parallel() -> None:
    parallel = tuple(StepState(s.id, s.stage, s.state, s.teacher_id) for s in RECORD)
    assert first_turns(parallel).opened == (2, 3, 4)


def _roster(chuc_vu: bool) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheets = {
        "Giáo viên": [("Mã GV", "Họ và tên", "Email"), ("GV01", "Nguyễn Thị Bích", ""), ("HT", "Phạm Quốc Hùng", ""),
                      ("PHT", "Đỗ Thị Lan", "")],
        "Lớp": [("Năm học", "Lớp", "Trường", "GVCN"), ("2025-2026", "10A1", "Trường THPT Lê Quý Đôn", "GV01")],
        "Phân công": [("Lớp", "Môn", "Mã GV"), ("10A1", "Toán", "GV01")],
        "Ban giám hiệu": [("Lớp", "Mã GV", "Thứ tự", "Chức vụ"), ("*", "HT", 1, "Hiệu trưởng"),
                          ("*", "PHT", 2, "Phó hiệu trưởng")] if chuc_vu else
                         [("Lớp", "Mã GV", "Thứ tự"), ("*", "HT", 1), ("*", "PHT", 2)],
        "Học sinh": [("Lớp", "Mã HS", "Họ và tên", "Ngày sinh"), ("10A1", "HS001", "Học Sinh Số 1", "01/01/2010")],
    }
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_roster_marks_the_principal_in_its_chuc_vu_column_and_older_rosters_still_read() -> None:
    row = read_roster(_roster(chuc_vu=True)).classes["10A1"]
    assert (row.leaders, row.principal) == (["HT", "PHT"], "HT"), "Phó hiệu trưởng is not the principal"
    older = read_roster(_roster(chuc_vu=False)).classes["10A1"]
    assert (older.leaders, older.principal) == (["HT", "PHT"], "")
