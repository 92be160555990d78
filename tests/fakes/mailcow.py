"""A fake mailcow API server (aiohttp.web on 127.0.0.1) for the mailbox endpoints edudesk uses, and its fixture.

It follows mailcow-dockerized's json_api.php, inc/sessions.inc.php and inc/functions.mailbox.inc.php:
- X-API-Key: unknown or inactive key -> 401 {"type": "error", "msg": "authentication failed"}; a caller IP
  outside the key's allow-list -> 401 "api access denied for ip …"; a read-only key writing -> 403.
- add/edit/delete answer HTTP 200 with a list of {type, log, msg} (passwords masked as "*" in `log`),
  refusals as type "danger": mailbox_invalid, domain_invalid, object_exists, is_alias, domain_not_found
  (or access_denied, as mailcow 2024+ answers for a domain it does not have), password_complexity,
  password_mismatch, max_mailbox_exceeded, mailbox_quota_exceeded, mailbox_quota_left_exceeded, in
  mailcow's order; edit/delete of a mailbox that does not exist -> access_denied.
- get/mailbox/{address} answers the mailbox details (with "tags" only when it has some), or {}.
Faults (5xx, 429 with Retry-After, dropped connections, lost answers) are injected with `fail_next` and
`drop_next`; passwords are stored as mailcow's {SSHA256} hashes and checked with `check_password`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.server import FakeServer

DEFAULT_KEY = "ABCDEF-123456-TEST-KEY"
_EMAIL = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
_DOMAIN = re.compile(r"^([a-z0-9-]+\.)+[a-z]{2,}$")
MB = 1048576


@dataclass
class ApiKey:
    """One entry of mailcow's `api` table."""

    key: str
    access: str = "rw"
    allow_from: tuple[str, ...] = ("127.0.0.1",)
    skip_ip_check: bool = False
    active: bool = True


@dataclass
class Domain:
    """A mailcow domain with its limits (MB)."""

    name: str
    mailboxes: int = 100
    maxquota: int = 10240
    quota: int = 1024000
    defquota: int = 1024


@dataclass
class Mailbox:
    """A mailbox as mailcow stores it (password as a hash)."""

    username: str
    name: str
    quota_mb: int
    active: int
    password_hash: str
    force_pw_update: str = "0"
    tags: list[str] = field(default_factory=list)


@dataclass
class Policy:
    """mailcow's PASSWD_POLICY (defaults as shipped: 6 characters, letters)."""

    length: int = 6
    chars: bool = True
    special_chars: bool = False
    lowerupper: bool = False
    numbers: bool = False


@dataclass(frozen=True)
class Call:
    """One request as it arrived: method, path after /api/v1/, parsed JSON body, headers."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class _Fault:
    status: int = 0  # 0: drop the connection instead of answering
    retry_after: str | None = None
    after_processing: bool = False  # carry the request out, then lose the answer


def hash_password(password: str) -> str:
    """mailcow's hash_password(): {SSHA256} of sha256(password + salt) + salt."""
    salt = os.urandom(8).hex().encode()
    return "{SSHA256}" + base64.b64encode(hashlib.sha256(password.encode() + salt).digest() + salt).decode()


def _verify(password: str, stored: str) -> bool:
    raw = base64.b64decode(stored.removeprefix("{SSHA256}"))
    digest, salt = raw[:32], raw[32:]
    return hashlib.sha256(password.encode() + salt).digest() == digest


class FakeMailcow(FakeServer):
    """mailcow's mailbox API with domains, mailboxes, aliases, API keys and a password policy."""

    shutdown_timeout = 0.5

    def __init__(self, api_key: str = DEFAULT_KEY, unknown_domain: str = "domain_not_found") -> None:
        self.keys = {api_key: ApiKey(api_key)}
        self.domains: dict[str, Domain] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.aliases: set[str] = set()
        self.policy = Policy()
        self.unknown_domain = unknown_domain  # "domain_not_found" (older mailcow) or "access_denied" (2024+)
        self.keeps_tags = True  # False: a mailcow from before mailbox tags (2022), which ignores them
        self.calls: list[Call] = []
        self._faults: deque[_Fault] = deque()

    # ---- lifecycle and set-up ---------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_route("*", "/api/v1/{query:.*}", self._handle)

    def add_domain(self, name: str, **limits: int) -> Domain:
        """Create a domain (limits: mailboxes, maxquota, quota, defquota in MB)."""
        self.domains[name] = Domain(name, **limits)
        return self.domains[name]

    def add_mailbox(self, address: str, password: str, name: str = "", tags: tuple[str, ...] = (),
                    active: int = 1) -> Mailbox:
        """A mailbox made outside edudesk (by the school's admin in the mailcow UI)."""
        box = Mailbox(address, name or address.split("@")[0], self.domains[address.split("@")[1]].defquota,
                      active, hash_password(password), tags=list(tags))
        self.mailboxes[address] = box
        return box

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` requests with this HTTP status (5xx, 429) without carrying them out."""
        self._faults.extend(_Fault(status, retry_after) for _ in range(times))

    def drop_next(self, times: int = 1, after_processing: bool = False) -> None:
        """Close the connection on the next requests, before or after carrying them out (a lost answer)."""
        self._faults.extend(_Fault(0, None, after_processing) for _ in range(times))

    # ---- inspection ---------------------------------------------------------------------------------

    def check_password(self, address: str, password: str) -> bool:
        """Whether the mailbox would accept this password."""
        box = self.mailboxes.get(address)
        return box is not None and _verify(password, box.password_hash)

    def signs_in(self, address: str, password: str) -> bool:
        """Whether the mailbox could sign in with this password (active 1; "2" only receives mail, "0" is off)."""
        return self.check_password(address, password) and self.mailboxes[address].active == 1

    def calls_to(self, path: str) -> list[Call]:
        """Requests whose path (after /api/v1/) starts with this, e.g. "add/mailbox"."""
        return [c for c in self.calls if c.path.startswith(path)]

    # ---- the API --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = request.match_info["query"]
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ...
        self.calls.append(Call(request.method, query, None if body is ... else body, dict(request.headers)))
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and not fault.after_processing:
            if fault.status == 0:
                return self._drop(request)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=fault.status, text="<html>502 Bad Gateway</html>", headers=headers)
        response = self._answer(request, query, body)
        if fault is not None:
            return self._drop(request)
        return response

    def _drop(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)

    def _answer(self, request: web.Request, query: str, body: Any) -> web.Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        action, _, rest = query.partition("/")
        category, _, obj = rest.partition("/")
        api = self.keys[re.sub(r"[^a-zA-Z0-9-]", "", request.headers["X-API-Key"])]
        if action in ("add", "edit", "delete") and api.access == "ro":
            return _json({"type": "error", "msg": "API read/write access denied"}, 403)
        wanted = "GET" if action == "get" else "POST"
        if request.method != wanted:
            return _json({"type": "error", "msg": f"only {wanted} method is allowed"}, 405)
        if action != "get" and body is ...:
            return _json({"type": "error", "msg": "Request body doesn't contain valid json!"}, 400)
        if category != "mailbox":
            return _json({"type": "error", "msg": "route not found"}, 404)
        if action == "get":
            return _json(self._get(obj))
        if action == "add" and isinstance(body, dict):
            return _json(self._add(body))
        if action == "edit" and isinstance(body, dict) and isinstance(body.get("attr"), dict):
            return _json(self._edit(body.get("items"), body["attr"]))
        if action == "delete" and body is not None:
            return _json(self._delete(body))
        return _json({"type": "error", "msg": "Cannot find attributes in post data"})

    def _authenticate(self, request: web.Request) -> web.Response | None:
        given = re.sub(r"[^a-zA-Z0-9-]", "", request.headers.get("X-API-Key", ""))
        api = self.keys.get(given)
        if api is None or not api.active:
            return _json({"type": "error", "msg": "authentication failed"}, 401)
        if not api.skip_ip_check and request.remote not in api.allow_from:
            return _json({"type": "error", "msg": f"api access denied for ip {request.remote}"}, 401)
        return None

    def _get(self, address: str) -> Any:
        box = self.mailboxes.get(address.lower())
        if box is None:
            return {}
        local, _, domain = box.username.partition("@")
        details: dict[str, Any] = {
            "username": box.username, "active": box.active, "active_int": box.active, "domain": domain,
            "name": box.name, "local_part": local, "quota": box.quota_mb * MB, "messages": 0,
            "attributes": {"force_pw_update": box.force_pw_update, "tls_enforce_in": "0", "tls_enforce_out": "0",
                           "sogo_access": "1", "imap_access": "1", "pop3_access": "1", "smtp_access": "1",
                           "sieve_access": "1", "relayhost": "0", "mailbox_format": "maildir:",
                           "quarantine_notification": "hourly", "quarantine_category": "reject"},
            "custom_attributes": {}, "quota_used": 0, "percent_in_use": 0, "created": "2025-09-01 08:00:00",
            "modified": None, "authsource": "mailcow", "percent_class": "success", "last_imap_login": 0,
            "last_smtp_login": 0, "last_pop3_login": 0, "spam_aliases": 0, "pushover_active": 0, "is_relayed": 0}
        if box.tags:
            details["tags"] = list(box.tags)
        return details

    def _add(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        local = str(data.get("local_part", "")).strip().lower()
        domain = str(data.get("domain", "")).strip().lower()
        username = f"{local}@{domain}"
        err = _Answers("add", data)
        if not local or not _EMAIL.match(username):
            return err.danger("mailbox_invalid")
        if not _DOMAIN.match(domain):
            return err.danger("domain_invalid")
        known = self.domains.get(domain)
        if known is None and self.unknown_domain == "access_denied":
            return err.danger("access_denied")
        if username in self.mailboxes:
            return err.danger("object_exists", username)
        if username in self.aliases:
            return err.danger("is_alias", username)
        if known is None:
            return err.danger("domain_not_found", domain)
        password, password2 = str(data.get("password", "")), str(data.get("password2", ""))
        refused = self._password_check(password, password2)
        if refused:
            return err.danger(refused)
        quota = int(data["quota"]) if "quota" in data else known.defquota
        in_domain = [b for b in self.mailboxes.values() if b.username.endswith("@" + domain)]
        if len(in_domain) >= known.mailboxes:
            return err.danger("max_mailbox_exceeded", str(len(in_domain)), str(known.mailboxes))
        if quota > known.maxquota:
            return err.danger("mailbox_quota_exceeded", str(known.maxquota))
        used = sum(b.quota_mb for b in in_domain)
        if used + quota > known.quota:
            return err.danger("mailbox_quota_left_exceeded", str(known.quota - used))
        tags = [str(t) for t in data.get("tags") or [] if t][:25] if self.keeps_tags else []
        self.mailboxes[username] = Mailbox(username, str(data.get("name") or local).strip("<>"), quota,
                                           int(data.get("active", 1)), hash_password(password),
                                           str(int(data.get("force_pw_update", 0))), tags)
        return err.success("rl_saved", username) + err.success("mailbox_added", username)

    def _edit(self, items: Any, attr: dict[str, Any]) -> list[dict[str, Any]]:
        answers = _Answers("edit", attr)
        out: list[dict[str, Any]] = []
        for username in items if isinstance(items, list) else [items]:
            box = self.mailboxes.get(str(username))
            if not _EMAIL.match(str(username)):
                out += answers.danger("username_invalid", str(username))
                continue
            if box is None:
                out += answers.danger("access_denied")
                continue
            domain = self.domains[box.username.split("@")[1]]
            quota = int(attr["quota"]) if attr.get("quota") not in (None, "") else box.quota_mb
            if quota > domain.maxquota:
                out += answers.danger("mailbox_quota_exceeded", str(domain.maxquota))
                continue
            if attr.get("password"):
                refused = self._password_check(str(attr["password"]), str(attr.get("password2") or ""))
                if refused:
                    out += answers.danger(refused)
                    continue
                box.password_hash = hash_password(str(attr["password"]))
            box.active = int(attr["active"]) if "active" in attr else box.active
            box.force_pw_update = str(int(attr["force_pw_update"])) if "force_pw_update" in attr else \
                box.force_pw_update
            box.name = str(attr.get("name") or box.name).strip("<>")
            box.quota_mb = quota
            box.tags += [str(t) for t in attr.get("tags") or [] if t and t not in box.tags]
            out += answers.success("mailbox_modified", box.username)
        return out

    def _delete(self, items: Any) -> list[dict[str, Any]]:
        answers = _Answers("delete", {"username": items})
        out: list[dict[str, Any]] = []
        for username in items if isinstance(items, list) else [items]:
            if self.mailboxes.pop(str(username), None) is None:
                out += answers.danger("access_denied")
            else:
                out += answers.success("mailbox_removed", str(username))
        return out

    def _password_check(self, password: str, password2: str) -> str:
        if not password or not password2:
            return "password_complexity"
        if password != password2:
            return "password_mismatch"
        p = self.policy
        if (len(password) < p.length or (p.special_chars and not re.search(r"[^a-zA-Z\d]", password))
                or (p.chars and not re.search(r"[a-zA-Z]", password))
                or (p.numbers and not re.search(r"\d", password))
                or (p.lowerupper and not (re.search(r"[a-z]", password) and re.search(r"[A-Z]", password)))):
            return "password_complexity"
        return ""


class _Answers:
    """Entries of mailcow's $_SESSION['return'] for one call, with passwords masked in `log`."""

    def __init__(self, action: str, data: dict[str, Any]) -> None:
        logged = {k: ("*" if "pass" in k else v) for k, v in data.items()}
        self.log = ["mailbox", action, "mailbox", logged, None]

    def danger(self, code: str, *args: str) -> list[dict[str, Any]]:
        """One refusal."""
        return [{"type": "danger", "log": self.log, "msg": [code, *args] if args else code}]

    def success(self, code: str, *args: str) -> list[dict[str, Any]]:
        """One success."""
        return [{"type": "success", "log": self.log, "msg": [code, *args]}]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")


@pytest.fixture(name="fake_mailcow")
async def fake_mailcow_fixture() -> AsyncIterator[FakeMailcow]:
    """A started FakeMailcow with the domain school.test and the default read-write key from 127.0.0.1."""
    fake = await FakeMailcow().start()
    fake.add_domain("school.test")
    try:
        yield fake
    finally:
        await fake.stop()
