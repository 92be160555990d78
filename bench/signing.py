"""Signing benchmark: N school records, each signed five times (a certification signature by the first subject
teacher, a second subject teacher, the homeroom teacher, the principal, the school's issuing signature).

Not a test: it prints figures. The records are real Học bạ PDFs (core/signing/pdfs.py, a handful of distinct
students reused) with their five pre-made, locked fields; the keys are demo RSA-2048 credentials. Measured
in the same run:
  - edudesk's path: `SigningPool` on every core, one batch per signer (all N records), parsed keys cached
    in the workers, room reserved up front (no dry-run estimate), the shared Vietnamese stamp;
  - pyHanko's naive path on a sample: `SimpleSigner.load` from the PEM files and `sign_pdf` (sync, dry-run
    size estimate, pyHanko's default stamp) for every signature, same metadata, one core;
  - the raw RSA-2048 PKCS#1 v1.5 signing rate of `cryptography` on one core (the ceiling per core).
Printed: signatures per second for each and pool / naive as a ratio (target >= 10). A sample of the pool's
records is validated with pyHanko (every signature intact, valid, trusted, only form filling after it).

Then the same again with PAdES B-LT / B-LTA (issue #18), against certomancer's TSA, OCSP responder and CRL
served on 127.0.0.1 by `LocalPkiService` (a thread of this process, on the same cores): every signature gets
an RFC 3161 timestamp and its chain's revocation data in the DSS, the issuing signature a document timestamp.
The pool fetches OCSP/CRL once per chain per batch on each worker and has several TSA calls under way at once;
pyHanko's naive path asks the TSA and the responders for every signature (a new timestamper and validation
context each time), as a script following pyHanko's documentation would. Both variants' levels are checked.

Then the whole workflow (issue 19, bench/signing_workflow.py): one class of 40 students x 15 signatures through
sessions, turns, notices and the check after every signature, and with `--school` 1,000 students (25 classes);
the full validation at export timed apart. The last line is one JSON object: pool_per_s, naive_per_s,
workflow_per_s, pool_ratio, workflow_ratio (and the figures behind them).

    .venv/bin/python bench/signing.py [--records 1500] [--workers N] [--naive 40] [--verify 20]
                                      [--ltv-records 300] [--ltv-naive 15] [--skip-plain]
                                      [--class-students 40] [--school] [--workflow-level B-B]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from edudesk.cli.localpki import LocalPkiService  # noqa: E402
from edudesk.core.ports import SignItem  # noqa: E402
from edudesk.core.signing import spec  # noqa: E402
from edudesk.core.signing.engine import LocalCredential, SigningPool  # noqa: E402
from edudesk.core.signing.pades import PadesProfile, step_level  # noqa: E402
from edudesk.core.signing.pdfs import RecordContent, SubjectScore, add_signature_fields, record_pdf  # noqa: E402
from edudesk.core.signing.pki import Credential, DemoPki  # noqa: E402
from edudesk.core.signing.spec import FieldSpec, Stage  # noqa: E402

PASS = b"bench-mat-khau"
SIGNERS = (("gvbm_toan", Stage.SUBJECT, "Nguyễn Thị Bình"), ("gvbm_van", Stage.SUBJECT, "Trần Văn Đức"),
           ("gvcn", Stage.HOMEROOM, "Phạm Quốc Việt"), ("bgh_1", Stage.LEADERSHIP, "Đỗ Thị Ngọc Ánh"),
           ("phat_hanh", Stage.ISSUER, ""))
SUBJECTS = ("Toán", "Ngữ văn", "Tiếng Anh", "Vật lí", "Hoá học", "Sinh học", "Lịch sử", "Địa lí",
            "Giáo dục kinh tế và pháp luật", "Tin học", "Công nghệ", "Giáo dục thể chất")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ")
GIVEN = ("Thị Ánh Dương", "Minh Khôi", "Ngọc Hân", "Quốc Bảo", "Thu Hà", "Đức Anh", "Khánh Linh", "Gia Huy")
DISTINCT = 12  # distinct record PDFs; the N records cycle through them (each is signed on its own)


def records(count: int, school: str, fields: list[FieldSpec]) -> list[bytes]:
    """`count` fielded record PDFs made from DISTINCT generated students."""
    rng = random.Random(7)
    made = []
    for n in range(min(count, DISTINCT)):
        scores = tuple(SubjectScore(s, f"{rng.choice(FAMILY)} Thị Hường", f"{rng.uniform(5, 10):.1f}",
                                    f"{rng.uniform(5, 10):.1f}", f"{rng.uniform(5, 10):.1f}", "Có tiến bộ.")
                       for s in SUBJECTS)
        content = RecordContent(school, "2025–2026", "10A1", f"HS{n:04d}", f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}",
                                "05/03/2010", rng.choice(("Nam", "Nữ")), "Phạm Quốc Việt", scores, "Tốt", "Khá",
                                "Em chăm ngoan, tích cực tham gia phong trào.")
        made.append(add_signature_fields(record_pdf(content), fields))
    return [made[n % len(made)] for n in range(count)]


def item(pdf: bytes, step: int, name: str, n: int, level: str = "B-B") -> SignItem:
    """The `step`-th signature of record `n` (at `level`: teachers at most B-LT, the issuer up to B-LTA)."""
    return SignItem(key=f"step:{n}:{step}", pdf=pdf, field=SIGNERS[step][0], certify=step == 0,
                    reason="Ký học bạ số", location="Hà Nội", signer_name=name,
                    level=step_level(level, issuing=SIGNERS[step][1] == Stage.ISSUER))


async def pooled(pdfs: list[bytes], creds: list[Credential], workers: int, profile: PadesProfile | None = None,
                 level: str = "B-B") -> tuple[float, list[bytes]]:
    """Seconds for the pool to put all five signatures on every record (one batch per signer)."""
    pool = SigningPool(workers, pades=profile)
    try:
        warm = LocalCredential(pkcs12=creds[0].pkcs12(PASS), passphrase=PASS)
        await pool.sign(warm, [item(pdfs[0], 0, "", -1)] * workers)  # spawn the workers (untimed)
        started = time.perf_counter()
        for step, cred in enumerate(creds):
            credential = LocalCredential(pkcs12=cred.pkcs12(PASS), passphrase=PASS)
            pdfs = await pool.sign(credential, [item(pdf, step, cred.name, n, level) for n, pdf in enumerate(pdfs)])
        return time.perf_counter() - started, pdfs
    finally:
        pool.close()


def naive(pdfs: list[bytes], creds: list[Credential], folder: Path, count: int,
          service: LocalPkiService | None = None) -> tuple[float, int]:
    """Seconds for pyHanko's naive path (load the key from files, dry-run estimate) over `count` signatures;
    with `service`, at B-LT (B-LTA for the issuer) through its TSA and responders, nothing kept between two."""
    import dataclasses

    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers import SimpleSigner, sign_pdf
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko_certvalidator import ValidationContext

    files = []
    for n, cred in enumerate(creds):
        (folder / f"{n}.key.pem").write_bytes(cred.key_pem)
        (folder / f"{n}.crt.pem").write_bytes(cred.pem)
        (folder / f"{n}.ca.pem").write_bytes(cred.chain[0].public_bytes(Encoding.PEM))
        files.append((folder / f"{n}.key.pem", folder / f"{n}.crt.pem", folder / f"{n}.ca.pem"))
    done = 0
    started = time.perf_counter()
    for n, pdf in enumerate(pdfs):
        for step, (key, crt, ca) in enumerate(files):
            if done == count:
                return time.perf_counter() - started, done
            signer = SimpleSigner.load(str(key), str(crt), ca_chain_files=(str(ca),))
            meta = spec.signature_metadata(item(pdf, step, creds[step].name, n))
            timestamper = None
            if service is not None:
                context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(service.pki.root_der)],
                                            allow_fetching=True, revocation_mode="hard-fail")
                meta = dataclasses.replace(meta, embed_validation_info=True, validation_context=context,
                                           use_pades_lta=SIGNERS[step][1] == Stage.ISSUER)
                timestamper = HTTPTimeStamper(service.tsa_url)
            # as pyHanko's docs show it: sync, dry-run size estimate, pyHanko's default stamp
            out = sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), meta, signer=signer, existing_fields_only=True,
                           timestamper=timestamper)
            pdf = out.getvalue()
            done += 1
    return time.perf_counter() - started, done


def raw_rsa(cred: Credential, seconds: float = 1.5) -> float:
    """RSA-2048 PKCS#1 v1.5 / SHA-256 signatures per second of `cryptography` on this core."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = cred.key
    assert isinstance(key, rsa.RSAPrivateKey)
    data, done = os.urandom(64), 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        done += 50
    return done / (time.perf_counter() - started)


async def verify(pdfs: list[bytes], pki: DemoPki, sample: int) -> int:
    """How many of a random sample of signed records have every signature good (and in field order)."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    roots = [asn1_x509.Certificate.load(pki.root_der)]
    good = 0
    for pdf in random.Random(3).sample(pdfs, min(sample, len(pdfs))):
        sigs = PdfFileReader(BytesIO(pdf)).embedded_signatures
        ok = [s.field_name for s in sigs] == [s[0] for s in SIGNERS]
        for sig in sigs:
            st = await async_validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
            ok = ok and st.intact and st.valid and st.trusted and st.docmdp_ok and \
                st.modification_level is not None and st.modification_level <= ModificationLevel.FORM_FILLING
        good += ok
    return good


async def verify_ltv(pdfs: list[bytes], pki: DemoPki, sample: int) -> int:
    """How many of a sample of records are good with every signature at B-LTA (pyHanko's AdES validation)."""
    from edudesk.core.signing.verify import verify_record

    good = 0
    for pdf in random.Random(3).sample(pdfs, min(sample, len(pdfs))):
        report = await verify_record(pdf, trusted_roots=[pki.root_der], ltv=True)
        good += report.ok and [s.field for s in report.signatures] == [s[0] for s in SIGNERS] and \
            all(s.ltv is not None and s.ltv.level == "B-LTA" for s in report.signatures)
    return good


def _world(count: int, pki: DemoPki) -> tuple[list[Credential], list[bytes]]:
    creds = [pki.issue(name) if name else pki.issue_organisation() for _f, _s, name in SIGNERS]
    fields = [FieldSpec(f, stage, f"{stage.name} — {c.name}") for (f, stage, _n), c in zip(SIGNERS, creds, strict=True)]
    return creds, records(count, pki.school, fields)


def plain_run(args: argparse.Namespace) -> dict[str, float]:
    """B-B: the pool against pyHanko's naive path and the raw RSA rate."""
    pki = DemoPki.create()
    creds, pdfs = _world(args.records, pki)
    sigs = args.records * len(SIGNERS)
    pool_s, signed = asyncio.run(pooled(pdfs, creds, args.workers))
    with tempfile.TemporaryDirectory() as tmp:
        naive_s, naive_n = naive(pdfs, creds, Path(tmp), args.naive)
    rsa_rate = raw_rsa(creds[0])
    good = asyncio.run(verify(signed, pki, args.verify))
    pool_rate, naive_rate = sigs / pool_s, naive_n / naive_s
    print(f"signing: {args.records} records x {len(SIGNERS)} signatures = {sigs} (RSA-2048, PAdES, visible stamps)")
    print(f"  SigningPool, {args.workers} workers:         {pool_rate:8.1f} signatures/s  ({pool_s:.2f} s)")
    print(f"  pyHanko naive sign_pdf, 1 core:     {naive_rate:8.1f} signatures/s  ({naive_n} in {naive_s:.2f} s)")
    print(f"  raw RSA-2048 (cryptography), 1 core: {rsa_rate:7.0f} signatures/s")
    print(f"  pool / naive: {pool_rate / naive_rate:.1f}x  (target >= 10x)")
    print(f"  verified: {good}/{min(args.verify, len(signed))} sampled records, every signature good")
    return {"pool_per_s": pool_rate, "naive_per_s": naive_rate}


def ltv_run(args: argparse.Namespace) -> None:
    """B-LT for the teachers, B-LTA after the issuing signature: the pool against the naive path, one TSA."""
    pki = DemoPki.create()
    with LocalPkiService(pki) as service:  # first: the certificates name its OCSP and CRL addresses
        creds, pdfs = _world(args.ltv_records, pki)
        sigs = args.ltv_records * len(SIGNERS)
        profile = PadesProfile(service.tsa_url, trust_roots=(pki.root_der,))
        pool_s, signed = asyncio.run(pooled(pdfs, creds, args.workers, profile, "B-LTA"))
        pool_calls = dict(service.requests)
        with tempfile.TemporaryDirectory() as tmp:
            naive_s, naive_n = naive(pdfs, creds, Path(tmp), args.ltv_naive, service)
        naive_calls = {k: v - pool_calls[k] for k, v in service.requests.items()}
    good = asyncio.run(verify_ltv(signed, pki, min(args.verify, 5)))
    pool_rate, naive_rate = sigs / pool_s, naive_n / naive_s
    print(f"signing at PAdES B-LT (+ B-LTA after the issuing signature): {args.ltv_records} records x "
          f"{len(SIGNERS)} = {sigs}, RFC 3161 TSA + OCSP + CRL on 127.0.0.1 (certomancer)")
    print(f"  SigningPool, {args.workers} workers:         {pool_rate:8.1f} signatures/s  ({pool_s:.2f} s; "
          f"TSA {pool_calls['tsa']}, OCSP {pool_calls['ocsp']}, CRL {pool_calls['crl']} requests)")
    print(f"  pyHanko naive sign_pdf, 1 core:     {naive_rate:8.1f} signatures/s  ({naive_n} in {naive_s:.2f} s; "
          f"TSA {naive_calls['tsa']}, OCSP {naive_calls['ocsp']}, CRL {naive_calls['crl']} requests)")
    print(f"  pool / naive: {pool_rate / naive_rate:.1f}x  (target >= 10x)")
    print(f"  verified: {good}/{min(args.verify, 5, len(signed))} sampled records, every signature B-LTA")


def workflow_run(args: argparse.Namespace, naive_rate: float | None) -> dict[str, object]:
    """The workflow: one class, and with --school 25 classes of 40 students."""
    from signing_workflow import check_costs, workflow

    costs = asyncio.run(check_costs(args.workflow_level))
    before, after = costs["before_ms"], costs["after_ms"]
    print(f"check after each of 15 signatures of one record ({args.workflow_level}, one process), ms:")
    print("  before (last two signatures re-validated with difference analysis): "
          + " ".join(f"{v:.0f}" for v in before) + f"  = {sum(before) / 1000:.2f} s")
    print("  now (the new revision only, the new signature validated):          "
          + " ".join(f"{v:.0f}" for v in after) + f"  = {sum(after) / 1000:.2f} s")
    runs = [("class", args.class_students, 1)] + ([("school", 40, 25)] if args.school else [])
    out: dict[str, object] = {"check_before_ms": round(sum(before) / len(before), 1),
                              "check_after_ms": round(sum(after) / len(after), 1)}
    for name, students, classes in runs:
        r = asyncio.run(workflow(students, classes, level=args.workflow_level))
        rate = r["signatures"] / r["signing_s"]
        print(f"workflow ({name}): {r['students']} students in {classes} class(es), {r['signatures']}/{r['steps']} "
              f"signatures at {args.workflow_level} through sessions, turns, notices and the check after each")
        print(f"  signing:   {r['signing_s']:8.2f} s  = {rate:6.1f} signatures/s"
              + (f"  ({rate / naive_rate:.1f}x naive)" if naive_rate else ""))
        print(f"  export with the full validation of {r['exported']} records in the pool: {r['export_s']:.2f} s "
              f"({r['export_s'] / max(r['exported'], 1) * 1000:.0f} ms a record); with it: "
              f"{r['signatures'] / (r['signing_s'] + r['export_s']):.1f} signatures/s")
        out[f"{name}_signing_s"] = round(r["signing_s"], 2)
        out[f"{name}_export_s"] = round(r["export_s"], 2)
        out[f"{name}_per_s"] = round(rate, 2)
    return out


def main() -> None:
    """Run the measurements and print them; the last line is one JSON object."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--naive", type=int, default=40, help="signatures in the naive sample")
    parser.add_argument("--verify", type=int, default=20, help="records validated from the pool's output")
    parser.add_argument("--ltv-records", type=int, default=300, help="records of the B-LT/B-LTA run (0: none)")
    parser.add_argument("--ltv-naive", type=int, default=15, help="signatures in the B-LT naive sample")
    parser.add_argument("--skip-plain", action="store_true", help="only the B-LT/B-LTA run")
    parser.add_argument("--class-students", type=int, default=40, help="students of the workflow's class (0: none)")
    parser.add_argument("--school", action="store_true", help="also the workflow for 1,000 students (25 classes)")
    parser.add_argument("--workflow-level", default="B-B", choices=["B-B", "B-T", "B-LT", "B-LTA"])
    args = parser.parse_args()
    figures: dict[str, object] = {}
    if not args.skip_plain:
        figures.update(plain_run(args))
    if args.ltv_records:
        ltv_run(args)
    naive_rate = figures.get("naive_per_s")
    if args.class_students:
        figures.update(workflow_run(args, naive_rate if isinstance(naive_rate, float) else None))
    pool, naive_, flow = figures.get("pool_per_s"), figures.get("naive_per_s"), figures.get("class_per_s")
    summary = {"pool_per_s": pool, "naive_per_s": naive_, "workflow_per_s": flow,
               "pool_ratio": pool / naive_ if isinstance(pool, float) and isinstance(naive_, float) else None,
               "workflow_ratio": flow / naive_ if isinstance(flow, float) and isinstance(naive_, float) else None}
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in {**summary, **figures}.items()}))


if __name__ == "__main__":
    main()
