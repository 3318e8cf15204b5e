"""Reproduce asterisk/asterisk#2170 on a private sandbox, and show nohold's way out.

    .venv/bin/python -m tests.probes.ari_subscription_deadlock MODE [ROUNDS]

MODE is how each short-lived ARI app subscribes while Local channels keep
changing device states in the background:

    all       subscribeAll=true (what the test callers did at first)
    drop      subscribeAll=true, then DELETE the deviceState: subscription at once
              (the workaround the test bed used until the platform issue)
    explicit  POST /applications/{app}/subscription?eventSource=channel:,bridge:
              (what AriClient.subscribe does now)

Each round opens 4 sockets and closes them after a few ms; after each round ARI
must still answer GET /applications within 5 s. Seen on Asterisk 22.10 (2 cores):
`all` wedged after 12 sockets, `drop` after 492 sockets in 1 of 3 runs of 2000,
`explicit` answered after 2600 sockets in every run. Not collected by pytest: it
wedges an Asterisk on purpose (the sandbox is killed at the end).
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid

import aiohttp

from nohold.ari_apps.ari_client import AriClient, AriError
from nohold.sandbox import Sandbox, start_sandbox

CHURN_DIALPLAN = """
[probe-churn]
exten => s,1,Answer()
 same => n,Wait(0.3)
 same => n,Hangup()
"""


async def churn(box: Sandbox, stop: asyncio.Event) -> None:
    """A dozen short Local calls alive at any time: device states change all along."""
    async with AriClient(box.ari_url, box.ari_user, box.ari_password, "churn") as c:
        while not stop.is_set():
            try:
                await c.request("POST", "/channels", params={
                    "endpoint": "Local/s@probe-churn", "context": "probe-churn",
                    "extension": "s", "priority": 1, "timeout": 5})
            except AriError:
                pass
            await asyncio.sleep(0.05)


async def one_socket(box: Sandbox, mode: str, linger: float) -> None:
    auth = base64.b64encode(f"{box.ari_user}:{box.ari_password}".encode()).decode()
    app = f"probe-{uuid.uuid4().hex[:8]}"
    params = {"app": app}
    if mode in ("all", "drop"):
        params["subscribeAll"] = "true"
    base = f"{box.ari_url}/ari/applications/{app}/subscription"
    async with aiohttp.ClientSession(headers={"Authorization": "Basic " + auth}) as s:
        ws_url = box.ari_url.replace("http", "ws", 1) + "/ari/events"
        async with s.ws_connect(ws_url, params=params) as ws:
            if mode == "drop":
                async with s.delete(base, params={"eventSource": "deviceState:"}):
                    pass
            if mode == "explicit":
                async with s.post(base, params={"eventSource": "channel:,bridge:"}) as r:
                    assert r.status == 200, r.status
            try:
                await asyncio.wait_for(ws.receive(), linger)
            except TimeoutError:
                pass


async def probe(mode: str, rounds: int) -> str:
    box = start_sandbox(f"probe-{mode}")
    box.add_dialplan(CHURN_DIALPLAN)
    stop = asyncio.Event()
    churner = asyncio.create_task(churn(box, stop))
    t0 = time.monotonic()
    try:
        for i in range(rounds):
            try:
                await asyncio.wait_for(asyncio.gather(
                    *(one_socket(box, mode, 0.05 + (i * 4 + k) % 7 * 0.01) for k in range(4))
                ), 10)
                async with AriClient(box.ari_url, box.ari_user, box.ari_password, "x",
                                     request_timeout=5) as c:
                    await c.request("GET", "/applications")
            except (TimeoutError, AriError) as exc:
                return (f"{mode}: WEDGED after {(i + 1) * 4} sockets in "
                        f"{time.monotonic() - t0:.1f}s ({exc!r})")
        return f"{mode}: ok, ARI answering after {rounds * 4} sockets in " \
               f"{time.monotonic() - t0:.1f}s"
    finally:
        stop.set()
        churner.cancel()
        box.stop()  # a wedged Asterisk ignores `core stop now`; stop() then kills it


if __name__ == "__main__":
    print(asyncio.run(probe(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500)))
