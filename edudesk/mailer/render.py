"""Outgoing mail text: jinja2 templates in templates/email/ -> subject, plain text and HTML, headers, attachments."""

from __future__ import annotations

import functools
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import encoders
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from edudesk.core.ports import OutgoingMessage
from edudesk.core.text import local_time
from edudesk.core.words import words

TEMPLATES = ("received", "need_info", "rejected", "done", "too_large", "unreadable", "channel_failing", "link_code",
             "chat_notice", "confirm_sender", "question", "kept", "report_monthly", "login_link")
LANGUAGES = ("vi", "en")
DISPLAY_TIMEZONE = "Asia/Ho_Chi_Minh"

# Written into every outgoing mail: they tell other robots (vacation replies, Exchange out-of-office,
# our own intake) not to answer, which is what keeps two helpdesks from mailing each other forever.
LOOP_HEADERS: Mapping[str, str] = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
REQUEST_HEADER = "X-Edudesk-Request"

# The kinds as a phrase inside a sentence ("yêu cầu cấp tài khoản thư điện tử"), from the catalogue.
KIND_LABELS: Mapping[str, Mapping[str, str]] = {lang: words(lang).group("mailkind") for lang in LANGUAGES}
# Kinds that only a unit sends (a list of people): the mail addresses the unit, not a person.
UNIT_KINDS = ("bulk_new_accounts", "delete_accounts")
# Symbols a school PC without an emoji font shows as boxes; kept out of mail subjects.
_EMOJI = re.compile("[\U00010000-\U0010FFFF\uFE0F\u200D\u2B50\u2B55\u231A\u231B\u23E9-\u23F3\u25FD\u25FE"
                    "\u2614\u2615\u267F\u2693\u26A1\u26AA\u26AB\u26BD\u26BE\u26C4\u26C5\u26CE\u26D4"
                    "\u26EA\u26F2\u26F3\u26F5\u26FA\u26FD\u2705\u270A\u270B\u2728\u274C\u274E"
                    "\u2753-\u2755\u2757\u2795-\u2797\u27B0\u27BF\u2B1B\u2B1C]")

# Only these may be left out by the caller; everything else a template names must be passed, and
# StrictUndefined turns a missing or misspelt variable into an error instead of an empty gap.
_OPTIONAL: Mapping[str, Any] = {"problems": (), "password": "", "link_valid_hours": 72, "requester_name": "",
                                 "unit": "", "addressee": "", "skipped": (), "by_reply": False}
# What the templates name when no settings are passed (the defaults of [institution] and [sla]).
_INSTITUTION_DEFAULTS: Mapping[str, str] = {"name": "", "short_name": "", "office_unit": "", "staff_form": "BM01",
                                            "student_form": "BM02", "list_form": "BM-CNTT31", "report_form": "BM03"}
_SLA_DEFAULTS: Mapping[str, float] = {"check_hours": 24.0, "provision_hours": 24.0}
_MAX_REFERENCES = 20
_BLANK_RUNS = re.compile(r"\n{3,}")
_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_PARAM_CHUNK = 54
_MIME_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


@functools.cache
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["vn_time"] = _vn_time
    return env


@functools.cache
def _environment_at(templates_dir: Path) -> jinja2.Environment:
    """`_environment` for a templates folder as the caller names it: the name is resolved (a walk of every
    link along it: five system calls) once, not for every mail."""
    return _environment(templates_dir.resolve())


@jinja2.pass_context
def _vn_time(ctx: jinja2.runtime.Context, value: datetime | str) -> str:
    """The `vn_time` filter: `core.text.local_time` in the display time zone of the mail."""
    return local_time(value, ctx.get("display_timezone") or DISPLAY_TIMEZONE)


def render_mail(
    template: str,
    lang: str,
    context: Mapping[str, Any],
    *,
    templates_dir: Path,
    display_timezone: str = DISPLAY_TIMEZONE,
    settings: Any = None,
) -> tuple[str, str, str]:
    """Render templates/email/<template>.<lang>.{txt,html}.j2 into (subject, text, html).

    `settings` (the service's `Settings`) gives the words that belong to the institution, not the templates:
    its form numbers, its office's unit, and the hours of each step ([sla]).
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}")
    lang = lang if lang in LANGUAGES else LANGUAGES[0]
    env = _environment_at(Path(templates_dir))
    values: dict[str, Any] = {**_OPTIONAL, **institution_context(settings), **context, "lang": lang,
                              "display_timezone": display_timezone}
    w = words(lang)
    if "kind" in values:
        values["kind"] = kind = str(getattr(values["kind"], "value", values["kind"]))
        values.setdefault("kind_label", KIND_LABELS[lang].get(kind, KIND_LABELS[lang]["unknown"]))
        values.setdefault("kind_short", w.label("kind", kind, w("kind.unknown")))
    else:  # a mail about no request (an alert, a notice) names no kind
        values.setdefault("kind_label", "")
        values.setdefault("kind_short", "")
    values.update(addressing(values, lang))

    text_template = env.get_template(f"{template}.{lang}.txt.j2")
    subject_block = text_template.blocks.get("subject")
    if subject_block is None:
        raise ValueError(f"{template}.{lang}.txt.j2 has no subject block")
    subject = _subject("".join(subject_block(text_template.new_context(values))))
    values["subject"] = subject
    text = _tidy(text_template.render(values))
    html = env.get_template(f"{template}.{lang}.html.j2").render(values)
    return subject, text, html


def institution_context(settings: Any) -> dict[str, Any]:
    """The institution's own words for the templates: form numbers, unit names, the hours of each step."""
    inst = getattr(settings, "institution", None)
    sla = getattr(settings, "sla", None)
    out: dict[str, Any] = {k: getattr(inst, k, "") or v for k, v in _INSTITUTION_DEFAULTS.items()}
    out["institution_short_name"] = out.pop("short_name")
    name = out.pop("name")
    if name:  # the caller's mail_context names it too; an empty default never hides it
        out["institution_name"] = name
    for key, default in _SLA_DEFAULTS.items():
        out[key] = f"{float(getattr(sla, key, default) or default):g}"
    return out


def addressing(values: Mapping[str, Any], lang: str) -> dict[str, str]:
    """Whom the mail addresses: a unit ("Kính gửi: Phòng Công tác sinh viên"), a teacher or a person.

    A unit is named by the context (`unit`, or `addressee="unit"`), or is the sender of a unit's list
    (`UNIT_KINDS`); a staff notice about school records goes to a teacher.
    """
    w = words(lang)
    forms = {k: values.get(k, v) for k, v in _INSTITUTION_DEFAULTS.items() if k.endswith("_form")}
    name = str(values.get("requester_name") or "")
    addressee = str(values.get("addressee") or "")
    unit = str(values.get("unit") or "")
    if not addressee:
        if unit or values.get("kind") in UNIT_KINDS:
            addressee = "unit"
        elif "Thầy/Cô" in str(values.get("text") or ""):
            addressee = "teacher"  # a records notice written to a teacher, sent by mail instead of chat
        else:
            addressee = "person"
    if addressee == "unit":
        unit = unit or name
        salutation = w("mail.dear_unit", name=unit) if unit else w("mail.dear_unit_unnamed")
        return {"addressee": "unit", "salutation": salutation, "you": w("mail.you_unit"),
                "forms": w("mail.forms_unit", **forms)}
    key = "teacher" if addressee == "teacher" else "person"
    salutation = w(f"mail.dear_{key}", name=name) if name else w(f"mail.dear_{key}_unnamed")
    return {"addressee": key, "salutation": salutation, "you": w(f"mail.you_{key}"),
            "forms": w("mail.forms_person", **forms)}


def _subject(text: str) -> str:
    # One line, no emoji (a school PC may have no emoji font) and no product name: the reader's mail list
    # shows what happened and the [YC-N] tag, nothing else.
    text = _EMOJI.sub("", text)
    text = re.sub(r"\[?edudesk\]?:?", "", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def _tidy(text: str) -> str:
    # Templates stay readable with blank lines around blocks; the reader gets at most one blank line.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)) + "\n"


def _trim_references(refs: list[str]) -> list[str]:
    # Long threads would grow the header without bound; keep the thread root and the newest ids.
    if len(refs) <= _MAX_REFERENCES:
        return refs
    return refs[:1] + refs[-(_MAX_REFERENCES - 1) :]


def message_id_for(key: str, domain: str) -> str:
    """A deterministic Message-ID for an idempotency key, so a retried send carries the same id."""
    return f"<edudesk.{_KEY_CHARS.sub('-', key).strip('-')}@{domain}>"


def build_message(
    template: str,
    *,
    lang: str,
    context: Mapping[str, Any],
    templates_dir: Path,
    sender: str,
    sender_name: str = "",
    to: str | Sequence[str],
    message_id: str | None = None,
    in_reply_to: str = "",
    references: Sequence[str] = (),
    date: datetime | None = None,
    display_timezone: str = DISPLAY_TIMEZONE,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    settings: Any = None,
) -> OutgoingMessage:
    """Render a template and wrap it with threading, loop-prevention and request headers, and attachments."""
    subject, text, html = render_mail(
        template, lang, context, templates_dir=templates_dir, display_timezone=display_timezone, settings=settings
    )
    recipients = (to,) if isinstance(to, str) else tuple(to)
    if not recipients:
        raise ValueError("an outgoing mail needs at least one recipient")
    domain = sender.rpartition("@")[2] or "edudesk.invalid"
    # References = the parent's References plus the parent itself (RFC 5322 3.6.4), so mail clients
    # and our own intake thread the answer under the requester's mail.
    refs = [r for r in references if r]
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    number = context.get("number")
    headers = {
        **LOOP_HEADERS,
        # Present even without a request number: intake recognises our own mail by this header.
        REQUEST_HEADER: str(number) if number not in (None, "") else "none",
        "Content-Language": lang if lang in LANGUAGES else LANGUAGES[0],
    }
    if date is not None:
        headers["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    return OutgoingMessage(
        message_id=message_id or make_msgid(domain=domain),
        # Kept readable here; to_mime() RFC 2047-encodes the Vietnamese display name on the wire.
        sender=_sender(sender_name, sender) if sender_name else sender,
        to=recipients,
        subject=subject,
        text=text,
        html=html,
        in_reply_to=in_reply_to,
        references=tuple(_trim_references(refs)),
        headers=headers,
        attachments=tuple(_checked(a) for a in attachments),
    )


@functools.lru_cache(maxsize=64)
def _sender(name: str, address: str) -> str:
    """The From value for a display name and address (the same few for every mail: parsed once, not per mail)."""
    return str(Address(display_name=name, addr_spec=address))


def _checked(attachment: tuple[str, str, bytes]) -> tuple[str, str, bytes]:
    filename, mime_type, data = attachment
    if not _MIME_TYPE.fullmatch(mime_type) or not isinstance(data, bytes):
        raise ValueError(f"attachment {filename!r}: needs a type/subtype and bytes")
    # NFC, and no path or control characters: the name is shown to the reader and saved by their client.
    name = "".join(c if c.isprintable() else " " for c in unicodedata.normalize("NFC", filename))
    name = name.replace("/", "-").replace("\\", "-").strip() or "attachment"
    return name, mime_type.lower(), data


def _extended_param(name: str, value: str) -> str:
    # RFC 2231: utf-8, percent-encoded, split into name*0*, name*1*, ... so no header line grows past
    # ~78 characters (a long Vietnamese file name is three bytes and nine characters per letter).
    pieces, piece = [], ""
    for char in value:
        quoted = urllib.parse.quote(char, safe="")
        if len(piece) + len(quoted) > _PARAM_CHUNK:
            pieces.append(piece)
            piece = ""
        piece += quoted
    pieces.append(piece)
    if len(pieces) == 1:
        return f"{name}*=utf-8''{pieces[0]}"
    pieces[0] = f"utf-8''{pieces[0]}"
    return ";\n ".join(f"{name}*{i}*={p}" for i, p in enumerate(pieces))


def attachment_part(filename: str, mime_type: str, data: bytes) -> Message:
    """One attachment as a base64 MIME part; a Vietnamese file name is RFC 2231-encoded (and RFC 2047 in
    Content-Type's `name`, which older Outlook reads instead)."""
    maintype, _, subtype = mime_type.partition("/")
    part = MIMEBase(maintype, subtype)
    del part["MIME-Version"]  # only the top-level message carries it
    part.set_payload(data)
    encoders.encode_base64(part)
    if filename.isascii() and len(filename) <= _PARAM_CHUNK and '"' not in filename:
        part.set_param("name", filename)
        part.add_header("Content-Disposition", "attachment", filename=filename)
        return part
    words = Header(filename, "utf-8", header_name="Content-Type").encode(linesep="\n")
    del part["Content-Type"]
    part["Content-Type"] = f'{maintype}/{subtype};\n name="{words}"'
    part["Content-Disposition"] = f"attachment;\n {_extended_param('filename', filename)}"
    return part


def with_attachments(body: Message, attachments: Sequence[tuple[str, str, bytes]]) -> Message:
    """The body alone when there is nothing to attach, else multipart/mixed of the body and the files."""
    if not attachments:
        return body
    mixed = MIMEMultipart("mixed")
    del body["MIME-Version"]
    mixed.attach(body)
    for filename, mime_type, data in attachments:
        mixed.attach(attachment_part(filename, mime_type, data))
    return mixed
