"""Raw mail bytes -> `IncomingMail`: mail-parser builds the MIME tree, we repair what it cannot.

mail-parser gives the message tree, the date and its header diagnostics. Header text, addresses and
bodies are decoded again from the raw octets, because mail-parser decodes with the declared charset and
drops what does not fit, and Vietnamese mail is routinely mislabelled (cp1258 sent as iso-8859-1, raw
8-bit UTF-8 headers, NFD from macOS). Nothing here raises: what went wrong goes into `defects`.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.policy
import email.utils
import logging
import mimetypes
import quopri
import re
import unicodedata
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from html.parser import HTMLParser

import mailparser
from mailparser.exceptions import MailParserRecursionError

from edudesk.core.intake.domain import Attachment, IncomingMail
from edudesk.core.intake.sender import FROM_UNTRUSTED
from edudesk.core.text import clean, nfc

_TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
# letters only Vietnamese text has (ă, ơ, ư, ạ, ễ ...): cp1252 can never produce them, so they tell a
# correct windows-1258 decoding from a latin-1 one, whose Vietnamese-looking à/ê/ì come in pieces
_VI = frozenset(nfc(v + t) for b in "aăâeêioôơuưy" for v in (b, b.upper()) for t in _TONES) | set("đĐ")
_VI -= set(bytes(range(65, 256)).decode("latin-1"))
_SHARED = set("ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúý")  # Vietnamese letters latin-1 has too
_WESTERN = {"", "ascii", "iso8859-1", "cp1252", "iso8859-15"}
_NOT_CHARSETS = {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_IDS = re.compile(r"<([^<>\s]+)>")
_ANGLE = re.compile(r"<([^<>]*)>")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_DOMAIN_CHAR = r"a-z0-9\u00a0-\uffff"  # letters of internationalised domains too
_ADDR_SPEC = re.compile(rf"[^\s@<>()\[\],;:\"\\]+@[{_DOMAIN_CHAR}](?:[{_DOMAIN_CHAR}.-]*[{_DOMAIN_CHAR}])?")
_MAX_PARTS = 500  # a bound on work per mail; real mail has a handful of parts
_MAX_FORWARDED = 5  # forwarded mails parsed per mail; the rest stay plain attachments
_BLOCKS = {"p", "div", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}
_HTML_START = {"br": "\n", "hr": "\n", "li": "\n- ", "td": "\t", "th": "\t"} | dict.fromkeys(_BLOCKS, "\n")
# mail-parser logs every part that is not text and every header it cannot decode; we decode those
# again ourselves and list real problems in `defects`, so its log would only be noise per mail
logging.getLogger("mailparser").setLevel(logging.CRITICAL)


def parse_mail(raw: bytes) -> IncomingMail:
    """Parse one raw mail; never raises, every problem found is listed in `defects`."""
    defects: list[str] = []
    data = b""
    try:
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        return _parse(data, defects)
    except Exception as exc:  # the intake must keep going with whatever we can still say
        defects.append(f"parse-failed: {type(exc).__name__}: {str(exc)[:200]}")
        text = data.decode("utf-8", "replace").replace("\x00", "")
        return IncomingMail(message_id="", subject="", from_addr="", text=text, defects=tuple(defects))


def _parse(raw: bytes, defects: list[str], depth: int = 0) -> IncomingMail:
    msg, mp = _message(raw, defects)
    lists: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        if name.isascii() and name.isprintable():  # binary garbage can look like a header name
            lists.setdefault(name.lower().strip(), []).append(value)
    headers = {k: "\n".join(_header_text(v) for v in vs) for k, vs in lists.items()}
    defects.extend(f"header {k}: raw 8-bit text (no RFC 2047)" for k, vs in lists.items()
                   if not all(str(v).isascii() for v in vs))
    first = {k: _unfold(vs[0]) for k, vs in lists.items()}  # Return-Path: the topmost is the latest
    from_name, from_addr, from_problem = read_from(",".join(lists.get("from", [])))
    if from_problem:
        defects.append(f"{FROM_UNTRUSTED} {from_problem}")
    plain, html, attachments = _walk(msg, defects)
    return IncomingMail(
        forwarded=_forwarded(msg, attachments, depth),
        message_id=next(iter(_ids(headers.get("message-id", ""))), ""),
        subject=clean(headers.get("subject", "").split("\n")[0]),
        from_addr=from_addr,
        from_name=from_name,
        to=tuple(a for _, a in _addresses(",".join(lists.get("to", [])))),
        cc=tuple(a for _, a in _addresses(",".join(lists.get("cc", [])))),
        reply_to=next((a for _, a in _addresses(first.get("reply-to", ""))), ""),
        return_path=_return_path(first.get("return-path")),
        in_reply_to=next(iter(_ids(headers.get("in-reply-to", ""))), ""),
        references=tuple(dict.fromkeys(_ids(headers.get("references", "")))),
        date=_date(mp, headers.get("date", "").split("\n")[0], defects),
        text=("\n".join(plain) or _html_text("\n".join(html))).replace("\x00", ""),
        html="\n".join(html).replace("\x00", ""),
        attachments=tuple(attachments),
        headers=headers,
        defects=tuple(dict.fromkeys(d[:300] for d in defects)),
    )


def _forwarded(msg: Message, attachments: list[Attachment], depth: int) -> tuple[IncomingMail, ...]:
    """Mails forwarded as attachments (message/rfc822), parsed one level deep; a bounce's copy of our own
    mail (multipart/report) is no forward."""
    if depth or msg.get_content_type() == "multipart/report":
        return ()
    found: list[IncomingMail] = []
    for att in attachments:
        if att.content_type == "message/rfc822" and att.payload and len(found) < _MAX_FORWARDED:
            inner: list[str] = []  # the inner mail's defects are its own, not the forwarder's
            try:
                found.append(_parse(att.payload, inner, depth + 1))
            except Exception:  # a broken forwarded mail costs only itself
                continue
    return tuple(found)


def _message(raw: bytes, defects: list[str]) -> tuple[Message, object | None]:
    """mail-parser first; the stdlib parsers when it gives up; headers only as the last resort."""
    nested = False
    try:
        mp = mailparser.parse_from_bytes(raw)
        for item in mp.defects:  # only its header diagnostics: part defects are collected in _walk
            for key in ("address-headers", "date-headers", "mime-headers"):
                defects.extend(item.get(key, []) if isinstance(item, dict) else [])
        return mp.message, mp
    except Exception as exc:
        defects.append(f"mail-parser failed ({type(exc).__name__}); parsed with the stdlib")
        # the stdlib parsers recurse the way mail-parser's did: go straight to headers only
        nested = isinstance(exc, RecursionError | MailParserRecursionError)
    for policy in () if nested else (email.policy.default, email.policy.compat32):
        try:
            return email.message_from_bytes(raw, policy=policy), None
        except Exception as exc:
            defects.append(f"stdlib parser ({policy.__class__.__name__}) failed: {type(exc).__name__}")
    # headersonly never recurses into parts: a nesting bomb ends up as one undecoded body
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True), None


def _walk(msg: Message, defects: list[str]) -> tuple[list[str], list[str], list[Attachment]]:
    """Depth-first over the parts without recursion: body texts in order, everything else attached."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    stack, count = [msg], 0
    while stack and count < _MAX_PARTS:
        part = stack.pop()
        count += 1
        ctype = "?"
        try:
            ctype = part.get_content_type()
            payload = part.get_payload()
            if ctype.startswith("message/"):  # forwarded mail, DSN report: keep whole, out of the body
                attachments.append(Attachment(_filename(part, count), ctype, _message_bytes(payload)))
            elif isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            elif _is_body(part, ctype):
                body, note = _decode(_payload_bytes(part), _charset(part))
                defects.extend([f"part {count} {ctype}: {note}"] if note else [])
                body = body.replace("\r\n", "\n").replace("\r", "\n")
                (html if ctype == "text/html" else plain).append(body)
            else:
                attachments.append(Attachment(_filename(part, count), ctype, _payload_bytes(part)))
        except Exception as exc:  # one bad part must not cost the others
            defects.append(f"part {count} {ctype}: unreadable ({type(exc).__name__})")
        # collected last: the stdlib records bad base64 only while decoding the payload
        defects.extend(f"part {count} {ctype}: {type(d).__name__}" for d in part.defects)
    if stack:
        defects.append(f"more than {_MAX_PARTS} MIME parts: the rest was skipped")
    return plain, html, attachments


def _is_body(part: Message, ctype: str) -> bool:
    if ctype.startswith("multipart/"):  # a multipart without a usable boundary: its text is the body
        return True
    named = _filename(part, 0, generate=False)
    inline = part.get_content_disposition() != "attachment"
    return ctype in ("text/plain", "text/html") and not named and inline


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # e.g. a uuencoded body the stdlib chokes on: keep the raw text
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _message_bytes(payload: object) -> bytes:
    out = []
    for item in payload if isinstance(payload, list) else [payload]:
        if not isinstance(item, Message):  # compat32 keeps 8-bit octets as surrogates: undo that
            out.append(str(item).encode("utf-8", "surrogateescape"))
            continue
        try:
            out.append(item.as_bytes())
        except Exception:  # odd charsets make the generator fail; the headers alone still help
            out.append("".join(f"{k}: {v}\n" for k, v in item.items()).encode("utf-8", "replace"))
    return b"\n".join(out)


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return "?"


def _filename(part: Message, index: int, generate: bool = True) -> str:
    """RFC 2231, RFC 2047 or raw 8-bit names, repaired like any header; a made-up name when missing."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, header=header)
        except Exception:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, octets as a latin-1 str)
            text = _decode(value[2].encode("latin-1", "replace"), value[0] or None)[0]
        else:
            text = _header_text(email.utils.unquote(str(value))) if value else ""
        name = clean(re.split(r"[\\/]", text)[-1])  # "C:\fakepath\Đơn.docx" from web forms
        if name:
            return name
    if not generate:
        return ""
    ctype = part.get_content_type()
    ext = ".eml" if ctype == "message/rfc822" else ".txt" if ctype.startswith(("message/", "text/plain")) \
        else mimetypes.guess_extension(ctype)
    return f"part-{index}{ext or '.bin'}"


def _decode(data: bytes, charset: str | None) -> tuple[str, str]:
    """Bytes -> NFC text, trusting the label only as far as the bytes agree; returns (text, note)."""
    label = (charset or "").strip().strip("\"'").lower().split("*")[0]
    try:
        info = codecs.lookup(label) if label else None
        codec = info.name if info and info._is_text_encoding else "?"  # base64, rot13 are not charsets
    except (LookupError, ValueError):  # "embedded null character" is a ValueError
        codec = "?"
    codec = "?" if codec in _NOT_CHARSETS else codec
    if codec in _WESTERN | {"utf-8", "cp1258", "?"} and data.isascii():
        return data.decode("ascii"), ""
    if codec == "cp1258":
        return nfc(data.decode("cp1258", "replace")), ""
    if codec not in _WESTERN | {"utf-8", "?"}:
        try:
            text = data.decode(codec)
            text.encode("utf-8")  # a codec that yields lone surrogates has not produced text
            return nfc(text), ""
        except (UnicodeError, LookupError):
            pass
    try:
        text = data.decode("utf-8")
        return nfc(text), (f"labelled {label}, decoded as utf-8" if codec != "utf-8" and label else "")
    except UnicodeDecodeError:
        pass
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes cp1252 leaves undefined; latin-1 maps them to controls
        western = data.decode("latin-1")
    # UTF-8 with a few broken bytes (a cut encoded word) must not be turned into mojibake whole
    candidates = [(western, "cp1252"), (nfc(data.decode("cp1258", "replace")), "cp1258"),
                  (nfc(data.decode("utf-8", "replace")), "utf-8 with replacements")]
    text, name = max(candidates, key=lambda c: _score(c[0]))  # ties keep the earlier, Western first
    quiet = codec in _WESTERN and name == "cp1252"  # an honest latin-1 label is no defect
    return text, "" if quiet else f"labelled {label or 'nothing'}, decoded as {name}"


def _score(text: str) -> int:
    """Letters only Vietnamese has, minus twice what a wrong code page leaves (stray marks, Ð, Þ)."""
    good = bad = 0
    for ch in text:
        if ch in _VI:
            good += 1
        elif ord(ch) > 127 and ch not in _SHARED and (
                ch.isalpha() or unicodedata.combining(ch) or not ch.isprintable() or ch == "\ufffd"):
            bad += 1
    return good - 2 * bad


def _unfold(value: object) -> str:
    # folding whitespace becomes one space: "mx;\r\n\tspf=pass" reads "mx; spf=pass"
    return re.sub(r"\r?\n[ \t]+", " ", str(value)).replace("\r", "").replace("\n", " ")


def _header_text(value: object) -> str:
    """One header value: 8-bit octets repaired, RFC 2047 words decoded (split words joined), NFC."""
    raw = _unfold(value)
    if not raw.isascii():  # compat32 keeps 8-bit header octets as surrogates
        raw = _decode(raw.encode("utf-8", "surrogateescape"), None)[0]
    out: list[str] = []
    run: list[tuple[str, bytes]] = []  # adjacent words of one charset: a character may span two
    pos = 0
    for m in _WORD.finditer(raw):
        gap, charset = raw[pos:m.start()], m.group(1).lower().split("*")[0]
        adjacent = bool(run) and not gap.strip()  # blanks between two encoded words do not count
        if not adjacent or run[-1][0] != charset:
            _flush(run, out)
        out.append("" if adjacent else gap)
        run.append((charset, _word_bytes(m.group(2).lower(), m.group(3))))
        pos = m.end()
    _flush(run, out)
    out.append(raw[pos:])
    return nfc("".join(out)).replace("\x00", "").strip()


def _word_bytes(kind: str, text: str) -> bytes:
    if kind == "q":
        return quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)
    data = re.sub(r"[^A-Za-z0-9+/]", "", text)
    try:  # Outlook and phones truncate padding: repair it rather than lose the word
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except binascii.Error:
        return binascii.a2b_base64(data[: len(data) // 4 * 4])


def _flush(run: list[tuple[str, bytes]], out: list[str]) -> None:
    if run:
        out.append(_decode(b"".join(b for _, b in run), run[0][0])[0])
        run.clear()


def _addresses(value: str) -> list[tuple[str, str]]:
    """(NFC display name, lower-case address) pairs; names decoded after splitting so commas stay names."""
    if not value.isascii():
        value = _decode(value.encode("utf-8", "surrogateescape"), None)[0]
    pairs = email.utils.getaddresses([_unfold(value)])
    return [(clean(_header_text(n)).strip("\"'"), a.strip().lower()) for n, a in pairs if "@" in a]


def read_from(value: str) -> tuple[str, str, str]:
    """(display name, address, "" or why it cannot be trusted) of a From header, read as mail clients
    and DMARC read it: the addr-spec, never the display name.

    Encoded words are decoded only after the header is split, so "=?utf-8?q?admin=40hust=2Eedu=2Evn?="
    stays a name. Two mailboxes, two angle addresses, or no valid address make the From untrusted.
    """
    if not value.isascii():
        value = _decode(value.encode("utf-8", "surrogateescape"), None)[0]
    text = _unfold(value).strip()
    mailboxes = [(n, a) for n, a in email.utils.getaddresses([text]) if n or a]
    bare = _QUOTED.sub('""', _COMMENT.sub(" ", text))  # quoted names and comments cannot hold the address
    angles = _ANGLE.findall(bare)
    many = sum("@" in a for _, a in mailboxes) > 1 or len(angles) > 1
    problem = "several addresses in From" if many else ""
    if len(angles) == 1:
        at = text.rfind("<" + angles[0] + ">")
        name, addr = text[:at] if at >= 0 else "", angles[0]
    else:
        name, addr = mailboxes[0] if mailboxes else ("", "")
    addr = addr.strip().lower()
    if (addr or text) and not _ADDR_SPEC.fullmatch(addr):
        problem, addr = problem or "no valid address in From", ""
    name = clean(_header_text(name.strip())).strip("\"'").strip()
    return name, addr, problem


def _ids(value: str) -> list[str]:
    found = _IDS.findall(value)
    return found or [t.strip("<>") for t in re.split(r"[\s,]+", value) if t.strip("<>")]


def _return_path(value: str | None) -> str | None:
    if value is None:
        return None  # absent: normal before final delivery, says nothing about the sender
    found = _IDS.findall(value) or [value.strip().strip("<>")]
    return "" if value.strip() in ("<>", "") else found[0].strip().lower()


def _date(mp: object, value: str, defects: list[str]) -> datetime | None:
    parsed = getattr(mp, "date", None)
    if parsed is not None or not value:
        return parsed
    try:  # mail-parser is strict about the grammar; the stdlib also takes what old mailers write
        result = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        defects.append(f"unreadable Date header: {value[:80]!r}")
        return None
    return result if result.tzinfo else result.replace(tzinfo=UTC)


class _HtmlText(HTMLParser):
    """Text of an HTML-only mail: blocks become lines, table cells tabs; scripts and styles vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.skip += tag in ("script", "style", "title")
        self.out.append(_HTML_START.get(tag, ""))

    def handle_endtag(self, tag: str) -> None:
        self.skip = max(0, self.skip - (tag in ("script", "style", "title")))
        self.out.append("\n" if tag in _BLOCKS else "")

    def handle_data(self, data: str) -> None:
        self.out.append("" if self.skip else data)


def _html_text(markup: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.out)
    except Exception:  # html.parser is lenient, but not on every input in every Python version
        text = re.sub(r"<[^>]*>", " ", markup)
    lines = (re.sub(r"[ \u00a0]+", " ", line).strip(" \t") for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
