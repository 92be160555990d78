"""Telling the receiving portal that a record it accepted changed: a withdrawal (thu hồi) or an adjustment
(điều chỉnh) decided by minutes the leadership signed. Each goes as its own package, a record notice:
`manifest.json` and `manifest.xml` (checked against `portal_notice.xsd`) with the status ("withdrawn" or
"replaced"), the receipt and hash of the version the portal holds, the reason, the chain of revisions since, and
the files: each signed minutes and, for a replacement, the new revision's signed PDF. Posted through the same
`RecordsPortal` port and answered like a class package (docs/records-portal.md).

A notice is noted when the minutes are signed (`note_change`, in their transaction): a withdrawal is due at
once and queued; a replacement is due when the new revision is issued (signed again, the class confirmed) and
goes with the class's next send instead of in its package."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from lxml import etree
from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.ports import ClassPackage
from edudesk.core.signing.complete import file_stem, manifest_entry
from edudesk.core.signing.lifemodels import ChangeKind, RecordChange, RecordRevision
from edudesk.core.signing.models import ClassState, RecordState, SchoolClass, SchoolRecord
from edudesk.core.signing.portal import PackageInvalid, issued_at, xsd_errors
from edudesk.core.signing.sendmodels import NoticeKind, RecordNotice, RecordSend, SendState

FORMAT = "edudesk-record-notice/1"
NAMESPACE = "urn:edudesk:records-portal:notice:1"
SCHEMA_FILE = "portal_notice.xsd"
ISSUED = (ClassState.CONFIRMED, ClassState.EXPORTED)
DUE_WITH = {NoticeKind.WITHDRAWN: RecordState.WITHDRAWN, NoticeKind.REPLACED: RecordState.SIGNED}


def notice_errors(xml: bytes) -> list[str]:
    """What is wrong with a notice's manifest.xml against its XSD ([] when it is valid)."""
    return xsd_errors(xml, SCHEMA_FILE)


def notice_job_key(class_id: int, notice_id: int, change_id: int) -> str:
    """The key of the job that sends a withdrawal at once ("portal-notice:<class>:<notice>:<change>")."""
    return f"portal-notice:{class_id}:{notice_id}:{change_id}"


async def note_change(conn: BaseDBAsyncClient, queue: JobQueue, settings: Settings, change: RecordChange,
                      record: SchoolRecord, now: datetime) -> RecordNotice | None:
    """After the minutes of a change are signed: when the portal holds an accepted version of the record, note
    what it must be told (a withdrawal overrides an open replacement) and queue a withdrawal's send at once.
    None when the portal never accepted the record (nothing to tell)."""
    kind = NoticeKind.WITHDRAWN if change.kind == ChangeKind.WITHDRAWAL else NoticeKind.REPLACED
    await lock_for_transaction(conn, f"edudesk:portal-notice:{record.id}")
    notice = await RecordNotice.filter(record_id=record.id).exclude(state=SendState.SENT).using_db(conn).first()
    if notice is not None:
        kind = NoticeKind.WITHDRAWN if NoticeKind.WITHDRAWN in (kind, notice.kind) else kind
        await RecordNotice.filter(id=notice.id).using_db(conn).update(kind=kind, change_id=change.id,
                                                                      updated_at=now)
        notice = await RecordNotice.filter(id=notice.id).using_db(conn).get()
    else:
        held = await RecordSend.filter(record_id=record.id, state=SendState.SENT).using_db(conn).first()
        if held is None or not held.receipt:
            return None
        notice = await RecordNotice.create(record_id=record.id, klass_id=record.klass_id, change_id=change.id,
                                           kind=kind, replaces_receipt=held.receipt, replaces_sha256=held.sha256,
                                           created_at=now, updated_at=now, using_db=conn)
    if kind == NoticeKind.WITHDRAWN and settings.portal.enabled and settings.portal.url:
        await queue.enqueue(JobKind.PORTAL_SEND, notice_job_key(record.klass_id, notice.id, change.id),
                            {"class_id": record.klass_id, "notices_only": True}, connection=conn)
    return notice


async def open_notices(class_id: int) -> dict[int, RecordNotice]:
    """The class's notices not accepted yet, by record id."""
    return {n.record_id: n for n in await RecordNotice.filter(klass_id=class_id).exclude(state=SendState.SENT)}


async def latest_notices(class_ids: list[int]) -> dict[int, RecordNotice]:
    """The latest notice of each record of these classes, by record id."""
    rows = await RecordNotice.filter(klass_id__in=class_ids or [0]).order_by("id")
    return {n.record_id: n for n in rows}


async def due_notices(klass: SchoolClass) -> list[RecordNotice]:
    """The class's open notices that can go now: a withdrawal once the record is withdrawn; a replacement once
    its new revision is issued (the record signed again and the class confirmed)."""
    notices = await open_notices(klass.id)
    if not notices:
        return []
    states = dict(await SchoolRecord.filter(id__in=list(notices)).values_list("id", "state"))
    due = []
    for record_id, notice in sorted(notices.items()):
        if states.get(record_id) != DUE_WITH[NoticeKind(notice.kind)]:
            continue
        if notice.kind == NoticeKind.REPLACED and klass.state not in ISSUED:
            continue
        due.append(notice)
    return due


def package_id(klass: SchoolClass, entry: dict[str, Any], shas: list[str], after: str = "") -> str:
    """Made from the content: the same notice with the same files gives the same id (a retry gets the portal's
    first answer again). `after`: the package the portal refused before, so that sending again after a refusal
    is a new request, not a replay of that refusal."""
    lines = ["notice", klass.school, klass.year, klass.name, entry["student_code"], entry["status"],
             entry["replaces"]["receipt"], *sorted(shas), after]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:32]


async def _revisions(record: SchoolRecord, held_sha: str) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    """The chain of revisions since the version the portal holds, and the signed minutes that decided them."""
    chain = await RecordRevision.filter(record_id=record.id).order_by("number", "id")
    start = next((n for n, rev in enumerate(chain) if rev.sha256 == held_sha), 0)
    entries, pdfs = [], []
    for rev in chain[start:]:
        entry: dict[str, Any] = {"revision": rev.number, "kind": rev.kind, "sha256": rev.sha256,
                                 "signatures": rev.signatures, "retired_at": rev.created_at.isoformat(),
                                 "reason": rev.reason, "minutes": None}
        change = await RecordChange.get_or_none(id=rev.change_id) if rev.change_id else None
        if change is not None and change.done_at is not None:
            minutes = await SchoolRecord.get(id=change.minutes_id)
            signed = bytes(minutes.pdf)
            name = f"{file_stem(record.student_code, record.student_name)}.bb{change.id}.pdf"
            entry["minutes"] = {"number": change.number, "file": name, "sha256": hashlib.sha256(signed).hexdigest(),
                                "signatures": minutes.signatures, "signed_at": change.done_at.isoformat()}
            pdfs.append((name, signed))
        entries.append(entry)
    return entries, pdfs


async def build_notice(notice: RecordNotice, record: SchoolRecord, klass: SchoolClass, *, now: datetime,
                       school_code: str = "") -> ClassPackage:
    """The package telling the portal about one record; PackageInvalid when its manifest.xml fails the XSD."""
    change = await RecordChange.get(id=notice.change_id)
    revisions, pdfs = await _revisions(record, notice.replaces_sha256)
    entry: dict[str, Any] = {"student_code": record.student_code, "student_name": record.student_name,
                             "status": notice.kind, "replaces": {"receipt": notice.replaces_receipt,
                                                                 "sha256": notice.replaces_sha256},
                             "reason": change.reason, "new_revision": None, "revisions": revisions}
    if notice.kind == NoticeKind.REPLACED:
        name, pdf, facts = await manifest_entry(record)
        entry["new_revision"] = {"file": name, "sha256": facts["sha256"], "size": len(pdf),
                                 "revision": record.revision, "signatures": facts["signatures"],
                                 "issued_at": issued_at(facts)}
        pdfs.insert(0, (name, pdf))
    pid = package_id(klass, entry, [hashlib.sha256(d).hexdigest() for _, d in pdfs],
                     notice.package_id if notice.state == SendState.FAILED else "")
    data: dict[str, Any] = {"format": FORMAT, "package_id": pid, "generated_at": now.isoformat(),
                            "school_code": school_code, "school": klass.school, "year": klass.year,
                            "class": klass.name, "records": [entry]}
    xml = notice_xml(data)
    if errors := notice_errors(xml):
        raise PackageInvalid(f"Không lập được thông báo {'thu hồi' if notice.kind == NoticeKind.WITHDRAWN else 'thay'}"
                             f" học bạ {record.student_code} đúng định dạng: {errors[0]}")
    return ClassPackage(package_id=pid, label=f"{klass.name} ({klass.year}), {record.student_code}",
                        manifest_json=json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"),
                        manifest_xml=xml, pdfs=tuple(pdfs), student_codes=(record.student_code,) * len(pdfs))


def notice_xml(data: dict[str, Any]) -> bytes:
    """manifest.xml of a notice: the facts of its manifest.json in the XML of portal_notice.xsd."""
    def add(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
        node = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
        if text is not None:
            node.text = str(text)
        return node

    def fill(parent: etree._Element, pairs: tuple[tuple[str, object], ...]) -> None:
        for tag, value in pairs:
            add(parent, tag, value)

    root = etree.Element(f"{{{NAMESPACE}}}recordNotice", nsmap={None: NAMESPACE}, format="1")
    fill(root, (("packageId", data["package_id"]), ("generatedAt", data["generated_at"])))
    school = add(root, "school", data["school"])
    if data["school_code"]:
        school.set("code", data["school_code"])
    fill(root, (("year", data["year"]), ("class", data["class"])))
    entry = data["records"][0]
    notice = add(root, "notice")
    fill(notice, (("studentCode", entry["student_code"]), ("studentName", entry["student_name"]),
                  ("status", entry["status"])))
    fill(add(notice, "replaces"), (("receipt", entry["replaces"]["receipt"]), ("sha256", entry["replaces"]["sha256"])))
    add(notice, "reason", entry["reason"])
    if new := entry["new_revision"]:
        fill(add(notice, "newRevision"), (("file", new["file"]), ("sha256", new["sha256"]), ("size", new["size"]),
                                          ("revision", new["revision"]), ("signatures", len(new["signatures"])),
                                          ("issuedAt", new["issued_at"] or "")))
    chain = add(notice, "revisions")
    chain.set("count", str(len(entry["revisions"])))
    for rev in entry["revisions"]:
        node = add(chain, "revision")
        fill(node, (("number", rev["revision"]), ("kind", rev["kind"]), ("sha256", rev["sha256"]),
                    ("signatures", rev["signatures"]), ("retiredAt", rev["retired_at"]), ("reason", rev["reason"])))
        if minutes := rev["minutes"]:
            fill(add(node, "minutes"), (("number", minutes["number"]), ("file", minutes["file"]),
                                        ("sha256", minutes["sha256"]), ("signatures", minutes["signatures"]),
                                        ("signedAt", minutes["signed_at"])))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
