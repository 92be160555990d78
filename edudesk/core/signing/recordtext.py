"""What a record says in words: the school it names (one place for the header, the issuing box and its stamp,
the demo), the place-and-date line of the signature page, "Trang x/y", and the terms and levels of Circular
22/2021/TT-BGDĐT ("Kết quả rèn luyện", "Kết quả học tập": Tốt / Khá / Đạt / Chưa đạt).

Which school a record names: a class's own school is the roster's "Trường" column when it is filled, else
`[records].school`, else `[institution].name` (`school_name`); a roster naming another school than the
configured one is refused at import (`class_school`), so the school's issuing certificate never signs another
school's records. Everything printed later (the issuing box's label, its stamp, a re-made record) reads the
class's stored school.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from edudesk.core.text import clean, nfc

if TYPE_CHECKING:
    from edudesk.core.config import Settings
    from edudesk.core.ports import SignItem

CONDUCT = "Kết quả rèn luyện"  # Circular 22/2021 art. 8 (was "Hạnh kiểm" under Circular 58/2011)
ACADEMIC = "Kết quả học tập"  # Circular 22/2021 art. 9 (was "Học lực")
LEVELS = ("Tốt", "Khá", "Đạt", "Chưa đạt")
# Levels of the older circulars (58/2011, 26/2020), written as the current ones: old documents still say them.
OLD_LEVELS = {"giỏi": "Tốt", "trung bình": "Đạt", "yếu": "Chưa đạt", "kém": "Chưa đạt"}
UNDATED = "ngày … tháng … năm …"


def school_name(settings: Settings) -> str:
    """The school records name: `[records].school`, or `[institution].name` when that is empty."""
    return clean(settings.records.school) or clean(settings.institution.name)


def class_school(roster: str, configured: str, class_name: str) -> str:
    """A class's school: the roster's "Trường" when filled (it must be the configured school), else the
    configured one. ValueError (with the Vietnamese text) for a roster of another school."""
    given, school = clean(roster), clean(configured)
    if not given or not school:
        return given or school
    if given.casefold() != school.casefold():
        raise ValueError(f"Lớp {class_name}: cột \"Trường\" ghi \"{given}\", khác trường của cấu hình "
                         f"(\"{school}\", [records].school hoặc [institution].name). Hãy sửa tệp phân công "
                         "hoặc để trống cột Trường.")
    return school


def date_line(place: str, when: datetime | None, timezone: str) -> str:
    """The place-and-date line, "Hà Nội, ngày 05 tháng 3 năm 2026", in the office's zone (Decree 30/2020:
    a day below 10 and the months 1 and 2 take a leading zero); dotted blanks while `when` is None."""
    where = nfc(place).strip()
    if when is None:
        return f"{where or '…'}, {UNDATED}"
    day = when.astimezone(ZoneInfo(timezone))
    month = f"{day.month:02d}" if day.month <= 2 else str(day.month)
    text = f"ngày {day.day:02d} tháng {month} năm {day.year}"
    return f"{where}, {text}" if where else text[0].upper() + text[1:]


def page_label(number: int, total: int) -> str:
    """The page number printed at the foot of every page of a record."""
    return f"Trang {number}/{total}"


def result_level(text: str) -> str | None:
    """A result as Circular 22 writes it (Tốt, Khá, Đạt, Chưa đạt), old levels mapped; None when unknown."""
    key = clean(text).casefold()
    for level in LEVELS:
        if key == level.casefold():
            return level
    return OLD_LEVELS.get(key)


async def issuing_item(item: SignItem, class_id: int, settings: Settings) -> SignItem:
    """The issuing signature's item: the stamp names the class's school, and the record's place-and-date line
    is filled with the issuing day (an update the issuing signature covers) just before it is signed."""
    from edudesk.core.signing.models import SchoolClass
    from edudesk.core.signing.sigpage import fill_date_line

    klass = await SchoolClass.get(id=class_id)
    school = clean(klass.school) or school_name(settings)
    line = date_line(settings.records.place, item.at or datetime.now(UTC), settings.general.timezone)
    return dataclasses.replace(item, pdf=fill_date_line(item.pdf, line), signer_name=school, location=school)
