"""Platform-neutral cards: a request rendered from templates/chat/ as text plus buttons (ids only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.config import Settings
from core.errors import NotFound
from core.intake.domain import Kind
from core.models import AuditEvent, Request, RequestPerson, Staff
from core.ports import Button, Card
from core.requests.workflow import State
from core.text import local_time
from mailer.render import KIND_LABELS

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "chat"
CHECKED_FIELDS = ("full_name", "date_of_birth", "id", "class", "unit", "mobile", "account")
STATE_LABELS = {
    "vi": {"received": "Chờ kiểm tra", "need_info": "Chờ bổ sung", "approved": "Chờ thực hiện",
           "provisioning": "Đang thực hiện", "done": "Đã xong", "rejected": "Đã từ chối"},
    "en": {"received": "To check", "need_info": "Waiting for information", "approved": "To provision",
           "provisioning": "Provisioning", "done": "Done", "rejected": "Rejected"},
}
POPULATION_LABELS = {"vi": {"staff": "Cán bộ", "student": "Sinh viên"}, "en": {"staff": "Staff", "student": "Student"}}
LABELS = {
    "vi": {"approve": "✅ Hợp lệ", "reject": "❌ Từ chối", "ask_info": "✉️ Yêu cầu bổ sung",
           Kind.NEW_ACCOUNT.value: "➕ Cấp tài khoản", Kind.BULK_NEW_ACCOUNTS.value: "➕ Cấp tài khoản",
           Kind.PASSWORD_RESET.value: "🔑 Cấp lại mật khẩu", Kind.DELETE_ACCOUNTS.value: "🗑 Xoá tài khoản",
           "page": "Trang", "rows": "⬇️ Tải danh sách", "pick_reject": "Chọn lý do từ chối:",
           "pick_ask_info": "Chọn nội dung cần bổ sung:", "type_reject": "✏️ Lý do khác…",
           "type_ask_info": "✏️ Nội dung khác…", "back": "« Quay lại"},
    "en": {"approve": "✅ Valid", "reject": "❌ Reject", "ask_info": "✉️ Ask for more",
           Kind.NEW_ACCOUNT.value: "➕ Create account", Kind.BULK_NEW_ACCOUNTS.value: "➕ Create accounts",
           Kind.PASSWORD_RESET.value: "🔑 Reset password", Kind.DELETE_ACCOUNTS.value: "🗑 Delete accounts",
           "page": "Page", "rows": "⬇️ Download the list", "pick_reject": "Choose a reason:",
           "pick_ask_info": "Choose what to ask for:", "type_reject": "✏️ Other reason…",
           "type_ask_info": "✏️ Something else…", "back": "« Back"},
}


def _label(settings: Settings, key: str) -> str:
    lang = "en" if settings.general.language == "en" else "vi"
    return LABELS[lang].get(key, LABELS[lang][Kind.NEW_ACCOUNT.value])

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


@dataclass
class RequestView:
    """Everything a card shows about one request."""

    request: Request
    persons: list[RequestPerson]
    events: list[AuditEvent]
    assignee: str = ""


async def load_view(request_id: int) -> RequestView:
    """Read a request with its people and its decisions."""
    request = await Request.get_or_none(id=request_id)
    if request is None:
        raise NotFound(f"Không có yêu cầu số {request_id}.")
    persons = await RequestPerson.filter(request_id=request_id).order_by("row")
    events = await AuditEvent.filter(request_id=request_id, action__startswith="request_").order_by("id")
    assignee = ""
    if request.assignee_id:
        staff = await Staff.get_or_none(id=request.assignee_id)
        assignee = staff.name if staff else ""
    return RequestView(request, persons, events, assignee)


def _time_left(deadline: datetime | None, now: datetime, lang: str = "vi") -> tuple[str, bool]:
    if deadline is None:
        return "", False
    seconds = (deadline - now).total_seconds()
    hours, rest = divmod(abs(int(seconds)), 3600)
    if lang == "en":
        text = f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min"
        return (f"{text} left" if seconds >= 0 else f"{text} overdue"), seconds < 0
    text = f"{hours} giờ {rest // 60} phút" if hours else f"{rest // 60} phút"
    return (f"còn {text}" if seconds >= 0 else f"quá hạn {text}"), seconds < 0


def _findings(person: RequestPerson) -> list[dict[str, str]]:
    """Per field: ✓ checked and agrees, ✗ disagrees (the message names the registry value), ⚠ warning."""
    data, problems = person.data or {}, person.problems or []
    out = []
    for p in problems:
        if p.get("severity") == "info":
            continue
        out.append({"mark": "✗" if p.get("severity") == "error" else "⚠", "text": p.get("message", "")})
    bad = {p.get("field") for p in problems}
    # ✓ means "agrees with the registry": a person the registry does not know has nothing to agree with,
    # only the mobile number (checked on its own) can be ✓.
    unknown = any(p.get("code") == "not_in_registry" for p in problems)
    present = [("full_name", "họ tên"), ("date_of_birth", "ngày sinh"), ("class", "lớp"), ("unit", "đơn vị")]
    ok = [] if unknown else [label for key, label in present if data.get(key) and key not in bad]
    if data.get("mobile") and "mobile" not in bad:
        ok.append("SĐT")
    if not unknown and (data.get("student_id") or data.get("staff_id")) and not bad & {"student_id", "staff_id"}:
        ok.insert(0, "mã số")
    if ok:
        out.insert(0, {"mark": "✓", "text": ", ".join(ok)})
    return out


def render_text(view: RequestView, settings: Settings, now: datetime, page: int = 0) -> str:
    """The card's text (Telegram HTML subset)."""
    lang = "en" if settings.general.language == "en" else "vi"
    r = view.request
    tz = settings.general.timezone
    size = max(1, settings.chat.page_size)
    pages = max(1, -(-len(view.persons) // size))
    page = min(max(page, 0), pages - 1)
    shown = view.persons[page * size:(page + 1) * size]
    left, overdue = _time_left(r.deadline, now, lang)
    with_problems = sum(1 for p in view.persons if any(x.get("severity") == "error" for x in p.problems or []))
    context: dict[str, Any] = {
        "r": r, "kind_label": _capitalised(KIND_LABELS[lang].get(r.kind, KIND_LABELS[lang]["unknown"])),
        "population": POPULATION_LABELS[lang].get(r.population, r.population),
        "state": STATE_LABELS[lang].get(r.state, r.state),
        "deadline": local_time(r.deadline, tz) if r.deadline else "", "time_left": left, "overdue": overdue,
        "persons": [{"n": page * size + i + 1, "p": p, "ident": (p.data or {}).get("student_id")
                     or (p.data or {}).get("staff_id", ""), "findings": _findings(p)} for i, p in enumerate(shown)],
        "total": len(view.persons), "with_problems": with_problems, "page": page + 1, "pages": pages,
        "problems": [x for x in r.problems or [] if x.get("severity") != "info"],
        "flags": r.flags or [], "assignee": view.assignee, "progress": _progress(view),
        "history": [{"who": e.actor.split(" (")[0], "label": e.detail.get("label", e.action),
                     "reason": e.detail.get("reason", ""), "error": e.detail.get("error", ""),
                     "when": local_time(e.at, tz)} for e in view.events],
    }
    text = _env.get_template(f"request.{lang}.html.j2").render(context).strip()
    return _fit(text)


def _progress(view: RequestView) -> dict[str, int] | None:
    """Rows done and failed in the directory ("312/500"), once provisioning has started."""
    done = sum(1 for p in view.persons if p.outcome == "done")
    failed = sum(1 for p in view.persons if p.outcome == "failed")
    if not done and not failed and view.request.state != State.PROVISIONING.value:
        return None
    renamed = sum(1 for p in view.persons if p.final_address and p.final_address != p.proposed_address)
    return {"done": done, "failed": failed, "renamed": renamed}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fit(text: str, limit: int = 4000) -> str:
    # Telegram's limit is 4,096 characters after entities; a card never needs that much (pages exist).
    if len(text) <= limit:
        return text
    return text[:limit].rsplit("\n", 1)[0] + "\n…"


def buttons(view: RequestView, audience: str, settings: Settings, page: int = 0) -> tuple[tuple[Button, ...], ...]:
    """The buttons an audience ("office", "technical", "web") gets for the request's state."""
    r = view.request
    state = State(r.state)
    rows: list[tuple[Button, ...]] = []
    v = r.version
    if audience in ("office", "web") and state in (State.RECEIVED, State.NEED_INFO):
        rows.append((Button(_label(settings, "approve"), "approve", r.id, v),
                     Button(_label(settings, "reject"), "reject", r.id, v)))
        rows.append((Button(_label(settings, "ask_info"), "ask_info", r.id, v),))
    if audience in ("technical", "web") and state is State.APPROVED:
        rows.append((Button(_label(settings, r.kind), "provision", r.id, v),))
    size = max(1, settings.chat.page_size)
    pages = max(1, -(-len(view.persons) // size))
    if pages > 1 and audience != "web":
        nav = []
        if page > 0:
            nav.append(Button(f"‹ {_label(settings, 'page')} {page}", "page", r.id, v, page - 1))
        if page < pages - 1:
            nav.append(Button(f"{_label(settings, 'page')} {page + 2} ›", "page", r.id, v, page + 1))
        rows.append(tuple(nav))
    if len(view.persons) > 1 and settings.web.public_url:
        rows.append((Button(_label(settings, "rows"), "rows", r.id, v,
                            url=f"{settings.web_url}/requests/{r.id}/rows.csv"),))
    return tuple(rows)


def build_card(view: RequestView, audience: str, settings: Settings, now: datetime, page: int = 0) -> Card:
    """A request's card for one audience."""
    return Card(render_text(view, settings, now, page), buttons(view, audience, settings, page))


def picker_card(view: RequestView, action: str, settings: Settings, now: datetime) -> Card:
    """The card with preset reasons (reject) or questions (ask_info), "other…" and "back"."""
    presets = settings.chat.reject_reasons if action == "reject" else settings.chat.info_questions
    r = view.request
    title = _label(settings, f"pick_{action}")
    rows: list[tuple[Button, ...]] = [(Button(text[:60], f"pick_{action}", r.id, r.version, i),)
                                      for i, text in enumerate(presets)]
    rows.append((Button(_label(settings, f"type_{action}"), f"type_{action}", r.id, r.version),
                 Button(_label(settings, "back"), "back", r.id, r.version)))
    return Card(render_text(view, settings, now) + f"\n\n<b>{title}</b>", tuple(rows))


def preset(settings: Settings, action: str, index: int) -> str:
    """The preset text behind a picker button (index from untrusted callback data)."""
    presets = settings.chat.reject_reasons if action == "reject" else settings.chat.info_questions
    if not 0 <= index < len(presets):
        raise NotFound("Lý do không còn trong danh sách; vui lòng chọn lại.")
    return presets[index]
