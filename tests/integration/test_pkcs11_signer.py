"""Pkcs11Signer against a real SoftHSM2: record signatures that pyHanko validates as intact, valid and
trusted, concurrent signing on one session, and clear Vietnamese errors for a wrong PIN, token or key."""

from __future__ import annotations

import asyncio
from io import BytesIO

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigFieldSpec, append_signature_field
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfWriter

from edudesk.core.ports import SignItem
from edudesk.core.signing.pkcs11 import Pkcs11Error
from edudesk.core.signing.pki import DemoPki
from tests.servers.softhsm import SoftHsm, softhsm_fixture  # noqa: F401

FIELDS = ("phat_hanh", "gvcn")


def record_pdf(fields: tuple[str, ...] = FIELDS) -> bytes:
    """A one-page PDF with empty signature fields (stand-in for a record; the generator is tested elsewhere)."""
    blank = BytesIO()
    pdf = PdfWriter()
    pdf.add_blank_page(595, 842)
    pdf.write(blank)
    writer = IncrementalPdfFileWriter(BytesIO(blank.getvalue()))
    for n, name in enumerate(fields):
        append_signature_field(writer, SigFieldSpec(name, box=(50 + 260 * n, 50, 290 + 260 * n, 110)))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


async def validate(pdf: bytes, root: bytes) -> list[object]:
    """pyHanko's status of every signature in the PDF, trusting only `root`."""
    reader = PdfFileReader(BytesIO(pdf))
    return [await async_validate_pdf_signature(sig, ValidationContext(trust_roots=[asn1_x509.Certificate.load(root)],
                                                                                allow_fetching=False))
            for sig in reader.embedded_signatures]


@pytest.fixture
def pki() -> DemoPki:
    """A fresh demo CA."""
    return DemoPki.create()


async def test_issuing_signature_from_softhsm_is_intact_valid_and_trusted(softhsm: SoftHsm, pki: DemoPki) -> None:
    school = pki.issue_organisation()
    await softhsm.load(school)
    signer = softhsm.signer()
    try:
        assert await signer.certificate() == school.der
        item = SignItem(key="step:1", pdf=record_pdf(), field="phat_hanh", certify=True, reason="Ký phát hành học bạ",
                        location="Hà Nội", signer_name=school.name)
        outcome = await signer.sign([item])
    finally:
        await signer.close()
    [status] = await validate(outcome.signed[0], pki.root_der)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.docmdp_ok
    assert status.signing_cert.subject.native["common_name"] == school.name


async def test_twenty_concurrent_signs_on_one_session_all_validate(softhsm: SoftHsm, pki: DemoPki) -> None:
    teacher = pki.issue("Nguyễn Thị Bình")
    await softhsm.load(teacher)
    signer = softhsm.signer()
    pdf = record_pdf()
    items = [SignItem(key=f"step:{n}", pdf=pdf, field="gvcn", reason=f"Học bạ số {n}") for n in range(20)]
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(signer.sign([item])) for item in items]
    finally:
        await signer.close()
    for task in tasks:
        [status] = await validate(task.result().signed[0], pki.root_der)
        assert status.intact and status.valid and status.trusted


async def test_wrong_pin_gives_a_vietnamese_error_without_the_pin(softhsm: SoftHsm, pki: DemoPki) -> None:
    await softhsm.load(pki.issue("Trần Văn An"))
    signer = softhsm.signer(pin="999111")
    with pytest.raises(Pkcs11Error) as caught:
        await signer.certificate()
    assert caught.value.code == "pin_incorrect"
    assert "PIN" in caught.value.message and "999111" not in caught.value.message
    assert "999111" not in repr(signer)


async def test_missing_token_gives_a_vietnamese_error(softhsm: SoftHsm, pki: DemoPki) -> None:
    await softhsm.load(pki.issue("Trần Văn An"))
    with pytest.raises(Pkcs11Error) as caught:
        await softhsm.signer(token_label="khong-co-token").certificate()
    assert caught.value.code == "token_missing"
    assert "khong-co-token" in caught.value.message


async def test_missing_key_gives_a_vietnamese_error(softhsm: SoftHsm, pki: DemoPki) -> None:
    await softhsm.load(pki.issue("Trần Văn An"))
    with pytest.raises(Pkcs11Error) as caught:
        await softhsm.signer(key_label="khoa-khac").certificate()
    assert caught.value.code in {"key_missing", "cert_missing"}
    assert "khoa-khac" in caught.value.message


async def test_signing_a_pdf_without_the_field_does_not_add_one(softhsm: SoftHsm, pki: DemoPki) -> None:
    await softhsm.load(pki.issue("Lê Thị Hoa"))
    signer = softhsm.signer()
    try:
        with pytest.raises(Exception, match="bgh_1"):
            await signer.sign([SignItem(key="step:9", pdf=record_pdf(), field="bgh_1")])
    finally:
        await signer.close()


async def test_two_signers_of_one_token_share_its_login(softhsm: SoftHsm, pki: DemoPki) -> None:
    """The log-in belongs to the process: a second signer must not fail with UserAlreadyLoggedIn, and closing
    one must not log the other out (a logged-in session's close logs out every session of the token)."""
    school = pki.issue_organisation()
    await softhsm.load(school)
    first, second = softhsm.signer(), softhsm.signer()
    item = SignItem(key="step:1", pdf=record_pdf(), field="phat_hanh", certify=True, signer_name=school.name)
    try:
        await asyncio.gather(first.certificate(), second.certificate())  # both open at once
        await first.close()
        outcome = await second.sign([item])
    finally:
        await first.close()
        await second.close()
    [status] = await validate(outcome.signed[0], pki.root_der)
    assert status.intact and status.valid and status.trusted
    again = softhsm.signer()  # after the last close the token is logged out, and a new log-in works
    try:
        assert await again.certificate() == school.der
    finally:
        await again.close()
