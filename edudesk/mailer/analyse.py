"""Parse and read mails in a pool of worker processes, so a hanging parser or an exploding
attachment costs one mail (quarantined after a time limit) and never the service."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import multiprocessing
import os
import resource
import threading
import time
from dataclasses import replace

from edudesk.core import logsetup
from edudesk.core.config import Settings
from edudesk.core.forms import FormNames, extract_request
from edudesk.core.intake.domain import Attachment, IncomingMail
from edudesk.core.intake.loops import classify_automatic
from edudesk.core.ports import Analysis, AnalysisTimeout
from edudesk.mailer.parse import parse_mail

log = logging.getLogger(__name__)

_settings: Settings | None = None
PARENT_CHECK_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    """Exit as soon as the service that started this worker is gone (kill -9 runs no shutdown code).

    Polls the parent pid: an orphan is re-parented (to init or a subreaper), so its parent pid changes.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)  # no clean-up to do: the worker holds nothing another process needs


def _init_worker(settings: Settings, parent: int) -> None:
    """Runs once in each worker: remember settings, cap memory so a bomb kills only the worker, and
    leave with the service (a worker orphaned by kill -9 would hold its memory for ever)."""
    global _settings
    _settings = settings
    logsetup.install(settings.general)  # the service's format (JSON lines too) and quiet libraries, here as well
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    limit = settings.intake.parser_memory_mb * 1024 * 1024
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def analyse_raw(raw: bytes, settings: Settings) -> Analysis:
    """Parse, classify, extract (pure CPU work; attachment payloads are dropped from the result)."""
    mail = parse_mail(raw)
    own = tuple(a.lower() for a in (settings.outgoing.from_address, settings.institution.office_address,
                                     *settings.smtpd.recipients))
    automatic = classify_automatic(mail, own)
    extracted = None
    if automatic is None:
        extracted = extract_request(
            mail,
            settings.intake,
            settings.institution.domains,
            student_domains=(settings.naming.student_domain,),
            form_names=FormNames.of(settings.institution),
        )
    # The raw mail stays in the ledger; sending 30 MB back over the pipe buys nothing.
    slim = tuple(Attachment(a.filename, a.content_type, b"") for a in mail.attachments)
    inner = tuple(replace(f, attachments=tuple(Attachment(a.filename, a.content_type, b"") for a in f.attachments))
                  for f in mail.forwarded)
    return Analysis(replace(mail, attachments=slim, forwarded=inner), automatic, extracted)


def _ready() -> bool:
    """A warm-up call: the worker has started and imported the parsers."""
    time.sleep(0.02)  # long enough for the pool to hand the next warm-up to another worker
    return True


def _run(raw: bytes) -> Analysis:
    assert _settings is not None
    return analyse_raw(raw, _settings)


def _kill(pool: cf.ProcessPoolExecutor | None) -> None:
    """Stop a pool now: kill its workers (a hung parser does not stop on request), drop its queue."""
    if pool is None:
        return
    for proc in (getattr(pool, "_processes", None) or {}).values():
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class ProcessMailAnalyser:
    """The `MailAnalyser` of the service: N spawned processes, a time limit per mail."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.intake.parse_timeout_seconds
        self._pool: cf.ProcessPoolExecutor | None = None
        self._starting: cf.ProcessPoolExecutor | None = None  # the pool being warmed, for close() to stop
        self._lock = asyncio.Lock()
        # One mail per worker at a time, so the time limit counts the mail's own work, never a queue.
        self._slots = asyncio.Semaphore(max(1, settings.intake.parser_processes))

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=max(1, self.settings.intake.parser_processes),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.settings, os.getpid()),
        )

    def _kill_pool(self) -> None:
        pool, self._pool = self._pool, None
        _kill(pool)

    async def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        """A started pool: spawning takes seconds, which must not count against a mail's time limit.

        Whoever comes first while there is none (the start-up warm-up or a mail) starts it; the others wait.
        """
        async with self._lock:
            if self._pool is None:
                began = time.monotonic()
                pool = self._starting = self._new_pool()
                try:
                    loop = asyncio.get_running_loop()
                    n = max(1, self.settings.intake.parser_processes)
                    await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(n)))
                except BaseException:
                    _kill(pool)  # cancelled (shutdown) or failed: no half-started workers left behind
                    raise
                finally:
                    self._starting = None
                self._pool = pool
                log.info("%d parser processes ready in %.1f s", n, time.monotonic() - began)
            return self._pool

    async def start(self) -> None:
        """Start the worker processes ahead of the first mail (`edudesk run` does it in the background,
        after the listeners are up: a mail is stored without them, and its job waits for them)."""
        await self._ensure_pool()

    async def analyse(self, raw: bytes) -> Analysis:
        """Analyse one mail in the pool; AnalysisTimeout after the limit (the pool is then renewed)."""
        for attempt in (1, 2):
            pool = None
            try:
                async with self._slots:
                    pool = await self._ensure_pool()
                    future = asyncio.get_running_loop().run_in_executor(pool, _run, raw)
                    return await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                async with self._lock:
                    if self._pool is pool:
                        self._kill_pool()
                raise AnalysisTimeout(f"analysis took longer than {self.timeout:.0f} s") from None
            except (cf.process.BrokenProcessPool, RuntimeError):
                # Another mail's worker died (memory cap, kill after a timeout): try once on a new pool.
                async with self._lock:
                    if self._pool is pool:
                        self._kill_pool()
                if attempt == 2:
                    raise AnalysisTimeout("the analysing process died (memory limit)") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the worker processes (also those still starting)."""
        self._kill_pool()
        starting, self._starting = self._starting, None
        _kill(starting)


class InlineMailAnalyser:
    """Analyses in the calling process (the `mail inspect` dry run and unit tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def analyse(self, raw: bytes) -> Analysis:
        """Analyse one mail in-process."""
        return analyse_raw(raw, self.settings)

    async def start(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to stop."""


def headers_only(raw: bytes) -> IncomingMail:
    """Parse just the header block (for mails too large or too slow to analyse whole)."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[: end if end >= 0 else 256 * 1024][: 256 * 1024]
    return parse_mail(head + b"\r\n\r\n")
