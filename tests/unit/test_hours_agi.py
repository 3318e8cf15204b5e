"""FastAGI `hours` against a scripted Asterisk (the AGI socket): the variables it sets for
open, a holiday with a Polish name, an override note with hostile characters, a named
calendar, a bad or unknown name."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nohold.agi_scripts.fastagi import FastAgiServer
from nohold.calendar.agi import HoursRoute
from nohold.calendar.book import CalendarBook
from nohold.calendar.settings import CalendarSettings
from nohold.decisions.hours import override_for
from nohold.registry import parse_settings

WAW = ZoneInfo("Europe/Warsaw")
CALENDARS = parse_settings({"calendar": {
    "office": {d: ["10:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "callbacks": {d: ["10:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
}}).section(CalendarSettings)


async def ask(port: int, *args: str) -> dict[str, str]:
    """One AGI session like Asterisk's: the variables nohold set, by name."""
    env = {"agi_network": "yes", "agi_network_script": "hours",
           "agi_channel": "PJSIP/alice-00000001", "agi_uniqueid": "pbx-1.1",
           **{f"agi_arg_{i}": a for i, a in enumerate(args, 1)}}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    variables: dict[str, str] = {}
    while line := (await asyncio.wait_for(reader.readline(), 5)).decode().strip():
        m = re.fullmatch(r'SET VARIABLE (\S+) "(.*)"', line)
        assert m, line
        variables[m[1]] = m[2]
        writer.write(b"200 result=1\n")
    writer.close()
    return variables


@pytest.fixture
async def serve():
    servers = []

    async def start(now: datetime, book: CalendarBook | None = None) -> int:
        book = book or CalendarBook(CALENDARS, None, now=lambda: now)
        server = FastAgiServer({"hours": HoursRoute(book, now=lambda: now)})
        servers.append(server)
        return await server.start("127.0.0.1", 0)

    yield start
    for server in servers:
        await server.close()


async def test_open_sets_one_and_empty_reasons(serve):
    port = await serve(datetime(2026, 1, 7, 12, tzinfo=WAW))
    assert await ask(port) == {
        "NOHOLD_OPEN": "1", "NOHOLD_CLOSED_REASON": "", "NOHOLD_CLOSED_DETAIL": "",
        "NOHOLD_NEXT_CHANGE": "2026-01-07T17:00:00+01:00", "NOHOLD_AGI_STATUS": "OK"}


async def test_a_holiday_is_named_in_plain_ascii(serve):
    port = await serve(datetime(2026, 12, 24, 9, tzinfo=WAW))
    got = await ask(port)
    assert (got["NOHOLD_OPEN"], got["NOHOLD_CLOSED_REASON"], got["NOHOLD_CLOSED_DETAIL"]) == (
        "0", "holiday", "Wigilia Bozego Narodzenia")
    assert got["NOHOLD_NEXT_CHANGE"] == "2026-12-28T10:00:00+01:00"


async def test_a_named_calendar_has_its_own_hours(serve):
    port = await serve(datetime(2026, 1, 7, 18, tzinfo=WAW))
    assert (await ask(port))["NOHOLD_CLOSED_REASON"] == "outside-hours"
    got = await ask(port, "callbacks")
    assert (got["NOHOLD_OPEN"], got["NOHOLD_NEXT_CHANGE"]) == ("1", "2026-01-07T20:00:00+01:00")
    weekend = await serve(datetime(2026, 1, 10, 12, tzinfo=WAW))
    got = await ask(weekend, "callbacks")
    assert (got["NOHOLD_OPEN"], got["NOHOLD_CLOSED_REASON"]) == ("0", "weekend")


async def test_an_override_note_reaches_the_dialplan_sanitised(serve):
    now = datetime(2026, 1, 7, 12, tzinfo=WAW)
    book = CalendarBook(CALENDARS, None, now=lambda: now)
    closed = override_for(WAW, "closed", day=now.date(), note='Awaria "sieci"; Set(X=1)\\ żółć')
    book.settings = CalendarSettings(CALENDARS.default, {
        **CALENDARS.calendars,
        "office": replace(CALENDARS.spec("office"), overrides=(closed,))})
    await book.reload()
    port = await serve(now, book)
    got = await ask(port)
    assert (got["NOHOLD_OPEN"], got["NOHOLD_CLOSED_REASON"]) == ("0", "override")
    assert got["NOHOLD_CLOSED_DETAIL"] == "Awaria sieci Set X 1 zolc"
    assert got["NOHOLD_NEXT_CHANGE"] == "2026-01-08T10:00:00+01:00"


@pytest.mark.parametrize("name, status", [
    ("Office", "BAD_INPUT"), ("a" * 33, "BAD_INPUT"), ("x;y", "BAD_INPUT"),
    ("dialler", "UNKNOWN_CALENDAR"),
])
async def test_a_bad_or_unknown_name_sets_only_the_status(serve, name, status):
    port = await serve(datetime(2026, 1, 7, 12, tzinfo=WAW))
    assert await ask(port, name) == {"NOHOLD_AGI_STATUS": status}
