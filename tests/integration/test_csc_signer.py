"""The CSC API v1 remote signer against the fake CSC service: real record PDFs signed in batches of the
credential's `multisign`, each batch one credentials/authorize (the person's phone, held) and one
signatures/signHash, every signature proven by pyHanko; the person's no is a refusal, a phone nobody
answers in time is a pending outcome that a fresh signer (a restarted process) resumes; SADs that are
forged, expired, spent or bound to other hashes are refused by the service and surface as CscError."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.core.ports import FakeClock, SignItem, SignOutcome
from edudesk.core.signing.csc import CscError, CscSigner, CscWire
from edudesk.core.signing.demo import demo_pdf, demo_roster
from edudesk.core.signing.importer import class_fields, field_code
from edudesk.core.signing.models import SignatureStep, Teacher
from edudesk.core.signing.pdfs import add_signature_fields
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage, field_name
from edudesk.core.signing.verify import verify_record
from tests.fakes.csc import ABANDONED, TIMED_OUT, FakeCsc, Prompt, Subscriber
from tests.records_kit import ADMIN, RecordsKit, records_settings, small_roster

TEACHER = "GV01"
FIELD = field_name(Stage.SUBJECT, field_code(TEACHER))


@pytest.fixture(scope="module")
def record_pdfs() -> tuple[str, list[bytes]]:
    """The demo class's 40 records with their signature pages, and the name of the teacher who signs."""
    roster = demo_roster(students=40)
    row = roster.classes["10A1"]
    fields = [spec for spec, _ in class_fields(row, roster.teachers)]
    return roster.teachers[TEACHER].name, [add_signature_fields(demo_pdf(row, s, roster), fields) for s in row.students]


@pytest.fixture
def now_clock() -> FakeClock:
    """A test clock at the real time (the demo certificates are valid around it)."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def fake(now_clock: FakeClock) -> AsyncIterator[FakeCsc]:
    """The fake CSC service: SCAL 2, multisign 20, its own demo CA."""
    service = await FakeCsc(DemoPki.create(), clock=now_clock, multisign=20).start()
    yield service
    await service.stop()


@pytest.fixture
def teacher(fake: FakeCsc, record_pdfs: tuple[str, list[bytes]]) -> Subscriber:
    """The subject teacher's remote credential."""
    return fake.add_subscriber(record_pdfs[0])


@pytest.fixture
async def signers(fake: FakeCsc, teacher: Subscriber, now_clock: FakeClock) -> AsyncIterator[list[CscSigner]]:
    """Signers made by `new_signer`, closed at the end."""
    made: list[CscSigner] = []
    yield made
    for signer in made:
        await signer.close()


def new_signer(fake: FakeCsc, sub: Subscriber, made: list[CscSigner], clock: FakeClock, **kwargs: Any) -> CscSigner:
    """A CscSigner for the subscriber's credential (a bearer token of its own, as after a restart)."""
    signer = CscSigner(fake.url + "/csc/v1", fake.token_for(sub), sub.credential_id, clock=clock, **kwargs)
    made.append(signer)
    return signer


def items(record_pdfs: tuple[str, list[bytes]], count: int) -> list[SignItem]:
    """The teacher's signature (the records' first, so certifying) on the first `count` records."""
    name, pdfs = record_pdfs
    return [SignItem(key=f"step:{n}", pdf=pdf, field=FIELD, certify=True, reason="Ký học bạ", signer_name=name)
            for n, pdf in enumerate(pdfs[:count])]


async def assert_signed(outcome: SignOutcome, fake: FakeCsc, name: str, count: int) -> None:
    """`count` PDFs whose only signature pyHanko proves: intact, valid, trusted, certifying, by `name`."""
    assert not outcome.refused and outcome.pending is None
    assert len(outcome.signed) == count
    for pdf in outcome.signed:
        report = await verify_record(pdf, trusted_roots=[fake.pki.root_der])
        assert report.ok, report
        (sig,) = report.signatures
        assert (sig.field, sig.signer, sig.certified, sig.trusted) == (FIELD, name, True, True)
        stream, fonts = stamp_of(pdf, FIELD)
        # The same visible stamp as a local signature (embedded Vietnamese font, local time), not pyHanko's
        # default "Digitally signed by" in Courier.
        assert b"Digitally signed" not in stream and fonts and not any("Courier" in f for f in fonts), fonts


def stamp_of(pdf: bytes, field: str) -> tuple[bytes, list[str]]:
    """The signature box's appearance stream and the fonts it draws with."""
    from io import BytesIO

    from pypdf import PdfReader

    for page in PdfReader(BytesIO(pdf)).pages:
        for annot in page.get("/Annots", []):
            widget = annot.get_object()
            if widget.get("/T") == field:
                ap = widget["/AP"]["/N"].get_object()
                fonts = ap["/Resources"]["/Font"]
                return ap.get_data(), [str(f.get_object().get("/BaseFont")) for f in fonts.values()]
    raise AssertionError(f"no field {field}")


async def phone(fake: FakeCsc, answers: Sequence[str]) -> None:
    """The person's phone: answer each prompt in turn ("confirm", "deny", or "ignore" until the caller quits)."""
    for answer in answers:
        prompt = await fake.next_prompt()
        if answer == "confirm":
            fake.confirm(prompt)
        elif answer == "deny":
            fake.deny(prompt)
        else:
            await prompt.settled.wait()


def hashes_of(pending: dict[str, Any], first: int, last: int) -> list[str]:
    """The prepared hashes of items first..last-1 of a pending state."""
    return [str(item["hash"]) for item in pending["items"][first:last]]


async def test_forty_records_are_two_batches_of_multisign_each_one_authorisation_and_one_sign_hash(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    fake.phone = "confirm"
    outcome = await new_signer(fake, teacher, signers, now_clock).sign(items(record_pdfs, 40))
    await assert_signed(outcome, fake, teacher.credential.name, 40)
    authorize, sign_hash = fake.endpoint_calls("credentials/authorize"), fake.endpoint_calls("signatures/signHash")
    assert [a["numSignatures"] for a in authorize] == [20, 20]
    assert [len(s["hash"]) for s in sign_hash] == [20, 20]
    assert [a["hash"] for a in authorize] == [s["hash"] for s in sign_hash], "SCAL 2: each SAD bound to its batch"
    assert len({h for s in sign_hash for h in s["hash"]}) == 40
    assert {s["signAlgo"] for s in sign_hash} == {"1.2.840.113549.1.1.11"}
    assert len(fake.endpoint_calls("credentials/info")) == 1
    assert [p.state for p in fake.prompts] == ["confirmed", "confirmed"]
    assert "(phần 1/2)" in fake.prompts[0].description and not fake.sads, "both SADs spent"


async def test_a_smaller_batch_size_and_scal_1_authorise_counts_without_hashes(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    fake.phone, fake.scal = "confirm", 1
    signer = new_signer(fake, teacher, signers, now_clock, batch_size=4)
    outcome = await signer.sign(items(record_pdfs, 10))
    await assert_signed(outcome, fake, teacher.credential.name, 10)
    authorize = fake.endpoint_calls("credentials/authorize")
    assert [a["numSignatures"] for a in authorize] == [4, 4, 2]
    assert all("hash" not in a for a in authorize)
    assert [len(s["hash"]) for s in fake.endpoint_calls("signatures/signHash")] == [4, 4, 2]


async def test_the_person_declining_on_the_phone_is_a_refusal_with_nothing_signed(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    signer = new_signer(fake, teacher, signers, now_clock)
    outcome, _ = await asyncio.gather(signer.sign(items(record_pdfs, 30)), phone(fake, ["confirm", "deny"]))
    assert "từ chối" in outcome.refused and not outcome.signed and outcome.pending is None
    assert [p.state for p in fake.prompts] == ["confirmed", "denied"]
    assert len(fake.endpoint_calls("signatures/signHash")) == 1, "the declined batch is never sent for signing"


async def test_a_phone_not_answered_in_time_is_pending_and_a_fresh_signer_resumes_it(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    signer = new_signer(fake, teacher, signers, now_clock, authorize_timeout=0.5)
    outcome, _ = await asyncio.gather(signer.sign(items(record_pdfs, 25)), phone(fake, ["confirm", "ignore"]))
    await signer.close()
    assert outcome.pending is not None and not outcome.signed and not outcome.refused
    assert [p.state for p in fake.prompts] == ["confirmed", ABANDONED]
    with pytest.raises(ValueError):
        fake.confirm(fake.prompts[1])  # a tap after edudesk hung up gives nobody a SAD
    stored = json.dumps(outcome.pending)  # what the runner keeps in the database
    assert signer._token not in stored and not any(sad in stored for sad in fake.sads)
    pending = json.loads(stored)
    assert all(pending["signatures"][:20]) and pending["signatures"][20:] == [None] * 5
    assert len(outcome.prepared) == 25

    restarted = new_signer(fake, teacher, signers, now_clock, authorize_timeout=5.0)
    resumed, _ = await asyncio.gather(restarted.resume(pending, outcome.prepared), phone(fake, ["confirm"]))
    await assert_signed(resumed, fake, teacher.credential.name, 25)
    authorize = fake.endpoint_calls("credentials/authorize")
    assert [a["numSignatures"] for a in authorize] == [20, 5, 5]
    assert authorize[2]["hash"] == hashes_of(pending, 20, 25), "only the unsigned batch is asked again"
    assert pending["attempts"] == 1


async def test_the_provider_giving_up_on_the_person_is_pending_too(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    fake.hold_seconds = 0.3  # the provider's own wait for the phone (it answers 504 then)
    signer = new_signer(fake, teacher, signers, now_clock)
    outcome = await signer.sign(items(record_pdfs, 3))
    assert outcome.pending is not None and [p.state for p in fake.prompts] == [TIMED_OUT]
    fake.phone = "confirm"
    again = await new_signer(fake, teacher, signers, now_clock).resume(outcome.pending, outcome.prepared)
    await assert_signed(again, fake, teacher.credential.name, 3)


async def test_a_sad_that_expires_before_sign_hash_is_a_clear_csc_error(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    fake.phone = "confirm"
    fake.after_authorize = lambda prompt, sad: now_clock.advance(timedelta(seconds=fake.sad_seconds))
    with pytest.raises(CscError) as caught:
        await new_signer(fake, teacher, signers, now_clock).sign(items(record_pdfs, 2))
    assert caught.value.code == "csc_sad" and "hết hạn" in caught.value.message


async def test_a_forged_sad_is_refused_by_the_service_and_is_a_clear_csc_error(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock,
        record_pdfs: tuple[str, list[bytes]]) -> None:
    fake.phone = "confirm"

    def forge(prompt: Prompt, sad: str) -> None:
        del fake.sads[sad]  # the SAD handed out is one the service never issued

    fake.after_authorize = forge
    with pytest.raises(CscError) as caught:
        await new_signer(fake, teacher, signers, now_clock).sign(items(record_pdfs, 2))
    assert caught.value.code == "csc_sad" and "Invalid parameter SAD" in caught.value.message


class Wire:
    """Raw CSC calls as the subscriber, through csc.py's wire (errors become CscError)."""

    def __init__(self, fake: FakeCsc, sub: Subscriber, token: str = "") -> None:
        self.fake, self.sub = fake, sub
        self.headers = {"Authorization": f"Bearer {token or fake.token_for(sub)}"}
        self.wire = CscWire(None, 10.0)

    async def __call__(self, endpoint: str, **body: Any) -> Any:
        return await self.wire.call(f"{self.fake.url}/csc/v1/{endpoint}", {"credentialID": self.sub.credential_id,
                                                                            **body}, headers=self.headers)

    async def authorize(self, hashes: list[str]) -> str:
        answer = await self("credentials/authorize", numSignatures=len(hashes), hash=hashes)
        return str(answer["SAD"])

    async def sign(self, sad: str, hashes: list[str], **extra: Any) -> list[str]:
        body = {"SAD": sad, "hash": hashes, "signAlgo": "1.2.840.113549.1.1.11",
                "hashAlgo": "2.16.840.1.101.3.4.2.1", **extra}
        return list((await self("signatures/signHash", **body))["signatures"])


def some_hashes(count: int, salt: str = "") -> list[str]:
    return [base64.b64encode(hashlib.sha256(f"{salt}{n}".encode()).digest()).decode() for n in range(count)]


async def refused(call: Any) -> str:
    """The message of the CscError a call ends in."""
    with pytest.raises(CscError) as caught:
        await call
    return caught.value.message


async def test_the_fake_enforces_sad_binding_counts_multisign_and_hash_lengths(
        fake: FakeCsc, teacher: Subscriber) -> None:
    fake.phone = "confirm"
    wire = Wire(fake, teacher)
    try:
        a, b = some_hashes(3, "a"), some_hashes(3, "b")
        assert "Numbers of signatures too high" in await refused(wire.authorize(some_hashes(21)))
        assert "array parameter hash" in await refused(wire("credentials/authorize", numSignatures=2))
        assert "Invalid parameter SAD" in await refused(wire.sign("forged-" + "A" * 40, a))
        sad = await wire.authorize(a)
        assert "not authorized by the SAD" in await refused(wire.sign(sad, b))
        assert "Invalid digest value length" in await refused(wire.sign(
            sad, [base64.b64encode(b"\0" * 20).decode()]))
        assert "Invalid parameter signAlgo" in await refused(wire.sign(sad, a, signAlgo="1.2.840.10045.4.3.2"))
        assert "Invalid parameter hashAlgo" in await refused(wire.sign(sad, a, hashAlgo="2.16.840.1.101.3.4.2.3"))
        signatures = await wire.sign(sad, a[:2])
        assert len(signatures) == 2
        assert "allows 1 more" in await refused(wire.sign(sad, a[1:]))
        assert len(await wire.sign(sad, a[2:])) == 1
        assert "Invalid parameter SAD" in await refused(wire.sign(sad, a[2:])), "a spent SAD is gone"

        fake.scal = 1
        many = some_hashes(21, "m")
        sad = str((await wire("credentials/authorize", numSignatures=20))["SAD"])
        assert "at most 20 hashes per call" in await refused(wire.sign(sad, many))
        assert len(await wire.sign(sad, many[:20])) == 20

        other = Wire(fake, fake.add_subscriber("Trần Văn Khác"))
        try:
            other_sad = await other.authorize(a)
            assert "Invalid parameter SAD" in await refused(wire.sign(other_sad, a)), "SAD of another credential"
            assert "Invalid parameter credentialID" in await refused(
                other("credentials/info", credentialID=teacher.credential_id)), "someone else's credential"
        finally:
            await other.wire.close()
    finally:
        await wire.wire.close()


async def test_a_credential_that_wants_a_pin_is_refused_when_it_is_read(
        fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner], now_clock: FakeClock) -> None:
    fake.auth_mode = "explicit"
    with pytest.raises(CscError) as caught:
        await new_signer(fake, teacher, signers, now_clock).certificate()
    assert caught.value.code == "csc_auth_mode" and "explicit" in caught.value.message


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic Authorization header (CSC auth/login)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_login_info_and_tokens(fake: FakeCsc, teacher: Subscriber, signers: list[CscSigner],
                                     now_clock: FakeClock) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.url + "/csc/v1/info", json={}) as response:
            info = await response.json()
        assert "signatures/signHash" in info["methods"] and info["specs"] == "1.0.4.0"
        async with http.post(fake.url + "/csc/v1/auth/login", json={"rememberMe": False},
                             headers=basic(teacher.user_id, "wrong")) as response:
            assert (response.status, (await response.json())["error"]) == (400, "authentication_error")
        async with http.post(fake.url + "/csc/v1/auth/login", json={"rememberMe": False},
                             headers=basic(teacher.user_id, teacher.password)) as response:
            token = (await response.json())["access_token"]
    signer = CscSigner(fake.url, token, "", clock=now_clock)  # no credential id: the first of credentials/list
    signers.append(signer)
    assert await signer.certificate() == teacher.credential.der and signer.credential_id == teacher.credential_id
    fake.revoke_tokens()
    wire = Wire(fake, teacher, token)
    try:
        with pytest.raises(CscError) as caught:
            await wire("credentials/info")
        assert caught.value.code == "csc_token"
    finally:
        await wire.wire.close()


@pytest.mark.db
async def test_the_workflow_signs_with_a_csc_credential_across_a_restart(
        app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki, clock = DemoPki.create(), FakeClock(datetime.now(UTC))
    fake = await FakeCsc(DemoPki.create(name="CSC Provider CA"), clock=clock, hold_seconds=0.3).start()
    try:
        records = records_settings(tmp_path, pki, (fake.pki.root_der,), csc={"url": fake.url + "/csc/v1"},
                                   smartca={"poll_seconds": 2})
        roster = small_roster()
        sub = fake.add_subscriber(roster.teachers["GV03"].name)
        monkeypatch.setenv("EDUDESK_CSC_TOKEN", fake.token_for(sub))  # read when the settings are loaded
        settings = settings_factory(records=records, web={"enabled": False})
        kit = RecordsKit(await app_factory(settings, clock=clock, inline_analysis=True), pki, clock, roster)
        await kit.load(skip=("GV03",))
        teacher = await Teacher.get(code="GV03")
        row = await kit.app.records.credentials.register(teacher, "csc", actor=ADMIN, credential_id=sub.credential_id)
        await kit.app.records.credentials.decide(ADMIN, row.id, True)
        await kit.start()
        session = await kit.sign("GV03", Stage.SUBJECT)
        assert session.state == "pending", "nobody answered the phone within the provider's wait"
        # each poll asks again (CSC v1 has nothing to poll): every prompt covers the 3 records, none answered
        assert fake.prompts and {(p.num_signatures, p.state) for p in fake.prompts} == {(3, TIMED_OUT)}
        await kit.app.close()  # the process stops

        app2 = await app_factory(settings, clock=clock, inline_analysis=True)
        kit2 = RecordsKit(app2, pki, clock, kit.roster, kit.result, kit.telegram_ids)
        fake.phone = "confirm"
        await kit2.settle()
        assert await SignatureStep.filter(field="gvbm_gv03", state="signed").count() == 3
        assert len(fake.endpoint_calls("signatures/signHash")) == 1
        for record in await kit2.records():
            assert record.held_by is None and record.signatures == 1
            report = await verify_record(bytes(record.pdf), trusted_roots=[pki.root_der, fake.pki.root_der])
            assert report.ok, report
    finally:
        await fake.stop()
