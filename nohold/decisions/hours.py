"""The business calendar: when a line is open, and why not. Pure: no I/O, no clock.

A `Calendar` is weekly opening hours per weekday (several windows a day), a time
zone, public holidays (a lookup passed in: a mapping date -> name or a callable;
the feature builds it with the `holidays` package) and overrides: extra closed
and extra open periods, each with an optional expiry and a note. Every question
takes its instant (`at`, `after`, `start`) from the caller; naive datetimes are
refused (`NaiveDatetime`): an instant without its offset is not an instant.

How the pieces combine at an instant t (local date d = t's date in the zone):

    open  <=>  (d is not a holiday and t is inside a window of d's weekday,
                or t is inside an open override)
               and t is not inside a closed override

A closed override wins over an open one (the supervisor's "closed" is the
emergency brake); an open override wins over a holiday and a weekend. An
override applies from its start until its end or its expiry, whichever comes
first.

Wall clock and daylight saving: a window is open exactly while the local wall
clock reads a time inside it. On the spring-forward night in Europe/Warsaw the
clock jumps from 02:00 to 03:00, so a window 02:30-04:00 opens at 03:00 (the
first instant the clock reads 02:30 or later) and a window 02:15-02:45 does not
happen at all. On the fall-back night 02:00-03:00 is read twice, so a window
01:00-04:00 lasts four hours and a window 02:15-02:45 happens twice, once on
summer time and once on winter time. `local_instant` reads a local time the same
way: the first instant the clock reads it, or the end of the gap it falls in.

Every datetime this module returns is in UTC. Python compares and subtracts two
datetimes that share one tzinfo by their wall clocks, ignoring `fold`: in the
repeated hour 02:45 (summer) would sort after 02:15 (winter) although it comes
first. UTC has no repeated hour; convert with `.astimezone(calendar.tz)` to show.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Europe/Warsaw"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far the questions look ahead: past this, "no change" (None) or NoOpening.
HORIZON_DAYS = 400
DAY_MINUTES = 24 * 60

HolidayLookup = Mapping[date, str] | Callable[[date], str | None]


class NaiveDatetime(ValueError):
    """A datetime without a time zone was given where an instant is needed."""


class NoOpening(LookupError):
    """The calendar does not open within its horizon."""


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"{name} = {value.isoformat()} has no time zone: give an aware "
                            "datetime (e.g. with tzinfo=ZoneInfo('Europe/Warsaw') or UTC)")
    return value.astimezone(UTC)


# -- windows ------------------------------------------------------------------------------

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, order=True)
class Window:
    """Wall-clock minutes [start, end) within one day; end may be 1440 (24:00)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= DAY_MINUTES:
            raise ValueError(f"window {self.start}-{self.end}: need 0 <= start < end <= 1440")

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str) -> Window:
    """ "10:00-17:00" -> Window. Ends may be 24:00; a window never crosses midnight."""
    m = _WINDOW.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError("expected HH:MM-HH:MM, e.g. 10:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError("hours are 00-23 and minutes 00-59 (an end may be 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end == start:
        raise ValueError("the window is empty (starts where it ends)")
    if end < start:
        raise ValueError("the window ends before it starts: split hours past midnight "
                         "over two days, e.g. fri = [\"22:00-24:00\"], sat = [\"00:00-02:00\"]")
    return Window(start, end)


def check_day(windows: Iterable[Window]) -> tuple[Window, ...]:
    """One day's windows, sorted; overlapping or touching windows are an error (say
    "10:00-17:00", not "10:00-13:00" and "13:00-17:00")."""
    out = tuple(sorted(windows))
    for a, b in zip(out, out[1:], strict=False):
        if b.start <= a.end:
            raise ValueError(f"{a} and {b} overlap or touch: make them one window")
    return out


# -- wall clock <-> instants --------------------------------------------------------------

_STEP = 12 * 3600  # seconds: no real zone changes its offset twice within 12 hours
_REACH = timedelta(hours=15)  # more than any UTC offset (-12..+14)


def _offset(tz: tzinfo, epoch: int) -> timedelta:
    offset = datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _segments(tz: tzinfo, u0: datetime, u1: datetime
              ) -> list[tuple[datetime, datetime, timedelta]]:
    """[u0, u1) in UTC cut where the zone's offset changes: (start, end, offset)."""
    a, b = int(u0.timestamp()), int(u1.timestamp()) + 1
    out: list[tuple[int, int, timedelta]] = []
    seg_start, off = a, _offset(tz, a)
    t = a
    while t < b:
        nxt = min(t + _STEP, b)
        if _offset(tz, nxt) != off:
            lo, hi = t, nxt  # off at lo, another offset at hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, mid) == off:
                    lo = mid
                else:
                    hi = mid
            out.append((seg_start, hi, off))
            seg_start, off = hi, _offset(tz, hi)
        t = nxt
    out.append((seg_start, b, off))
    return [(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), o)
            for s, e, o in out]


def wall_range(tz: tzinfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The UTC instants at which the wall clock in `tz` reads a time in [start, end)
    (naive local datetimes): usually one interval; none inside a spring-forward gap;
    two when the range lies inside a fall-back repeated hour."""
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("wall_range takes naive local datetimes")
    pieces: list[tuple[datetime, datetime]] = []
    for a, b, off in _segments(tz, start.replace(tzinfo=UTC) - _REACH,
                               end.replace(tzinfo=UTC) + _REACH):
        wall_a, wall_b = (a + off).replace(tzinfo=None), (b + off).replace(tzinfo=None)
        lo, hi = max(wall_a, start), min(wall_b, end)
        if lo < hi:
            x, y = (lo - off).replace(tzinfo=UTC), (hi - off).replace(tzinfo=UTC)
            if pieces and pieces[-1][1] == x:
                pieces[-1] = (pieces[-1][0], y)
            else:
                pieces.append((x, y))
    return pieces


def local_instant(tz: tzinfo, wall: datetime) -> datetime:
    """A naive local time as an instant (UTC): the first instant the clock reads it
    (the summer-time one in a repeated hour), or the end of the gap it falls in."""
    if wall.tzinfo is not None:
        return wall.astimezone(UTC)
    pieces = wall_range(tz, wall, wall + timedelta(hours=6))
    return pieces[0][0]


def local_period(tz: tzinfo, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) given as local times (naive) or instants (aware), as UTC instants:
    from the first instant the clock reads `start` to the last instant it reads a time
    before `end` (a naive time inside a spring-forward gap: the end of the gap)."""
    a = local_instant(tz, start)
    b = end.astimezone(UTC) if end.tzinfo else wall_range(tz, end - timedelta(hours=6),
                                                          end)[-1][1]
    if not a < b:
        raise ValueError(f"{start.isoformat()} to {end.isoformat()} ends before it starts "
                         f"(in {tz})")
    return a, b


def day_bounds(tz: tzinfo, day: date) -> tuple[datetime, datetime]:
    """The instants of one local day (from its first to the next day's first instant)."""
    return (local_instant(tz, datetime.combine(day, time())),
            local_instant(tz, datetime.combine(day + timedelta(days=1), time())))


# -- overrides ----------------------------------------------------------------------------

class Kind(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Override:
    """Closed (or open) from `start` until `end`, and only before `expires` if set."""

    kind: Kind
    start: datetime
    end: datetime
    note: str = ""
    expires: datetime | None = None
    # Where it came from, for people: "config", "db:12".
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "start", _aware("override start", self.start))
        object.__setattr__(self, "end", _aware("override end", self.end))
        if self.expires is not None:
            object.__setattr__(self, "expires", _aware("override expiry", self.expires))
        if not self.start < self.end:
            raise ValueError(f"override {self.start.isoformat()} to {self.end.isoformat()}: "
                             "ends before it starts")

    @property
    def until(self) -> datetime:
        """Where it stops applying: its end, or its expiry if that is earlier."""
        return self.end if self.expires is None else min(self.end, self.expires)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and _aware("now", now) >= self.expires

    def covers(self, t: datetime) -> bool:
        return self.start <= t < self.until

    @property
    def label(self) -> str:
        return f"override: {self.note}" if self.note else "override"


# -- the answer ---------------------------------------------------------------------------

class Why(StrEnum):
    """Short, ASCII, stable: what the dialplan branches on (NOHOLD_CLOSED_REASON)."""

    OPEN = "open"
    OVERRIDE = "override"
    HOLIDAY = "holiday"
    WEEKEND = "weekend"
    DAY_OFF = "day-off"
    OUTSIDE_HOURS = "outside-hours"


@dataclass(frozen=True)
class Status:
    open: bool
    why: Why
    # The holiday's name or the override's note ("" otherwise).
    detail: str
    # When `open` flips next (UTC); None if not within the horizon.
    next_change: datetime | None

    @property
    def reason(self) -> str:
        """For people: "open", "weekend", "holiday: <name>", "override: <note>",
        "outside hours", "day off"."""
        if self.why in (Why.HOLIDAY, Why.OVERRIDE) and self.detail:
            return f"{self.why.value}: {self.detail}"
        return self.why.value.replace("-", " ")


def _no_holidays(day: date) -> str | None:
    return None


def _default_tz() -> tzinfo:
    # The tz database is data shipped with the system, read once and cached.
    return ZoneInfo(DEFAULT_TIMEZONE)


@dataclass(frozen=True)
class Calendar:
    name: str = "office"
    # weekday (0 = Monday) -> the day's windows; a day not listed is closed.
    week: Mapping[int, tuple[Window, ...]] = field(default_factory=dict)
    tz: tzinfo = field(default_factory=_default_tz)
    holidays: HolidayLookup = _no_holidays
    overrides: tuple[Override, ...] = ()
    horizon_days: int = HORIZON_DAYS

    def __post_init__(self) -> None:
        week: dict[int, tuple[Window, ...]] = {}
        for day, windows in self.week.items():
            if day not in range(7):
                raise ValueError(f"weekday {day!r}: 0 (Monday) to 6 (Sunday)")
            week[day] = check_day(windows)
        object.__setattr__(self, "week", week)
        object.__setattr__(self, "overrides", tuple(self.overrides))

    # -- building ------------------------------------------------------------------------
    def with_overrides(self, extra: Iterable[Override], now: datetime | None = None
                       ) -> Calendar:
        """This calendar plus `extra` overrides; with `now`, every override already
        expired at `now` is dropped."""
        merged = (*self.overrides, *extra)
        if now is not None:
            merged = tuple(o for o in merged if not o.expired(now))
        return replace(self, overrides=merged)

    # -- questions -----------------------------------------------------------------------
    def holiday(self, day: date) -> str | None:
        if callable(self.holidays):
            return self.holidays(day)
        return self.holidays.get(day)

    def is_open(self, at: datetime) -> Status:
        t = _aware("at", at)
        first = next(self._open_from(t), None)
        if first is not None and first[0] <= t:
            change = first[1]
            for o in self.overrides:
                if o.kind is Kind.OPEN and o.covers(t) and not self._regular_open(t):
                    return Status(True, Why.OVERRIDE, o.note, change)
            return Status(True, Why.OPEN, "", change)
        nxt = None if first is None else first[0]
        return Status(False, *self._closed_why(t), nxt)

    def next_opening(self, after: datetime) -> datetime:
        """The first instant at or after `after` at which the calendar is open (`after`
        itself when open then). NoOpening if none within the horizon."""
        t = _aware("after", after)
        first = next(self._open_from(t), None)
        if first is None:
            raise NoOpening(f"calendar {self.name!r} does not open within "
                            f"{self.horizon_days} days of {t.isoformat()}")
        return max(first[0], t)

    def open_intervals(self, start: datetime, end: datetime
                       ) -> Iterator[tuple[datetime, datetime]]:
        """The open periods within [start, end), in order, as (from, to) UTC instants;
        periods that touch are one (a window to 24:00 and one from 00:00 join)."""
        a, b = _aware("start", start), _aware("end", end)
        if b <= a:
            return
        for lo, hi in self._merged(a, b):
            if lo >= b:
                return
            yield lo, (b if hi is None or hi > b else hi)

    def after_open_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of open time has passed since `start`: "four
        working hours" from Friday 16:00 ends on Monday, never over the weekend or a
        holiday. NoOpening if the calendar does not open enough within the horizon."""
        left = duration
        for lo, hi in self._open_from(_aware("start", start)):
            if hi is None:  # open past the horizon: the rest fits
                return lo + left
            if hi - lo >= left:
                return lo + left
            left -= hi - lo
        raise NoOpening(f"calendar {self.name!r}: not {duration} of open time within "
                        f"{self.horizon_days} days of {start.isoformat()}")

    def is_working_day(self, day: date) -> bool:
        """Does the calendar open at all on this local day?"""
        return bool(self._day_open(day))

    def nth_working_day_after(self, day: date, n: int) -> date:
        """The n-th day after `day` (n >= 1) on which the calendar opens at all: for
        follow-ups, "3 working days after" skips weekends, holidays, closed days."""
        if n < 1:
            raise ValueError(f"n = {n!r}: count from 1 (the first working day after)")
        current, found = day, 0
        for _ in range(self.horizon_days * 2):
            current += timedelta(days=1)
            if self.is_working_day(current):
                found += 1
                if found == n:
                    return current
        raise NoOpening(f"calendar {self.name!r}: fewer than {n} working days within "
                        f"{self.horizon_days * 2} days after {day.isoformat()}")

    # -- how -----------------------------------------------------------------------------
    def _local_date(self, t: datetime) -> date:
        return t.astimezone(self.tz).date()

    def _regular(self, day: date) -> list[tuple[datetime, datetime]]:
        if self.holiday(day) is not None:
            return []
        out: list[tuple[datetime, datetime]] = []
        midnight = datetime.combine(day, time())
        for w in self.week.get(day.weekday(), ()):
            out += wall_range(self.tz, midnight + timedelta(minutes=w.start),
                              midnight + timedelta(minutes=w.end))
        return out

    def _regular_open(self, t: datetime) -> bool:
        return any(a <= t < b for a, b in self._regular(self._local_date(t)))

    def _day_open(self, day: date) -> list[tuple[datetime, datetime]]:
        """One local day's open periods (UTC), sorted, disjoint."""
        lo, hi = day_bounds(self.tz, day)
        pieces = self._regular(day)
        for o in self.overrides:
            if o.kind is Kind.OPEN and o.start < hi and o.until > lo:
                pieces.append((max(o.start, lo), min(o.until, hi)))
        merged = _merge(pieces)
        for o in self.overrides:
            if o.kind is Kind.CLOSED and o.start < hi and o.until > lo:
                merged = _subtract(merged, o.start, o.until)
        return merged

    def _days(self, start: datetime, end: datetime | None = None
              ) -> tuple[Iterator[list[tuple[datetime, datetime]]], datetime]:
        """Each local day's open periods from the day before `start`'s through `end`'s
        (or the horizon), and the instant where the last of those days ends."""
        first = self._local_date(start) - timedelta(days=1)
        last = (self._local_date(end) if end is not None
                else self._local_date(start) + timedelta(days=self.horizon_days))

        def days() -> Iterator[list[tuple[datetime, datetime]]]:
            day = first
            while day <= last:
                yield self._day_open(day)
                day += timedelta(days=1)

        return days(), day_bounds(self.tz, last)[1]

    def _merged(self, start: datetime, end: datetime | None = None
                ) -> Iterator[tuple[datetime, datetime | None]]:
        """Open periods ending after `start`, touching ones joined, clipped to begin no
        earlier than `start`. A period still open where the days looked at end (the
        horizon) ends in None: its end is not known."""
        days, limit = self._days(start, end)
        current: tuple[datetime, datetime] | None = None
        for pieces in days:
            for a, b in pieces:
                if current is not None and a <= current[1]:
                    current = (current[0], max(current[1], b))
                    continue
                if current is not None and current[1] > start:
                    yield max(current[0], start), current[1]
                current = (a, b)
        if current is not None and current[1] > start:
            yield max(current[0], start), (None if current[1] >= limit else current[1])

    def _open_from(self, t: datetime) -> Iterator[tuple[datetime, datetime | None]]:
        return self._merged(t)

    def _closed_why(self, t: datetime) -> tuple[Why, str]:
        for o in self.overrides:
            if o.kind is Kind.CLOSED and o.covers(t):
                return Why.OVERRIDE, o.note
        day = self._local_date(t)
        name = self.holiday(day)
        if name is not None:
            return Why.HOLIDAY, name
        if not self.week.get(day.weekday()):
            return (Why.WEEKEND if day.weekday() >= 5 else Why.DAY_OFF), ""
        return Why.OUTSIDE_HOURS, ""


def _merge(pieces: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(pieces):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(pieces: list[tuple[datetime, datetime]], lo: datetime, hi: datetime
              ) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in pieces:
        if b <= lo or a >= hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if b > hi:
            out.append((hi, b))
    return out


# -- for the dialplan ---------------------------------------------------------------------

_NOT_LATIN = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE",
                            "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "'": "", "’": ""})
# Nothing Asterisk reads when the value is substituted into an application's
# arguments: no ',' '|' (separators), quotes, parentheses, '$', ';' or '\\'.
_UNSAFE = re.compile(r"[^A-Za-z0-9 .:/+_-]+")


def ascii_label(text: str, max_len: int = 80) -> str:
    """A holiday name or a note made safe for a channel variable: ASCII letters
    (diacritics dropped: "Wigilia Bożego Narodzenia" -> "Wigilia Bozego Narodzenia"),
    digits, spaces and . : / + _ -, at most `max_len` characters: safe to use as
    ${NOHOLD_CLOSED_DETAIL} inside a dialplan application's arguments."""
    plain = unicodedata.normalize("NFKD", text.translate(_NOT_LATIN))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    plain = " ".join(_UNSAFE.sub(" ", plain).split())
    return plain[:max_len].rstrip()


# -- overrides from what people write -----------------------------------------------------

def override_for(tz: tzinfo, kind: Kind | str, *, day: date | None = None,
                 window: Window | None = None, start: datetime | None = None,
                 end: datetime | None = None, expires: datetime | None = None,
                 note: str = "", source: str = "") -> Override:
    """An override from local words: a whole `day`, a `day` with a `window`, or from
    `start` (to `end`, else to the end of start's local day). Naive datetimes are
    local times in `tz` (read as `local_period` and `local_instant` do); aware ones
    are instants. An open override names its hours: a day alone is refused."""
    kind = Kind(kind)
    if (day is None) == (start is None):
        raise ValueError("give either a day or a start (from), not both")
    if window is not None and day is None:
        raise ValueError("hours go with a day; with a start, give an end (to)")
    if end is not None and start is None:
        raise ValueError("an end (to) needs a start (from)")
    if day is not None:
        if kind is Kind.OPEN and window is None:
            raise ValueError("an extra open day needs its hours, e.g. 10:00-14:00")
        midnight = datetime.combine(day, time())
        w = window or Window(0, DAY_MINUTES)
        a, b = local_period(tz, midnight + timedelta(minutes=w.start),
                            midnight + timedelta(minutes=w.end))
    else:
        assert start is not None
        if end is None:
            local_day = (start.astimezone(tz) if start.tzinfo else start).date()
            end = datetime.combine(local_day + timedelta(days=1), time())
        a, b = local_period(tz, start, end)
    until = None if expires is None else local_instant(tz, expires)
    return Override(kind, a, b, note, until, source)
