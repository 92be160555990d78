"""Intake benchmark: how many realistic form mails per second edudesk turns into requests.

Not a test: it prints figures. One run does two measurements with the same client and the same
pre-generated mails:

1. ceiling  — a plain aiosmtpd server with a no-op handler (250 at once), in a subprocess;
2. edudesk  — `edudesk run` in a subprocess on a fresh temp data dir (SQLite, maildir outbox,
              student registry imported), the whole intake: ledger store before 250, process_mail
              job, parse/extract in the process pool, checks, Request row, acknowledgement mail.

The client (this process) sends with K persistent smtplib connections in threads. Per mail it
records t_accept (the 250 to DATA); after the burst it reads the database (the SQLite file read-only, or
the private PostgreSQL database of the run: bench/intake_db.py) and takes Request.updated_at (set when the
request row is created) as t_stored, matched by Message-ID. Measurement 2 runs once per database, SQLite
then PostgreSQL by default; `--kill-after N` adds the same burst with a kill -9 in the middle.

    .venv/bin/python bench/intake.py [--count 2000] [--connections 8] [--database sqlite] [--kill-after 1000]

See bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import unicodedata
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_db import BenchDb, BenchDbError, PostgresBenchDb, SqliteBenchDb, timestamp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BM02 = ROOT / "edudesk" / "templates" / "forms" / "BM02.docx"
EDUDESK = [sys.executable, "-m", "edudesk"]
OFFICE = "office-bknic@hust.edu.vn"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

TARGET_RATE = 100.0  # mails/s
TARGET_P95 = 1.0  # seconds from 250 to request stored
PROFILE_DIR = os.environ.get("EDUDESK_BENCH_PROFILE", "")  # a folder: cProfile the server's main process there
TARGET_RATIO = 0.33  # edudesk / the no-op aiosmtpd ceiling
TARGET_ACK_P95 = 5.0  # seconds from 250 to the acknowledgement written

# --- realistic people ------------------------------------------------------------------------------

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
          "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trịnh", "Đoàn", "Lương", "Mai", "Tạ", "Quách", "Kiều"]
MIDDLE_M = ["Văn", "Hữu", "Đức", "Minh", "Quốc", "Thành", "Công", "Xuân", "Quang", "Tiến", "Ngọc", "Đình",
            "Bá", "Mạnh", "Trọng", "Gia", "Anh", "Hoàng"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Phương", "Kim", "Hồng", "Mỹ", "Khánh", "Bảo", "Diệu",
            "Thùy", "Quỳnh", "Hải", "Như"]
GIVEN_M = ["An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khánh", "Khoa",
           "Long", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Sơn", "Tâm", "Thắng", "Thịnh", "Trung", "Tuấn",
           "Tùng", "Việt", "Vinh", "Vũ", "Đức", "Lộc", "Toàn", "Kiên"]
GIVEN_F = ["Anh", "Ánh", "Chi", "Dung", "Giang", "Hà", "Hằng", "Hạnh", "Hiền", "Hoa", "Hương", "Huyền",
           "Lan", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Nhung", "Oanh", "Phương", "Quyên", "Thảo",
           "Trang", "Tuyết", "Uyên", "Vân", "Yến", "Thủy", "Diệp", "Ngọc"]
CLASSES = ["Khoa học máy tính", "Kỹ thuật máy tính", "Công nghệ thông tin Việt-Nhật", "Điện tử viễn thông",
           "Kỹ thuật điều khiển - Tự động hóa", "Cơ điện tử", "Kỹ thuật hóa học", "Kỹ thuật cơ khí",
           "Toán - Tin", "Kinh tế công nghiệp", "Ngôn ngữ Anh", "Kỹ thuật sinh học"]
UNITS = ["Trường Công nghệ Thông tin và Truyền thông", "Trường Điện - Điện tử", "Trường Cơ khí",
         "Trường Hóa và Khoa học sự sống", "Khoa Toán - Tin", "Trường Kinh tế", "Khoa Ngoại ngữ"]
MAIL_HOSTS = ["gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com"]
BODIES = [
    "Kính gửi Trung tâm Mạng Thông tin,\n\nEm là {name}, sinh viên lớp {cls} {coh}, mã số sinh viên {sid}.\n"
    "Em xin đề nghị cấp tài khoản email sinh viên. Em gửi kèm đơn theo mẫu BM02.\n\nEm cảm ơn ạ.\n{name}\n",
    "Chào thầy cô,\n\nEm gửi đơn xin cấp mới tài khoản email cho sinh viên (file đính kèm).\n"
    "Mong thầy cô hỗ trợ em sớm ạ.\n\nTrân trọng,\n{name} - {sid}\n",
    "Kính gửi phòng CNTT,\nEm chưa có email trường nên làm đơn đề nghị cấp tài khoản theo mẫu đính kèm.\n"
    "Em xin cảm ơn!\n\n--\n{name}\nSĐT: {phone_spaced}\n",
]


def ascii_fold(text: str) -> str:
    """'Nguyễn Văn Đạt' -> 'Nguyen Van Dat' (for mailbox names and file names)."""
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Student:
    full_name: str
    student_id: str
    dob: str
    class_name: str
    cohort: str
    unit: str
    phone: str
    email: str


def make_students(n: int, seed: int) -> list[Student]:
    """n distinct students (unique IDs and personal addresses; names repeat as they do in real life)."""
    rnd = random.Random(seed)
    codes = rnd.sample(range(40_000), n)  # unique student IDs: 4 intakes x 10,000
    out = []
    for i, code in enumerate(codes):
        female = rnd.random() < 0.45
        middles = MIDDLE_F if female else MIDDLE_M
        middle = rnd.choice(middles)
        if rnd.random() < 0.25:
            middle = f"{middle} {rnd.choice([m for m in middles if m != middle])}"
        given = rnd.choice(GIVEN_F if female else GIVEN_M)
        family = rnd.choice(FAMILY)
        year = 2021 + code // 10_000
        out.append(Student(
            full_name=f"{family} {middle} {given}",
            student_id=f"{year}{code % 10_000:04d}",
            dob=f"{rnd.randint(1, 28):02d}/{rnd.randint(1, 12):02d}/{year - 18}",
            class_name=f"{rnd.choice(CLASSES)} {rnd.randint(1, 4):02d}",
            cohort=f"K{year - 1956}",
            unit=rnd.choice(UNITS),
            phone=f"09{rnd.randint(0, 99_999_999):08d}",
            email=f"{ascii_fold(given).lower()}.{ascii_fold(family).lower()}{i}@{rnd.choice(MAIL_HOSTS)}",
        ))
    return out


# --- the BM02 form, filled cheaply -----------------------------------------------------------------

PLACEHOLDERS = {
    "Loại yêu cầu": "☒ Cấp mới tài khoản        ☐ Cấp lại mật khẩu",
    "Họ và tên": "@@NAME@@",
    "Ngày sinh": "@@DOB@@",
    "Mã số sinh viên": "@@SID@@",
    "Lớp": "@@CLASS@@",
    "Khóa": "@@COHORT@@",
    "Khoa/Viện": "@@UNIT@@",
    "Số điện thoại": "@@PHONE@@",
    "Email cá nhân": "@@EMAIL@@",
}


class FormFactory:
    """BM02 filled once with placeholders by python-docx (like a user in Word); per student only
    word/document.xml is substituted and deflated again, the other zip members are copied compressed."""

    def __init__(self, template: Path) -> None:
        from docx import Document  # a project dependency

        doc = Document(str(template))
        for row in doc.tables[0].rows:
            for label, value in PLACEHOLDERS.items():
                if row.cells[0].text.startswith(label):
                    row.cells[1].text = value
        buf = io.BytesIO()
        doc.save(buf)
        self.members: list[tuple[str, bytes, int, int]] = []  # name, deflated bytes, crc32, size
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            for info in z.infolist():
                data = z.read(info.filename)
                if info.filename == "word/document.xml":
                    self.document = data.decode("utf-8")
                    self.members.append((info.filename, b"", 0, 0))  # filled in per student
                else:
                    self.members.append((info.filename, _deflate(data), zlib.crc32(data), len(data)))

    def fill(self, s: Student) -> bytes:
        xml = self.document
        for key, value in (("NAME", s.full_name), ("DOB", s.dob), ("SID", s.student_id), ("CLASS", s.class_name),
                           ("COHORT", s.cohort), ("UNIT", s.unit), ("PHONE", _spaced(s.phone)),
                           ("EMAIL", s.email)):
            xml = xml.replace(f"@@{key}@@", escape(value))
        doc = xml.encode("utf-8")
        return _zip([(n, _deflate(doc), zlib.crc32(doc), len(doc)) if n == "word/document.xml" else (n, d, c, u)
                     for n, d, c, u in self.members])


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A minimal deflate zip (what zipfile writes, without re-compressing unchanged members)."""
    out = bytearray()
    central = bytearray()
    dos_time, dos_date = 0, 1 << 5 | 1  # 1980-01-01 00:00, like scripts/make_forms.py
    for name, data, crc, size in members:
        fname = name.encode("utf-8")
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, dos_time, dos_date, crc, len(data), size,
                           len(fname), 0)
        out += fname + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, dos_time, dos_date, crc, len(data),
                               size, len(fname), 0, 0, 0, 0, 0o644 << 16, offset)
        central += fname
    cd_offset = len(out)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


def _spaced(phone: str) -> str:
    return f"{phone[:4]} {phone[4:7]} {phone[7:]}"


def build_mail(s: Student, form: bytes, n: int, rnd: random.Random) -> tuple[str, str, bytes]:
    """(envelope sender, Message-ID, raw bytes) of one student's request mail."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = formataddr((s.full_name, s.email))
    msg["To"] = formataddr(("Trung tâm Mạng Thông tin", OFFICE))
    msg["Subject"] = rnd.choice([
        f"Đơn xin cấp tài khoản email sinh viên - {s.full_name} - {s.student_id}",
        f"[{s.student_id}] Đề nghị cấp mới tài khoản email",
        f"Xin cấp tài khoản email sinh viên {s.cohort}",
    ])
    msg["Date"] = formatdate(localtime=False)
    mid = f"bench.{n}.{s.student_id}.{rnd.getrandbits(48):012x}@{s.email.rpartition('@')[2]}"
    msg["Message-ID"] = f"<{mid}>"
    msg["MIME-Version"] = "1.0"
    msg["X-Mailer"] = rnd.choice(["Microsoft Outlook 16.0", "Apple Mail (2.3774)", "Gmail"])
    body = rnd.choice(BODIES).format(name=s.full_name, cls=s.class_name, coh=s.cohort, sid=s.student_id,
                                     phone_spaced=_spaced(s.phone))
    msg.set_content(body, charset="utf-8")
    fname = f"BM02_{ascii_fold(s.full_name).replace(' ', '')}_{s.student_id}.docx"
    maintype, subtype = DOCX_TYPE.split("/")
    msg.add_attachment(form, maintype=maintype, subtype=subtype, filename=fname)
    return s.email, mid, msg.as_bytes(policy=SMTP_POLICY)


@dataclass
class Mail:
    sender: str
    message_id: str
    raw: bytes


def generate(count: int, seed: int) -> tuple[list[Mail], list[Student], Mail]:
    """count burst mails plus one warm-up mail (a different student), all built before any timing."""
    students = make_students(count + 1, seed)
    factory = FormFactory(BM02)
    rnd = random.Random(seed + 1)
    mails = []
    for n, s in enumerate(students):
        sender, mid, raw = build_mail(s, factory.fill(s), n, rnd)
        mails.append(Mail(sender, mid, raw))
    return mails[1:], students, mails[0]


# --- the client ------------------------------------------------------------------------------------


@dataclass
class BurstResult:
    start: float
    accepted: dict[str, float]  # Message-ID -> time of the 250
    refused: dict[str, str]  # Message-ID -> error

    @property
    def last_accept(self) -> float:
        return max(self.accepted.values()) if self.accepted else self.start


def _connect(port: int) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=600)
    smtp.ehlo("bench.client")
    return smtp


def send_burst(port: int, mails: list[Mail], connections: int, persist: bool = False) -> BurstResult:
    """Send every mail once over `connections` persistent SMTP sessions; time each 250. With `persist`, a mail
    that gets no 250 (a 4xx, the server killed or not listening) is sent again until it does, as a real
    sender's queue would."""
    accepted: dict[str, float] = {}
    refused: dict[str, str] = {}
    lock = threading.Lock()
    index = iter(range(len(mails)))
    ready = threading.Barrier(connections + 1)

    def send(smtp: smtplib.SMTP | None, m: Mail) -> smtplib.SMTP | None:
        while True:
            try:
                smtp = smtp or _connect(port)
                smtp.sendmail(m.sender, [OFFICE], m.raw)
                t = time.time()
                with lock:
                    accepted[m.message_id] = t
                return smtp
            except (smtplib.SMTPException, OSError) as exc:
                if not persist:
                    if not isinstance(exc, smtplib.SMTPException):
                        raise
                    with lock:
                        refused[m.message_id] = f"{type(exc).__name__}: {exc}"
                    return _connect(port) if isinstance(exc, smtplib.SMTPServerDisconnected) else smtp
                if smtp is not None:
                    try:
                        smtp.close()
                    except OSError:
                        pass
                smtp = None
                time.sleep(0.2)

    def worker() -> None:
        smtp: smtplib.SMTP | None = _connect(port)
        ready.wait()
        try:
            while True:
                with lock:
                    i = next(index, None)
                if i is None:
                    break
                smtp = send(smtp, mails[i])
        finally:
            try:
                if smtp is not None:
                    smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass

    with ThreadPoolExecutor(connections) as pool:
        futures = [pool.submit(worker) for _ in range(connections)]
        ready.wait()
        start = time.time()
        for f in futures:
            f.result()
    return BurstResult(start, accepted, refused)


# --- the servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def noop_server_main(port: int) -> None:
    """The ceiling: aiosmtpd with a handler that answers 250 at once and keeps nothing."""
    from aiosmtpd.smtp import SMTP

    class Noop:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Noop(), data_size_limit=25 * 1024 * 1024, enable_SMTPUTF8=True, hostname="noop"),
            host="127.0.0.1", port=port)
        print(f"noop: SMTP listener on 127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(serve())


class Server:
    """A server subprocess; ready when it prints its 'SMTP listener on' line."""

    def __init__(self, argv: list[str], log: Path, cwd: Path) -> None:
        self.log_path = log
        self.log = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=self.log)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        assert self.proc.stdout is not None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited early; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            self.log.write(line)
            if b"SMTP listener on" in line:
                threading.Thread(target=self._pump, daemon=True).start()
                return
        raise RuntimeError("server did not start in time")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user+system) of the server process and of its child processes (the parsers)."""
        return cpu_of_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ppid, (utime + stime) / os.sysconf("SC_CLK_TCK")


def _is_listener(pid: int) -> bool:
    try:
        return b"listener" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cpu_of_tree(root: int) -> dict[str, float]:
    """CPU seconds of the server (`main`), its parser processes (`children`) and, with `[smtpd] own_process`,
    its SMTP listener process (`listener`)."""
    main = _proc_cpu(root)
    children = listener = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != root:
            info = _proc_cpu(int(entry.name))
            if info and info[0] == root:
                if _is_listener(int(entry.name)):
                    listener += info[1]
                else:
                    children += info[1]
    return {"main": main[1] if main else 0.0, "children": children, "listener": listener}


# --- edudesk set-up and the database read-out ------------------------------------------------------


def write_config(tmp: Path, port: int, log_level: str, extra: list[str], database_url: str) -> Path:
    """The bench's config.toml: a fresh data dir, SMTP on `port`, maildir outbox; `extra` items are
    "section.key=<TOML value>" (e.g. jobs.concurrency=8) to try settings."""
    data: dict[str, dict[str, object]] = {
        "general": {"data_dir": "data", "log_level": log_level},
        "database": {"url": database_url},
        "smtpd": {"host": "127.0.0.1", "port": port},
        "outgoing": {"transport": "maildir", "maildir": "{data_dir}/outbox"},
        "web": {"enabled": False},
    }
    # The school the mails are written to (seed 000's), configured as a school would.
    hust = tomllib.loads((ROOT / "examples" / "config.hust.toml").read_text(encoding="utf-8"))
    for section, values in hust.items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if k not in data.get(section, {})})
    for item in extra:
        key, _, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        data.setdefault(section, {})[name] = tomllib.loads(f"v = {value.strip()}")["v"]
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{name} = {json.dumps(value, ensure_ascii=False)}" for name, value in values.items())
    config = tmp / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")  # JSON scalars and lists are valid TOML
    return config


def write_registry(tmp: Path, students: list[Student]) -> Path:
    path = tmp / "sinh_vien.csv"
    lines = ["Mã số sinh viên,Họ và tên,Ngày sinh,Lớp,Khóa,Khoa/Viện,Số điện thoại"]
    for s in students:
        lines.append(f'{s.student_id},{s.full_name},{s.dob},"{s.class_name}",{s.cohort},"{s.unit}",{s.phone}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def count_rows(db: BenchDb, sql: str) -> int:
    try:
        return int(db.rows(sql)[0][0])
    except BenchDbError:
        return -1


def wait_for(db: BenchDb, sql: str, target: int, timeout: float, every: float = 0.25) -> tuple[int, float]:
    """Poll until `sql` counts `target` rows or the timeout passes: (count, time reached)."""
    deadline = time.time() + timeout
    n = count_rows(db, sql)
    while n < target and time.time() < deadline:
        time.sleep(every)
        n = count_rows(db, sql)
    return n, time.time()


def read_out(db: BenchDb) -> dict[str, dict[str, float | None]]:
    """Message-ID (no brackets) -> times from the database: ledger (InboundMail/Request.received_at,
    taken before the 250), request stored (Request.updated_at, set when the row is created) and
    acknowledgement sent (OutgoingMail.sent_at)."""
    rows = db.rows(
        "SELECT r.message_id, r.received_at, r.updated_at, o.sent_at FROM request r "
        "LEFT JOIN outgoing_mail o ON o.request_id = r.id AND o.key = 'ack:' || r.id")
    return {mid.strip("<>"): {"ledger": timestamp(received), "stored": timestamp(updated), "ack": timestamp(sent)}
            for mid, received, updated, sent in rows}


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (NaN for no values)."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _wait_zero(db: BenchDb, sql: str, timeout: float) -> tuple[int, float]:
    deadline = time.time() + timeout
    n = count_rows(db, sql)
    while n != 0 and time.time() < deadline:
        time.sleep(0.25)
        n = count_rows(db, sql)
    return n, time.time()


def _cpu_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(b[k] - a[k], 2) for k in a}


def _outcomes(db: BenchDb) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.rows("SELECT outcome, COUNT(*) FROM inbound_mail GROUP BY outcome")}


# --- the two measurements --------------------------------------------------------------------------


def run_ceiling(mails: list[Mail], connections: int, tmp: Path) -> dict[str, float]:
    """The same burst against aiosmtpd with a no-op handler: what the SMTP layer and this client allow."""
    port = free_port()
    server = Server([sys.executable, str(Path(__file__).resolve()), "--noop-server", str(port)],
                    tmp / "noop.log", ROOT)
    try:
        server.wait_ready()
        cpu0 = server.cpu_seconds()
        burst = send_burst(port, mails, connections)
        cpu1 = server.cpu_seconds()
    finally:
        server.stop()
    span = burst.last_accept - burst.start
    return {"accepted": len(burst.accepted), "refused": len(burst.refused), "seconds": span,
            "mails_per_s": len(burst.accepted) / span if span > 0 else float("nan"),
            "server_cpu_s": round(cpu1["main"] - cpu0["main"], 2)}


PENDING_JOBS = "SELECT COUNT(*) FROM job WHERE state IN ('pending', 'running')"


def run_edudesk(mails: list[Mail], students: list[Student], warmup: Mail | None, connections: int, tmp: Path,
                timeout: float, registry: bool, log_level: str, extra: list[str], db: BenchDb) -> dict[str, object]:
    """`edudesk run` in a subprocess on a fresh data dir and database; the burst from this process; times
    from the database."""
    port = free_port()
    tmp = tmp / db.name  # a data dir of its own per database (outbox, secrets, logs)
    tmp.mkdir(exist_ok=True)
    config = write_config(tmp, port, log_level, extra, db.url)
    if registry:
        reg = write_registry(tmp, students)
        done = subprocess.run([*EDUDESK, "--config", str(config), "registry", "import", str(reg), "--population",
                               "student"], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"registry import failed:\n{done.stdout}\n{done.stderr}")
        print(f"        registry import: {done.stdout.strip().splitlines()[0]}", flush=True)
    # The server counts its statements and commits (bench/intake_count.py), optionally under cProfile.
    counts = tmp / f"sql-counts-{db.name}.json"
    runner = [sys.executable, *(["-m", "cProfile", "-o", str(Path(PROFILE_DIR) / f"edudesk-{db.name}.prof")]
                                if PROFILE_DIR else []), str(ROOT / "bench" / "intake_count.py"), str(counts), "--"]
    server = Server([*runner, "--config", str(config), "run"], tmp / f"edudesk-{db.name}.log", ROOT)
    try:
        server.wait_ready()
        base = 0
        if warmup is not None:
            # One uncounted mail first: the parser processes are spawned and warm, as in a running service.
            send_burst(port, [warmup], 1)
            base, _ = wait_for(db, "SELECT COUNT(*) FROM request", 1, 120)
            _wait_zero(db, PENDING_JOBS, 60)
            time.sleep(0.5)
        sql0 = _sql_counts(counts)
        cpu0 = server.cpu_seconds()
        burst = send_burst(port, mails, connections)
        cpu_burst = server.cpu_seconds()
        target = base + len(burst.accepted)
        got, t_all = wait_for(db, "SELECT COUNT(*) FROM request", target, timeout)
        cpu_req = server.cpu_seconds()
        left, t_jobs = _wait_zero(db, PENDING_JOBS, timeout if got >= target else 0)
        cpu_jobs = server.cpu_seconds()
        sql1 = _sql_counts(counts)
        times = read_out(db)
        dead = count_rows(db, "SELECT COUNT(*) FROM job WHERE state = 'dead'")
        outcomes = _outcomes(db)
    finally:
        server.stop()

    lat, ack_lat, stored_at = [], [], []
    for mid, t_acc in burst.accepted.items():
        row = times.get(mid)
        if row is None or row["stored"] is None:
            continue
        stored_at.append(row["stored"])
        lat.append(row["stored"] - t_acc)
        if row["ack"] is not None:
            ack_lat.append(row["ack"] - t_acc)
    first_accept = min(burst.accepted.values()) if burst.accepted else burst.start
    span = (max(stored_at) - first_accept) if stored_at else float("nan")
    accept_span = burst.last_accept - burst.start
    return {
        "sent": len(mails), "accepted": len(burst.accepted), "refused": len(burst.refused),
        "refusals": sorted(set(burst.refused.values()))[:5],
        "requests": len(lat), "requests_in_db": got - base, "dead_jobs": dead, "jobs_left": left,
        "acks_sent": len(ack_lat), "outcomes": outcomes,
        "accept_seconds": accept_span,
        "accept_per_s": len(burst.accepted) / accept_span if accept_span > 0 else float("nan"),
        "seconds": span, "mails_per_s": len(lat) / span if span > 0 else float("nan"),
        "p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "p99": pct(lat, 0.99), "max": max(lat, default=float("nan")),
        "ack_p50": pct(ack_lat, 0.5), "ack_p95": pct(ack_lat, 0.95),
        "all_jobs_done_s": t_jobs - burst.start, "last_request_seen_s": t_all - burst.start,
        "cpu": {"burst": _cpu_delta(cpu0, cpu_burst), "to_last_request": _cpu_delta(cpu0, cpu_req),
                "to_all_jobs_done": _cpu_delta(cpu0, cpu_jobs)},
        "sql": {k: (sql1[k] - sql0[k]) / max(1, len(lat)) for k in sql0},
    }


def _sql_counts(path: Path) -> dict[str, float]:
    """The server's statements and commits so far (bench/intake_count.py writes them twice a second)."""
    time.sleep(0.6)
    try:
        counts = {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {"statements": float("nan"), "commits": float("nan")}
    listener = path.with_name(path.name + ".listener")  # [smtpd] own_process: the listener counts its own
    try:
        for k, v in json.loads(listener.read_text()).items():
            counts[k] = counts.get(k, 0.0) + float(v)
    except (OSError, ValueError):
        pass
    return counts


def run_kill(mails: list[Mail], students: list[Student], connections: int, tmp: Path, timeout: float,
             log_level: str, extra: list[str], db: BenchDb, kill_after: int) -> bool:
    """The burst once more, with `kill -9` of the server after `kill_after` requests and a restart on the same
    port; the client resends what got no 250. Prints whether every mail made exactly one request and one
    acknowledgement."""
    port = free_port()
    tmp = tmp / f"kill-{db.name}"
    tmp.mkdir(exist_ok=True)
    config = write_config(tmp, port, log_level, extra, db.url)
    reg = write_registry(tmp, students)
    subprocess.run([*EDUDESK, "--config", str(config), "registry", "import", str(reg), "--population", "student"],
                   cwd=ROOT, capture_output=True, check=True)
    argv = [*EDUDESK, "--config", str(config), "run"]
    servers = [Server(argv, tmp / "edudesk-1.log", ROOT)]
    servers[0].wait_ready()
    killed: list[float] = []

    def killer() -> None:
        n, _ = wait_for(db, "SELECT COUNT(*) FROM request", kill_after, timeout, every=0.05)
        servers[0].proc.kill()  # SIGKILL: no shutdown, whatever was in hand is lost
        servers[0].proc.wait()
        killed.append(time.time())
        print(f"        kill -9 after {n} requests; restarting on the same port", flush=True)
        servers.append(Server(argv, tmp / "edudesk-2.log", ROOT))
        servers[1].wait_ready()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        burst = send_burst(port, mails, connections, persist=True)
        thread.join(timeout)
        got, _ = wait_for(db, "SELECT COUNT(*) FROM request", len(mails), timeout)
        left, _ = _wait_zero(db, PENDING_JOBS, timeout)
        requests, distinct = db.rows("SELECT COUNT(*), COUNT(DISTINCT message_id) FROM request")[0]
        stored = count_rows(db, "SELECT COUNT(*) FROM inbound_mail")
        acks = count_rows(db, "SELECT COUNT(*) FROM outgoing_mail WHERE key LIKE 'ack:%'")
        sent = count_rows(db, "SELECT COUNT(*) FROM outgoing_mail WHERE key LIKE 'ack:%' AND state = 'sent'")
        dead = count_rows(db, "SELECT COUNT(*) FROM job WHERE state = 'dead'")
    finally:
        for server in servers:
            server.stop()
    outbox = tmp / "data" / "outbox" / "new"
    files = len(list(outbox.iterdir())) if outbox.is_dir() else 0
    ok = (bool(killed) and len(burst.accepted) == len(mails) and requests == distinct == stored == len(mails)
          and acks == sent == files == len(mails) and dead == 0 and left == 0)
    print(f"== {db.name}, kill -9 in the middle: {len(mails)} mails, {len(burst.accepted)} answered 250; "
          f"{stored} stored, {requests} requests ({distinct} distinct Message-IDs), {sent}/{acks} acknowledgements "
          f"sent, {files} in the outbox, dead jobs {dead}, jobs left {left}: "
          f"{'PASS (one request and one answer per mail)' if ok else 'FAIL'}", flush=True)
    return ok


# --- main ------------------------------------------------------------------------------------------


def _num(x: object, digits: int = 3) -> float | None:
    """A JSON-safe number (None for NaN)."""
    v = float(x)  # type: ignore[arg-type]
    return None if v != v else round(v, digits)


def report(name: str, ed: dict[str, Any], ceiling: dict[str, float], count: int) -> dict[str, object]:
    """Print one database's figures; the dict is its part of the last JSON line."""
    rate, p95, ack_p95 = float(ed["mails_per_s"]), float(ed["p95"]), float(ed["ack_p95"])
    complete = ed["requests"] == count
    ratio = rate / ceiling["mails_per_s"]
    cpu = ed["cpu"]
    per_mail = 1000 * cpu["to_last_request"]["main"] / max(1, ed["requests"])
    per_mail_all = 1000 * cpu["to_all_jobs_done"]["main"] / max(1, ed["requests"])
    targets = {"ratio": complete and ratio >= TARGET_RATIO, "p95": complete and p95 < TARGET_P95,
               "ack_p95": complete and ed["acks_sent"] == count and ack_p95 < TARGET_ACK_P95}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(f"== {name} (load average now {load})")
    print(f"no-op aiosmtpd ceiling        {ceiling['mails_per_s']:7.1f} mails/s")
    print(f"edudesk SMTP accept rate      {ed['accept_per_s']:7.1f} mails/s   ({ed['accepted']} accepted, "
          f"{ed['refused']} refused, in {ed['accept_seconds']:.2f} s)")
    print(f"edudesk mails -> requests     {rate:7.1f} mails/s   ({ed['requests']}/{count} requests, "
          f"{ed['seconds']:.2f} s from first 250 to last request)")
    print(f"ratio edudesk / ceiling       {ratio:7.3f}")
    print(f"latency 250 -> request        p50 {ed['p50']:.3f} s   p95 {p95:.3f} s   p99 {ed['p99']:.3f} s   "
          f"max {ed['max']:.3f} s")
    print(f"latency 250 -> ack sent       p50 {ed['ack_p50']:.3f} s   p95 {ack_p95:.3f} s   "
          f"({ed['acks_sent']} acks; all jobs done {ed['all_jobs_done_s']:.1f} s after the burst began)")
    print(f"main-process CPU per mail     {per_mail:.1f} ms up to the last request, {per_mail_all:.1f} ms with "
          f"the acknowledgements")
    sql = ed["sql"]
    print(f"database per mail             {sql['statements']:.1f} statements (round trips), {sql['commits']:.2f} "
          "commits of writes (each an fsync on SQLite), until all jobs were done")
    print(f"server CPU seconds            burst: main {cpu['burst']['main']:.1f} / parsers "
          f"{cpu['burst']['children']:.1f};  to last request: main {cpu['to_last_request']['main']:.1f} / parsers "
          f"{cpu['to_last_request']['children']:.1f};  to all jobs done: main {cpu['to_all_jobs_done']['main']:.1f}")
    if cpu["to_last_request"].get("listener"):
        print(f"SMTP listener process         {cpu['to_last_request']['listener']:.1f} s CPU to the last request "
              f"({1000 * cpu['to_last_request']['listener'] / max(1, ed['requests']):.1f} ms a mail; "
              "[smtpd] own_process)")
    print(f"outcomes {ed['outcomes']}, dead jobs {ed['dead_jobs']}, jobs left {ed['jobs_left']}"
          + (f", refusals {ed['refusals']}" if ed["refused"] else ""))
    print(f"target: ratio >= {TARGET_RATIO}            {'PASS' if targets['ratio'] else 'MISS'}")
    print(f"target: p95 250 -> request < {TARGET_P95:.0f} s   {'PASS' if targets['p95'] else 'MISS'}")
    print(f"target: ack p95 < {TARGET_ACK_P95:.0f} s             {'PASS' if targets['ack_p95'] else 'MISS'}")
    return {
        "edudesk_accept_per_s": _num(ed["accept_per_s"], 1), "edudesk_mails_per_s": _num(rate, 1),
        "ratio": _num(ratio, 4), "p50_s": _num(ed["p50"]), "p95_s": _num(p95), "p99_s": _num(ed["p99"]),
        "max_s": _num(ed["max"]), "ack_p50_s": _num(ed["ack_p50"]), "ack_p95_s": _num(ack_p95),
        "main_cpu_ms_per_mail": _num(per_mail, 2), "main_cpu_ms_per_mail_with_acks": _num(per_mail_all, 2),
        "statements_per_mail": _num(sql["statements"], 1), "commits_per_mail": _num(sql["commits"], 2),
        "all_jobs_done_s": _num(ed["all_jobs_done_s"], 1), "requests": ed["requests"], "acks": ed["acks_sent"],
        "refused": ed["refused"], "dead_jobs": ed["dead_jobs"], "server_cpu_s": cpu,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        **{f"{k}_target": "PASS" if ok else "MISS" for k, ok in targets.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="mails in the burst (default 2000)")
    ap.add_argument("--connections", type=int, default=8, help="concurrent SMTP client connections (default 8)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all requests (default 300)")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the generated students and mails")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra edudesk setting for the run, value in TOML (e.g. --set jobs.concurrency=8)")
    ap.add_argument("--log-level", default="INFO", help="edudesk log level (default INFO, as shipped)")
    ap.add_argument("--no-warmup", action="store_true", help="do not send one uncounted mail first")
    ap.add_argument("--no-registry", action="store_true", help="do not import the students into the registry")
    ap.add_argument("--skip-ceiling", action="store_true", help="measure edudesk only")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (database, outbox, server logs)")
    ap.add_argument("--database", action="append", choices=["sqlite", "postgres"],
                    help="database(s) to measure, in this order (default: sqlite, then postgres on "
                         "PG_ADMIN_URL, a private database made and dropped)")
    ap.add_argument("--kill-after", type=int, default=0, metavar="N",
                    help="then run the burst once more per database (no warm-up), kill -9 the server after N "
                         "requests, restart it, and check one request and one acknowledgement per mail")
    ap.add_argument("--noop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.noop_server:
        noop_server_main(args.noop_server)
        return 0
    args.database = args.database or ["sqlite", "postgres"]

    tmp = Path(tempfile.mkdtemp(prefix="edudesk-bench-"))
    print(f"edudesk intake benchmark: {args.count} mails, {args.connections} connections, {os.cpu_count()} CPUs"
          + (f", settings {' '.join(args.set)}" if args.set else ""), flush=True)
    t0 = time.time()
    mails, students, warmup = generate(args.count, args.seed)
    sizes = [len(m.raw) for m in mails]
    print(f"  generated {len(mails)} mails in {time.time() - t0:.1f} s (raw {min(sizes) / 1024:.0f}-"
          f"{max(sizes) / 1024:.0f} KiB, each a BM02 .docx of ~{len(FormFactory(BM02).fill(students[0])) / 1024:.0f}"
          " KiB)", flush=True)

    ceiling: dict[str, float] = {"mails_per_s": float("nan"), "server_cpu_s": float("nan")}
    steps = 1 + len(args.database)
    if not args.skip_ceiling:
        print(f"  [1/{steps}] ceiling: aiosmtpd with a no-op handler (subprocess) ...", flush=True)
        ceiling = run_ceiling(mails, args.connections, tmp)
        print(f"        {ceiling['accepted']} accepted in {ceiling['seconds']:.2f} s", flush=True)
    results: dict[str, dict[str, object]] = {}
    for step, name in enumerate(args.database, start=2):
        print(f"  [{step}/{steps}] edudesk run (subprocess), fresh {name} database ...", flush=True)
        db: BenchDb = SqliteBenchDb(tmp / "sqlite") if name == "sqlite" else PostgresBenchDb()
        try:
            ed = run_edudesk(mails, students, None if args.no_warmup else warmup, args.connections, tmp,
                             args.timeout, not args.no_registry, args.log_level, args.set, db)
        finally:
            db.close()
        results[name] = report(name, ed, ceiling, args.count)
        if args.kill_after:
            print(f"  [{step}/{steps}] the same burst on a fresh {name} database, kill -9 after {args.kill_after} "
                  "requests ...", flush=True)
            db = SqliteBenchDb(tmp / f"kill-{name}") if name == "sqlite" else PostgresBenchDb()
            try:
                results[name]["kill_9"] = "PASS" if run_kill(mails, students, args.connections, tmp, args.timeout,
                                                             args.log_level, args.set, db, args.kill_after) else "FAIL"
            finally:
                db.close()
    summary = {
        "bench": "intake", "count": args.count, "connections": args.connections, "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()], "settings": args.set,
        "ceiling_mails_per_s": _num(ceiling["mails_per_s"], 1),
        "ceiling_server_cpu_s": _num(ceiling["server_cpu_s"], 2),
        "target_mails_per_s": TARGET_RATE, "target_p95_s": TARGET_P95, "target_ack_p95_s": TARGET_ACK_P95,
        **results,
    }
    print(json.dumps(summary, ensure_ascii=False))
    if args.keep:
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
