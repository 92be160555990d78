"""Form extraction: a parsed mail -> the request it makes (kind, population, persons, findings).

Pure: no database, no network. Reads the body, .docx (BM01/BM02), .xlsx/.csv lists (BM-CNTT31)
and PDF form fields; never raises for bad input and never opens a zip that promises a bomb.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from edudesk.core.config import InstitutionSettings, IntakeSettings
from edudesk.core.forms import messages
from edudesk.core.forms.body import html_to_text, read_body
from edudesk.core.forms.classify import (
    FormNames,
    classify_kind,
    classify_population,
    is_question,
    student_domains_of,
)
from edudesk.core.forms.docx import read_docx
from edudesk.core.forms.forward import split_forward
from edudesk.core.forms.guard import check_attachment
from edudesk.core.forms.html import read_html_tables
from edudesk.core.forms.pdf import read_pdf
from edudesk.core.forms.records import FormResult, Record, build_persons, is_person
from edudesk.core.forms.sheet import read_csv, read_xlsx
from edudesk.core.forms.values import text_value
from edudesk.core.intake.domain import Attachment, ExtractedRequest, IncomingMail, Kind, Population, Problem
from edudesk.core.text import clean, fold

__all__ = ["FormNames", "extract_request", "read_attachment", "html_to_text"]

log = logging.getLogger(__name__)
MAX_FIELDS = 40  # "label: value" pairs kept for a partial reply; a form has about ten


def read_attachment(att: Attachment, settings: IntakeSettings) -> tuple[FormResult | None, list[Problem]]:
    """One attachment -> (what it holds or None, findings); never raises."""
    filename, payload = att.filename, att.payload
    truncated = False
    try:
        checked = check_attachment(att, settings)
        if checked.problem or checked.kind is None:
            return None, [checked.problem] if checked.problem else []
        if checked.kind == "docx" and checked.zipfile is not None:
            result, truncated = read_docx(checked.zipfile, settings.max_rows)
        elif checked.kind == "xlsx" and checked.zipfile is not None:
            result, truncated = read_xlsx(payload, checked.zipfile, settings.max_rows)
        elif checked.kind == "csv":
            result, truncated = read_csv(payload, settings.max_rows)
        else:
            result = read_pdf(payload)
    except Exception:  # any parser failure on a bad file is the sender's problem, not a crash
        log.info("unreadable attachment %r", filename, exc_info=True)
        return None, [messages.unreadable_attachment(filename)]
    return result, [messages.too_many_rows(settings.max_rows)] if truncated else []


def _merge_body_into_form(form_records: list[Record], body_records: list[Record]) -> None:
    """A single form plus "SĐT: ..." in the body: fill the form's blanks from the body."""
    people = [r for r in body_records if any(text_value(v) for v in r.values())]
    if len(form_records) != 1 or len(people) != 1:
        return
    form, body = form_records[0], people[0]
    form_name, body_name = fold(text_value(form.get("full_name"))), fold(text_value(body.get("full_name")))
    if body_name and form_name and body_name != form_name:
        return  # the body speaks about someone else
    for field, value in body.items():
        if text_value(value) and not text_value(form.get(field)):
            form[field] = value


def extract_request(
    mail: IncomingMail,
    settings: IntakeSettings,
    institution_domains: tuple[str, ...],
    *,
    student_domains: Sequence[str] | None = None,
    form_names: FormNames | None = None,
) -> ExtractedRequest:
    """Read the request a mail makes from its body and attachments (pure; never raises); `form_names` are the
    institution's forms ([institution]; None: those of the built-in defaults)."""
    names = form_names or FormNames.of(InstitutionSettings())
    try:
        extracted = _extract(mail, settings, institution_domains, student_domains, names)
        if not extracted.persons and mail.forwarded:
            # forwarded as an attachment (message/rfc822): the form is the forwarded mail's
            inner = mail.forwarded[0]
            found = _extract(inner, settings, institution_domains, student_domains, names)
            if found.persons:
                kind = found.kind if found.kind is not Kind.UNKNOWN or extracted.kind is Kind.QUESTION \
                    else extracted.kind
                who = _who(inner.from_name, inner.from_addr)
                outer = tuple(p for p in extracted.problems if p.code != "no_form")
                return replace(found, kind=kind, forwarded_from=who,
                               problems=outer + found.problems + (messages.forwarded(who),))
        return extracted
    except Exception:  # a bug here must not stop intake: the office sees the mail as unknown
        log.exception("form extraction failed for %s", mail.message_id)
        return ExtractedRequest(
            Kind.UNKNOWN, Population.STUDENT, source="none", problems=(messages.no_form(),)
        )


def _who(name: str, addr: str) -> str:
    return f"{name} <{addr}>" if name and addr else addr or name


def _filled(result: FormResult) -> int:
    return sum(1 for r in result.records if is_person(r) for v in r.values() if text_value(v))


def _read_text(mail: IncomingMail, max_rows: int) -> tuple[FormResult, bool, str]:
    """(result, truncated, forwarded from) of the body: the inline forward's part when there is one, and the
    HTML part's tables when they hold more than the text part kept of them."""
    body_text = mail.text if mail.text.strip() else html_to_text(mail.html)
    forward = split_forward(body_text, mail.subject)
    if forward is not None and forward.body:
        own, _ = read_body(forward.own, max_rows)
        body, truncated = read_body(forward.body, max_rows)
        body.texts[:0] = own.texts
    else:
        body, truncated = read_body(body_text, max_rows)
    if mail.html:
        tables, cut = read_html_tables(mail.html, max_rows)
        if _filled(tables) > _filled(body):
            tables.texts[:0] = body.texts
            body, truncated = tables, cut
    return body, truncated, forward.sender if forward is not None and forward.body else ""


def _extract(
    mail: IncomingMail, settings: IntakeSettings, institution_domains: Sequence[str],
    student_domains: Sequence[str] | None, form_names: FormNames,
) -> ExtractedRequest:
    problems: list[Problem] = []
    forms: list[FormResult] = []
    for att in mail.attachments:
        result, found = read_attachment(att, settings)
        problems.extend(found)
        if result is not None:
            forms.append(result)
    body, truncated, forwarded_from = _read_text(mail, settings.max_rows)
    if truncated:
        problems.append(messages.too_many_rows(settings.max_rows))
    with_people = [f for f in forms if any(is_person(r) for r in f.records)]
    chosen = with_people or ([body] if any(is_person(r) for r in body.records) else [])
    records = [r for f in chosen for r in f.records if is_person(r)]
    if with_people:
        _merge_body_into_form(records, body.records)
    is_list = any(f.is_list for f in chosen)
    titles = [t for f in forms for t in f.texts]
    kind = classify_kind(
        mail.subject, body.texts, [text_value(r.get("request_type")) for r in records], titles,
        persons=len(records), is_list=is_list, from_form=bool(with_people),
    )
    population = classify_population(
        [f.heading for f in forms if f.heading],
        any(text_value(r.get("student_id")) or text_value(r.get("class_name")) for r in records),
        any(text_value(r.get("staff_id")) for r in records),
        [*titles, mail.subject, "\n".join(body.texts)],
        mail.from_addr, institution_domains,
        student_domains if student_domains is not None else student_domains_of(institution_domains),
        form_names,
    )
    individual = kind in (Kind.NEW_ACCOUNT, Kind.PASSWORD_RESET) and not is_list
    persons, person_problems, repaired = build_persons(
        records, staff=population == Population.STAFF, individual=individual,
        delete=kind == Kind.DELETE_ACCOUNTS, repair=bool(with_people),
    )
    if repaired or any(f.legacy for f in chosen):
        problems.append(messages.legacy_encoding())
    fields = () if body.is_list else tuple(
        (key, text_value(value)) for r in body.records for key, value in r.items()
        if text_value(value) and not key.startswith("_"))[:MAX_FIELDS]
    if not persons and is_question(kind, mail.subject, body.texts, fields, forms, problems):
        kind = Kind.QUESTION
    elif not persons:
        problems.append(messages.no_form())
    if forwarded_from and persons:
        problems.append(messages.forwarded(forwarded_from))
    unit = next((f.unit for f in chosen if f.unit), "") or body.unit
    if not unit and persons and len({p.unit for p in persons}) == 1:
        unit = persons[0].unit
    return ExtractedRequest(
        kind=kind,
        population=population,
        persons=tuple(persons),
        source=chosen[0].source if persons else "none",
        problems=tuple(problems + person_problems),
        unit=clean(unit),
        forwarded_from=forwarded_from if persons else "",
        fields=fields,
    )
