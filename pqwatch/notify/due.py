"""When a digest is due. Pure: no I/O.

A subscriber is owed a digest at each scheduled slot (weekly: digest_weekday at digest_time;
daily: every day at digest_time, in the configured time zone). A digest is due when none has
been sent since the latest slot, so a slot missed while pqwatch was down is caught up at the
next run, and a re-run after sending sends nothing. A new subscriber, who has never been sent
one, is due at once: their first digest carries what was matched since they were added.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def latest_slot(now: datetime, frequency: str, weekday: str, at: str, tz: ZoneInfo) -> datetime:
    """The most recent scheduled digest time at or before `now` (timezone-aware)."""
    local = now.astimezone(tz)
    hour, minute = (int(x) for x in at.split(":"))
    slot = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
    if frequency == "daily":
        return slot if slot <= local else slot - timedelta(days=1)
    back = (local.weekday() - WEEKDAYS.index(weekday)) % 7
    slot -= timedelta(days=back)
    if slot > local:
        slot -= timedelta(days=7)
    return slot


def is_due(
    last_sent: datetime | None, now: datetime, frequency: str, weekday: str, at: str, tz: ZoneInfo
) -> bool:
    if last_sent is None:
        return True
    return last_sent < latest_slot(now, frequency, weekday, at, tz)


def next_slot(now: datetime, frequency: str, weekday: str, at: str, tz: ZoneInfo) -> datetime:
    """The first scheduled digest time after `now`."""
    step = timedelta(days=1 if frequency == "daily" else 7)
    return latest_slot(now, frequency, weekday, at, tz) + step
