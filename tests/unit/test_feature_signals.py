"""Signals between features: a nudge wakes a waiter at once, is not lost when it comes
before the wait, and is used up by the wait."""

from __future__ import annotations

import asyncio
import time

from nohold.feature import Signals


async def test_a_nudge_wakes_the_waiter_at_once_and_is_used_up():
    signals = Signals()
    waiter = asyncio.create_task(signals.wait(Signals.TICKET, 5))
    await asyncio.sleep(0)
    start = time.monotonic()
    signals.notify(Signals.TICKET)
    assert await waiter is True
    assert time.monotonic() - start < 1
    assert await signals.wait(Signals.TICKET, 0.01) is False  # used up


async def test_a_nudge_before_the_wait_is_kept_and_names_are_separate():
    signals = Signals()
    signals.notify(Signals.TICKET)
    assert await signals.wait("other", 0.01) is False
    assert await signals.wait(Signals.TICKET, 0.01) is True
