"""Who sent a mail, and can we believe it: authentication results, institution domains, spoofing.

The receiving server writes Authentication-Results on top of the header block; anything below it was
written by earlier hops or by the sender, so the topmost statement about each method is the one used.
"""

from __future__ import annotations

import re

from core.intake.domain import IncomingMail
from core.text import fold

FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.com.vn", "ymail.com", "rocketmail.com",
    "outlook.com", "outlook.com.vn", "hotmail.com", "hotmail.com.vn", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "zoho.com",
    "gmx.com", "mail.com", "yandex.com", "mail.ru", "qq.com", "163.com",
})
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


def is_free_mail(addr: str) -> bool:
    """True for addresses at public mail providers anyone can sign up to."""
    return sender_domain(addr) in FREE_MAIL


def from_untrusted(mail: IncomingMail) -> bool:
    """True when the From header did not name exactly one valid address (see `FROM_UNTRUSTED`)."""
    return any(d.startswith(FROM_UNTRUSTED) for d in mail.defects)


def trusted_institutional(mail: IncomingMail, domains: tuple[str, ...]) -> bool:
    """True when the sender is in an institution domain and its From header reads as one address."""
    return is_institutional(mail.from_addr, domains) and not from_untrusted(mail)


def spoof_suspected(mail: IncomingMail, domains: tuple[str, ...]) -> bool:
    """True when the sender probably is not who the mail says; staff then check by another channel.

    Four signs, each enough: (0) a From that is not one clear address; (1) From is in an institution
    domain but authentication failed; (2) the display name shows an institution address other than the real From address
    ("hieutruong@truong.edu.vn" <someone@gmail.com>); (3) a free-mail From whose display name claims
    an office title, with Reply-To steering answers to yet another domain.
    """
    if from_untrusted(mail):
        return True  # a client would show one address, a filter read another: someone meant that
    sender = mail.from_addr.lower()
    results = parse_authentication_results(mail.header("authentication-results"))
    if is_institutional(sender, domains) and auth_failed(results):
        return True
    shown = {a.lower() for a in _ADDRESS.findall(mail.from_name)}
    if any(a != sender and is_institutional(a, domains) for a in shown):
        return True
    if is_free_mail(sender) and mail.reply_to:
        redirected = sender_domain(mail.reply_to) != sender_domain(sender)
        return redirected and bool(_STAFF_TITLE.search(fold(mail.from_name)))
    return False
