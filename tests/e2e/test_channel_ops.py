"""The channel building blocks of outbound features against the real Asterisk 22:
originate and its typed outcomes, caller id, variables, hang-up, mixing bridges.

The app under test runs on StasisRuntime with an AriClient that subscribes to
nothing: it proves that an app receives the Dial and ChannelDestroyed events of
the channels it originates (and the events of its bridges) without asking.
`ari_events` is a separate observer subscribed to every channel and bridge.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nohold.ari_apps.ari_client import AriClient, AriConflict
from nohold.ari_apps.bridge import BridgeGone
from nohold.ari_apps.channel import CallerHungUp, Channel, Originations, originate
from nohold.ari_apps.runtime import StasisRuntime
from nohold.decisions.dial import DialOutcome
from nohold.sandbox.instance import free_port

CONTEXT = "nohold-test-chanops"
DIALPLAN = f"""
[{CONTEXT}]
exten => answer,1,Answer()
 same => n,UserEvent(ChanopsCallerId,num: ${{CALLERID(num)}},name: ${{CALLERID(name)}})
 same => n,Wait(30)
 same => n,Hangup()
exten => busy,1,Busy()
exten => ring,1,Ringing()
 same => n,Wait(30)
exten => congestion,1,Congestion()
exten => reject,1,Ringing()
 same => n,Hangup(21)
"""
SCENARIOS = Path(__file__).resolve().parents[2] / "nohold" / "sandbox" / "scenarios"


class OutboundOnly:
    """A feature with no inbound flow: every leg here is originated by the test."""

    name = "chanops"

    async def run_call(self, ch: Channel) -> None:
        raise AssertionError(f"unexpected inbound StasisStart {ch.id}")

    def fallback(self, ch: Channel | None) -> None:
        return None


@pytest.fixture(scope="module")
def chanops_dialplan(asterisk):
    asterisk.add_dialplan(DIALPLAN)


@pytest.fixture
async def runtime(asterisk, chanops_dialplan) -> AsyncIterator[StasisRuntime]:
    ari = AriClient(asterisk.ari_url, asterisk.ari_user, asterisk.ari_password,
                    f"nohold-chanops-{uuid.uuid4().hex[:8]}")
    rt = StasisRuntime(ari, OutboundOnly())
    task = asyncio.create_task(rt.run())
    await asyncio.wait_for(rt.connected.wait(), 10)
    try:
        yield rt
    finally:
        await rt.shutdown(grace=2)
        task.cancel()
        await ari.close()


def local(exten: str) -> str:
    return f"Local/{exten}@{CONTEXT}"


async def test_answered_originate_gives_the_channel_with_caller_id_and_variables(
    runtime, ari_events
):
    channel_id, far_id = str(uuid.uuid4()), str(uuid.uuid4())
    ob = await runtime.originate(local("answer"), channel_id=channel_id,
                                 other_channel_id=far_id, caller_id='"Agent Smith" <4801>',
                                 variables={"NOHOLD_ORIGIN": "dialer"})
    result = await ob.result(timeout=10)
    assert result.outcome is DialOutcome.ANSWERED, result
    ch = result.channel
    assert ch is not None and ch.id == channel_id
    assert result.dialstatus == "ANSWER"

    seen = await ari_events.find(lambda e: e["type"] == "ChannelUserevent"
                                 and e["channel"]["id"] == far_id)
    assert seen["userevent"]["num"] == "4801"
    assert seen["userevent"]["name"] == "Agent Smith"

    assert await ch.get_var("NOHOLD_ORIGIN") == "dialer"
    await ch.set_vars({"NOHOLD_STEP": "bridged"})
    assert await ch.get_var("NOHOLD_STEP") == "bridged"
    # ARI's 404 for an unset variable is not a hang-up.
    assert await ch.get_var("NOHOLD_NEVER_SET") is None

    await ch.hangup()
    await ari_events.find(lambda e: e["type"] == "ChannelDestroyed"
                          and e["channel"]["id"] == channel_id)
    await ch.hangup()  # already gone: a 404, which is success
    with pytest.raises(CallerHungUp):
        await ch.get_var("NOHOLD_ORIGIN")
    assert channel_id not in runtime.originations


@pytest.mark.parametrize(
    ("exten", "timeout", "outcome", "dialstatus", "cause"),
    [
        # Through a Local channel BUSY/CONGESTION are only in Dial: the cause is 0.
        ("busy", 10, DialOutcome.BUSY, "BUSY", 0),
        ("congestion", 10, DialOutcome.CONGESTION, "CONGESTION", 0),
        # The ring timeout: no final Dial status, cause 19.
        ("ring", 2, DialOutcome.NO_ANSWER, "RINGING", 19),
        # Dial says NOANSWER, the cause (21) says rejected.
        ("reject", 10, DialOutcome.REJECTED, "NOANSWER", 21),
        # No such extension: the Local channel is never dialled, no Dial event at all.
        ("no-such-exten", 10, DialOutcome.UNREACHABLE, "", 0),
    ],
)
async def test_unanswered_originate_outcome(runtime, exten, timeout, outcome, dialstatus, cause):
    ob = await runtime.originate(local(exten), timeout=timeout)
    result = await ob.result(timeout=timeout + 10)
    assert (result.outcome, result.dialstatus, result.cause) == (outcome, dialstatus, cause)
    assert result.channel is None
    assert ob.id not in runtime.originations
    assert ob.id not in runtime.channels


async def test_unknown_endpoint_is_unreachable_and_never_placed(runtime):
    # Asterisk 22 answers 500 "Allocation failed" here, not 422.
    ob = await runtime.originate("PJSIP/nohold-no-such-endpoint", timeout=2)
    result = await ob.result(timeout=1)
    assert result.outcome is DialOutcome.UNREACHABLE
    assert result.detail.startswith("500"), result.detail


async def test_channel_id_in_use_is_a_conflict(runtime, asterisk):
    ob = await runtime.originate(local("ring"), timeout=10)
    # The runtime's own registry refuses a second pending leg with the same id ...
    with pytest.raises(ValueError, match="already being originated"):
        await runtime.originate(local("ring"), channel_id=ob.id)
    # ... and Asterisk refuses the id when another app (registry) tries it: 409.
    async with AriClient(asterisk.ari_url, asterisk.ari_user, asterisk.ari_password,
                         runtime.app) as other:
        try:
            dup = await originate(other, local("ring"), app=runtime.app,
                                  originations=Originations(), channel_id=ob.id)
        except AriConflict:
            pass
        else:
            pytest.fail(f"no 409 for a channel id in use; it ended {await dup.result(5)}")
    # The first leg is untouched and still resolves by its events.
    assert ob.id in runtime.originations
    await ob.cancel()
    result = await ob.result(timeout=10)
    # Our own cancel of a ringing leg is CANCELLED: what Asterisk reports for it
    # races with the dial (NOANSWER/16 mostly, seen otherwise 2 in 40 under load).
    assert result.outcome is DialOutcome.CANCELLED, result
    assert result.channel is None


async def test_sip_callee_486_is_busy_with_tech_cause(runtime):
    sipp = shutil.which("sipp")
    assert sipp is not None, "apt-get install sip-tester"
    port = free_port(socket.SOCK_DGRAM)
    # A late bind is harmless: Asterisk retransmits the INVITE over UDP.
    callee = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SCENARIOS / "uas_busy.xml"), "-i", "127.0.0.1", "-p", str(port),
        "-m", "1", "-nostdin", "-timeout", "20s",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ob = await runtime.originate(f"PJSIP/sipp/sip:customer@127.0.0.1:{port}", timeout=10)
        result = await ob.result(timeout=20)
        assert (result.outcome, result.dialstatus, result.cause, result.tech_cause) == (
            DialOutcome.BUSY, "BUSY", 17, 486)
        _, err = await asyncio.wait_for(callee.communicate(), 20)
        assert callee.returncode == 0, err
    finally:
        if callee.returncode is None:
            callee.kill()
            await callee.wait()


async def test_mixing_bridge_add_play_remove_destroy(runtime, ari_events):
    agent = await (await runtime.originate(local("answer"))).result(timeout=10)
    customer = await (await runtime.originate(local("answer"))).result(timeout=10)
    assert agent.channel is not None and customer.channel is not None
    a, c = agent.channel, customer.channel

    bridge = await runtime.create_bridge()
    await bridge.add(a, c)
    entered = {a.id: 0, c.id: 0}
    for ch_id in entered:
        await ari_events.find(lambda e, i=ch_id: e["type"] == "ChannelEnteredBridge"
                              and e["channel"]["id"] == i and e["bridge"]["id"] == bridge.id)

    assert await asyncio.wait_for(bridge.play("sound:beep"), 10) == "done"
    # One playback; an observer subscribed to every channel and bridge gets its
    # events twice (through the bridge and through the bridge's announcer channel).
    started = {e["playback"]["id"] for e in ari_events.seen if e["type"] == "PlaybackStarted"
               and e["playback"]["target_uri"] == f"bridge:{bridge.id}"}
    assert len(started) == 1

    await bridge.remove(a)
    await ari_events.find(lambda e: e["type"] == "ChannelLeftBridge"
                          and e["channel"]["id"] == a.id and e["bridge"]["id"] == bridge.id)
    await bridge.remove(a)  # not in the bridge any more: nothing to do

    await bridge.destroy()
    await ari_events.find(lambda e: e["type"] == "BridgeDestroyed"
                          and e["bridge"]["id"] == bridge.id)
    await asyncio.wait_for(bridge.gone.wait(), 5)
    assert bridge.id not in runtime.bridges
    await bridge.destroy()  # 404: already gone, success
    with pytest.raises(BridgeGone):
        await bridge.play("sound:beep")

    # Both legs outlive the bridge in the app until hung up.
    assert not a.gone.is_set() and not c.gone.is_set()
    await a.hangup()
    await c.hangup()
    for ch_id in (a.id, c.id):
        await ari_events.find(lambda e, i=ch_id: e["type"] == "ChannelDestroyed"
                              and e["channel"]["id"] == i)
