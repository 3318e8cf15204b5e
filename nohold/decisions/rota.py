"""Who is on duty at an instant, in escalation order. Pure: no I/O, no clock.

A rota is weekly shifts on a wall clock (days, a window, the people in the order
they are alerted: the first is on duty, the others are the backups), plus covers:
periods that replace the shifts (a holiday week, sick leave), the last one listed
winning where covers overlap. Where neither says anything, the fallback order.

Wall clock and daylight saving: a shift covers an instant while the local clock
reads a time inside its window, as the business calendar reads opening hours: the
repeated autumn hour is covered twice, the skipped spring hour never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from nohold.decisions.hours import DEFAULT_TIMEZONE, NaiveDatetime, Window


@dataclass(frozen=True)
class Shift:
    days: frozenset[int]  # 0 = Monday
    window: Window
    order: tuple[str, ...]


@dataclass(frozen=True)
class Cover:
    """[start, end) instants: these people in this order, whatever the shifts say."""

    start: datetime
    end: datetime
    order: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Rota:
    shifts: tuple[Shift, ...] = ()
    covers: tuple[Cover, ...] = ()
    fallback: tuple[str, ...] = ()
    tz: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))

    def on_duty(self, at: datetime) -> tuple[str, ...]:
        """The people to alert at `at`, first on duty first; () when nobody is."""
        if at.tzinfo is None:
            raise NaiveDatetime("at: an instant needs its offset")
        for cover in reversed(self.covers):
            if cover.start <= at < cover.end:
                return cover.order
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        for shift in self.shifts:
            if local.weekday() in shift.days and shift.window.start <= minute < shift.window.end:
                return shift.order
        return self.fallback


def overlapping_shifts(shifts: Sequence[Shift]) -> str | None:
    """Two shifts covering the same wall-clock minute make "who is on duty" depend on
    their order in the file: named, for the config check."""
    for i, a in enumerate(shifts):
        for b in shifts[i + 1:]:
            days = a.days & b.days
            if days and a.window.start < b.window.end and b.window.start < a.window.end:
                return f"shifts {a.window} and {b.window} overlap on the same day"
    return None
