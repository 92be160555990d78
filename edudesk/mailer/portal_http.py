"""`HttpRecordsPortal`: the `RecordsPortal` port over HTTP, in the generic format of docs/records-portal.md.

One POST per class package, multipart/form-data with the parts themselves (no zip): `manifest_json`,
`manifest_xml`, then one `record` part per signed PDF (its file name as the part's filename). Bearer token or
basic credentials (from the variables `[portal]` names), `Idempotency-Key` = the package id. The JSON answer
gives one entry per record (accepted with a receipt, or refused with a reason). No retry loop here: a timeout,
408, 429 or 5xx is a transient `PortalError` and the job queue retries with its backoff; 401/403 and the other
4xx refuse the package for good. It lives beside the other outgoing transports (SMTP, OAuth tokens)."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

from edudesk.core.config import PortalSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import ClassPackage, PortalError, PortalReceipt, RecordsPortal

TRANSIENT = frozenset({408, 425, 429})
ANSWER_MAX = 2 * 1024 * 1024  # a portal's JSON answer for a class is a few kilobytes


class HttpRecordsPortal:
    """Uploads class packages to one portal address with the school's credentials."""

    def __init__(self, config: PortalSettings, secret: str) -> None:
        self.config = config
        self._secret = secret  # the bearer token, or the basic password; never in a message or a log line

    def _authorization(self) -> str:
        if not self._secret:
            variable = self.config.token_env if self.config.auth == "bearer" else self.config.password_env
            raise PortalError(f"Chưa có thông tin đăng nhập Cổng tiếp nhận: biến môi trường {variable} đang trống.",
                              permanent=True)
        if self.config.auth == "basic":
            pair = f"{self.config.username}:{self._secret}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return f"Bearer {self._secret}"

    async def send_class(self, package: ClassPackage) -> list[PortalReceipt]:
        """POST the package; one receipt per record the portal answered for. Raises PortalError."""
        headers = {"Authorization": self._authorization(), "Idempotency-Key": package.package_id,
                   "Accept": "application/json"}
        form = aiohttp.FormData()
        form.add_field("manifest_json", package.manifest_json, filename="manifest.json",
                       content_type="application/json")
        form.add_field("manifest_xml", package.manifest_xml, filename="manifest.xml", content_type="application/xml")
        for name, data in package.pdfs:
            form.add_field("record", data, filename=name, content_type="application/pdf")
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds or None)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(self.config.url, data=form, headers=headers, allow_redirects=False) as response:
                body = await response.content.read(ANSWER_MAX)
                status = response.status
        except TimeoutError:
            raise PortalError(f"Cổng tiếp nhận không trả lời trong {self.config.timeout_seconds:g} giây.") from None
        except aiohttp.ClientError as exc:
            raise PortalError(f"Không kết nối được Cổng tiếp nhận ({type(exc).__name__}: {exc}).") from None
        return receipts(status, body, package)


def _message(body: bytes) -> str:
    """The portal's own words in an error answer ({"message"|"error": ...}, or the text)."""
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join(body.decode("utf-8", "replace").split())[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:300]
    return ""


def receipts(status: int, body: bytes, package: ClassPackage) -> list[PortalReceipt]:
    """The portal's answer read: receipts for a 2xx, a PortalError (permanent or not) otherwise."""
    said = _message(body) if status >= 300 else ""
    where = f"(HTTP {status}{': ' + said if said else ''})"
    if status in (401, 403):
        raise PortalError(f"Cổng tiếp nhận từ chối đăng nhập {where}: kiểm tra [portal] auth và mã truy cập.",
                          permanent=True, status=status)
    if status == 413:
        raise PortalError(f"Gói hồ sơ lớp {package.label} quá lớn với Cổng tiếp nhận {where}: giảm [portal] "
                          f"max_package_mb.", permanent=True, status=status)
    if status in TRANSIENT or status >= 500:
        raise PortalError(f"Cổng tiếp nhận đang bận hoặc lỗi {where}.", status=status)
    if not 200 <= status < 300:
        raise PortalError(f"Cổng tiếp nhận không nhận gói hồ sơ lớp {package.label} {where}.", permanent=True,
                          status=status)
    try:
        data: Any = json.loads(body)
        entries = data["records"]
        if not isinstance(entries, list):
            raise TypeError("records is not a list")
        found = [_receipt(entry) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:  # the package id makes the next send answer again
        raise PortalError(f"Cổng tiếp nhận trả lời không đọc được (HTTP {status}: {exc}).", status=status) from None
    return [r for r in found if r.student_code in package.student_codes]


def _receipt(entry: Any) -> PortalReceipt:
    """One entry of the answer: {"student_code", "status": "accepted"|"refused", "receipt", "reason"}."""
    if not isinstance(entry, dict):
        raise TypeError("a record entry is not an object")
    accepted = entry.get("status") == "accepted"
    if accepted and not entry.get("receipt"):
        raise ValueError(f"no receipt for {entry.get('student_code')!r}")
    return PortalReceipt(student_code=str(entry["student_code"]), accepted=accepted,
                         receipt=str(entry.get("receipt") or "")[:200],
                         answer=str(entry.get("reason") or entry.get("message") or "")[:2000])


def make_records_portal(settings: Settings) -> RecordsPortal | None:
    """The portal adapter `[portal]` asks for; None when sending is off."""
    config = settings.portal
    if not config.enabled:
        return None
    if not config.url.startswith(("https://", "http://")):
        raise ConfigError(f"[portal] url phải là một địa chỉ http(s)://, đang là {config.url!r}.", code="config_value")
    secret = settings.secret(config.token_env if config.auth == "bearer" else config.password_env)
    return HttpRecordsPortal(config, secret)
