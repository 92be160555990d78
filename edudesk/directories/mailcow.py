"""mailcow (mailcow-dockerized) through its JSON API: one mailbox per account.

mailcow keeps no free-form fields on a mailbox, but it keeps and returns mailbox *tags*: edudesk's
idempotency key and the person's ID go there ("edudesk-key:…", "edudesk-person:…"), so a re-run after a
crash recognises the mailbox it made. mailcow answers refusals with HTTP 200 and a list of
{type: "danger"|"error", msg: [code, args…]}: the body decides, never the status code alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from edudesk.core.config import MailcowBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError

log = logging.getLogger(__name__)

KEY_TAG = "edudesk-key:"
PERSON_TAG = "edudesk-person:"
ACTIVE = "1"
NO_LOGIN = "2"  # mailcow: "disallow login (incoming mail is still accepted)"; "0" would bounce mail too
_ATTEMPTS = 5
_BACKOFF = 1.0
_WAIT_MAX = 60.0  # a longer Retry-After goes back to the job queue instead of holding a worker
_FAILED = ("danger", "error")

_REASONS = {
    "domain_not_found": "tên miền chưa có trên mailcow",
    "access_denied": "khoá API không có quyền với địa chỉ này, hoặc tên miền chưa có trên mailcow",
    "password_complexity": "mật khẩu không đạt chính sách mật khẩu của mailcow",
    "password_mismatch": "hai ô mật khẩu không khớp nhau",
    "max_mailbox_exceeded": "tên miền đã đủ số hộp thư cho phép",
    "mailbox_quota_exceeded": "dung lượng vượt mức tối đa cho một hộp thư của tên miền",
    "mailbox_quota_left_exceeded": "tên miền không còn đủ dung lượng trống",
    "unlimited_quota_acl": "không được tạo hộp thư không giới hạn dung lượng",
    "mailbox_invalid": "địa chỉ không hợp lệ",
    "username_invalid": "địa chỉ không hợp lệ",
    "domain_invalid": "tên miền không hợp lệ",
}


@dataclass(frozen=True)
class Outcome:
    """One entry of mailcow's answer: its type and message code with the code's arguments."""

    kind: str
    code: str
    args: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether this entry is a refusal ("danger" or "error")."""
        return self.kind in _FAILED


def outcomes(body: Any) -> list[Outcome]:
    """mailcow's answer (one object or a list of them) as outcomes."""
    found = []
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            continue
        msg = item.get("msg")
        if isinstance(msg, list) and msg:
            found.append(Outcome(str(item.get("type", "")), str(msg[0]), tuple(str(a) for a in msg[1:])))
        else:
            found.append(Outcome(str(item.get("type", "")), str(msg or "")))
    return found


def reason(outcome: Outcome, secret: str = "") -> str:
    """A refusal in Vietnamese with mailcow's own code (and its figures), never containing `secret`."""
    text = _REASONS.get(outcome.code, "mailcow báo lỗi")
    figures = ", ".join(a for a in outcome.args if "@" not in a)
    detail = f"{outcome.code}{': ' + figures if figures else ''}"
    said = f"{text} ({detail})"
    return said.replace(secret, "***") if secret else said


def entry_of(address: str, body: Any) -> DirectoryEntry | None:
    """The mailbox in a get/mailbox answer ({} or [] when there is none)."""
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict) or str(item.get("username", "")).lower() != address.lower():
            continue
        tags = [t for t in item.get("tags") or [] if isinstance(t, str)]
        key = next((t[len(KEY_TAG):] for t in tags if t.startswith(KEY_TAG)), "")
        person = next((t[len(PERSON_TAG):] for t in tags if t.startswith(PERSON_TAG)), "")
        active = str(item.get("active_int", item.get("active", "")))
        return DirectoryEntry(address=str(item["username"]), state="active" if active == ACTIVE else "suspended",
                              key=key, person_id=person, backend_id=str(item["username"]),
                              full_name=str(item.get("name") or ""))
    return None


@dataclass(frozen=True)
class _Reply:
    body: Any
    retried: bool  # an earlier attempt may have been carried out before its answer was lost


class MailcowProvisioner:
    """Mailboxes on one mailcow server, through a read-write API key allowed from edudesk's address."""

    name = "mailcow"

    def __init__(self, config: MailcowBackendSettings, api_key: str, *, attempts: int = _ATTEMPTS,
                 backoff: float = _BACKOFF, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._base = config.url.rstrip("/") + "/api/v1/"
        self._key = api_key
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._tags_checked = False

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The mailbox under this address, or None (mailcow deletes for good: no soft-deleted state)."""
        reply = await self._call("GET", "get/mailbox/" + quote(address, safe="@"), address)
        refused = [o for o in outcomes(reply.body) if o.failed]
        if refused:
            raise self._refusal("đọc hộp thư", address, refused[0])
        return entry_of(address, reply.body)

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Add the mailbox; link one tagged with the same key or person; else AddressTaken."""
        local, _, domain = spec.address.partition("@")
        tags = [t for t in (KEY_TAG + spec.key if spec.key else "",
                            PERSON_TAG + spec.person_id if spec.person_id else "") if t]
        # tls_enforce_* and the rest are left to the server's mailbox template: the school's choice.
        payload = {"local_part": local, "domain": domain, "name": spec.full_name, "password": password,
                   "password2": password, "quota": self.config.quota_mb, "active": ACTIVE,
                   "force_pw_update": "1" if spec.force_change else "0", "tags": tags}
        found = outcomes((await self._call("POST", "add/mailbox", spec.address, payload)).body)
        failure = next((o for o in found if o.failed), None)
        if failure is None and found:
            log.info("mailcow: created %s", spec.address)
            if tags and not self._tags_checked:
                await self._check_tags(spec)
            return "created"
        if failure is None:
            raise ProvisionError(f"mailcow trả lời không rõ khi tạo hộp thư {spec.address}.", permanent=True)
        if failure.code in ("is_alias", "is_spam_alias"):
            raise AddressTaken(spec.address, "đang là bí danh (alias) trên mailcow")
        if failure.code != "object_exists":
            raise self._refusal("tạo hộp thư", spec.address, failure, password)
        # Made before (a re-run after a crash, or a lost answer retried) or by someone else: the tags tell.
        entry = await self.lookup(spec.address)
        if entry is None:
            raise ProvisionError(f"Hộp thư {spec.address} vừa bị xoá trên mailcow khi đang tạo; sẽ thử lại.")
        if not entry.owned_by(spec.key, spec.person_id):
            raise AddressTaken(spec.address, "hộp thư mailcow của người khác")
        await self._edit(spec.address, password, "liên kết hộp thư", name=spec.full_name,
                         force_pw_update="1" if spec.force_change else "0")
        log.info("mailcow: linked %s", spec.address)
        return "linked"

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password and allow sign-in again."""
        await self._edit(address, password, "đặt lại mật khẩu", force_pw_update="1" if force_change else "0")
        log.info("mailcow: password reset for %s", address)

    async def suspend(self, address: str) -> str:
        """Disallow sign-in while mail keeps arriving (active "2"); "absent" when there is no mailbox."""
        reply = await self._call("POST", "edit/mailbox", address, {"items": [address], "attr": {"active": NO_LOGIN}})
        failure = next((o for o in outcomes(reply.body) if o.failed), None)
        if failure is not None:
            if failure.code == "access_denied" and await self.lookup(address) is None:
                return "absent"
            raise self._refusal("khoá hộp thư", address, failure)
        log.info("mailcow: suspended %s", address)
        return "suspended"

    async def restore(self, address: str) -> str:
        """Allow sign-in again (active "1"); "absent" when there is no mailbox."""
        reply = await self._call("POST", "edit/mailbox", address, {"items": [address], "attr": {"active": "1"}})
        failure = next((o for o in outcomes(reply.body) if o.failed), None)
        if failure is not None:
            if failure.code == "access_denied" and await self.lookup(address) is None:
                return "absent"
            raise self._refusal("mở lại hộp thư", address, failure)
        log.info("mailcow: restored %s", address)
        return "restored"

    async def delete(self, address: str) -> str:
        """Delete the mailbox (mailcow moves its mail to the garbage collector); "absent" when none."""
        reply = await self._call("POST", "delete/mailbox", address, [address])
        failure = next((o for o in outcomes(reply.body) if o.failed), None)
        if failure is not None:
            if failure.code == "access_denied" and await self.lookup(address) is None:
                return "deleted" if reply.retried else "absent"  # the lost first attempt did it
            raise self._refusal("xoá hộp thư", address, failure)
        log.info("mailcow: deleted %s", address)
        return "deleted"

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _edit(self, address: str, password: str, action: str, **attr: str) -> None:
        attr.update(password=password, password2=password, active=ACTIVE)
        reply = await self._call("POST", "edit/mailbox", address, {"items": [address], "attr": attr})
        failure = next((o for o in outcomes(reply.body) if o.failed), None)
        if failure is None:
            return
        if failure.code == "access_denied" and await self.lookup(address) is None:
            raise ProvisionError(f"Không có hộp thư {address} trên mailcow.", permanent=True)
        raise self._refusal(action, address, failure, password)

    async def _check_tags(self, spec: AccountSpec) -> None:
        # Once per process: a mailcow too old for tags would make every re-run after a crash an orphan.
        try:
            entry = await self.lookup(spec.address)
        except ProvisionError:
            return  # the mailbox is made; the check waits for the next one
        self._tags_checked = True
        if entry is not None and not entry.owned_by(spec.key, spec.person_id):
            log.warning("mailcow: %s does not keep mailbox tags; a re-run after a crash cannot recognise "
                        "its own mailboxes (upgrade mailcow)", self.config.url)

    def _refusal(self, action: str, address: str, failure: Outcome, secret: str = "") -> ProvisionError:
        return ProvisionError(f"mailcow từ chối {action} {address}: {reason(failure, secret)}.", permanent=True)

    # -- HTTP and retries -----------------------------------------------------------------------------

    async def _call(self, method: str, path: str, address: str, payload: Any = None) -> _Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"X-API-Key": self._key, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=30))
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            hint: float | None = None
            try:
                async with self._session.request(method, self._base + path, json=payload) as resp:
                    text = await resp.text()
                    if resp.status != 429 and resp.status < 500:
                        return _Reply(self._parse(resp.status, text, address), retried=attempt > 1)
                    problem = f"HTTP {resp.status}"
                    hint = _seconds(resp.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = type(exc).__name__
            wait = max(hint or 0.0, delay * (1 + random.random() / 2))
            if attempt == self._attempts or (hint is not None and hint > _WAIT_MAX):
                raise ProvisionError(f"mailcow {self.config.url} không trả lời được khi xử lý {address} "
                                     f"({problem}, {attempt} lần thử).", retry_after=hint or wait)
            log.warning("mailcow: %s on %s (attempt %d for %s), retrying", problem,
                        "/".join(path.split("/")[:2]), attempt, address)
            await self._sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    def _parse(self, status: int, text: str, address: str) -> Any:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        said = outcomes(body)
        msg = said[0].code if said else ""
        if status == 401 and msg.startswith("api access denied for ip"):
            raise ProvisionError(f"mailcow không cho địa chỉ IP của edudesk dùng API khi xử lý {address} "
                                 f"({msg}): thêm địa chỉ này vào danh sách cho phép của khoá API.", permanent=True)
        if status == 401:
            raise ProvisionError(f"mailcow từ chối khoá API của edudesk khi xử lý {address} (sai khoá hoặc khoá "
                                 f"đã tắt: {msg or 'HTTP 401'}).", permanent=True)
        if status == 403:
            raise ProvisionError(f"Khoá API mailcow của edudesk không có quyền ghi khi xử lý {address} "
                                 f"({msg or 'HTTP 403'}): cần khoá đọc-ghi.", permanent=True)
        if status != 200 or body is None:
            raise ProvisionError(f"mailcow trả lời bất thường khi xử lý {address} (HTTP {status}"
                                 f"{': ' + msg if msg else ''}); kiểm tra url trong [provisioning.mailcow].",
                                 permanent=True)
        return body


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough here to fall back to the backoff


def build(settings: Settings, clock: Clock) -> MailcowProvisioner:
    """The mailcow back end of `[provisioning.mailcow]`."""
    config = settings.provisioning.mailcow
    if not config.url.lower().startswith(("https://", "http://")):
        raise ConfigError("[provisioning.mailcow] thiếu url (https://mail.truong.edu.vn).", code="config_mailcow")
    key = settings.secret(config.api_key_env)
    if not key:
        raise ConfigError(f"Biến môi trường {config.api_key_env} (khoá API mailcow) chưa có giá trị.",
                          code="config_mailcow")
    return MailcowProvisioner(config, key, attempts=config.max_retries + 1, backoff=config.backoff_initial_seconds)
