"""The times a caller may choose (nohold/decisions/slots.py): calendar, lead, capacity."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from nohold.decisions.hours import Calendar, Kind, Window, override_for
from nohold.decisions.slots import SlotRule, candidate_slots, free_slots, slot_problem

WARSAW = ZoneInfo("Europe/Warsaw")
PL = holidays.country_holidays("PL", years=range(2026, 2028))
# The callback desk dials 10:00-20:00 on working days.
DESK = Calendar(name="callbacks", tz=WARSAW, holidays=PL.get,
                week={d: (Window(10 * 60, 20 * 60),) for d in range(5)})
RULES = (SlotRule(Window(10 * 60, 12 * 60), 2), SlotRule(Window(18 * 60, 20 * 60), 1))
HOUR = 3600.0


def slots(now: datetime, calendar: Calendar = DESK, days: int = 7, lead: float = 900,
          handle: float = HOUR, rules: tuple[SlotRule, ...] = RULES) -> list[tuple[str, int]]:
    return [(f"{s.wall(s.at):%a %d %H:%M}-{s.wall(s.ends):%H:%M}", s.capacity)
            for s in candidate_slots(rules, calendar, now, handle_time=handle,
                                     lead=timedelta(seconds=lead), days=days)]


def test_slots_follow_the_calendar_skipping_weekends_and_a_moveable_feast() -> None:
    # Thursday 2027-03-25, 09:00. Easter Monday 2027 is 29 March: no slots that day.
    now = datetime(2027, 3, 25, 9, 0, tzinfo=WARSAW)
    assert slots(now, days=4) == [
        ("Thu 25 10:00-12:00", 4), ("Thu 25 18:00-20:00", 2),
        ("Fri 26 10:00-12:00", 4), ("Fri 26 18:00-20:00", 2)]


def test_a_slot_under_way_is_offered_from_now_plus_the_lead_with_the_capacity_left() -> None:
    now = datetime(2026, 12, 3, 10, 30, tzinfo=WARSAW)
    got = list(candidate_slots(RULES, DESK, now, handle_time=HOUR, lead=timedelta(minutes=15),
                               days=0))
    assert [(s.wall(s.begins).hour, f"{s.wall(s.at):%H:%M}", s.capacity) for s in got] == [
        (10, "10:45", 2), (18, "18:00", 2)]
    # Too little of it left for a promise (5 minutes at least): not offered.
    late = datetime(2026, 12, 3, 11, 50, tzinfo=WARSAW)
    assert slots(late, days=0, lead=0) == [("Thu 03 18:00-20:00", 2)]


def test_24_december_is_closed_from_2025_and_an_early_closing_shortens_a_slot() -> None:
    eve = datetime(2026, 12, 23, 21, 0, tzinfo=WARSAW)  # Wednesday evening
    assert [s for s, _ in slots(eve, days=2)] == []  # 24th Wigilia, 25th Christmas
    early = override_for(WARSAW, Kind.CLOSED, start=datetime(2026, 12, 31, 19),
                         note="New Year's Eve")
    closed = DESK.with_overrides([early])
    now = datetime(2026, 12, 31, 9, 0, tzinfo=WARSAW)
    assert slots(now, closed, days=0) == [("Thu 31 10:00-12:00", 4), ("Thu 31 18:00-19:00", 1)]


def test_capacity_counts_the_callbacks_already_booked_into_each_slot() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=WARSAW)
    cands = list(candidate_slots(RULES, DESK, now, handle_time=HOUR,
                                 lead=timedelta(minutes=15), days=7))
    evening = datetime(2026, 12, 3, 18, 0, tzinfo=WARSAW)
    full = [evening, evening + timedelta(minutes=30)]  # capacity 2: full
    got = free_slots(cands, full, 3)
    assert [f"{s.wall(s.at):%d %H:%M}" for s in got] == ["03 10:00", "04 10:00", "04 18:00"]
    # A booking outside the slot (19:59:59 is inside, 20:00 is not) counts only where it is.
    got = free_slots(cands, [evening, datetime(2026, 12, 3, 20, 0, tzinfo=WARSAW)], 2)
    assert [f"{s.wall(s.at):%d %H:%M}" for s in got] == ["03 10:00", "03 18:00"]


def test_slots_across_the_autumn_fall_back_night_keep_the_wall_clock() -> None:
    night = Calendar(name="n", tz=WARSAW, week={d: (Window(0, 24 * 60),) for d in range(7)})
    rules = (SlotRule(Window(2 * 60, 4 * 60), 1),)
    now = datetime(2026, 10, 24, 12, 0, tzinfo=WARSAW)  # the clocks go back on the 25th
    (slot,) = list(candidate_slots(rules, night, now, handle_time=HOUR, lead=timedelta(0),
                                   days=1))
    at, ends = slot.wall(slot.at), slot.wall(slot.ends)
    assert (slot.day, at.date(), f"{at:%H:%M}", f"{ends:%H:%M}") == (
        1, date(2026, 10, 25), "02:00", "04:00")
    # 02:00-04:00 that night lasts three hours (02:00-03:00 twice): three calls fit.
    assert slot.ends - slot.at == timedelta(hours=3) and slot.capacity == 3


def test_bad_rules_are_named() -> None:
    assert slot_problem(RULES) is None
    assert "overlap" in (slot_problem((SlotRule(Window(600, 720), 1),
                                       SlotRule(Window(700, 800), 1))) or "")
    assert "5 minutes to 8 hours" in (slot_problem((SlotRule(Window(0, 600), 1),)) or "")
