"""Classic AGI (`AGI(nohold-agi,...)`, one process per call) against the real Asterisk: the
notice once per call, counted from Asterisk's own AGI events, shared with FastAGI; the
`hours` script sets what the FastAGI route sets. The sandbox runs `nohold-agi` from
its agi-bin with the host's Python (nohold/sandbox/instance.py)."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.sandbox.caller import ScriptedCaller
from tests.support.asterisk_events import AsteriskEvents, Ev

pytestmark = pytest.mark.e2e

WAW = ZoneInfo("Europe/Warsaw")
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _agi_port(app) -> int:
    return int(tomllib.loads(app.config.read_text())["agi"]["port"])


def _notice_played(channel_id: str):
    """Asterisk's AMI AGIExecStart of a STREAM FILE of the notice on that channel."""
    def pred(e: Ev) -> bool:
        words = str(e.data.get("Command", "")).split()
        return (e.src == "ami" and e.type == "AGIExecStart" and e.channel_id == channel_id
                and words[:2] == ["STREAM", "FILE"] and words[2].endswith("/notice"))
    return pred


async def test_classic_agi_twice_in_a_call_plays_the_notice_once_and_fastagi_agrees(
        asterisk, start_nohold, ledger_for, prompts):
    app = await start_nohold()
    port = _agi_port(app)
    context = f"classic-notice-{port}"
    report = "status: ${AGISTATUS}/${NOHOLD_AGI_STATUS},notice: ${NOHOLD_NOTICE}"
    agi = f"nohold-agi,-c,{app.config}"
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI({agi},notice_once,${{CHANNEL(linkedid)}})
 same => n,UserEvent(NoholdAgi,step: first,played: ${{NOHOLD_NOTICE_PLAYED}},{report})
 same => n,Set(NOHOLD_NOTICE=)
 same => n,AGI({agi},notice_once)
 same => n,UserEvent(NoholdAgi,step: second,{report})
 same => n,Set(NOHOLD_NOTICE=)
 same => n,AGI(agi://127.0.0.1:{port}/notice_once)
 same => n,UserEvent(NoholdAgi,step: fastagi,{report})
 same => n,Hangup()
""")
    async with AsteriskEvents(asterisk) as rec:
        async with ScriptedCaller(asterisk, context=context, exten="s") as caller:
            await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                                  and e.userevent.get("step") == "fastagi", timeout=60)
        first, second, fastagi = caller.userevents("NoholdAgi")
        # Asterisk's own account: one STREAM FILE of the notice in the whole call.
        played = rec.find(_notice_played(caller.dialplan_channel_id))
        assert len(played) == 1, rec.dump(lambda e: e.type.startswith("AGIExec"))
    assert first == {**first, "status": "SUCCESS/OK", "notice": "played", "played": "1"}
    assert second == {**second, "status": "SUCCESS/OK", "notice": "skipped"}
    assert fastagi == {**fastagi, "status": "SUCCESS/OK", "notice": "skipped"}
    # The notice really played in the first AGI: it lasted as long as the recording.
    steps = [e for e in caller.timeline if e.type == "ChannelUserevent"]
    agi_started = next(e.t for e in caller.timeline if e.type == "Dialplan"
                       and e.event.get("dialplan_app") == "AGI")
    assert steps[0].t - agi_started >= prompts["notice"] - 0.3
    row = await ledger_for(app).get(caller.linkedid)
    assert row.outcome == "completed" and row.channel_id == caller.dialplan_channel_id
    # The classic processes logged to Asterisk's stderr; the service saw the skip only.
    out = asterisk.log_path.read_text(errors="replace")
    assert "notice_start" in out and "via=agi" in out
    assert "notice_start" not in app.log()
    assert app.problems() == []


async def test_classic_hours_sets_what_the_fastagi_route_sets(asterisk, start_nohold):
    now = datetime.now(WAW).replace(second=0, microsecond=0)
    until = now + timedelta(days=2)
    desk = {**ALL_DAY, "closed": [{"from": (now - timedelta(hours=1)).isoformat(),
                                   "to": until.isoformat(), "note": "Awaria łącza, (x)"}]}
    app = await start_nohold({"calendar": {"country": "", "default": "always",
                                           "always": ALL_DAY, "desk": desk}})
    port = _agi_port(app)
    context = f"classic-hours-{port}"
    agi = f"nohold-agi,-c,{app.config}"
    variables = ("NOHOLD_OPEN", "NOHOLD_CLOSED_REASON", "NOHOLD_CLOSED_DETAIL",
                 "NOHOLD_NEXT_CHANGE", "NOHOLD_AGI_STATUS")
    report = ",".join(f"{v}: ${{{v}}}" for v in variables) + ",AGISTATUS: ${AGISTATUS}"
    clear = "\n".join(f" same => n,Set({v}=)" for v in variables)
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI(agi://127.0.0.1:{port}/hours,desk)
 same => n,UserEvent(NoholdHours,via: fastagi,{report})
{clear}
 same => n,AGI({agi},hours,desk)
 same => n,UserEvent(NoholdHours,via: classic,{report})
{clear}
 same => n,AGI({agi},hours)
 same => n,UserEvent(NoholdHours,via: classic-default,{report})
 same => n,AGI({agi},hours,nosuch)
 same => n,UserEvent(NoholdHours,via: classic-unknown,{report})
 same => n,AGI({agi},nosuch)
 same => n,UserEvent(NoholdHours,via: classic-no-route,{report})
 same => n,Hangup()
""")
    async with ScriptedCaller(asterisk, context=context, exten="s") as caller:
        await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                              and e.userevent.get("via") == "classic-no-route", timeout=60)
    fast, classic, default, unknown, no_route = caller.userevents("NoholdHours")
    same = {k: v for k, v in fast.items() if k != "via"}
    assert same == {k: v for k, v in classic.items() if k != "via"}
    assert same == {**same, "NOHOLD_OPEN": "0", "NOHOLD_CLOSED_REASON": "override",
                    "NOHOLD_CLOSED_DETAIL": "Awaria lacza x",
                    "NOHOLD_NEXT_CHANGE": until.isoformat(), "NOHOLD_AGI_STATUS": "OK",
                    "AGISTATUS": "SUCCESS"}
    assert default == {**default, "NOHOLD_OPEN": "1", "NOHOLD_AGI_STATUS": "OK"}
    assert unknown["NOHOLD_AGI_STATUS"] == "UNKNOWN_CALENDAR"
    # A bad argument: the dialplan went on, told why.
    assert no_route == {**no_route, "NOHOLD_AGI_STATUS": "UNKNOWN_SCRIPT",
                        "AGISTATUS": "SUCCESS"}
    assert "nohold-agi: no route 'nosuch'" in asterisk.messages_log.read_text(errors="replace")
    assert app.problems() == []
