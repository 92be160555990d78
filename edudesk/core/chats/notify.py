"""Chat side effects as durable jobs: refresh a request's cards, post a notice to a staff chat."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.requests.workflow import State

# Which chat a request's card is posted to when it enters a state (edits go everywhere it already is).
POST_TO: dict[State, tuple[str, ...]] = {State.RECEIVED: ("office",), State.APPROVED: ("technical",)}


async def enqueue_cards(conn: BaseDBAsyncClient, queue: JobQueue, request_id: int, version: int,
                        state: State) -> None:
    """Bring every card of a request up to `version`, and post it where `state` is worked on."""
    await queue.enqueue(JobKind.REFRESH_CARDS, f"cards:{request_id}:{version}",
                        {"request_id": request_id, "post_to": list(POST_TO.get(state, ()))}, connection=conn)


async def enqueue_notice(conn: BaseDBAsyncClient | None, queue: JobQueue, key: str, audience: str, text: str,
                         request_id: int | None = None,
                         buttons: list[list[dict[str, Any]]] | None = None) -> None:
    """Post a notice (reminder, escalation, alert) to the chat of `audience` ("office", "technical", "head",
    or "staff:<id>" for one person's private chat); one notice per key."""
    await queue.enqueue(JobKind.CHAT_NOTICE, f"notice:{key}", {"audience": audience, "text": text,
                                                         "request_id": request_id, "buttons": buttons or []},
                        connection=conn)
