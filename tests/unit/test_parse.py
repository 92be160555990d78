"""parse_mail: raw bytes as real mailers send them -> IncomingMail, never an exception."""

from __future__ import annotations

import base64
import random
import time
import unicodedata
from pathlib import Path

import pytest

from edudesk.core.intake.domain import IncomingMail
from edudesk.mailer import parse as parse_module
from edudesk.mailer.parse import parse_mail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"
CORPUS = sorted(FIXTURES.glob("*.eml"))


def load(name: str) -> IncomingMail:
    return parse_mail((FIXTURES / name).read_bytes())


def raw_mail(headers: str, body: bytes, *, extra: bytes = b"") -> bytes:
    head = "From: a@b.vn\r\nTo: cntt@b.vn\r\nSubject: x\r\nMIME-Version: 1.0\r\n" + headers
    return head.encode() + extra + b"\r\n" + body


def cp1258(text: str) -> bytes:
    """Windows-1258 as a Vietnamese keyboard writes it: base letter, then a combining tone mark."""
    tones = "\u0300\u0301\u0303\u0309\u0323"
    out = b""
    for ch in text:
        parts = unicodedata.normalize("NFD", ch)
        letter = unicodedata.normalize("NFC", "".join(c for c in parts if c not in tones))
        out += (letter + "".join(c for c in parts if c in tones)).encode("cp1258")
    return out


def is_nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


def test_corpus_has_the_promised_samples():
    assert len(CORPUS) >= 20


def test_utf8_gmail_mail_fills_every_field():
    mail = load("utf8_body_new_account.eml")
    assert mail.message_id == "CAGx8f=Qm1+ZkLwA@mail.gmail.com"
    assert mail.subject == "Đề nghị cấp tài khoản mới"
    assert (mail.from_name, mail.from_addr) == ("Nguyễn Thị Mai", "mai.nt@thpt-nguyenhue.edu.vn")
    assert mail.to == ("cntt@thpt-nguyenhue.edu.vn",)
    assert "Họ và tên: Nguyễn Thị Mai\nNgày sinh: 12/03/1990" in mail.text
    assert "\r" not in mail.text
    assert mail.html.startswith('<div dir="ltr">')
    assert mail.date is not None and mail.date.utcoffset() is not None
    assert mail.date.isoformat() == "2024-09-09T01:15:27+00:00"
    assert mail.defects == ()


def test_windows1258_body_decodes_to_nfc_vietnamese():
    mail = load("windows1258_body_password_reset.eml")
    assert "Họ và tên: Trần Văn Đức" in mail.text
    assert "Đề nghị cấp lại mật khẩu thư điện tử." in mail.text
    assert is_nfc(mail.text)


def test_windows1258_encoded_words_in_subject_and_name():
    mail = load("windows1258_body_password_reset.eml")
    assert mail.subject == "Cấp lại mật khẩu"
    assert mail.from_name == "Trần Văn Đức"
    assert is_nfc(mail.subject) and is_nfc(mail.from_name)


def test_latin1_label_on_cp1258_text_is_repaired():
    mail = load("latin1_label_on_cp1258_text.eml")
    assert "Họ và tên: Trần Văn Đức" in mail.text
    assert any("decoded as cp1258" in d for d in mail.defects)


def test_latin1_label_on_utf8_text_is_read_as_utf8():
    mail = load("latin1_label_on_utf8_text.eml")
    assert "Họ và tên: Nguyễn Thị Mai" in mail.text
    assert any("decoded as utf-8" in d for d in mail.defects)


def test_honest_latin1_text_is_not_turned_into_vietnamese():
    body = "Café crème, Müller, señor, però à bientôt".encode("latin-1")
    mail = parse_mail(raw_mail("Content-Type: text/plain; charset=iso-8859-1\r\n", body))
    assert mail.text == "Café crème, Müller, señor, però à bientôt"


def test_utf8_label_on_cp1258_bytes_is_repaired():
    body = cp1258("Đề nghị cấp lại mật khẩu")
    mail = parse_mail(raw_mail("Content-Type: text/plain; charset=utf-8\r\n", body))
    assert mail.text == "Đề nghị cấp lại mật khẩu"
    assert any("labelled utf-8, decoded as cp1258" in d for d in mail.defects)


def test_utf8_with_one_broken_byte_is_not_turned_into_mojibake():
    body = "Họ và tên: Nguyễn Thị Mai".encode() + b"\xff\n"
    mail = parse_mail(raw_mail("Content-Type: text/plain; charset=utf-8\r\n", body))
    assert mail.text.startswith("Họ và tên: Nguyễn Thị Mai")
    assert any("utf-8 with replacements" in d for d in mail.defects)


def test_unknown_charset_name_falls_back_and_is_recorded():
    mail = load("broken_mime_garbage_content_type.eml")
    assert "Họ và tên: Hoàng Anh" in mail.text
    assert any("x-unknown-vn" in d for d in mail.defects)


def test_rfc2047_subject_split_mid_character_and_mixed_charsets():
    mail = load("rfc2047_subject_split_words.eml")
    assert mail.subject == "Đề nghị cấp tài khoản cho học sinh lớp 10A1 – gấp"


def test_from_name_from_q_and_b_words():
    assert load("rfc2047_subject_split_words.eml").from_name == "Lê Hoàng Phương"


def test_nfd_input_is_normalised_to_nfc_everywhere():
    mail = load("nfd_subject_and_body_macos.eml")
    assert mail.subject == "Yêu cầu cấp tài khoản"
    assert mail.from_name == "Phạm Thị Hương"
    assert "Họ và tên: Nguyễn Thị Mai" in mail.text
    assert [a.filename for a in mail.attachments] == ["Đơn đề nghị.docx"]
    assert all(is_nfc(s) for s in (mail.subject, mail.from_name, mail.text, mail.attachments[0].filename))


def test_html_only_mail_gets_a_text_rendering():
    mail = load("html_only_body.eml")
    assert mail.html.startswith("<html>")
    assert "Họ và tên:\tVõ Minh Khoa" in mail.text
    assert "Lớp:\t11A2" in mail.text
    assert "Đề nghị cấp tài khoản cho em.\nTrân trọng & cảm ơn" in mail.text
    assert "alert" not in mail.text and "padding" not in mail.text and "<" not in mail.text


def test_outlook_inline_image_is_an_attachment_and_text_is_the_plain_part():
    mail = load("outlook_alternative_inline_images.eml")
    assert mail.from_name == "Đặng Quốc Bảo"
    assert mail.text.startswith("Kính gửi Tổ Tin học,\n")
    assert "<br>" in mail.html
    assert [(a.filename, a.content_type) for a in mail.attachments] == [("image001.png", "image/png")]
    assert mail.attachments[0].payload.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "name",
    [
        "broken_mime_missing_boundary.eml",
        "broken_mime_bad_base64.eml",
        "broken_mime_garbage_content_type.eml",
    ],
)
def test_broken_mime_never_raises_and_records_defect(name):
    mail = load(name)
    assert isinstance(mail, IncomingMail)
    assert mail.defects
    assert mail.text.strip()


def test_truncated_mail_keeps_what_arrived():
    mail = load("broken_mime_missing_boundary.eml")
    assert mail.text == "Họ và tên: Bùi Thanh Tâm\n"
    assert any("CloseBoundaryNotFound" in d for d in mail.defects)
    assert mail.attachments[0].filename == "ds.pdf"


def test_bad_base64_is_decoded_leniently():
    mail = load("broken_mime_bad_base64.eml")
    assert "Họ và tên: Lý Thu Hà" in mail.text
    assert any("Base64" in d for d in mail.defects)


def test_missing_message_id_is_empty_and_missing_date_is_none():
    mail = load("no_message_id.eml")
    assert mail.message_id == ""
    assert mail.date is None


def test_return_path_absent_is_none_and_null_path_is_empty():
    assert load("utf8_body_new_account.eml").return_path is None
    assert load("dsn_bounce_multipart_report.eml").return_path == ""
    assert load("dmarc_fail_institutional.eml").return_path == "bounce@mailer.example-bulk.ru"


def test_threading_headers_lose_their_brackets():
    mail = load("reply_with_request_number.eml")
    assert mail.in_reply_to == "yc7-ack@edudesk"
    assert mail.references == ("CAGx8f=Qm1+ZkLwA@mail.gmail.com", "yc7-ack@edudesk")
    assert mail.subject == "Re: [YC-7] Đã tiếp nhận yêu cầu"


def test_addresses_are_lower_cased_and_cc_is_read():
    mail = load("reply_all_from_cc_person.eml")
    assert mail.from_addr == "totruong.toan@thpt-nguyenhue.edu.vn"
    assert mail.to == ("cntt@thpt-nguyenhue.edu.vn", "mai.nt@thpt-nguyenhue.edu.vn")
    assert mail.cc == ("hieupho@thpt-nguyenhue.edu.vn", "giaovu@thpt-nguyenhue.edu.vn")
    assert load("reply_with_request_number.eml").from_addr == "mai.nt@thpt-nguyenhue.edu.vn"


def test_reply_to_is_kept():
    assert load("spoofed_free_mail_sender.eml").reply_to == "tro.ly.ht@mail-vn.ru"


def test_raw_8bit_utf8_headers_are_decoded():
    mail = load("raw_8bit_utf8_headers.eml")
    assert mail.subject == "Đề nghị cấp tài khoản – Đỗ Văn Hùng"
    assert mail.from_name == "Đỗ Văn Hùng"


def test_raw_8bit_cp1258_header_is_decoded():
    subject = b"Subject: " + cp1258("Đề nghị cấp tài khoản") + b"\r\n"
    mail = parse_mail(b"From: " + cp1258("Trần Đức") + b" <a@b.vn>\r\n" + subject + b"\r\nbody")
    assert mail.from_name == "Trần Đức"
    assert mail.subject == "Đề nghị cấp tài khoản"


def test_raw_8bit_headers_are_recorded_as_defects():
    assert "header subject: raw 8-bit text (no RFC 2047)" in load("raw_8bit_utf8_headers.eml").defects


def test_garbage_charset_and_broken_base64_in_encoded_words():
    raw = (b"From: =?x-no-such-charset?Q?L=C3=AA_An?= <an@b.vn>\r\n"
           b"Subject: =?utf-8?B?xJDhu4Egbmdo4buL?= =?utf-8?B?IGPhuqVw!!IH?= =?utf-8?Q?broken=?=\r\n\r\nhi")
    mail = parse_mail(raw)
    assert mail.from_name == "Lê An"
    assert mail.subject.startswith("Đề nghị c")


def test_attachment_names_rfc2231_rfc2047_and_generated():
    mail = load("rfc2231_vietnamese_attachment_names.eml")
    names = [a.filename for a in mail.attachments]
    assert names == [
        "Đơn đề nghị cấp tài khoản.docx",
        "Danh sách học sinh lớp 10A1 năm học 2024-2025.xlsx",
        "Biên bản.doc",
        "part-6.pdf",
    ]
    assert mail.attachments[0].payload.startswith(b"PK\x03\x04")
    assert mail.attachments[3].content_type == "application/pdf"
    assert mail.attachments[3].payload == b"%PDF-1.4\n%%EOF\n"
    assert mail.text == "Gửi kèm đơn và danh sách.\n"


def test_forwarded_message_is_kept_whole_as_an_eml_attachment():
    mail = load("nested_forwarded_message.eml")
    assert mail.text == "Chuyển Tổ Tin học xử lý.\n"
    (inner,) = mail.attachments
    assert (inner.filename, inner.content_type) == ("de-nghi.eml", "message/rfc822")
    assert parse_mail(inner.payload).subject == "Đề nghị cấp tài khoản"


def test_dsn_human_part_is_text_and_reports_are_attachments():
    mail = load("dsn_bounce_multipart_report.eml")
    assert "could not\nbe delivered" in mail.text
    assert [a.content_type for a in mail.attachments] == ["message/delivery-status", "message/rfc822"]
    assert b"Status: 5.4.4" in mail.attachments[0].payload


def test_headers_are_lower_case_and_decoded():
    mail = load("own_acknowledgement_returned.eml")
    assert mail.headers["auto-submitted"] == "auto-generated"
    assert mail.header("X-Edudesk-Request") == "7"
    assert mail.headers["subject"] == "[YC-7] Đã tiếp nhận yêu cầu"
    assert mail.headers["content-type"] == "text/plain; charset=utf-8"
    results = load("dmarc_fail_institutional.eml").header("authentication-results")
    assert "dmarc=fail" in results and "\t" not in results


def test_repeated_headers_are_joined_topmost_first():
    mail = parse_mail(
        b"Authentication-Results: mx.ours; spf=fail\r\nAuthentication-Results: x; spf=pass\r\n"
        b"From: a@b.vn\r\n\r\nhi"
    )
    assert mail.header("authentication-results") == "mx.ours; spf=fail\nx; spf=pass"


def test_date_is_aware_even_when_mail_parser_rejects_the_format():
    mail = parse_mail(b"From: a@b.vn\r\nDate: Mon, 9 Sep 2024 08:15:27 +0700 (ICT)\r\n\r\nhi")
    assert mail.date is not None and mail.date.tzinfo is not None
    assert parse_mail(b"From: a@b.vn\r\nDate: yesterday\r\n\r\nhi").date is None


def test_mail_parser_failure_falls_back_to_the_stdlib(monkeypatch):
    def broken(raw):
        raise RuntimeError("mail-parser bug")

    monkeypatch.setattr(parse_module.mailparser, "parse_from_bytes", broken)
    mail = load("utf8_body_new_account.eml")
    assert mail.subject == "Đề nghị cấp tài khoản mới"
    assert "Nguyễn Thị Mai" in mail.text
    assert any("mail-parser failed" in d for d in mail.defects)


def test_deeply_nested_multipart_never_raises():
    depth = 3000
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth)
    )
    mail = parse_mail(b"From: a@b.vn\r\nSubject: bomb\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi\r\n")
    assert mail.subject == "bomb"
    assert mail.defects


def test_large_attachment_is_decoded_whole():
    payload = random.Random(7).randbytes(5 * 1024 * 1024)
    encoded = base64.encodebytes(payload)
    raw = raw_mail(
        'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/plain\r\n\r\nhi\r\n--m\r\nContent-Type: application/zip\r\n"
        b"Content-Disposition: attachment; filename=big.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--m--\r\n",
    )
    mail = parse_mail(raw)
    assert mail.attachments[0].filename == "big.zip"
    assert mail.attachments[0].payload == payload


def test_random_bytes_and_mangled_corpus_never_raise():
    rng = random.Random(20240909)
    samples = [rng.randbytes(rng.randint(0, 400)) for _ in range(150)]
    samples += [b"", b"\r\n\r\n", b":", b"From:\r\n", b"\x00" * 50, "Subject: ☃\r\n\r\n".encode("utf-16")]
    for path in CORPUS:
        raw = path.read_bytes()
        for _ in range(8):
            cut = raw[: rng.randint(0, len(raw))]  # truncated in transit
            flipped = bytearray(raw)
            for _ in range(rng.randint(1, 30)):  # bit rot, including inside headers and base64
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            lines = raw.split(b"\n")
            rng.shuffle(lines)  # headers and boundaries out of order
            samples += [cut, bytes(flipped), b"\n".join(lines)]
    for raw in samples:
        mail = parse_mail(raw)
        assert isinstance(mail, IncomingMail)
        assert isinstance(mail.text, str) and "\x00" not in mail.text
        for value in (mail.subject, mail.from_name, mail.text, *mail.headers.values()):
            value.encode("utf-8")  # no lone surrogates: the database and JSON must take every string


def test_parse_is_fast_enough_for_every_mail():
    raw = (FIXTURES / "rfc2231_vietnamese_attachment_names.eml").read_bytes()
    start = time.process_time()
    for _ in range(50):
        parse_mail(raw)
    assert (time.process_time() - start) / 50 < 0.05  # generous: a few ms is normal, see bench/
