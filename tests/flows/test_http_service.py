"""`nohold run`'s service (nohold.service.serve) and the HTTP API: one server for every
feature's routes when [http] enabled, none otherwise, stopped with the service with
nothing left listening, connected or running; a taken port stops the start with what
to change. Against the fake ARI (the start-up checks are the e2e tests' business)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nohold import registry, service
from nohold.callbackdb.migrate import upgrade_async
from nohold.feature import Contribution, Feature, ServiceContext
from tests.support.fake_ari import FakeAri
from tests.support.leaks import server_sessions, wait_until

pytestmark = pytest.mark.timeout(30)

TOKEN = "service-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def probe(request: web.Request) -> web.Response:
    if "slow" in request.query:
        await asyncio.sleep(0.3)
    return web.json_response({"probe": "ok"})


def start_probe(ctx: ServiceContext) -> Contribution:
    return Contribution(http_routes=[web.get("/v1/probe", probe)])


PROBE = Feature(name="probe", start=start_probe)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    async with FakeAri() as f:
        yield f


@pytest.fixture
def settings_for(fake: FakeAri, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "FEATURES", (*registry.FEATURES, PROBE))

    async def preflight(settings: Any) -> service.Report:
        return service.Report("22.0.0-fake", {settings.notice.prompt: 2.0}, "head", [])

    monkeypatch.setattr(service, "preflight", preflight)

    async def make(http: dict[str, Any]) -> Any:
        url = f"sqlite:///{tmp_path}/nohold.db"
        await upgrade_async(url)
        return registry.parse_settings({
            "ari": {"url": fake.url, "user": fake.user, "password": fake.password},
            "database": {"url": url}, "agi": {"enabled": False}, "http": http})

    return make


async def run_until_ready(settings: Any) -> tuple[asyncio.Task[int], asyncio.Event]:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.serve(settings, ready, stop))
    done, _ = await asyncio.wait({task, asyncio.create_task(ready.wait())}, timeout=10,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready.is_set(), "the service never became ready"
    return task, stop


async def test_enabled_serves_every_features_routes_and_stops_with_nothing_left(settings_for):
    port = free_port()
    settings = await settings_for({"enabled": True, "token": TOKEN, "port": port})
    task, stop = await run_until_ready(settings)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/v1/probe") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/v1/probe", headers=AUTH) as resp:
            assert (resp.status, await resp.json()) == (200, {"probe": "ok"})
        # A request in progress when the service is told to stop still gets its answer.
        slow = asyncio.create_task(http.get(f"{base}/v1/probe?slow=1", headers=AUTH))
        await asyncio.sleep(0.1)
        stop.set()
        async with await slow as resp:
            assert resp.status == 200
        assert await asyncio.wait_for(task, 10) == 0
    assert wait_until(lambda: server_sessions(port) == 0, 2.0)
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
    # The autouse fixture then proves no task of the service is left running.


async def test_disabled_listens_nowhere(settings_for):
    port = free_port()
    settings = await settings_for({"enabled": False, "token": TOKEN, "port": port})
    task, stop = await run_until_ready(settings)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"http://127.0.0.1:{port}/v1/probe", headers=AUTH)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_a_taken_port_fails_the_start_saying_what_to_change(settings_for):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = await settings_for({"enabled": True, "token": TOKEN, "port": port})
        with pytest.raises(service.StartupError) as err:
            await asyncio.wait_for(service.serve(settings), 10)
    message = str(err.value)
    assert f"cannot listen for the HTTP API on 127.0.0.1:{port}" in message
    assert "[http] port" in message and "[http] enabled = false" in message
