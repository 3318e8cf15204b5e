"""Faults from RELIABILITY.md that end with the caller served and a clear log line."""

from __future__ import annotations

import asyncio
import os

import pytest

from nohold.sandbox import start_sandbox
from nohold.sandbox.caller import ScriptedCaller

pytestmark = pytest.mark.e2e


async def test_second_nohold_with_the_same_app_makes_the_first_stand_down(asterisk,
                                                                          start_nohold):
    first = await start_nohold()
    second = await start_nohold()
    code = await asyncio.to_thread(first.proc.wait, 15)
    assert code == 3, first.log()
    assert "application_replaced" in first.log()
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
    assert "call_start" in second.log() and "call_start" not in first.log()


@pytest.fixture
def own_asterisk():
    """A sandbox of this test's own: it gets restarted."""
    box = start_sandbox(f"restart-{os.getpid()}")
    try:
        yield box
    finally:
        box.stop()


async def test_nohold_reconnects_after_asterisk_restarts(own_asterisk, start_nohold):
    app = await start_nohold(box=own_asterisk)
    own_asterisk.cli("core restart now")
    await asyncio.to_thread(own_asterisk.wait_fully_booted)
    await app.wait_ready(own_asterisk, timeout=30)
    async with ScriptedCaller(own_asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("3")
        await caller.wait_reached("person:operator", timeout=15)
    log = app.log()
    assert log.count("ari_events_connected") >= 2, log
    assert "ari_events_closed" in log or "ari_events_failed" in log
    assert app.proc.poll() is None, "nohold must survive an Asterisk restart"
