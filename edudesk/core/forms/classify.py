"""What a request asks for (kind) and whom it is for (population), from wording, forms and sender."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edudesk.core.config import InstitutionSettings
from edudesk.core.intake.domain import Kind, Population, Problem
from edudesk.core.text import fold

_OBJECT = r"(tai khoan|tk|email|e mail|hop thu|thu dien tu|dia chi email|accounts?|mailbox(es)?)"
_FILLER = r"(?:(?:cac|nhung|bo|giup|di|the|these|those|my|our|mot|01|1|moi)\s+){0,2}"
_DELETE = re.compile(
    rf"\b(xoa|huy|huy bo|go bo|vo hieu hoa|delete|remove|deactivate|disable|close)\s+{_FILLER}{_OBJECT}\b"
)
_RESET = re.compile(
    r"\b(cap lai|dat lai|reset|lay lai|khoi phuc|quen|doi|mat|thay doi|cap moi|cap)"
    r"\s+(mat khau|mk|pass|password)\b"
    r"|\breset\b|\b(forgot|forgotten|lost)\s+(my\s+)?(password|pass)\b|\bpassword\s+(reset|recovery)\b"
    r"|\bcap lai tai khoan\b"
)
_NEW = re.compile(
    rf"\b(cap|tao|mo|dang ky|xin|lam|cap phat|tao moi)\s+{_FILLER}{_OBJECT}\b|\bcap moi\b|\btai khoan moi\b"
    r"|\bnew\s+(e ?mail\s+)?accounts?\b"
    r"|\b(create|open|register)\s+(an?\s+|the\s+|new\s+)*(e ?mail\s+)?accounts?\b"
)
_LEFT = re.compile(
    r"\b(thoi hoc|da ra truong|nghi hoc|bo hoc|chuyen truong|nghi viec|nghi huu|chuyen cong tac"
    r"|left the (university|school)|who (have )?left|withdrawn)\b"
)
_STAFF = re.compile(
    r"\b(can bo|cb|giang vien|nhan vien|vien chuc|cong chuc|giao vien|ma cb|mscb|staff|lecturer|employee)\b"
)
_STUDENT = re.compile(r"\b(sinh vien|sv|hoc vien|hoc sinh|nghien cuu sinh|mssv|ma sv|student|students)\b")
_NON_WORD = re.compile(r"[^a-z0-9]+")
# what people ask the IT office about that is not an account request (folded words)
_TOPICS = re.compile(
    r"\b(wi ?fi|wireless|mang|internet|lms|moodle|elearning|e learning|hoc truc tuyen|zoom|teams|google meet"
    r"|may chieu|may in|phong may|phan mem|vpn|cong thong tin|portal|office 365|microsoft 365|onedrive|drive"
    r"|so lien lac|hoc ba|lich thi|diem)\b"
)
MIN_FORM_LABELS = 2  # two form labels ("Họ và tên", "SĐT") make a form with gaps, never a question
_CHECKED = "☒☑✓✔■▣⊠"
_BOXES = _CHECKED + "☐□▢"
_STUDENT_LABELS = {"sis", "st", "student", "students", "sv", "stu", "hs", "hocsinh", "sinhvien"}


def _words(text: str) -> str:
    return " " + _NON_WORD.sub(" ", fold(text)) + " "


def kind_in(text: str, *, strict: bool = False) -> Kind | None:
    """The kind a text asks for; `strict`: None unless only one kind is mentioned (form titles)."""
    words = _words(text)
    found = [
        kind
        for kind, pattern in (
            (Kind.DELETE_ACCOUNTS, _DELETE), (Kind.PASSWORD_RESET, _RESET), (Kind.NEW_ACCOUNT, _NEW)
        )
        if pattern.search(words)
    ]
    if strict:
        kinds = set(found) | ({Kind.DELETE_ACCOUNTS} if _LEFT.search(words) else set())
        return kinds.pop() if len(kinds) == 1 else None
    if found:
        return found[0]  # deletion words are explicit; "cấp lại mật khẩu" also contains "cấp"
    return Kind.DELETE_ACCOUNTS if _LEFT.search(words) else None


def ticked_kind(value: str) -> Kind | None:
    """The option ticked in a "Loại yêu cầu" cell ("☒ Cấp mới ☐ Cấp lại mật khẩu"); plain text too."""
    if not value:
        return None
    if not any(ch in _BOXES for ch in value) and not re.search(r"\[\s*[xX ]?\s*\]|\(\s*[xX]\s*\)", value):
        return kind_in(value)
    # Split before each box; keep the options whose box is ticked (☒, ✓, [x], (x), or an X typed over ☐).
    parts = re.split(rf"(?=[{_BOXES}])|(?=\[\s*[xX ]?\s*\])|(?=\(\s*[xX]\s*\))", value)
    chosen = [p for p in parts if p.strip()[:1] in _CHECKED or re.match(r"^\s*[\[(]\s*[xX]", p)]
    if not chosen:
        chosen = [p for p in parts if re.match(r"^\s*[xX]\s+\S", p)]
    kinds = {kind_in(p) for p in chosen} - {None}
    return kinds.pop() if len(kinds) == 1 else None


def classify_kind(
    subject: str, body_lines: Sequence[str], ticks: Iterable[str], titles: Iterable[str], *,
    persons: int, is_list: bool, from_form: bool,
) -> Kind:
    """Ticks on the form, then subject, then body wording, then form titles; lists mean bulk."""
    kind = None
    for tick in ticks:
        kind = kind or ticked_kind(tick)
    kind = kind or kind_in(subject) or kind_in("\n".join(body_lines))
    kind = kind or next((k for k in (kind_in(t, strict=True) for t in titles) if k), None)
    if kind is None and from_form and persons:
        kind = Kind.NEW_ACCOUNT  # a filled registration form with no other wording
    if kind == Kind.NEW_ACCOUNT and (is_list or persons > 1):
        return Kind.BULK_NEW_ACCOUNTS
    return kind or Kind.UNKNOWN


def _population_in(text: str) -> Population | None:
    words = _words(text)
    staff, student = len(_STAFF.findall(words)), len(_STUDENT.findall(words))
    if staff != student:
        return Population.STAFF if staff > student else Population.STUDENT
    return None


def student_domains_of(domains: Iterable[str]) -> tuple[str, ...]:
    """Institution domains that are for students by their first label (sv.example.edu.vn, sis.hust.edu.vn)."""
    return tuple(d for d in domains if d.split(".", 1)[0].lower() in _STUDENT_LABELS)


@functools.lru_cache(maxsize=64)
def _name_pattern(name: str) -> re.Pattern[str] | None:
    """A form name as written loosely: "BM-CNTT31" also as "bm cntt 31", "BM01" also as "BM 1" or "BM-01"."""
    parts = re.findall(r"[a-z]+|[0-9]+", fold(name))
    if not parts:
        return None
    words = [p if p.isalpha() else "0*" + str(int(p)) for p in parts]
    return re.compile(r"(?<![a-z0-9])" + r"[-_./ ]{0,2}".join(words) + r"(?![a-z0-9])")


@dataclass(frozen=True)
class FormNames:
    """The institution's form names ([institution]): a form that names one of them says whom it is for."""

    staff: tuple[str, ...]
    student: tuple[str, ...]

    @classmethod
    def of(cls, institution: InstitutionSettings) -> FormNames:
        """The staff form, and the students' form and list, as the institution names them."""
        return cls((institution.staff_form,), (institution.student_form, institution.list_form))

    def population_named(self, heading: str) -> Population | None:
        """The population of the form named first in a form's heading; None when it names none."""
        text = fold(heading)
        first: tuple[int, Population] | None = None
        for population, names in ((Population.STAFF, self.staff), (Population.STUDENT, self.student)):
            for name in names:
                pattern = _name_pattern(name)
                found = pattern.search(text) if pattern else None
                if found and (first is None or found.start() < first[0]):
                    first = (found.start(), population)
        return first[1] if first else None


def classify_population(
    headings: Iterable[str], has_student_ids: bool, has_staff_ids: bool, texts: Sequence[str],
    sender: str, institution_domains: Sequence[str], student_domains: Sequence[str], form_names: FormNames,
) -> Population:
    """The form named (as [institution] names them), then the IDs given, then wording (titles first), then
    the sender's domain."""
    for heading in headings:
        named = form_names.population_named(heading)
        if named:
            return named
    if has_staff_ids != has_student_ids:
        return Population.STAFF if has_staff_ids else Population.STUDENT
    for text in texts:
        found = _population_in(text)
        if found:
            return found
    domain = sender.rsplit("@", 1)[-1].lower().strip(">") if "@" in sender else ""
    if domain and any(domain == d or domain.endswith("." + d) for d in student_domains):
        return Population.STUDENT
    staff_domains = [d for d in institution_domains if d not in student_domains]
    if domain and any(domain == d or domain.endswith("." + d) for d in staff_domains):
        return Population.STAFF
    return Population.STUDENT


def is_question(kind: Kind, subject: str, texts: Sequence[str], fields: Sequence[tuple[str, str]],
                forms: Sequence[object], problems: Sequence[Problem]) -> bool:
    """A mail with no person in it that asks something rather than sends a form with gaps.

    Not a question: a form attachment was found or could not be read (the sender meant a form), two or
    more form labels were filled in, or the wording asks for an account change (it then gets the "we
    could not read your form" answer) unless it names another service (Wi-Fi, the LMS: "quên mật khẩu
    Wi-Fi" is a question).
    """
    if forms or any(p.field == "attachment" for p in problems) or not any(t.strip() for t in texts):
        return False
    if len({f for f, _ in fields}) >= MIN_FORM_LABELS:
        return False
    if kind in (Kind.UNKNOWN, Kind.QUESTION):
        return True
    words = _words(subject + "\n" + "\n".join(texts))
    return kind is not Kind.DELETE_ACCOUNTS and bool(_TOPICS.search(words)) and not re.search(
        r"\b(email|e mail|thu dien tu|hop thu)\b", words)
