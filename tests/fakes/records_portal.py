"""A fake receiving portal (Cổng tiếp nhận) speaking the generic format of docs/records-portal.md.

POST /api/v1/class-packages, multipart/form-data: `manifest_json`, `manifest_xml`, one `record` part per PDF,
`Authorization` (Bearer, or Basic when the fake has a username), `Idempotency-Key` = the package id. It holds
to what a real portal would:
- no or wrong credentials -> 401; a body over `max_bytes` -> 413; a missing or unknown part -> 400;
- manifest.xml not valid against the documented XSD, or not saying what manifest.json says -> 422;
- per record: refused when its PDF is missing, is not a PDF, or its SHA-256 differs from the manifest's; or
  when told so (`refuse[code] = reason`); otherwise accepted with a receipt ("TN-2026-000001"), the same one
  again for the same record in the same version;
- a package id seen before gets the first answer again (nothing stored twice);
- a record notice (format "edudesk-record-notice/1", the same POST): manifest.xml valid against the notice XSD and
  agreeing with manifest.json (or 422); refused unless the receipt and hash it replaces are the version the
  portal holds, the record is not withdrawn already, each listed file (the signed minutes, the new revision) is
  there with its hash, and the change's minutes are among them; a withdrawal is then kept in `withdrawn` (the
  record no longer valid, any later package of it refused) with a receipt "TH-2025-000002"; a replacement
  becomes the version held, with a new receipt.
Faults: `fail_next` (statuses answered before anything is read, e.g. [503, 503]), `lose_next` (store, then
answer 502 as a proxy that lost the answer), `delay_next` (seconds to hold the answer: a client timeout).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from lxml import etree

from edudesk.core.signing.portal import schema_text
from edudesk.core.signing.portalnotice import FORMAT as NOTICE_FORMAT
from edudesk.core.signing.portalnotice import SCHEMA_FILE as NOTICE_SCHEMA
from tests.fakes.server import FakeServer

PATH = "/api/v1/class-packages"
NS = {"p": "urn:edudesk:records-portal:package:1"}
NOTICE_NS = {"n": "urn:edudesk:records-portal:notice:1"}
MB = 1024 * 1024


@dataclass
class Upload:
    """One package that reached the portal's checks, and what the portal answered."""

    package_id: str
    manifest: dict[str, Any]
    manifest_xml: bytes
    files: dict[str, bytes]
    answer: dict[str, Any] = field(default_factory=dict)

    def status_of(self, code: str) -> str:
        """"accepted" or "refused" for a student code in this answer."""
        return next(r["status"] for r in self.answer["records"] if r["student_code"] == code)


class FakeRecordsPortal(FakeServer):
    """The portal: its credentials, its size limit, what it stored, and the faults to inject."""

    def __init__(self, *, token: str = "portal-test-token-0123", username: str = "", password: str = "",
                 max_bytes: int = 20 * MB) -> None:
        self.token = token
        self.username = username
        self.password = password
        self.max_bytes = max_bytes
        self.fail_next: deque[int] = deque()
        self.lose_next = 0
        self.delay_next = 0.0
        self.refuse: dict[str, str] = {}
        self.requests: list[dict[str, str]] = []  # the headers of every POST (faults included)
        self.uploads: list[Upload] = []
        self.replays = 0
        self.stored: dict[tuple[str, str, str, str], dict[str, str]] = {}  # (school, year, class, code) -> receipt
        self.accepted: list[tuple[str, str]] = []  # (student code, package id) of every storing
        self.notices: list[Upload] = []  # the record notices that reached the checks
        self.withdrawn: dict[tuple[str, str, str, str], dict[str, str]] = {}  # -> receipt, notice receipt, reason
        self.replaced: dict[str, dict[str, str]] = {}  # a replaced version's receipt -> the new one's receipt, sha256
        self._answers: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._schema = etree.XMLSchema(etree.fromstring(schema_text()))
        self._notice_schema = etree.XMLSchema(etree.fromstring(schema_text(NOTICE_SCHEMA)))

    @property
    def upload_url(self) -> str:
        """Where packages go."""
        return self.url + PATH

    def routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.upload)

    def times_stored(self, code: str) -> int:
        """How many times a record was stored (accepted) under any package."""
        return sum(1 for c, _ in self.accepted if c == code)

    def _authorised(self, header: str) -> bool:
        if self.username:
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return header == f"Basic {expected}"
        return header == f"Bearer {self.token}"

    async def upload(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.fail_next:
            return web.json_response({"error": "unavailable", "message": "Hệ thống đang bảo trì, vui lòng thử lại."},
                                     status=self.fail_next.popleft(), headers={"Retry-After": "30"})
        if self.delay_next:
            delay, self.delay_next = self.delay_next, 0.0
            await asyncio.sleep(delay)
        if not self._authorised(request.headers.get("Authorization", "")):
            return web.json_response({"error": "unauthorized", "message": "Mã truy cập không hợp lệ hoặc đã hết hạn."},
                                     status=401)
        key = request.headers.get("Idempotency-Key", "")
        if key in self._answers:
            self.replays += 1
            return web.json_response(self._answers[key])
        if (request.content_length or 0) > self.max_bytes:
            return web.json_response({"error": "too_large", "message": f"Gói hồ sơ vượt quá {self.max_bytes} byte."},
                                     status=413)
        parts, problem = await self._read(request)
        if problem:
            return problem
        manifest_xml = parts.pop("manifest_xml")[0][1]
        raw_json = parts.pop("manifest_json")[0][1]
        files = {name: data for name, data in parts.pop("record", [])}
        if json.loads(raw_json).get("format") == NOTICE_FORMAT:
            return self._notice(key, json.loads(raw_json), manifest_xml, files)
        doc = etree.fromstring(manifest_xml)
        if not self._schema.validate(doc):
            return web.json_response({"error": "invalid_manifest",
                                      "message": f"manifest.xml không hợp lệ: {self._schema.error_log[0].message}"},
                                     status=422)
        manifest = json.loads(raw_json)
        mismatch = self._disagree(manifest, doc, key)
        if mismatch:
            return web.json_response({"error": "manifest_mismatch", "message": mismatch}, status=422)
        upload = Upload(manifest["package_id"], manifest, manifest_xml, files)
        upload.answer = {"package_id": upload.package_id, "received_at": datetime.now(UTC).isoformat(),
                         "records": [self._judge(manifest, entry, files) for entry in manifest["records"]]}
        self._answers[key] = upload.answer
        self.uploads.append(upload)
        if self.lose_next:
            self.lose_next -= 1
            return web.Response(status=502, text="Bad Gateway")
        return web.json_response(upload.answer)

    async def _read(self, request: web.Request) -> tuple[dict[str, list[tuple[str, bytes]]], web.Response | None]:
        parts: dict[str, list[tuple[str, bytes]]] = {}
        size = 0
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return parts, web.json_response({"error": "not_multipart", "message": "Cần multipart/form-data."},
                                            status=400)
        while (part := await reader.next()) is not None:
            data = await part.read(decode=False)  # type: ignore[union-attr]
            size += len(data)
            if size > self.max_bytes:
                return parts, web.json_response({"error": "too_large", "message": "Gói hồ sơ quá lớn."}, status=413)
            name = part.name or ""  # type: ignore[union-attr]
            if name not in ("manifest_json", "manifest_xml", "record"):
                return parts, web.json_response({"error": "unknown_part", "message": f"Phần lạ: {name}"}, status=400)
            parts.setdefault(name, []).append((part.filename or "", bytes(data)))  # type: ignore[union-attr]
        for needed in ("manifest_json", "manifest_xml"):
            if len(parts.get(needed, [])) != 1:
                return parts, web.json_response({"error": "missing_part", "message": f"Thiếu {needed}."}, status=400)
        return parts, None

    @staticmethod
    def _disagree(manifest: dict[str, Any], doc: Any, key: str) -> str:
        """What manifest.json and manifest.xml (and the Idempotency-Key) do not agree on; "" when they agree."""
        if manifest.get("package_id") != key or doc.findtext("p:packageId", namespaces=NS) != key:
            return "Idempotency-Key khác mã gói hồ sơ trong manifest."
        for tag, name in (("school", "school"), ("year", "year"), ("class", "class")):
            if doc.findtext(f"p:{tag}", namespaces=NS) != manifest.get(name):
                return f"manifest.xml và manifest.json khác nhau ở {tag}."
        rows = doc.findall("p:records/p:record", namespaces=NS)
        if int(doc.find("p:records", namespaces=NS).get("count")) != len(rows):
            return "Số học bạ (count) không khớp danh sách."
        xml = [(r.findtext("p:studentCode", namespaces=NS), r.findtext("p:file", namespaces=NS),
                r.findtext("p:sha256", namespaces=NS), int(r.findtext("p:signatures", namespaces=NS))) for r in rows]
        js = [(e["student_code"], e["file"], e["sha256"], len(e["signatures"])) for e in manifest["records"]]
        return "" if xml == js else "Danh sách học bạ của manifest.xml và manifest.json khác nhau."

    def _judge(self, manifest: dict[str, Any], entry: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        code = entry["student_code"]
        data = files.get(entry["file"])
        reason = ""
        if data is None:
            reason = f"Thiếu tệp {entry['file']}."
        elif not data.startswith(b"%PDF-"):
            reason = f"Tệp {entry['file']} không phải PDF."
        elif hashlib.sha256(data).hexdigest() != entry["sha256"]:
            reason = f"Mã băm SHA-256 của tệp {entry['file']} không khớp manifest."
        elif code in self.refuse:
            reason = self.refuse[code]
        elif (manifest["school"], manifest["year"], manifest["class"], code) in self.withdrawn:
            reason = "Học bạ này đã bị thu hồi; không nhận lại."
        if reason:
            return {"student_code": code, "file": entry["file"], "status": "refused", "reason": reason}
        where = (manifest["school"], manifest["year"], manifest["class"], code)
        known = self.stored.get(where)
        if known is None or known["sha256"] != entry["sha256"]:
            self._seq += 1
            known = {"receipt": f"TN-{manifest['year'][:4]}-{self._seq:06d}", "sha256": entry["sha256"]}
            self.stored[where] = known
            self.accepted.append((code, manifest["package_id"]))
        return {"student_code": code, "file": entry["file"], "status": "accepted", "receipt": known["receipt"]}

    def _notice(self, key: str, manifest: dict[str, Any], manifest_xml: bytes,
                files: dict[str, bytes]) -> web.Response:
        """A record notice: checked as a package, then judged against the version the portal holds."""
        doc = etree.fromstring(manifest_xml)
        if not self._notice_schema.validate(doc):
            return web.json_response({"error": "invalid_manifest", "message": "manifest.xml không hợp lệ: "
                                      f"{self._notice_schema.error_log[0].message}"}, status=422)
        [entry] = manifest["records"]
        mismatch = self._notice_disagree(manifest, entry, doc, key)
        if mismatch:
            return web.json_response({"error": "manifest_mismatch", "message": mismatch}, status=422)
        upload = Upload(manifest["package_id"], manifest, manifest_xml, files)
        upload.answer = {"package_id": upload.package_id, "received_at": datetime.now(UTC).isoformat(),
                         "records": [self._judge_notice(manifest, entry, files)]}
        self._answers[key] = upload.answer
        self.notices.append(upload)
        if self.lose_next:
            self.lose_next -= 1
            return web.Response(status=502, text="Bad Gateway")
        return web.json_response(upload.answer)

    @staticmethod
    def _notice_disagree(manifest: dict[str, Any], entry: dict[str, Any], doc: Any, key: str) -> str:
        """What a notice's manifest.json and manifest.xml do not agree on; "" when they agree."""
        text = functools.partial(doc.findtext, namespaces=NOTICE_NS)
        if manifest.get("package_id") != key or text("n:packageId") != key:
            return "Idempotency-Key khác mã gói hồ sơ trong manifest."
        pairs = ((text("n:school"), manifest["school"]), (text("n:year"), manifest["year"]),
                 (text("n:class"), manifest["class"]), (text("n:notice/n:studentCode"), entry["student_code"]),
                 (text("n:notice/n:status"), entry["status"]),
                 (text("n:notice/n:replaces/n:receipt"), entry["replaces"]["receipt"]),
                 (text("n:notice/n:replaces/n:sha256"), entry["replaces"]["sha256"]))
        if any(a != b for a, b in pairs):
            return "manifest.xml và manifest.json của thông báo khác nhau."
        if (entry["status"] == "replaced") != (doc.find("n:notice/n:newRevision", NOTICE_NS) is not None) or (
                entry["status"] == "replaced") != bool(entry.get("new_revision")):
            return "Thông báo thay thế phải kèm bản mới; thông báo thu hồi thì không."
        revisions = doc.findall("n:notice/n:revisions/n:revision", NOTICE_NS)
        if len(revisions) != len(entry["revisions"]):
            return "Chuỗi phiên bản của manifest.xml và manifest.json khác nhau."
        return ""

    def _judge_notice(self, manifest: dict[str, Any], entry: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        code, status = entry["student_code"], entry["status"]
        where = (manifest["school"], manifest["year"], manifest["class"], code)
        listed = [m["minutes"] for m in entry["revisions"] if m["minutes"]]
        if entry.get("new_revision"):
            listed.append(entry["new_revision"])
        held = self.stored.get(where)
        kind = "withdrawal" if status == "withdrawn" else "adjustment"
        reason = ""
        replaces = entry["replaces"]["receipt"]
        again = self._same_notice(where, status, replaces, entry)
        if again:  # the same notice sent again (after a lost answer, as a new request): the same receipt
            return {"student_code": code, "status": "accepted", "receipt": again}
        if where in self.withdrawn:
            reason = "Học bạ này đã bị thu hồi trước đó."
        elif held is None or (held["receipt"], held["sha256"]) != (entry["replaces"]["receipt"],
                                                                    entry["replaces"]["sha256"]):
            reason = "Biên nhận và mã băm trong thông báo không phải bản học bạ Cổng tiếp nhận đang giữ."
        elif not any(r["kind"] == kind and r["minutes"] for r in entry["revisions"]):
            reason = "Thông báo không kèm biên bản đã ký của Ban giám hiệu."
        elif sorted(files) != sorted(f["file"] for f in listed):
            reason = "Các tệp gửi kèm không đúng danh sách trong manifest."
        elif any(not files[f["file"]].startswith(b"%PDF-")
                 or hashlib.sha256(files[f["file"]]).hexdigest() != f["sha256"] for f in listed):
            reason = "Mã băm SHA-256 của tệp gửi kèm không khớp manifest."
        elif code in self.refuse:
            reason = self.refuse[code]
        if reason or held is None:
            return {"student_code": code, "status": "refused", "reason": reason}
        self._seq += 1
        if status == "withdrawn":
            receipt = f"TH-{manifest['year'][:4]}-{self._seq:06d}"
            self.withdrawn[where] = {"receipt": held["receipt"], "notice": receipt, "reason": entry["reason"]}
        else:
            receipt = f"TN-{manifest['year'][:4]}-{self._seq:06d}"
            self.stored[where] = {"receipt": receipt, "sha256": entry["new_revision"]["sha256"]}
            self.replaced[replaces] = self.stored[where]
            self.accepted.append((code, manifest["package_id"]))
        return {"student_code": code, "status": "accepted", "receipt": receipt}

    def _same_notice(self, where: tuple[str, str, str, str], status: str, replaces: str,
                     entry: dict[str, Any]) -> str:
        """The receipt already given for this very notice ("" when it is new)."""
        if status == "withdrawn" and self.withdrawn.get(where, {}).get("receipt") == replaces:
            return self.withdrawn[where]["notice"]
        done = self.replaced.get(replaces)
        if status == "replaced" and done is not None and done["sha256"] == entry["new_revision"]["sha256"]:
            return done["receipt"]
        return ""
