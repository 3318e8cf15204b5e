"""The floor for bench/callback_dial.py: the least a Stasis app can do to put a customer
on the line of an agent who is already up.

On StasisStart of an agent channel (app args `agent,<customer endpoint>`) it makes a
mixing bridge, adds the agent, creates the customer's channel, adds it and dials it
(the same ARI steps as nohold's agent-first dial, `ari_apps/agent_first.py`), nothing
else: no database, no number checks, no whisper, no logging per call. When either
side leaves, the other is hung up and the bridge destroyed. It uses the same thin
client as nohold (ari_apps.ari_client.AriClient).

    BENCH_ARI_PASSWORD=... python bench/bare_bridge_app.py --url http://127.0.0.1:8088 \
        --user nohold --app bench-bridge

The password comes from the environment so that it stays out of `ps`. SIGTERM or
SIGINT stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

from harness import app_main

from nohold.ari_apps.ari_client import AriClient, AriError

log = logging.getLogger("bench.bare_bridge_app")


class Pairs:
    """Agent and customer channel ids of each call, and its bridge."""

    def __init__(self) -> None:
        self.other: dict[str, str] = {}
        self.bridge: dict[str, str] = {}
        # A created channel may join a bridge once its StasisStart has come.
        self.started: dict[str, asyncio.Future[None]] = {}

    def add(self, agent: str, customer: str, bridge: str) -> None:
        self.other[agent], self.other[customer] = customer, agent
        self.bridge[agent] = self.bridge[customer] = bridge

    def end(self, channel_id: str) -> tuple[str | None, str | None]:
        other = self.other.pop(channel_id, None)
        bridge = self.bridge.pop(channel_id, None)
        if other is not None:
            self.other.pop(other, None)
            self.bridge.pop(other, None)
        return other, bridge


async def connect(client: AriClient, app: str, pairs: Pairs, agent: str, endpoint: str) -> None:
    customer = f"{agent}-c"
    try:
        bridge = await client.request("POST", "/bridges", params={"type": "mixing"})
        bridge_id = str(bridge["id"])
        pairs.add(agent, customer, bridge_id)
        await client.request("POST", f"/bridges/{bridge_id}/addChannel",
                             params={"channel": agent})
        started = pairs.started[customer] = asyncio.get_running_loop().create_future()
        await client.request("POST", "/channels/create", params={
            "endpoint": endpoint, "app": app, "appArgs": "customer", "channelId": customer})
        await asyncio.wait_for(started, 10)
        await client.request("POST", f"/bridges/{bridge_id}/addChannel",
                             params={"channel": customer})
        await client.request("POST", f"/channels/{customer}/dial", params={"timeout": 15})
    except (AriError, TimeoutError) as exc:
        log.warning("connect_failed agent=%s error=%s", agent, exc)
        await end(client, pairs, agent)
        with contextlib.suppress(AriError):
            await client.request("DELETE", f"/channels/{agent}")
    finally:
        pairs.started.pop(customer, None)


async def end(client: AriClient, pairs: Pairs, channel_id: str) -> None:
    other, bridge = pairs.end(channel_id)
    with contextlib.suppress(AriError):
        if other is not None:
            await client.request("DELETE", f"/channels/{other}")
    with contextlib.suppress(AriError):
        if bridge is not None:
            await client.request("DELETE", f"/bridges/{bridge}")


async def serve(client: AriClient, app: str) -> None:
    pairs = Pairs()
    tasks: set[asyncio.Task[None]] = set()
    async for event in client.events():
        kind = event.get("type")
        channel: dict[str, Any] = event.get("channel") or {}
        channel_id = str(channel.get("id"))
        args = [str(a) for a in event.get("args") or []]
        if kind == "StasisStart" and args == ["customer"]:
            started = pairs.started.get(channel_id)
            if started is not None and not started.done():
                started.set_result(None)
            continue
        if kind == "StasisStart" and len(args) == 2 and args[0] == "agent":
            task = asyncio.create_task(connect(client, app, pairs, channel_id, args[1]))
        elif kind == "StasisEnd" and channel_id in pairs.other:
            task = asyncio.create_task(end(client, pairs, channel_id))
        else:
            continue
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main(argv: list[str] | None = None) -> int:
    return app_main(__doc__ or "", "bench-bridge", argv,
                    lambda client, args: serve(client, args.app), log)


if __name__ == "__main__":
    sys.exit(main())
