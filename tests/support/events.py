"""An ARI event recorder for tests: every event one app received, searchable."""

from __future__ import annotations

import asyncio
from typing import Any

from nohold.ari_apps.ari_client import AriClient
from nohold.sandbox import Sandbox
from nohold.sandbox.caller import ALL_CHANNELS_AND_BRIDGES


def client_for(sb: Sandbox, app: str) -> AriClient:
    """An ARI client that sees every channel and bridge event of the sandbox."""
    return AriClient(sb.ari_url, sb.ari_user, sb.ari_password, app,
                     subscribe=ALL_CHANNELS_AND_BRIDGES)


class Events:
    """Every event an ARI app received; find() searches all of them, old ones included,
    so the order in which a test waits does not matter."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self.client.events():
            self.seen.append(event)
            self._new.set()

    async def find(
        self,
        pred: Any,
        timeout: float = 15,  # noqa: ASYNC109
        *,
        after: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        start = self.seen.index(after) + 1 if after is not None else 0

        async def scan() -> dict[str, Any]:
            i = start
            while True:
                while i < len(self.seen):
                    if pred(self.seen[i]):
                        return self.seen[i]
                    i += 1
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        await self.client.close()
