"""`nohold hours` and `nohold hours override` against a real SQLite database, no Asterisk."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from nohold.cli import main

WAW = ZoneInfo("Europe/Warsaw")
# Far enough ahead that the overrides added here are never over when the tests run.
YEAR = datetime.now(UTC).year + 2
CALENDARS = """
[calendar.office]
mon = ["10:00-17:00"]
tue = ["10:00-17:00"]
wed = ["10:00-17:00"]
thu = ["10:00-17:00"]
fri = ["10:00-17:00"]
closed = [{ day = "YEAR-01-07", note = "Staff training" }]

[calendar.callbacks]
mon = ["10:00-20:00"]
tue = ["10:00-20:00"]
wed = ["10:00-20:00"]
thu = ["10:00-20:00"]
fri = ["10:00-20:00"]
""".replace("YEAR", str(YEAR))


def nohold(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/nohold.db"\n{CALENDARS}')
    assert nohold(path, "db", "upgrade").exit_code == 0
    return path


def weekday(week: int, day: int, hour: int) -> str:
    """ISO local time: `day` (0 = Monday) of the `week`-th full week of February YEAR."""
    first_monday = datetime(YEAR, 2, 1) + timedelta(days=(7 - datetime(YEAR, 2, 1).weekday()) % 7)
    return (first_monday + timedelta(weeks=week, days=day, hours=hour)).isoformat()


def as_json(config, *args) -> dict:
    result = nohold(config, "hours", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_open_closed_and_the_next_change_as_json(config):
    assert as_json(config, "--at", weekday(0, 0, 12)) == {
        "open": True, "reason": "open",
        "next_change": datetime.fromisoformat(weekday(0, 0, 17)).replace(
            tzinfo=WAW).isoformat()}
    friday_evening = as_json(config, "--at", weekday(0, 4, 18))
    assert friday_evening["open"] is False and friday_evening["reason"] == "outside hours"
    assert friday_evening["next_change"] == datetime.fromisoformat(weekday(1, 0, 10)).replace(
        tzinfo=WAW).isoformat()
    assert as_json(config, "--at", weekday(0, 5, 12))["reason"] == "weekend"
    eve = as_json(config, "--at", f"{YEAR}-12-24T12:00")
    assert eve["reason"] == "holiday: Wigilia Bożego Narodzenia" and not eve["open"]
    training = as_json(config, "--at", f"{YEAR}-01-07T12:00")
    assert training["reason"] == "override: Staff training"
    # An instant with its offset is taken as it is: 16:00Z is 17:00 in Warsaw, closed.
    assert as_json(config, "--at", weekday(0, 0, 16) + "Z")["reason"] == "outside hours"


def test_a_named_calendar_and_the_text_answer(config):
    assert as_json(config, "--calendar", "callbacks", "--at", weekday(0, 0, 19))["open"]
    result = nohold(config, "hours", "--at", weekday(0, 0, 19))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "closed: outside hours"
    assert lines[1].startswith("calendar office (Europe/Warsaw, holidays PL) at ")
    assert re.fullmatch(r"next change: opens \d{4}-\d\d-\d\dT10:00\+01:00", lines[2])


def test_overrides_added_listed_and_removed_change_the_answer(config):
    monday = weekday(2, 0, 0)[:10]
    assert as_json(config, "--at", f"{monday}T12:00")["open"]
    added = nohold(config, "hours", "override", "add", "--day", monday, "--note", "Awaria")
    assert added.exit_code == 0, added.output
    override_id = int(re.search(r"added override (\d+):", added.output)[1])
    assert as_json(config, "--at", f"{monday}T12:00")["reason"] == "override: Awaria"
    # The callback desk is another calendar: untouched.
    assert as_json(config, "--calendar", "callbacks", "--at", f"{monday}T12:00")["open"]

    saturday = weekday(2, 5, 0)[:10]
    opened = nohold(config, "hours", "override", "add", "--open", "--calendar", "callbacks",
                    "--day", saturday, "--hours", "10:00-14:00",
                    "--until", f"{saturday}T23:00")
    assert opened.exit_code == 0, opened.output
    assert as_json(config, "--calendar", "callbacks", "--at", f"{saturday}T11:00")["open"]
    listed = nohold(config, "hours", "override", "list")
    assert listed.exit_code == 0
    rows = listed.output.splitlines()
    assert len(rows) == 3
    assert rows[0].split()[:3] == ["config", "office", "closed"] and "Staff training" in rows[0]
    assert rows[1].split()[:3] == [str(override_id), "office", "closed"]
    assert f"{monday}T00:00+01:00 to" in rows[1] and rows[1].endswith("Awaria")
    assert rows[2].split()[1:3] == ["callbacks", "open"]
    assert f"expires {saturday}T23:00+01:00" in rows[2]
    only = nohold(config, "hours", "override", "list", "--calendar", "callbacks").output
    assert len(only.splitlines()) == 1

    removed = nohold(config, "hours", "override", "remove", str(override_id))
    assert removed.exit_code == 0 and f"removed override {override_id}" in removed.output
    assert as_json(config, "--at", f"{monday}T12:00")["open"]
    again = nohold(config, "hours", "override", "remove", str(override_id))
    assert again.exit_code == 1 and f"no override {override_id}" in again.output


def test_expired_overrides_are_ignored_and_listed_only_with_all(config):
    today = datetime.now(WAW).date()
    # Closed all of today, but expired a minute ago: already gone.
    past = (datetime.now(WAW) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    refused = nohold(config, "hours", "override", "add", "--day", today.isoformat(),
                     "--until", past)
    assert refused.exit_code == 2 and "expires before now" in refused.output
    soon = (datetime.now(WAW) + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M")
    assert nohold(config, "hours", "override", "add", "--day", today.isoformat(),
                  "--until", soon).exit_code == 0
    assert len(nohold(config, "hours", "override", "list").output.splitlines()) == 2
    later = (datetime.now(WAW) + timedelta(minutes=10)).isoformat(timespec="minutes")
    assert as_json(config, "--at", later)["reason"] != "override"


@pytest.mark.parametrize("args, words", [
    (["hours", "--calendar", "dialler"],
     ["Invalid value for '--calendar'", "no calendar 'dialler'", "office, callbacks"]),
    (["hours", "--at", "tomorrow"], ["Invalid value for '--at'", "'tomorrow'", "2026-12-31T13:00"]),
    (["hours", "--at", "2026-02-30T10:00"], ["Invalid value for '--at'"]),
    (["hours", "override", "add"], ["either --day", "--from"]),
    (["hours", "override", "add", "--day", "2030-01-01", "--from", "2030-01-01T10:00"],
     ["either --day"]),
    (["hours", "override", "add", "--day", "01/02/2030"], ["'--day'", "2026-12-24"]),
    (["hours", "override", "add", "--day", "2030-01-02", "--hours", "9-17"], ["'--hours'"]),
    (["hours", "override", "add", "--day", "2030-01-02", "--hours", "17:00-09:00"],
     ["'--hours'", "ends before it starts"]),
    (["hours", "override", "add", "--from", "2030-01-02T10:00", "--hours", "10:00-11:00"],
     ["--hours goes with --day"]),
    (["hours", "override", "add", "--to", "2030-01-02T10:00", "--day", "2030-01-02"],
     ["--to needs --from"]),
    (["hours", "override", "add", "--from", "2030-01-02T10:00", "--to", "2030-01-02T09:00"],
     ["ends before it starts"]),
    (["hours", "override", "add", "--open", "--day", "2030-01-05"], ["needs its hours"]),
    (["hours", "override", "add", "--day", "2000-01-03"], ["ends before now"]),
    (["hours", "override", "add", "--day", "2030-01-02", "--note", "a\nb"], ["'--note'"]),
    (["hours", "override", "add", "--calendar", "nope", "--day", "2030-01-02"],
     ["no calendar 'nope'"]),
    (["hours", "override", "list", "--calendar", "nope"], ["no calendar 'nope'"]),
    (["hours", "override", "remove", "x"], ["'x' is not a valid integer"]),
    (["hours", "--json", "override", "list"], ["go after `hours override`"]),
])
def test_bad_input_is_a_usage_error_not_a_traceback(config, args, words):
    result = nohold(config, *args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in result.output


def test_a_database_without_the_table_says_to_upgrade(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/empty.db"\n')
    for args in (["hours"], ["hours", "override", "list"]):
        result = nohold(path, *args)
        assert result.exit_code == 1, result.output
        assert "schema is at nothing, nohold needs" in result.output
        assert "nohold db upgrade" in result.output


def test_a_bad_calendar_config_is_one_line(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text('[calendar.office]\nmon = ["17:00-10:00"]\n')
    result = nohold(path, "hours")
    assert result.exit_code == 1
    assert "configuration: calendar.office.mon[0] = '17:00-10:00'" in result.output
