"""Provisioning benchmark: one bulk list of N students carried out as one job, on the local and ldap back ends.

Not a test: it prints figures. edudesk's App (SQLite in a temp dir) provisions an approved list of N
students through the real job (sealed passwords, address journal, account log, per-row outcomes, card
progress) into (a) the local directory and (b) a private OpenLDAP (slapd from tests/servers/slapd.py).
The ceiling is plain ldap3 adding the same N entries with the same writes (add, RFC 3062 password modify,
pwdReset) to the same slapd, in the same run, over as many connections as the back end's pool, once before
and once after edudesk's run (their mean is the ceiling: the load of a shared machine moves it). Printed:
accounts per second for each, CPU ms per account in this process, ldap / ceiling as a ratio (target >= 0.5),
the load average, and last one JSON line.

    .venv/bin/python bench/provision.py [--count 2000] [--skip-local]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The school the bench's lists and addresses belong to (seed 000's), configured as a school would.
HUST = tomllib.loads((ROOT / "examples" / "config.hust.toml").read_text(encoding="utf-8"))
sys.path.insert(0, str(ROOT))

from edudesk.app import App  # noqa: E402
from edudesk.core.accounts.models import Account  # noqa: E402
from edudesk.core.config import load_settings  # noqa: E402
from edudesk.core.models import Job  # noqa: E402
from edudesk.core.people.staff import Actor, Role  # noqa: E402
from edudesk.core.requests.models import Request, RequestPerson  # noqa: E402
from tests.servers.slapd import SlapdServer, add_people, find_slapd  # noqa: E402

OFFICE = Actor("bench:1", "Phòng Đào tạo", frozenset({Role.OFFICE}))
TECH = Actor("bench:2", "Tổ Kỹ thuật", frozenset({Role.TECHNICAL}))
POOL = 4


async def provision(count: int, data_dir: str, backend: str, server: SlapdServer | None) -> tuple[float, float]:
    """Seconds (wall, CPU of this process) for the provision job to carry out an approved list of `count`
    students."""
    overrides: dict[str, Any] = {"general": {"data_dir": data_dir}, "smtpd": {"enabled": False},
                                 "web": {"enabled": False}, "intake": {"parser_processes": 1},
                                 "provisioning": {"backend": backend, "delivery": "mail"}, **HUST}
    if server is not None:
        os.environ["EDUDESK_BENCH_LDAP_PASSWORD"] = server.service_password
        overrides["provisioning"]["ldap"] = {
            "url": server.url, "bind_dn": server.service_dn, "bind_password_env": "EDUDESK_BENCH_LDAP_PASSWORD",
            "staff_base": server.staff_base, "student_base": server.student_base, "pool_size": POOL}
    app = App(load_settings(None, overrides=overrides, environ=os.environ), inline_analysis=True)
    await app.open()
    try:
        now = app.clock.now()
        request = await Request.create(kind="bulk_new_accounts", population="student", state="received",
                                       sender="khoa.cntt@hust.edu.vn", sender_name="Văn phòng Khoa CNTT",
                                       subject="Danh sách sinh viên K70", received_at=now,
                                       deadline=now + timedelta(hours=24), updated_at=now)
        await RequestPerson.bulk_create([
            RequestPerson(request=request, row=i, person_id=f"2025{i:05d}", full_name=f"Phạm Thị Hương {i}",
                          proposed_address=f"huong.pt{i:05d}@sis.hust.edu.vn",
                          data={"student_id": f"2025{i:05d}", "full_name": f"Phạm Thị Hương {i}",
                                "given_name": "Hương", "family_name": "Phạm"}) for i in range(count)],
            batch_size=500)
        await app.services.act(request.id, "approve", OFFICE)
        await app.services.act(request.id, "provision", TECH)
        job = await Job.get(kind="provision")
        started, cpu = time.perf_counter(), time.process_time()
        await app.provisioning(job)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        state = (await Request.get(id=request.id)).state
        made = await Account.filter(state="active").count()
        if state != "done" or made != count:
            raise SystemExit(f"{backend}: request {state}, {made}/{count} accounts")
        return elapsed, cpu
    finally:
        await app.close()


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--skip-local", action="store_true", help="only the ldap back end and its ceiling")
    args = parser.parse_args()
    count = args.count
    if find_slapd() is None:
        raise SystemExit("slapd is not installed: bash scripts/install-test-deps.sh")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        local = None if args.skip_local else asyncio.run(provision(count, f"{tmp}/local", "local", None))
        with SlapdServer() as server:
            cpu = time.process_time()
            before = add_people(server, count, threads=POOL)
            ldap, ldap_cpu = asyncio.run(provision(count, f"{tmp}/ldap", "ldap", server))
            after = add_people(server, count, threads=POOL, prefix="again")
            ceiling_cpu = (time.process_time() - cpu - ldap_cpu) / 2
    ceiling = (before + after) / 2
    peak = max(load[0], os.getloadavg()[0])
    print(f"provision: {count} students as one bulk job (SQLite, delivery=mail, concurrency 8, pool {POOL})")
    if local is not None:
        print(f"  local directory (scrypt hashes):  {count / local[0]:8.1f} accounts/s  ({local[0]:.2f} s)")
    print(f"  ldap back end into slapd:          {count / ldap:8.1f} accounts/s  ({ldap:.2f} s, "
          f"CPU {1000 * ldap_cpu / count:.2f} ms per account)")
    print(f"  plain ldap3, same writes (ceiling): {count / ceiling:8.1f} accounts/s  (before {count / before:.1f}/s, "
          f"after {count / after:.1f}/s, CPU {1000 * ceiling_cpu / count:.2f} ms per account)")
    print(f"  ldap / ceiling: {ceiling / ldap:.2f}  (target >= 0.5); load average {peak:.1f} (highest seen)")
    print(json.dumps({"ldap_per_s": round(count / ldap, 1), "ceiling_per_s": round(count / ceiling, 1),
                      "ratio": round(ceiling / ldap, 2), "ldap_cpu_ms": round(1000 * ldap_cpu / count, 2),
                      "ceiling_cpu_ms": round(1000 * ceiling_cpu / count, 2), "load_1m": round(peak, 1),
                      "local_per_s": round(count / local[0], 1) if local is not None else None}))


if __name__ == "__main__":
    main()
