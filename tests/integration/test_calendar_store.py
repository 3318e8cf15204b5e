"""The calendar's overrides table on SQLite and a real PostgreSQL: what a supervisor adds
is read back as the same instants, expired and ended ones drop out, remove by id."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.decisions.hours import Kind, Override, override_for, parse_window

WAW = ZoneInfo("Europe/Warsaw")
NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(db_url):
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    yield CalendarOverrideStore(engine)
    await engine.dispose()


async def test_an_override_comes_back_as_the_same_instants_with_its_note(store):
    eve = override_for(WAW, Kind.CLOSED, start=datetime(2026, 12, 31, 13), note="Sylwester ż")
    row = await store.add("office", eve, NOW, "anna")
    assert row.id > 0 and row.created_by == "anna" and row.created_at == NOW
    [found] = await store.find("office")
    assert found == row
    assert found.override == Override(Kind.CLOSED, eve.start, eve.end, "Sylwester ż", None,
                                      source=f"db:{row.id}")
    assert found.starts_at.tzinfo is not None and found.starts_at == eve.start


async def test_only_overrides_that_still_matter_are_current(store):
    def closed(day: int, expires: datetime | None = None) -> Override:
        return override_for(WAW, "closed", day=date(2026, 12, day), expires=expires)

    ended = await store.add("office", closed(18), NOW)
    expired = await store.add("office", closed(22, expires=NOW - timedelta(minutes=1)), NOW)
    later_expiry = await store.add("office", closed(23, expires=NOW + timedelta(days=1)), NOW)
    standing = await store.add("office", closed(28), NOW)
    other = await store.add("callbacks", override_for(WAW, "open", day=date(2027, 1, 9),
                                                      window=parse_window("10:00-14:00")), NOW)
    assert [r.id for r in await store.find(current_at=NOW)] == [
        later_expiry.id, standing.id, other.id]
    assert [r.id for r in await store.find("office", current_at=NOW)] == [
        later_expiry.id, standing.id]
    assert [r.id for r in await store.find()] == [
        ended.id, expired.id, later_expiry.id, standing.id, other.id]
    by = await store.by_calendar(NOW)
    assert sorted(by) == ["callbacks", "office"] and len(by["office"]) == 2
    assert by["callbacks"][0].kind is Kind.OPEN


async def test_remove_by_id(store):
    row = await store.add("office", override_for(WAW, "closed", day=date(2026, 12, 28)), NOW)
    removed = await store.remove(row.id)
    assert removed == row
    assert await store.remove(row.id) is None
    assert await store.find() == []


async def test_the_table_refuses_a_period_that_ends_before_it_starts(store):
    async with store._engine.begin() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(text(
                "INSERT INTO calendar_overrides (calendar, kind, starts_at, ends_at, note, "
                "created_at, created_by) VALUES ('office', 'closed', :b, :a, '', :a, '')"),
                {"a": NOW, "b": NOW + timedelta(hours=1)})
