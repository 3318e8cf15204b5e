"""The `[calendar]` section: named business calendars, validated once at start.

    [calendar]                      # shared by every calendar below
    timezone = "Europe/Warsaw"
    country = "PL"                  # public holidays close every calendar; "" = none
    subdivision = ""                # a region the holidays package knows, e.g. "02"
    language = ""                   # holiday names: "" = the country's own ("pl")
    default = "office"              # the calendar asked when none is named

    [calendar.office]               # one table per calendar: [a-z0-9_-], up to 32
    mon = ["10:00-17:00"]           # a day not listed is closed
    tue = ["08:00-12:00", "13:00-17:00"]
    closed = [{ day = 2026-12-31, hours = "13:00-24:00", note = "New Year's Eve" }]
    open = [{ day = 2027-01-09, hours = "10:00-14:00", until = 2027-01-10T00:00:00 }]

A calendar may set its own timezone, country, subdivision and language; what it
does not set it takes from `[calendar]`. With no calendar tables at all, the
built-in `office` calendar is the small ISP's: 10:00-17:00 Monday to Friday.
Overrides here and in the database (`nohold hours override`) are merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from nohold.config import ConfigError, Section, Table, matching, text
from nohold.decisions.hours import (
    DEFAULT_TIMEZONE,
    WEEKDAYS,
    Calendar,
    HolidayLookup,
    Kind,
    Override,
    Window,
    check_day,
    override_for,
    parse_window,
)

# A calendar's name: also an AGI argument and a database value (String(32)).
NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
NAME_WHAT = "a calendar name: a-z, 0-9, '_', '-' (1-32 characters)"
SHARED = ("timezone", "country", "subdivision", "language")
OFFICE_HOURS = {day: (Window(600, 1020),) for day in range(5)}  # 10:00-17:00 Mon-Fri
NOTE_MAX = 200


def _no_holidays(day: date) -> str | None:
    return None


@lru_cache(maxsize=32)
def public_holidays(country: str, subdivision: str = "", language: str = "") -> HolidayLookup:
    """The holidays package's calendar as a lookup date -> name (years are computed
    as they are asked). Raises ValueError naming what is wrong."""
    if not country:
        return _no_holidays
    try:
        found = holidays.country_holidays(country, subdiv=subdivision or None)
        # Named in the country's own language unless told: left to the package, the
        # names would follow the process's locale (LANG), so the service and the CLI
        # could differ.
        language = language or found.default_language or ""
        if language:
            found = holidays.country_holidays(country, subdiv=subdivision or None,
                                              language=language)
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from None
    if language and found.supported_languages and language not in found.supported_languages:
        raise ValueError(f"language {language!r}: the holidays package names {country}'s "
                         f"holidays in {', '.join(found.supported_languages) or 'one language'}")
    if country == "PL" and date(2025, 12, 24) not in found:
        # Christmas Eve is a public holiday in Poland from 2025 (Dz.U. 2024 poz. 1965):
        # an older package would keep the line open on it.
        raise ValueError(f"the installed holidays package ({holidays.__version__}) does not "
                         "know that 24 December is a Polish public holiday from 2025: "
                         "pip install 'holidays>=0.64'")
    return found.get


@dataclass(frozen=True)
class CalendarSpec:
    """One named calendar as configured (its config overrides already instants)."""

    name: str
    timezone: str = DEFAULT_TIMEZONE
    country: str = "PL"
    subdivision: str = ""
    language: str = ""
    week: Mapping[int, tuple[Window, ...]] = field(default_factory=lambda: dict(OFFICE_HOURS))
    overrides: tuple[Override, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def holidays_label(self) -> str:
        if not self.country:
            return "no public holidays"
        return f"holidays {self.country}" + (f"-{self.subdivision}" if self.subdivision else "")

    def calendar(self, extra: Iterable[Override] = (), now: datetime | None = None
                 ) -> Calendar:
        """The pure calendar: these hours, holidays, the config's overrides and `extra`
        (the database's); with `now`, overrides expired by then are left out."""
        base = Calendar(self.name, self.week, self.tz,
                        public_holidays(self.country, self.subdivision, self.language),
                        self.overrides)
        return base.with_overrides(extra, now)


@dataclass(frozen=True)
class CalendarSettings:
    default: str = "office"
    calendars: Mapping[str, CalendarSpec] = field(
        default_factory=lambda: {"office": CalendarSpec("office")})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.calendars)

    def spec(self, name: str | None = None) -> CalendarSpec:
        """The calendar `name` (the default one for None); KeyError saying which exist."""
        try:
            return self.calendars[name or self.default]
        except KeyError:
            raise KeyError(f"no calendar {name!r}: the configured ones are "
                           f"{', '.join(self.names)}") from None


def _zone(t: Table, key: str, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{t.key(key)} = {name!r}: not a time zone this system knows "
                          "(an IANA name such as 'Europe/Warsaw'; see /usr/share/zoneinfo)"
                          ) from None
    return name


def _holiday_keys(t: Table, inherited: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for key in SHARED:
        value = t.get(key, str, inherited[key])
        if key == "country" and value and not re.fullmatch(r"[A-Z]{2}", value):
            raise ConfigError(f"{t.key(key)} = {value!r}: a two-letter country code such "
                              "as 'PL', or \"\" for no public holidays")
        values[key] = value
    _zone(t, "timezone", values["timezone"])
    try:
        public_holidays(values["country"], values["subdivision"], values["language"])
    except ValueError as exc:
        where = t.key("country") if t.where else "calendar.country"
        raise ConfigError(f"{where} = {values['country']!r}, subdivision = "
                          f"{values['subdivision']!r}, language = {values['language']!r}: "
                          f"{exc}") from None
    return values


def parse_calendar(t: Table, env: Mapping[str, str]) -> CalendarSettings:
    shared = _holiday_keys(t, {"timezone": DEFAULT_TIMEZONE, "country": "PL",
                               "subdivision": "", "language": ""})
    default = matching(t, "default", "office", NAME, NAME_WHAT)
    calendars: dict[str, CalendarSpec] = {}
    for name in [k for k, v in t.data.items() if isinstance(v, dict)]:
        if not NAME.match(name):
            raise ConfigError(f"[{t.key(name)}]: {name!r} is not {NAME_WHAT}")
        calendars[name] = _parse_one(name, t.table(name), shared)
    t.done()
    if not calendars:
        calendars = {"office": CalendarSpec("office", shared["timezone"], shared["country"],
                                            shared["subdivision"], shared["language"])}
    if default not in calendars:
        raise ConfigError(f"calendar.default = {default!r}: no [calendar.{default}] table; "
                          f"the calendars are {', '.join(calendars)}")
    return CalendarSettings(default, calendars)


def _parse_one(name: str, t: Table, shared: Mapping[str, str]) -> CalendarSpec:
    own = _holiday_keys(t, shared)
    tz = ZoneInfo(own["timezone"])
    week: dict[int, tuple[Window, ...]] = {}
    for number, day in enumerate(WEEKDAYS):
        given = t.get(day, list, [])
        windows = []
        for i, value in enumerate(given):
            try:
                windows.append(parse_window(value))
            except ValueError as exc:
                raise ConfigError(f"{t.key(day)}[{i}] = {value!r}: {exc}") from None
        try:
            week[number] = check_day(windows)
        except ValueError as exc:
            raise ConfigError(f"{t.key(day)} = {given!r}: {exc}") from None
    overrides = [_override(Table(entry, f"{t.key(kind.value)}[{i}]"), kind, tz)
                 for kind in Kind
                 for i, entry in enumerate(t.get(kind.value, list, []))]
    t.done()
    if not any(week.values()):
        raise ConfigError(f"[{t.where}] has no opening hours: give at least one weekday, "
                          f"e.g. mon = [\"10:00-17:00\"] (weekdays: {', '.join(WEEKDAYS)})")
    return CalendarSpec(name, own["timezone"], own["country"], own["subdivision"],
                        own["language"], week={d: w for d, w in week.items() if w},
                        overrides=tuple(overrides))


def _override(t: Table, kind: Kind, tz: ZoneInfo) -> Override:
    day = _when(t, "day", date)
    hours = t.get("hours", str, None)
    window = None
    if hours is not None:
        try:
            window = parse_window(hours)
        except ValueError as exc:
            raise ConfigError(f"{t.key('hours')} = {hours!r}: {exc}") from None
    start, end, until = (_when(t, key, datetime) for key in ("from", "to", "until"))
    note = text(t, "note", "-", NOTE_MAX) if "note" in t.data else ""
    t.used.add("note")  # optional: named among the allowed keys either way
    t.done()
    try:
        return override_for(tz, kind, day=day, window=window, start=start, end=end,
                            expires=until, note=note, source="config")
    except ValueError as exc:
        raise ConfigError(f"{t.where} = {t.data!r}: {exc}") from None


def _when(t: Table, key: str, kind: type) -> Any:
    """A TOML date / date-time, or the same as an ISO string (a date-time without an
    offset is local time in the calendar's zone)."""
    value = t.get(key, (str, date, datetime), None)
    if value is None:
        return None
    parsed = value
    if isinstance(value, str):
        parsed = parse_iso(value, kind)
    if kind is date and isinstance(parsed, datetime) or kind is datetime and not isinstance(
            parsed, datetime) or parsed is None:
        want = "a date, e.g. 2026-12-24" if kind is date else (
            "a date and time, e.g. 2026-12-31T13:00 (local) or 2026-12-31T13:00+01:00")
        raise ConfigError(f"{t.key(key)} = {value!r}: expected {want}")
    return parsed


def parse_iso(value: str, kind: type) -> date | datetime | None:
    """ "2026-12-24" as a date, "2026-12-31T13:00[+01:00]" as a datetime; None if it is
    not that."""
    try:
        if kind is date:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                return None
            return date.fromisoformat(value.strip())
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                            r"(Z|[+-]\d{2}:?\d{2})?", value.strip()):
            return None
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]

SECTION = Section("calendar", parse_calendar)
