"""The Zalo surface the App runs: the Bot Platform or the Official Account API, as `[zalo].api` says."""

from __future__ import annotations

import asyncio
from typing import Any

from edudesk.bot.textcommands import TextContext
from edudesk.bot.zalo.chat import ZaloChat
from edudesk.core.config import Settings
from edudesk.core.jobs import Handlers, Job, JobKind, JobQueue
from edudesk.core.ports import Clock
from edudesk.core.requests.service import RequestService
from edudesk.core.secrets import SecretBox
from edudesk.core.signing.service import RecordService


class ZaloSurface:
    """The chat port, the `zalo_event` job handler, and the receiver to run under the supervisor."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, services: RequestService,
                 records: RecordService | None, box: SecretBox) -> None:
        self.settings = settings
        text = TextContext(settings, clock, queue, services, records, ZaloChat.surface)
        z = settings.zalo
        if z.api == "oa":
            from edudesk.bot.zalo.oa import OaClient, OaReceiver, OaTokens

            tokens = OaTokens(settings, clock, box)
            self.client: Any = OaClient(settings, tokens)
            self.chat = ZaloChat(self.client, settings, clock, oa=True)
            self.receiver: Any = OaReceiver(settings, clock, queue, self.chat, text)
        elif z.api == "bot":
            from edudesk.bot.zalo.botapi import ZaloBotClient, ZaloBotReceiver

            token = settings.secret(z.token_env)
            if not token:
                raise ValueError(f"[zalo] is enabled but {z.token_env} is not set")
            self.client = ZaloBotClient(z.api_base, token, messages_per_second=z.messages_per_second)
            self.chat = ZaloChat(self.client, settings, clock)
            self.receiver = ZaloBotReceiver(settings, clock, queue, self.client, self.chat, text)
        else:
            raise ValueError(f'[zalo] api = "{z.api}": use "bot" or "oa"')

    def handlers(self) -> Handlers:
        """Zalo's job: one stored incoming event (message, tap) answered."""
        return {JobKind.ZALO_EVENT: self.event}

    async def event(self, job: Job) -> None:
        """Job handler `zalo_event`."""
        await self.receiver.event(job)

    async def run(self) -> None:
        """Receive people's messages until cancelled (polling, or a webhook server)."""
        if self.settings.zalo.api == "bot" and self.settings.zalo.mode == "polling":
            await self.receiver.poll()
            return
        try:
            await self.receiver.start_webhook()
            await asyncio.Event().wait()
        finally:
            await self.receiver.stop()

    async def close(self) -> None:
        """Close the HTTP sessions."""
        await self.receiver.stop()
