"""The calendars a running nohold asks: the config's, with the database's overrides.

`CalendarBook` is what the calendar feature shares (`ServiceContext.calendars`):
the FastAGI route asks it on every call, and the ARI features will. It reads the
overrides table at most every `refresh` seconds, so a supervisor's
`nohold hours override add` is in force within seconds, and a call costs no query.
A database that does not answer within `read_timeout` leaves the last overrides
read (or the config's alone, at first) in force, with one warning line per failure:
a caller is never kept waiting on the calendar.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from nohold.calendar.settings import CalendarSettings, utc_now
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.decisions.hours import Calendar, Override

log = logging.getLogger("nohold.calendar")

REFRESH_SECONDS = 5.0
READ_TIMEOUT = 1.0


def build_calendars(settings: CalendarSettings,
                    db_overrides: Mapping[str, Sequence[Override]],
                    now: datetime) -> dict[str, Calendar]:
    """Every configured calendar with its database overrides; those expired at `now`
    (from the config or the database) left out."""
    return {name: spec.calendar(db_overrides.get(name, ()), now)
            for name, spec in settings.calendars.items()}


class CalendarBook:
    def __init__(self, settings: CalendarSettings, store: CalendarOverrideStore | None,
                 *, refresh: float = REFRESH_SECONDS, read_timeout: float = READ_TIMEOUT,
                 now: Callable[[], datetime] = utc_now,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self.refresh_seconds = refresh
        self.read_timeout = read_timeout
        self._now = now
        self._monotonic = monotonic
        self._db: dict[str, list[Override]] = {}
        self._read_at: float | None = None
        self._calendars: dict[str, Calendar] = build_calendars(settings, {}, now())
        self._lock = asyncio.Lock()

    @property
    def default(self) -> str:
        return self.settings.default

    @property
    def names(self) -> tuple[str, ...]:
        return self.settings.names

    async def get(self, name: str | None = None) -> Calendar:
        key = name or self.default
        if key not in self.settings.calendars:
            raise KeyError(f"no calendar {key!r}: the configured ones are "
                           f"{', '.join(self.names)}")
        if self._stale():
            async with self._lock:
                if self._stale():
                    await self.reload()
        return self._calendars[key]

    def _stale(self) -> bool:
        return (self._read_at is None
                or self._monotonic() - self._read_at >= self.refresh_seconds)

    async def reload(self) -> None:
        """Read the overrides now (within `read_timeout`); keep the last ones on failure."""
        now = self._now()
        self._read_at = self._monotonic()
        if self.store is not None:
            try:
                async with asyncio.timeout(self.read_timeout):
                    self._db = await self.store.by_calendar(now)
            except Exception as exc:  # noqa: BLE001 - any driver error: keep answering
                log.warning("calendar_overrides_unavailable error=%s: %s; using the %s",
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                            "last ones read" if self._db else "config's alone")
        self._calendars = build_calendars(self.settings, self._db, now)
