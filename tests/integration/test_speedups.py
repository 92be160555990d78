"""The pyHanko speed-ups (core/signing/speedups.py) change nothing but the time: the map of paths to every
indirect object is the same as pyHanko's own for every revision of a 15-signature record, a B-LTA record
(DSS, document timestamp), a tagged PDF (structure tree, page tree special cases) and a tampered record, and
the full validation reports the same findings, tampering included."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.ports import SignItem
from edudesk.core.signing import speedups
from edudesk.core.signing.engine import LocalCredential, cached_signer, sign_items
from edudesk.core.signing.pades import PadesProfile
from edudesk.core.signing.pdfs import RecordContent, SubjectScore, add_signature_fields, record_pdf
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import FieldSpec, Stage
from edudesk.core.signing.verify import verify_record

FIELDS = [FieldSpec(f"gvbm_gv{n:02d}", Stage.SUBJECT, f"GV{n:02d}") for n in range(1, 13)] + [
    FieldSpec("gvcn", Stage.HOMEROOM, "GVCN"), FieldSpec("bgh_1", Stage.LEADERSHIP, "HT"),
    FieldSpec("phat_hanh", Stage.ISSUER, "")]


def _record() -> bytes:
    scores = tuple(SubjectScore(s, "Nguyễn Thị Bích", "7,5", "8,0", "7,8", "Chăm chỉ.") for s in ("Toán", "Ngữ văn"))
    return add_signature_fields(record_pdf(RecordContent("Trường THPT Demo", "2025–2026", "10A1", "HS001",
                                                         "Nguyễn Văn Ánh", "01/01/2010", "Nam", "Trần Văn Cường",
                                                         scores, "Tốt", "Khá", "Ngoan.")), FIELDS)


async def _signed(pki: DemoPki, count: int, *, levels: dict[int, str] | None = None,
                  profile: PadesProfile | None = None) -> bytes:
    pdf = _record()
    for n, spec in enumerate(FIELDS[:count]):
        signer = cached_signer(LocalCredential(pkcs12=pki.issue(f"Giáo viên {n}").pkcs12(b"pw"), passphrase=b"pw"))
        level = (levels or {}).get(n, "B-B")
        [pdf] = await sign_items(signer, [SignItem(key=spec.name, pdf=pdf, field=spec.name, certify=n == 0,
                                                   reason="Ký học bạ số", location="Hà Nội", level=level)], profile)
    return pdf


def _maps(pdf: bytes, fast: bool) -> list[dict[Any, set[Any]]]:
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    out = []
    for revision in range(reader.xrefs.total_revisions):
        resolver = reader.get_historical_resolver(revision)
        if fast:
            resolver._load_reverse_xref_cache()
        else:
            speedups._ORIGINAL_PATHS[0](resolver)
        out.append(dict(resolver._indirect_object_access_cache))
    return out


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    speedups.install_fast_pdf_parsing()
    assert speedups._ORIGINAL_PATHS, "pyHanko's path map is not where speedups.py expects it: re-check the speed-up"
    yield


def _same_maps(pdf: bytes) -> int:
    fast, slow = _maps(pdf, True), _maps(pdf, False)
    assert len(fast) == len(slow)
    for revision, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a == b, f"revision {revision}: {set(a) ^ set(b)}"
    return sum(len(paths) for m in slow for paths in m.values())


async def test_path_maps_of_a_15_signature_record_are_pyhankos() -> None:
    pdf = await _signed(DemoPki.create(), 15)
    assert _same_maps(pdf) > 1000  # every stamp's font reached again: the case the speed-up is for


async def test_path_maps_of_a_b_lta_record_are_pyhankos() -> None:
    pki = DemoPki.create()
    with LocalPkiService(pki) as service:
        profile = PadesProfile(service.tsa_url, trust_roots=(pki.root_der,))
        pdf = await _signed(pki, 15, levels={0: "B-LT", 13: "B-LT", 14: "B-LTA"}, profile=profile)
    reader = PdfFileReader(BytesIO(pdf))
    assert "/DSS" in reader.root and reader.embedded_signatures[-1].sig_object_type == "/DocTimeStamp"
    _same_maps(pdf)
    report = await verify_record(pdf, trusted_roots=[pki.root_der], ltv=True)
    assert report.ok, (report.problems, [s.problems for s in report.signatures])


def _tagged_pdf() -> bytes:
    """Two pages, a structure tree whose elements point at their page and parent, a link across pages, and an
    incremental update that changes a structure element."""
    writer = PdfFileWriter()
    pages = []
    for n in range(2):
        page = generic.DictionaryObject({generic.NameObject("/Type"): generic.NameObject("/Page"),
                                         generic.NameObject("/MediaBox"): generic.ArrayObject(
                                             [generic.NumberObject(v) for v in (0, 0, 595, 842)])})
        writer.insert_page(page)
        pages.append(writer.root["/Pages"]["/Kids"][n])
    root_elem = generic.DictionaryObject({generic.NameObject("/Type"): generic.NameObject("/StructTreeRoot")})
    root_ref = writer.add_object(root_elem)
    kids = generic.ArrayObject()
    for n, page_ref in enumerate(pages):
        elem = generic.DictionaryObject({generic.NameObject("/Type"): generic.NameObject("/StructElem"),
                                         generic.NameObject("/S"): generic.NameObject("/P"),
                                         generic.NameObject("/P"): root_ref, generic.NameObject("/Pg"): page_ref,
                                         generic.NameObject("/K"): generic.NumberObject(n),
                                         generic.NameObject("/W"): generic.ArrayObject(
                                             [generic.NumberObject(v) for v in range(500)])})
        kids.append(writer.add_object(elem))
    root_elem[generic.NameObject("/K")] = kids
    root_elem[generic.NameObject("/ParentTree")] = writer.add_object(generic.DictionaryObject(
        {generic.NameObject("/Nums"): generic.ArrayObject([generic.NumberObject(0), kids[0]])}))
    writer.root[generic.NameObject("/StructTreeRoot")] = root_ref
    link = generic.DictionaryObject({generic.NameObject("/Type"): generic.NameObject("/Annot"),
                                     generic.NameObject("/Subtype"): generic.NameObject("/Link"),
                                     generic.NameObject("/Dest"): generic.ArrayObject(
                                         [pages[1], generic.NameObject("/Fit")])})
    pages[0].get_object()[generic.NameObject("/Annots")] = generic.ArrayObject([writer.add_object(link)])
    out = BytesIO()
    writer.write(out)
    incremental = IncrementalPdfFileWriter(BytesIO(out.getvalue()))
    elem_ref = incremental.root["/StructTreeRoot"]["/K"][1]
    elem = elem_ref.get_object()
    elem[generic.NameObject("/Alt")] = generic.TextStringObject("Trang hai")
    incremental.update_container(elem)
    again = BytesIO()
    incremental.write(again)
    return again.getvalue()


def test_path_maps_of_a_tagged_pdf_are_pyhankos() -> None:
    assert _same_maps(_tagged_pdf()) > 0


async def test_tampering_after_signing_is_found_the_same_way() -> None:
    pki = DemoPki.create()
    pdf = await _signed(pki, 3)
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    patch = generic.StreamObject(stream_data=b"q 1 0 0 RG 40 700 200 40 re f Q")  # a box over the grades
    writer.add_stream_to_page(0, writer.add_object(patch))
    out = BytesIO()
    writer.write(out)
    tampered = out.getvalue()
    _same_maps(tampered)
    fast = await verify_record(tampered, trusted_roots=[pki.root_der])
    HistoricalResolver._load_reverse_xref_cache = speedups._ORIGINAL_PATHS[0]  # pyHanko's own, for this one
    try:
        slow = await verify_record(tampered, trusted_roots=[pki.root_der])
    finally:
        HistoricalResolver._load_reverse_xref_cache = speedups._load_paths
    assert not fast.ok and fast == slow
    assert [s.modification for s in fast.signatures] == ["OTHER"] * 3


def _read_name(reader: Any, data: bytes) -> tuple[Any, ...]:
    stream = BytesIO(b"<<" + data)
    stream.seek(2)
    try:
        name = reader(stream)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return type(exc), str(exc)
    return type(name), str(name), stream.tell()


def test_names_are_read_as_pyhanko_reads_them() -> None:
    """The name reader gives pyHanko's name and stream position, or pyHanko's error, for plain names, escapes,
    bytes pyHanko refuses, non-ASCII, the end of the file and names longer than the block it reads."""
    import random

    fast = generic.NameObject.read_from_stream
    slow = speedups._ORIGINAL_NAME_READER[0]
    assert fast is not slow, "the name reader is not installed"
    cases = [b"/Type /Page", b"/Type", b"/", b"/ ", b"/A#20B ", b"/A#2 ", b"/A#zz ", b"/Caf\xc3\xa9 ", b"/\xe9t\xe9 ",
             b"/A\x7f ", b"/A\x01 ", b"Type ", b"/" + b"x" * 300 + b" ", b"/" + b"x" * 255 + b"]", b"/ab(c", b"/ab%c",
             b"/a/b", b"/a\x00", b"/S#2fT "]
    symbols = [b"/", b"#", b"2", b"0", b"f", b"A", b"z", b" ", b"\n", b"(", b"]", b"\xc3", b"\xa9", b"%", b"~", b"\x7f",
               b"\x00", b"\x1f", b"<"]
    rng = random.Random(19)
    for _ in range(20000):
        body = b"".join(rng.choice(symbols) if rng.random() < 0.8 else bytes([rng.randrange(256)])
                        for _ in range(rng.randint(0, 12)))
        cases.append((b"/" if rng.random() < 0.97 else b"") + body)
    plain = 0
    for data in cases:
        ours, theirs = _read_name(fast, data), _read_name(slow, data)
        assert ours == theirs, data
        plain += ours[0] is generic.NameObject
    assert plain > 1000  # the comparison covers both outcomes
