"""Which SMS a caller with a callback gets, and when (nohold.decisions.callback_sms), and
the `[callbacks.sms]` section that words them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.config import ConfigError
from nohold.decisions.callback_sms import (
    Kind,
    Texts,
    Told,
    Waiting,
    due,
    key,
    render,
    template_problem,
)
from nohold.registry import parse_settings

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WINDOW = (T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=30))
BEFORE = timedelta(minutes=15)


def told(kind: Kind, start: datetime = WINDOW[0], at: datetime = T0) -> Told:
    return Told(kind, start, at)


def test_a_new_callback_is_confirmed_once():
    cb = Waiting(1, scheduled=False, window=WINDOW)
    assert due(cb, [], T0, BEFORE) == Kind.CONFIRM
    assert due(cb, [told(Kind.CONFIRM)], T0, BEFORE) is None


def test_no_window_or_a_window_over_gets_nothing():
    assert due(Waiting(1, False, None), [], T0, BEFORE) is None
    assert due(Waiting(1, False, WINDOW), [], WINDOW[1], BEFORE) is None


def test_a_moved_window_is_told_once_and_only_after_a_confirmation():
    moved = (WINDOW[0] + timedelta(days=1), WINDOW[1] + timedelta(days=1))
    cb = Waiting(1, scheduled=True, window=moved)
    assert due(cb, [told(Kind.CONFIRM)], T0, BEFORE) == Kind.MOVED
    assert due(cb, [told(Kind.CONFIRM), told(Kind.MOVED, moved[0])], T0, BEFORE) is None
    # Never told anything yet (SMS switched on later): the new window is a confirmation.
    assert due(cb, [], T0, BEFORE) == Kind.CONFIRM


def test_an_agreed_time_gets_a_reminder_ahead_of_it_once():
    cb = Waiting(1, scheduled=True, window=WINDOW)
    sent = [told(Kind.CONFIRM, at=T0)]
    remind_at = WINDOW[0] - BEFORE
    assert due(cb, sent, remind_at - timedelta(seconds=1), BEFORE) is None
    assert due(cb, sent, remind_at, BEFORE) == Kind.REMINDER
    assert due(cb, [*sent, told(Kind.REMINDER, at=remind_at)], remind_at, BEFORE) is None
    assert due(cb, sent, WINDOW[0], BEFORE) is None  # the time has come: too late


def test_no_reminder_when_confirmed_lately_or_not_agreed_or_switched_off():
    remind_at = WINDOW[0] - BEFORE
    late = [told(Kind.CONFIRM, at=remind_at + timedelta(minutes=1))]
    assert due(Waiting(1, True, WINDOW), late, remind_at + timedelta(minutes=2),
               BEFORE) is None
    sent = [told(Kind.CONFIRM)]
    assert due(Waiting(1, False, WINDOW), sent, remind_at, BEFORE) is None
    assert due(Waiting(1, True, WINDOW), sent, remind_at, timedelta(0)) is None


def test_the_text_names_the_number_and_the_window_in_the_calendars_zone():
    texts = Texts(confirm="Oddzwonimy z {number} dnia {date} {from}-{to}.",
                  date_format="%d.%m.%Y")
    assert render(texts, Kind.CONFIRM, "+48221234567", WINDOW, ZoneInfo("Europe/Warsaw")) \
        == "Oddzwonimy z +48221234567 dnia 07.12.2026 12:00-12:30."
    assert "between 11:00 and 11:30" in render(Texts(), Kind.REMINDER, "+4822", WINDOW, UTC)


def test_a_key_names_the_callback_the_message_and_the_window():
    assert key(12, Kind.CONFIRM, WINDOW[0]) == "callback:12:confirm:1796641200"
    assert key(12, Kind.CONFIRM, WINDOW[0]) != key(12, Kind.MOVED, WINDOW[0])
    assert key(12, Kind.MOVED, WINDOW[0]) != key(12, Kind.MOVED, WINDOW[1])


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("x" * 321, "at most 320"),
    ("call {nr}", "unknown placeholder {nr}"),
    ("call {", "not a template"),
    ("call {number:>q}", "not a template"),
    ("call {number.real}", "unknown placeholder"),
])
def test_bad_templates_are_named(text, words):
    assert words in (template_problem(text) or "")


def test_good_templates_pass():
    assert template_problem("Oddzwonimy {date} {from}-{to} z {number} {{ok}}") is None


def test_the_section_defaults_and_a_bad_value_names_the_key():
    sms = parse_settings({}).section(CallbackSettings).sms
    assert (sms.enabled, sms.reminder_before, sms.texts) == (True, 900.0, Texts())
    with pytest.raises(ConfigError, match=r"callbacks\.sms\.moved = 'x \{when\}'"):
        parse_settings({"callbacks": {"sms": {"moved": "x {when}"}}})
    with pytest.raises(ConfigError, match=r"callbacks\.sms\.date_format"):
        parse_settings({"callbacks": {"sms": {"date_format": "today"}}})


def test_the_example_files_callbacks_sms_block_is_valid_once_uncommented():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parents[2] / "config" / "nohold.example.toml").read_text()
    block = text.split("\n# [callbacks.sms]\n", 1)[1]
    lines = [m.group(1) for line in block.splitlines()
             if (m := re.match(r"^# (\w+ = .*)", line))]
    sms = parse_settings(tomllib.loads("[callbacks.sms]\n" + "\n".join(lines))
                         ).section(CallbackSettings).sms
    assert (sms.enabled, sms.reminder_before, sms.texts.date_format) == (True, 900.0, "%d.%m.%Y")


def test_a_window_promised_with_microseconds_matches_its_whole_second_key():
    """A window promised on the phone carries microseconds; what was told is read back
    from the message's key, in whole seconds: still the same window, no "moved"."""
    start = WINDOW[0].replace(microsecond=734_512)
    cb = Waiting(1, scheduled=False, window=(start, WINDOW[1]))
    assert due(cb, [told(Kind.CONFIRM, start=start.replace(microsecond=0))], T0, BEFORE) \
        is None
