"""IMAP intake: watch the office mailbox, store every mail through the IntakeSink, flag it only after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from edudesk.core.config import ImapSettings
from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.ports import HealthReport, ImapCheckpoints, IntakeSink
from edudesk.mailer.authverify import with_results
from edudesk.mailer.oauth import TokenSource

log = logging.getLogger(__name__)

DONE_KEYWORD = b"$Edudesk"
FAILED_KEYWORD = b"$EdudeskFailed"
IDLE_LIMIT = 29 * 60  # RFC 2177: servers may drop an IDLE that lasts 30 minutes
STOP_CHECK = 0.5  # how long one blocking wait may go without looking at the stop flag


class ImapIntake:
    """Watches one IMAP mailbox. Mail is found by UID above a checkpoint (never UNSEEN: mail someone
    already opened must still arrive), fetched with PEEK and flagged or moved only after `store` returned,
    so a crash in between means storing it again (the sink knows it) rather than losing it."""

    def __init__(self, settings: ImapSettings, password: str, sink: IntakeSink, *, checkpoints: ImapCheckpoints,
                 health: HealthReport, max_message_size: int, batch_size: int = 100, max_attempts: int = 3,
                 timeout: float = 60.0, rescan_days: int = 7, tokens: TokenSource | None = None,
                 mechanism: str = "xoauth2", lang: str = "vi", own_authserv_id: str = "") -> None:
        if settings.auth == "oauth2" and tokens is None:
            raise ConfigError('imap.auth = "oauth2" cần mục [mail_oauth].', code="config_mail_oauth")
        self.settings = settings
        self.tokens = tokens  # with auth = "oauth2": the mailbox's bearer tokens
        self.mechanism = mechanism  # "xoauth2" or "oauthbearer"
        self.lang = lang  # of the failure texts staff read in the alert
        # Only edudesk's own listener writes our authserv-id: a copy in a fetched mail was written by its sender.
        self.own_authserv_id = own_authserv_id
        self.sink = sink  # stores the mail (and its processing job) before the watcher flags it
        self.checkpoints = checkpoints  # how far the mailbox has been stored
        self.health = health  # where failures go (an alert mail after [imap].alert_after_failures)
        self.max_message_size = max_message_size
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.rescan_days = rescan_days
        self.checkpoint_key = f"imap:{settings.username}@{settings.host}:{settings.port}/{settings.mailbox}"
        self._password = password
        self._timeout = SocketTimeout(connect=min(timeout, 30.0), read=timeout)
        self._since = _parse_since(settings.backlog_since)
        self._stop = threading.Event()  # read by the IMAP thread; `_stopped` wakes the event loop
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = threading.Event()
        self._keywords = False
        self._attempts: dict[tuple[int, int], int] = {}
        self._healthy: bool | None = None
        self._passes = 0  # passes completed on the current connection

    def close(self) -> None:
        """Ask `run` to return (it does within about a second); callable from any thread."""
        self._stop.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def run(self) -> None:
        """Watch the mailbox until `close`; errors are reported and followed by a reconnect, never fatal."""
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        delay = self.settings.backoff_initial
        while not self._stop.is_set():
            self._passes = 0
            try:
                uidvalidity, last = await self._connect()
                await self._watch(uidvalidity, last)
            except Exception as exc:
                if self._stop.is_set():
                    break
                if self._passes:  # the connection worked for a while: start the backoff over
                    delay = self.settings.backoff_initial
                wait = min(delay, self.settings.backoff_max) * random.uniform(0.5, 1.0)
                # Network and server errors are expected; anything else is a bug worth a traceback.
                log.warning("IMAP %s failed: %r; reconnecting in %.1f s", self.checkpoint_key, exc, wait,
                            exc_info=not isinstance(exc, (OSError, IMAPClient.Error, EdudeskError)))
                # A refused token or an unusable set-up is told in words (what to fix), anything else as is.
                await self._report(False, exc.in_words(self.lang) if isinstance(exc, EdudeskError)
                                   else f"{type(exc).__name__}: {exc}")
                await self._sleep(wait)
                delay = min(delay * 2, self.settings.backoff_max)
            finally:
                self._disconnect()

    async def _connect(self) -> tuple[int, int]:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="imap-intake")
        self._closing = threading.Event()
        self._client, info = await self._call(self._open)
        self._keywords = b"\\*" in info.get(b"PERMANENTFLAGS", ())
        uidvalidity = int(info[b"UIDVALIDITY"])
        return uidvalidity, await self._start_point(uidvalidity, info.get(b"UIDNEXT"))

    def _open(self) -> tuple[IMAPClient, dict[bytes, Any]]:
        s = self.settings
        client = IMAPClient(s.host, s.port, ssl=s.ssl, timeout=self._timeout)
        try:
            if s.starttls and not s.ssl:
                client.starttls(ssl.create_default_context())
            if self.tokens is not None and s.auth == "oauth2":
                oauth2_login(client, self.tokens, self.mechanism)
            else:
                client.login(s.username, self._password)
            if s.processed_mailbox and not client.folder_exists(s.processed_mailbox):
                client.create_folder(s.processed_mailbox)
            client.capabilities()  # cached from here on, so has_capability never talks to the server
            return client, client.select_folder(s.mailbox)
        except BaseException:
            client.shutdown()
            raise

    def _disconnect(self) -> None:
        client, executor = self._client, self._executor
        self._client, self._executor = None, None
        self._closing.set()
        if executor is not None and client is not None:
            executor.submit(_logout, client)  # after whatever the IMAP thread still does; not awaited
        if executor is not None:
            executor.shutdown(wait=False)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # One thread per connection: imaplib is not thread-safe, and a call hung on a dead server
        # (until its socket timeout) must not hold up the next connection.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def _start_point(self, uidvalidity: int, uidnext: int | None) -> int:
        saved = await self.checkpoints.load_checkpoint(self.checkpoint_key)
        if saved is not None and saved[0] == uidvalidity:
            return saved[1]
        since = self._since
        if saved is not None:
            # UIDs mean nothing any more. Rescan: the sink knows the mails it has (Message-ID, content
            # hash), and "new" becomes a recent window so old mail never floods in as new requests.
            if since == "new":
                since = date.today() - timedelta(days=self.rescan_days)
            log.warning("IMAP %s: UIDVALIDITY changed from %s to %s, rescanning since %s",
                        self.checkpoint_key, saved[0], uidvalidity, since)
        if uidnext is None:
            uidnext = max(await self._call(self._client.search, ["ALL"]), default=0) + 1
        if since == "all":
            last = 0
        elif since == "new":
            last = uidnext - 1
        else:
            found = await self._call(self._client.search, ["SINCE", since])
            last = min(found) - 1 if found else uidnext - 1
        await self.checkpoints.save_checkpoint(self.checkpoint_key, uidvalidity, last)
        return last

    async def _watch(self, uidvalidity: int, last: int) -> None:
        again = False
        while not self._stop.is_set():
            last, retry, found = await self._pass(uidvalidity, last)
            self._passes += 1
            if not retry and self._healthy is not True:
                await self._report(True)
            # Mail announced while we were busy is not announced again in IDLE: look once more first
            # (only once in a row if that finds nothing: some servers announce on every command).
            again = (found or not again) and await self._call(_mail_announced, self._client)
            if again:
                continue
            # Mails that failed to store are retried after poll_interval, doubling per attempt.
            attempts = max(self._attempts.values(), default=1)
            limit = self.settings.poll_interval * 2 ** max(attempts - 1, 0) if retry else None
            await self._wait_for_mail(min(limit, self.settings.backoff_max) if limit else None)

    async def _pass(self, uidvalidity: int, last: int) -> tuple[int, bool, bool]:
        """Store every mail above `last`; returns the new checkpoint, whether mails await a retry and
        whether there was anything to store."""
        criteria: list[Any] = ["UID", f"{last + 1}:*"]
        if self._keywords:
            criteria += ["NOT", "KEYWORD", DONE_KEYWORD, "NOT", "KEYWORD", FAILED_KEYWORD]
        # "n:*" always matches the highest UID, even below n.
        uids = sorted(u for u in await self._call(self._client.search, criteria) if u > last)
        # Forget attempts on mails that are gone (expunged by someone) or from an older UIDVALIDITY.
        self._attempts = {k: n for k, n in self._attempts.items() if k[0] == uidvalidity and k[1] in uids}
        stored, failed = 0, []
        for start in range(0, len(uids), self.batch_size):
            batch = uids[start:start + self.batch_size]
            sizes = await self._call(self._client.fetch, batch, [b"RFC822.SIZE"])
            for uid in batch:
                if self._stop.is_set():
                    return last, False, True
                size = sizes.get(uid, {}).get(b"RFC822.SIZE")
                error = None if size is None else await self._ingest(uidvalidity, uid, int(size))
                if error is not None:
                    failed.append((uid, error))
                    continue
                stored += 1
                if not failed:  # the checkpoint never passes a mail that still has to be stored
                    last = uid
                    await self.checkpoints.save_checkpoint(self.checkpoint_key, uidvalidity, last)
        # Every store failing at once looks like the sink being down, not like bad mails: only count
        # attempts when something else got through, or when one mail alone is failing.
        counted = stored > 0 or len(failed) == 1
        pending = [uid for uid, exc in failed if not await self._failed(uidvalidity, uid, exc, counted)]
        new_last = min(pending) - 1 if pending else max(uids, default=last)
        if new_last > last:
            last = new_last
            await self.checkpoints.save_checkpoint(self.checkpoint_key, uidvalidity, last)
        return last, bool(pending), bool(uids)

    async def _ingest(self, uidvalidity: int, uid: int, size: int) -> Exception | None:
        """Store one mail and mark it; returns the store error (mail left for a retry) or None."""
        oversize = size if size > self.max_message_size else None
        # PEEK: fetching must not set \Seen; that is only done once the mail is stored.
        part, key = (b"BODY.PEEK[HEADER]", b"BODY[HEADER]") if oversize else (b"BODY.PEEK[]", b"BODY[]")
        data = await self._call(self._client.fetch, [uid], [part])
        if uid not in data:
            return None  # expunged by someone else meanwhile
        source_key = f"{self.checkpoint_key}:{uidvalidity}:{uid}"
        raw = data[uid][key]
        if self.own_authserv_id and b"authentication-results" in raw[:262144].lower():
            raw = with_results(raw, None, self.own_authserv_id)  # the same bytes every time: dedupe holds
        try:
            result = await self.sink.store(raw, source="imap", source_key=source_key,
                                           oversize=oversize)
        except Exception as exc:
            log.warning("IMAP %s: storing UID %s failed: %r", self.checkpoint_key, uid, exc, exc_info=True)
            await self._report(False, f"UID {uid} could not be stored: {exc}")
            return exc
        await self._call(self._mark, uid)
        self._attempts.pop((uidvalidity, uid), None)
        log.info("IMAP %s: UID %s stored as mail %s (duplicate: %s)", self.checkpoint_key, uid,
                 result.mail_id, result.duplicate)
        return None

    async def _failed(self, uidvalidity: int, uid: int, exc: Exception, counted: bool) -> bool:
        """Count a failed store; after `max_attempts` flag the mail $EdudeskFailed and give up on it."""
        n = self._attempts.get((uidvalidity, uid), 0) + int(counted)
        self._attempts[(uidvalidity, uid)] = n
        if n < self.max_attempts:
            return False
        self._attempts.pop((uidvalidity, uid), None)
        if self._keywords:
            await self._call(self._client.add_flags, [uid], [FAILED_KEYWORD], silent=True)
        log.error("IMAP %s: giving up on UID %s after %s attempts: %r", self.checkpoint_key, uid, n, exc)
        await self._report(False, f"UID {uid} skipped after {n} failed attempts ({FAILED_KEYWORD.decode()})")
        return True

    def _mark(self, uid: int) -> None:
        client, target = self._client, self.settings.processed_mailbox
        client.add_flags([uid], [b"\\Seen", DONE_KEYWORD] if self._keywords else [b"\\Seen"], silent=True)
        if target and client.has_capability("MOVE"):
            client.move([uid], target)
        elif target:
            client.copy([uid], target)
            client.delete_messages([uid], silent=True)
            # Without UIDPLUS there is no UID EXPUNGE: this also purges mail others marked \Deleted.
            client.uid_expunge([uid]) if client.has_capability("UIDPLUS") else client.expunge()

    async def _wait_for_mail(self, limit: float | None) -> None:
        s = self.settings
        if s.idle and self._client.has_capability("IDLE"):
            seconds = min(s.idle_timeout, IDLE_LIMIT, limit or IDLE_LIMIT)
            await self._call(self._idle, seconds, self._closing)
        else:
            await self._sleep(min(s.poll_interval, limit or s.poll_interval))
            if not self._stop.is_set():
                await self._call(self._client.noop)

    def _idle(self, seconds: float, closing: threading.Event) -> None:
        client = self._client
        client.idle()
        try:
            if _buffered(client, self._timeout.read):
                return
            deadline, quick_empty = time.monotonic() + seconds, 0
            while not (self._stop.is_set() or closing.is_set()) and time.monotonic() < deadline:
                started = time.monotonic()
                if client.idle_check(timeout=STOP_CHECK):
                    return
                # imapclient swallows EOF in idle_check: a dead connection looks like instant silence.
                quick_empty = quick_empty + 1 if time.monotonic() - started < STOP_CHECK / 2 else 0
                if quick_empty >= 3:
                    raise ConnectionError("IMAP connection closed during IDLE")
        finally:
            client.idle_done()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _report(self, ok: bool, detail: str = "") -> None:
        self._healthy = ok
        try:
            await self.health.report_health("imap", ok, detail)
        except Exception:
            log.exception("IMAP %s: could not record health", self.checkpoint_key)


def oauth2_login(client: IMAPClient, tokens: TokenSource, mechanism: str) -> None:
    """AUTHENTICATE with the mailbox's bearer token; a refused token is renewed and tried once more (it may
    have been revoked or run out early), a second refusal is a MailAuthError saying what to fix."""
    for attempt in (1, 2):
        token = tokens.token()
        try:
            if mechanism == "oauthbearer":
                client.oauthbearer_login(tokens.user, token)
            else:
                client.oauth2_login(tokens.user, token)
            return
        except LoginError as exc:
            if attempt == 2:
                raise tokens.refused("IMAP", str(exc)) from None
            log.info("IMAP %s: token refused (%s), fetching a new one", tokens.user, exc)
            tokens.invalidate()


def _parse_since(value: str) -> str | date:
    try:
        return value if value in ("new", "all") else date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"imap.backlog_since: cần new, all hoặc một ngày YYYY-MM-DD, không phải {value!r}",
                          code="config_type") from None


def _mail_announced(client: IMAPClient) -> bool:
    # imapclient keeps no public record of EXISTS/RECENT sent along with other commands' answers.
    pending = client._imap.untagged_responses
    return bool(pending.pop("EXISTS", None)) | bool(pending.pop("RECENT", None))


def _buffered(client: IMAPClient, read_timeout: float | None) -> bool:
    # A response that came in the same packet as "+ idling" already sits in imaplib's read buffer,
    # where idle_check (which only polls the socket) would never see it.
    sock = client.socket()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(read_timeout)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        client.shutdown()
