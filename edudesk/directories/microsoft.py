"""Microsoft 365 (Entra ID) users through Microsoft Graph v1.0, signed in as an app (client credentials).

edudesk's idempotency key goes into onPremisesExtensionAttributes.extensionAttribute1: Graph lets an app write
the fifteen extension attributes on a cloud-only user, they hold 1,024 characters, come back with $select and
mean nothing to Entra itself. employeeType was the other candidate, but it is a business field that schools
fill with "Student"/"Teacher" and that dynamic groups and lifecycle workflows read. The person ID goes into
employeeId (at most 16 characters; a longer one goes into extensionAttribute2).

A deleted user stays 30 days in /directory/deletedItems under a renamed UPN ("{object id}{upn}"), so Graph
lets anyone create a new user with the old address meanwhile; edudesk looks there first and calls the address
taken, so a restore never collides with a newcomer's account.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp

from edudesk.core.config import MicrosoftBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError
from edudesk.core.text import strip_diacritics

log = logging.getLogger(__name__)

SCOPE = "https://graph.microsoft.com/.default"
KEY_ATTRIBUTE = "extensionAttribute1"
PERSON_ATTRIBUTE = "extensionAttribute2"
EMPLOYEE_ID_MAX = 16
SELECT = "id,userPrincipalName,accountEnabled,displayName,employeeId,onPremisesExtensionAttributes"
DELETED = "/v1.0/directory/deletedItems/microsoft.graph.user"
PERMISSIONS = "User.ReadWrite.All, User-PasswordProfile.ReadWrite.All"
_NOT_IN_NICKNAME = re.compile(r"[^A-Za-z0-9._-]")  # Exchange refuses spaces and @()\[]";:<>, there
_TOKEN_MARGIN = 300.0  # seconds before expiry a token is renewed (a request in flight must not outlive it)
_BACKOFF_MAX = 60.0
Reply = tuple[int, dict[str, Any]]


class _Transient(Exception):
    """Worth asking again: throttled, 5xx, or the connection failed; `wait` is the server's Retry-After."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def graph_upn(address: str) -> str:
    """The userPrincipalName for an address: Entra refuses accents there, so they are stripped."""
    return strip_diacritics(address.strip()).lower()


def mail_nickname(upn: str) -> str:
    """The mailNickname (Exchange alias): the UPN's local part, ASCII letters, digits, dot, dash, underscore."""
    return _NOT_IN_NICKNAME.sub("", upn.split("@", 1)[0])[:64] or "user"


def _error(body: dict[str, Any]) -> dict[str, Any]:
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def is_conflict(body: dict[str, Any]) -> bool:
    """Whether Graph answered "duplicate": 400 Request_BadRequest with a details entry ObjectConflict."""
    error = _error(body)
    details = error.get("details")
    if not isinstance(details, list):
        details = []
    return error.get("code") == "ObjectConflict" or any(
        isinstance(item, dict) and item.get("code") == "ObjectConflict" for item in details)


def refusal(address: str, status: int, body: dict[str, Any]) -> ProvisionError:
    """The permanent error for a Graph answer a retry cannot fix, in Vietnamese, naming the address."""
    error = _error(body)
    code, message = str(error.get("code") or f"HTTP {status}"), str(error.get("message") or "")[:300]
    what = f"{code}: {message}" if message else code
    lowered = message.lower()
    if "password complexity" in lowered:
        text = f"Microsoft 365 từ chối mật khẩu của {address}: không đạt yêu cầu độ phức tạp của Entra ID ({message})."
    elif status == 403 or code == "Authorization_RequestDenied":
        text = (f"Ứng dụng edudesk không đủ quyền trên Microsoft 365 để thay đổi {address} (cần quyền ứng dụng "
                f"{PERMISSIONS}): {what}.")
    elif status == 404:
        text = f"Không có tài khoản {address} trên Microsoft 365."
    elif "verified domain" in lowered:
        text = f"Tên miền của {address} chưa được xác minh trong tenant Microsoft 365: {what}."
    elif status == 401:
        text = f"Microsoft Graph không nhận mã truy cập của edudesk khi xử lý {address}: {what}."
    else:
        text = f"Microsoft 365 không nhận yêu cầu cho {address}: {what}."
    return ProvisionError(text, permanent=True)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # the HTTP-date form: Graph does not send it; fall back to our own backoff
        return None


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    if resp.status == 204:
        return {}
    try:
        body = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


class GraphProvisioner:
    """Users in an Entra ID tenant; every call retries throttling and 5xx inside, honouring Retry-After."""

    name = "microsoft"

    def __init__(self, config: MicrosoftBackendSettings, secret: str, clock: Clock, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, backoff: float = 1.0,
                 timeout: float = 30.0) -> None:
        self.config = config
        self.clock = clock
        self._secret = secret
        self._sleep = sleep
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._graph = config.graph_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._token = ""
        self._token_until: datetime | None = None
        self._token_lock = asyncio.Lock()

    # -- the port -------------------------------------------------------------------------------------

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The user under this UPN, or the soft-deleted one that still holds it (state "deleted")."""
        upn = graph_upn(address)
        status, body = await self._call("GET", self._user_path(upn), address, params={"$select": SELECT})
        if status == 200:
            return self._entry(address, body, deleted=False)
        if status != 404:
            raise refusal(address, status, body)
        # endswith on the renamed UPN is an "advanced query": Graph wants $count and ConsistencyLevel.
        quoted = upn.replace("'", "''")
        params: dict[str, str] | None = {"$filter": f"endswith(userPrincipalName,'{quoted}')", "$count": "true",
                                         "$select": SELECT, "$top": "100"}
        url = DELETED
        while url:
            status, body = await self._call("GET", url, address, params=params,
                                            headers={"ConsistencyLevel": "eventual"})
            if status != 200:
                raise refusal(address, status, body)
            for item in body.get("value") or []:
                if isinstance(item, dict) and self._holds(item, upn):
                    return self._entry(address, item, deleted=True)
            url, params = str(body.get("@odata.nextLink") or ""), None
        return None

    async def create(self, spec: AccountSpec, password: str) -> str:
        """POST the user; link the one of the same key or person; AddressTaken for anyone else's."""
        found = await self.lookup(spec.address)
        if found is None:
            status, body = await self._call("POST", "/v1.0/users", spec.address, json=self._new_user(spec, password))
            if status == 201:
                return "created"
            if not is_conflict(body):
                raise refusal(spec.address, status, body)
            # A race with another run, or the address is someone's alias (proxyAddresses) and not a UPN.
            found = await self.lookup(spec.address)
            if found is None:
                raise AddressTaken(spec.address, "Microsoft 365 báo trùng với một đối tượng khác (bí danh thư)")
        if found.state == "deleted":
            raise AddressTaken(spec.address, "tài khoản đã xoá còn nằm trong thùng rác Microsoft 365 (30 ngày)")
        if not found.owned_by(spec.key, spec.person_id):
            owner = f" ({found.person_id})" if found.person_id else ""
            raise AddressTaken(spec.address, f"thuộc về người khác trên Microsoft 365{owner}")
        await self._set_password(spec.address, password, spec.force_change, self._missing_ids(found, spec))
        return "linked"

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """PATCH passwordProfile and accountEnabled true; permanent when there is no such user."""
        await self._set_password(address, password, force_change, {})

    async def suspend(self, address: str) -> str:
        """PATCH accountEnabled false (sign-in blocked, mailbox and licences kept)."""
        status, body = await self._call("PATCH", self._user_path(graph_upn(address)), address,
                                        json={"accountEnabled": False})
        if status == 404:
            return "absent"
        if status != 204:
            raise refusal(address, status, body)
        return "suspended"

    async def restore(self, address: str) -> str:
        """PATCH accountEnabled true (sign-in allowed again); "absent" when there is no such user."""
        status, body = await self._call("PATCH", self._user_path(graph_upn(address)), address,
                                        json={"accountEnabled": True})
        if status == 404:
            return "absent"
        if status != 204:
            raise refusal(address, status, body)
        return "restored"

    async def delete(self, address: str) -> str:
        """DELETE the user: Entra keeps it 30 days in deletedItems (lookup then says "deleted")."""
        status, body = await self._call("DELETE", self._user_path(graph_upn(address)), address)
        if status == 404:
            return "absent"
        if status != 204:
            raise refusal(address, status, body)
        return "deleted"

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- users ------------------------------------------------------------------------------------------

    def _user_path(self, upn: str) -> str:
        return f"/v1.0/users/{quote(upn, safe='@')}"

    def _holds(self, item: dict[str, Any], upn: str) -> bool:
        # endswith also matches "tuan.nguyen" for "an.nguyen": only the object's own id may come before it.
        name, ident = str(item.get("userPrincipalName") or "").lower(), str(item.get("id") or "").lower()
        return name in (upn, ident.replace("-", "") + upn, ident + upn)

    def _entry(self, address: str, body: dict[str, Any], *, deleted: bool) -> DirectoryEntry:
        extension = body.get("onPremisesExtensionAttributes") or {}
        state = "deleted" if deleted else "active" if body.get("accountEnabled") else "suspended"
        return DirectoryEntry(address=address, state=state, key=str(extension.get(KEY_ATTRIBUTE) or ""),
                              person_id=str(body.get("employeeId") or extension.get(PERSON_ATTRIBUTE) or ""),
                              backend_id=str(body.get("id") or ""), full_name=str(body.get("displayName") or ""))

    def _new_user(self, spec: AccountSpec, password: str) -> dict[str, Any]:
        upn = graph_upn(spec.address)
        user: dict[str, Any] = {
            "accountEnabled": True, "displayName": spec.full_name or upn.split("@", 1)[0],
            "mailNickname": mail_nickname(upn), "userPrincipalName": upn, "usageLocation": self.config.usage_location,
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": spec.force_change}}
        if spec.given_name:
            user["givenName"] = spec.given_name
        if spec.family_name:
            user["surname"] = spec.family_name
        user.update(self._ids(spec.key, spec.person_id))
        return user

    def _ids(self, key: str, person_id: str) -> dict[str, Any]:
        extension: dict[str, str] = {KEY_ATTRIBUTE: key} if key else {}
        ids: dict[str, Any] = {}
        if person_id and len(person_id) <= EMPLOYEE_ID_MAX:
            ids["employeeId"] = person_id
        elif person_id:
            extension[PERSON_ATTRIBUTE] = person_id
        if extension:
            ids["onPremisesExtensionAttributes"] = extension
        return ids

    def _missing_ids(self, found: DirectoryEntry, spec: AccountSpec) -> dict[str, Any]:
        # Linking by person ID adds the key (and the other way round) so the next run finds it by either.
        return self._ids("" if found.key else spec.key, "" if found.person_id else spec.person_id)

    async def _set_password(self, address: str, password: str, force_change: bool, extra: dict[str, Any]) -> None:
        change = {"accountEnabled": True, **extra,
                  "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": force_change}}
        status, body = await self._call("PATCH", self._user_path(graph_upn(address)), address, json=change)
        if status != 204:
            raise refusal(address, status, body)

    # -- HTTP, token and retries ------------------------------------------------------------------------

    async def _call(self, method: str, path: str, address: str, *, params: dict[str, str] | None = None,
                    json: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Reply:
        refreshed, delay, attempt = False, self._backoff, 0
        while True:
            try:
                token = await self._bearer(address)
                status, body, wait = await self._send(method, path, token, params, json, headers)
                if status == 401 and _error(body).get("code") == "InvalidAuthenticationToken" and not refreshed:
                    refreshed = True  # revoked or expired early: one new token, then the 401 stands
                    self._forget(token)
                    continue
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status} {_error(body).get('code') or ''}".strip(), wait)
                return status, body
            except _Transient as exc:
                attempt += 1
                pause = exc.wait if exc.wait is not None else min(delay, _BACKOFF_MAX) * (1 + random.random() / 2)
                if attempt > self.config.max_retries:
                    raise ProvisionError(f"Microsoft Graph chưa xử lý được {address} ({exc.reason}) sau "
                                         f"{attempt} lần thử; edudesk sẽ thử lại sau.", retry_after=pause) from None
                log.warning("microsoft: %s on %s %s for %s (attempt %d), retrying in %.1f s", exc.reason, method,
                            path.split("?", 1)[0], address, attempt, pause)
                await self._sleep(pause)
                delay *= 2

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _send(self, method: str, path: str, token: str, params: dict[str, str] | None,
                    json: dict[str, Any] | None, headers: dict[str, str] | None) -> tuple[int, dict[str, Any],
                                                                                       float | None]:
        url = path if path.startswith(self._graph + "/") else self._graph + path
        if not url.startswith(self._graph + "/"):  # a nextLink elsewhere must not receive our token
            raise ProvisionError(f"Microsoft Graph trả về liên kết lạ: {url[:100]}.", permanent=True)
        try:
            async with self._client().request(method, url, params=params, json=json,
                                              headers={"Authorization": f"Bearer {token}", **(headers or {})}) as resp:
                return resp.status, await _json(resp), _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from None

    async def _bearer(self, address: str) -> str:
        async with self._token_lock:  # eight rows at once must not fetch eight tokens
            if self._token and self._token_until is not None and self.clock.now() < self._token_until:
                return self._token
            self._token, lifetime = await self._fetch_token(address)
            self._token_until = self.clock.now() + timedelta(seconds=lifetime - min(_TOKEN_MARGIN, lifetime / 10))
            return self._token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_until = "", None

    async def _fetch_token(self, address: str) -> tuple[str, float]:
        config = self.config
        url = f"{config.login_url.rstrip('/')}/{quote(config.tenant_id, safe='')}/oauth2/v2.0/token"
        form = {"client_id": config.client_id, "client_secret": self._secret, "scope": SCOPE,
                "grant_type": "client_credentials"}
        try:
            async with self._client().post(url, data=form) as resp:
                status, body = resp.status, await _json(resp)
                wait = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(f"token: {type(exc).__name__}") from None
        if status == 200 and body.get("access_token"):
            return str(body["access_token"]), float(body.get("expires_in") or 3599)
        if status == 429 or status >= 500:
            raise _Transient(f"token: HTTP {status}", wait)
        # "AADSTS7000215: Invalid client secret provided. ... Trace ID: ..." -> the code and its first sentence.
        reason = str(body.get("error_description") or body.get("error") or f"HTTP {status}").split(". ", 1)[0]
        raise ProvisionError(f"Microsoft Entra từ chối đăng nhập của ứng dụng edudesk (tenant_id, client_id hoặc "
                             f"client secret trong biến {config.client_secret_env}) khi xử lý {address}: "
                             f"{reason[:200]}.", permanent=True)


def build(settings: Settings, clock: Clock) -> GraphProvisioner:
    """The Microsoft 365 back end of `[provisioning.microsoft]`; the client secret comes from the environment."""
    config = settings.provisioning.microsoft
    missing = [name for name in ("tenant_id", "client_id") if not getattr(config, name)]
    if missing:
        raise ConfigError(f"[provisioning.microsoft] thiếu {', '.join(missing)} (tenant và ứng dụng Entra ID).",
                          code="config_microsoft")
    if not re.fullmatch(r"[A-Za-z]{2}", config.usage_location):
        raise ConfigError(f"[provisioning.microsoft] usage_location '{config.usage_location}' phải là mã nước "
                          "hai chữ cái (VN).", code="config_microsoft")
    secret = settings.secret(config.client_secret_env)
    if not secret:
        raise ConfigError(f"Biến môi trường {config.client_secret_env} (client secret của ứng dụng Microsoft "
                          "Graph) chưa có giá trị.", code="config_microsoft")
    return GraphProvisioner(config, secret, clock, backoff=config.backoff_initial_seconds)
