"""The Telegram bot (aiogram 3): routers composed in `setup_routers`, long polling or webhook by config."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from edudesk.bot.telegram import commands, decisions, fallback, records
from edudesk.bot.telegram.chat import TelegramChat
from edudesk.bot.telegram.context import ActorMiddleware, BotContext
from edudesk.bot.telegram.pacing import Pacer
from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import Clock
from edudesk.core.requests.service import RequestService
from edudesk.core.signing.service import RecordService

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "callback_query"]
COMMANDS = [  # the menu Telegram shows next to the message box
    BotCommand(command="queue", description="Yêu cầu đang mở, theo hạn xử lý"),
    BotCommand(command="find", description="Tìm yêu cầu theo số, họ tên hoặc mã số"),
    BotCommand(command="report", description="Số yêu cầu hôm nay và tháng này"),
    BotCommand(command="whoami", description="Anh/Chị là ai, có vai trò gì"),
    BotCommand(command="ky", description="Học bạ chờ tôi ký"),
    BotCommand(command="tiendo", description="Tiến độ ký học bạ (ban giám hiệu)"),
    BotCommand(command="login", description="Liên kết đăng nhập trang quản trị (nhắn riêng)"),
    BotCommand(command="help", description="Hướng dẫn"),
]


def setup_routers() -> Router:
    """One router per feature; the catch-all last."""
    root = Router(name="edudesk")
    root.include_routers(records.make_router(), decisions.make_router(), commands.make_router(), fallback.make_router())
    return root


class TelegramBot:
    """The bot, its dispatcher, and the paced `TelegramChat` port the chat hub posts cards through."""

    def __init__(self, settings: Settings, clock: Clock, services: RequestService,
                 records: RecordService | None = None) -> None:
        tg = settings.telegram
        token = settings.secret(tg.token_env)
        if not token:
            raise ConfigError(f"[telegram] bật nhưng biến môi trường {tg.token_env} chưa có mã bot.",
                              code="config_telegram")
        if tg.mode == "webhook" and not settings.secret(tg.webhook_secret_env):
            # Without the secret anyone who finds the URL could post updates in a staff member's name.
            raise ConfigError(f"[telegram] mode = \"webhook\" cần bí mật trong biến môi trường "
                              f"{tg.webhook_secret_env}.", code="config_telegram")
        session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_server)) if tg.api_server else None
        self.settings = settings
        self.bot = Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
        self._redis: Any = None
        windows = None
        storage: BaseStorage = MemoryStorage()
        if settings.redis_url:
            # Several replicas: one pace for the token, and a typed reason may land on another replica.
            from aiogram.fsm.storage.redis import RedisStorage

            from edudesk.bot.telegram.pacing_redis import redis_windows

            windows, self._redis = redis_windows(settings.redis_url, token)
            storage = RedisStorage(self._redis, key_builder=DefaultKeyBuilder(prefix="edudesk:fsm"))
        self.pacer = Pacer(tg.rate_overall_per_second, tg.rate_chat_seconds, tg.rate_group_per_minute,
                           windows=windows)
        self.chat = TelegramChat(self.bot, self.pacer)
        self.dp = Dispatcher(storage=storage)
        self.dp["edudesk"] = BotContext(settings, clock, services, self.chat, records)
        middleware = ActorMiddleware(settings)
        self.dp.message.outer_middleware(middleware)
        self.dp.callback_query.outer_middleware(middleware)
        self.dp.include_router(setup_routers())

    def chats(self) -> dict[str, str]:
        """Chat ids per audience from config (0: not set)."""
        tg = self.settings.telegram
        return {"office": str(tg.office_chat_id or ""), "technical": str(tg.technical_chat_id or ""),
                "head": str(tg.head_chat_id or "")}

    async def run(self) -> None:
        """Long polling, or a webhook server (answers 200 at once, handles in the background)."""
        tg = self.settings.telegram
        await self.bot.set_my_commands(COMMANDS)
        if tg.mode == "webhook":
            await self._run_webhook()
            return
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.dp.start_polling(self.bot, handle_signals=False, close_bot_session=False,
                                    allowed_updates=ALLOWED_UPDATES, polling_timeout=10)

    async def _run_webhook(self) -> None:
        tg = self.settings.telegram
        secret = self.settings.secret(tg.webhook_secret_env) or None
        app = web.Application()
        SimpleRequestHandler(self.dp, self.bot, secret_token=secret, handle_in_background=True).register(
            app, path=tg.webhook_path)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, tg.webhook_host, tg.webhook_port)
        await site.start()
        try:
            await self.bot.set_webhook(tg.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
            await self.dp.emit_startup(bot=self.bot)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def close(self) -> None:
        """Close the HTTP session (and Redis)."""
        await self.bot.session.close()
        if self._redis is not None:
            await self._redis.aclose()
