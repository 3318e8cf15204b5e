"""The times a caller may choose for their callback ("press 2 to choose a time").

The admin lists the day's slots (`callbacks.slots`, wall-clock windows such as
18:00-20:00) with the agents expected to take callbacks then. A slot is offered on a
day only where the callback calendar is open (a holiday or a closed override removes
it; an early closing shortens it), only once it is at least `lead` ahead, and only
while it has room: its capacity is what the expected agents can handle in it
(agents x open minutes / handle time), and the callbacks already booked into it use
it up. Pure: the caller passes the clock and the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from nohold.decisions.hours import Calendar, Window, local_instant
from nohold.decisions.schedule import MAX_WINDOW, MIN_WINDOW


@dataclass(frozen=True)
class SlotRule:
    window: Window
    agents: int  # agents expected to take callbacks in this window


@dataclass(frozen=True)
class Slot:
    """One bookable slot on one day. `begins`..`ends` is its open part (what bookings
    into it are counted over); `at` is the earliest time a new booking may take. All
    three are UTC instants (arithmetic on same-zone datetimes ignores DST shifts);
    `tz` is the calendar's zone, to say them in."""

    begins: datetime
    at: datetime
    ends: datetime
    day: int  # 0 today, 1 tomorrow, ... on the calendar's wall clock
    capacity: int
    tz: tzinfo

    @property
    def window(self) -> timedelta:
        return self.ends - self.at

    def wall(self, t: datetime) -> datetime:
        return t.astimezone(self.tz)


def slot_problem(rules: Sequence[SlotRule]) -> str | None:
    """Why these rules cannot be used (for the config check), or None."""
    ordered = sorted(rules, key=lambda r: r.window)
    for rule in ordered:
        length = timedelta(minutes=rule.window.end - rule.window.start)
        if not MIN_WINDOW <= length <= MAX_WINDOW:
            return (f"slot {rule.window} lasts {length}: a slot is 5 minutes to 8 hours "
                    "(it is the promised window)")
        if rule.agents < 1:
            return f"slot {rule.window}: agents = {rule.agents}, at least 1"
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.window.start < a.window.end:
            return f"slots {a.window} and {b.window} overlap"
    return None


def candidate_slots(rules: Sequence[SlotRule], calendar: Calendar, now: datetime, *,
                    handle_time: float, lead: timedelta, days: int) -> Iterator[Slot]:
    """Every slot from today to `days` days ahead, in time order, clipped to the
    calendar's open time, that a booking made `now` could still take."""
    today = now.astimezone(calendar.tz).date()
    earliest = now + lead
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        midnight = datetime.combine(day, time())
        for rule in sorted(rules, key=lambda r: r.window):
            start = local_instant(calendar.tz, midnight + timedelta(minutes=rule.window.start))
            end = local_instant(calendar.tz, midnight + timedelta(minutes=rule.window.end))
            # An early closing inside the slot shortens it; a gap splits it: the first
            # open part that still fits a promise is offered.
            for begins, ends in calendar.open_intervals(start, end):
                at = max(begins, earliest)
                if ends - at < MIN_WINDOW:
                    continue
                capacity = int(rule.agents * (ends - at).total_seconds() // handle_time)
                if capacity >= 1:
                    yield Slot(begins.astimezone(UTC), at.astimezone(UTC),
                               ends.astimezone(UTC), offset, capacity, calendar.tz)
                break


def free_slots(candidates: Iterable[Slot], booked: Sequence[datetime], count: int
               ) -> list[Slot]:
    """The first `count` candidates with room left; `booked` holds the agreed times of
    the callbacks already booked (a booking counts against the slot it falls in)."""
    out: list[Slot] = []
    for slot in candidates:
        if len(out) >= count:
            break
        taken = sum(1 for t in booked if slot.begins <= t < slot.ends)
        if taken < slot.capacity:
            out.append(slot)
    return out
