"""Scheduled callbacks: `nohold callbacks add|missed`, and the store's rules for an
agreed time (not served before it, first once due, a passed window is missed), on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade
from nohold.cli import main

WARSAW = ZoneInfo("Europe/Warsaw")
# Callbacks dialled 08:00-21:00 every day but Sunday; no public holidays, so that the
# next Monday these tests book is open whatever the date they run on.
CONFIG = '''
[database]
url = "{url}"
[callbacks]
queues = ["billing"]
allowed_numbers = ["PL:mobile", "PL:fixed_line"]
calendar = "desk"
[calendar]
default = "desk"
country = ""
[calendar.desk]
mon = ["08:00-21:00"]
tue = ["08:00-21:00"]
wed = ["08:00-21:00"]
thu = ["08:00-21:00"]
fri = ["08:00-21:00"]
sat = ["08:00-21:00"]
'''


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(CONFIG.format(url=f"sqlite:///{tmp_path}/nohold.db"))
    assert nohold(path, "db", "upgrade").exit_code == 0
    return path


def nohold(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args])


def next_monday_at(hour: int) -> datetime:
    today = datetime.now(WARSAW).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime(monday.year, monday.month, monday.day, hour, 0, tzinfo=WARSAW)


def test_add_books_inside_the_calendar_with_its_window_and_owner(config):
    at = next_monday_at(18)
    added = nohold(config, "callbacks", "add", "--number", "+48601000001", "--at",
                   at.replace(tzinfo=None).isoformat(), "--window", "45m", "--owner", "Agent A",
                   "--note", "router replaced, check the line")
    assert added.exit_code == 0, added.output
    assert "scheduled:" in added.output and "owner Agent A" in added.output
    (row,) = json.loads(nohold(config, "callbacks", "list", "--json").output)
    # A time without an offset is the calendar's wall clock (Warsaw), stored in UTC.
    assert datetime.fromisoformat(row["due_at"]) == at
    assert datetime.fromisoformat(row["expires_at"]) == at + timedelta(minutes=45)
    assert (row["scheduled"], row["owner_agent"], row["note"], row["state"]) == (
        True, "Agent A", "router replaced, check the line", "pending")
    assert row["promised_earliest"] == row["due_at"]

    again = nohold(config, "callbacks", "add", "--number", "601000001", "--at",
                   (at + timedelta(hours=1)).isoformat())
    assert again.exit_code == 1 and "already has a live callback" in again.output


@pytest.mark.parametrize(("args", "words"), [
    (["--at", "SUNDAY"], "outside the desk calendar"),
    (["--at", "tomorrow"], "expected an ISO time"),
    (["--at", "MONDAY", "--window", "3 days"], "30m or 2h"),
    (["--at", "MONDAY", "--number", "+48701234567"], "is not called back"),
    (["--at", "MONDAY", "--queue", "sales"], "not one of callbacks.queues"),
])
def test_bad_bookings_are_refused_with_the_reason_and_nothing_is_stored(config, args, words):
    sunday = next_monday_at(12) - timedelta(days=1)
    values = {"SUNDAY": sunday.isoformat(), "MONDAY": next_monday_at(12).isoformat()}
    argv = ["--number", "+48601000001", *[values.get(a, a) for a in args]]
    if argv.count("--number") == 2:
        argv = argv[2:]
    refused = nohold(config, "callbacks", "add", *argv)
    assert refused.exit_code != 0, refused.output
    assert words in refused.output, refused.output
    if "outside" in words:
        # The next time that would be accepted: Monday 08:00.
        assert (next_monday_at(8)).isoformat() in refused.output, refused.output
    assert "no live callbacks" in nohold(config, "callbacks", "list").output


def test_on_the_do_not_call_list_is_refused(config):
    assert nohold(config, "dnc", "add", "+48601000001").exit_code == 0
    refused = nohold(config, "callbacks", "add", "--number", "+48601000001", "--at",
                     next_monday_at(12).isoformat())
    assert refused.exit_code == 1 and "do-not-call" in refused.output


async def test_an_agreed_time_is_not_served_before_it_then_first_and_missed_after(db_url):
    await asyncio.to_thread(upgrade, db_url)
    engine = make_engine(db_url)
    store = CallbackStore(engine, "node-a")
    now = datetime.now(UTC)
    try:
        waiting, _ = await store.request(
            call_id="asap", number="+48601000001", queue="billing",
            arrived_at=now - timedelta(minutes=20), now=now, promised=None,
            expires_at=now + timedelta(hours=4))
        at = now + timedelta(minutes=10)
        agreed, _ = await store.request(
            call_id="agreed", number="+48601000002", queue="billing", arrived_at=at, now=now,
            promised=(at, at + timedelta(minutes=30)), expires_at=at + timedelta(minutes=30),
            due_at=at, owner_agent="Agent B")
        assert agreed.scheduled and not waiting.scheduled
        # Before its time only the waiting one is served.
        assert [r.id for r in await store.take_turns("billing", 5, now)] == [waiting.id]
        # Once due, it goes first, ahead of an earlier arrival still waiting.
        later, _ = await store.request(
            call_id="asap2", number="+48601000003", queue="billing",
            arrived_at=now - timedelta(minutes=30), now=now, promised=None,
            expires_at=now + timedelta(hours=4))
        turns = await store.take_turns("billing", 5, at)
        assert [r.id for r in turns] == [agreed.id, later.id]
        # A window that passes without a call is a broken promise, named.
        other, _ = await store.request(
            call_id="agreed2", number="+48601000004", queue="billing", arrived_at=at,
            now=now, promised=(at, at + timedelta(minutes=5)),
            expires_at=at + timedelta(minutes=5), due_at=at)
        expired = await store.expire_waiting(at + timedelta(minutes=6))
        assert [(r.id, r.outcome) for r in expired] == [(other.id, "missed_window")]
        assert [r.id for r in await store.find(scheduled=True)] == [agreed.id, other.id]
    finally:
        await engine.dispose()


async def test_booked_times_hold_slots_and_a_closure_moves_an_agreed_time_once(db_url):
    await asyncio.to_thread(upgrade, db_url)
    engine = make_engine(db_url)
    store, other_node = CallbackStore(engine, "node-a"), CallbackStore(engine, "node-b")
    now = datetime.now(UTC).replace(microsecond=0)
    at = now + timedelta(minutes=10)
    try:
        agreed, _ = await store.request(
            call_id="agreed", number="+48601000002", queue="billing", arrived_at=at, now=now,
            promised=(at, at + timedelta(minutes=30)), expires_at=at + timedelta(minutes=30),
            due_at=at)
        await store.request(call_id="asap", number="+48601000001", queue="billing",
                            arrived_at=now, now=now, promised=None,
                            expires_at=now + timedelta(hours=4))
        # Only live scheduled callbacks of that queue, inside [start, end), hold a slot.
        assert await store.booked_times("billing", at, at + timedelta(hours=1)) == [at]
        assert await store.booked_times("billing", now, at) == []
        assert await store.booked_times("sales", at, at + timedelta(hours=1)) == []
        # Due while closed: moved to the next opening, its first time kept.
        assert await store.due_scheduled(now) == []
        (due,) = await store.due_scheduled(at)
        opening = at + timedelta(days=1)
        moved = await store.move_agreed(due, opening, opening + timedelta(minutes=30),
                                        "holiday: Wigilia", at)
        assert moved is not None
        assert (moved.due_at, moved.promised_earliest, moved.expires_at, moved.moved_from,
                moved.moved_why) == (opening, opening, opening + timedelta(minutes=30), at,
                                     "holiday: Wigilia")
        # Another node that read the row before the move changes nothing.
        assert await other_node.move_agreed(due, opening + timedelta(hours=1),
                                            opening + timedelta(hours=2), "x", at) is None
        assert (await store.get(agreed.id)).due_at == opening
        assert await store.due_scheduled(at + timedelta(hours=1)) == []
        # Moved twice: the first agreed time stays the one remembered.
        (due,) = await store.due_scheduled(opening)
        again = await store.move_agreed(due, opening + timedelta(days=1),
                                        opening + timedelta(days=1, minutes=30), "closed", at)
        assert again is not None and again.moved_from == at
    finally:
        await engine.dispose()


async def test_the_store_reads_any_zone_as_the_instant_it_is(db_url):
    # SQLite keeps no offset: a "now" given in another zone must still mean its instant.
    await asyncio.to_thread(upgrade, db_url)
    engine = make_engine(db_url)
    store = CallbackStore(engine, "node-a")
    now = datetime.now(UTC).replace(microsecond=0)
    at = now + timedelta(minutes=30)
    far_east = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its wall clock is ahead of UTC's
    try:
        agreed, _ = await store.request(
            call_id="agreed", number="+48601000002", queue="billing", arrived_at=at, now=now,
            promised=(at, at + timedelta(minutes=30)), expires_at=at + timedelta(minutes=30),
            due_at=at)
        assert await store.take_turns("billing", 5, now.astimezone(far_east)) == []
        assert await store.due_scheduled(now.astimezone(far_east)) == []
        assert await store.expire_waiting((at + timedelta(minutes=29)).astimezone(far_east)) == []
        assert [r.id for r in await store.take_turns("billing", 5, at.astimezone(far_east))] \
            == [agreed.id]
    finally:
        await engine.dispose()
