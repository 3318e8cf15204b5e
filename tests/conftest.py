"""Shared fixtures: one real Asterisk 22 sandbox per test session.

A missing dependency (debootstrap, root, network for the first build, sipp)
fails with SandboxError saying what to install: these tests never skip, so CI
proves things against a real Asterisk. App-specific fixtures live in
tests/e2e/conftest.py.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from nohold.sandbox import Sandbox, start_sandbox


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
