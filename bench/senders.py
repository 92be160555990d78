"""Sender-verification benchmark: what checking SPF, DKIM and DMARC at the listener costs per mail.

Not a test: it prints figures. A DKIM-signed form mail (RSA 2048, the school's SPF, DKIM key and DMARC p=reject
served by a local dnslib server, as in tests/integration/test_sender_verify.py) goes through
`mailer.authverify.verify` N times, each with a fresh resolver as the listener makes one per mail; beside it the
same mail through `mailer.parse.parse_mail` alone (what intake does with every mail anyway). Printed: ms per
mail for each and their ratio; the last line is one JSON object.

    .venv/bin/python bench/senders.py [--count 300]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dkim  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from edudesk.core.config import IntakeSettings  # noqa: E402
from edudesk.mailer.authverify import verify  # noqa: E402
from edudesk.mailer.parse import parse_mail  # noqa: E402
from tests.mails import mail  # noqa: E402
from tests.servers.dns import LocalDns  # noqa: E402

SCHOOL = "thpt-nguyenhue.edu.vn"


def main() -> None:
    """Time verification against parsing for `--count` mails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    count = parser.parse_args().count
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    dns = LocalDns()
    dns.txt(SCHOOL, "v=spf1 ip4:127.0.0.1 -all")
    dns.txt(f"sel._domainkey.{SCHOOL}", f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")
    dns.txt(f"_dmarc.{SCHOOL}", "v=DMARC1; p=reject")
    dns.start()
    try:
        raw = mail(sender=f"Phòng Đào tạo <daotao@{SCHOOL}>", to=f"cntt@{SCHOOL}", subject="Cấp lại mật khẩu",
                   body="Họ và tên: Nguyễn Văn An\nMã số học sinh: 20201234\nSĐT: 0912345678\n")
        raw = dkim.sign(raw, b"sel", SCHOOL.encode(), pem, include_headers=[b"from", b"to", b"subject"]) + raw
        settings = IntakeSettings(authserv_id="edudesk.test", dns_servers=(dns.address,), dns_timeout_seconds=2.0)
        value = verify(raw, "127.0.0.1", "mail.thpt-nguyenhue.edu.vn", f"daotao@{SCHOOL}", settings)
        assert "dmarc=pass" in value and "dkim=pass" in value and "spf=pass" in value, value
        start = time.perf_counter()
        for _ in range(count):
            verify(raw, "127.0.0.1", "mail.thpt-nguyenhue.edu.vn", f"daotao@{SCHOOL}", settings)
        verify_ms = (time.perf_counter() - start) * 1000 / count
        start = time.perf_counter()
        for _ in range(count):
            parse_mail(raw)
        parse_ms = (time.perf_counter() - start) * 1000 / count
    finally:
        dns.stop()
    print(f"verify (SPF+DKIM+DMARC, local DNS): {verify_ms:.2f} ms/mail over {count} mails")
    print(f"parse alone:                        {parse_ms:.2f} ms/mail")
    print(f"ratio verify/parse: {verify_ms / parse_ms:.2f}")
    print(json.dumps({"verify_ms": round(verify_ms, 3), "parse_ms": round(parse_ms, 3),
                      "ratio": round(verify_ms / parse_ms, 3), "count": count}))


if __name__ == "__main__":
    main()
