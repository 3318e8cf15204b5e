"""Shared fixtures: one real Asterisk 22 sandbox per test session.

A missing dependency (debootstrap, root, network for the first build, sipp)
fails with SandboxError saying what to install: these tests never skip, so CI
proves things against a real Asterisk. App-specific fixtures live in
tests/e2e/conftest.py.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType

import pytest

from nohold.ari_apps.ari_client import CONNECTED_EVENT
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller
from nohold.sandbox.sipp import SippResult, arun_sipp_call
from tests.support.events import Events, client_for
from tests.support.leaks import (
    VERDICTS,
    AriWatchdog,
    child_processes,
    own_connections_to,
    pending_tasks,
    wait_until,
)


def _exit_on_sigterm() -> None:
    """A CI job killed with SIGTERM would skip `finally` and atexit and leave Asterisk
    running; turning SIGTERM into SystemExit lets the fixture stop it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Sandbox]:
    """A running sandbox Asterisk shared by the session; always stopped afterwards
    (kill -9 of the session is covered by the next start's orphan reaper)."""
    _exit_on_sigterm()
    sandbox = start_sandbox(f"pytest-{os.getpid()}")
    watchdog = AriWatchdog(sandbox).start()
    try:
        yield sandbox
    finally:
        watchdog.stop()
        sandbox.stop()


@pytest.fixture(autouse=True)
def _no_leaked_processes_or_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test leaves no child process running and no ARI/AMI connection of its own
    open to the session's Asterisk (set up first, so checked after every other
    fixture of the test has cleaned up)."""
    before = child_processes()
    yield
    box = request.getfixturevalue("asterisk") if "asterisk" in request.fixturenames else None
    if box is not None:
        ports = {box.http_port, box.ami_port}
        if not wait_until(lambda: own_connections_to(ports) == 0, 2.0):
            pytest.fail(f"test leaked {own_connections_to(ports)} connection(s) to the "
                        f"sandbox's ARI/AMI ports {sorted(ports)}",
                        pytrace=False)
    if not wait_until(lambda: not (set(child_processes()) - set(before) - _sandbox_pids()),
                      5.0):
        left = {pid: cmd for pid, cmd in child_processes().items()
                if pid not in before and pid not in _sandbox_pids()}
        pytest.fail(f"test left child processes running: {left}", pytrace=False)


def _sandbox_pids() -> set[int]:
    """Asterisks the session or a test's own fixtures still own are not leaks here:
    their fixtures stop them (and an unstopped one is reaped by the next start)."""
    from nohold.sandbox.instance import _OWNED

    return {sb.pid for sb in _OWNED.values()}


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Runs in the test's own event loop: whatever the test started has ended."""
    yield
    left = await pending_tasks()
    if left:
        pytest.fail(f"test left asyncio tasks running: {left}", pytrace=False)


@pytest.fixture
def sip_call(asterisk: Sandbox) -> Callable[..., Awaitable[SippResult]]:
    """`await sip_call("100", digits="1", settle_seconds=5)`: one real SIP call (SIPp)."""
    return functools.partial(arun_sipp_call, asterisk)


@pytest.fixture
def scripted_caller(asterisk: Sandbox) -> Callable[..., ScriptedCaller]:
    """`async with scripted_caller(context=..., exten=...) as caller:` a Local-channel
    caller that presses DTMF and records which prompts it heard, and when."""
    return functools.partial(ScriptedCaller, asterisk)


@pytest.fixture
async def ari_events(asterisk: Sandbox) -> AsyncIterator[Events]:
    """Every channel and bridge event of the sandbox, recorded from before the test acts."""
    events = Events(client_for(asterisk, f"events-{uuid.uuid4().hex[:8]}"))
    await events.find(lambda e: e["type"] == CONNECTED_EVENT)
    try:
        yield events
    finally:
        await events.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for verdict in VERDICTS:
        terminalreporter.section("the sandbox Asterisk wedged", red=True)
        terminalreporter.line(verdict)
