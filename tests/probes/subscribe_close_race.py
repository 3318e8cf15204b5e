"""Probe: a POST /applications/{app}/subscription racing the app's WebSocket close.
Does Asterisk leave the app listed (inactive, holding the "all" subscriptions) for good?"""
from __future__ import annotations

import asyncio
import base64
import random
import sys
import uuid

import aiohttp

from nohold.sandbox import start_sandbox


async def main(n: int) -> None:
    sb = start_sandbox(f"probe-race-{uuid.uuid4().hex[:6]}")
    try:
        tok = base64.b64encode(f"{sb.ari_user}:{sb.ari_password}".encode()).decode()
        h = {"Authorization": f"Basic {tok}"}
        base = sb.ari_url.rstrip("/")
        lingering = []
        async with aiohttp.ClientSession() as s:
            for i in range(n):
                app = f"nohold-caller-{uuid.uuid4().hex[:8]}"
                ws = await s.ws_connect(base.replace("http", "ws", 1) + "/ari/events",
                                        params={"app": app}, headers=h)

                async def post(app: str = app) -> int:
                    await asyncio.sleep(random.uniform(0, 0.003))
                    async with s.post(f"{base}/ari/applications/{app}/subscription",
                                      params={"eventSource": "channel:,bridge:"}, headers=h) as r:
                        return r.status

                async def close(ws: aiohttp.ClientWebSocketResponse = ws) -> None:
                    await asyncio.sleep(random.uniform(0, 0.003))
                    await ws.close()

                st, _ = await asyncio.gather(post(), close())
                await asyncio.sleep(0.3)
                async with s.get(f"{base}/ari/applications/{app}", headers=h) as r:
                    if r.status == 200:
                        lingering.append((i, st, await r.json()))
                        print("LINGERING", i, "post", st, lingering[-1][2], flush=True)
            print(f"n={n} lingering={len(lingering)}")
            await asyncio.sleep(5)
            async with s.get(f"{base}/ari/applications", headers=h) as r:
                left = [a for a in await r.json() if a["name"].startswith("nohold-caller-")]
            print("still listed 5 s later:", len(left), left[:3])
    finally:
        sb.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
