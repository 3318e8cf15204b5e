"""After hours, the pure parts and the config: the reason the partner is told, the
headers and their values made safe, the dial variables, the voice message's ticket, the
`[afterhours]` section; and the FastAGI route `partner` against a scripted Asterisk."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nohold.agi_scripts.fastagi import FastAgiServer
from nohold.ari_apps.afterhours.partner import PartnerRoute, PartnerRouter
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.calendar.book import CalendarBook
from nohold.calendar.settings import CalendarSettings
from nohold.config import ConfigError
from nohold.decisions.hours import Calendar, Why
from nohold.decisions.partner import (
    HEADER_VARIABLES,
    CallFacts,
    Message,
    Trunk,
    closed_reason,
    dial_variables,
    header_values,
    is_message,
    recording_name,
    safe_header_value,
    voicemail_partner_id,
    voicemail_report,
)
from nohold.decisions.tickets import Category, Urgency
from nohold.registry import parse_settings

ALL = ("call-id", "caller", "customer", "reason", "notice-played")
FACTS = CallFacts(call_id="pbx-1767225500.7", caller="+48221234567", reason="closed-holiday",
                  notice_played=True, customer="123456")


# -- the reason -------------------------------------------------------------------------
@pytest.mark.parametrize(("why", "said"), [
    (Why.HOLIDAY, "closed-holiday"), (Why.OUTSIDE_HOURS, "closed-hours"),
    (Why.OVERRIDE, "closed-override"), (Why.WEEKEND, "closed-weekend"),
    (Why.DAY_OFF, "closed-day-off")])
def test_every_closed_reason_of_the_calendar_has_a_header_value(why, said):
    assert closed_reason(why) == said


def test_an_open_calendar_has_no_closed_reason():
    with pytest.raises(ValueError, match="open"):
        closed_reason(Why.OPEN)


# -- header values ----------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "safe"), [
    ("+48 22 123-45-67", "+4822123-45-67"),
    ("evil\r\nX-Injected: 1", "evilX-Injected1"),
    ("${SHELL},(x);\"'`\\|", "SHELLx"),
    ("Zażółć", "Za"),
    ("", ""),
    ("x" * 200, "x" * 64),
])
def test_header_values_keep_only_safe_characters_and_are_bounded(raw, safe):
    assert safe_header_value(raw) == safe


def test_every_header_with_a_value_is_sent():
    assert header_values(FACTS, ALL) == {
        "X-Nohold-Call-Id": "pbx-1767225500.7", "X-Nohold-Caller": "+48221234567",
        "X-Nohold-Customer": "123456", "X-Nohold-Reason": "closed-holiday",
        "X-Nohold-Notice-Played": "1"}


def test_no_customer_and_no_notice_mean_no_such_headers():
    facts = CallFacts(call_id="1.2", caller="anonymous", reason="closed-hours",
                      notice_played=False)
    assert header_values(facts, ALL) == {"X-Nohold-Call-Id": "1.2",
                                         "X-Nohold-Caller": "anonymous",
                                         "X-Nohold-Reason": "closed-hours"}


def test_only_the_configured_headers_are_sent():
    assert header_values(FACTS, ("call-id", "reason")) == {
        "X-Nohold-Call-Id": "pbx-1767225500.7", "X-Nohold-Reason": "closed-holiday"}


def test_a_value_with_nothing_safe_left_is_not_sent():
    facts = CallFacts(call_id="1.2", caller="\r\n", reason="closed-hours",
                      notice_played=True)
    assert "X-Nohold-Caller" not in header_values(facts, ALL)


# -- dial variables -----------------------------------------------------------------------
def test_dial_variables_name_the_trunks_in_order_and_clear_unsent_headers():
    out = dial_variables(FACTS, [Trunk("partner-a"), Trunk("partner-b", "support")], 25,
                         ("call-id", "reason"), prompt="/p/partner_intro")
    assert out["NOHOLD_PARTNER_DIAL1"] == "PJSIP/partner-a"
    assert out["NOHOLD_PARTNER_DIAL2"] == "PJSIP/support@partner-b"
    assert out["NOHOLD_PARTNER_RING"] == "25"
    assert out["NOHOLD_PARTNER_PROMPT"] == "/p/partner_intro"
    assert out["_NOHOLD_HDR_CALL_ID"] == "pbx-1767225500.7"
    # A customer entered earlier in the call is never sent when not configured.
    assert out["_NOHOLD_HDR_CUSTOMER"] == "" and out["_NOHOLD_HDR_CALLER"] == ""
    assert set(HEADER_VARIABLES.values()) <= set(out)
    # Inherited by the partner's leg, where the pre-dial handler reads them.
    assert all(v.startswith("_") and not v.startswith("__") for v in HEADER_VARIABLES.values())


def test_one_trunk_leaves_the_second_empty_and_three_are_refused():
    assert dial_variables(FACTS, [Trunk("p")], 5, ALL)["NOHOLD_PARTNER_DIAL2"] == ""
    with pytest.raises(ValueError):
        dial_variables(FACTS, [Trunk("a"), Trunk("b"), Trunk("c")], 5, ALL)


# -- the voice message ----------------------------------------------------------------------
@pytest.mark.parametrize(("state", "seconds", "message"), [
    ("done", 3.0, True), ("done", 0.4, False), ("done", None, True), ("stored", None, True),
    ("failed", 9.0, False), ("missing", None, False), ("canceled", 5.0, False)])
def test_what_counts_as_a_message(state, seconds, message):
    assert is_message(state, seconds, 1.0) is message


def test_the_voicemail_ticket_names_the_call_the_recording_and_the_partner_status():
    at = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)
    m = Message(call_id="pbx-1.7", caller="+48221234567", customer="123456",
                reason="closed-holiday", partner_status="BUSY",
                recording="/var/spool/asterisk/recording/nohold-vm-pbx-1.7.wav",
                seconds=12.4, received_at=at)
    r = voicemail_report(m, Urgency.URGENT)
    assert (r.partner_id, r.caller, r.customer, r.call_id, r.category, r.urgency,
            r.reported_at) == ("vm-pbx-1.7", "+48221234567", "123456", "pbx-1.7",
                               Category.OTHER, Urgency.URGENT, at)
    assert "/var/spool/asterisk/recording/nohold-vm-pbx-1.7.wav" in r.text
    assert "BUSY" in r.text and "closed-holiday" in r.text and "12 s" in r.text


def test_ids_of_the_message_are_bounded_and_safe():
    assert len(voicemail_partner_id("x" * 64)) == 64
    assert recording_name("pbx-1.7/../etc") == "nohold-vm-pbx-1.7..etc--"


# -- the [afterhours] section -----------------------------------------------------------------
def parse(section: dict[str, Any]) -> AfterHoursSettings:
    return parse_settings({"afterhours": section}).section(AfterHoursSettings)


def test_defaults_are_off_with_one_trunk_and_every_header():
    after = parse({})
    assert not after.enabled
    assert after.trunks == (Trunk("partner"),)
    assert after.headers == ALL
    assert after.voicemail.category == Category.OTHER


def test_a_full_section_is_read():
    after = parse({"enabled": True, "trunks": ["partner-a", "support@partner-b"],
                   "ring_timeout": 20, "headers": ["reason", "call-id"], "identify": True,
                   "voicemail": {"max_seconds": 60, "urgency": "urgent",
                                 "recording_dir": "/srv/rec"}})
    assert after.trunks == (Trunk("partner-a"), Trunk("partner-b", "support"))
    assert after.headers == ("call-id", "reason")
    assert (after.voicemail.max_seconds, after.voicemail.urgency) == (60, Urgency.URGENT)


@pytest.mark.parametrize(("section", "says"), [
    ({"trunks": []}, "afterhours.trunks = []: one or two"),
    ({"trunks": ["a", "b", "c"]}, "one or two"),
    ({"trunks": ["PJSIP/partner"]}, "'PJSIP/partner' is not a PJSIP endpoint name"),
    ({"trunks": ["a;b"]}, "is not a PJSIP endpoint name"),
    ({"trunks": ["a", "a"]}, "the same trunk twice"),
    ({"ring_timeout": 2}, "afterhours.ring_timeout = 2: must be between 5 and 300"),
    ({"headers": ["x-evil"]}, "'x-evil' is not a header nohold sends; allowed: call-id"),
    ({"voicemail": {"urgency": "panic"}}, "afterhours.voicemail.urgency = 'panic'"),
    ({"voicemail": {"recording_dir": "rec"}}, "expected an absolute path"),
    ({"voicemail": {"silence": 3}}, "unknown key afterhours.voicemail.silence"),
    ({"enabled": True, "calendar": "nosuch"}, "afterhours.calendar = 'nosuch': no such"),
    ({"enabled": True, "app": "nohold-ivr"}, "is the IVR's app"),
    ({"enabled": True, "prompt": "nosuch_prompt"}, "prompt 'nosuch_prompt' is used"),
])
def test_bad_values_are_named_with_what_is_allowed(section, says):
    with pytest.raises(ConfigError) as err:
        parse(section)
    assert says in str(err.value)


# -- FastAGI `partner` ---------------------------------------------------------------------------
class OneCalendar:
    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar

    default = "office"
    names = ("office",)

    async def get(self, name: str | None = None) -> Calendar:
        return self.calendar


async def agi_session(port: int, channel_vars: dict[str, str], callerid: str
                      ) -> dict[str, str]:
    """One AGI session like Asterisk's: answers GET FULL VARIABLE from `channel_vars`,
    returns what nohold SET."""
    env = {"agi_network": "yes", "agi_network_script": "partner",
           "agi_channel": "PJSIP/alice-00000001", "agi_uniqueid": "pbx-1.1",
           "agi_callerid": callerid}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    variables: dict[str, str] = {}
    while line := (await asyncio.wait_for(reader.readline(), 5)).decode().strip():
        if m := re.fullmatch(r'SET VARIABLE (\S+) "(.*)"', line):
            variables[m[1]] = m[2]
            writer.write(b"200 result=1\n")
        elif m := re.fullmatch(r"GET FULL VARIABLE \$\{(.+)\}", line):
            value = channel_vars.get(m[1])
            writer.write(b"200 result=0\n" if value is None
                         else f"200 result=1 ({value})\n".encode())
        else:
            raise AssertionError(line)
    writer.close()
    return variables


@pytest.fixture
async def partner_route():
    servers = []

    async def start(open_now: bool) -> int:
        windows = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                 "sun")}
        now = datetime.now(UTC)
        storm = {"from": (now - timedelta(days=1)).isoformat(timespec="minutes"),
                 "to": (now + timedelta(days=1)).isoformat(timespec="minutes")}
        office = windows if open_now else {**windows, "closed": [storm]}
        settings = parse_settings({"calendar": {"country": "", "office": office},
                                   "afterhours": {"trunks": ["partner"]}})
        book = CalendarBook(settings.section(CalendarSettings), None)
        router = PartnerRouter(settings.section(AfterHoursSettings), book)
        server = FastAgiServer({"partner": PartnerRoute(router, "/p/partner_intro")})
        servers.append(server)
        return await server.start("127.0.0.1", 0)

    yield start
    for server in servers:
        await server.close()


async def test_agi_partner_sets_what_the_dialplan_dials_with(partner_route):
    port = await partner_route(open_now=True)
    got = await agi_session(port, {"CHANNEL(linkedid)": "pbx-1.1",
                                   "NOHOLD_CLOSED_REASON": "holiday",
                                   "NOHOLD_NOTICE_PLAYED": "1",
                                   "NOHOLD_CUSTOMER": "12,34\\x"}, "+48221234567")
    assert got["NOHOLD_PARTNER_DIAL1"] == "PJSIP/partner"
    assert got["NOHOLD_PARTNER_PROMPT"] == "/p/partner_intro"
    # The hours route's reason wins: the dialplan asked it, whatever the default says.
    assert got["_NOHOLD_HDR_REASON"] == "closed-holiday"
    assert got["_NOHOLD_HDR_NOTICE_PLAYED"] == "1"
    assert got["_NOHOLD_HDR_CUSTOMER"] == "1234x"
    assert got["_NOHOLD_HDR_CALL_ID"] == "pbx-1.1"
    assert got["NOHOLD_AGI_STATUS"] == "OK"


async def test_agi_partner_asks_its_calendar_when_the_dialplan_did_not(partner_route):
    port = await partner_route(open_now=False)
    got = await agi_session(port, {"CHANNEL(linkedid)": "pbx-1.2"}, "+48221234567")
    assert got["_NOHOLD_HDR_REASON"] == "closed-override"
    assert got["_NOHOLD_HDR_NOTICE_PLAYED"] == ""  # not told: the partner plays its own
    assert got["_NOHOLD_HDR_CALLER"] == "+48221234567"


async def test_agi_partner_refuses_a_call_id_asterisk_would_not_give(partner_route):
    port = await partner_route(open_now=True)
    got = await agi_session(port, {"CHANNEL(linkedid)": "bad id;"}, "1")
    assert got == {"NOHOLD_AGI_STATUS": "BAD_INPUT"}


def test_the_example_files_afterhours_block_is_valid_once_uncommented():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "config" / "nohold.example.toml").read_text()
    block = text.split("\n# [afterhours]\n", 1)[1].split("\n# [tickets]\n", 1)[0]
    main, voicemail = block.split("\n# [afterhours.voicemail]\n", 1)

    def uncomment(part: str) -> str:
        return "\n".join(m.group(1) for m in re.finditer(r"^# (\w+ = .*)$", part, re.M))

    import tomllib
    raw = tomllib.loads(f"[afterhours]\n{uncomment(main)}\n"
                        f"[afterhours.voicemail]\n{uncomment(voicemail)}\n")
    after = parse_settings(raw).section(AfterHoursSettings)
    assert after.enabled and after.trunks == (Trunk("partner"),)
    assert after.headers == ALL and after.voicemail.max_seconds == 120


def test_a_voice_message_file_is_known_by_its_name_and_nothing_else():
    from nohold.decisions.partner import MessageFile, message_file

    uuid = "66f7d3fe-cc24-4130-b488-41f24a6106f0"
    alone = message_file(f"nohold-vm-{uuid}-asterisk-BUSY-+48221234567.wav")
    assert alone == MessageFile(uuid, "BUSY", "+48221234567", alone=True)
    assert alone.partner_id == f"vma-{uuid}"
    assert message_file("nohold-vm-1741377600.42-asterisk-NOANSWER-.wav") == \
        MessageFile("1741377600.42", "NOANSWER", "", alone=True)
    assert message_file("nohold-vm-PBX-1-1741377600.42-asterisk--.wav") == \
        MessageFile("PBX-1-1741377600.42", "", "", alone=True)
    # The dialplan's older name, without status and caller.
    assert message_file("nohold-vm-1741377600.42-asterisk.wav") == \
        MessageFile("1741377600.42", "", "", alone=True)
    # nohold's own flow: its recording_name, and the older name.
    own = message_file(recording_name(uuid, "CHANUNAVAIL", "+48 22 123") + ".wav")
    assert own == MessageFile(uuid, "CHANUNAVAIL", "+4822123", alone=False)
    assert own.partner_id == voicemail_partner_id(uuid) == f"vm-{uuid}"
    assert message_file(f"nohold-vm-{uuid}.wav") == MessageFile(uuid, "", "", alone=False)
    for other in ("nohold-vm-1741377600.42-asterisk.wav.tmp", "nohold-vm--asterisk.wav",
                  "nohold-vm-17413 77600-asterisk.wav", "x-nohold-vm-1-asterisk.wav",
                  "nohold-vm-1.gsm", "notes.txt"):
        assert message_file(other) is None, other
    assert len(message_file(f"nohold-vm-{'9' * 64}-asterisk.wav").partner_id) == 64
    # Longer than any call id, or a caller number longer than the dialplan keeps: none.
    assert message_file(f"nohold-vm-{'9' * 65}-asterisk.wav") is None
    assert message_file(f"nohold-vm-1-asterisk-BUSY-{'1' * 33}.wav") is None


def test_the_recording_name_carries_only_safe_status_and_number_characters():
    assert recording_name("1741377600.42", "BUSY", "+48221234567") == \
        "nohold-vm-1741377600.42-BUSY-+48221234567"
    assert recording_name("1741377600.42", "busy;x", "\"Eve\" <sip:1@x>") == \
        "nohold-vm-1741377600.42--1"
    assert recording_name("1741377600.42") == "nohold-vm-1741377600.42--"
