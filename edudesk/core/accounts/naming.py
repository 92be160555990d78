"""Vietnamese full name -> name parts -> mailbox address, with collision handling.

Seed 000 (HUST): a.xyz@hust.edu.vn for staff and a.xyz@sis.hust.edu.vn for students, a = given
name, xyz = family + middle names, written together without diacritics.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable

from edudesk.core.config import NamingSettings
from edudesk.core.errors import ConfigError
from edudesk.core.intake.domain import Person
from edudesk.core.text import clean, fold, strip_diacritics

# Two-word family names; without them "Tôn Thất Thuyết" would get the family name "Tôn".
COMPOUND_FAMILY_NAMES = frozenset(
    {
        "ton that", "ton nu", "au duong", "hoang phu", "cong ton", "tu ma", "gia cat",
        "thuong quan", "dong phuong", "nguyen phuc", "nguyen phuoc", "khuc thua",
    }
)
RULE_FIELDS = frozenset(
    {"given", "family", "middle", "family_initial", "middle_initials", "student_id", "staff_id"}
)
COLLISION_STRATEGIES = ("number_suffix", "student_id_suffix")
_NOT_LOCAL = re.compile(r"[^a-z0-9.]")
_NOT_SLUG = re.compile(r"[^a-z0-9]")
_DOTS = re.compile(r"\.{2,}")
_MAX_SUFFIX = 100_000

Taken = Callable[[str], bool] | set[str] | frozenset[str]


def split_full_name(full_name: str) -> tuple[str, str, str]:
    """(family, middle, given) in Vietnamese order: family first, given last, compounds kept."""
    words = clean(full_name).split(" ") if clean(full_name) else []
    if not words:
        return "", "", ""
    if len(words) == 1:
        return "", "", words[0]
    family_len = 2 if len(words) >= 3 and fold(" ".join(words[:2])) in COMPOUND_FAMILY_NAMES else 1
    return " ".join(words[:family_len]), " ".join(words[family_len:-1]), words[-1]


def split_family_middle(family_middle: str) -> tuple[str, str]:
    """Split a "Họ đệm" column ("Nguyễn Văn", "Tôn Thất") into (family, middle)."""
    words = clean(family_middle).split(" ") if clean(family_middle) else []
    if len(words) >= 2 and fold(" ".join(words[:2])) in COMPOUND_FAMILY_NAMES:
        return " ".join(words[:2]), " ".join(words[2:])
    return (words[0], " ".join(words[1:])) if words else ("", "")


def slug(text: str) -> str:
    """Lower case ASCII letters and digits only ("Nguyễn Văn" -> "nguyenvan")."""
    return _NOT_SLUG.sub("", strip_diacritics(clean(text)).lower())


def check_naming(settings: NamingSettings) -> None:
    """Raise ConfigError when the naming rule or collision strategy cannot work."""
    names = {name for _, name, _, _ in string.Formatter().parse(settings.rule) if name is not None}
    unknown = names - RULE_FIELDS
    if unknown or not names:
        raise ConfigError(
            f"naming.rule: trường không hợp lệ {sorted(unknown)}; dùng {sorted(RULE_FIELDS)}",
            code="config_naming",
        )
    if settings.collision not in COLLISION_STRATEGIES:
        raise ConfigError(
            f"naming.collision: phải là một trong {list(COLLISION_STRATEGIES)}", code="config_naming"
        )


def local_part(person: Person, rule: str) -> str:
    """The mailbox name the rule gives before any collision suffix ("an.nguyenvan")."""
    family, middle, given = person.family_name, person.middle_name, person.given_name
    if not (family or given) and person.full_name:
        family, middle, given = split_full_name(person.full_name)
    values = {
        "given": slug(given),
        "family": slug(family),
        "middle": slug(middle),
        "family_initial": slug(family)[:1],
        "middle_initials": "".join(slug(w)[:1] for w in clean(middle).split(" ") if w),
        "student_id": slug(person.student_id),
        "staff_id": slug(person.staff_id),
    }
    local = _NOT_LOCAL.sub("", rule.format(**values).lower())
    return _DOTS.sub(".", local).strip(".")


def _is_taken(taken: Taken, address: str) -> bool:
    return taken(address) if callable(taken) else address in taken


def propose_address(person: Person, population: str, settings: NamingSettings, taken: Taken) -> str:
    """A free address for the person ("an.nguyenvan2@sis.hust.edu.vn"); "" when the name is empty.

    `taken` answers for full lower-case addresses (a set of them or a callable).
    """
    check_naming(settings)
    domain = settings.staff_domain if population == "staff" else settings.student_domain
    local = local_part(person, settings.rule)
    if not local:
        return ""
    address = f"{local}@{domain}"
    if not _is_taken(taken, address):
        return address
    if settings.collision == "student_id_suffix":
        person_id = slug(person.student_id if population != "staff" else person.staff_id)
        person_id = person_id or slug(person.person_id)
        if person_id and not local.endswith(person_id):
            address = f"{local}{person_id}@{domain}"
            if not _is_taken(taken, address):
                return address
    # number_suffix, and the fallback when an ID suffix is missing or taken as well.
    for number in range(settings.suffix_start, settings.suffix_start + _MAX_SUFFIX):
        address = f"{local}{number}@{domain}"
        if not _is_taken(taken, address):
            return address
    raise ConfigError(f"Không còn địa chỉ trống cho {local}@{domain}", code="naming_exhausted")


def propose_addresses(
    persons: Iterable[Person], population: str, settings: NamingSettings, taken: Taken
) -> list[str]:
    """Addresses for a list in order; each chosen address counts as taken for the later rows."""
    chosen: set[str] = set()

    def busy(address: str) -> bool:
        """Taken before, or chosen for an earlier row."""
        return address in chosen or _is_taken(taken, address)

    out = []
    for person in persons:
        address = propose_address(person, population, settings, busy)
        if address:
            chosen.add(address)
        out.append(address)
    return out
