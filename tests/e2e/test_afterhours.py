"""After hours against the real Asterisk 22: the calendar says closed, the caller hears the
notice once and "our partner will take your call", and a SIPp callee playing the partner
receives the INVITE with nohold's context headers. When the partner cannot take the call
(it rejects, or rings out), the caller leaves a voice message that becomes one ticket.
Everything counted from ARI events and SIPp's own message log, never slept for."""

from __future__ import annotations

import asyncio
import subprocess
import tomllib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.tickets import TicketRecord, TicketStore
from nohold.sandbox.caller import ScriptedCaller
from nohold.sandbox.sipp import SippCallee
from tests.support.nohold_process import run_cli, write_config
from tests.support.sweep import empty_sweep_dir

pytestmark = pytest.mark.e2e

WAW = ZoneInfo("Europe/Warsaw")
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
CALLER = "+48221234567"


def closed_calendar() -> dict[str, Any]:
    """Open around the clock, closed by an override (a storm) from yesterday to the day
    after tomorrow: closed now, whatever the day, with a known reason."""
    now = datetime.now(WAW)
    storm = {"from": (now - timedelta(days=1)).isoformat(timespec="minutes"),
             "to": (now + timedelta(days=2)).isoformat(timespec="minutes"), "note": "Storm"}
    return {"country": "", "default": "office", "office": {**ALL_DAY, "closed": [storm]}}


OPEN_CALENDAR = {"country": "", "default": "office", "office": ALL_DAY}


def recordings(asterisk: Any) -> Path:
    return asterisk.run_dir / "spool" / "recording"


def afterhours(asterisk: Any, trunks: list[str], **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "trunks": trunks, "ring_timeout": 5,
            "voicemail": {"recording_dir": asterisk.in_asterisk(recordings(asterisk)),
                          "silence_seconds": 3, "urgency": "urgent", "settle_seconds": 1,
                          "sweep_dir": empty_sweep_dir(asterisk)},
            **extra}


def notices(caller: ScriptedCaller) -> list[str]:
    return [m for m in caller.playbacks() if m.endswith("/notice")]


def joined_bridge(prefix: str):  # noqa: ANN201 - a timeline predicate
    return lambda e: e.type == "ChannelEnteredBridge" and e.detail.startswith(prefix)


@pytest.fixture
async def tickets_of() -> AsyncIterator[Any]:
    engines = []

    async def read(app: Any) -> list[TicketRecord]:
        engine = make_engine(f"sqlite:///{app.config.parent / 'nohold.db'}")
        engines.append(engine)
        return await TicketStore(engine).find()

    yield read
    for engine in engines:
        await engine.dispose()


def audio_rms(path: Path) -> float:
    """The recording's RMS amplitude, measured by sox: 0 for silence."""
    out = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True,
                         check=True, timeout=30).stderr
    line = next(line for line in out.splitlines() if line.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


async def test_out_of_hours_the_partner_gets_the_call_with_every_context_header(
        asterisk, start_nohold):
    """The first trunk refuses (503), the second answers: both INVITEs carry the headers,
    the notice was heard once and the partner is told so."""
    async with SippCallee("reject", code=503, reason="Service Unavailable") as first, \
            SippCallee("answer") as second:
        names = (f"partner-a-{first.port}", f"partner-b-{second.port}")
        asterisk.add_pjsip(first.pjsip(names[0]) + "\n" + second.pjsip(names[1]))
        app = await start_nohold({"calendar": closed_calendar(),
                                  "afterhours": afterhours(asterisk, list(names),
                                                           identify=True)})
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id=CALLER) as caller:
            await caller.wait_for_playback("/customer_number", timeout=20)
            await caller.press("123456#")
            await caller.wait_for_playback("/second_factor", timeout=10)
            await caller.press("0095#")
            await caller.wait_for_playback("/partner_intro", finished=True, timeout=15)
            await caller.wait_for(joined_bridge(f"PJSIP/{names[1]}-"), timeout=20)
        refused, answered = await first.finished(), await second.finished()
    assert refused.ok, refused.stderr
    assert answered.ok, answered.stderr
    assert len(notices(caller)) == 1, caller.format_timeline()
    heard = caller.playbacks()
    assert heard.index(notices(caller)[0]) < next(
        i for i, m in enumerate(heard) if m.endswith("/partner_intro"))
    assert not any(m.endswith("/main_menu") for m in heard), "out of hours: no menu"
    expected = {"x-nohold-call-id": caller.linkedid, "x-nohold-caller": CALLER,
                "x-nohold-customer": "123456", "x-nohold-reason": "closed-override",
                "x-nohold-notice-played": "1"}
    for partner in (first, second):
        invites = partner.received("INVITE")
        assert len(invites) == 1, invites
        got = {k: v for k, v in invites[0].items() if k.startswith("x-nohold-")}
        assert got == expected, invites[0]
    assert "call_to_partner" in app.log() and "reason=closed-override" in app.log()
    assert app.problems() == []


@pytest.mark.parametrize(("behaviour", "code"), [("reject", 486), ("no_answer", 0)])
async def test_partner_cannot_take_the_call_so_a_voice_message_becomes_one_ticket(
        asterisk, start_nohold, tickets_of, behaviour, code):
    async with SippCallee(behaviour, code=code or 486) as partner:
        trunk = f"partner-{partner.port}"
        asterisk.add_pjsip(partner.pjsip(trunk))
        app = await start_nohold({"calendar": closed_calendar(),
                                  "afterhours": afterhours(asterisk, [trunk])})
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id=CALLER) as caller:
            await caller.wait_for_playback("/partner_intro", finished=True, timeout=20)
            # Rejected at once, or rung out after ring_timeout (5 s): then the message.
            await caller.wait_for_playback("/partner_unavailable", finished=True, timeout=20)
            await caller.say("sound:demo-thanks")
            await caller.press("#")
            await caller.wait_for_playback("/partner_alerted", finished=True, timeout=15)
            await caller.wait_hungup(timeout=10)
        result = await partner.finished()
    assert result.ok, result.stderr
    assert len(partner.received("INVITE")) == 1
    assert len(notices(caller)) == 1, caller.format_timeline()
    tickets = await tickets_of(app)
    assert len(tickets) == 1, tickets
    ticket = tickets[0]
    expected_status = "BUSY" if behaviour == "reject" else "NOANSWER"
    name = f"nohold-vm-{caller.linkedid}-{expected_status}-{CALLER}.wav"
    assert (ticket.partner_id, ticket.channel, ticket.call_id, ticket.caller) == (
        f"vm-{caller.linkedid}", "voicemail", caller.linkedid, CALLER)
    assert (ticket.category, ticket.urgency, ticket.state) == ("other", "urgent", "open")
    assert f"{asterisk.in_asterisk(recordings(asterisk))}/{name}" in ticket.text
    assert f"({expected_status})" in ticket.text, ticket.text
    recording = recordings(asterisk) / name
    assert recording.stat().st_size > 8000  # more than a second of 8 kHz audio
    assert audio_rms(recording) > 0.001, "the caller's words, not silence"
    assert app.problems() == []


async def test_caller_who_hangs_up_after_speaking_still_gets_a_ticket_and_silence_none(
        asterisk, start_nohold, tickets_of):
    """Two callers the partner rejects: one hangs up right after speaking (no # key):
    a ticket; one hangs up at the prompt, before saying anything: none."""
    async with SippCallee("reject", code=486, calls=2) as partner:
        trunk = f"partner-{partner.port}"
        asterisk.add_pjsip(partner.pjsip(trunk))
        app = await start_nohold({"calendar": closed_calendar(),
                                  "afterhours": afterhours(asterisk, [trunk])})
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id=CALLER) as talker:
            await talker.wait_for_playback("/partner_unavailable", finished=True, timeout=30)
            await talker.say("sound:demo-thanks")
            await talker.hangup()
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s",
                                  caller_id="+48221230000") as silent:
            await silent.wait_for_playback("/partner_unavailable", timeout=30)
            await silent.hangup()
        result = await partner.finished()
    assert result.ok, result.stderr
    assert len(partner.received("INVITE")) == 2
    # The talker's ticket is written after the hang-up: wait for nohold to say so.
    await _log_line(app, "voicemail_none")
    await _log_line(app, "voicemail_ticket")
    tickets = await tickets_of(app)
    assert [t.call_id for t in tickets] == [talker.linkedid], tickets
    assert (recordings(asterisk) / f"nohold-vm-{talker.linkedid}-BUSY-{CALLER}.wav"
            ).stat().st_size > 8000
    # Any name: nothing of the silent caller's is kept.
    assert list(recordings(asterisk).glob(f"nohold-vm-{silent.linkedid}*")) == []
    assert app.problems() == []


async def test_a_message_left_while_nohold_was_down_becomes_a_ticket_once_it_runs(
        asterisk, start_nohold, tickets_of):
    """No nohold serves `nohold-afterhours`: Stasis fails in [nohold-partner] and Asterisk
    records the caller's message alone. The nohold started afterwards finds it and makes
    it one ticket, with the caller's number and the partner's answer from its name."""
    # A directory of its own: the session's holds other tests' messages, whose tickets
    # are in their own databases (the sweep would rightly ticket them here).
    directory = recordings(asterisk) / f"down-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    async with ScriptedCaller(asterisk, context="nohold-partner", exten="s",
                              variables={"NOHOLD_RECORDING_DIR":
                                         asterisk.in_asterisk(directory)},
                              caller_id=CALLER) as caller:
        await caller.wait_dialplan_app("Stasis", "nohold-afterhours", timeout=20)
        await caller.wait_dialplan_app("Record", timeout=20)
        await caller.say("sound:demo-thanks")
        await caller.hangup()
    # No Dial ran in this call: the partner's answer is empty in the name.
    name = f"nohold-vm-{caller.linkedid}-asterisk--{CALLER}.wav"
    assert (directory / name).stat().st_size > 8000, sorted(p.name for p in directory.iterdir())
    # A trunk that exists (nohold checks it at start) and is never dialled here.
    trunk = f"partner-unused-{caller.linkedid[:8]}"
    asterisk.add_pjsip(f"[{trunk}]\ntype = aor\ncontact = sip:partner@127.0.0.1:9\n\n"
                       f"[{trunk}]\ntype = endpoint\ntransport = transport-udp\n"
                       f"aors = {trunk}\ndisallow = all\nallow = ulaw\n")
    after = afterhours(asterisk, [trunk])
    after["voicemail"]["recording_dir"] = asterisk.in_asterisk(directory)
    after["voicemail"]["sweep_dir"] = str(directory)  # the chrooted Asterisk's, seen from here
    app = await start_nohold({"calendar": closed_calendar(), "afterhours": after})
    # At start it looks once; a message still settling (1 s unchanged) is looked at
    # again as soon as it has settled.
    await _log_line(app, "voicemail_ticket", timeout=20)
    tickets = await tickets_of(app)
    assert len(tickets) == 1, tickets
    ticket = tickets[0]
    assert (ticket.partner_id, ticket.channel, ticket.call_id, ticket.caller, ticket.state) == (
        f"vma-{caller.linkedid}", "voicemail", caller.linkedid, CALLER, "open")
    assert f"{asterisk.in_asterisk(directory)}/{name}" in ticket.text
    assert "via=asterisk" in app.log()
    assert app.problems() == []


async def test_during_opening_hours_the_ivr_runs_as_before(asterisk, start_nohold):
    async with SippCallee("answer") as partner:
        trunk = f"partner-{partner.port}"
        asterisk.add_pjsip(partner.pjsip(trunk))
        app = await start_nohold({"calendar": OPEN_CALENDAR,
                                  "afterhours": afterhours(asterisk, [trunk])})
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
            await caller.wait_for_playback("/main_menu", timeout=20)
            await caller.press("1")
            await caller.wait_reached("queue:tech", timeout=15)
    assert len(notices(caller)) == 1
    assert not any("/partner_" in m for m in caller.playbacks())
    assert partner.received("INVITE") == []
    assert app.problems() == []


async def _log_line(app: Any, text: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """nohold's log file has `text`: the service writes it as it happens; read until it
    does (the process's own output is the event here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in app.log():
        assert loop.time() < deadline, f"no {text!r} in the log within {timeout}s:\n" + "\n".join(
            line for line in app.log().splitlines() if "level=debug" not in line)
        await asyncio.sleep(0.1)



async def test_a_dialplan_that_bypasses_the_ivr_reaches_the_partner_through_fastagi(
        asterisk, start_nohold):
    """notice_once, then hours, then partner, then [nohold-partner]: the same headers,
    the reason from the hours route, and the prompt played by the dialplan."""
    async with SippCallee("answer") as partner:
        trunk = f"partner-{partner.port}"
        asterisk.add_pjsip(partner.pjsip(trunk))
        app = await start_nohold({"calendar": closed_calendar(),
                                  "afterhours": afterhours(asterisk, [trunk])})
        port = int(tomllib.loads(app.config.read_text())["agi"]["port"])
        context = f"bypass-{port}"
        agi = f"agi://127.0.0.1:{port}"
        asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI({agi}/notice_once)
 same => n,AGI({agi}/hours)
 same => n,GotoIf($["${{NOHOLD_OPEN}}" = "0"]?closed)
 same => n,Hangup()
 same => n(closed),AGI({agi}/partner)
 same => n,Goto(nohold-partner,s,1)
""")
        async with ScriptedCaller(asterisk, context=context, exten="s",
                                  caller_id=CALLER) as caller:
            await caller.wait_dialplan_app("Playback", "", timeout=20)
            await caller.wait_for(joined_bridge(f"PJSIP/{trunk}-"), timeout=30)
        answered = await partner.finished()
    assert answered.ok, answered.stderr
    played = [e.event.get("dialplan_app_data", "") for e in caller.timeline
              if e.type == "Dialplan" and e.event.get("dialplan_app") == "Playback"]
    assert played and played[0].endswith("/partner_intro"), caller.format_timeline()
    invite = partner.received("INVITE")[0]
    assert {k: v for k, v in invite.items() if k.startswith("x-nohold-")} == {
        "x-nohold-call-id": caller.linkedid, "x-nohold-caller": CALLER,
        "x-nohold-reason": "closed-override", "x-nohold-notice-played": "1"}
    assert "via=agi" in app.log()
    assert app.problems() == []


async def test_nohold_check_names_a_trunk_asterisk_does_not_have(asterisk, prompts, tmp_path):
    config = write_config(asterisk, tmp_path / "nohold.toml", {
        "calendar": closed_calendar(),
        "afterhours": afterhours(asterisk, ["no-such-partner"])})
    assert run_cli(config, "db", "upgrade").returncode == 0
    checked = await asyncio.to_thread(run_cli, config, "check")
    assert checked.returncode != 0
    assert "no PJSIP endpoint 'no-such-partner'" in checked.stdout + checked.stderr
