"""The columns `edudesk registry import` reads, for its --help: taken from the form labels it matches."""

from __future__ import annotations

from edudesk.core.forms.labels import LABELS
from edudesk.core.people.registry import PERSONAL_LABELS

# The fields an import keeps (core/people/registry.py import_registry), with the header people usually write.
REGISTRY_FIELDS = (
    ("full_name", "Họ và tên (or Họ đệm + Tên)"),
    ("student_id", "MSSV (students)"),
    ("staff_id", "Mã cán bộ (staff)"),
    ("date_of_birth", "Ngày sinh (day first: 05/03/2007)"),
    ("unit", "Đơn vị / Khoa"),
    ("class_name", "Lớp"),
    ("cohort", "Khoá học"),
    ("mobile", "Số điện thoại"),
)


def registry_columns(per_field: int = 6) -> str:
    """An epilog listing each column with the headers it is recognised by (folded: no diacritics or case)."""
    by_field: dict[str, list[str]] = {}
    for alias, field in LABELS.items():
        by_field.setdefault(field, []).append(alias)
    lines = ["Columns read (a header row within the first rows; headers are matched without diacritics, case",
             "or punctuation; other columns are ignored). Example: examples/registry-students.csv.", ""]
    for field, shown in REGISTRY_FIELDS:
        aliases = by_field.get(field, [])
        more = f", … (+{len(aliases) - per_field})" if len(aliases) > per_field else ""
        lines.append(f"  {shown}: {', '.join(aliases[:per_field])}{more}")
    lines.append("  Email cá nhân (personal address, where confirmation links go): "
                 + ", ".join(sorted(PERSONAL_LABELS)))
    lines.append("  The ID (MSSV or Mã cán bộ) and the name are required; a row without them is skipped.")
    return "\n".join(lines)
