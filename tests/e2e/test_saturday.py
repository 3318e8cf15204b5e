"""Issue 10's whole story on the real Asterisk 22 with a controlled clock: nohold's
processes run on a Saturday, a Monday, a Wednesday (libfaketime shifts their wall
clock, tests/support/nohold_process.py `Clock`; Asterisk keeps the real time).

- A Saturday call hears the notice once and reaches the partner's SIPp UAS with every
  context header; the partner's signed webhook (a normal ticket: every after-hours
  ticket alerts by default) texts the technician on duty; nobody replies, so the PBX
  calls him and he presses 1. A forged and a replayed webhook are refused.
- The trunk is down: the caller leaves a voice message, which becomes a ticket that
  alerts; the first technician never answers the phone, the second acknowledges.
- A ticket resolved on Monday gets its follow-up call on Wednesday, agent first, with
  the ticket read to the agent; "not fixed" reopens it and the technician is alerted
  again.

Everything is counted from Asterisk's events, SIPp's message log, the SMSC's own log
of PDUs and nohold's database; never slept for.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from nohold.decisions.tickets import sign
from nohold.sandbox import Sandbox
from nohold.sandbox.caller import ScriptedCaller
from nohold.sandbox.sipp import SippCallee
from tests.e2e.callback_bed import (
    ANSWERS,
    QUEUE,
    customer_leg,
    open_bed,
    placeholder_of,
    running_cb_box,
)
from tests.support.asterisk_events import AsteriskEvents, ami, ari
from tests.support.nohold_process import Clock, run_cli
from tests.support.smsc import Smsc
from tests.support.sweep import empty_sweep_dir

pytestmark = pytest.mark.e2e

WAW = ZoneInfo("Europe/Warsaw")
SATURDAY = datetime(2026, 12, 5, 15, 0, tzinfo=WAW)
MONDAY = datetime(2026, 12, 7, 11, 0, tzinfo=WAW)
WEDNESDAY_TEN = datetime(2026, 12, 9, 10, 0, tzinfo=WAW)
TOKEN = "e2e-http-token-0123456789-abcdef"
SECRET = "e2e-partner-secret-0123456789abcdef-0123"
# The technicians' mobiles (not the sandbox customers' numbers, who get SMS too).
JAN, EWA = "48601000011", "48601000012"
CALLER = "+48221234567"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
# The company's desk: working days 10-17 in Warsaw, Polish public holidays closed.
DESK = {"country": "PL", "default": "office",
        "office": {**{d: ["10:00-17:00"] for d in WEEKDAYS}, "timezone": "Europe/Warsaw"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phones(context: str) -> str:
    """The technicians' phones: jan answers, listens a moment, presses 1 and stays on;
    ewa's rings and nobody answers."""
    return f"""
[{context}]
exten => {JAN},1,Answer()
 same => n,Wait(4)
 same => n,SendDTMF(1)
 same => n,Wait(30)
 same => n,Hangup()
exten => {EWA},1,Ringing()
 same => n,Wait(60)
"""


def sections(smsc: Smsc, port: int, order: list[str], phone_context: str,
             **alerts: Any) -> dict[str, Any]:
    return {
        "calendar": DESK,
        "http": {"enabled": True, "port": port, "token": TOKEN},
        "tickets": {"enabled": True, "secret": SECRET},
        "sms": {"enabled": True,
                "smpp": {"host": "127.0.0.1", "port": smsc.port, "system_id": smsc.system_id,
                         "password": smsc.password, "source": "nohold",
                         "enquire_every": 5}},
        "alerts": {"enabled": True, "ack_within": 10, "rounds": 1, "call": True,
                   "dial": f"context:{phone_context}", "dial_format": "e164_digits",
                   "caller_id": "+48221234567", "ring_timeout": 5,
                   "people": {"jan": {"mobile": "+" + JAN}, "ewa": {"mobile": "+" + EWA}},
                   # On duty at weekends and in the evenings; the desk covers the day.
                   "shifts": [{"days": ["sat", "sun"], "hours": "00:00-24:00",
                               "order": order}],
                   "fallback": order, **alerts},
    }


def partner_report(partner_id: str, call_id: str | None = None, urgency: str = "normal",
                   caller: str = CALLER) -> bytes:
    body: dict[str, Any] = {"id": partner_id, "caller": caller, "category": "fault",
                            "urgency": urgency, "text": "No internet since the storm"}
    if call_id:
        body["call_id"] = call_id
    return json.dumps(body).encode()


async def post(port: int, raw: bytes, ts: str, signature: str) -> tuple[int, dict[str, Any]]:
    headers = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": signature,
               "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/partner/tickets", data=raw, headers=headers,
            timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.json()


def signed(clock: Clock, raw: bytes) -> tuple[str, str]:
    """Signed at nohold's time (the partner's clock agrees with ours: the timestamp must
    be within 5 minutes of it)."""
    ts = str(int(clock.now().timestamp()))
    return ts, sign(SECRET.encode(), ts, raw)


def cli(config: Path, clock: Clock, *args: str) -> Any:
    """A read command's JSON, at nohold's time."""
    return json.loads(do(config, clock, *args, "--json"))


def do(config: Path, clock: Clock, *args: str) -> str:
    """A command, at nohold's time (a resolution on Monday is stamped Monday)."""
    result = run_cli(config, *args, clock=clock)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def settles(check: Any, timeout: float) -> bool:  # noqa: ASYNC109
    """Polls a state another process settles (a row nohold writes)."""
    for _ in range(int(timeout / 0.25) + 1):
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.25)
    return False


def texted(smsc: Smsc) -> list[str]:
    """Who got an SMS, one entry per message: a long one (a voice message's ticket names
    its recording) goes as several submit_sm parts with a UDH (esm_class 0x40), the
    first of them carrying the text's start."""
    out: list[str] = []
    for pdu in smsc.of("submit"):
        part = bool(int(pdu.get("esm_class") or 0) & 0x40)
        if not part or not out or pdu["text"].startswith("nohold #"):
            out.append(pdu["to"])
    return out


def heard_on(rec: AsteriskEvents, target: str) -> list[str]:
    """What a channel was played, in order: a PlaybackStarted per medium (a playback
    of several media also says PlaybackContinuing as each one ends); an event the
    recorder got twice, through two subscriptions, counts once."""
    seen: set[tuple[str, str, str]] = set()
    heard = []
    for e in rec.find(lambda e: e.src == "ari" and e.type == "PlaybackStarted"):
        p = e.data["playback"]
        key = (str(p["id"]), e.type, str(p["media_uri"]))
        if p["target_uri"] == target and key not in seen:
            seen.add(key)
            heard.append(str(p["media_uri"]).rsplit("/", 1)[-1].removeprefix("tone:"))
    return heard


def note_name_of(row: Any) -> str:
    from nohold.ari_apps.callbacks.notes import note_name
    return note_name(row).rsplit("/", 1)[-1]


def alert_calls(rec: AsteriskEvents) -> list[str]:
    return [e.channel_id for e in rec.find(ari("ChannelCreated"))
            if e.channel_id.startswith("nohold-alert-") and ";" not in e.channel_id]


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    async with Smsc.start() as peer:
        yield peer


# -- Saturday ---------------------------------------------------------------------------
async def test_a_saturday_call_reaches_the_partner_and_its_ticket_wakes_the_technician(
        asterisk, start_nohold, smsc):
    clock = Clock.at(SATURDAY)
    context = f"sat-phones-{free_port()}"
    asterisk.add_dialplan(phones(context))
    port = free_port()
    async with AsteriskEvents(asterisk) as rec, SippCallee("answer") as partner:
        trunk = f"partner-{partner.port}"
        asterisk.add_pjsip(partner.pjsip(trunk))
        nohold = await start_nohold({**sections(smsc, port, ["jan", "ewa"], context),
                                     "afterhours": {"enabled": True, "trunks": [trunk],
                                                    "ring_timeout": 5}}, clock=clock)
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id=CALLER) as caller:
            await caller.wait_for_playback("/partner_intro", finished=True, timeout=20)
            await caller.wait_for(lambda e: e.type == "ChannelEnteredBridge"
                                  and e.detail.startswith(f"PJSIP/{trunk}-"), timeout=20)
        answered = await partner.finished()
        assert answered.ok, answered.stderr
        notices = [m for m in caller.playbacks() if m.endswith("/notice")]
        assert len(notices) == 1, caller.format_timeline()
        (invite,) = partner.received("INVITE")
        assert {k: v for k, v in invite.items() if k.startswith("x-nohold-")} == {
            "x-nohold-call-id": caller.linkedid, "x-nohold-caller": CALLER,
            "x-nohold-reason": "closed-weekend", "x-nohold-notice-played": "1"}, invite

        # The partner's ticket for that call, signed: a normal one, alerted because the
        # desk is closed.
        raw = partner_report("SAT-1", call_id=caller.linkedid)
        ts, signature = signed(clock, raw)
        status, body = await post(port, raw, ts, signature)
        assert status == 201, body
        tid = int(body["ticket"]["id"])
        assert body["ignored"] == [], body  # the call id is one nohold gave
        assert cli(nohold.config, clock, "tickets", "show", str(tid))["call_id"] \
            == caller.linkedid
        # Replayed as it was, and forged: refused, and no second ticket.
        assert (await post(port, raw, ts, signature))[0] == 409
        forged = partner_report("SAT-1", urgency="urgent")
        assert (await post(port, forged, ts, signature))[0] == 401

        (sms,) = await smsc.count("submit", 1)
        assert sms["to"] == JAN and sms["text"].startswith(f"nohold #{tid} "), sms
        # Nobody replies within ack_within: the PBX calls jan, who presses 1.
        assert await settles(lambda: cli(nohold.config, clock, "tickets", "show", str(tid))
                             ["state"] == "acknowledged", 40), nohold.log()[-4000:]
        t = cli(nohold.config, clock, "tickets", "show", str(tid))
        assert t["acknowledged_by"] == "jan"
        assert [(e["kind"], e["via"]) for e in t["events"] if e["kind"] == "acknowledged"] \
            == [("acknowledged", "call")]
        # Acknowledged on the first call: ewa was never bothered, nothing was sent twice.
        assert len(alert_calls(rec)) == 1, alert_calls(rec)
        assert texted(smsc) == [JAN], smsc.of("submit")
        assert len(cli(nohold.config, clock, "tickets", "list")) == 1
    assert nohold.problems() == []


async def test_the_trunk_down_leaves_a_voice_message_whose_ticket_the_second_technician_takes(
        asterisk, start_nohold, smsc):
    clock = Clock.at(SATURDAY + timedelta(hours=5))  # Saturday evening
    context = f"sat-phones-{free_port()}"
    asterisk.add_dialplan(phones(context))
    port = free_port()
    # The partner's trunk points at a port where nothing answers: the trunk is down.
    trunk = f"partner-down-{free_port()}"
    asterisk.add_pjsip(
        f"[{trunk}]\ntype = aor\ncontact = sip:partner@127.0.0.1:{free_port()}\n\n"
        f"[{trunk}]\ntype = endpoint\ntransport = transport-udp\naors = {trunk}\n"
        "context = nohold-inbound\ndisallow = all\nallow = ulaw\n")
    recordings = asterisk.run_dir / "spool" / "recording"
    async with AsteriskEvents(asterisk) as rec:
        nohold = await start_nohold({
            **sections(smsc, port, ["ewa", "jan"], context),
            "afterhours": {"enabled": True, "trunks": [trunk], "ring_timeout": 5,
                           "voicemail": {"recording_dir": asterisk.in_asterisk(recordings),
                                         "silence_seconds": 3,
                                         "sweep_dir": empty_sweep_dir(asterisk)}}},
            clock=clock)
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id=CALLER) as caller:
            await caller.wait_for_playback("/partner_unavailable", finished=True, timeout=30)
            await caller.say("sound:demo-thanks")
            await caller.press("#")
            await caller.wait_for_playback("/partner_alerted", finished=True, timeout=15)
            await caller.wait_hungup(timeout=10)
        (ticket,) = cli(nohold.config, clock, "tickets", "list")
        assert (ticket["partner_id"], ticket["channel"]) == (
            f"vm-{caller.linkedid}", "voicemail"), ticket
        tid = int(ticket["id"])
        # ewa: SMS, then a call she never answers; jan: SMS, then a call: he presses 1.
        assert await settles(lambda: cli(nohold.config, clock, "tickets", "show", str(tid))
                             ["state"] == "acknowledged", 60), nohold.log()[-6000:]
        t = cli(nohold.config, clock, "tickets", "show", str(tid))
        assert t["acknowledged_by"] == "jan"
        assert texted(smsc) == [EWA, JAN], smsc.of("submit")
        assert len(alert_calls(rec)) == 2, alert_calls(rec)
        assert await settles(lambda: "step=r1:call:jan person=jan state=acknowledged"
                             in nohold.log(), 20)
        steps = [(a["step"], a["state"]) for a in
                 cli(nohold.config, clock, "alerts", "show", str(tid))["alerts"]]
        assert steps == [("r1:sms:ewa", "sent"), ("r1:call:ewa", "unanswered"),
                         ("r1:sms:jan", "sent"), ("r1:call:jan", "acknowledged")]
    assert nohold.problems() == []


# -- Monday, then Wednesday -------------------------------------------------------------
@pytest.fixture
def cb_box() -> Any:
    with running_cb_box() as box:
        yield box


async def test_resolved_on_monday_is_called_back_on_wednesday_agent_first_and_not_fixed_reopens(
        cb_box: Sandbox, tmp_path: Path, smsc: Smsc) -> None:
    monday = Clock.at(MONDAY)
    port = free_port()
    customer = "+48" + ANSWERS  # answers after 1 s of ringing and stays
    office = {**{d: ["08:00-18:00"] for d in WEEKDAYS}, "timezone": "Europe/Warsaw"}
    config = sections(smsc, port, ["jan"], "unused", call=False)
    config["calendar"] = {"country": "PL", "default": "office", "office": office}
    async with open_bed(cb_box, tmp_path, {
            "calendar": "office",
            "followup": {"enabled": True, "after_working_days": 2, "window": "10:00-12:00"}},
            sections=config, http=False, clock=monday) as bed:
        # Monday 11:00: an urgent ticket texts jan; he acknowledges and resolves it.
        raw = partner_report("MON-1", urgency="urgent", caller=customer)
        status, body = await post(port, raw, *signed(monday, raw))
        assert status == 201, body
        tid = int(body["ticket"]["id"])
        (first,) = await smsc.count("submit", 1)
        assert first["to"] == JAN and f"#{tid} " in first["text"]

        def to(number: str) -> list[dict[str, Any]]:
            return [p for p in smsc.of("submit") if p["to"] == number]
        do(bed.nohold.config, monday, "tickets", "ack", str(tid), "--by", "jan")
        do(bed.nohold.config, monday, "tickets", "resolve", str(tid), "--by", "jan",
           "--note", "fibre spliced")

        # The follow-up is booked (at the loop's first pass after a restart, still Monday)
        # for the second working day after: Wednesday, in its window.
        bed.nohold.stop()
        bed.nohold.start()
        await bed.nohold.wait_ready(cb_box)
        assert await settles(lambda: "followup_scheduled" in bed.nohold.log(), 20)
        (row,) = await bed.rows()
        assert (row.number, row.scheduled, row.state.value) == (customer, True, "pending")
        assert row.due_at is not None and row.due_at.astimezone(WAW) == WEDNESDAY_TEN, row
        assert row.note == f"Follow-up of ticket #{tid}: fibre spliced"

        # Wednesday, a few seconds before ten: nothing yet; at ten the agent first.
        bed.nohold.stop()
        wednesday = Clock.at(WEDNESDAY_TEN - timedelta(seconds=6))
        bed.nohold.clock = wednesday
        started = wednesday.now()
        bed.nohold.start()
        await bed.nohold.wait_ready(cb_box)
        await bed.pause(False)
        join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                  and placeholder_of(row.id)(e), 30,
                                  what="the follow-up's placeholder at ten")
        leg = await bed.rec.wait(customer_leg(ANSWERS), 20, join.seq,
                                 what="the customer's leg")
        # Not before ten on nohold's Wednesday (Asterisk's clock runs `offset` behind).
        assert join.ts + wednesday.offset >= WEDNESDAY_TEN.timestamp() - 0.5, (
            join.ts + wednesday.offset, started)
        entered = bed.rec.find(lambda e: ari("ChannelEnteredBridge")(e)
                               and placeholder_of(row.id)(e)
                               and not e.channel_id.endswith("-q"))
        assert entered and entered[0].seq < leg.seq, bed.context()
        # The agent heard who it is for and the ticket with its fix, before the ring.
        # (On a channel: nohold's start-up check plays every prompt into its own bridges.)
        owner = bed.rec.find(lambda e: ari("PlaybackStarted")(e) and str(
            e.data["playback"]["media_uri"]).endswith("/callback_whisper_owner")
            and str(e.data["playback"]["target_uri"]).startswith("channel:"))
        assert owner, bed.context()
        target = str(owner[0].data["playback"]["target_uri"])
        note = await bed.rec.wait(
            lambda e: ari("PlaybackFinished")(e) and e.data["playback"]["target_uri"] == target
            and str(e.data["playback"]["media_uri"]).endswith(f"/{note_name_of(row)}"),
            15, owner[0].seq, what="the note read to the agent")
        assert heard_on(bed.rec, target)[:2] == ["callback_whisper_owner", note_name_of(row)]
        # ...and the whole of it before the customer's phone rang (a note is not cut
        # short by a quick answer).
        assert note.seq < leg.seq, bed.context()
        await bed.row_becomes(row.id, lambda r: r.attempts == 1, 20, "the attempt")

        # The agent records "not fixed": the ticket reopens and jan is texted again.
        said = do(bed.nohold.config, wednesday, "tickets", "followup", str(tid), "not-fixed",
                  "--by", "agent-a", "--note", "still down")
        assert "reopened" in said, said
        assert cli(bed.nohold.config, wednesday, "tickets", "show", str(tid))["state"] == "open"
        await smsc.wait_until(lambda: len(to(JAN)) >= 2, 20, "jan's second alert")
        assert f"#{tid} " in to(JAN)[1]["text"], to(JAN)
        assert bed.rec.count(customer_leg(ANSWERS)) == 1
        # The customer was told of the follow-up call by SMS, once.
        assert [p["text"] for p in to(customer.lstrip("+"))] == [
            "We will call you back from +48221234567 on 2026-12-09 between 10:00 and 12:00."]
