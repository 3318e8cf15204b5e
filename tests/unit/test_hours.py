"""The business calendar (nohold.decisions.hours) over Polish dates: weekdays, moveable
feasts, 24 December before and after 2025, overrides with expiry, DST nights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from nohold.decisions.hours import (
    Calendar,
    Kind,
    NaiveDatetime,
    NoOpening,
    Override,
    Why,
    Window,
    ascii_label,
    check_day,
    local_instant,
    override_for,
    parse_window,
    wall_range,
)

WAW = ZoneInfo("Europe/Warsaw")
PL = holidays.country_holidays("PL", language="pl")
OFFICE = {day: (parse_window("10:00-17:00"),) for day in range(5)}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=WAW)


def office(*overrides: Override, holidays_=PL.get) -> Calendar:
    return Calendar("office", OFFICE, WAW, holidays_, overrides)


# -- weekdays ---------------------------------------------------------------------------

def test_a_weekday_is_open_inside_its_hours_and_says_when_it_closes():
    s = office().is_open(at(2026, 1, 7, 12, 0))  # Wednesday
    assert (s.open, s.why, s.reason) == (True, Why.OPEN, "open")
    assert s.next_change == at(2026, 1, 7, 17, 0)
    assert s.next_change.tzinfo is UTC  # instants come back in UTC


@pytest.mark.parametrize("when, opens", [
    (at(2026, 1, 7, 9, 59), at(2026, 1, 7, 10, 0)),
    (at(2026, 1, 7, 17, 0), at(2026, 1, 8, 10, 0)),  # the end is not inside
    (at(2026, 1, 7, 23, 30), at(2026, 1, 8, 10, 0)),
])
def test_outside_hours_says_so_and_when_it_opens(when, opens):
    s = office().is_open(when)
    assert (s.open, s.reason, s.next_change) == (False, "outside hours", opens)


def test_the_weekend_is_closed_until_monday_morning():
    s = office().is_open(at(2026, 1, 9, 17, 30))  # Friday evening
    assert s.reason == "outside hours" and s.next_change == at(2026, 1, 12, 10, 0)
    for when in (at(2026, 1, 10, 12, 0), at(2026, 1, 11, 23, 59)):
        s = office().is_open(when)
        assert (s.open, s.why, s.reason) == (False, Why.WEEKEND, "weekend")
        assert s.next_change == at(2026, 1, 12, 10, 0)


def test_a_weekday_without_hours_is_a_day_off_not_a_weekend():
    cal = Calendar("shop", {0: (Window(600, 1020),), 2: (Window(600, 1020),)}, WAW)
    s = cal.is_open(at(2026, 1, 6, 12, 0))  # Tuesday
    assert (s.why, s.reason, s.next_change) == (Why.DAY_OFF, "day off", at(2026, 1, 7, 10, 0))


def test_several_windows_a_day():
    cal = Calendar("split", {0: check_day([parse_window("13:00-17:00"),
                                           parse_window("08:00-12:00")])}, WAW)
    assert cal.is_open(at(2026, 1, 5, 12, 30)).next_change == at(2026, 1, 5, 13, 0)
    assert list(cal.open_intervals(at(2026, 1, 5), at(2026, 1, 6))) == [
        (at(2026, 1, 5, 8), at(2026, 1, 5, 12)), (at(2026, 1, 5, 13), at(2026, 1, 5, 17))]


# -- public holidays ------------------------------------------------------------------------

def test_christmas_eve_is_a_polish_public_holiday_from_2025_not_before():
    assert PL.get(date(2025, 12, 24)) == "Wigilia Bożego Narodzenia"  # holidays >= 0.64
    for year in (2025, 2026):
        s = office().is_open(at(year, 12, 24, 12, 0))
        assert (s.open, s.why, s.reason) == (
            False, Why.HOLIDAY, "holiday: Wigilia Bożego Narodzenia")
    assert office().is_open(at(2024, 12, 24, 12, 0)).open  # a Tuesday, a working day then


@pytest.mark.parametrize("day, name", [
    (date(2026, 4, 6), "Poniedziałek Wielkanocny"),   # Easter Monday 2026
    (date(2027, 3, 29), "Poniedziałek Wielkanocny"),  # Easter Monday 2027
    (date(2026, 6, 4), "Dzień Bożego Ciała"),         # Corpus Christi 2026
    (date(2027, 5, 27), "Dzień Bożego Ciała"),        # Corpus Christi 2027
    (date(2026, 11, 11), "Narodowe Święto Niepodległości"),
])
def test_moveable_feasts_and_fixed_holidays_close_a_weekday(day, name):
    assert day.weekday() < 5
    s = office().is_open(datetime(day.year, day.month, day.day, 12, tzinfo=WAW))
    assert (s.open, s.detail, s.reason) == (False, name, f"holiday: {name}")
    assert not office().is_working_day(day)


def test_the_next_change_skips_christmas_and_the_weekend():
    s = office().is_open(at(2025, 12, 23, 17, 30))  # Tuesday after hours
    assert s.next_change == at(2025, 12, 29, 10, 0)  # 24, 25, 26 holidays, 27-28 weekend
    s = office().is_open(at(2026, 12, 23, 18, 0))  # Wednesday; 24-25 Thu-Fri holidays
    assert (s.reason, s.next_change) == ("outside hours", at(2026, 12, 28, 10, 0))
    assert office().next_opening(at(2026, 12, 24, 0, 0)) == at(2026, 12, 28, 10, 0)


def test_the_nth_working_day_skips_weekends_and_holidays():
    cal = office()
    assert cal.nth_working_day_after(date(2025, 12, 22), 1) == date(2025, 12, 23)
    assert cal.nth_working_day_after(date(2025, 12, 22), 2) == date(2025, 12, 29)
    assert cal.nth_working_day_after(date(2025, 12, 22), 3) == date(2025, 12, 30)
    assert cal.nth_working_day_after(date(2025, 12, 31), 1) == date(2026, 1, 2)
    assert cal.nth_working_day_after(date(2026, 12, 23), 1) == date(2026, 12, 28)
    # Easter 2027: Friday 26 March, then Easter Monday 29 March.
    assert cal.nth_working_day_after(date(2027, 3, 26), 1) == date(2027, 3, 30)
    with pytest.raises(ValueError, match="count from 1"):
        cal.nth_working_day_after(date(2026, 1, 1), 0)


def test_a_holiday_lookup_may_be_a_mapping_or_a_function():
    day = date(2026, 1, 7)
    as_map = office(holidays_={day: "Company day"})
    as_fn = office(holidays_=lambda d: "Company day" if d == day else None)
    for cal in (as_map, as_fn):
        assert cal.is_open(at(2026, 1, 7, 12)).reason == "holiday: Company day"
        assert cal.is_open(at(2026, 1, 8, 12)).open


# -- overrides ------------------------------------------------------------------------------

def test_closed_from_an_hour_to_the_end_of_the_day():
    eve = override_for(WAW, "closed", start=datetime(2026, 12, 31, 13, 0),
                       note="New Year's Eve")
    assert (eve.start, eve.end) == (at(2026, 12, 31, 13), at(2027, 1, 1))
    cal = office(eve)
    s = cal.is_open(at(2026, 12, 31, 12, 0))
    assert s.open and s.next_change == at(2026, 12, 31, 13, 0)
    s = cal.is_open(at(2026, 12, 31, 14, 0))
    assert (s.open, s.why, s.reason) == (False, Why.OVERRIDE, "override: New Year's Eve")
    assert s.next_change == at(2027, 1, 4, 10, 0)  # 1 Jan holiday, then the weekend
    assert cal.is_working_day(date(2026, 12, 31))


def test_an_extra_open_saturday_and_an_open_holiday():
    saturday = override_for(WAW, Kind.OPEN, day=date(2027, 1, 9),
                            window=parse_window("10:00-14:00"), note="stocktaking")
    eve = override_for(WAW, "open", day=date(2026, 12, 24), window=parse_window("10:00-13:00"))
    cal = office(saturday, eve)
    s = cal.is_open(at(2027, 1, 9, 11, 0))
    assert (s.open, s.reason, s.next_change) == (True, "override: stocktaking",
                                                 at(2027, 1, 9, 14, 0))
    assert cal.is_open(at(2027, 1, 9, 15, 0)).reason == "weekend"
    assert cal.is_open(at(2026, 12, 24, 12, 0)).open
    assert cal.is_open(at(2026, 12, 24, 13, 30)).reason == "holiday: Wigilia Bożego Narodzenia"
    assert cal.nth_working_day_after(date(2027, 1, 8), 1) == date(2027, 1, 9)
    with pytest.raises(ValueError, match="needs its hours"):
        override_for(WAW, "open", day=date(2027, 1, 9))


def test_closed_wins_over_open():
    opened = override_for(WAW, "open", day=date(2027, 1, 9), window=parse_window("10:00-14:00"))
    closed = override_for(WAW, "closed", day=date(2027, 1, 9), window=parse_window("12:00-13:00"),
                          note="fire drill")
    cal = office(opened, closed)
    assert cal.is_open(at(2027, 1, 9, 12, 30)).reason == "override: fire drill"
    assert list(cal.open_intervals(at(2027, 1, 9), at(2027, 1, 10))) == [
        (at(2027, 1, 9, 10), at(2027, 1, 9, 12)), (at(2027, 1, 9, 13), at(2027, 1, 9, 14))]


def test_an_override_stops_at_its_expiry():
    # Closed all of Thursday 8 January, but the override expires at 12:00 that day.
    closed = override_for(WAW, "closed", day=date(2026, 1, 8), note="move",
                          expires=datetime(2026, 1, 8, 12, 0))
    cal = office(closed)
    s = cal.is_open(at(2026, 1, 8, 11, 0))
    assert (s.open, s.reason, s.next_change) == (False, "override: move", at(2026, 1, 8, 12, 0))
    assert cal.is_open(at(2026, 1, 8, 12, 0)).open
    assert cal.is_open(at(2026, 1, 8, 18, 0)).reason == "outside hours"  # not "override"
    assert not closed.expired(at(2026, 1, 8, 11, 59)) and closed.expired(at(2026, 1, 8, 12))
    # Merged at a `now` past the expiry, the override is gone altogether.
    merged = office().with_overrides([closed], now=at(2026, 1, 8, 12, 0))
    assert merged.overrides == () and merged.is_open(at(2026, 1, 8, 10, 30)).open
    assert office().with_overrides([closed], now=at(2026, 1, 8, 11)).overrides == (closed,)


def test_override_words_are_checked():
    with pytest.raises(ValueError, match="either a day or a start"):
        override_for(WAW, "closed")
    with pytest.raises(ValueError, match="either a day or a start"):
        override_for(WAW, "closed", day=date(2026, 1, 1), start=datetime(2026, 1, 1, 10))
    with pytest.raises(ValueError, match="hours go with a day"):
        override_for(WAW, "closed", start=datetime(2026, 1, 1, 10), window=Window(0, 60))
    with pytest.raises(ValueError, match="ends before it starts"):
        override_for(WAW, "closed", start=datetime(2026, 1, 2, 10), end=datetime(2026, 1, 1))


def test_a_long_closure_beyond_the_horizon_has_no_next_opening():
    closed = Override(Kind.CLOSED, at(2026, 1, 1), at(2028, 1, 1), "renovation")
    cal = office(closed)
    s = cal.is_open(at(2026, 1, 7, 12))
    assert (s.open, s.reason, s.next_change) == (False, "override: renovation", None)
    with pytest.raises(NoOpening):
        cal.next_opening(at(2026, 1, 7, 12))


def test_open_around_the_clock_has_no_next_change():
    cal = Calendar("always", {d: (Window(0, 1440),) for d in range(7)}, WAW)
    s = cal.is_open(at(2026, 1, 7, 3, 0))
    assert s.open and s.next_change is None
    assert list(cal.open_intervals(at(2026, 1, 7), at(2026, 1, 9))) == [
        (at(2026, 1, 7), at(2026, 1, 9))]


# -- open intervals -------------------------------------------------------------------------

def test_open_intervals_join_across_midnight_and_clip_to_the_range():
    late = Calendar("late", {4: (parse_window("22:00-24:00"),),
                             5: (parse_window("00:00-02:00"), parse_window("10:00-11:00"))},
                    WAW)
    assert list(late.open_intervals(at(2026, 1, 9, 23), at(2026, 1, 10, 10, 30))) == [
        (at(2026, 1, 9, 23), at(2026, 1, 10, 2)), (at(2026, 1, 10, 10), at(2026, 1, 10, 10, 30))]
    s = late.is_open(at(2026, 1, 9, 23, 0))
    assert s.open and s.next_change == at(2026, 1, 10, 2, 0)
    assert list(late.open_intervals(at(2026, 1, 10), at(2026, 1, 10))) == []


def test_a_week_of_office_hours_with_epiphany():
    found = list(office().open_intervals(at(2026, 1, 5), at(2026, 1, 12)))
    # Tuesday 6 January is Epiphany (Święto Trzech Króli).
    assert found == [(at(2026, 1, d, 10), at(2026, 1, d, 17)) for d in (5, 7, 8, 9)]


# -- daylight saving ------------------------------------------------------------------------
# Europe/Warsaw: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.

SPRING, FALL = date(2026, 3, 29), date(2026, 10, 25)  # both Sundays (weekday 6)
H = timedelta(hours=1)


def test_spring_forward_a_window_from_0230_opens_at_0300():
    cal = Calendar("night", {6: (parse_window("02:30-04:00"),)}, WAW)
    s = cal.is_open(at(2026, 3, 29, 1, 30))
    assert not s.open and s.next_change == at(2026, 3, 29, 3, 0)
    assert s.next_change == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert cal.is_open(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)).open  # 03:30 CEST
    [(start, end)] = cal.open_intervals(at(2026, 3, 29), at(2026, 3, 30))
    assert end - start == H  # 03:00 to 04:00 CEST
    # A callback "at 02:30" that night: the first instant the clock reads 02:30 or later.
    assert local_instant(WAW, datetime(2026, 3, 29, 2, 30)) == at(2026, 3, 29, 3, 0)


def test_spring_forward_a_window_inside_the_gap_does_not_happen():
    cal = Calendar("gap", {6: (parse_window("02:15-02:45"), parse_window("10:00-11:00"))}, WAW)
    assert list(cal.open_intervals(at(2026, 3, 29), at(2026, 3, 30))) == [
        (at(2026, 3, 29, 10), at(2026, 3, 29, 11))]
    assert wall_range(WAW, datetime(2026, 3, 29, 2, 15), datetime(2026, 3, 29, 2, 45)) == []


def test_spring_forward_a_window_across_the_night_is_an_hour_shorter():
    cal = Calendar("night", {6: (parse_window("00:00-06:00"),)}, WAW)
    [(start, end)] = cal.open_intervals(at(2026, 3, 29), at(2026, 3, 30))
    assert (start, end - start) == (at(2026, 3, 29, 0), 5 * H)
    assert cal.is_open(at(2026, 3, 29, 1, 59)).next_change == at(2026, 3, 29, 6, 0)


def test_fall_back_a_window_across_the_repeated_hour_lasts_its_wall_length_plus_one():
    cal = Calendar("night", {6: (parse_window("01:00-04:00"),)}, WAW)
    [(start, end)] = cal.open_intervals(at(2026, 10, 25), at(2026, 10, 26))
    assert start == datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    assert end == datetime(2026, 10, 25, 3, 0, tzinfo=UTC)  # 04:00 CET
    assert end - start == 4 * H
    assert wall_range(WAW, datetime(2026, 10, 25, 1), datetime(2026, 10, 25, 4)) == [(start, end)]
    second_0230 = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=WAW)  # CET, 01:30 UTC
    s = cal.is_open(second_0230)
    assert s.open and s.next_change == end


def test_fall_back_a_window_inside_the_repeated_hour_happens_twice():
    cal = Calendar("night", {6: (parse_window("02:15-02:45"),)}, WAW)
    first, second = cal.open_intervals(at(2026, 10, 25), at(2026, 10, 26))
    assert first == (datetime(2026, 10, 25, 0, 15, tzinfo=UTC),
                     datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # CEST
    assert second == (datetime(2026, 10, 25, 1, 15, tzinfo=UTC),
                      datetime(2026, 10, 25, 1, 45, tzinfo=UTC))  # CET
    between = datetime(2026, 10, 25, 2, 50, tzinfo=WAW)  # fold=0: CEST, before the repeat
    s = cal.is_open(between)
    assert not s.open and s.next_change == second[0]
    # A local time in the repeated hour is read as its first (summer-time) occurrence.
    assert local_instant(WAW, datetime(2026, 10, 25, 2, 30)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC)


def test_fall_back_an_override_to_the_end_of_the_day_lasts_25_hours():
    closed = override_for(WAW, "closed", day=FALL)
    assert closed.end - closed.start == 25 * H
    assert override_for(WAW, "closed", day=SPRING).end - override_for(
        WAW, "closed", day=SPRING).start == 23 * H


# -- input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda c: c.is_open(datetime(2026, 1, 7, 12)),
    lambda c: c.next_opening(datetime(2026, 1, 7, 12)),
    lambda c: list(c.open_intervals(datetime(2026, 1, 7), at(2026, 1, 8))),
    lambda c: Override(Kind.CLOSED, datetime(2026, 1, 7), at(2026, 1, 8)),
])
def test_naive_datetimes_are_refused(call):
    with pytest.raises(NaiveDatetime, match="has no time zone"):
        call(office())


@pytest.mark.parametrize("text, message", [
    ("17:00-10:00", "ends before it starts: split"),
    ("10:00-10:00", "empty"),
    ("25:00-26:00", "hours are 00-23"),
    ("10:00-24:30", "an end may be 24:00"),
    ("10-17", "HH:MM-HH:MM"),
    ("", "HH:MM-HH:MM"),
])
def test_bad_windows_say_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text)


def test_overlapping_or_touching_windows_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        check_day([parse_window("10:00-13:00"), parse_window("12:00-17:00")])
    with pytest.raises(ValueError, match="overlap or touch"):
        check_day([parse_window("10:00-13:00"), parse_window("13:00-17:00")])
    assert parse_window("08:00-24:00") == Window(480, 1440)
    assert str(Window(480, 1440)) == "08:00-24:00"


@pytest.mark.parametrize("text, safe", [
    ("Wigilia Bożego Narodzenia", "Wigilia Bozego Narodzenia"),
    ("Łódź: Święto \"x\"\nSet(EVIL=1), ${X}; a|b", "Lodz: Swieto x Set EVIL 1 X a b"),
    ("Boże Narodzenie (pierwszy dzień)", "Boze Narodzenie pierwszy dzien"),
    ("New Year's Eve 13:00-24:00", "New Years Eve 13:00-24:00"),
    ("a" * 100, "a" * 80),
    ("", ""),
])
def test_details_for_the_dialplan_are_plain_ascii(text, safe):
    assert ascii_label(text) == safe


# -- open time, for expiry counted in working hours ---------------------------------------

@pytest.mark.parametrize("start, hours, ends", [
    (at(2026, 12, 2, 12, 0), 4, at(2026, 12, 2, 16, 0)),    # inside one day
    (at(2026, 12, 4, 16, 0), 4, at(2026, 12, 7, 13, 0)),    # Friday 16:00: on Monday
    (at(2026, 12, 5, 9, 0), 1, at(2026, 12, 7, 11, 0)),     # Saturday: from Monday's opening
    (at(2026, 12, 23, 15, 0), 4, at(2026, 12, 28, 12, 0)),  # over Wigilia and Christmas
    (at(2027, 3, 26, 16, 0), 2, at(2027, 3, 30, 11, 0)),    # over Easter Monday 2027
])
def test_open_time_skips_nights_weekends_and_holidays(start, hours, ends):
    assert office().after_open_time(start, timedelta(hours=hours)) == ends


def test_open_time_honours_a_closed_override_and_a_calendar_that_never_opens():
    closed = override_for(WAW, Kind.CLOSED, day=date(2026, 12, 7), note="move")
    assert office(closed).after_open_time(at(2026, 12, 4, 16, 0), timedelta(hours=4)) == \
        at(2026, 12, 8, 13, 0)
    with pytest.raises(NoOpening):
        Calendar("never", {}, WAW).after_open_time(at(2026, 12, 4, 16, 0), timedelta(hours=1))
