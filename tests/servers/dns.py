"""A real DNS server (dnslib) on a random 127.0.0.1 port, UDP and TCP, serving the records a test gives.

Names it does not know answer NXDOMAIN, as a real authoritative server would. For a server that never
answers (a DNS failure, which must read "temperror") use `silent_udp_port`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def _chunks(text: str) -> list[bytes]:
    data = text.encode("ascii")
    return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]


@dataclass
class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from `records`: {(name, "TXT"|"A"): [values]}, names without the trailing dot, lower case."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        """One answer per query, NXDOMAIN for unknown names."""
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.asked.append((name, qtype))
        reply = request.reply()
        values = self.records.get((name, qtype))
        if values is None:
            if not any(n == name for n, _ in self.records):
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in values:
            rdata = TXT(_chunks(value)) if qtype == "TXT" else A(value)
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


class _QuietLogger(DNSLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


class LocalDns:
    """The server pair (UDP + TCP on one port); `address` is the "127.0.0.1:port" for `[intake].dns_servers`."""

    def __init__(self) -> None:
        self.zone = ZoneResolver()
        self.servers: list[DNSServer] = []
        self.port = 0
        for _ in range(20):  # a free UDP port whose TCP twin is free too
            udp = DNSServer(self.zone, address="127.0.0.1", port=0, logger=_QuietLogger())
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.zone, address="127.0.0.1", port=port, tcp=True, logger=_QuietLogger())
            except OSError:
                udp.server.server_close()
                continue
            self.servers, self.port = [udp, tcp], port
            break
        else:
            raise RuntimeError("no free port pair for the test DNS server")

    @property
    def address(self) -> str:
        """Where to point the resolver."""
        return f"127.0.0.1:{self.port}"

    def txt(self, name: str, *values: str) -> None:
        """Serve TXT records (long ones are split in 255-byte strings, as in a real zone)."""
        self.zone.records[(name.lower().rstrip("."), "TXT")] = list(values)

    def start(self) -> None:
        """Serve in background threads."""
        for server in self.servers:
            threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        for server in self.servers:
            server.server.shutdown()
            server.server.server_close()


def silent_udp_port() -> tuple[socket.socket, str]:
    """A bound UDP socket nobody reads: a DNS server that never answers. Close the socket when done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    """A running DNS server with an empty zone; the test adds its records."""
    server = LocalDns()
    server.start()
    try:
        yield server
    finally:
        server.stop()
