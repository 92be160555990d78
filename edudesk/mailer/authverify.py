"""SPF, DKIM and DMARC of mail reaching our own listener, written as one Authentication-Results header.

Why not `authheaders.authenticate_message`: its SPF check cannot be pointed at a DNS server (pyspf's
module-level lookup), it verifies only the first DKIM signature and calls an unsigned mail "dkim=fail",
and it reads domains with `[a-z0-9.]+`, so "thpt-nguyenhue.edu.vn" becomes "thpt". So: pyspf's `query`
with its one `dns` method answered by our resolver, dkimpy for every signature (it takes a `dnsfunc`),
authheaders' DMARC record discovery (takes a `dnsfunc`) and alignment on the public suffix list.
The results are written with authres, the library authheaders writes with.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import dkim
import spf
from authheaders.dmarc_lookup import DMARCException, receiver_record
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult, SPFAuthenticationResult
from authres.core import AuthenticationResult
from authres.dmarc import DMARCAuthenticationResult

from edudesk.core.config import IntakeSettings
from edudesk.core.intake.sender import aligned, authserv_id_of, own_authserv_id, sender_domain
from edudesk.mailer.dnslookup import DnsFailure, DnsLookup, make_resolver

MAX_SIGNATURES = 8  # more DKIM signatures than this are not checked (each costs a DNS lookup)
TIME_FACTOR = 4  # all lookups of one mail together take at most this many dns_timeout_seconds
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


class _SpfQuery(spf.query):  # type: ignore[misc]
    """pyspf's query asking our resolver: its lookups all go through this one method."""

    def __init__(self, lookup: DnsLookup, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lookup = lookup

    def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        """Records as pyspf wants them; void lookups counted (RFC 7208 4.6.4), failures are TempError."""
        del cnames  # pyspf's signature: dnspython follows CNAME chains itself
        if not name:
            raise spf.PermError("Invalid query")
        name = str(name).rstrip(".").lower()
        if not all(0 < len(label) < 64 for label in name.split(".")):
            return []
        key = (name, qtype)
        if key not in self.cache:
            try:
                records = self.lookup.resolve(name, qtype)
            except DnsFailure as exc:
                raise spf.TempError(f"DNS {exc}") from exc
            self.cache[key] = [_spf_value(r, qtype) for r in records]
        result: list[Any] = self.cache[key]
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def _spf_value(record: Any, qtype: str) -> Any:
    # the shapes pyspf's own dnspython lookup returns
    if qtype in ("A", "AAAA"):
        return record.address
    if qtype == "MX":
        return (record.preference, record.exchange)
    if qtype == "PTR":
        return record.target.to_text(True)
    if qtype in ("TXT", "SPF"):
        return record.strings
    return record.to_text()


@dataclass(frozen=True)
class _Dkim:
    result: str
    domain: str
    identity: str = ""
    selector: str = ""
    signature: str = ""


def check_spf(lookup: DnsLookup, peer_ip: str, helo: str, mail_from: str) -> str:
    """SPF of the connecting address for MAIL FROM (or HELO for the null sender)."""
    try:
        result, _code, _why = _SpfQuery(lookup, i=peer_ip, s=mail_from, h=helo, timeout=lookup.timeout).check()
    except spf.TempError:
        return "temperror"
    except (spf.PermError, ValueError):
        return "permerror"
    except Exception:  # noqa: BLE001 - pyspf trips over some garbage HELO/MAIL FROM: nothing was verified
        return "permerror"
    return str(result)


def check_dkim(lookup: DnsLookup, raw: bytes) -> list[_Dkim]:
    """Every DKIM signature (up to MAX_SIGNATURES), topmost first."""
    try:
        verifier = dkim.DKIM(raw, timeout=lookup.timeout)
    except Exception:  # noqa: BLE001 - a message dkimpy cannot even read: nothing was verified
        return []
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    out: list[_Dkim] = []
    for index in range(min(count, MAX_SIGNATURES)):
        verifier.signature_fields = {}
        try:
            result = "pass" if verifier.verify(idx=index, dnsfunc=lookup.dkim_key) else "fail"
        except DnsFailure:
            result = "temperror"
        except dkim.MessageFormatError:
            result = "permerror"  # a signature that cannot be read at all
        except dkim.DKIMException:
            result = "fail"  # body hash mismatch, expired, unknown key: the signature does not vouch
        except Exception:  # noqa: BLE001 - dkimpy raises plain errors on some garbage (bad base64)
            result = "permerror"
        fields = verifier.signature_fields or {}
        out.append(_Dkim(result, _text(fields.get(b"d")).lower(), _text(fields.get(b"i")),
                         _text(fields.get(b"s")), _text(fields.get(b"b"))[:8]))
    return out


def _text(value: bytes | None) -> str:
    return re.sub(r"\s+", "", (value or b"").decode("ascii", "replace"))


def from_domain(raw: bytes) -> str | None:
    """The one From domain DMARC is about; None when there are none or several (RFC 7489 6.6.1)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    values = [str(v) for v in headers.get_all("from", [])]
    addresses = [a for _, a in email.utils.getaddresses(values) if a]
    domains = {sender_domain(a) for a in addresses}
    if len(values) != 1 or len(domains) != 1 or "" in domains:
        return None
    domain = domains.pop()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def check_dmarc(lookup: DnsLookup, domain: str, spf_result: str, spf_domain: str,
                signatures: list[_Dkim]) -> tuple[str, str]:
    """(result, policy) for the From domain: pass when SPF or a DKIM signature passed, aligned."""
    try:
        record, org_domain = receiver_record(domain, dnsfunc=lookup.dmarc_record)
    except DnsFailure:
        return "temperror", ""
    except DMARCException:
        return "permerror", ""
    if not record or not record.get("p"):
        return "none", ""
    subdomain = bool(org_domain) and org_domain != domain
    policy = record.get("sp", record["p"]) if subdomain else record["p"]
    strict_spf, strict_dkim = record.get("aspf") == "s", record.get("adkim") == "s"

    def matches(other: str, strict: bool) -> bool:
        return other == domain if strict else aligned(other, domain)

    passed = (spf_result == "pass" and matches(spf_domain, strict_spf)) or any(
        s.result == "pass" and matches(s.domain, strict_dkim) for s in signatures)
    policy = policy if policy in ("none", "quarantine", "reject") else ""
    return ("pass" if passed else "fail"), policy


def evaluate(raw: bytes, peer_ip: str, helo: str, mail_from: str, authserv_id: str, lookup: DnsLookup) -> str:
    """The Authentication-Results value (no header name) for one mail; DNS failures give temperror."""
    sender = mail_from.strip().strip("<>")
    results: list[AuthenticationResult] = []
    spf_result = check_spf(lookup, peer_ip, helo, sender)
    if sender:
        results.append(SPFAuthenticationResult(result=spf_result, smtp_mailfrom=sender))
    else:
        results.append(SPFAuthenticationResult(result=spf_result, smtp_helo=helo or None))
    signatures = check_dkim(lookup, raw)
    if not signatures:
        results.append(DKIMAuthenticationResult(result="none"))
    for s in signatures:
        results.append(DKIMAuthenticationResult(result=s.result, header_d=s.domain or None,
                                                header_i=s.identity or None, header_s=s.selector or None,
                                                properties=[], result_comment=None))
        if s.signature:
            results[-1].properties.append(_property("header", "b", s.signature))
    domain = from_domain(raw)
    if domain is None:
        results.append(DMARCAuthenticationResult(result="permerror", result_comment="no single From domain"))
    else:
        spf_domain = sender_domain(sender) if sender else helo.lower()
        dmarc, policy = check_dmarc(lookup, domain, spf_result, spf_domain, signatures)
        results.append(DMARCAuthenticationResult(
            result=dmarc, header_from=domain, policy=policy or None,
            result_comment=f"p={policy}" if policy else None))
    return str(AuthenticationResultsHeader(authserv_id=authserv_id, results=results)).split(": ", 1)[1]


def _property(ptype: str, name: str, value: str) -> Any:
    from authres.core import AuthenticationResultProperty

    return AuthenticationResultProperty(ptype, name, value)


def verify(raw: bytes, peer_ip: str, helo: str, mail_from: str, settings: IntakeSettings) -> str:
    """SPF, DKIM (every signature) and DMARC of one mail as an Authentication-Results value with our id.

    Blocking (DNS): call it in a thread, as `verify_in_thread` does. Never raises for what a sender sends.
    """
    timeout = max(settings.dns_timeout_seconds, 0.1)
    lookup = DnsLookup(make_resolver(settings.dns_servers), timeout, time.monotonic() + TIME_FACTOR * timeout)
    return evaluate(raw, peer_ip, helo, mail_from, own_authserv_id(settings), lookup)


def temperror_results(settings: IntakeSettings) -> str:
    """What we write when the checks ran out of time altogether."""
    return f"{own_authserv_id(settings)}; spf=temperror; dkim=temperror; dmarc=temperror"


async def verify_in_thread(raw: bytes, peer_ip: str, helo: str, mail_from: str, settings: IntakeSettings) -> str:
    """`verify` in a worker thread, bounded in time: past the bound every method is temperror."""
    bound = TIME_FACTOR * max(settings.dns_timeout_seconds, 0.1) + 1.0
    try:
        return await asyncio.wait_for(asyncio.to_thread(verify, raw, peer_ip, helo, mail_from, settings), bound)
    except TimeoutError:
        return temperror_results(settings)


def _split_header_block(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines and line ends) and everything from the blank line on."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        line = raw[pos:] if end < 0 else raw[pos:end + 1]
        if line in (b"\r\n", b"\n") or not line.strip(b"\r\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos += len(line)
    return fields, raw[pos:]


def with_results(raw: bytes, value: str | None, own_id: str) -> bytes:
    """The mail with every Authentication-Results carrying our id removed (RFC 8601 section 5: a sender
    may forge them) and, when `value` is given, ours put on top."""
    fields, rest = _split_header_block(raw)
    kept = []
    for field in fields:
        name = _HEADER_NAME.match(field)
        if name and name.group(1).lower() == b"authentication-results":
            text = field.split(b":", 1)[1].decode("utf-8", "replace")
            if authserv_id_of(re.sub(r"\r?\n", " ", text)) == own_id:
                continue
        kept.append(field)
    eol = b"\r\n" if b"\r\n" in (fields[0] if fields else raw[:1000]) else b"\n"
    top = _fold(f"Authentication-Results: {value}", eol) if value is not None else b""
    return top + b"".join(kept) + rest


def _fold(line: str, eol: bytes) -> bytes:
    """Fold at the "; " between results so no line passes 78 characters where it can be helped."""
    parts = line.split("; ")
    out, current = [], parts[0]
    for part in parts[1:]:
        if len(current) + 2 + len(part) > 78:
            out.append(current + ";")
            current = "\t" + part
        else:
            current += "; " + part
    out.append(current)
    return eol.join(p.encode("utf-8") for p in out) + eol
