"""DNS for sender verification: one dnspython resolver pointed at the configured servers, with a deadline.

dkimpy takes a TXT function (`dnsfunc`), authheaders' DMARC lookup too; pyspf has no resolver parameter,
so `mailer.authverify` gives its query class a `dns` method that asks this resolver instead.
"""

from __future__ import annotations

import ipaddress
import time

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdata import Rdata


class DnsFailure(Exception):
    """No answer could be had (timeout, no server, deadline passed): a temporary error, never "no record"."""


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """"127.0.0.1", "127.0.0.1:5353", "::1" or "[::1]:5353"."""
    text = entry.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    ipaddress.ip_address(host)  # a name here would need DNS to find DNS
    return dns.nameserver.Do53Nameserver(host, port)


def make_resolver(servers: tuple[str, ...]) -> dns.resolver.Resolver:
    """A resolver for the configured servers, or the system's (/etc/resolv.conf) when none are set.

    Raises ValueError on a server entry that is not an IP address with an optional port.
    """
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(s) for s in servers]
        return resolver
    try:
        return dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return dns.resolver.Resolver(configure=False)  # no servers: every lookup is a DnsFailure


class DnsLookup:
    """Lookups for one mail: each bounded by `timeout`, all of them by `deadline` (time.monotonic)."""

    def __init__(self, resolver: dns.resolver.Resolver, timeout: float, deadline: float) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.deadline = deadline

    def resolve(self, name: str, qtype: str) -> list[Rdata]:
        """The records of one type ([] when the name or the type does not exist); DnsFailure otherwise."""
        left = min(self.timeout, self.deadline - time.monotonic())
        if left <= 0:
            raise DnsFailure("time for DNS lookups is up")
        try:
            answer = self.resolver.resolve(name, qtype, lifetime=left, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration,
                dns.resolver.YXDOMAIN) as exc:
            raise DnsFailure(f"{type(exc).__name__} looking up {qtype} {name}") from exc
        except dns.exception.DNSException as exc:  # a name DNS cannot carry (too long, empty label)
            raise DnsFailure(f"{type(exc).__name__} looking up {qtype} {name}") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record of a name, its strings joined."""
        return [b"".join(r.strings) for r in self.resolve(name, "TXT")]  # type: ignore[attr-defined]

    def dkim_key(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: the first TXT record of a selector name, None when there is none."""
        records = self.txt(name.decode("ascii", "replace").rstrip("."))
        return records[0] if records else None

    def dmarc_record(self, name: str) -> str | None:
        """authheaders' `dnsfunc` for `_dmarc.` names: the one DMARC record, None when none or several."""
        found = [t.decode("utf-8", "replace") for t in self.txt(name) if t.startswith(b"v=DMARC1")]
        return found[0] if len(found) == 1 else None  # RFC 7489 6.6.3: two records count as none
