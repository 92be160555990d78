"""A fake Google Workspace (OAuth token endpoint + Admin SDK Directory users) on 127.0.0.1, and its fixture.

It generates a service account of its own and verifies the RS256 JWT assertion against that key (kid, iss,
sub, scope, aud, iat/exp), issues bearer tokens that expire by the injected clock, and answers the users
endpoints with Google's validation and error shapes: 8-100 ASCII passwords, known domains and org units,
required names, 409 duplicates, soft delete with an undelete window (deleted users listed only with
showDeleted, which ignores `query` as the real API does), a per-window request quota answering 403
userRateLimitExceeded, and one-shot 5xx. Tests inspect `users` and `calls`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edudesk.core.ports import Clock, SystemClock
from tests.fakes.server import FakeServer

SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USERS = "/admin/directory/v1/users"
CUSTOMER_ID = "C03az79cb"
FIELDS = {"primaryEmail", "name", "password", "hashFunction", "changePasswordAtNextLogin", "orgUnitPath",
          "externalIds", "suspended", "recoveryEmail", "recoveryPhone", "includeInGlobalAddressList"}
ID_TYPES = {"account", "custom", "customer", "login_id", "network", "organization"}


@cache
def _key() -> rsa.RSAPrivateKey:
    # One key per test session: generating RSA-2048 costs tens of milliseconds.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class GoogleError(Exception):
    """An answer in Google's error shape."""

    def __init__(self, status: int, message: str, reason: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.domain = status, message, reason, domain

    def response(self) -> web.Response:
        """{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}."""
        error = {"code": self.status, "message": self.message,
                 "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}]}
        return web.json_response({"error": error}, status=self.status)


@dataclass
class Call:
    """One request the fake received (the body as sent, passwords included: tests check the wire)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class FakeUser:
    """A user as the fake keeps it; `password` is the plain text the API was given."""

    id: str
    primary_email: str
    given_name: str
    family_name: str
    password: str
    org_unit: str
    created: datetime
    change_password: bool = False
    suspended: bool = False
    external_ids: list[dict[str, str]] = field(default_factory=list)
    deleted_at: datetime | None = None

    def resource(self) -> dict[str, Any]:
        """The users resource Google answers with (never the password)."""
        body: dict[str, Any] = {
            "kind": "admin#directory#user", "id": self.id, "etag": f'"{secrets.token_hex(8)}"',
            "primaryEmail": self.primary_email, "isAdmin": False, "customerId": CUSTOMER_ID,
            "name": {"givenName": self.given_name, "familyName": self.family_name,
                     "fullName": f"{self.given_name} {self.family_name}"},
            "suspended": self.suspended, "changePasswordAtNextLogin": self.change_password,
            "orgUnitPath": self.org_unit, "creationTime": self.created.isoformat().replace("+00:00", ".000Z"),
            "externalIds": list(self.external_ids)}
        if self.deleted_at is not None:
            body["deletionTime"] = self.deleted_at.isoformat().replace("+00:00", ".000Z")
        return body


class FakeGoogleDirectory(FakeServer):
    """The fake Workspace: one customer, its domains and org units, one service account allowed to act."""

    def __init__(self, *, domains: tuple[str, ...] = ("school.test",), org_units: tuple[str, ...] = (
            "/", "/Staff", "/Students"), admins: tuple[str, ...] = ("admin@school.test",),
            clock: Clock | None = None, quota: tuple[int, float] | None = None, token_seconds: int = 3599,
            undelete_days: float = 20.0) -> None:
        self.domains = {d.lower() for d in domains}
        self.org_units = set(org_units)
        self.admins = {a.lower() for a in admins}
        self.clock = clock or SystemClock()
        self.quota = quota  # (requests, window seconds) for the Directory API; None = unlimited
        self.token_seconds = token_seconds
        self.undelete_window = timedelta(days=undelete_days)
        self.client_email = "edudesk@edudesk-test.iam.gserviceaccount.com"
        self.key_id = secrets.token_hex(20)
        self.users: dict[str, FakeUser] = {}  # by id
        self.calls: list[Call] = []
        self.token_requests = 0
        self._tokens: dict[str, tuple[datetime, str, str]] = {}  # token -> (expiry, subject, scope)
        self._window: tuple[datetime, int] | None = None
        self._throttle: list[str] = []
        self._failures: list[int] = []
        self._lose = 0

    # -- server ----------------------------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint (token_uri of the service-account file)."""
        return f"{self.url}/token"

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_post("/token", self._token)
        app.router.add_route("*", USERS, self._users)
        app.router.add_route("*", USERS + "/{key}", self._user)

    # -- the service account ---------------------------------------------------------------------------

    def service_account_info(self, **overrides: str) -> dict[str, str]:
        """A service-account key file's content whose token_uri points at this fake."""
        pem = _key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()
        info = {"type": "service_account", "project_id": "edudesk-test", "private_key_id": self.key_id,
                "private_key": pem, "client_email": self.client_email, "client_id": "1234567890",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_uri}
        info.update(overrides)
        return info

    def write_service_account(self, path: Path, **overrides: str) -> Path:
        """Write the key file (as downloaded from the Cloud console) to `path`."""
        path.write_text(json.dumps(self.service_account_info(**overrides), indent=2), encoding="utf-8")
        return path

    # -- injection and inspection ----------------------------------------------------------------------

    def throttle_next(self, count: int, reason: str = "userRateLimitExceeded") -> None:
        """Answer the next `count` API calls with 403 `reason` (quota exhausted for a moment)."""
        self._throttle += [reason] * count

    def fail_next(self, status: int = 503, count: int = 1) -> None:
        """Answer the next `count` API calls with a 5xx (backendError)."""
        self._failures += [status] * count

    def lose_next(self, count: int = 1) -> None:
        """Carry out the next `count` API calls but answer 503, as if the answer was lost on the way."""
        self._lose += count

    def revoke_tokens(self) -> None:
        """Forget every issued token (the next call with one gets 401 authError)."""
        self._tokens.clear()

    def add_user(self, address: str, password: str = "Outside-123", **values: Any) -> FakeUser:
        """A user made outside edudesk (by the school's admin console)."""
        user = FakeUser(id=str(10**20 + secrets.randbelow(10**20)), primary_email=address.lower(),
                        given_name=values.pop("given_name", "Khác"), family_name=values.pop("family_name", "Người"),
                        password=password, org_unit=values.pop("org_unit", "/"), created=self.clock.now(), **values)
        self.users[user.id] = user
        return user

    def user(self, address: str) -> FakeUser | None:
        """The live user under this address."""
        return next((u for u in self.users.values() if u.primary_email == address.lower() and not u.deleted_at),
                    None)

    def signs_in(self, address: str, password: str) -> bool:
        """Whether this address could sign in with this password (live, not suspended, the password matches)."""
        user = self.user(address)
        return user is not None and not user.suspended and user.password == password

    def deleted(self, address: str) -> FakeUser | None:
        """A deleted user under this address still in the undelete window."""
        self._purge()
        return next((u for u in self.users.values() if u.primary_email == address.lower() and u.deleted_at), None)

    def api_calls(self, method: str = "") -> list[Call]:
        """Directory API calls (token requests excluded), optionally of one method."""
        return [c for c in self.calls if c.path.startswith(USERS) and (not method or c.method == method)]

    # -- OAuth -----------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != GRANT:
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, _key().public_key(), algorithms=["RS256"], audience=self.token_uri,
                                options={"verify_exp": False, "verify_iat": False,
                                         "require": ["iss", "scope", "aud", "iat", "exp"]})
        except jwt.InvalidAudienceError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        except jwt.PyJWTError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if header.get("kid") not in (None, self.key_id) or claims["iss"] != self.client_email:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        now = self.clock.now().timestamp()
        iat, exp = int(claims["iat"]), int(claims["exp"])
        if not (iat - 300 <= now < exp) or exp - iat > 3600:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) "
                                "and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
        subject = str(claims.get("sub", "")).lower()
        if subject.rpartition("@")[2] not in self.domains:
            return _oauth_error(400, "invalid_grant", "Invalid email or User ID")
        if SCOPE not in str(claims["scope"]).split():
            return _oauth_error(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using "
                                "this method, or client not authorized for any of the scopes requested.")
        token = "ya29." + secrets.token_urlsafe(32)
        self._tokens[token] = (self.clock.now() + timedelta(seconds=self.token_seconds), subject, claims["scope"])
        return web.json_response({"access_token": token, "expires_in": self.token_seconds, "token_type": "Bearer"})

    def _authorise(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        held = self._tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if held is None or held[0] <= self.clock.now():
            raise GoogleError(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                              "token, login cookie or other valid authentication credential.", "authError")
        if held[1] not in self.admins:
            raise GoogleError(403, "Not Authorized to access this resource/api", "forbidden")

    def _meter(self) -> None:
        if self._failures:
            raise GoogleError(self._failures.pop(0), "Backend Error", "backendError")
        if self._throttle:
            reason = self._throttle.pop(0)
            raise GoogleError(403, "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per "
                              "user'.", reason, domain="usageLimits")
        if self.quota is None:
            return
        limit, seconds = self.quota
        now = self.clock.now()
        if self._window is None or now - self._window[0] >= timedelta(seconds=seconds):
            self._window = (now, 0)
        if self._window[1] >= limit:
            raise GoogleError(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")
        self._window = (self._window[0], self._window[1] + 1)

    # -- users -----------------------------------------------------------------------------------------

    async def _users(self, request: web.Request) -> web.Response:
        return await self._serve(request, "")

    async def _user(self, request: web.Request) -> web.Response:
        return await self._serve(request, request.match_info["key"])

    async def _serve(self, request: web.Request, key: str) -> web.Response:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = "<not json>"
        call = Call(request.method, request.path, dict(request.query), body)
        self.calls.append(call)
        try:
            self._authorise(request)
            self._meter()
            self._purge()
            if body == "<not json>" or (body is not None and not isinstance(body, dict)):
                raise GoogleError(400, "Invalid JSON payload received.", "parseError")
            response = self._route(request.method, key, dict(request.query), body or {})
            if self._lose:
                self._lose -= 1
                response = GoogleError(503, "Backend Error", "backendError").response()
        except GoogleError as exc:
            response = exc.response()
        call.status = response.status
        return response

    def _route(self, method: str, key: str, query: dict[str, str], body: dict[str, Any]) -> web.Response:
        if not key and method == "POST":
            return web.json_response(self._insert(body).resource())
        if not key and method == "GET":
            return web.json_response(self._list(query))
        user = self._find(key)
        if method == "GET":
            return web.json_response(user.resource())
        if method in ("PATCH", "PUT"):
            self._update(user, body)
            return web.json_response(user.resource())
        if method == "DELETE":
            user.deleted_at = self.clock.now()
            return web.Response(status=204)
        raise GoogleError(405, "Method Not Allowed", "httpMethodNotAllowed")

    def _find(self, key: str) -> FakeUser:
        key = key.lower()
        user = self.users.get(key) or self.user(key)
        if user is None or user.deleted_at is not None:
            raise GoogleError(404, "Resource Not Found: userKey", "notFound")
        return user

    def _insert(self, body: dict[str, Any]) -> FakeUser:
        self._check_fields(body)
        address = str(body.get("primaryEmail", "")).lower()
        local, _, domain = address.partition("@")
        if not local or not domain:
            raise GoogleError(400, "Invalid Input: primary_user_email", "invalid")
        if domain not in self.domains:
            raise GoogleError(400, "Domain not found.", "notFound")
        name = body.get("name") or {}
        for part in ("givenName", "familyName"):
            if not str(name.get(part, "")).strip() or len(str(name[part])) > 60:
                raise GoogleError(400, f"Invalid Given/Family Name: {part[0].upper() + part[1:]}", "invalid")
        if "password" not in body:
            raise GoogleError(400, "Invalid Password", "invalid")
        if self.user(address) is not None:
            raise GoogleError(409, "Entity already exists.", "duplicate")
        user = self.add_user(address, given_name=name["givenName"], family_name=name["familyName"],
                             org_unit=body.get("orgUnitPath") or "/")
        self._update(user, body)
        return user

    def _check_fields(self, body: dict[str, Any]) -> None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise GoogleError(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
                              "invalid")
        if "password" in body:
            password = body["password"]
            if not isinstance(password, str) or not 8 <= len(password) <= 100 or not password.isascii():
                raise GoogleError(400, "Invalid Password", "invalid")
        if "orgUnitPath" in body and body["orgUnitPath"] not in self.org_units:
            raise GoogleError(400, "Invalid Input: INVALID_OU_ID", "invalid")
        for item in body.get("externalIds") or []:
            if item.get("type") not in ID_TYPES or (item["type"] == "custom" and not item.get("customType")):
                raise GoogleError(400, "Invalid Input: externalIds", "invalid")

    def _update(self, user: FakeUser, body: dict[str, Any]) -> None:
        self._check_fields(body)
        if "password" in body:
            user.password = body["password"]
        if "changePasswordAtNextLogin" in body:
            user.change_password = bool(body["changePasswordAtNextLogin"])
        if "suspended" in body:
            user.suspended = bool(body["suspended"])
        if "orgUnitPath" in body:
            user.org_unit = body["orgUnitPath"]
        if "externalIds" in body:
            user.external_ids = [dict(i) for i in body["externalIds"] or []]  # a PATCH replaces the whole list
        name = body.get("name") or {}
        user.given_name = name.get("givenName", user.given_name)
        user.family_name = name.get("familyName", user.family_name)

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("customer") not in ("my_customer", CUSTOMER_ID) and query.get("domain") not in self.domains:
            raise GoogleError(400, "Bad Request", "badRequest")
        size = int(query.get("maxResults", "100"))
        if not 1 <= size <= 500:
            raise GoogleError(400, "Invalid Input: maxResults", "invalid")
        deleted = query.get("showDeleted") == "true"
        users = sorted((u for u in self.users.values() if bool(u.deleted_at) == deleted), key=lambda u: u.id)
        if query.get("domain"):
            users = [u for u in users if u.primary_email.endswith("@" + query["domain"].lower())]
        if not deleted and query.get("query", "").startswith("email:"):
            wanted = query["query"].removeprefix("email:").strip("'\"").lower()
            users = [u for u in users if u.primary_email == wanted]
        start = int(query.get("pageToken") or 0)
        page: dict[str, Any] = {"kind": "admin#directory#users", "etag": '"list"',
                                "users": [u.resource() for u in users[start:start + size]]}
        if start + size < len(users):
            page["nextPageToken"] = str(start + size)
        return page

    def _purge(self) -> None:
        limit = self.clock.now() - self.undelete_window
        for user_id in [i for i, u in self.users.items() if u.deleted_at and u.deleted_at < limit]:
            del self.users[user_id]


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


@pytest.fixture(name="fake_google")
async def fake_google_fixture() -> AsyncIterator[FakeGoogleDirectory]:
    """A started fake Workspace for school.test with /Staff and /Students, on the real clock."""
    async with FakeGoogleDirectory() as fake:
        yield fake
