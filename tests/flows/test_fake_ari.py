"""The fake ARI keeps the promises flow tests rely on (where it answers as Asterisk does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nohold.ari_apps.ari_client import AriClient, AriConflict, AriError, AriHttpError, AriNotFound
from tests.support.fake_ari import FakeAri, FakeAriError, PlaybackPolicy

APP = "fake-test"


@pytest.fixture
async def client(fake: FakeAri) -> AsyncIterator[AriClient]:
    async with AriClient(fake.url, fake.user, fake.password, APP, backoff_max=0.02) as c:
        yield c


async def listen(client: AriClient) -> tuple[list[dict[str, Any]], asyncio.Task[None]]:
    seen: list[dict[str, Any]] = []

    async def pump() -> None:
        async for event in client.events():
            seen.append(event)

    task = asyncio.create_task(pump())
    return seen, task


async def test_credentials_are_checked(fake: FakeAri, client: AriClient):
    assert (await client.check())["system"]["version"] == "22.0.0-fake"
    async with AriClient(fake.url, fake.user, "wrong", APP) as bad:
        with pytest.raises(AriHttpError) as err:
            await bad.check()
    assert err.value.status == 401


async def test_application_exists_only_while_its_socket_is_up(fake: FakeAri, client: AriClient):
    with pytest.raises(AriNotFound):
        await client.request("GET", f"/applications/{APP}")
    with pytest.raises(FakeAriError):
        await fake.new_call(APP)  # Stasis() fails in Asterisk when the app is not there
    _, task = await listen(client)
    await fake.until(lambda: fake.connected(APP))
    call = await fake.new_call(APP, ["main"])
    assert (await client.request("GET", f"/applications/{APP}"))["channel_ids"] == [call.id]
    task.cancel()


async def test_continue_waits_behind_a_running_playback_and_answers_404_409(
        fake: FakeAri, client: AriClient):
    fake.playback_policy = PlaybackPolicy.never()
    seen, task = await listen(client)
    await fake.until(lambda: fake.connected(APP))
    call = await fake.new_call(APP)
    await client.request("POST", f"/channels/{call.id}/play/p1", params={"media": "sound:x"})
    await client.request("POST", f"/channels/{call.id}/continue",
                         params={"context": "c", "extension": "e", "priority": 1})
    assert call.in_stasis, "Asterisk queues the continue behind the playback"
    await client.request("DELETE", "/playbacks/p1")
    assert call.continued_to == ("c", "e", 1)
    assert fake.sent(channel=call.id) == ["StasisStart", "PlaybackStarted", "PlaybackFinished",
                                          "StasisEnd"]
    with pytest.raises(AriConflict):
        await client.request("POST", f"/channels/{call.id}/continue")
    with pytest.raises(AriNotFound):
        await client.request("POST", "/channels/nope/continue")
    with pytest.raises(AriNotFound):
        await client.request("DELETE", "/playbacks/p1")
    await fake.until(lambda: len(seen) >= 5)
    assert [e["type"] for e in seen] == ["NoholdConnected", *fake.sent()]
    task.cancel()


async def test_faults_answer_500_or_drop_then_stop(fake: FakeAri, client: AriClient):
    fake.fail("GET", "/asterisk/*", 500)
    fake.fail("GET", "/asterisk/info", drop=True, times=2)  # aiohttp resends a GET once
    with pytest.raises(AriHttpError) as err:
        await client.check()
    assert err.value.status == 500
    with pytest.raises(AriError) as dropped:
        await client.check()
    assert not isinstance(dropped.value, AriHttpError)
    await client.check()
    assert [r.status for r in fake.requests] == [500, -1, -1, 200]


async def test_application_replaced_goes_to_the_older_socket_only(fake: FakeAri,
                                                                 client: AriClient):
    older, t1 = await listen(client)
    await fake.until(lambda: fake.connections.get(APP) == 1)
    async with AriClient(fake.url, fake.user, fake.password, APP) as second:
        newer, t2 = await listen(second)
        await fake.until(lambda: fake.connections.get(APP) == 2)
        call = await fake.new_call(APP)
        await fake.until(lambda: len(newer) == 2 and len(older) == 2)
        assert [e["type"] for e in older] == ["NoholdConnected", "ApplicationReplaced"]
        assert [e["type"] for e in newer] == ["NoholdConnected", "StasisStart"]
        assert newer[1]["channel"]["id"] == call.id
        t2.cancel()
    t1.cancel()


async def test_hooks_and_timed_playbacks_order_events_as_scripted(fake: FakeAri,
                                                                 client: AriClient):
    fake.playback_policy = PlaybackPolicy.after_ms(20)
    _, task = await listen(client)
    await fake.until(lambda: fake.connected(APP))
    call = await fake.new_call(APP)
    await client.request("POST", f"/channels/{call.id}/play/p1", params={"media": "sound:a"})
    await fake.until(lambda: "PlaybackFinished" in fake.sent())
    fake.on("PlaybackStarted", lambda e: fake.hang_up(call, playbacks="after_stasis_end"))
    await client.request("POST", f"/channels/{call.id}/play/p2", params={"media": "sound:b"})
    assert fake.sent()[3:] == ["PlaybackStarted", "ChannelHangupRequest", "StasisEnd",
                               "PlaybackFinished", "ChannelDestroyed"]
    assert call.playback("p2").state == "failed"
    task.cancel()


async def test_a_dropped_socket_is_told_before_the_reconnect(fake: FakeAri, client: AriClient):
    from nohold.ari_apps.ari_client import CONNECTED_EVENT, DISCONNECTED_EVENT

    seen, task = await listen(client)
    try:
        await fake.until(lambda: fake.connected(APP), what="connected")
        refused = fake.fail("GET", "/events", 503, times=3)
        await fake.drop_socket(APP)
        await fake.until(lambda: refused.hits == 3 and fake.connected(APP),
                         what="reconnected after three refusals")
        await fake.until(lambda: sum(e["type"] == CONNECTED_EVENT for e in seen) == 2,
                         what="the second connect")
        kinds = [e["type"] for e in seen]
        # Once per connection that ended, not once per failed attempt to reconnect.
        assert kinds == [CONNECTED_EVENT, DISCONNECTED_EVENT, CONNECTED_EVENT], kinds
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
