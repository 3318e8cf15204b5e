"""After hours, end to end: the partner's signed webhook reaches the real `nohold run`,
the on-duty technician's phone (a real SMSC, node-smpp) gets the SMS, the next person
gets one when nobody acknowledges, a reply acknowledges, and a `kill -9` while the
SMSC refuses nohold loses no alert and sends none twice. Counted from what the SMSC
saw and from the database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from nohold.decisions.tickets import sign
from tests.support.asterisk_events import AsteriskEvents, ari
from tests.support.leaks import wait_until
from tests.support.nohold_process import run_cli
from tests.support.smsc import Smsc

TOKEN = "e2e-http-token-0123456789-abcdef"
SECRET = "e2e-partner-secret-0123456789abcdef-0123"
JAN, EWA = "48601000001", "48601000002"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    async with Smsc.start() as peer:
        yield peer


def overrides(smsc: Smsc, port: int, **alerts: Any) -> dict[str, Any]:
    return {
        "http": {"enabled": True, "port": port, "token": TOKEN},
        "tickets": {"enabled": True, "secret": SECRET},
        "alerts": {"enabled": True, "tickets": "all", "ack_within": 4, "rounds": 1,
                   "people": {"jan": {"mobile": "+" + JAN}, "ewa": {"mobile": "+" + EWA}},
                   "fallback": ["ewa", "jan"], **alerts},
        "sms": {"enabled": True,
                "smpp": {"host": "127.0.0.1", "port": smsc.port,
                         "system_id": smsc.system_id, "password": smsc.password,
                         "source": "nohold", "enquire_every": 5}},
    }


async def report(port: int, partner_id: str, urgency: str = "urgent") -> int:
    """The partner's signed POST; the ticket's id."""
    raw = json.dumps({"id": partner_id, "caller": "+48221234567", "category": "outage",
                      "urgency": urgency, "text": "No internet in Zalesie"}).encode()
    ts = str(int(time.time()))
    headers = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": sign(SECRET.encode(), ts, raw),
               "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/partner/tickets", data=raw, headers=headers,
            timeout=aiohttp.ClientTimeout(total=10)) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return int(body["ticket"]["id"])


async def settles(check: Any, timeout: float) -> bool:
    """Polls a state another process settles (a row nohold writes), without blocking
    the loop that records Asterisk's events."""
    for _ in range(int(timeout / 0.25) + 1):
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.25)
    return False


def ticket(config: Any, tid: int) -> dict[str, Any]:
    result = run_cli(config, "tickets", "show", str(tid), "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


async def test_a_partner_ticket_texts_the_on_duty_then_the_next_until_a_reply(
        smsc, start_nohold):
    port = free_port()
    nohold = await start_nohold(overrides(smsc, port))
    await smsc.next_event("bind")
    posted = time.time()
    tid = await report(port, "P-100")
    (first,) = await smsc.count("submit", 1)
    assert (first["to"], first["from"]) == (EWA, "nohold")
    assert first["text"].startswith(f"nohold #{tid} URGENT outage from +48221234567")
    print(f"\nwebhook -> first SMS at the SMSC: {first['t'] - posted:.3f} s")
    # nobody answers within ack_within (4 s): the next in the order
    second = (await smsc.count("submit", 2, timeout=15))[1]
    assert second["to"] == JAN
    assert second["t"] - first["t"] >= 4 - 0.05, (first["t"], second["t"])
    await smsc.command(cmd="mo", **{"from": JAN, "text": f"ACK {tid}"})
    confirmation = (await smsc.count("submit", 3))[2]
    assert (confirmation["to"], confirmation["text"]) == (
        JAN, f"nohold #{tid} acknowledged by jan. Alerts stopped.")
    t = ticket(nohold.config, tid)
    assert (t["state"], t["acknowledged_by"]) == ("acknowledged", "jan")
    # the loop sees the acknowledgement at its next pass and ends the run
    assert wait_until(lambda: "alert_run_stopped" in nohold.log(), 10), nohold.log()[-2000:]
    await smsc.command(cmd="receipt", message_id=first["message_id"], stat="DELIVRD")
    await smsc.next_event("deliver_resp", after=len(smsc.events) - 3)
    shown = run_cli(nohold.config, "alerts", "show", str(tid), "--json")
    alerts = json.loads(shown.stdout)["alerts"]
    assert [(a["step"], a["state"]) for a in alerts] == [
        ("r1:sms:ewa", "delivered"), ("r1:sms:jan", "sent")]
    assert [(r["state"], r["why"]) for r in json.loads(shown.stdout)["runs"]] == [
        ("stopped", "acknowledged")]
    assert nohold.problems() == []


async def test_kill_9_while_the_smsc_refuses_us_loses_no_alert_and_doubles_none(
        smsc, start_nohold, asterisk):
    port = free_port()
    await smsc.command(cmd="refuse_binds", value=True)
    nohold = await start_nohold(overrides(smsc, port, ack_within=60))
    tid = await report(port, "P-200")
    await smsc.next_event("bind_refused")
    # the alert is promised in the database, waiting for the SMSC
    nohold.stop(signal.SIGKILL)
    refusals = len(smsc.of("bind_refused"))
    await smsc.command(cmd="refuse_binds", value=False)
    nohold.start()
    await nohold.wait_ready(asterisk)
    await smsc.count("bind", 1, timeout=30)
    (sms,) = await smsc.count("submit", 1, timeout=30)
    assert sms["to"] == EWA and f"#{tid} " in sms["text"]
    assert refusals >= 1
    # a second restart does not send it again (the step is done)
    nohold.stop(signal.SIGKILL)
    nohold.start()
    await nohold.wait_ready(asterisk)
    await smsc.count("bind", 2, timeout=30)
    await report(port, "P-201")  # a later ticket proves the loop ran after the restart
    sent = await smsc.count("submit", 2, timeout=30)
    assert [s["text"].split(" ", 2)[1] for s in sent] == [f"#{tid}", f"#{tid + 1}"]


# -- the voice call ---------------------------------------------------------------------
PHONES = """
[alert-phones]
; The technicians' phones (alerts.dial = "context:alert-phones").
; jan answers, listens to the start of the alert, presses 1 and stays on.
exten => 48601000001,1,UserEvent(AlertPhone,number: ${EXTEN},cid: ${CALLERID(num)})
 same => n,Answer()
 same => n,Wait(4)
 same => n,SendDTMF(1)
 same => n,Wait(30)
 same => n,Hangup()
; ewa's phone rings and nobody answers.
exten => 48601000002,1,UserEvent(AlertPhone,number: ${EXTEN},cid: ${CALLERID(num)})
 same => n,Ringing()
 same => n,Wait(60)
"""


@pytest.fixture(scope="module")
def phone_box() -> Any:
    from nohold.config import PromptSettings
    from nohold.prompts import build_prompts
    from nohold.sandbox.instance import start_sandbox

    box = start_sandbox(f"alerts-{os.getpid()}", extra_dialplan=PHONES)
    try:
        build_prompts(PromptSettings(dir=box.prompts_dir))
        yield box
    finally:
        box.stop()


async def test_nobody_answers_the_sms_so_the_pbx_calls_and_press_1_acknowledges(
        smsc, phone_box, start_nohold):
    port = free_port()
    async with AsteriskEvents(phone_box) as rec:
        nohold = await start_nohold(overrides(
            smsc, port, call=True, ack_within=3, dial="context:alert-phones",
            dial_format="e164_digits", caller_id="+48221234567", ring_timeout=5),
            box=phone_box)
        tid = await report(port, "P-300")
        # ewa: SMS, then a call she does not answer; jan: SMS, then a call he answers
        # (3 + 5 + 3 + the call: ~15 s)
        assert await settles(lambda: ticket(nohold.config, tid)["state"] == "acknowledged",
                             45), nohold.log()[-6000:]
        t = ticket(nohold.config, tid)
        assert t["acknowledged_by"] == "jan"
        calls = [e.channel_id for e in rec.find(ari("ChannelCreated"))
                 if e.channel_id.startswith("nohold-alert-") and ";" not in e.channel_id]
        assert len(calls) == 2, calls  # ewa's (unanswered), jan's; not their Local ;2
        heard = [e.data["playback"]["media_uri"].rsplit("/", 1)[-1]
                 for e in rec.find(ari("PlaybackStarted"))
                 if e.data["playback"]["target_uri"] == f"channel:{calls[1]}"]
        assert heard[0] == "alert_intro" and heard[-1] == "alert_acknowledged", heard
        assert any(h.startswith(f"ticket-{tid}-") for h in heard), heard
        assert [s["to"] for s in smsc.of("submit")] == [EWA, JAN]
        assert wait_until(lambda: "alert_run_stopped" in nohold.log(), 10)
        # the call's row is written when the call ends (after "acknowledged, goodbye")
        assert await settles(lambda: "step=r1:call:jan person=jan state=acknowledged"
                             in nohold.log(), 20)
        shown = run_cli(nohold.config, "alerts", "show", str(tid), "--json")
        steps = [(a["step"], a["state"]) for a in json.loads(shown.stdout)["alerts"]]
        assert steps == [("r1:sms:ewa", "sent"), ("r1:call:ewa", "unanswered"),
                         ("r1:sms:jan", "sent"), ("r1:call:jan", "acknowledged")]
        events = t["events"]
        assert [(e["kind"], e["via"], e["actor"]) for e in events
                if e["kind"] == "acknowledged"] == [("acknowledged", "call", "jan")]
        assert nohold.problems() == []
