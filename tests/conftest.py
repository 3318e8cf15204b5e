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

from ari_apps.ari_client import CONNECTED_EVENT
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller
from nohold.sandbox.sipp import SippResult, arun_sipp_call
from tests.support.events import Events, client_for


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
    try:
        yield sandbox
    finally:
        sandbox.stop()


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
