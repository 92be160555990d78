"""The one-time password page: GET /p/{token} explains and offers a button, POST /p/ shows the passwords once.

Public (the requester is not staff): the token is the credential. A GET consumes nothing, because mail
scanners and link previews fetch links; only the button's POST, with the token in the form body (never a
query string), opens the link.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from typing import Any

from aiohttp import web

from edudesk.bot.web.labels import labels
from edudesk.bot.web.render import CONSOLE, Console, console, nonce
from edudesk.core.accounts.passwordlinks import (
    LinkInfo,
    LinkRefused,
    OpenedLink,
    Refusal,
    open_password_link,
    peek_password_link,
)
from edudesk.core.accounts.sheet import build_accounts_xlsx
from edudesk.core.requests.models import Request
from edudesk.core.secrets import SecretBox, load_secret_box

log = logging.getLogger(__name__)
BOX = web.AppKey("password_box", SecretBox)
_TOKEN_TAIL = re.compile(r"[^A-Za-z0-9_\-].*$")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer",
           "X-Robots-Tag": "noindex, nofollow, noarchive"}

PAGE: dict[str, dict[str, Any]] = {
    "vi": {
        "pw_title": "Nhận mật khẩu tài khoản",
        "pw_what": "Trang này hiển thị mật khẩu tạm thời của tài khoản đã được cấp theo yêu cầu YC-{number}.",
        "pw_count": "Số tài khoản: {count}.",
        "pw_once": "Liên kết chỉ mở được một lần: sau khi bấm nút, hãy ghi lại hoặc tải mật khẩu ngay, "
                   "vì trang sẽ không hiển thị lại.",
        "pw_expires": "Liên kết hết hạn lúc {when}.",
        "pw_button": "Xem mật khẩu",
        "pw_shown": "Mật khẩu tạm thời",
        "pw_address": "Địa chỉ",
        "pw_password": "Mật khẩu",
        "pw_change": "Hãy đổi mật khẩu ở lần đăng nhập đầu tiên. Trang này không hiển thị lại.",
        "pw_download": "Tải danh sách (.xlsx)",
        "pw_protected": "Tệp được bảo vệ bằng mật khẩu chung của đơn vị.",
        "pw_refused_title": "Không mở được liên kết",
        "pw_again": "Vui lòng trả lời thư đã nhận để được gửi liên kết mới.",
        "pw_reasons": {Refusal.UNKNOWN: "Liên kết không hợp lệ (có thể bị cắt mất một phần khi sao chép).",
                       Refusal.USED: "Liên kết này đã được mở; mỗi liên kết chỉ xem được một lần.",
                       Refusal.EXPIRED: "Liên kết này đã hết hạn.",
                       Refusal.GONE: "Mật khẩu của liên kết này không còn được lưu."},
    },
    "en": {
        "pw_title": "Your account password",
        "pw_what": "This page shows the temporary password of the account(s) made for request YC-{number}.",
        "pw_count": "Accounts: {count}.",
        "pw_once": "The link opens only once: after pressing the button, note or download the password at once; "
                   "the page will not show it again.",
        "pw_expires": "The link expires at {when}.",
        "pw_button": "Show the password",
        "pw_shown": "Temporary password",
        "pw_address": "Address",
        "pw_password": "Password",
        "pw_change": "Change the password at your first sign-in. This page will not be shown again.",
        "pw_download": "Download the list (.xlsx)",
        "pw_protected": "The file is protected with the units' shared password.",
        "pw_refused_title": "The link cannot be opened",
        "pw_again": "Please reply to the mail you received to get a new link.",
        "pw_reasons": {Refusal.UNKNOWN: "The link is not valid (part of it may have been cut when copied).",
                       Refusal.USED: "This link has been opened already; each link shows the password once.",
                       Refusal.EXPIRED: "This link has expired.",
                       Refusal.GONE: "The passwords of this link are no longer kept."},
    },
}


def _lang(request_lang: str | None, default: str) -> str:
    """The language of the result mail (the request's, else the console's): the page matches what was read."""
    lang = request_lang or default
    return "en" if lang == "en" else "vi"


async def _request_lang(request_id: int | None) -> str | None:
    if request_id is None:
        return None
    row = await Request.filter(id=request_id).only("id", "lang").first()
    return row.lang if row else None


def _page(request: web.Request, template: str, lang: str, *, status: int = 200, **context: Any) -> web.Response:
    c = console(request)
    t = {**labels(lang), **PAGE[lang]}
    html = c.env.get_template(template).render(t=t, actor=None, csrf="", nonce=nonce(request), flash="", error="",
                                               **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


async def _refused(request: web.Request, refused: LinkRefused) -> web.Response:
    lang = _lang(await _request_lang(refused.request_id), console(request).settings.general.language)
    status = 404 if refused.reason == Refusal.UNKNOWN else 410
    return _page(request, "password_refused.html.j2", lang, status=status, reason=str(refused.reason),
                 message=PAGE[lang]["pw_reasons"][refused.reason])


async def password_page(request: web.Request) -> web.Response:
    """GET /p/{token}: what the link is, when it expires, that it opens once; a button that POSTs."""
    c = console(request)
    # Mail clients glue punctuation to links ("...abc)." ): the token alphabet is [A-Za-z0-9_-] only.
    token = _TOKEN_TAIL.sub("", request.match_info["token"])[:200]
    found = await peek_password_link(token, c.clock)
    if isinstance(found, LinkRefused):
        return await _refused(request, found)
    info: LinkInfo = found
    lang = _lang(await _request_lang(info.request_id), c.settings.general.language)
    return _page(request, "password.html.j2", lang, token=token, number=info.request_id, count=info.count,
                 expires=c.when(info.expires_at))


async def password_open(request: web.Request) -> web.Response:
    """POST /p/: open the link once (token in the form body) and show the address(es) and password(s)."""
    c = console(request)
    form = await request.post()
    token = str(form.get("token", ""))[:200]
    opened = await open_password_link(token, c.clock, request.app[BOX], client=request.remote or "")
    if isinstance(opened, LinkRefused):
        return await _refused(request, opened)
    lang = _lang(await _request_lang(opened.request_id), c.settings.general.language)
    sheet = await _sheet(opened, lang, c) if opened.is_list else {}
    return _page(request, "password_shown.html.j2", lang, number=opened.request_id, accounts=opened.accounts,
                 is_list=opened.is_list, xlsx=sheet, protected=bool(sheet.get("protected")))


async def _sheet(opened: OpenedLink, lang: str, c: Console) -> dict[str, str]:
    """The list as an .xlsx in a data: URL, so the one response that shows the passwords also carries the file.

    Protected like the sheet a unit gets by mail when [provisioning].list_password_env names a password.
    """
    password = c.settings.secret(c.settings.provisioning.list_password_env) or None
    data = await asyncio.to_thread(build_accounts_xlsx, opened.accounts, lang=lang, password=password)
    return {"href": f"data:{XLSX};base64,{base64.b64encode(data).decode()}",
            "name": f"YC-{opened.request_id}-{c.clock.now():%Y%m%d}.xlsx", "protected": "1" if password else ""}


def add_routes(app: web.Application, box: SecretBox | None = None) -> None:
    """Register the password page; `box` opens the sealed passwords (the service's own, else loaded here)."""
    app[BOX] = box or load_secret_box(app[CONSOLE].settings)
    app.router.add_get("/p/{token}", password_page)
    app.router.add_post("/p/", password_open)
