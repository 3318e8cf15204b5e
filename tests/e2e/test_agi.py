"""FastAGI notice_once against the real Asterisk: once per call, shared with the ARI IVR."""

from __future__ import annotations

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
