"""The real StasisRuntime and IvrFlow against the fake ARI, with the notice ledger on a
temporary SQLite database. Fast: no Asterisk, no sleeps beyond a few milliseconds."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from nohold import logs
from nohold.ari_apps import runtime as runtime_module
from nohold.ari_apps.ari_client import AriClient
from nohold.ari_apps.ivr.flow import IvrFlow
from nohold.ari_apps.ivr.settings import IvrSettings
from nohold.ari_apps.runtime import StasisRuntime
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.registry import parse_settings
from tests.support.fake_ari import FakeAri, FakeCall

APP = "nohold-ivr"
FALLBACK = ("nohold-people", "operator", 1)
# Each flow test must stay well under a second; the timeout only turns a hang into a failure.
pytestmark = pytest.mark.timeout(10)

_linkedids = itertools.count(1)


class _CallIdOnRecord(logging.Filter):
    """What logs.setup_logging's filter does: the call id of the task that logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call = logs.call_id.get()
        return True


@pytest.fixture
def caplog_calls(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(_CallIdOnRecord())
    return caplog


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rescue's backoff shrunk to milliseconds: the retry logic, not the wait, is tested."""
    monkeypatch.setattr(runtime_module, "random", SimpleNamespace(uniform=lambda a, b: 0.01))


@pytest.fixture(autouse=True)
def short_orphan_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orphans are still told apart from late StasisStarts (the fake's are a few ms
    late), without half a second per reconnect test."""
    monkeypatch.setattr(runtime_module, "ORPHAN_GRACE", 0.15)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    async with FakeAri() as f:
        yield f


@pytest.fixture
async def ledger(tmp_path: Any) -> AsyncIterator[NoticeLedger]:
    url = f"sqlite:///{tmp_path}/flows.db"
    await upgrade_async(url)
    engine = make_engine(url)
    led = NoticeLedger(engine)
    yield led
    await led.drain()  # proofs are written in the background, as in the service
    await engine.dispose()


@dataclass
class Ivr:
    fake: FakeAri
    ari: AriClient
    runtime: StasisRuntime
    ledger: NoticeLedger
    task: asyncio.Task[None]
    calls: list[FakeCall] = field(default_factory=list)
    # Every event the runtime dispatched, and a wake-up for whoever waits on them.
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    def watch(self) -> None:
        real = self.runtime.dispatch

        def dispatch(event: dict[str, Any]) -> None:
            self.dispatched.append(event)
            self._new.set()
            real(event)

        self.runtime.dispatch = dispatch  # type: ignore[method-assign]

    async def until_dispatched(self, pred: Callable[[dict[str, Any]], bool],
                               timeout: float = 2.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not any(pred(e) for e in self.dispatched):
                self._new.clear()
                await self._new.wait()

    async def call(self, menu: str = "main", caller: str = "100", **kw: Any) -> FakeCall:
        """A caller entering Stasis(nohold-ivr,<menu>,${CHANNEL(linkedid)}) as our dialplan does."""
        linkedid = f"1767225500.{next(_linkedids)}"
        call = await self.fake.new_call(APP, [menu, linkedid], caller, linkedid=linkedid, **kw)
        self.calls.append(call)
        if kw.get("deliver", True):
            # The runtime owns the call from here: idle() cannot return before its task.
            await self.until_dispatched(lambda e: e.get("type") == "StasisStart"
                                        and e["channel"]["id"] == call.id)
        return call

    async def idle(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Until every call task of the runtime has ended."""
        async with asyncio.timeout(timeout):
            while self.runtime.tasks:
                await asyncio.wait(set(self.runtime.tasks))

    def requests_of(self, call: FakeCall) -> list[str]:
        """`METHOD /path` of the requests about one channel or its playbacks, in order,
        with the ids replaced by placeholders and the query shown where it matters."""
        pids = {pb.id: f"{{pb:{pb.media.rsplit('/', 1)[-1]}}}" for pb in call.playbacks}
        out = []
        for r in self.fake.requests:
            path = r.path.replace(call.id, "{ch}")
            for pid, name in pids.items():
                path = path.replace(pid, name)
            if "{ch}" not in path and "{pb:" not in path:
                continue
            if r.path.endswith("/variable") and r.method == "POST":
                path += f" {r.params['variable']}={r.params.get('value', '')}"
            if r.path.endswith("/continue"):
                path += " {context},{extension},{priority}".format(**r.params)
            out.append(f"{r.method} {path}")
        return out


IvrFactory = Callable[..., Awaitable[Ivr]]


@pytest.fixture
async def start_ivr(fake: FakeAri, ledger: NoticeLedger) -> AsyncIterator[IvrFactory]:
    """`ivr = await start_ivr({"input_timeout": 1.0}, notice_seconds=0.0)`: the IVR
    connected to the fake (reconcile done), ready for calls."""
    started: list[Ivr] = []

    async def start(ivr_section: dict[str, Any] | None = None, *,
                    notice_seconds: float = 0.0, after_hours: Any = None) -> Ivr:
        settings = parse_settings({
            "ari": {"url": fake.url, "user": fake.user, "password": fake.password, "app": APP},
            "ivr": ivr_section or {},
        })
        flow = IvrFlow(settings, settings.section(IvrSettings), ledger, notice_seconds,
                       after_hours=after_hours)
        # The same client the service builds, with a backoff short enough for a test.
        ari = AriClient(fake.url, fake.user, fake.password, APP,
                        subscribe=("channel:", "bridge:"), backoff_max=0.02)
        rt = StasisRuntime(ari, flow)
        ivr = Ivr(fake, ari, rt, ledger, asyncio.create_task(rt.run()))
        ivr.watch()
        started.append(ivr)
        await fake.wait_request("GET", f"/applications/{APP}")
        await ivr.idle()
        return ivr

    yield start
    for ivr in started:
        ivr.task.cancel()
        await asyncio.gather(ivr.task, return_exceptions=True)
        for task in list(ivr.runtime.tasks):
            task.cancel()
        await asyncio.gather(*ivr.runtime.tasks, return_exceptions=True)
        await ivr.ari.close()


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.WARNING]
