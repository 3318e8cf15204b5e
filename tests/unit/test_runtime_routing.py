"""How the runtime routes events of outbound legs and bridges (no Asterisk needed)."""

import asyncio
from typing import Any

from nohold.ari_apps.bridge import Bridge
from nohold.ari_apps.channel import Channel, Outbound
from nohold.ari_apps.runtime import StasisRuntime
from nohold.decisions.dial import DialOutcome


class FakeAri:
    app = "test"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.requests.append((method, path))
        return {}


class Feature:
    name = "test"

    def __init__(self) -> None:
        self.started: list[str] = []

    async def run_call(self, ch: Channel) -> None:
        self.started.append(ch.id)

    def fallback(self, ch: Channel | None) -> None:
        return None


def _runtime() -> tuple[StasisRuntime, Feature]:
    feature = Feature()
    return StasisRuntime(FakeAri(), feature), feature  # type: ignore[arg-type]


def _chan(cid: str) -> dict[str, Any]:
    return {"id": cid, "name": f"PJSIP/x-{cid}", "caller": {"number": "1"}}


async def test_answered_originate_completes_with_the_channel_and_starts_no_flow():
    rt, feature = _runtime()
    ob = await rt.originate("PJSIP/x", channel_id="out-1")
    rt.dispatch({"type": "Dial", "peer": _chan("out-1"), "dialstatus": "RINGING"})
    rt.dispatch({"type": "Dial", "peer": _chan("out-1"), "dialstatus": "ANSWER"})
    rt.dispatch({"type": "StasisStart", "channel": _chan("out-1"), "args": []})
    result = await ob.result(timeout=1)
    assert result.outcome is DialOutcome.ANSWERED
    assert result.channel is rt.channels["out-1"]
    await asyncio.sleep(0)
    assert feature.started == []
    assert "out-1" not in rt.originations
    # later events reach the Channel
    rt.dispatch({"type": "ChannelHangupRequest", "channel": _chan("out-1")})
    assert result.channel.gone.is_set()


async def test_busy_originate_is_resolved_by_dial_and_destroyed():
    rt, _ = _runtime()
    ob = await rt.originate("Local/busy@x", channel_id="out-2")
    rt.dispatch({"type": "Dial", "peer": _chan("out-2"), "dialstatus": "BUSY"})
    assert not ob.done
    rt.dispatch({"type": "ChannelDestroyed", "channel": _chan("out-2"), "cause": 0})
    result = await ob.result(timeout=1)
    assert (result.outcome, result.dialstatus, result.channel) == (DialOutcome.BUSY, "BUSY", None)
    assert len(rt.originations) == 0


async def test_inbound_stasis_start_still_starts_a_call_flow():
    rt, feature = _runtime()
    await rt.originate("PJSIP/x", channel_id="out-3")
    rt.dispatch({"type": "StasisStart", "channel": _chan("in-1"), "args": []})
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert feature.started == ["in-1"]
    assert "out-3" in rt.originations


async def test_bridge_playback_events_reach_the_bridge():
    rt, _ = _runtime()
    bridge = await rt.create_bridge("b-1")
    assert isinstance(bridge, Bridge)
    play = asyncio.create_task(bridge.play("sound:beep"))
    for _ in range(3):
        await asyncio.sleep(0)
    (playback_id,) = bridge._playbacks
    rt.dispatch({"type": "PlaybackFinished",
                 "playback": {"id": playback_id, "target_uri": "bridge:b-1", "state": "done"}})
    assert await asyncio.wait_for(play, 1) == "done"
    rt.dispatch({"type": "BridgeDestroyed", "bridge": {"id": "b-1"}})
    assert bridge.gone.is_set() and "b-1" not in rt.bridges


async def test_no_outcome_event_is_bounded_and_hangs_up():
    rt, _ = _runtime()
    ob: Outbound = await rt.originate("PJSIP/x", channel_id="out-4", timeout=1)
    result = await ob.result(timeout=0.05)
    assert result.outcome is DialOutcome.FAILED
    assert ("DELETE", "/channels/out-4") in rt.ari.requests  # type: ignore[attr-defined]
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert "out-4" not in rt.originations


async def test_connected_holds_only_while_the_apps_socket_is_up():
    """A dialler makes channels into its app only while Asterisk has the app: one made
    between a drop and the reconnect dies at once, unheard (seen after a restart)."""
    from nohold.ari_apps.ari_client import CONNECTED_EVENT, DISCONNECTED_EVENT

    rt, _ = _runtime()
    rt.dispatch({"type": CONNECTED_EVENT, "application": "test"})
    assert rt.connected.is_set()
    rt.dispatch({"type": DISCONNECTED_EVENT, "application": "test"})
    assert not rt.connected.is_set()
    rt.dispatch({"type": CONNECTED_EVENT, "application": "test"})
    assert rt.connected.is_set()
    await asyncio.gather(*rt.tasks, return_exceptions=True)  # the reconciles it spawned


async def test_a_drop_fails_channels_being_made_at_once_and_hangs_them_up():
    """Their StasisStart cannot come over a dropped socket: create_channel fails now,
    not after its 10 s, and the channel Asterisk made is not left behind."""
    import pytest

    from nohold.ari_apps.ari_client import DISCONNECTED_EVENT, AriError

    rt, _ = _runtime()
    making = asyncio.ensure_future(rt.create_channel("Local/s@x/n", channel_id="cb-1-0a1b2c3d"))
    for _ in range(3):  # the fake answers at once: the POST is done within a few steps
        await asyncio.sleep(0)
    assert ("POST", "/channels/create") in rt.ari.requests  # type: ignore[attr-defined]
    rt.dispatch({"type": DISCONNECTED_EVENT, "application": "test"})
    with pytest.raises(AriError, match="dropped before cb-1-0a1b2c3d"):
        await asyncio.wait_for(making, 1)
    assert ("DELETE", "/channels/cb-1-0a1b2c3d") in rt.ari.requests  # type: ignore[attr-defined]
    assert rt.expected == {}
