"""When a callback may be agreed for: the booking rule of scheduled callbacks.

A time agreed with a customer is a promise: it must lie ahead (a minute of clock
skew forgiven), at most `max_ahead` away, with a sane window, and inside the
callback calendar, so that the dialler can keep it. A refusal says why and, when
the calendar is the reason, the next time that would be accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from nohold.decisions.hours import Calendar, NoOpening

MAX_AHEAD = timedelta(days=30)
MIN_WINDOW = timedelta(minutes=5)
MAX_WINDOW = timedelta(hours=8)
SKEW = timedelta(minutes=1)


class BookingRefused(ValueError):
    def __init__(self, reason: str, next_valid: datetime | None = None) -> None:
        super().__init__(reason + (f"; the next valid time is {next_valid.isoformat()}"
                                   if next_valid is not None else ""))
        self.reason = reason
        self.next_valid = next_valid


@dataclass(frozen=True)
class Booking:
    """An accepted agreement: dial not before `at`, not after `until`."""

    at: datetime
    until: datetime


def book(at: datetime, window: timedelta, now: datetime, calendar: Calendar,
         max_ahead: timedelta = MAX_AHEAD) -> Booking:
    """The booking for `at` with `window`, or BookingRefused. Aware datetimes only."""
    if at.tzinfo is None or now.tzinfo is None:
        raise BookingRefused("times need a time zone")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise BookingRefused(f"the window must be {_minutes(MIN_WINDOW)} to "
                             f"{_minutes(MAX_WINDOW)} minutes, not {_minutes(window)}")
    if at < now - SKEW:
        raise BookingRefused(f"{at.isoformat()} has passed")
    if at > now + max_ahead:
        raise BookingRefused(f"{at.isoformat()} is more than {max_ahead.days} days ahead")
    status = calendar.is_open(at)
    if not status.open:
        try:
            # Said on the calendar's wall clock: that is how people read it.
            following: datetime | None = calendar.next_opening(at).astimezone(calendar.tz)
        except NoOpening:
            following = None
        raise BookingRefused(f"{at.isoformat()} is outside the {calendar.name} calendar "
                             f"({status.reason})",
                             following if following is None or following <= now + max_ahead
                             else None)
    return Booking(at, at + window)


def _minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def moved_for_closure(promised: tuple[datetime, datetime], due: datetime, now: datetime,
                      calendar: Calendar) -> Booking | None:
    """Where a scheduled callback goes when it is due while the calendar is closed (a
    holiday or a closed day added after it was agreed, or a closing inside its window):
    to the next opening, with its window's length. None when it need not move (not due,
    or open now) or must not: its window ended while the calendar was open, which is a
    missed window, not a closure."""
    if due > now or calendar.is_open(now).open:
        return None
    lookback = now - MAX_WINDOW - timedelta(hours=1)
    closed_since = max((hi for _, hi in calendar.open_intervals(lookback, now)),
                       default=lookback)
    if promised[1] <= closed_since:
        return None
    try:
        opening = calendar.next_opening(now)
    except NoOpening:
        return None
    return Booking(opening, opening + (promised[1] - promised[0]))
