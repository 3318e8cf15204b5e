"""A real SMSC for tests: `tests/support/smpp_peer/server.js` (node-smpp's server, not
the smpplib nohold speaks with) in its own process, driven line by line.

    async with Smsc.start() as smsc:
        ... nohold binds to 127.0.0.1:smsc.port as smsc.system_id / smsc.password ...
        submit = await smsc.next_event("submit")
        await smsc.command(cmd="mo", **{"from": "48601000001", "text": "ACK 1"})

Every event is kept (`smsc.events`) so a test counts what crossed the wire.
`./dev.sh test` installs its node modules (`npm ci`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

PEER = Path(__file__).parent / "smpp_peer"


class SmscGone(RuntimeError):
    pass


class Smsc:
    def __init__(self, proc: asyncio.subprocess.Process, system_id: str,
                 password: str) -> None:
        self._proc = proc
        self.system_id = system_id
        self.password = password
        self.port = 0
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, system_id: str = "nohold", password: str = "t3stpw"
                    ) -> AsyncIterator[Smsc]:
        if not (PEER / "node_modules" / "smpp").is_dir():
            raise RuntimeError(f"{PEER}/node_modules missing: run `npm ci` there "
                               "(./dev.sh test does)")
        env = dict(os.environ, SMPP_SYSTEM_ID=system_id, SMPP_PASSWORD=password,
                   SMPP_PORT="0")
        proc = await asyncio.create_subprocess_exec(
            "node", str(PEER / "server.js"), cwd=PEER, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        smsc = cls(proc, system_id, password)
        try:
            smsc.port = (await smsc.next_event("listening", timeout=20))["port"]
            yield smsc
        finally:
            await smsc.stop()

    async def stop(self) -> None:
        if self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            async with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()
        async with self._changed:
            self.events.append({"event": "exited"})
            self._changed.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    async def wait_until(self, check: Callable[[], Any], timeout: float = 20.0,
                         what: str = "") -> Any:
        """The first truthy `check()`, re-checked after every event."""
        async def wait() -> Any:
            async with self._changed:
                while not (result := check()):
                    if self.events and self.events[-1]["event"] == "exited":
                        raise SmscGone("the SMSC exited")
                    await self._changed.wait()
                return result
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"SMSC: no {what or 'such event'} within {timeout} s; "
                                 f"saw {[e['event'] for e in self.events]}") from None

    async def next_event(self, kind: str, after: int = -1, timeout: float = 20.0
                         ) -> dict[str, Any]:
        """The first `kind` event after index `after` (-1: any, so the first ever)."""
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[after + 1:] if e["event"] == kind), None)
        return await self.wait_until(found, timeout, kind)

    async def count(self, kind: str, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Waits until at least `n` events of `kind` were seen; returns them all."""
        await self.wait_until(lambda: len(self.of(kind)) >= n, timeout, f"{n} x {kind}")
        return self.of(kind)

    async def command(self, **cmd: Any) -> None:
        """Sends a command and waits for the peer's ack (AssertionError if not ok)."""
        assert self._proc.stdin is not None
        mark = len(self.events) - 1
        self._proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self._proc.stdin.drain()
        ack = await self.next_event("ack", after=mark)
        assert ack["ok"], f"SMSC refused {cmd} (no bound session?)"
