"""The calendars the service shares (CalendarBook) over a real database: a supervisor's
new override is in force after one refresh, without a restart; a failing database
leaves the last overrides read in force."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from nohold.calendar.book import CalendarBook
from nohold.calendar.settings import CalendarSettings
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.decisions.hours import override_for

WAW = ZoneInfo("Europe/Warsaw")
NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(db_url):
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    yield CalendarOverrideStore(engine)
    await engine.dispose()


async def test_the_book_sees_a_new_override_after_its_refresh_without_a_restart(store):
    clock = [0.0]
    book = CalendarBook(CalendarSettings(), store, refresh=5.0, now=lambda: NOW,
                        monotonic=lambda: clock[0])
    when = datetime(2026, 12, 21, 12, 0, tzinfo=WAW)  # Monday
    assert (await book.get()).is_open(when).open
    await store.add("office", override_for(WAW, "closed", day=date(2026, 12, 21),
                                           note="inventory"), NOW)
    clock[0] = 4.9
    assert (await book.get("office")).is_open(when).open  # read less than 5 s ago
    clock[0] = 5.0
    status = (await book.get("office")).is_open(when)
    assert (status.open, status.reason) == (False, "override: inventory")
    with pytest.raises(KeyError, match="no calendar 'nope'"):
        await book.get("nope")


async def test_the_book_keeps_answering_when_the_database_fails(store, caplog):
    clock = [0.0]
    book = CalendarBook(CalendarSettings(), store, now=lambda: NOW,
                        monotonic=lambda: clock[0])
    await store.add("office", override_for(WAW, "closed", day=date(2026, 12, 21)), NOW)
    when = datetime(2026, 12, 21, 12, 0, tzinfo=WAW)
    assert not (await book.get()).is_open(when).open
    await store._engine.dispose()
    async with store._engine.begin() as conn:
        await conn.execute(text("DROP TABLE calendar_overrides"))
    clock[0] = 10.0
    assert not (await book.get()).is_open(when).open  # the last overrides read still hold
    assert "calendar_overrides_unavailable" in caplog.text
    assert "last ones read" in caplog.text
