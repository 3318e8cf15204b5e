"""The alerts' pure parts (SMS text, replies, delivery reports, retries, which tickets
alert, what to do after an outage) and the `[alerts]` section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nohold.alerts.settings import AlertSettings
from nohold.config import SMPP_PASSWORD_ENV, ConfigError, load_settings
from nohold.decisions.alerts import (
    MAX_SMS,
    Delivery,
    Policy,
    Reply,
    alerts_for,
    parse_receipt,
    parse_reply,
    retry_after,
    sms_text,
    to_carry_out,
)
from nohold.decisions.escalation import Via, plan
from nohold.registry import parse_settings, sections


def test_the_sms_says_ticket_urgency_caller_and_how_to_acknowledge():
    text = sms_text(42, "urgent", "outage", "+48221234567", "10042",
                    "No internet in\n Zalesie   since 20:00")
    assert text == ("nohold #42 URGENT outage from +48221234567 (customer 10042): "
                    "No internet in Zalesie since 20:00 Reply 42 to acknowledge.")


def test_a_long_text_is_cut_but_the_acknowledgement_stays():
    text = sms_text(7, "normal", "fault", "", "", "word " * 200)
    assert len(text) <= MAX_SMS
    assert text.endswith("... Reply 7 to acknowledge.")
    assert sms_text(7, "low", "other", "", "", "") == "nohold #7 LOW other. Reply 7 to acknowledge."


@pytest.mark.parametrize("text, reply", [
    ("42", Reply(True, 42)), ("ACK 42", Reply(True, 42)), ("#42", Reply(True, 42)),
    ("ok 42", Reply(True, 42)), (" 42 ok! ", Reply(True, 42)), ("ack #42", Reply(True, 42)),
    ("1", Reply(True, None)), ("OK", Reply(True, None)), ("Tak.", Reply(True, None)),
    ("ack", Reply(True, None)), ("#1", Reply(True, 1)),
    ("call me", Reply(False)), ("who is this?", Reply(False)), ("42 43", Reply(False)),
    ("", Reply(False)), ("no", Reply(False)),
])
def test_a_reply_acknowledges_a_ticket_or_the_latest_or_nothing(text, reply):
    assert parse_reply(text) == reply


def test_delivery_reports_are_read_and_other_texts_are_not():
    ok = parse_receipt("id:m7 sub:001 dlvrd:001 submit date:2612031200 done date:"
                       "2612031201 stat:DELIVRD err:000 text:nohold #4")
    assert ok is not None and (ok.message_id, ok.delivery, ok.stat) == (
        "m7", Delivery.DELIVERED, "DELIVRD")
    bad = parse_receipt("id:abc-1 sub:001 dlvrd:000 stat:UNDELIV err:001")
    assert bad is not None and bad.delivery is Delivery.UNDELIVERABLE
    assert parse_receipt("id:x stat:ENROUTE").delivery is Delivery.PENDING  # type: ignore[union-attr]
    assert parse_receipt("ACK 42") is None


def test_retries_wait_longer_each_time_and_never_more_than_five_minutes():
    waits = [retry_after(n).total_seconds() for n in range(1, 10)]
    assert waits[:4] == [5, 10, 20, 40] and waits[-1] == 300
    assert waits == sorted(waits)


@pytest.mark.parametrize("policy, urgency, desk_open, alerts", [
    (Policy.ALL, "low", True, True),
    (Policy.URGENT, "urgent", True, True), (Policy.URGENT, "normal", False, False),
    (Policy.URGENT_OR_CLOSED, "normal", False, True),
    (Policy.URGENT_OR_CLOSED, "normal", True, False),
    (Policy.URGENT_OR_CLOSED, "urgent", True, True),
])
def test_which_tickets_alert(policy, urgency, desk_open, alerts):
    assert alerts_for(policy, urgency, desk_open) is alerts


T0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def test_after_an_outage_every_late_sms_goes_but_an_overtaken_call_does_not():
    steps = plan(("ewa", "jan"), T0, FIVE, rounds=1, call=True)
    # ewa sms (0), ewa call (5), jan sms (10), jan call (15): down until minute 11
    do, skip = to_carry_out(steps, T0 + 11 * FIVE / 5, set())
    assert [s.key for s in do] == ["r1:sms:ewa", "r1:sms:jan"]
    assert [s.key for s in skip] == ["r1:call:ewa"]
    assert to_carry_out(steps, T0 + 11 * FIVE / 5, {s.key for s in do + skip}) == ([], [])
    # on time, one step at a time
    do, skip = to_carry_out(steps, T0 + FIVE, {"r1:sms:ewa"})
    assert [(s.key, s.via) for s in do] == [("r1:call:ewa", Via.CALL)] and skip == []


PEOPLE = {"people": {"jan": {"mobile": "+48 601 000 001"}, "ewa": {"mobile": "601000002"}},
          "fallback": ["jan"]}


SMS_ON = {"enabled": True}


def alerts(raw: dict) -> AlertSettings:
    return parse_settings({"alerts": raw, "sms": SMS_ON}).section(AlertSettings)


def test_defaults_are_off_sms_only_and_urgent_or_closed():
    a = parse_settings({}).section(AlertSettings)
    assert (a.enabled, a.call, a.tickets, a.ack_within, a.rounds) == (
        False, False, Policy.URGENT_OR_CLOSED, 300.0, 3)


def test_people_are_stored_in_e164_and_found_by_number():
    a = alerts({**PEOPLE, "enabled": True})
    assert a.people["ewa"].mobile == "+48601000002"
    assert a.person_by_number("+48601000001").name == "jan"  # type: ignore[union-attr]
    assert a.person_by_number("+48601000009") is None
    assert a.rota.on_duty(T0) == ("jan",)


def test_the_smpp_password_from_the_environment_wins(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text('[sms.smpp]\npassword = "infile"\n')
    assert load_settings(path, {}, sections()).sms.smpp.password == "infile"
    s = load_settings(path, {SMPP_PASSWORD_ENV: "fromenv"}, sections())
    assert s.sms.smpp.password == "fromenv" and "fromenv" not in repr(s.sms)


def test_alerts_need_the_sms_link():
    with pytest.raises(ConfigError, match=r"needs \[sms\] enabled = true"):
        parse_settings({"alerts": {**PEOPLE, "enabled": True}})


@pytest.mark.parametrize("raw, words", [
    ({"smpp": {"password": "much-too-long"}}, "at most 8"),
    ({"smpp": {"system_id": "a" * 16}}, "sms.smpp.system_id"),
    ({"smpp": {"source": "NoholdAlerts1"}}, "sms.smpp.source"),
    ({"smpp": {"port": 0}}, "sms.smpp.port"),
    ({"smpp": {"hots": "x"}}, "unknown key sms.smpp.hots"),
    ({"enabled": "yes"}, "sms.enabled"),
])
def test_bad_sms_config_is_refused_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        parse_settings({"sms": raw})
    assert words in str(err.value), str(err.value)


@pytest.mark.parametrize("raw, words", [
    ({"people": {"Jan!": {"mobile": "+48601000001"}}}, "a person's name"),
    ({"people": {"jan": {"mobile": "12"}}}, "alerts.people.jan.mobile"),
    ({"people": {"jan": {"mobile": "+48601000001", "email": "nope"}}}, "not an email"),
    ({**PEOPLE, "fallback": ["zosia"]}, "not one of [alerts.people]"),
    ({**PEOPLE, "fallback": ["jan", "jan"]}, "listed twice"),
    ({**PEOPLE, "shifts": [{"days": ["mon"], "hours": "17:00-24:00", "order": ["jan"]},
                           {"days": ["mon"], "hours": "20:00-22:00", "order": ["ewa"]}]},
     "overlap"),
    ({**PEOPLE, "shifts": [{"days": ["someday"], "order": ["jan"]}]}, "alerts.shifts[0].days"),
    ({**PEOPLE, "covers": [{"from": "2026-12-27T00:00", "to": "2026-12-24T00:00",
                            "order": ["jan"]}]}, "ends before it starts"),
    ({"tickets": "some"}, "alerts.tickets"),
    ({"rounds": 2.5}, "alerts.rounds = 2.5: expected an integer"),
    ({"ack_within": 0}, "alerts.ack_within"),
    ({"timezone": "Mars/Olympus"}, "not a time zone"),
    ({"smpp": {"host": "x"}}, "[alerts.smpp] has moved to [sms.smpp]"),
    ({"enabled": True}, "needs [alerts.people"),
    ({"enabled": True, "people": PEOPLE["people"]}, "someone must be on duty"),
    ({**PEOPLE, "enabled": True, "call": True, "app": "nohold-ivr"}, "the IVR's application"),
    ({"dial": "PJSIP/trunk"}, "alerts.dial"),
    ({"dial": "endpoint:PJSIP/trunk"}, "alerts.dial"),
    ({"caller_id": "company"}, "alerts.caller_id"),
    ({"ring_timeout": 1}, "alerts.ring_timeout"),
])
def test_bad_alert_config_is_refused_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        parse_settings({"alerts": raw, "sms": SMS_ON})
    assert words in str(err.value), str(err.value)


def test_the_example_files_alerts_block_is_valid_once_uncommented():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parents[2] / "config" / "nohold.example.toml").read_text()
    block = text.split("\n# [alerts]\n", 1)[1].split("\n# [sms]\n", 1)[0]
    lines = []
    for line in block.splitlines():
        m = re.match(r"^# (\[\[?alerts[\w.]*\]\]?|\w+ = .*)", line)
        if m and not m.group(1).startswith("password"):
            lines.append(m.group(1))
    raw = tomllib.loads("[alerts]\n" + "\n".join(lines))
    sms_block = text.split("\n# [sms]\n", 1)[1].split("\n# [callbacks.sms]\n", 1)[0]
    sms_lines = [m.group(1) for line in sms_block.splitlines()
                 if (m := re.match(r"^# (\[sms[\w.]*\]|\w+ = .*)", line))
                 and not m.group(1).startswith("password")]
    raw.update(tomllib.loads("[sms]\n" + "\n".join(sms_lines)))
    s = parse_settings(raw)
    a = s.section(AlertSettings)
    assert (a.enabled, a.people["jan"].mobile, a.rota.fallback, len(a.rota.shifts),
            len(a.rota.covers), s.sms.enabled, s.sms.smpp.host) == (
        True, "+48601000001", ("jan",), 1, 1, True, "smsc.example.net")


def test_the_voice_call_reads_numbers_digit_by_digit():
    from nohold.decisions.alerts import spoken_text
    assert spoken_text(42, "urgent", "outage", "+48221234567", "10042", "No  internet.") == (
        "Ticket 42. Urgent. Outage. Caller 4 8 2 2 1 2 3 4 5 6 7. Customer 1 0 0 4 2. "
        "No internet.")
    long = spoken_text(1, "low", "other", "", "", "word " * 500, limit=100)
    assert len(long) < 140 and long.endswith("word.")
