"""AriClient never closes its socket while its subscription request is unanswered.

Asterisk 22 makes a subscription on any app still in its registry, active or not
(stasis_app_subscribe() finds it by name). One that it reads after the socket's
close, between stasis_app_unregister()'s unsubscribe and its cleanup(), lands on an
app just deactivated: the app is then never "finished" and stays listed in
GET /applications holding __AST_CHANNEL_ALL_TOPIC and __AST_BRIDGE_ALL_TOPIC for
good (tests/probes/subscribe_close_race.py: 6 of 300 sockets on a real sandbox).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient
from tests.support.fake_ari import FakeAri, Received

APP = "nohold-caller-close"


async def _held_subscription(fake: FakeAri) -> tuple[asyncio.Event, asyncio.Event]:
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def hold(_: Received) -> None:
        arrived.set()
        await answer.wait()

    fake.on_request("POST", f"/applications/{APP}/subscription", hold)
    return arrived, answer


async def test_close_waits_for_the_subscription_before_closing_the_socket(fake: FakeAri):
    arrived, answer = await _held_subscription(fake)
    client = AriClient(fake.url, fake.user, fake.password, APP,
                       subscribe=("channel:", "bridge:"), backoff_max=0.02)
    seen: list[dict[str, Any]] = []

    async def pump() -> None:
        async for event in client.events():
            seen.append(event)

    task = asyncio.create_task(pump())
    await asyncio.wait_for(arrived.wait(), 2)
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0.2)
    try:
        assert fake.connected(APP), "socket closed while its subscription was unanswered"
        assert not closing.done()
    finally:
        answer.set()
    await asyncio.wait_for(closing, 2)
    await asyncio.wait_for(task, 2)
    await fake.until(lambda: not fake.connected(APP), what="socket closed after the answer")
    assert [e["type"] for e in seen if e["type"] == CONNECTED_EVENT] == []


async def test_a_cancelled_listener_keeps_the_socket_until_the_subscription_is_answered(
        fake: FakeAri):
    arrived, answer = await _held_subscription(fake)
    client = AriClient(fake.url, fake.user, fake.password, APP,
                       subscribe=("channel:", "bridge:"), backoff_max=0.02)

    async def pump() -> None:
        async for _ in client.events():
            pass

    task = asyncio.create_task(pump())
    await asyncio.wait_for(arrived.wait(), 2)
    task.cancel()  # what tests/support/events.py's Events.close() does first
    await asyncio.sleep(0.2)
    try:
        assert fake.connected(APP), "socket closed while its subscription was unanswered"
    finally:
        answer.set()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 2)
    await client.close()
    await fake.until(lambda: not fake.connected(APP), what="socket closed after the answer")
