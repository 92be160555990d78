"""The class package sent to the receiving portal: the records' signed PDFs, `manifest.json` (the export's
manifest, core/signing/complete.py, with the package's own fields) and `manifest.xml` (the same facts, checked
against `portal_package.xsd`). A class larger than `[portal].max_package_mb` goes as several packages.
The format is edudesk's own, documented in docs/records-portal.md for the integrator who maps it."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime
from importlib.resources import files
from typing import Any

from lxml import etree

from edudesk.core.errors import EdudeskError
from edudesk.core.ports import ClassPackage
from edudesk.core.signing.complete import class_manifest, manifest_entry
from edudesk.core.signing.models import SchoolClass, SchoolRecord
from edudesk.core.signing.spec import Stage

FORMAT = "edudesk-class-package/1"
NAMESPACE = "urn:edudesk:records-portal:package:1"
SCHEMA_FILE = "portal_package.xsd"
MANIFEST_ROOM = 64 * 1024  # what the two manifests of one package may take, kept free under the size limit

Item = tuple[str, bytes, dict[str, Any]]  # (file name, signed PDF, manifest entry)


class PackageInvalid(EdudeskError):
    """The class's data do not make a valid package (e.g. a school year not written YYYY-YYYY)."""

    code = "portal_package_invalid"


def schema_text(name: str = SCHEMA_FILE) -> bytes:
    """A shipped XSD (by default the class package's manifest.xml schema)."""
    return files("edudesk.core.signing").joinpath(name).read_bytes()


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.fromstring(schema_text(name)))


def xsd_errors(xml: bytes, name: str) -> list[str]:
    """What is wrong with an XML document against the shipped XSD `name` ([] when it is valid); no entity or
    network is resolved."""
    try:
        doc = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"XML: {exc}"]
    schema = _schema(name)
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def manifest_errors(xml: bytes) -> list[str]:
    """What is wrong with a class package's manifest.xml against its XSD ([] when it is valid)."""
    return xsd_errors(xml, SCHEMA_FILE)


def issued_at(entry: dict[str, Any]) -> str | None:
    """When the record was issued: the time of its issuing signature (the school's organisation certificate)."""
    times = [s["signed_at"] for s in entry["signatures"] if s["stage"] == Stage.ISSUER and s["signed_at"]]
    return max(times) if times else None


def package_id(klass: SchoolClass, entries: list[dict[str, Any]]) -> str:
    """An id made from the content: the same records in the same versions give the same id (resends)."""
    lines = [klass.school, klass.year, klass.name] + sorted(f"{e['student_code']}:{e['sha256']}" for e in entries)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:32]


def manifest(klass: SchoolClass, items: list[Item], *, now: datetime, school_code: str = "") -> dict[str, Any]:
    """manifest.json of one package: the export's manifest of these records, each with its size and issue
    time, under the format, the package id, when it was made and the school's code at the portal."""
    entries = [{**entry, "size": len(pdf), "issued_at": issued_at(entry)} for _, pdf, entry in items]
    return {"format": FORMAT, "package_id": package_id(klass, entries), "generated_at": now.isoformat(),
            "school_code": school_code, **class_manifest(klass, entries)}


def manifest_xml(data: dict[str, Any]) -> bytes:
    """manifest.xml: the facts of manifest.json in the XML of portal_package.xsd."""
    def add(parent: etree._Element, tag: str, text: object) -> etree._Element:
        node = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
        node.text = str(text)
        return node

    root = etree.Element(f"{{{NAMESPACE}}}classPackage", nsmap={None: NAMESPACE}, format="1")
    add(root, "packageId", data["package_id"])
    add(root, "generatedAt", data["generated_at"])
    school = add(root, "school", data["school"])
    if data["school_code"]:
        school.set("code", data["school_code"])
    add(root, "year", data["year"])
    add(root, "class", data["class"])
    add(root, "confirmedBy", data["confirmed_by"])
    if data["confirmed_at"]:
        add(root, "confirmedAt", data["confirmed_at"])
    records = etree.SubElement(root, f"{{{NAMESPACE}}}records", count=str(len(data["records"])))
    for entry in data["records"]:
        record = etree.SubElement(records, f"{{{NAMESPACE}}}record")
        for tag, value in (("studentCode", entry["student_code"]), ("studentName", entry["student_name"]),
                           ("file", entry["file"]), ("sha256", entry["sha256"]), ("size", entry["size"]),
                           ("revision", entry["revision"]), ("signatures", len(entry["signatures"])),
                           ("issuedAt", entry["issued_at"] or "")):
            add(record, tag, value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def make_package(klass: SchoolClass, items: list[Item], *, now: datetime, school_code: str = "") -> ClassPackage:
    """One package of these records; PackageInvalid when its manifest.xml does not pass the XSD."""
    data = manifest(klass, items, now=now, school_code=school_code)
    xml = manifest_xml(data)
    errors = manifest_errors(xml)
    if errors:
        raise PackageInvalid(f"Không lập được gói hồ sơ lớp {klass.name} ({klass.year}) đúng định dạng: "
                             f"{errors[0]}")
    return ClassPackage(package_id=data["package_id"], label=f"{klass.name} ({klass.year})",
                        manifest_json=json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"),
                        manifest_xml=xml, pdfs=tuple((name, pdf) for name, pdf, _ in items),
                        student_codes=tuple(entry["student_code"] for _, _, entry in items))


def split(items: list[Item], max_bytes: int) -> list[list[Item]]:
    """The records in packages of at most `max_bytes` (0: one package); a PDF larger than that goes alone."""
    if max_bytes <= 0:
        return [items] if items else []
    room = max(1, max_bytes - MANIFEST_ROOM)
    groups: list[list[Item]] = []
    size = 0
    for item in items:
        if not groups or size + len(item[1]) > room:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item[1])
    return groups


async def build_packages(klass: SchoolClass, records: list[SchoolRecord], *, now: datetime, school_code: str = "",
                         max_bytes: int = 0) -> list[ClassPackage]:
    """The packages that carry these records of the class (by student code), each within `max_bytes`."""
    items = [await manifest_entry(r) for r in sorted(records, key=lambda r: r.student_code)]
    return [make_package(klass, group, now=now, school_code=school_code) for group in split(items, max_bytes)]
