"""Who really sent it: SPF, DKIM and DMARC checked by our listener against a real DNS server (issue 15).

The DNS server is dnslib's, started by the test on a random port and serving the school's SPF, DKIM and
DMARC records; mails are signed with dkimpy by the test's own RSA key. A test can only connect from
127.0.0.1, so the cases that need another client address call `verify` with that address directly.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import time
from collections.abc import Iterator
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edudesk.core.config import IntakeSettings, Settings
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.sender import authserv_id_of, sender_verification
from edudesk.mailer.authverify import TIME_FACTOR, verify, with_results
from edudesk.mailer.parse import parse_mail
from tests.conftest import wait_until
from tests.mails import mail
from tests.servers.dns import LocalDns, local_dns, silent_udp_port  # noqa: F401 - the fixture

SCHOOL = "thpt-nguyenhue.edu.vn"  # a hyphen: authheaders' own address reader would cut it to "thpt"
OWN = "edudesk.test"
OUTSIDE_IP = "192.0.2.7"  # not in the school's SPF record


class Key:
    """An RSA key pair: PEM for dkimpy, the DKIM TXT record for the zone."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.record = f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {"school": Key(), "other": Key()}


@pytest.fixture
def zone(local_dns: LocalDns, keys: dict[str, Key]) -> Iterator[LocalDns]:  # noqa: F811
    """The school publishes SPF (only 127.0.0.1 may send), a DKIM key and DMARC p=reject; other.org a key."""
    local_dns.txt(SCHOOL, "v=spf1 ip4:127.0.0.1 -all")
    local_dns.txt(f"sel._domainkey.{SCHOOL}", keys["school"].record)
    local_dns.txt(f"_dmarc.{SCHOOL}", "v=DMARC1; p=reject; rua=mailto:dmarc@" + SCHOOL)
    local_dns.txt("other.org", "v=spf1 -all")
    local_dns.txt("sel._domainkey.other.org", keys["other"].record)
    yield local_dns


def intake(dns: str, **more: Any) -> IntakeSettings:
    return IntakeSettings(authserv_id=OWN, dns_servers=(dns,), dns_timeout_seconds=2.0, **more)


def reset_mail(sender: str = f"Phòng Đào tạo <daotao@{SCHOOL}>", **kwargs: Any) -> bytes:
    return mail(sender=sender, to=f"cntt@{SCHOOL}", subject="Cấp lại mật khẩu",
                body="Đề nghị cấp lại mật khẩu.\nHọ và tên: Nguyễn Văn An\nMã số học sinh: 20201234\n", **kwargs)


def signed(raw: bytes, key: Key, domain: str = SCHOOL) -> bytes:
    return dkim.sign(raw, b"sel", domain.encode(), key.pem, include_headers=[b"from", b"to", b"subject"]) + raw


def ours(raw: bytes) -> list[str]:
    """The Authentication-Results values carrying our id."""
    values = parse_mail(raw).header("authentication-results").splitlines()
    return [v for v in values if authserv_id_of(v) == OWN]


def judged(raw: bytes, value: str, **intake_overrides: Any) -> Any:
    """What the intake would conclude from the mail as stored with our header on top."""
    settings = Settings.model_validate({"intake": {"authserv_id": OWN, **intake_overrides}})
    return sender_verification(parse_mail(with_results(raw, value, OWN)), settings)


# --- the listener -----------------------------------------------------------------------------------------

def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.thpt-nguyenhue.edu.vn")
        client.sendmail(sender, [f"cntt@{SCHOOL}"], raw)


async def listener(app_factory: Any, settings_factory: Any, dns: str, **smtpd: Any) -> Any:
    settings = settings_factory(intake={"authserv_id": OWN, "dns_servers": [dns], "dns_timeout_seconds": 2.0},
                                smtpd=smtpd)
    app = await app_factory(settings, inline_analysis=False)
    assert app.smtp is not None
    await app.smtp.start()
    return app, settings


@pytest.mark.db
async def test_signed_mail_from_outside_is_stored_with_exactly_one_header_of_ours_and_verifies(
        app_factory: Any, settings_factory: Any, zone: LocalDns, keys: dict[str, Key]) -> None:
    app, settings = await listener(app_factory, settings_factory, zone.address, trusted_relays=[])
    forged = {"Authentication-Results": f"{OWN}; spf=pass; dkim=pass header.d={SCHOOL}; dmarc=pass"}
    raw = signed(reset_mail(headers=forged), keys["school"])
    await asyncio.to_thread(send, app.smtp.port, raw, f"daotao@{SCHOOL}")
    stored = (await wait_until(lambda: InboundMail.first())).content
    assert stored.startswith(b"Authentication-Results: " + OWN.encode() + b";")
    [value] = ours(stored)
    assert "spf=pass" in value and f"header.d={SCHOOL}" in value and "policy.dmarc=reject" in value
    found = sender_verification(parse_mail(stored), settings)
    assert (found.verified, found.to_json()) == (True, {"spf": "pass", "dkim": "pass", "dmarc": "pass"})
    assert found.dmarc_policy == "reject"
    assert stored.endswith(raw.split(b"\r\n\r\n", 1)[1])  # the body is untouched


@pytest.mark.db
async def test_mail_from_a_trusted_relay_is_judged_by_the_relays_header_not_by_forged_ones(
        app_factory: Any, settings_factory: Any, zone: LocalDns) -> None:
    app, _ = await listener(app_factory, settings_factory, zone.address)  # 127.0.0.1 is a relay by default
    relay = f"mx.{SCHOOL}"
    raw = (f"Authentication-Results: {relay}; spf=fail smtp.mailfrom=daotao@{SCHOOL}; dkim=none; "
           f"dmarc=fail (p=reject) header.from={SCHOOL}\r\n").encode() + reset_mail(headers={
               "Authentication-Results": f"{relay}; spf=pass; dkim=pass header.d={SCHOOL}; dmarc=pass"})
    raw = raw.replace(b"\r\nFrom:", f"\r\nAuthentication-Results: {OWN}; dmarc=pass\r\nFrom:".encode(), 1)
    await asyncio.to_thread(send, app.smtp.port, raw, f"daotao@{SCHOOL}")
    stored = (await wait_until(lambda: InboundMail.first())).content
    assert ours(stored) == []  # nothing of ours was written, and the forged copy with our id is gone
    assert zone.zone.asked == []  # the relay's mail was not checked again
    settings = Settings.model_validate({"intake": {"authserv_id": OWN, "trusted_authserv_ids": [relay]}})
    found = sender_verification(parse_mail(stored), settings)
    assert (found.verified, found.results["dmarc"], found.authserv_id) == (False, "fail", relay)


@pytest.mark.db
async def test_listener_with_verification_off_writes_nothing_of_its_own(
        app_factory: Any, settings_factory: Any, zone: LocalDns, keys: dict[str, Key]) -> None:
    settings = settings_factory(intake={"authserv_id": OWN, "dns_servers": [zone.address], "verify_senders": False},
                                smtpd={"trusted_relays": []})
    app = await app_factory(settings, inline_analysis=False)
    await app.smtp.start()
    await asyncio.to_thread(send, app.smtp.port, signed(reset_mail(), keys["school"]), f"daotao@{SCHOOL}")
    stored = (await wait_until(lambda: InboundMail.first())).content
    assert ours(stored) == [] and zone.zone.asked == []
    assert sender_verification(parse_mail(stored), settings).verified is None


# --- verify, from any client address -----------------------------------------------------------------------

def test_a_body_altered_after_signing_fails_dkim_and_from_outside_dmarc(zone: LocalDns, keys: dict[str, Key]) -> None:
    raw = signed(reset_mail(), keys["school"]).replace(b"20201234", b"20209999")
    value = verify(raw, OUTSIDE_IP, "mx.attacker.example", f"daotao@{SCHOOL}", intake(zone.address))
    assert judged(raw, value).to_json() == {"spf": "fail", "dkim": "fail", "dmarc": "fail"}
    assert judged(raw, value).verified is False


def test_an_unsigned_mail_has_no_dkim_result_and_spf_alone_decides(zone: LocalDns) -> None:
    raw = reset_mail()
    inside = verify(raw, "127.0.0.1", "mail.thpt-nguyenhue.edu.vn", f"daotao@{SCHOOL}", intake(zone.address))
    assert judged(raw, inside).to_json() == {"spf": "pass", "dkim": "none", "dmarc": "pass"}
    assert judged(raw, inside).verified is True
    outside = verify(raw, OUTSIDE_IP, "mx.attacker.example", f"daotao@{SCHOOL}", intake(zone.address))
    assert judged(raw, outside).to_json() == {"spf": "fail", "dkim": "none", "dmarc": "fail"}
    assert judged(raw, outside).verified is False


def test_a_signature_by_another_domain_is_not_aligned_with_the_from(zone: LocalDns, keys: dict[str, Key]) -> None:
    raw = signed(reset_mail(), keys["other"], "other.org")
    value = verify(raw, OUTSIDE_IP, "mx.other.org", "bounce@other.org", intake(zone.address))
    assert "header.d=other.org" in value
    found = judged(raw, value)
    assert (found.to_json(), found.verified) == ({"spf": "fail", "dkim": "pass", "dmarc": "fail"}, False)
    # a From domain without a DMARC record: the passing signature still is not the sender's
    raw = signed(reset_mail(sender="Thầy Bình <binh@no-dmarc.edu.vn>"), keys["other"], "other.org")
    value = verify(raw, OUTSIDE_IP, "mx.other.org", "bounce@other.org", intake(zone.address))
    found = judged(raw, value)
    assert (found.to_json(), found.verified) == ({"spf": "fail", "dkim": "pass", "dmarc": "none"}, False)


def test_every_signature_is_checked_and_one_aligned_pass_is_enough(zone: LocalDns, keys: dict[str, Key]) -> None:
    raw = signed(signed(reset_mail(), keys["school"]), keys["school"], "other.org")  # other.org: wrong key
    value = verify(raw, OUTSIDE_IP, "mx.example", f"daotao@{SCHOOL}", intake(zone.address))
    assert "dkim=fail header.d=other.org" in value and f"dkim=pass header.d={SCHOOL}" in value
    assert judged(raw, value).to_json() == {"spf": "fail", "dkim": "pass", "dmarc": "pass"}


def test_a_dns_server_that_does_not_answer_gives_temperror_in_bounded_time() -> None:
    sock, address = silent_udp_port()
    try:
        settings = IntakeSettings(authserv_id=OWN, dns_servers=(address,), dns_timeout_seconds=0.2)
        started = time.monotonic()
        value = verify(reset_mail(), OUTSIDE_IP, "mx.example", f"daotao@{SCHOOL}", settings)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert value.startswith(f"{OWN}; spf=temperror")
    assert "dkim=none" in value and "dmarc=temperror" in value
    assert elapsed < TIME_FACTOR * 0.2 + 1.0
    assert judged(reset_mail(), value).verified is False


def test_garbage_gets_results_not_a_crash(zone: LocalDns) -> None:
    raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=; b=%%%\r\nFrom: a@@b, <c@d>\r\n\r\nx\r\n"
    value = verify(raw, "not-an-ip", "", "", intake(zone.address))
    assert value.startswith(f"{OWN}; spf=permerror") and "dmarc=permerror" in value


def test_forged_headers_with_our_id_are_removed_and_ours_is_the_only_one(zone: LocalDns) -> None:
    raw = (f"Authentication-Results: {OWN.upper()};\r\n dkim=pass\r\n").encode() + reset_mail(
        headers={"Authentication-Results": "mx.google.com; dmarc=fail"})
    stored = with_results(raw, f"{OWN}; spf=none; dkim=none; dmarc=none", OWN)
    assert ours(stored) == [f"{OWN}; spf=none; dkim=none; dmarc=none"]
    assert b"mx.google.com; dmarc=fail" in stored  # other servers' headers stay where they were
