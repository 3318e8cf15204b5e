"""FastAGI `hours` against the real Asterisk: the dialplan branches on NOHOLD_OPEN, and a
supervisor's `nohold hours override add` closes the line while nohold runs."""

from __future__ import annotations

import asyncio
import time
import tomllib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.sandbox.caller import ScriptedCaller
from tests.support.nohold_process import run_cli

pytestmark = pytest.mark.e2e

WAW = ZoneInfo("Europe/Warsaw")
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# Open around the clock, no public holidays: the answer does not depend on today.
CALENDAR = {"country": "", "default": "always", "always": ALL_DAY, "desk": ALL_DAY}
REFRESH = 5.0  # nohold.calendar.book.REFRESH_SECONDS


async def test_the_dialplan_asks_the_calendar_and_sees_an_override_without_a_restart(
        asterisk, start_nohold):
    app = await start_nohold({"calendar": CALENDAR})
    port = int(tomllib.loads(app.config.read_text())["agi"]["port"])
    context = f"agi-hours-{port}"
    agi = f"agi://127.0.0.1:{port}/hours"
    report = ("status: ${AGISTATUS}/${NOHOLD_AGI_STATUS},open: ${NOHOLD_OPEN},"
              "reason: ${NOHOLD_CLOSED_REASON},detail: ${NOHOLD_CLOSED_DETAIL},"
              "next: ${NOHOLD_NEXT_CHANGE}")
    # The desk is asked every 0.25 s (at most ~30 s) until it says closed.
    asterisk.add_dialplan(f"""
[{context}]
exten => s,1,Answer()
 same => n,AGI({agi})
 same => n,UserEvent(NoholdHours,step: default,{report})
 same => n,AGI({agi},nosuch)
 same => n,UserEvent(NoholdHours,step: unknown,status: ${{AGISTATUS}}/${{NOHOLD_AGI_STATUS}})
 same => n,AGI({agi},Desk)
 same => n,UserEvent(NoholdHours,step: bad,status: ${{AGISTATUS}}/${{NOHOLD_AGI_STATUS}})
 same => n,Set(I=0)
 same => n(ask),AGI({agi},desk)
 same => n,GotoIf($["${{NOHOLD_OPEN}}" != "1" | ${{I}} > 120]?done)
 same => n,Set(I=$[${{I}} + 1])
 same => n,Wait(0.25)
 same => n,Goto(ask)
 same => n(done),UserEvent(NoholdHours,step: desk,asked: ${{I}},{report})
 same => n,Hangup()
""")
    until = (datetime.now(WAW) + timedelta(days=2)).replace(second=0, microsecond=0)
    async with ScriptedCaller(asterisk, context=context, exten="s") as caller:
        await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                              and e.userevent.get("step") == "bad", timeout=15)
        # The call is asking the desk over and over, and hearing "open".
        added = await asyncio.to_thread(
            run_cli, app.config, "hours", "override", "add", "--calendar", "desk",
            "--from", datetime.now(WAW).isoformat(timespec="minutes"),
            "--to", until.isoformat(timespec="minutes"), "--note", "Awaria łącza, (x)")
        added_at = time.monotonic()
        assert added.returncode == 0, added.stderr
        await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                              and e.userevent.get("step") == "desk", timeout=30)
        closed_after = time.monotonic() - added_at
    default, unknown, bad, desk = caller.userevents("NoholdHours")
    assert default == {**default, "status": "SUCCESS/OK", "open": "1", "reason": "",
                       "detail": "", "next": ""}  # open around the clock: no change ahead
    assert unknown["status"] == "SUCCESS/UNKNOWN_CALENDAR"
    assert bad["status"] == "SUCCESS/BAD_INPUT"
    assert desk == {**desk, "status": "SUCCESS/OK", "open": "0", "reason": "override",
                    "detail": "Awaria lacza x", "next": until.isoformat()}
    assert int(desk["asked"]) >= 1  # it was open before the override was added
    # The service read the new override within its refresh, without a restart.
    assert closed_after < REFRESH + 3.0, closed_after
    log = app.log()
    assert "agi_unknown_calendar" in log and "agi_bad_input" in log
    assert "calendar=desk open=0 reason=override" in log
    assert app.problems() == []
