"""Booking a callback at an agreed time: one path for every way one is agreed (the
`nohold callbacks add` command, the HTTP API, the caller choosing a slot by phone).

The checks are the dialler's own, applied before anything is stored: the queue is one
of `callbacks.queues`, the number passes the allow-list and is not on the do-not-call
list, and the time passes the booking rule (nohold.decisions.schedule) against the
callback calendar. A refusal says which check failed and, where the calendar is why,
the next time that would be accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackRecord, CallbackStore
from nohold.decisions.hours import Calendar
from nohold.decisions.numbers import NumberRefused
from nohold.decisions.schedule import BookingRefused, book
from nohold.feature import Calendars


class NotBooked(ValueError):
    """Why a booking was refused. `field` names what to correct (queue, number, at,
    window, calendar); `next_valid` is set when another time would be accepted."""

    def __init__(self, field: str, reason: str, next_valid: datetime | None = None) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.next_valid = next_valid


_DURATION = re.compile(r"^(\d{1,4})([mh])$")


def parse_window(text: str) -> timedelta:
    """A window as people write it: 30m, 2h. ValueError says what is expected (the
    booking rule then bounds it)."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r}: expected minutes or hours, e.g. 30m or 2h")
    amount = int(m.group(1))
    return timedelta(minutes=amount) if m.group(2) == "m" else timedelta(hours=amount)


@dataclass(frozen=True)
class Request:
    number: str
    at: datetime  # naive: the callback calendar's wall clock
    window: timedelta
    queue: str | None = None  # None: the first of callbacks.queues
    owner: str = ""
    note: str = ""


async def callback_calendar(cb: CallbackSettings, calendars: Calendars | None) -> Calendar:
    """The calendar a scheduled callback is booked against: callbacks.calendar, or the
    default one when it names none."""
    if calendars is None:
        raise NotBooked("calendar", "the calendar feature is off: no time can be agreed")
    try:
        return await calendars.get(cb.calendar or None)
    except KeyError as exc:
        raise NotBooked("calendar", f"callbacks.calendar: {exc.args[0]}") from None


async def schedule(store: CallbackStore, cb: CallbackSettings, calendars: Calendars | None,
                   request: Request, *, now: datetime, call_id: str
                   ) -> tuple[CallbackRecord, bool]:
    """The stored callback and True, or the number's live callback in that queue and
    False (one live callback per number and queue: nothing new is promised). Raises
    NotBooked with what to correct."""
    queue = request.queue or (cb.queues[0] if cb.queues else "")
    if queue not in cb.queues:
        raise NotBooked("queue", f"{queue!r} is not one of callbacks.queues "
                                 f"({', '.join(cb.queues) or 'none'})")
    try:
        e164 = cb.numbers.check(request.number).e164
    except NumberRefused as exc:
        raise NotBooked("number", f"{request.number!r} is not called back: {exc}") from None
    if await store.on_dnc(e164):
        raise NotBooked("number", f"{e164} is on the do-not-call list")
    calendar = await callback_calendar(cb, calendars)
    at = request.at if request.at.tzinfo is not None else request.at.replace(tzinfo=calendar.tz)
    try:
        booking = book(at, request.window, now, calendar)
    except BookingRefused as exc:
        field = "window" if exc.reason.startswith("the window") else "at"
        raise NotBooked(field, f"not booked: {exc}", exc.next_valid) from None
    return await store.request(
        call_id=call_id, number=e164, queue=queue, arrived_at=booking.at, now=now,
        promised=(booking.at, booking.until), expires_at=booking.until, due_at=booking.at,
        owner_agent=request.owner, note=request.note)
