"""Pkcs12Signer with the demo CA's credentials: signatures pyHanko validates, in process and through the
process pool (a batch of records signed in parallel, each record's signatures chained), and Vietnamese errors
for a wrong passphrase or a broken file that never show the passphrase."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from edudesk.core.ports import SignItem, SignOutcome
from edudesk.core.signing.engine import LocalCredential, SigningPool
from edudesk.core.signing.pdfs import RecordContent, SubjectScore, add_signature_fields, record_pdf
from edudesk.core.signing.pkcs12 import Pkcs12Error, Pkcs12Signer
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import FieldSpec, Stage
from edudesk.core.signing.speedups import _ORIGINAL_HEX_READER, install_fast_pdf_parsing

PASS = b"mat-khau-chung-thu"
FIELDS = [FieldSpec("gvbm_toan", Stage.SUBJECT, "GVBM Toán — Nguyễn Thị Bình"),
          FieldSpec("gvcn", Stage.HOMEROOM, "GVCN — Phạm Quốc Việt"),
          FieldSpec("phat_hanh", Stage.ISSUER, "Ký phát hành — Trường THPT Lê Quý Đôn")]


def record(name: str) -> bytes:
    """A one-subject record of `name` with the three fields."""
    scores = (SubjectScore("Toán", "Nguyễn Thị Bình", "8,0", "9,0", "8,7"),)
    content = RecordContent("Trường THPT Lê Quý Đôn", "2025–2026", "11B2", "HS0042", name, "12/08/2009", "Nam",
                            "Phạm Quốc Việt", scores, "Tốt", "Khá", "Tiến bộ.")
    return add_signature_fields(record_pdf(content), FIELDS)


@pytest.fixture(scope="module")
def pki() -> DemoPki:
    """A demo CA for the module."""
    return DemoPki.create()


@pytest.fixture(scope="module")
def pool() -> Iterator[SigningPool]:
    """Two worker processes (spawned once for the module)."""
    pool = SigningPool(2)
    yield pool
    pool.close()


async def validate(pdf: bytes, pki: DemoPki) -> list[Any]:
    """pyHanko's status of every signature, trusting the demo root only."""
    roots = [asn1_x509.Certificate.load(pki.root_der)]
    return [await async_validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
            for sig in PdfFileReader(BytesIO(pdf)).embedded_signatures]


def good(status: Any) -> bool:
    """Intact, valid, trusted, and nothing but form filling after it."""
    return bool(status.intact and status.valid and status.trusted and status.docmdp_ok)


async def test_certificate_is_the_credentials_and_the_passphrase_stays_out_of_repr(pki: DemoPki) -> None:
    cred = pki.issue("Nguyễn Thị Bình")
    signer = Pkcs12Signer(cred.pkcs12(PASS), PASS)
    assert await signer.certificate() == cred.der
    assert signer.kind == "pkcs12"
    assert PASS.decode() not in repr(signer) and "Nguyễn Thị Bình" in repr(signer)
    assert PASS.decode() not in repr(signer._credential)


async def test_in_process_signature_validates(pki: DemoPki) -> None:
    cred = pki.issue("Nguyễn Thị Bình")
    signer = Pkcs12Signer(cred.pkcs12(PASS), PASS)
    outcome = await signer.sign([SignItem(key="step:1", pdf=record("Lê Văn An"), field="gvbm_toan", certify=True,
                                          reason="Ký học bạ", location="Hà Nội", signer_name=cred.name)])
    [status] = await validate(outcome.signed[0], pki)
    assert good(status), status.pretty_print_details()
    assert status.signing_cert.subject.native["common_name"] == "Nguyễn Thị Bình"


async def test_pool_signs_a_batch_of_records_in_item_order_and_chains_each_record(pki: DemoPki,
                                                                                   pool: SigningPool) -> None:
    names = [f"Học sinh số {n} Trần Thị Ngọc" for n in range(6)]
    pdfs = [record(name) for name in names]
    signers = [Pkcs12Signer(pki.issue(who).pkcs12(PASS), PASS, pool=pool)
               for who in ("Nguyễn Thị Bình", "Phạm Quốc Việt")] + [
        Pkcs12Signer(pki.issue_organisation().pkcs12(PASS), PASS, pool=pool)]
    for step, (spec, signer) in enumerate(zip(FIELDS, signers, strict=True)):
        items = [SignItem(key=f"step:{step}:{n}", pdf=pdf, field=spec.name, certify=step == 0,
                          reason=f"Học bạ {n}") for n, pdf in enumerate(pdfs)]
        outcome = await signer.sign(items)
        assert len(outcome.signed) == len(items)
        pdfs = list(outcome.signed)
    for n, pdf in enumerate(pdfs):
        reader = PdfFileReader(BytesIO(pdf))
        assert [s.field_name for s in reader.embedded_signatures] == [f.name for f in FIELDS]
        assert reader.embedded_signatures[0].sig_object["/Reason"] == f"Học bạ {n}"  # item order kept
        for status in await validate(pdf, pki):
            assert good(status), status.pretty_print_details()


async def test_pool_signs_with_a_key_and_certificate_as_der(pki: DemoPki, pool: SigningPool) -> None:
    cred = pki.issue("Đỗ Thị Ngọc Ánh")
    credential = LocalCredential(key_der=cred.key_der, cert_der=cred.der, chain_der=cred.chain_der)
    [pdf] = await pool.sign(credential, [SignItem(key="step:7", pdf=record("Vũ Minh Châu"), field="gvcn")])
    [status] = await validate(pdf, pki)
    assert good(status)


async def test_pool_reports_a_field_already_signed(pki: DemoPki, pool: SigningPool) -> None:
    signer = Pkcs12Signer(pki.issue("Nguyễn Thị Bình").pkcs12(PASS), PASS, pool=pool)
    [once] = (await signer.sign([SignItem(key="step:1", pdf=record("Lê Văn An"), field="gvcn")])).signed
    with pytest.raises(Pkcs12Error) as caught:
        await signer.sign([SignItem(key="step:2", pdf=once, field="gvcn")])
    assert caught.value.code == "field_signed"


def test_wrong_passphrase_gives_a_vietnamese_error_without_it(pki: DemoPki) -> None:
    data = pki.issue("Trần Văn Đức").pkcs12(PASS)
    with pytest.raises(Pkcs12Error) as caught:
        Pkcs12Signer(data, b"sai-mat-khau")
    assert caught.value.code == "pkcs12_passphrase"
    assert "Mật khẩu" in caught.value.message and "sai-mat-khau" not in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no chained traceback


def test_a_broken_file_gives_a_vietnamese_error(pki: DemoPki) -> None:
    data = pki.issue("Trần Văn Đức").pkcs12(PASS)
    with pytest.raises(Pkcs12Error) as caught:
        Pkcs12Signer(data[: len(data) // 2], PASS)
    assert caught.value.code == "pkcs12_file"
    with pytest.raises(Pkcs12Error) as caught:
        Pkcs12Signer(b"khong phai pkcs12", PASS)
    assert caught.value.code == "pkcs12_file" and "bị hỏng" in caught.value.message


async def test_resume_has_nothing_pending(pki: DemoPki) -> None:
    signer = Pkcs12Signer(pki.issue("Trần Văn Đức").pkcs12(PASS), PASS)
    assert await signer.resume({}, []) == SignOutcome()
    with pytest.raises(Pkcs12Error):
        await signer.resume({"transaction": "abc"}, [b"%PDF-"])
    await signer.close()


async def test_pool_starts_new_workers_when_one_dies(pki: DemoPki) -> None:
    cred = pki.issue("Vũ Minh Châu")
    credential = LocalCredential(pkcs12=cred.pkcs12(PASS), passphrase=PASS)
    item = SignItem(key="step:3", pdf=record("Lê Văn An"), field="gvcn")
    pool = SigningPool(1)
    try:
        await pool.sign(credential, [item])
        for pid in list(pool._executor._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        [pdf] = await pool.sign(credential, [item])
    finally:
        pool.close()
    [status] = await validate(pdf, pki)
    assert good(status)


@pytest.mark.parametrize("raw", [b"<48656C6C6F> 0 R", b"<48 65\n6C\r6C6F>]", b"<486>", b"<>", b"<4Z>", b"<4865",
                                 b"<" + b"ab" * 70000 + b">tail", b"<FEFF004100E1>/Next"])
def test_block_wise_hex_reader_reads_what_pyhankos_reads(raw: bytes) -> None:
    from pyhanko.pdf_utils import generic

    install_fast_pdf_parsing()
    results = []
    for reader in (_ORIGINAL_HEX_READER[0], generic.read_hex_string_from_stream):
        stream = BytesIO(raw)
        try:
            value = reader(stream)
            results.append((type(value), str(value), stream.tell()))
        except Exception as exc:  # both must fail alike
            results.append((type(exc), "", -1))
    assert results[0] == results[1]
