"""Platform-neutral cards: a request rendered from templates/chat/ as text plus buttons (ids only)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.view import RequestView as RequestView  # the view model lives in the core
from edudesk.core.chats.view import load_view as load_view
from edudesk.core.config import Settings
from edudesk.core.errors import NotFound
from edudesk.core.intake.confirm import CONFIRMED, UNVERIFIED
from edudesk.core.ports import Button, Card
from edudesk.core.requests.models import RequestPerson
from edudesk.core.requests.rows import with_problem
from edudesk.core.requests.workflow import State
from edudesk.core.text import local_time
from edudesk.core.words import LANGUAGES, event_label, words
from edudesk.resources import chat_dir


def _mail_kinds(lang: str) -> dict[str, str]:
    """The kind of a request as its mails name it (the catalogue's `mailkind` group)."""
    return dict(words(lang).group("mailkind"))


TEMPLATES = chat_dir()  # package data: templates/chat in a checkout, edudesk/templates/chat when installed
# The words come from the one catalogue (core/words/); these names stay for the code that imports them.
STATE_LABELS = {lang: words(lang).group("state") for lang in LANGUAGES}
POPULATION_LABELS = {lang: words(lang).group("population") for lang in LANGUAGES}
LABELS = {lang: {**words(lang).group("card"), **words(lang).group("card.provision")} for lang in LANGUAGES}


def _label(settings: Settings, key: str) -> str:
    w = words(settings.general.language)
    return LABELS[w.lang].get(key, w("card.provision.new_account"))

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def _time_left(deadline: datetime | None, now: datetime, lang: str = "vi") -> tuple[str, bool]:
    if deadline is None:
        return "", False
    seconds = (deadline - now).total_seconds()
    hours, rest = divmod(abs(int(seconds)), 3600)
    w = words(lang)
    span = w("time.hours_minutes", hours=hours, minutes=rest // 60) if hours else w("time.minutes", minutes=rest // 60)
    return w("time.left" if seconds >= 0 else "time.overdue", span=span), seconds < 0


def _findings(person: RequestPerson, lang: str = "vi") -> list[dict[str, str]]:
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
    w = words(lang)
    present = ("full_name", "date_of_birth", "class", "unit")
    ok = [] if unknown else [w(f"card.checked.{key}") for key in present if data.get(key) and key not in bad]
    if data.get("mobile") and "mobile" not in bad:
        ok.append(w("card.checked.mobile"))
    if not unknown and (data.get("student_id") or data.get("staff_id")) and not bad & {"student_id", "staff_id"}:
        ok.insert(0, w("card.checked.id"))
    if ok:
        out.insert(0, {"mark": "✓", "text": ", ".join(ok)})
    return out


def render_text(view: RequestView, settings: Settings, now: datetime, page: int = 0) -> str:
    """The card's text (Telegram HTML subset)."""
    lang = words(settings.general.language).lang
    r = view.request
    tz = settings.general.timezone
    size = max(1, settings.chat.page_size)
    pages = max(1, -(-len(view.persons) // size))
    page = min(max(page, 0), pages - 1)
    shown = view.persons[page * size:(page + 1) * size]
    left, overdue = _time_left(r.deadline, now, lang)
    with_problems = sum(1 for p in view.persons if with_problem(p))  # rows the office approved are not counted
    context: dict[str, Any] = {
        "w": words(lang), "r": r,
        "kind_label": _capitalised(_mail_kinds(lang).get(r.kind, _mail_kinds(lang)["unknown"])),
        "population": POPULATION_LABELS[lang].get(r.population, r.population),
        "state": STATE_LABELS[lang].get(r.state, r.state),
        "deadline": local_time(r.deadline, tz) if r.deadline else "", "time_left": left, "overdue": overdue,
        "persons": [{"n": page * size + i + 1, "p": p, "ident": (p.data or {}).get("student_id")
                     or (p.data or {}).get("staff_id", ""), "findings": _findings(p, lang)}
                    for i, p in enumerate(shown)],
        "total": len(view.persons), "with_problems": with_problems, "page": page + 1, "pages": pages,
        "problems": [x for x in r.problems or [] if x.get("severity") != "info"],
        "forwarded": [x.get("message", "") for x in r.problems or [] if x.get("code") == "forwarded"],
        "flags": r.flags or [], "assignee": view.assignee, "progress": _progress(view),
        "history": [{"who": e.actor.split(" (")[0], "label": _event(e.action, e.detail, lang),
                     "reason": e.detail.get("reason", ""), "error": e.detail.get("error", ""),
                     "when": local_time(e.at, tz)} for e in view.events],
    }
    text = _env.get_template(f"request.{lang}.html.j2").render(context).strip()
    return _fit(text)


def _event(action: str, detail: dict[str, Any], lang: str) -> str:
    """An event in the card's history; a decision about one row names the row ("Giữ tài khoản · Dòng 2")."""
    label = event_label(action, lang, detail.get("label", ""))
    return f"{label} · {words(lang)('detail.row')} {detail['row']}" if detail.get("row") else label


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
        rows.append((Button(_label(settings, "approve"), ButtonAction.APPROVE, r.id, v),
                     Button(_label(settings, "reject"), ButtonAction.REJECT, r.id, v)))
        rows.append((Button(_label(settings, "ask_info"), ButtonAction.ASK_INFO, r.id, v),))
        if UNVERIFIED in (r.flags or []) and CONFIRMED not in (r.flags or []):
            # An unverified sender: approving waits for the person's confirmation through the registry's address.
            rows.append((Button(_label(settings, "send_confirm"), ButtonAction.SEND_CONFIRM, r.id, v),))
    if audience in ("technical", "web") and state is State.APPROVED:
        rows.append((Button(_label(settings, r.kind), ButtonAction.PROVISION, r.id, v),))
    if audience == "office" and len(view.persons) == 1 and 0 in view.keepable:
        # A leaver's account in its grace period: the office may keep it (the web page has a button per row).
        rows.append((Button(_label(settings, "keep"), ButtonAction.KEEP_ACCOUNT, r.id, v, 0),))
    size = max(1, settings.chat.page_size)
    pages = max(1, -(-len(view.persons) // size))
    if pages > 1 and audience != "web":
        nav = []
        if page > 0:
            nav.append(Button(f"‹ {_label(settings, 'page')} {page}", ButtonAction.PAGE, r.id, v, page - 1))
        if page < pages - 1:
            nav.append(Button(f"{_label(settings, 'page')} {page + 2} ›", ButtonAction.PAGE, r.id, v, page + 1))
        rows.append(tuple(nav))
    if len(view.persons) > 1 and settings.web.public_url:
        rows.append((Button(_label(settings, "rows"), ButtonAction.ROWS, r.id, v,
                            url=f"{settings.web_url}/requests/{r.id}/rows.csv"),))
    return tuple(rows)


def build_card(view: RequestView, audience: str, settings: Settings, now: datetime, page: int = 0) -> Card:
    """A request's card for one audience."""
    return Card(render_text(view, settings, now, page), buttons(view, audience, settings, page))


def confirm_card(view: RequestView, lines: list[str], settings: Settings, now: datetime) -> Card:
    """ "Hợp lệ" over a difference from the registry: the differences, then "Vẫn xác nhận hợp lệ" and "back"."""
    w = words(settings.general.language)
    r = view.request
    text = "\n".join([f"<b>{html.escape(w('rows.confirm_title', id=r.id))}</b>", *(html.escape(x) for x in lines)])
    return Card(render_text(view, settings, now) + "\n\n" + text, (
        (Button(w("rows.confirm_button"), ButtonAction.APPROVE_CONFIRM, r.id, r.version),
         Button(_label(settings, "back"), ButtonAction.BACK, r.id, r.version)),))


def picker_card(view: RequestView, action: str, settings: Settings, now: datetime) -> Card:
    """The card with preset reasons (reject) or questions (ask_info), "other…" and "back"."""
    presets = settings.chat.reject_reasons if action == "reject" else settings.chat.info_questions
    r = view.request
    title = _label(settings, f"pick_{action}")
    rows: list[tuple[Button, ...]] = [(Button(text[:60], ButtonAction(f"pick_{action}"), r.id, r.version, i),)
                                      for i, text in enumerate(presets)]
    rows.append((Button(_label(settings, f"type_{action}"), ButtonAction(f"type_{action}"), r.id, r.version),
                 Button(_label(settings, "back"), ButtonAction.BACK, r.id, r.version)))
    return Card(render_text(view, settings, now) + f"\n\n<b>{title}</b>", tuple(rows))


def preset(settings: Settings, action: str, index: int) -> str:
    """The preset text behind a picker button (index from untrusted callback data)."""
    presets = settings.chat.reject_reasons if action == "reject" else settings.chat.info_questions
    if not 0 <= index < len(presets):
        raise NotFound(words(settings.general.language)("card.preset_gone"))
    return presets[index]
