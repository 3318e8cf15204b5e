"""FastAGI notice_once against the real Asterisk: once per call, shared with the ARI IVR."""

from __future__ import annotations

import asyncio
import tomllib

import pytest

from nohold.sandbox.caller import ScriptedCaller

pytestmark = pytest.mark.e2e


def _agi_port(app) -> int:
    return int(tomllib.loads(app.config.read_text())["agi"]["port"])


async def test_notice_once_over_fastagi_then_the_ivr_does_not_repeat_it(asterisk, start_nohold,
                                                                       ledger_for, prompts):
    app = await start_nohold()
    port = _agi_port(app)
    context = f"agi-notice-{port}"
    report = "status: ${AGISTATUS}/${NOHOLD_AGI_STATUS},notice: ${NOHOLD_NOTICE}"
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI(agi://127.0.0.1:{port}/notice_once,${{CHANNEL(linkedid)}})
 same => n,UserEvent(NoholdAgi,step: first,{report})
 same => n,AGI(agi://127.0.0.1:{port}/notice_once)
 same => n,UserEvent(NoholdAgi,step: second,{report})
 same => n,Goto(nohold-ivr,s,1)
""")
    async with ScriptedCaller(asterisk, context=context, exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=30)
        agi = caller.userevents("NoholdAgi")
    assert [e["step"] for e in agi] == ["first", "second"]
    assert agi[0]["status"] == "SUCCESS/OK" and agi[0]["notice"] == "played"
    # The second AGI (no linkedid argument: it asks the channel) finds the row and skips.
    assert agi[1]["status"] == "SUCCESS/OK" and agi[1]["notice"] == "skipped"
    # The notice really played in the first AGI: it took as long as the recording.
    steps = [e for e in caller.timeline if e.type == "ChannelUserevent"]
    started = next(e.t for e in caller.timeline if e.type == "Dialplan"
                   and e.event.get("dialplan_app") == "AGI")
    assert steps[0].t - started >= prompts["notice"] - 0.3
    assert steps[1].t - steps[0].t < 1.0
    # ... and the ARI IVR did not play it again.
    assert not [m for m in caller.playbacks() if m.endswith("/notice")]
    row = await ledger_for(app).get(caller.linkedid)
    assert row.outcome == "completed"
    assert "via=agi" in app.log() and app.problems() == []


async def test_agi_to_an_unknown_script_lets_the_dialplan_go_on(asterisk, start_nohold):
    app = await start_nohold()
    port = _agi_port(app)
    context = f"agi-unknown-{port}"
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI(agi://127.0.0.1:{port}/nosuch)
 same => n,UserEvent(NoholdAgi,status: ${{AGISTATUS}}/${{NOHOLD_AGI_STATUS}})
 same => n,Goto(nohold-people,operator,1)
""")
    async with ScriptedCaller(asterisk, context=context, exten="s") as caller:
        await caller.wait_reached("person:operator", timeout=15)
    assert caller.userevents("NoholdAgi")[0]["status"] == "SUCCESS/UNKNOWN_SCRIPT"
    assert "fastagi_unknown_script" in app.log()


async def _forge(port: int, uniqueid: str, linkedid: str) -> list[str]:
    """A local process speaking FastAGI as if it were Asterisk running the call: the
    call's ids in the headers, then "200 result=1" to whatever nohold asks."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = {"agi_network": "yes", "agi_network_script": "notice_once",
           "agi_channel": "PJSIP/forged-00000001", "agi_uniqueid": uniqueid,
           "agi_linkedid": linkedid, "agi_callerid": "100", "agi_arg_1": linkedid}
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    commands = []
    while line := await asyncio.wait_for(reader.readline(), 15):
        commands.append(line.decode().strip())
        writer.write(b"200 result=1\n")
    writer.close()
    return commands


async def test_a_forging_local_peer_cannot_make_a_real_call_skip_the_notice(
        asterisk, start_nohold, ledger_for, prompts):
    app = await start_nohold()
    port = _agi_port(app)
    context = f"agi-forged-{port}"
    report = "status: ${AGISTATUS}/${NOHOLD_AGI_STATUS},notice: ${NOHOLD_NOTICE}"
    # The call waits (in steps, at most 30 s) until the test has forged its claim.
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,UserEvent(NoholdAgi,step: ready)
 same => n,Set(I=0)
 same => n(wait),GotoIf($["${{GLOBAL(FORGED_{port})}}" = "done" | ${{I}} > 300]?go)
 same => n,Set(I=$[${{I}} + 1])
 same => n,Wait(0.1)
 same => n,Goto(wait)
 same => n(go),AGI(agi://127.0.0.1:{port}/notice_once,${{CHANNEL(linkedid)}})
 same => n,UserEvent(NoholdAgi,step: real,{report})
 same => n,Hangup()
""")
    caller = ScriptedCaller(asterisk, context=context, exten="s")
    # Linkedids are predictable (here pre-assigned): claim the call before it exists ...
    forged = [await _forge(port, caller.dialplan_channel_id, caller.linkedid)]
    async with caller:
        await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                              and e.userevent.get("step") == "ready", timeout=15)
        # ... and again while it runs, naming its real channel.
        forged.append(await _forge(port, caller.dialplan_channel_id, caller.linkedid))
        # (ARI sets variables only on channels in Stasis; this one runs the dialplan.)
        await asyncio.to_thread(asterisk.cli, f"dialplan set global FORGED_{port} done")
        real = await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                                     and e.userevent.get("step") == "real", timeout=30)
    for commands in forged:
        assert commands[-1] == 'SET VARIABLE NOHOLD_AGI_STATUS "REFUSED"', commands
        assert not [c for c in commands if c.startswith(("ANSWER", "STREAM FILE"))]
    assert real.userevent["status"] == "SUCCESS/OK" and real.userevent["notice"] == "played"
    agi_started = next(e.t for e in caller.timeline if e.type == "Dialplan"
                       and e.event.get("dialplan_app") == "AGI")
    assert real.t - agi_started >= prompts["notice"] - 0.3  # the caller really heard it
    row = await ledger_for(app).get(caller.linkedid)
    assert row.outcome == "completed" and row.channel_id == caller.dialplan_channel_id
    assert app.log().count("agi_proof_failed peer=127.0.0.1:") == 2
    assert app.problems() == []
