"""Google Workspace through the Admin SDK Directory API, as a service account with domain-wide delegation."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

from edudesk.core.config import GoogleBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USERS = "/admin/directory/v1/users"
KEY_TYPE = "edudesk"  # customType of the externalId holding edudesk's idempotency key
_THROTTLED = {"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"}
_BACKOFF_MAX = 64.0  # Google's advice: exponential backoff up to about a minute
_TOKEN_MARGIN = timedelta(seconds=60)  # refresh a little early: no request leaves with a token about to die
_DELETED_TTL = timedelta(seconds=30)  # the deleted-users list is paged through once per bulk run, not per row
_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a service-account key file the JWT bearer flow needs."""

    client_email: str
    private_key: str
    private_key_id: str
    token_uri: str

    @classmethod
    def parse(cls, source: str) -> ServiceAccount:
        """From the JSON text itself or the path of the file holding it."""
        text = source.strip()
        if not text.startswith("{"):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"Không đọc được tệp khoá tài khoản dịch vụ Google: {exc}.",
                                  code="config_google") from None
        try:
            data = json.loads(text)
            if data.get("type") != "service_account":
                raise ValueError("type is not service_account")
            return cls(data["client_email"], data["private_key"], data.get("private_key_id", ""),
                       data.get("token_uri") or "https://oauth2.googleapis.com/token")
        except (ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"Khoá tài khoản dịch vụ Google không hợp lệ ({exc}).", code="config_google") from None


class _Retry(Exception):
    """A transient failure worth another attempt; `retry_after` is the server's hint, if any."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


def _error(body: Any) -> tuple[str, str]:
    """(reason, message) of Google's {"error": {"message", "errors": [{"reason"}]}} shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", str(error or "")
    errors = error.get("errors") or [{}]
    return str(errors[0].get("reason", "")), str(error.get("message", ""))


def refusal(address: str, status: int, reason: str, message: str) -> ProvisionError:
    """The permanent error for an answer a retry cannot fix, in Vietnamese, naming the address."""
    what = f"{message} ({status} {reason})".strip()
    if status == 400 and "password" in message.lower():
        text = f"Google Workspace từ chối mật khẩu của {address}: {what}; cần 8–100 ký tự ASCII."
    elif status == 400 and ("INVALID_OU_ID" in message or "org unit" in message.lower()):
        text = f"Không có đơn vị tổ chức (orgUnitPath) cho {address} trên Google Workspace: {what}."
    elif status == 400 and "domain" in message.lower():
        text = f"Tên miền của {address} không thuộc tài khoản Google Workspace này: {what}."
    elif status in (401, 403):
        text = (f"Tài khoản dịch vụ của edudesk không có quyền quản lý {address} trên Google Workspace "
                f"(kiểm tra ủy quyền toàn miền và admin_subject): {what}.")
    else:
        text = f"Google Workspace từ chối thay đổi {address}: {what}."
    return ProvisionError(text, permanent=True)


def _entry(user: dict[str, Any], deleted: bool = False) -> DirectoryEntry:
    ids = user.get("externalIds") or []
    key = next((i.get("value", "") for i in ids if i.get("type") == "custom" and i.get("customType") == KEY_TYPE), "")
    person = next((i.get("value", "") for i in ids if i.get("type") == "organization"), "")
    state = "deleted" if deleted else "suspended" if user.get("suspended") else "active"
    full_name = str((user.get("name") or {}).get("fullName", ""))
    return DirectoryEntry(address=str(user.get("primaryEmail", "")).lower(), state=state, key=key, person_id=person,
                          backend_id=str(user.get("id", "")), full_name=full_name)


def _names(spec: AccountSpec) -> dict[str, str]:
    parts = spec.full_name.split()
    # Vietnamese order: family name first ("Nguyễn Văn An" -> Nguyễn / Văn An) when the form gave no split.
    family = spec.family_name or (parts[0] if parts else spec.address.split("@")[0])
    given = spec.given_name or (" ".join(parts[1:]) if len(parts) > 1 else family)
    return {"givenName": given, "familyName": family}


class GoogleProvisioner:
    """Users in a Google Workspace domain; edudesk's key and the person ID ride along as externalIds."""

    name = "google"

    def __init__(self, config: GoogleBackendSettings, account: ServiceAccount, clock: Clock,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.account = account
        self.clock = clock
        self._sleep = sleep
        self._api = config.api_url.rstrip("/")
        self._token_url = config.token_url or account.token_uri
        self._token = ""
        self._token_expiry = clock.now()
        self._token_lock = asyncio.Lock()
        self._deleted: dict[str, DirectoryEntry] | None = None
        self._deleted_at = clock.now()
        self._deleted_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    # -- the port -------------------------------------------------------------------------------------

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The user under this address (primary or alias), else a deleted one still in the undelete window."""
        status, body = await self._call("GET", self._user(address), address)
        if status == 200:
            return _entry(body)
        if status != 404:
            raise refusal(address, status, *_error(body))
        return (await self._deleted_users(address)).get(address.lower())

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Insert the user; link one of the same key or person; else AddressTaken."""
        found = await self.lookup(spec.address)
        if found is None:
            sent: list[bool] = []  # a retried insert that answers 409 may be meeting its own first attempt
            status, body = await self._call("POST", USERS, spec.address, self._new_user(spec, password), sent=sent)
            if status == 200:
                log.info("google: created %s", spec.address)
                return "created"
            if status != 409:
                raise refusal(spec.address, status, *_error(body))
            found = await self.lookup(spec.address)
            if found is None:
                raise ProvisionError(f"Google Workspace báo {spec.address} đã có nhưng không tìm thấy; sẽ thử lại.")
            if len(sent) > 1 and found.key and found.key == spec.key:
                await self._set_password(found.address, password, spec.force_change)
                return "created"
        if found.state == "deleted" or not found.owned_by(spec.key, spec.person_id):
            owner = f" ({found.person_id})" if found.person_id else ""
            where = "đã xoá, còn trong thời gian khôi phục" if found.state == "deleted" else "của người khác"
            raise AddressTaken(spec.address, f"tài khoản Google {where}{owner}")
        await self._set_password(found.address, password, spec.force_change)
        log.info("google: linked %s", spec.address)
        return "linked"

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password and lift a suspension."""
        await self._set_password(address, password, force_change)

    async def suspend(self, address: str) -> str:
        """Suspend the user (sign-in refused, data kept); "absent" when there is none."""
        status, body = await self._call("PATCH", self._user(address), address, {"suspended": True})
        if status == 404:
            return "absent"
        if status != 200:
            raise refusal(address, status, *_error(body))
        return "suspended"

    async def restore(self, address: str) -> str:
        """Lift the suspension (sign-in allowed again, password unchanged); "absent" when there is none."""
        status, body = await self._call("PATCH", self._user(address), address, {"suspended": False})
        if status == 404:
            return "absent"
        if status != 200:
            raise refusal(address, status, *_error(body))
        return "restored"

    async def delete(self, address: str) -> str:
        """Delete the user (Google keeps it restorable for a while); "absent" when there is none."""
        status, body = await self._call("DELETE", self._user(address), address)
        if status == 404:
            return "absent"
        if status not in (200, 204):
            raise refusal(address, status, *_error(body))
        if self._deleted is not None:
            self._deleted[address.lower()] = DirectoryEntry(address.lower(), "deleted")
        return "deleted"

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the calls ------------------------------------------------------------------------------------

    def _user(self, address: str) -> str:
        return f"{USERS}/{quote(address, safe='@')}"

    def _new_user(self, spec: AccountSpec, password: str) -> dict[str, Any]:
        ids = [{"type": "custom", "customType": KEY_TYPE, "value": spec.key}] if spec.key else []
        if spec.person_id:
            ids.append({"type": "organization", "value": spec.person_id})
        unit = self.config.staff_org_unit if spec.population == "staff" else self.config.student_org_unit
        return {"primaryEmail": spec.address, "name": _names(spec), "password": password,
                "changePasswordAtNextLogin": spec.force_change, "orgUnitPath": unit, "externalIds": ids}

    async def _set_password(self, address: str, password: str, force_change: bool) -> None:
        change = {"password": password, "changePasswordAtNextLogin": force_change, "suspended": False}
        status, body = await self._call("PATCH", self._user(address), address, change)
        if status == 404:
            raise ProvisionError(f"Không có tài khoản {address} trên Google Workspace.", permanent=True)
        if status != 200:
            raise refusal(address, status, *_error(body))

    async def _deleted_users(self, address: str) -> dict[str, DirectoryEntry]:
        # users.list ignores `query` with showDeleted=true: the deleted users are paged through and matched here.
        async with self._deleted_lock:
            if self._deleted is not None and self.clock.now() - self._deleted_at < _DELETED_TTL:
                return self._deleted
            found: dict[str, DirectoryEntry] = {}
            page = ""
            while True:
                params = {"customer": self.config.customer, "showDeleted": "true", "maxResults": "500"}
                if page:
                    params["pageToken"] = page
                status, body = await self._call("GET", USERS, address, params=params)
                if status != 200:
                    raise refusal(address, status, *_error(body))
                for user in body.get("users") or []:
                    entry = _entry(user, deleted=True)
                    found[entry.address] = entry
                page = body.get("nextPageToken") or ""
                if not page:
                    break
            self._deleted, self._deleted_at = found, self.clock.now()
            return found

    async def _call(self, method: str, path: str, address: str, payload: dict[str, Any] | None = None, *,
                    params: dict[str, str] | None = None, sent: list[bool] | None = None) -> tuple[int, Any]:
        """One API call with a bearer token, retried on throttling, 5xx and broken connections.

        Returns (status, JSON body) of any other answer for the caller to judge.
        """
        delay = self.config.backoff_initial_seconds
        attempts = max(0, self.config.max_retries) + 1
        refreshed = False
        for attempt in range(1, attempts + 1):
            try:
                token = await self._access_token(address)
                if sent is not None:
                    sent.append(True)
                status, body, retry_after = await self._send(method, path, token, payload, params)
                if status == 401 and not refreshed:
                    # A token revoked or expired early: fetch a new one once, then believe the answer.
                    refreshed = True
                    self._token = ""
                    status, body, retry_after = await self._send(method, path, await self._access_token(address),
                                                                 payload, params)
                reason, message = _error(body)
                if status == 429 or status >= 500 or (status == 403 and reason in _THROTTLED):
                    raise _Retry(f"{status} {reason or message}".strip(), retry_after)
                return status, body
            except (_Retry, aiohttp.ClientError, TimeoutError) as exc:
                hint = exc.retry_after if isinstance(exc, _Retry) else None
                what = str(exc) or type(exc).__name__
                wait = max(hint or 0.0, min(delay, _BACKOFF_MAX) * (1 + random.random()))
                if attempt == attempts:
                    raise ProvisionError(f"Google Workspace tạm thời không xử lý được {address} ({what}) sau "
                                         f"{attempts} lần thử.", retry_after=max(hint or 0.0, delay)) from None
                log.warning("google: %s %s -> %s (attempt %d of %d), retrying in %.2f s",
                            method, path, what, attempt, attempts, wait)
                await self._sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, token: str, payload: dict[str, Any] | None,
                    params: dict[str, str] | None) -> tuple[int, Any, float | None]:
        session = self._http()
        headers = {"Authorization": f"Bearer {token}"}
        async with session.request(method, self._api + path, json=payload, params=params, headers=headers) as resp:
            text = await resp.text()
            retry_after = resp.headers.get("Retry-After", "")
            try:
                body = json.loads(text) if text else {}
            except ValueError:
                body = {"error": {"code": resp.status, "message": text[:200]}}
            return resp.status, body, float(retry_after) if retry_after.isdigit() else None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    # -- OAuth 2.0 JWT bearer flow --------------------------------------------------------------------

    async def _access_token(self, address: str) -> str:
        async with self._token_lock:  # one token fetch for all the rows of a bulk run that need one
            if self._token and self.clock.now() < self._token_expiry - _TOKEN_MARGIN:
                return self._token
            now = self.clock.now()
            claims = {"iss": self.account.client_email, "sub": self.config.admin_subject, "scope": SCOPE,
                      "aud": self._token_url, "iat": int(now.timestamp()),
                      "exp": int((now + timedelta(hours=1)).timestamp())}
            headers = {"kid": self.account.private_key_id} if self.account.private_key_id else None
            assertion = jwt.encode(claims, self.account.private_key, algorithm="RS256", headers=headers)
            form = {"grant_type": GRANT, "assertion": assertion}
            async with self._http().post(self._token_url, data=form) as resp:
                text = await resp.text()
                status = resp.status
            try:
                body = json.loads(text)
            except ValueError:
                body = {}
            if status >= 500 or status == 429:
                raise _Retry(f"token {status}")
            if status != 200 or not body.get("access_token"):
                error = f"{body.get('error', status)}: {body.get('error_description', '')}".strip(": ")
                raise ProvisionError(
                    f"Google không cấp quyền truy cập cho tài khoản dịch vụ {self.account.client_email} "
                    f"(thay mặt {self.config.admin_subject}) khi xử lý {address}: {error}.", permanent=True)
            self._token = str(body["access_token"])
            self._token_expiry = now + timedelta(seconds=float(body.get("expires_in", 3600)))
            return self._token


def build(settings: Settings, clock: Clock) -> GoogleProvisioner:
    """The Google Workspace back end of `[provisioning.google]`."""
    config = settings.provisioning.google
    if not config.admin_subject:
        raise ConfigError("[provisioning.google] thiếu admin_subject (quản trị viên mà tài khoản dịch vụ thay mặt).",
                          code="config_google")
    source = settings.secret(config.credentials_env)
    if not source:
        raise ConfigError(f"Biến môi trường {config.credentials_env} (khoá tài khoản dịch vụ Google) chưa có "
                          "giá trị.", code="config_google")
    return GoogleProvisioner(config, ServiceAccount.parse(source), clock)
