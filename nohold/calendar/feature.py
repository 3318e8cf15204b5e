"""The business calendar as a feature: the `[calendar]` section, the overrides table,
the FastAGI route `hours`, the commands `nohold hours ...`, and the calendars shared
with the features started after it (`ServiceContext.calendars`)."""

from __future__ import annotations

import holidays

from nohold.calendar.agi import HoursRoute
from nohold.calendar.book import CalendarBook
from nohold.calendar.commands import COMMANDS
from nohold.calendar.settings import SECTION, CalendarSettings
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext


def start(ctx: ServiceContext) -> Contribution:
    book = CalendarBook(ctx.settings.section(CalendarSettings),
                        CalendarOverrideStore(ctx.engine))
    ctx.calendars = book
    return Contribution(agi_routes={"hours": HoursRoute(book)})


async def check_calendar(settings: Settings) -> str:
    cals = settings.section(CalendarSettings)
    names = ", ".join(f"{name} ({spec.timezone}, {spec.holidays_label})"
                      for name, spec in cals.calendars.items())
    return f"calendar: ok (default {cals.default}; {names}; holidays package " \
           f"{holidays.__version__})"


FEATURE = Feature(name="calendar", start=start, section=SECTION, checks=(check_calendar,),
                  commands=COMMANDS)
