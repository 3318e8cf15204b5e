"""[calendar]: named calendars validated once at start, errors naming the key, the bad
value and what is allowed; the shipped example is the small ISP's calendar."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nohold.calendar.settings import CalendarSettings, public_holidays
from nohold.config import ConfigError
from nohold.decisions.hours import Kind, Window
from nohold.registry import load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
WAW = ZoneInfo("Europe/Warsaw")
OFFICE_HOURS = {d: (Window(600, 1020),) for d in range(5)}


def parsed(calendar: dict) -> CalendarSettings:
    return parse_settings({"calendar": calendar}).section(CalendarSettings)


def test_the_default_is_the_small_isps_office():
    cals = parse_settings({}).section(CalendarSettings)
    assert cals.default == "office" and cals.names == ("office",)
    office = cals.spec()
    assert (office.timezone, office.country, office.week) == ("Europe/Warsaw", "PL",
                                                              OFFICE_HOURS)
    status = office.calendar().is_open(datetime(2026, 12, 24, 12, tzinfo=WAW))
    assert status.reason == "holiday: Wigilia Bożego Narodzenia"


def test_the_example_file_ships_the_same_calendar():
    cals = load_settings(ROOT / "config" / "nohold.example.toml", env={}).section(
        CalendarSettings)
    assert cals.names == ("office",)
    office = cals.spec("office")
    assert (office.timezone, office.country, office.week, office.overrides) == (
        "Europe/Warsaw", "PL", OFFICE_HOURS, ())


def test_named_calendars_inherit_the_zone_and_holidays_and_keep_their_own_hours():
    cals = parsed({
        "timezone": "Europe/Warsaw", "country": "PL",
        "office": {"mon": ["10:00-17:00"], "tue": ["08:00-12:00", "13:00-17:00"]},
        "callbacks": {"mon": ["10:00-20:00"], "sat": []},
        "london": {"timezone": "Europe/London", "country": "GB", "language": "en_GB",
                   "fri": ["09:00-17:30"]},
    })
    assert cals.names == ("office", "callbacks", "london")
    assert cals.spec("callbacks").week == {0: (Window(600, 1200),)}
    assert cals.spec("office").week[1] == (Window(480, 720), Window(780, 1020))
    assert cals.spec("callbacks").timezone == "Europe/Warsaw"
    callbacks = cals.spec("callbacks").calendar()
    monday_evening = datetime(2026, 1, 5, 19, 0, tzinfo=WAW)
    assert callbacks.is_open(monday_evening).open
    assert not cals.spec("office").calendar().is_open(monday_evening).open
    london = cals.spec("london").calendar()
    boxing_day = datetime(2025, 12, 26, 12, tzinfo=ZoneInfo("Europe/London"))
    assert london.is_open(boxing_day).reason == "holiday: Boxing Day"
    with pytest.raises(KeyError, match="no calendar 'nope': the configured ones are office, "
                                       "callbacks, london"):
        cals.spec("nope")


def test_holiday_names_do_not_follow_the_process_locale(monkeypatch):
    public_holidays.cache_clear()
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LANGUAGE", "en")
    try:
        lookup = public_holidays("PL")
        assert callable(lookup) and lookup(date(2026, 4, 6)) == "Poniedziałek Wielkanocny"
        assert public_holidays("PL", "", "en_US")(date(2026, 4, 6)) == "Easter Monday"
    finally:
        public_holidays.cache_clear()


def test_no_country_means_no_public_holidays():
    cals = parsed({"country": "", "office": {"wed": ["10:00-17:00"]}})
    assert cals.spec().calendar().is_open(datetime(2025, 12, 24, 12, tzinfo=WAW)).open


def test_overrides_from_the_config_become_instants_in_the_calendars_zone():
    cals = parsed({"office": {
        "mon": ["10:00-17:00"],
        "closed": [{"from": datetime(2026, 12, 31, 13, 0), "note": "New Year's Eve"},
                   {"day": "2027-01-07", "until": "2027-01-07T12:00"}],
        "open": [{"day": date(2027, 1, 9), "hours": "10:00-14:00"}],
    }})
    opened, eve, training = cals.spec().overrides
    assert opened.kind is Kind.OPEN
    assert opened.start == datetime(2027, 1, 9, 10, tzinfo=WAW)
    assert (eve.start, eve.end, eve.note) == (datetime(2026, 12, 31, 13, tzinfo=WAW),
                                              datetime(2027, 1, 1, tzinfo=WAW),
                                              "New Year's Eve")
    assert training.expires == datetime(2027, 1, 7, 12, tzinfo=WAW)
    assert eve.source == "config"


@pytest.mark.parametrize("calendar, words", [
    ({"office": {"mon": ["10:00-25:00"]}},
     ["calendar.office.mon[0] = '10:00-25:00'", "hours are 00-23"]),
    ({"office": {"mon": ["17:00-10:00"]}},
     ["calendar.office.mon[0] = '17:00-10:00'", "ends before it starts"]),
    ({"office": {"mon": ["10-17"]}}, ["calendar.office.mon[0]", "HH:MM-HH:MM"]),
    ({"office": {"mon": ["10:00-13:00", "12:00-17:00"]}},
     ["calendar.office.mon = ['10:00-13:00', '12:00-17:00']", "overlap"]),
    ({"office": {"mon": "10:00-17:00"}}, ["calendar.office.mon = '10:00-17:00'", "list"]),
    ({"office": {"mon": [1000]}}, ["calendar.office.mon[0] = 1000", "HH:MM-HH:MM"]),
    ({"office": {"monday": ["10:00-17:00"]}},
     ["unknown key calendar.office.monday", "mon", "sun"]),
    ({"office": {}}, ["[calendar.office] has no opening hours"]),
    ({"timezone": "Europe/Warsw"}, ["calendar.timezone = 'Europe/Warsw'",
                                    "not a time zone", "Europe/Warsaw"]),
    ({"timezone": "../../etc/passwd"}, ["calendar.timezone", "not a time zone"]),
    ({"office": {"timezone": "Mars/Olympus", "mon": ["10:00-17:00"]}},
     ["calendar.office.timezone = 'Mars/Olympus'"]),
    ({"country": "Poland"}, ["calendar.country = 'Poland'", "two-letter"]),
    ({"country": "XX"}, ["calendar.country = 'XX'", "not available"]),
    ({"subdivision": "99"}, ["subdivision = '99'"]),
    ({"language": "tlh"}, ["language = 'tlh'", "pl"]),
    ({"default": "desk"}, ["calendar.default = 'desk'", "no [calendar.desk]"]),
    ({"default": "Desk!"}, ["calendar.default = 'Desk!'", "a calendar name"]),
    ({"Office": {"mon": ["10:00-17:00"]}}, ["'Office' is not a calendar name"]),
    ({"tz": "Europe/Warsaw"}, ["unknown key calendar.tz", "timezone"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": [{"day": "2026-13-01"}]}},
     ["calendar.office.closed[0].day = '2026-13-01'", "a date"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": [{"from": "2026-12-31"}]}},
     ["calendar.office.closed[0].from = '2026-12-31'", "a date and time"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": [{"note": "x"}]}},
     ["calendar.office.closed[0]", "either a day or a start"]),
    ({"office": {"mon": ["10:00-17:00"], "open": [{"day": "2027-01-09"}]}},
     ["calendar.office.open[0]", "needs its hours"]),
    ({"office": {"mon": ["10:00-17:00"], "open": [{"day": "2027-01-09", "hours": "9-14"}]}},
     ["calendar.office.open[0].hours = '9-14'"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": [{"day": "2027-01-09", "why": "x"}]}},
     ["unknown key calendar.office.closed[0].why", "note"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": ["2027-01-09"]}},
     ["calendar.office.closed[0] must be a table"]),
    ({"office": {"mon": ["10:00-17:00"], "closed": [{"day": "2027-01-09", "note": "a\nb"}]}},
     ["calendar.office.closed[0].note"]),
    ({"office": {"mon": ["10:00-17:00"],
                 "closed": [{"from": "2026-12-31T13:00", "to": "2026-12-31T12:00"}]}},
     ["calendar.office.closed[0]", "ends before it starts"]),
])
def test_bad_calendars_name_the_key_the_value_and_what_is_allowed(calendar, words):
    with pytest.raises(ConfigError) as err:
        parsed(calendar)
    for word in words:
        assert word in str(err.value)


async def test_check_names_each_calendar_its_zone_and_the_holidays_release():
    import holidays as package

    from nohold.calendar.feature import check_calendar

    line = await check_calendar(parse_settings({"calendar": {
        "office": {"mon": ["10:00-17:00"]},
        "desk": {"country": "", "timezone": "UTC", "mon": ["10:00-20:00"]}}}))
    assert line == ("calendar: ok (default office; office (Europe/Warsaw, holidays PL), "
                    f"desk (UTC, no public holidays); holidays package {package.__version__})")
