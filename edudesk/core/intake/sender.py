"""Who sent a mail, and can we believe it: authentication results, institution domains, spoofing.

The receiving server writes Authentication-Results on top of the header block; anything below it was
written by earlier hops or by the sender. Only a header whose authserv-id is ours or a configured trusted
one (`[intake].trusted_authserv_ids`) is believed, and of those only the topmost (`trusted_results`).
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from publicsuffix2 import get_sld

from edudesk.core.config import IntakeSettings, Settings
from edudesk.core.intake.domain import IncomingMail
from edudesk.core.text import fold

# The default of [intake].free_mail_domains (the list itself lives with the settings).
FREE_MAIL = frozenset(IntakeSettings().free_mail_domains)
# The parser's defect that marks a From it could not read as one clear address (two mailboxes, two
# angle addresses, no valid addr-spec): such a sender is never trusted as inside the institution.
FROM_UNTRUSTED = "from-untrusted:"
_METHODS = ("spf", "dkim", "dmarc")
_RESULT = re.compile(r"(?:^|[;\s])(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.I)
_COMMENT = re.compile(r"\([^()]*\)")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# words that make a display name claim an office (folded): "Hiệu trưởng", "Phòng Giáo vụ", "Admin"
_STAFF_TITLE = re.compile(
    r"\b(hieu truong|hieu pho|ban giam hieu|phong|to truong|giao vu|van thu|ke toan|quan tri|admin"
    r"|cntt|it|helpdesk|ho tro)\b"
)


def parse_authentication_results(value: str) -> dict[str, str]:
    """Results of spf, dkim and dmarc ("pass", "fail", ... or "") from Authentication-Results values.

    Several headers come joined by newlines, topmost first; for each method the topmost header that
    mentions it decides. Within that header dkim is "pass" when any signature passed (a mail may carry
    several), spf and dmarc take their first result.
    """
    results = dict.fromkeys(_METHODS, "")
    for header in value.splitlines():
        text = header
        while _COMMENT.search(text):  # comments may nest and may contain "dkim=pass" themselves
            text = _COMMENT.sub(" ", text)
        found: dict[str, list[str]] = {}
        for method, result in _RESULT.findall(text):
            found.setdefault(method.lower(), []).append(result.lower())
        for method, values in found.items():
            if not results[method]:
                results[method] = "pass" if method == "dkim" and "pass" in values else values[0]
    return results


def auth_failed(results: dict[str, str]) -> bool:
    """True when DMARC failed, or SPF (soft)failed with no passing DKIM signature to vouch instead."""
    if results.get("dmarc") == "fail":
        return True
    return results.get("spf") in ("fail", "softfail") and results.get("dkim") != "pass"


def sender_domain(addr: str) -> str:
    """The domain of an address, lower case, "" when there is none."""
    _, at, domain = addr.strip().strip("<>").rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def is_institutional(addr: str, domains: tuple[str, ...]) -> bool:
    """True when the address is in a configured domain or one of its subdomains (hs.truong.edu.vn)."""
    domain = sender_domain(addr)
    for configured in domains:
        own = configured.strip().lstrip("@.").lower()
        if own and (domain == own or domain.endswith("." + own)):
            return True
    return False


def is_free_mail(addr: str, domains: Iterable[str] | None = None) -> bool:
    """True for addresses at public mail providers anyone can sign up to ([intake].free_mail_domains)."""
    listed = FREE_MAIL if domains is None else {d.strip().lstrip("@").lower() for d in domains}
    return sender_domain(addr) in listed


def from_untrusted(mail: IncomingMail) -> bool:
    """True when the From header did not name exactly one valid address (see `FROM_UNTRUSTED`)."""
    return any(d.startswith(FROM_UNTRUSTED) for d in mail.defects)


def trusted_institutional(mail: IncomingMail, domains: tuple[str, ...]) -> bool:
    """True when the sender is in an institution domain and its From header reads as one address."""
    return is_institutional(mail.from_addr, domains) and not from_untrusted(mail)


def spoof_suspected(mail: IncomingMail, domains: tuple[str, ...], results: dict[str, str] | None = None) -> bool:
    """True when the sender probably is not who the mail says; staff then check by another channel.

    Four signs, each enough: (0) a From that is not one clear address; (1) From is in an institution
    domain but authentication failed; (2) the display name shows an institution address other than the real From address
    ("hieutruong@truong.edu.vn" <someone@gmail.com>); (3) a free-mail From whose display name claims
    an office title, with Reply-To steering answers to yet another domain. `results` are the trusted
    ones (`sender_verification`); without them only the topmost Authentication-Results is read.
    """
    if from_untrusted(mail):
        return True  # a client would show one address, a filter read another: someone meant that
    sender = mail.from_addr.lower()
    if results is None:
        results = topmost_results(mail)
    if is_institutional(sender, domains) and auth_failed(results):
        return True
    shown = {a.lower() for a in _ADDRESS.findall(mail.from_name)}
    if any(a != sender and is_institutional(a, domains) for a in shown):
        return True
    if is_free_mail(sender) and mail.reply_to:
        redirected = sender_domain(mail.reply_to) != sender_domain(sender)
        return redirected and bool(_STAFF_TITLE.search(fold(mail.from_name)))
    return False


# --- which Authentication-Results to believe ------------------------------------------------------------

_PAIR = re.compile(r'([\w.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]+)')
_POLICY = re.compile(r"\bp\s*=\s*(reject|quarantine|none)\b", re.I)
# Microsoft 365 writes "dmarc=fail action=oreject": the action applied, o- when its own rules overrode it
_ACTIONS = {"reject": "reject", "oreject": "reject", "pct.reject": "reject", "quarantine": "quarantine",
            "oquarantine": "quarantine", "pct.quarantine": "quarantine"}


@dataclass(frozen=True)
class _Resinfo:
    method: str
    result: str
    props: dict[str, str]
    comments: str


@dataclass(frozen=True)
class Verification:
    """What the trusted Authentication-Results say about the sender of one mail.

    `verified` is None when no trusted header exists (nobody we believe checked the mail), True when
    DMARC passed, or a DKIM signature passed whose d= is aligned (same organisational domain) with the
    From domain, and False otherwise: a missing result is not a pass.
    """

    verified: bool | None
    results: dict[str, str] = field(default_factory=lambda: dict.fromkeys(_METHODS, ""))
    dmarc_policy: str = ""  # "reject", "quarantine", "none" or "" when the header does not say
    authserv_id: str = ""  # the id of the header that decided ("" also for Microsoft's id-less header)
    dkim_domains: tuple[str, ...] = ()  # d= of the passing signatures

    def to_json(self) -> dict[str, Any]:
        """The `auth` object of `mail inspect --json`: spf, dkim and dmarc results ("" when missing)."""
        return {m: self.results.get(m, "") for m in _METHODS}


def _segments(value: str) -> list[tuple[str, str]]:
    """Split a header value at top-level semicolons into (text without comments, comment text) pairs."""
    out: list[tuple[str, str]] = []
    text: list[str] = []
    comments: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            (comments if depth else text).append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            text.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
            (comments if depth > 1 else text).append(" ")
        elif ch == ")" and depth:
            depth -= 1
            comments.append(" ")
        elif depth:
            comments.append(ch)
        elif ch == '"':
            quoted = True
            text.append(ch)
        elif ch == ";":
            out.append(("".join(text), "".join(comments)))
            text, comments = [], []
        else:
            text.append(ch)
    out.append(("".join(text), "".join(comments)))
    return out


def authserv_id_of(value: str) -> str:
    """The authserv-id of one Authentication-Results value, lower case; "" when it names none (Microsoft)."""
    first = _segments(value)[0][0].strip()
    if not first or "=" in first:
        return ""
    return first.split()[0].lower().rstrip(".")


def _resinfos(value: str) -> list[_Resinfo]:
    segments = _segments(value)
    if authserv_id_of(value) or not any("=" in t for t, _ in segments[:1]):
        segments = segments[1:]  # the authserv-id (and version) come first
    out: list[_Resinfo] = []
    for text, comments in segments:
        pairs = _PAIR.findall(text)
        if not pairs:
            continue
        method, result = pairs[0][0].lower(), pairs[0][1].strip('"').lower()
        props = {k.lower(): v.strip('"') for k, v in pairs[1:]}
        out.append(_Resinfo(method, result, props, comments))
    return out


def trusted_header(mail: IncomingMail, own_id: str, trusted_ids: tuple[str, ...]) -> str | None:
    """The one Authentication-Results value to believe, or None.

    Headers are walked topmost first; the first one written by a trusted server decides and everything
    below it is ignored, as is any header with an id we do not trust (the sender writes what it likes).
    Our own id counts only on the topmost header: the listener removes forged copies and puts its own
    first. An id-less header (Microsoft 365 writes one) counts only when topmost and "" is among the
    trusted ids. With no trusted ids configured only our own header counts: a mailbox reached by IMAP
    proves nothing until its server is named, because a sender can write any header its server leaves in.
    """
    headers = [h for h in mail.header("authentication-results").splitlines() if h.strip()]
    if not headers:
        return None
    trusted = {t.strip().lower().rstrip(".") for t in trusted_ids}
    own = own_id.strip().lower().rstrip(".")
    for index, header in enumerate(headers):
        found = authserv_id_of(header)
        if (found and found in trusted) or (index == 0 and found == own and own) or \
                (index == 0 and not found and "" in trusted):
            return header
    return None


def _results_of(infos: list[_Resinfo]) -> dict[str, str]:
    results = dict.fromkeys(_METHODS, "")
    for method in _METHODS:
        values = [i.result for i in infos if i.method == method]
        if values:
            results[method] = "pass" if method == "dkim" and "pass" in values else values[0]
    return results


def topmost_results(mail: IncomingMail) -> dict[str, str]:
    """Results of the topmost Authentication-Results, whoever wrote it: only for signs of failure (a sender
    gains nothing by writing "fail" about itself), never as proof."""
    headers = [h for h in mail.header("authentication-results").splitlines() if h.strip()]
    return _results_of(_resinfos(headers[0])) if headers else dict.fromkeys(_METHODS, "")


def trusted_results(mail: IncomingMail, own_id: str, trusted_ids: tuple[str, ...]) -> dict[str, str]:
    """spf, dkim and dmarc results ("" when missing) from the one trusted Authentication-Results header."""
    header = trusted_header(mail, own_id, trusted_ids)
    return _results_of(_resinfos(header)) if header is not None else dict.fromkeys(_METHODS, "")


@functools.cache
def _host_name() -> str:
    return socket.getfqdn().lower()


def own_authserv_id(intake: IntakeSettings) -> str:
    """edudesk's own authserv-id: `[intake].authserv_id`, or this host's name when that is empty."""
    return intake.authserv_id.strip().lower().rstrip(".") or _host_name()


def _organisational(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    return (get_sld(domain) or domain) if domain else ""


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment: both domains share one organisational domain (public suffix list, offline)."""
    return bool(domain and from_domain) and _organisational(domain) == _organisational(from_domain)


def _policy(infos: list[_Resinfo]) -> str:
    for info in infos:
        if info.method != "dmarc":
            continue
        if info.props.get("policy.dmarc", "").lower() in ("reject", "quarantine", "none"):
            return info.props["policy.dmarc"].lower()
        if m := _POLICY.search(info.comments):
            return m.group(1).lower()
        if action := _ACTIONS.get(info.props.get("action", "").lower()):
            return action
    return ""


def dmarc_failure(mail: IncomingMail, settings: Settings) -> tuple[bool, str]:
    """(DMARC failed, the domain's policy) from the trusted header, else from the topmost one: a failure is a
    sign whoever reported it (a sender gains nothing by writing "fail" about itself), never a proof."""
    header = trusted_header(mail, own_authserv_id(settings.intake), settings.intake.trusted_authserv_ids)
    if header is None:
        headers = [h for h in mail.header("authentication-results").splitlines() if h.strip()]
        header = headers[0] if headers else None
    if header is None:
        return False, ""
    infos = _resinfos(header)
    return _results_of(infos)["dmarc"] == "fail", _policy(infos)


def sender_verification(mail: IncomingMail, settings: Settings) -> Verification:
    """Did a server we trust prove the From domain? See `Verification` for what True, False and None mean."""
    header = trusted_header(mail, own_authserv_id(settings.intake), settings.intake.trusted_authserv_ids)
    if header is None:
        return Verification(None)
    infos = _resinfos(header)
    results = _results_of(infos)
    dkim_domains = tuple(d for d in dict.fromkeys(
        (i.props.get("header.d") or sender_domain(i.props.get("header.i", ""))).lower().rstrip(".")
        for i in infos if i.method == "dkim" and i.result == "pass") if d)
    found = Verification(None, results, _policy(infos), authserv_id_of(header), dkim_domains)
    from_domain = sender_domain(mail.from_addr)
    if not from_domain or from_untrusted(mail):
        return replace(found, verified=False)
    dmarc = next((i for i in infos if i.method == "dmarc"), None)
    if dmarc is not None and dmarc.result == "pass":
        said = dmarc.props.get("header.from", "").lower().rstrip(".")
        said = sender_domain(said) if "@" in said else said
        return replace(found, verified=not said or said == from_domain)  # a pass about another From is none
    if dmarc is not None and dmarc.result == "fail":
        return replace(found, verified=False)
    return replace(found, verified=any(aligned(d, from_domain) for d in dkim_domains))
