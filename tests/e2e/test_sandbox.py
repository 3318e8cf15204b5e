"""The sandbox itself, against a real Asterisk: if these fail, no e2e result means anything."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriNotFound
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller
from nohold.sandbox.sipp import arun_sipp_call, render_scenario
from tests.support.events import Events, client_for

pytestmark = pytest.mark.e2e

# A context reached over SIP: the sipp endpoint lands in [nohold-inbound], where an
# exact extension beats the product dialplan's catch-all pattern.
SIPP_READ_DIALPLAN = """
[nohold-inbound]
exten => 7001,1,Goto(sandbox-test-read,s,1)

[sandbox-test-read]
exten => s,1,Answer()
 same => n,Read(X,,4,,,5)
 same => n,UserEvent(Got,digits: ${X})
 same => n,Hangup()

[sandbox-test-hold]
exten => s,1,Answer()
 same => n,Read(X,,2,,,5)
 same => n,UserEvent(Held,digits: ${X})
 same => n,Wait(20)
 same => n,Hangup()

[nohold-inbound]
exten => 7002,1,Goto(sandbox-test-hold,s,1)

[sandbox-test-userevent]
exten => s,1,Answer()
 same => n,UserEvent(SandboxProbe,var: ${PROBE_VAR},target: queue:tech)
 same => n,Read(X,,3,,,5)
 same => n,UserEvent(Got,digits: ${X})
 same => n,Hangup()
"""


@pytest.fixture(scope="module")
def sandbox(asterisk: Sandbox) -> Sandbox:
    asterisk.add_dialplan(SIPP_READ_DIALPLAN)
    return asterisk


@pytest.fixture
def private_sandbox() -> Iterator[Sandbox]:
    """A sandbox of the test's own, for tests that register app names (nohold-ivr)
    which must not collide with apps other tests run on the session sandbox."""
    sb = start_sandbox(f"pytest-private-{uuid.uuid4().hex[:6]}")
    try:
        yield sb
    finally:
        sb.stop()


def test_core_show_version_is_22(sandbox: Sandbox) -> None:
    assert "Asterisk 22." in sandbox.cli("core show version")


def test_modules_needed_by_nohold_are_running(sandbox: Sandbox) -> None:
    out = sandbox.cli("module show")
    for mod in (
        "app_queue.so",
        "res_musiconhold.so",
        "res_ari.so",
        "app_stasis.so",
        "chan_pjsip.so",
        "res_pjsip_dtmf_info.so",
        "app_userevent.so",
    ):
        assert mod in out, mod
    assert "tech" in sandbox.cli("queue show tech")
    assert "default" in sandbox.cli("moh show classes")


async def test_ari_asterisk_info_with_sandbox_credentials(sandbox: Sandbox) -> None:
    async with AriClient(sandbox.ari_url, sandbox.ari_user, sandbox.ari_password, "t") as c:
        info = await c.request("GET", "/asterisk/info")
    assert info["system"]["version"].startswith("22.")
    async with AriClient(sandbox.ari_url, sandbox.ari_user, "wrong", "t") as bad:
        with pytest.raises(Exception, match="401"):
            await bad.request("GET", "/asterisk/info")


async def test_userevent_reaches_an_app_subscribed_to_all_channels(sandbox: Sandbox) -> None:
    """UserEvent in dialplan -> ChannelUserevent on a socket subscribed to all
    channels; DTMF sent to
    the Stasis half of a Local pair reaches Read() on the dialplan half."""
    client = client_for(sandbox, f"test-{uuid.uuid4().hex[:8]}")
    events = Events(client)
    try:
        await events.find(lambda e: e["type"] == CONNECTED_EVENT)
        ours, other = str(uuid.uuid4()), str(uuid.uuid4())
        await client.request(
            "POST",
            "/channels",
            params={
                "endpoint": "Local/s@sandbox-test-userevent",
                "app": client.app,
                "channelId": ours,
                "otherChannelId": other,
            },
            json={"variables": {"PROBE_VAR": "hello"}},
        )
        ev = await events.find(
            lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "SandboxProbe"
        )
        assert ev["channel"]["id"] == other  # the ;2 half runs the dialplan
        assert ev["userevent"]["var"] == "hello"  # originate variables reach ;2
        assert ev["userevent"]["target"] == "queue:tech"  # "k: v" with a colon in v
        await events.find(lambda e: e["type"] == "StasisStart" and e["channel"]["id"] == ours)
        await client.request("POST", f"/channels/{ours}/dtmf", params={"dtmf": "123"})
        got = await events.find(
            lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "Got"
        )
        assert got["userevent"]["digits"] == "123"
    finally:
        await events.close()


async def test_sipp_info_digits_reach_read(sandbox: Sandbox) -> None:
    """A real SIP call: PJSIP matches the sipp endpoint by IP, INFO digits reach Read();
    Asterisk hangs up first here and the scenario still counts the call as good."""
    client = client_for(sandbox, f"test-{uuid.uuid4().hex[:8]}")
    events = Events(client)
    try:
        await events.find(lambda e: e["type"] == CONNECTED_EVENT)
        result = await arun_sipp_call(sandbox, "7001", digits="4321", hold_seconds=1)
        assert result.ok, result.stdout[-2000:] + result.stderr
        got = await events.find(
            lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "Got"
        )
        assert got["userevent"]["digits"] == "4321"
        assert got["channel"]["name"].startswith("PJSIP/sipp-")
    finally:
        await events.close()


async def test_sipp_hangs_up_itself_after_hold(sandbox: Sandbox) -> None:
    client = client_for(sandbox, f"test-{uuid.uuid4().hex[:8]}")
    events = Events(client)
    try:
        await events.find(lambda e: e["type"] == CONNECTED_EVENT)
        started = time.monotonic()
        result = await arun_sipp_call(sandbox, "7002", digits="9#", hold_seconds=0.5)
        assert result.ok, result.stdout[-2000:] + result.stderr
        held = await events.find(
            lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "Held"
        )
        assert held["userevent"]["digits"] == "9"  # '#' ends Read()
        await events.find(
            lambda e: (
                e["type"] == "ChannelDestroyed" and e["channel"]["id"] == held["channel"]["id"]
            )
        )
        assert time.monotonic() - started < 15  # SIPp's BYE ended it, not the Wait(20)
    finally:
        await events.close()


def test_render_scenario_rejects_non_dtmf() -> None:
    with pytest.raises(ValueError):
        render_scenario("12x")
    text = render_scenario("1#", hold_seconds=2)
    assert text.count("INFO [next_url]") == 2
    assert "Signal=#" in text and "CSeq: 4 BYE" in text and 'milliseconds="2000"' in text


async def test_scripted_caller_without_ivr_falls_back_to_operator(
    private_sandbox: Sandbox,
) -> None:
    """Product dialplan: with no nohold-ivr app registered, Stasis() fails and the
    caller still reaches a person (RELIABILITY.md)."""
    async with ScriptedCaller(private_sandbox, exten="5551234") as caller:
        await caller.wait_dialplan_app("Stasis", "nohold-ivr")
        await caller.wait_reached("person:operator", timeout=15)
        # the operator answers, so our phone half enters our own Stasis app
        await caller.wait_for(lambda e: e.type == "StasisStart" and e.channel == caller.channel_id)
    text = caller.format_timeline()
    assert "STASISSTATUS=FAILED" in text, text
    assert "Local/5551234@nohold-inbound" in text and "destroyed" in text, text


async def test_many_short_callers_do_not_wedge_asterisk(sandbox: Sandbox) -> None:
    """Regression: closing a subscribeAll socket while device states change deadlocks
    Asterisk 22.10's ARI (asterisk/asterisk#2170); callers subscribe to channels and
    bridges only, so 25 short calls in a row leave ARI answering, and no caller's app
    keeps its "all" subscriptions once its socket is closed."""

    async def still_subscribed(app: str) -> str | None:
        try:
            a = await asyncio.wait_for(c.request("GET", f"/applications/{app}"), 5)
        except AriNotFound:
            return None
        if not (a["channel_ids"] or a["bridge_ids"] or a["device_names"]):
            return None
        return (f"{app} channels={a['channel_ids']} bridges={a['bridge_ids']} "
                f"devices={a['device_names']}")

    async with AriClient(sandbox.ari_url, sandbox.ari_user, sandbox.ari_password, "t") as c:
        for i in range(25):
            async with ScriptedCaller(
                sandbox, context="nohold-sandbox-transfer", exten="100", connect_timeout=5
            ) as caller:
                await caller.wait_reached("person:operator", timeout=5)
            # Asterisk unregisters an app once it has read the close, which it may do
            # after answering it (0.01 s here; a CI run once saw an app still
            # subscribed 5 s after its close, cause not found): each app gets a
            # generous bound of its own, and a failure says what Asterisk did.
            left = await still_subscribed(caller.app)
            for _ in range(150):
                if left is None:
                    break
                await asyncio.sleep(0.1)
                left = await still_subscribed(caller.app)
            assert left is None, (
                f"caller {i}: {left} 15 s after its close ({caller.connects} socket(s) "
                "opened); Asterisk's log for it:\n"
                + "\n".join(line for line in sandbox.log_tail(4000).splitlines()
                             if caller.app in line)[-4000:])
        # Nor has any caller app of an earlier test on this session's sandbox (the
        # test just before may have closed its caller a moment ago: bounded too).
        apps: list[str] = []
        for _ in range(150):
            apps = [a["name"] for a in await c.request("GET", "/applications")
                    if a["name"].startswith("nohold-caller-")
                    and (a["channel_ids"] or a["bridge_ids"] or a["device_names"])]
            if not apps:
                break
            await asyncio.sleep(0.1)
        assert apps == [], [await still_subscribed(app) for app in apps]
    assert "fully booted" in sandbox.cli("core waitfullybooted", timeout=5)


async def test_scripted_caller_reaches_queue_agent(sandbox: Sandbox) -> None:
    async with ScriptedCaller(sandbox, context="nohold-queues", exten="tech") as caller:
        await caller.wait_reached("queue:tech", timeout=10)
        await caller.wait_for(
            lambda e: (
                e.type == "ChannelUserevent" and e.event.get("eventname") == "NoholdAgentAnswered"
            ),
            timeout=20,
        )
        await caller.hangup()
        await caller.hangup()  # twice: the second is a 404 and must not raise
    assert [e["target"] for e in caller.userevents("NoholdReached")] == ["queue:tech"]


async def test_scripted_caller_follows_ivr_playback_transfer_and_reentry(
    private_sandbox: Sandbox,
) -> None:
    """A stand-in nohold-ivr app on a private sandbox: the caller's timeline shows
    its ARI playbacks, the digits it pressed, re-entry args, and a transfer to a new
    channel with the same linkedid."""
    sb = private_sandbox
    ivr = AriClient(sb.ari_url, sb.ari_user, sb.ari_password, "nohold-ivr")
    events = Events(ivr)
    try:
        await events.find(lambda e: e["type"] == CONNECTED_EVENT)

        # 1. plain call: IVR answers, plays, reads a digit, continues to billing re-entry
        async with ScriptedCaller(sb, exten="s", variables={"NOHOLD_MENU": ""}) as caller:
            start = await events.find(lambda e: e["type"] == "StasisStart")
            chan = start["channel"]["id"]
            assert chan == caller.dialplan_channel_id
            await ivr.request("POST", f"/channels/{chan}/answer")
            await ivr.request("POST", f"/channels/{chan}/play", params={"media": "sound:beep"})
            entry = await caller.wait_for_playback("beep")
            assert entry.detail == "heard sound:beep (started)"
            assert entry.channel == chan
            # (ARI queues a continue behind a running playback: let it finish first)
            await caller.wait_for_playback("beep", finished=True)
            await caller.press("2")
            dtmf = await events.find(lambda e: e["type"] == "ChannelDtmfReceived")
            assert dtmf["digit"] == "2"
            await ivr.request(
                "POST",
                f"/channels/{chan}/continue",
                params={"context": "nohold-reenter", "extension": "billing", "priority": 1},
            )
            again = await events.find(lambda e: e["type"] == "StasisStart", after=start)
            # nohold.conf passes the menu and the call's linkedid (ARI channels lack it)
            assert again["channel"]["id"] == chan
            assert again["args"] == ["billing", caller.linkedid]
            await ivr.request("DELETE", f"/channels/{chan}")
            await caller.wait_hungup()
        assert caller.playbacks() == ["sound:beep"]
        text = caller.format_timeline()
        assert "pressed 2" in text and "got DTMF 2" in text, text
        assert f"runs Stasis(nohold-ivr,billing,{caller.linkedid})" in text, text

        # 2. transfer: a NEW channel enters the IVR with the caller's linkedid
        async with ScriptedCaller(sb, context="nohold-sandbox-transfer", exten="100") as caller:
            start = await events.find(
                lambda e: (
                    e["type"] == "StasisStart"
                    and e["channel"]["name"].startswith("Local/s@nohold-ivr-")
                )
            )
            new_chan = start["channel"]["id"]
            assert new_chan not in (caller.channel_id, caller.dialplan_channel_id)
            await ivr.request("POST", f"/channels/{new_chan}/answer")
            await ivr.request(
                "POST", f"/channels/{new_chan}/play", params={"media": "sound:hello-world"}
            )
            await caller.wait_for_playback("hello-world")
            entered = await caller.wait_dialplan_app("Stasis", "nohold-ivr")
            assert entered.channel == new_chan
        assert "sound:hello-world" in caller.playbacks()
    finally:
        await events.close()


async def test_two_sandboxes_coexist(sandbox: Sandbox) -> None:
    other = start_sandbox(f"pytest-second-{uuid.uuid4().hex[:6]}")
    try:
        assert {other.sip_port, other.http_port, other.ami_port}.isdisjoint(
            {sandbox.sip_port, sandbox.http_port, sandbox.ami_port}
        )
        assert other.run_dir != sandbox.run_dir
        for sb in (sandbox, other):
            async with AriClient(sb.ari_url, sb.ari_user, sb.ari_password, "t") as c:
                assert (await c.request("GET", "/asterisk/info"))["system"]["entity_id"]
        # different credentials: one sandbox's password does not open the other
        async with AriClient(other.ari_url, sandbox.ari_user, sandbox.ari_password, "t") as c:
            with pytest.raises(Exception, match="401"):
                await c.request("GET", "/asterisk/info")
    finally:
        other.stop()
    assert sandbox.is_running()
    assert "Asterisk 22." in sandbox.cli("core show version")


def test_stop_leaves_no_process_and_no_run_dir() -> None:
    sb = start_sandbox(f"pytest-stop-{uuid.uuid4().hex[:6]}")
    marker = sb.run_dir.name
    state = sb.run_dir.parent / f"{marker}.json"
    try:
        sb.save(state)
        loaded = Sandbox.load(state)  # what `nohold sandbox down` does
        assert loaded.is_running()
        assert "fully booted" in loaded.cli("core waitfullybooted")
        loaded.stop()
    finally:
        sb.stop()
        state.unlink(missing_ok=True)
    assert not sb.is_running()
    assert not sb.run_dir.exists()
    assert marker not in _all_cmdlines()


def test_orphan_of_killed_owner_is_reaped(tmp_path: Path) -> None:
    """A test process killed with -9 leaves Asterisk running; the next start reaps it."""
    code = (
        "import os, signal\n"
        "from nohold.sandbox import start_sandbox\n"
        "sb = start_sandbox('pytest-orphan')\n"
        f"open({str(tmp_path / 'run_dir')!r}, 'w').write(str(sb.run_dir))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=False, timeout=90)
    run_dir = Path((tmp_path / "run_dir").read_text())
    assert run_dir.name in _all_cmdlines()  # the orphan really survived its owner
    sb = start_sandbox(f"pytest-reaper-{uuid.uuid4().hex[:6]}")
    sb.stop()
    assert run_dir.name not in _all_cmdlines()
    assert not run_dir.exists()


def _all_cmdlines() -> str:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out.append((p / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return "\n".join(out)
