"""`records refresh-ltv` renews archived revisions too (issue #18): a record withdrawn after it was issued at
PAdES B-LTA stays in `record_revision` for decades, so its archival timestamp chain is renewed by the same run
as the issued records (same schedule, same `scheduler:ltv` lead), and two runs at once renew it only once. The
TSA, OCSP responder and CRL are certomancer's, served on 127.0.0.1 by `LocalPkiService` from the demo CA."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.signing.changes import start_change
from edudesk.core.signing.lifemodels import ChangeKind, RecordRevision
from edudesk.core.signing.models import SchoolRecord
from edudesk.core.signing.refresh import _save_revision, expiry, refresh_records
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.verify import verify_record
from tests.integration import test_pades_levels as pades
from tests.records_kit import ADMIN, PIN, RecordsKit

pytestmark = pytest.mark.db

service = pades.service  # a running TSA/OCSP/CRL service of a fresh demo CA


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, service: LocalPkiService,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordsKit]:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    yield await pades._kit(app_factory, settings_factory, tmp_path, service, "B-LTA")


async def withdrawn_revision(kit: RecordsKit) -> RecordRevision:
    """Sign the class to B-LTA, confirm it, withdraw HS001 (its minutes signed by the principal)."""
    await kit.load()
    await kit.start()
    await pades._sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    first = (await kit.records())[0]
    change = await start_change(kit.app.records, ADMIN, first.id, ChangeKind.WITHDRAWAL, "Lập trùng hồ sơ")
    await kit.settle()
    book = (await SchoolRecord.get(id=change.minutes_id)).klass_id
    await kit.app.records.start_signing(await kit.actor("BGH01"), book, Stage.LEADERSHIP, pin=PIN)
    await kit.settle()
    assert (await SchoolRecord.get(id=first.id)).state == "withdrawn"
    return await RecordRevision.get(record_id=first.id)


async def test_refresh_ltv_renews_an_archived_revision_and_it_still_validates_ten_years_ahead(
        kit: RecordsKit) -> None:
    rev = await withdrawn_revision(kit)
    retired = bytes(rev.pdf)
    expires = expiry(retired)
    assert expires is not None, "the issued revision carries a document timestamp (B-LTA)"
    nothing = await refresh_records(kit.app.settings, kit.clock)
    assert (nothing.revisions_checked, nothing.revisions_refreshed) == (1, 0)
    kit.clock.advance(expires - timedelta(days=30) - kit.clock.now())  # a month before the TSA certificate expires
    done = await refresh_records(kit.app.settings, kit.clock)
    assert (done.revisions_checked, done.revisions_refreshed, done.failed) == (1, 1, 0)
    assert done.refreshed >= 1, "the issued record still in the class is renewed by the same run"
    renewed = await RecordRevision.get(id=rev.id)
    pdf = bytes(renewed.pdf)
    assert pdf.startswith(retired) and len(pdf) > len(retired), "an incremental update of the retired file"
    assert renewed.sha256 == hashlib.sha256(pdf).hexdigest() != rev.sha256
    assert (renewed.number, renewed.kind, renewed.change_id) == (rev.number, rev.kind, rev.change_id)
    assert expiry(pdf) is not None  # the demo TSA's one certificate: the new timestamp's TSA expires as early
    report = await verify_record(pdf, trusted_roots=[kit.pki.root_der], ltv=True, at=pades.TEN_YEARS)
    assert report.ok and report.archive is not None and report.archive.count == 2
    assert all(s.ltv and s.ltv.valid_at for s in report.signatures)
    audited = [e.detail for e in await kit.audit("record_ltv_refreshed") if "revision" in e.detail]
    assert audited == [{"record": rev.record_id, "revision": 0, "expired_at": expires.isoformat()}]


async def test_two_runs_at_once_renew_an_archived_revision_once(kit: RecordsKit) -> None:
    rev = await withdrawn_revision(kit)
    expires = expiry(bytes(rev.pdf))
    assert expires is not None
    kit.clock.advance(expires - timedelta(days=30) - kit.clock.now())
    first, second = await asyncio.gather(refresh_records(kit.app.settings, kit.clock),
                                         refresh_records(kit.app.settings, kit.clock))
    assert first.revisions_refreshed + second.revisions_refreshed == 1
    renewed = await RecordRevision.get(id=rev.id)
    assert renewed.sha256 == hashlib.sha256(bytes(renewed.pdf)).hexdigest()
    assert len([e for e in await kit.audit("record_ltv_refreshed") if "revision" in e.detail]) == 1
    # A run that read the revision before another renewed it does not overwrite the renewal (compare-and-swap).
    assert not await _save_revision(rev, b"%PDF-1.7 a stale renewal", kit.clock, expires)
    assert bytes((await RecordRevision.get(id=rev.id)).pdf) == bytes(renewed.pdf)
