"""Quiet hours: automatic reminders never go out at night; what falls inside waits for the morning."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edudesk.core.errors import ConfigError


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """"21:00-07:00" -> (21:00, 07:00); "" -> None (no quiet hours)."""
    text = text.strip()
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-", 1))
    except ValueError:
        raise ConfigError(f"[records] quiet_hours = \"{text}\" không đúng dạng \"21:00-07:00\".",
                          code="config_records") from None
    return start, end


def in_quiet_hours(now: datetime, window: tuple[time, time] | None, timezone: str) -> bool:
    """Whether `now` (aware) falls inside the window, read in the school's time zone."""
    if window is None:
        return False
    local = now.astimezone(ZoneInfo(timezone)).time()
    start, end = window
    return start <= local < end if start <= end else local >= start or local < end


def quiet_until(now: datetime, window: tuple[time, time] | None, timezone: str) -> datetime:
    """`now` outside quiet hours, else the moment they end (UTC)."""
    if not in_quiet_hours(now, window, timezone):
        return now
    assert window is not None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    end = local.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)
