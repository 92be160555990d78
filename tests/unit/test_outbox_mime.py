"""The acknowledgement's MIME built faster (`mailer/outbox.py`) says what the stdlib's says.

Two shortcuts: quoted-printable bodies encoded by `binascii` instead of `email.quoprimime` (the same
headers, a body that decodes to the same text in lines as short; the two place a few soft line breaks
differently, and binascii also encodes a lone "." line), and short ASCII header lines written without
running them through compat32's `Header` folding (byte for byte the same).
"""

from __future__ import annotations

import email
import random
import re
import unicodedata
from email.mime.text import MIMEText
from email.policy import compat32

import pytest

from edudesk.core.ports import OutgoingMessage
from edudesk.mailer.outbox import (
    _CRLF,
    _LF,
    _UTF8_QP,
    _alternative_bytes,
    _email_message,
    _text_part,
    mime_bytes,
    to_mime,
)

VIETNAMESE = "Kính gửi: Phòng Đào tạo. Yêu cầu cấp tài khoản thư điện tử đã được tiếp nhận, mã YC-123."
BODIES = [
    "",
    "một dòng không xuống dòng",
    VIETNAMESE + "\n",
    unicodedata.normalize("NFD", VIETNAMESE) + "\n",
    (VIETNAMESE + " ") * 8 + "\n",  # one long line: soft line breaks
    "x" * 75 + "\n" + "y" * 76 + "\n" + "z" * 77 + "\n" + "=" * 30 + "\n",
    "trailing space \ntrailing tab\t\n  indented\n\n\n.dot line\nFrom me\n",
    "a = b; c=d =3D already\n\tTab start\n",
    "emoji 📎 and đ" * 20 + "\n",
    "<p>Kính gửi: <b>Phòng Đào tạo</b></p>\n<a href=\"https://truong.edu.vn/x?a=1&b=2\">link</a>\n",
    "with CR\r\nlines\r\n",
]


def _stock_part(body: str, subtype: str) -> bytes:
    return MIMEText(body, subtype, _UTF8_QP).as_bytes(policy=compat32.clone(linesep="\n"))  # type: ignore[arg-type]


def _decoded(data: bytes) -> bytes:
    payload = email.message_from_bytes(data).get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def _random_bodies(count: int) -> list[str]:
    rng = random.Random(19)
    alphabet = list("aăâbcdđeêghiklmnoôơpqrstuưvxyAĐƠ ạảãàáộờ.,;:=\t\n-_?!\"'") + [" ", " ", "\n", "📎", "\u0301"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))) for _ in range(count)]


@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_text_parts_say_what_mimetext_says_in_lines_as_short(subtype: str) -> None:
    same = 0
    for body in BODIES + _random_bodies(300):
        ours = _text_part(body, subtype).as_bytes(policy=compat32.clone(linesep="\n"))
        stock = _stock_part(body, subtype)
        assert ours.split(b"\n\n")[0] == stock.split(b"\n\n")[0]  # the part's headers
        assert _decoded(ours) == _decoded(stock) == body.replace("\r\n", "\n").encode("utf-8"), body
        assert ours.isascii()
        assert max(map(len, ours.split(b"\n"))) <= 76
        same += ours == stock
    assert same >= 290  # nearly always the very same bytes


HEADERS = [
    ("To", "x@y.vn"),
    ("To", "a@b.vn, c@d.vn"),
    ("Message-ID", "<edudesk.ack-123@truong.edu.vn>"),
    ("References", " ".join(f"<m{i}@example.org>" for i in range(12))),  # long: compat32 folds it
    ("Subject", "[YC-12] Received"),
    ("Subject", "two  spaces"),
    ("Subject", " leading"),
    ("Subject", ""),
    ("Subject", "=?utf-8?b?xJDDoyBuaOG6rW4=?="),
    ("X-Edudesk-Request", "none"),
    ("Content-Type", 'multipart/alternative; boundary="===============1234567890123456789=="'),
    ("Content-Type", 'text/plain; charset="utf-8"'),
    ("X-Long", "a" * 66),  # 78 with "X-Long: "
    ("X-Long", "a" * 67),  # 79
    ("X-Long", "a;" * 50),
    ("Date", "Mon, 07 Dec 2026 08:00:00 +0700"),
    ("X-Tab", "a\tb"),
    ("X-Folded", "=?utf-8?b?xJDDoyBuaOG6rW4=?=\n =?utf-8?b?xJDDoyBuaOG6rW4=?="),
    ("X-Unicode", "Đã nhận"),
]


@pytest.mark.parametrize(("linesep", "policy"), [("\n", _LF), ("\r\n", _CRLF)])
def test_header_lines_are_the_ones_compat32_folds(linesep: str, policy: object) -> None:
    stock = compat32.clone(linesep=linesep)
    for name, value in HEADERS:
        assert policy.fold(name, value) == stock.fold(name, value), (name, value)  # type: ignore[attr-defined]
        assert policy.fold_binary(name, value) == stock.fold_binary(name, value), (name, value)  # type: ignore[attr-defined]


def test_a_whole_acknowledgement_is_what_compat32_writes() -> None:
    message = OutgoingMessage(
        message_id="<edudesk.ack-1@truong.edu.vn>", sender="Phòng Công nghệ thông tin <it@truong.edu.vn>",
        to=("phongdaotao@gmail.com",), subject="[YC-123] Đã nhận yêu cầu cấp tài khoản thư điện tử",
        text=BODIES[4], html=BODIES[9], in_reply_to="<q@w.vn>", references=("<q@w.vn>",),
        headers={"Auto-Submitted": "auto-generated", "Content-Language": "vi",
                 "Date": "Mon, 07 Dec 2026 08:00:00 +0700"}, attachments=())
    boundary = re.compile(rb"=_edudesk_[0-9a-f]{24}")
    mail = _email_message(message)
    stock = mail.as_bytes(policy=compat32.clone(linesep="\r\n"))
    assert boundary.sub(b"B", stock) == boundary.sub(b"B", mail.as_bytes(policy=_CRLF))
    assert boundary.sub(b"B", to_mime(message)) == boundary.sub(b"B", stock)
    assert len(boundary.findall(stock)) == 4  # its parameter, the line before each part, and the closing line


def test_a_boundary_never_occurs_in_the_encoded_parts() -> None:
    """The boundary starts with "=_", which quoted-printable (it writes "=" as "=3D") and base64 never write."""
    text = "=_edudesk_ looks like a boundary =_ and so does this\n" + VIETNAMESE
    message = OutgoingMessage(
        message_id="<a@b.vn>", sender="it@truong.edu.vn", to=("x@y.vn",), subject="s", text=text, html=text,
        in_reply_to="", references=(), headers={}, attachments=(("a.bin", "application/octet-stream",
                                                                 bytes(range(256)) * 20),))
    data = to_mime(message)
    parsed = email.message_from_bytes(data)
    parts = [p for p in parsed.walk() if not p.is_multipart()]
    assert len(parts) == 3
    assert parts[0].get_payload(decode=True) == text.replace("\n", "\r\n").encode()  # on the wire: CRLF
    assert parts[2].get_payload(decode=True) == bytes(range(256)) * 20


def _random_messages(count: int) -> list[OutgoingMessage]:
    rng = random.Random(7)
    subjects = ["[YC-1] Đã nhận", "ascii subject", "[YC-123] " + VIETNAMESE, "x" * 90, "a  b", " lead", "",
                unicodedata.normalize("NFD", "Kết quả xử lý yêu cầu"), "trailing "]
    senders = ["it@truong.edu.vn", "Phòng Công nghệ thông tin <it@truong.edu.vn>", "IT Office <it@t.vn>",
               '"Phòng, CNTT" <it@t.vn>', "Trường Đại học Bách khoa Hà Nội - Phòng Công nghệ thông tin <it@t.vn>"]
    recipients = [("a@b.vn",), ("một@b.vn",), tuple(f"user{i}@truong.edu.vn" for i in range(6))]
    extra = [{}, {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
             {"X-Edudesk-Request": "123", "Content-Language": "vi"}, {"X-Note": "Ghi chú tiếng Việt dài " * 5},
             {"Subject": "a stray structural header", "Content-Type": "text/evil"}, {"date": "lower-case date"},
             {"X-Long": "v" * 100}]
    bodies = [b for b in BODIES if "\r" not in b] + _random_bodies(40)
    out = []
    for i in range(count):
        refs = tuple(f"<r{j}@x.vn>" for j in range(rng.randint(0, 25)))
        out.append(OutgoingMessage(
            message_id=f"<edudesk.m-{i}@truong.edu.vn>", sender=rng.choice(senders), to=rng.choice(recipients),
            subject=rng.choice(subjects), text=rng.choice(bodies), html=rng.choice(bodies) or "<p></p>",
            in_reply_to=rng.choice(["", "<q@w.vn>"]), references=refs,
            headers={**rng.choice(extra), "Date": "Mon, 07 Dec 2026 08:00:00 +0700"}, attachments=()))
    return out


@pytest.mark.parametrize("policy", [_CRLF, _LF], ids=["crlf", "lf"])
def test_alternative_mails_are_written_byte_for_byte_as_the_generator_writes_them(policy: object) -> None:
    boundary = re.compile(rb"=_edudesk_[0-9a-f]{24}")
    for message in _random_messages(400):
        fast = _alternative_bytes(message, policy)  # type: ignore[arg-type]
        assert fast is not None
        stock = _email_message(message).as_bytes(policy=policy)  # type: ignore[arg-type]
        assert boundary.sub(b"B", fast) == boundary.sub(b"B", stock), message
        assert len(set(boundary.findall(fast))) == 1
    # Without a Date header of its own the mail gets the current one, as before.
    plain = _random_messages(1)[0]
    undated = OutgoingMessage(**{**plain.__dict__, "headers": {"Auto-Submitted": "auto-generated"}})
    date = re.compile(rb"Date: [^\r\n]+")
    fast, stock = _alternative_bytes(undated, policy), _email_message(undated).as_bytes(policy=policy)  # type: ignore[arg-type]
    assert fast is not None and len(date.findall(fast)) == 1
    assert date.sub(b"D", boundary.sub(b"B", fast)) == date.sub(b"D", boundary.sub(b"B", stock))


def test_other_shapes_are_left_to_the_generator() -> None:
    base = _random_messages(1)[0]
    for change in ({"html": ""}, {"text": "with CR\r\n"}, {"html": "<p>CR\r</p>"},
                   {"attachments": (("a.txt", "text/plain", b"x"),)}):
        message = OutgoingMessage(**{**base.__dict__, **change})
        assert _alternative_bytes(message, _CRLF) is None
        assert email.message_from_bytes(mime_bytes(message, _CRLF))["Message-ID"] == base.message_id
