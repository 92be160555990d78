"""Who may see what: one table of permissions per role, asked by every surface (web, Telegram, Zalo, text).

Requests hold applicants' personal data (names, IDs, dates of birth, phone numbers, the raw mail), the
registry holds everyone's: each is shown only to the roles that work with it. A refusal is audited
(`access_denied`: who, what was asked, on which surface) and answered with a text in the console's language.
Deciding a step (approve, provision, ...) is checked again by `RequestService` with the step's own roles.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from edudesk.core.errors import NotAllowed
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import Clock


class Permission(enum.StrEnum):
    """Something a surface shows or exports."""

    SIGN_IN = "sign_in"  # anything beyond /whoami and /help: the web console at all, a /login link
    REQUESTS = "requests"  # the queue, a request's card, people and audit trail, /queue /find /report
    RAW_MAIL = "raw_mail"  # a request's mail as received (.eml)
    EXPORT = "export"  # a request's people as CSV
    REGISTRY = "registry"  # the staff/student registry
    ACCOUNT_LOG = "account_log"  # every change made in a directory, page and CSV/xlsx exports
    REPORTS = "reports"  # the BM03 figures, charts and report files of the console's /reports, and their archive


_DESK = frozenset({Role.OFFICE, Role.TECHNICAL, Role.HEAD, Role.ADMIN})
RULES: dict[Permission, frozenset[Role]] = {
    Permission.SIGN_IN: frozenset(Role),
    Permission.REQUESTS: _DESK,
    Permission.RAW_MAIL: _DESK,
    Permission.EXPORT: _DESK,
    Permission.REGISTRY: frozenset({Role.ADMIN}),
    Permission.ACCOUNT_LOG: frozenset({Role.TECHNICAL, Role.HEAD, Role.ADMIN}),
    Permission.REPORTS: frozenset({Role.HEAD, Role.ADMIN}),
}

DENIED = {
    "vi": {
        Permission.REQUESTS: "Danh sách và nội dung yêu cầu chỉ dành cho cán bộ văn phòng, kỹ thuật, trưởng bộ "
                             "phận và quản trị viên.",
        Permission.RAW_MAIL: "Thư gốc của yêu cầu chỉ dành cho cán bộ văn phòng, kỹ thuật, trưởng bộ phận và quản "
                             "trị viên.",
        Permission.EXPORT: "Danh sách người của yêu cầu chỉ dành cho cán bộ văn phòng, kỹ thuật, trưởng bộ phận và "
                           "quản trị viên.",
        Permission.REGISTRY: "Danh bạ cán bộ, sinh viên chỉ dành cho quản trị viên.",
        Permission.ACCOUNT_LOG: "Nhật ký tài khoản chỉ dành cho cán bộ kỹ thuật, trưởng bộ phận và quản trị viên.",
        Permission.REPORTS: "Báo cáo thống kê (BM03) chỉ dành cho trưởng bộ phận và quản trị viên.",
    },
    "en": {
        Permission.REQUESTS: "Requests are for office and technical staff, heads and administrators only.",
        Permission.RAW_MAIL: "A request's original mail is for office and technical staff, heads and administrators "
                             "only.",
        Permission.EXPORT: "A request's list of people is for office and technical staff, heads and administrators "
                           "only.",
        Permission.REGISTRY: "The staff and student registry is for administrators only.",
        Permission.ACCOUNT_LOG: "The account log is for technical staff, heads and administrators only.",
        Permission.REPORTS: "Reports (BM03) are for heads and administrators only.",
    },
}
NO_ROLE = {"vi": "Anh/Chị chưa được cấp quyền. Mã của Anh/Chị: {key} — hãy gửi mã này cho quản trị viên.",
           "en": "You have not been given a role yet. Your id: {key} — send it to an administrator."}


DENIAL_WINDOW = timedelta(minutes=10)  # a refusal repeated within it counts up, it writes no new row


class AccessDenied(NotAllowed):
    """The actor's roles do not include what they asked to see."""

    code = "access_denied"


def allows(actor: Actor | None, permission: Permission) -> bool:
    """Whether `actor` may see what `permission` covers (nobody without a role sees anything)."""
    return actor is not None and bool(actor.roles & RULES[permission])


def denial_text(actor: Actor | None, permission: Permission, language: str = "vi") -> str:
    """The text shown to someone refused `permission`."""
    lang = "en" if language == "en" else "vi"
    if actor is None or not actor.roles or permission is Permission.SIGN_IN:
        return NO_ROLE[lang].format(key=actor.key if actor else "?")
    return DENIED[lang][permission]


async def audit_denial(actor: Actor | None, permission: Permission, what: str, *, surface: str,
                       clock: Clock) -> None:
    """Record a refusal: who, which permission, what was asked (a path or a command, never its arguments).

    The same refusal again within `DENIAL_WINDOW` only counts up the first row's `repeats`: a stranger sending
    /queue ten thousand times writes one row, not ten thousand.
    """
    now = clock.now()
    label = actor.label if actor else surface
    what = what[:200]
    recent = await AuditEvent.filter(action="access_denied", actor=label, at__gte=now - DENIAL_WINDOW).order_by(
        "-id").limit(20)
    for row in recent:
        if row.detail.get("what") == what and row.detail.get("surface") == surface:
            repeats = int(row.detail.get("repeats") or 0) + 1
            await AuditEvent.filter(id=row.id).update(detail={**row.detail, "repeats": repeats,
                                                              "last": now.isoformat()})
            return
    await AuditEvent.create(at=now, actor=label, action="access_denied",
                            detail={"permission": permission.value, "what": what, "surface": surface,
                                    "roles": sorted(r.value for r in actor.roles) if actor else []})


async def require(actor: Actor | None, permission: Permission, what: str, *, surface: str, clock: Clock,
                  language: str = "vi") -> None:
    """Go on when `actor` holds `permission`; else audit the refusal and raise `AccessDenied`."""
    if allows(actor, permission):
        return
    await audit_denial(actor, permission, what, surface=surface, clock=clock)
    raise AccessDenied(denial_text(actor, permission, language))
