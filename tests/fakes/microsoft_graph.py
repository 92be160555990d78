"""A fake Microsoft identity platform and Microsoft Graph (users, deletedItems) on 127.0.0.1, and `fake_graph`.

It speaks the real shapes: the v2.0 token endpoint with AADSTS errors, Graph errors as
{"error": {"code", "message", "details", "innerError"}}, and it enforces what Entra enforces on a user: the
required properties, a UPN on a verified domain in ASCII, a mailNickname without spaces, the password policy
(8-256 characters, three of four classes), employeeId up to 16 characters, a two-letter usageLocation,
ObjectConflict (400, not 409) on a live UPN, and a 30-day soft delete that renames the UPN to "{id}{upn}" —
so, as in Entra, a new user may take a soft-deleted user's UPN. Throttling answers 429 with Retry-After.
Time comes from `now` (seconds), so a test can move it instead of sleeping.
"""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.server import FakeServer

TENANT = "7d1f3c2a-5b6e-4f70-8a91-0b2c3d4e5f60"
CLIENT_ID = "0f9e8d7c-6b5a-4938-a716-151413121110"
CLIENT_SECRET = "Qx8~edudesk.test-secret_value"
SCOPE = "https://graph.microsoft.com/.default"
PASSWORD_ROLE = "User-PasswordProfile.ReadWrite.All"
PROPERTIES = {"id", "userPrincipalName", "accountEnabled", "displayName", "givenName", "surname", "mail",
              "mailNickname", "usageLocation", "employeeId", "employeeType", "onPremisesExtensionAttributes",
              "passwordProfile", "businessPhones", "jobTitle", "mobilePhone", "officeLocation", "preferredLanguage",
              "department", "createdDateTime", "deletedDateTime"}
READ_ONLY = {"id", "createdDateTime", "deletedDateTime"}
DEFAULT_SELECT = ("businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                  "officeLocation", "preferredLanguage", "surname", "userPrincipalName")
REQUIRED = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile")
LIMITS = {"displayName": 256, "givenName": 64, "surname": 64, "employeeId": 16, "employeeType": 64,
          "jobTitle": 128, "department": 64}
UPN_LOCAL = re.compile(r"[A-Za-z0-9'._!#^~-]{1,64}")
NICKNAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]{1,64}")
COMPLEXITY = "The specified password does not comply with password complexity requirements. " \
             "Please provide a different password."
ADVANCED = ("Operator 'endsWith' is not supported because the required parameters might be missing. Try adding "
            "$count with a value of true and the ConsistencyLevel header set to eventual.")


class GraphError(Exception):
    """An error answer in Graph's shape."""

    def __init__(self, status: int, code: str, message: str, target: str = "", detail: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.details = [{"code": detail, "message": message, "target": target}] if detail else []

    def response(self) -> web.Response:
        """The JSON answer, with the innerError Graph adds to every error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        error["innerError"] = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                               "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


def bad(message: str, target: str = "", detail: str = "") -> GraphError:
    """400 Request_BadRequest."""
    return GraphError(400, "Request_BadRequest", message, target, detail)


def invalid(prop: str) -> GraphError:
    """Graph's wording for a property with a value it will not take."""
    return bad(f"Invalid value specified for property '{prop}' of resource 'User'.", prop, "InvalidValue")


def complex_enough(password: str) -> bool:
    """Entra ID's cloud policy: 8 to 256 characters, three of lower case, upper case, digits, symbols."""
    classes = (any(c.islower() for c in password), any(c.isupper() for c in password),
               any(c.isdigit() for c in password), any(not c.isalnum() for c in password))
    return 8 <= len(password) <= 256 and sum(classes) >= 3


def aad_error(status: int, error: str, number: int, text: str) -> web.Response:
    """The identity platform's error shape (AADSTS code first in error_description)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return web.json_response({
        "error": error, "error_codes": [number], "timestamp": stamp, "trace_id": trace,
        "correlation_id": correlation, "error_uri": f"https://login.microsoftonline.com/error?code={number}",
        "error_description": f"AADSTS{number}: {text} Trace ID: {trace} Correlation ID: {correlation} "
                             f"Timestamp: {stamp}"}, status=status)


@dataclass
class Recorded:
    """One Graph request as it arrived (body parsed; a test may assert on the wire fields)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class Throttle:
    """A fixed window of `budget` Graph requests per `window` seconds; beyond it 429 + Retry-After."""

    budget: int
    window: float
    retry_after: float | None = None  # None: the seconds left in the window, rounded up as Graph does
    start: float = 0.0
    used: int = 0


@dataclass
class FakeGraph(FakeServer):
    """The fake tenant: users, deleted users, issued tokens; configure faults, then inspect."""

    tenant: str = TENANT
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    domains: tuple[str, ...] = ("school.test",)
    token_lifetime: int = 3599
    now: Callable[[], float] = time.monotonic
    roles: set[str] = field(default_factory=lambda: {"User.ReadWrite.All", PASSWORD_ROLE})
    page_size: int = 100
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # by id; only for signs_in()
    requests: list[Recorded] = field(default_factory=list)
    token_requests: int = 0
    throttled: int = 0
    throttle: Throttle | None = None
    _tokens: dict[str, float] = field(default_factory=dict)
    _faults: list[tuple[int, float | None]] = field(default_factory=list)
    _on_next_create: list[dict[str, Any]] = field(default_factory=list)

    # ---- lifecycle --------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_route("*", "/v1.0/{tail:.*}", self._graph)

    # ---- test controls and inspection ---------------------------------------------------------------------

    def add_user(self, upn: str, *, display_name: str = "Người Khác", employee_id: str = "", key: str = "",
                 enabled: bool = True, password: str = "Khac-Mat-Khau-1") -> dict[str, Any]:
        """A user made outside edudesk (by an administrator in the portal)."""
        user = {"id": str(uuid.uuid4()), "userPrincipalName": upn, "displayName": display_name,
                "accountEnabled": enabled, "mailNickname": upn.split("@")[0], "employeeId": employee_id or None,
                "onPremisesExtensionAttributes": {f"extensionAttribute{i}": None for i in range(1, 16)},
                "createdDateTime": self._stamp()}
        user["onPremisesExtensionAttributes"]["extensionAttribute1"] = key or None
        self.users[user["id"]] = user
        self.passwords[user["id"]] = password
        return user

    def add_user_on_next_create(self, upn: str, **kwargs: Any) -> None:
        """Someone else creates this user just before the next POST /users is handled (a race)."""
        self._on_next_create.append({"upn": upn, **kwargs})

    def soft_delete(self, upn: str) -> dict[str, Any]:
        """Delete a live user as the portal does (into deletedItems for 30 days)."""
        user = self.user(upn)
        assert user is not None, upn
        return self._soft_delete(user)

    def user(self, upn: str) -> dict[str, Any] | None:
        """The live user with this UPN or id."""
        return next((u for u in self.users.values() if u["id"] == upn
                     or u["userPrincipalName"].lower() == upn.lower()), None)

    def signs_in(self, upn: str, password: str) -> bool:
        """Whether this UPN could sign in with this password (enabled, and the password matches)."""
        user = self.user(upn)
        return bool(user and user["accountEnabled"] and self.passwords.get(user["id"]) == password)

    def sent(self, method: str, prefix: str = "/v1.0/users") -> list[Recorded]:
        """The Graph requests of this method whose path starts with `prefix`."""
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (as after a secret rotation or revocation)."""
        self._tokens.clear()

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` Graph requests answer `status` (429, 503, 504) before doing anything."""
        self._faults += [(status, retry_after)] * times

    # ---- identity platform --------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        tenant, secret, scope = request.match_info["tenant"], form.get("client_secret"), form.get("scope")
        refusals = [  # in the order the identity platform checks them
            (tenant != self.tenant, 400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make "
             "sure you have the correct tenant ID and are signing into the correct cloud."),
            (form.get("grant_type") != "client_credentials", 400, "unsupported_grant_type", 70003,
             f"The app requested an unsupported grant type '{form.get('grant_type', '')}'."),
            (form.get("client_id") != self.client_id, 400, "unauthorized_client", 700016, "Application with "
             f"identifier '{form.get('client_id', '')}' was not found in the directory '{tenant}'."),
            (not secret, 401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is "
             "required for the 'client_credentials' grant type."),
            (secret != self.client_secret, 401, "invalid_client", 7000215, "Invalid client secret provided. Ensure "
             "the secret being sent in the request is the client secret value, not the client secret ID, for a "
             f"secret added to app '{self.client_id}'."),
            (scope != SCOPE, 400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. "
             "Client credential flows must have a scope value with /.default suffixed to the resource identifier "
             "(application ID URI)."),
        ]
        for refused, status, error, number, text in refusals:
            if refused:
                return aad_error(status, error, number, text)
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
        self._tokens[token] = self.now() + self.token_lifetime
        return web.json_response({"token_type": "Bearer", "expires_in": self.token_lifetime,
                                  "ext_expires_in": self.token_lifetime, "access_token": token})

    # ---- Graph --------------------------------------------------------------------------------------------

    async def _graph(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return bad("Unable to read JSON request payload. Please ensure Content-Type header is set and "
                           "payload is of valid JSON format.").response()
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        try:
            self._admit(request)
            return await self._route(request, body)
        except GraphError as exc:
            return exc.response()

    def _admit(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if not auth.startswith("Bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge)
        expiry = self._tokens.get(auth[7:])
        if expiry is None or expiry <= self.now():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                             headers=challenge)
        if self._faults:
            status, wait = self._faults.pop(0)
            headers = {"Retry-After": f"{wait:g}"} if wait is not None else {}
            code = {429: "TooManyRequests", 503: "serviceNotAvailable"}.get(status, "UnknownError")
            self.throttled += status == 429
            raise GraphError(status, code, "Too many requests." if status == 429 else "Service unavailable.",
                             headers=headers)
        throttle = self.throttle
        if throttle is not None:
            now = self.now()
            if now - throttle.start >= throttle.window:
                throttle.start, throttle.used = now, 0
            throttle.used += 1
            if throttle.used > throttle.budget:
                self.throttled += 1
                wait = throttle.retry_after if throttle.retry_after is not None else \
                    math.ceil(throttle.start + throttle.window - now)
                raise GraphError(429, "TooManyRequests", "Too many requests.", headers={"Retry-After": f"{wait:g}"})

    async def _route(self, request: web.Request, body: Any) -> web.StreamResponse:
        parts = request.match_info["tail"].split("/")
        method = request.method
        if parts == ["users"] and method == "POST":
            return self._create(body)
        if len(parts) == 2 and parts[0] == "users":
            user = self.user(parts[1])
            if user is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist or one "
                                 "of its queried reference-property objects are not present.")
            if method == "GET":
                return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                                          **self._project(user, request.query.get("$select"))})
            if method == "PATCH":
                self._update(user, body)
                return web.Response(status=204)
            if method == "DELETE":
                self._soft_delete(user)
                return web.Response(status=204)
        if parts == ["directory", "deletedItems", "microsoft.graph.user"] and method == "GET":
            return self._list_deleted(request)
        raise bad(f"Resource not found for the segment '{parts[-1]}'.")

    def _create(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            raise bad("Empty Payload. JSON content expected.")
        while self._on_next_create:
            other = self._on_next_create.pop(0)
            self.add_user(other.pop("upn"), **other)
        for prop in REQUIRED:
            if body.get(prop) in (None, ""):
                raise bad(f"A value is required for property '{prop}' of resource 'User'.", prop, "PropertyRequired")
        if not isinstance(body["passwordProfile"], dict) or not body["passwordProfile"].get("password"):
            raise invalid("passwordProfile")
        user = {"id": str(uuid.uuid4()), "createdDateTime": self._stamp(),
                "onPremisesExtensionAttributes": {f"extensionAttribute{i}": None for i in range(1, 16)}}
        self._update(user, body, creating=True)
        self.users[user["id"]] = user
        return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                                  **self._project(user, None)}, status=201)

    def _update(self, user: dict[str, Any], body: Any, creating: bool = False) -> None:
        if not isinstance(body, dict) or not body:
            raise bad("Empty Payload. JSON content expected.")
        for prop, value in body.items():
            if prop not in PROPERTIES:
                raise bad(f"Property '{prop}' does not exist on type 'microsoft.graph.user'.")
            if prop in READ_ONLY:
                raise bad(f"Property '{prop}' is read-only and cannot be set.")
            self._check(user, prop, value)
        profile = body.get("passwordProfile")
        if profile is not None:
            if not creating and PASSWORD_ROLE not in self.roles:
                raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the "
                                 "operation.")
            if not complex_enough(str(profile.get("password", ""))):
                raise bad(COMPLEXITY)
        for prop, value in body.items():
            if prop == "passwordProfile":
                self.passwords[user["id"]] = str(value["password"])
                user["passwordProfile"] = {"forceChangePasswordNextSignIn":
                                           bool(value.get("forceChangePasswordNextSignIn", False))}
            elif prop == "onPremisesExtensionAttributes":
                user[prop].update(value)
            else:
                user[prop] = value.upper() if prop == "usageLocation" else value

    def _check(self, user: dict[str, Any], prop: str, value: Any) -> None:
        if prop == "accountEnabled" and not isinstance(value, bool):
            raise invalid(prop)
        if prop in LIMITS and value is not None and (not isinstance(value, str) or len(value) > LIMITS[prop]):
            raise invalid(prop)
        if prop == "mailNickname" and not (isinstance(value, str) and NICKNAME.fullmatch(value)):
            raise invalid(prop)
        if prop == "usageLocation" and not (isinstance(value, str) and re.fullmatch(r"[A-Za-z]{2}", value)):
            raise invalid(prop)
        if prop == "passwordProfile" and not (isinstance(value, dict) and isinstance(value.get("password"), str)
                                              and set(value) <= {"password", "forceChangePasswordNextSignIn",
                                                                 "forceChangePasswordNextSignInWithMfa"}):
            raise invalid(prop)
        if prop == "onPremisesExtensionAttributes" and not (
                isinstance(value, dict) and all(k in user[prop] and (v is None or isinstance(v, str) and len(v)
                                                                     <= 1024) for k, v in value.items())):
            raise invalid(prop)
        if prop == "userPrincipalName":
            local, _, domain = str(value).partition("@")
            if not (isinstance(value, str) and UPN_LOCAL.fullmatch(local) and not local.startswith(".")
                    and not local.endswith(".")):
                raise invalid(prop)
            if domain.lower() not in self.domains:
                raise bad("The domain portion of the userPrincipalName property is invalid. You must use one of "
                          "the verified domain names in your organization.", prop, "InvalidValue")
            other = self.user(value)
            if other is not None and other["id"] != user["id"]:
                raise bad("Another object with the same value for property userPrincipalName already exists.",
                          prop, "ObjectConflict")

    def _soft_delete(self, user: dict[str, Any]) -> dict[str, Any]:
        del self.users[user["id"]]
        # Entra renames the UPN of a deleted user, which frees the address for a new user meanwhile.
        user["userPrincipalName"] = user["id"].replace("-", "") + user["userPrincipalName"]
        user["deletedDateTime"] = self._stamp()
        user["accountEnabled"] = False
        self.deleted[user["id"]] = user
        return user

    def _list_deleted(self, request: web.Request) -> web.Response:
        query, advanced = request.query, request.headers.get("ConsistencyLevel") == "eventual"
        items = list(self.deleted.values())
        text = query.get("$filter", "")
        if text:
            match = re.fullmatch(r"(endswith\(userPrincipalName,|userPrincipalName eq )'((?:[^']|'')*)'\)?", text,
                                 re.IGNORECASE)
            if match is None:
                raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
            value = match.group(2).replace("''", "'").lower()
            if match.group(1).lower().startswith("endswith"):
                if not (advanced and query.get("$count") == "true"):
                    raise GraphError(400, "Request_UnsupportedQuery", ADVANCED)
                items = [u for u in items if u["userPrincipalName"].lower().endswith(value)]
            else:
                items = [u for u in items if u["userPrincipalName"].lower() == value]
        top = min(int(query.get("$top", self.page_size)), self.page_size)
        skip = int(query.get("$skiptoken", "0"))
        page: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects"}
        if query.get("$count") == "true":
            page["@odata.count"] = len(items)
        page["value"] = [self._project(u, query.get("$select")) for u in items[skip:skip + top]]
        if skip + top < len(items):
            rest = {k: v for k, v in query.items() if k != "$skiptoken"}
            page["@odata.nextLink"] = str(request.url.with_query({**rest, "$skiptoken": str(skip + top)}))
        return web.json_response(page)

    def _project(self, user: dict[str, Any], select: str | None) -> dict[str, Any]:
        names = [n.strip() for n in select.split(",")] if select else list(DEFAULT_SELECT)
        for name in names:
            if name not in PROPERTIES:
                raise bad(f"Could not find a property named '{name}' on type 'microsoft.graph.user'.")
        # passwordProfile is write-only in Graph: it always reads back as null.
        return {n: None if n == "passwordProfile" else user.get(n, [] if n == "businessPhones" else None)
                for n in names}

    def _stamp(self) -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(name="fake_graph")
async def fake_graph_fixture() -> AsyncIterator[FakeGraph]:
    """A started FakeGraph with one verified domain, school.test, on real time."""
    fake = await FakeGraph().start()
    yield fake
    await fake.stop()
