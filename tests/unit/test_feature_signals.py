"""Signals between features: a nudge wakes a waiter at once, is not lost when it comes
before the wait, and is used up by the wait."""

from __future__ import annotations

import asyncio
import time

import pytest

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


async def test_a_cancel_racing_a_nudge_is_never_swallowed():
    # The alerts loop waits here between passes; a nudge (a new ticket) arriving in the
    # same loop turn as the service's cancel must not keep the loop alive.
    signals = Signals()
    for _ in range(200):
        waiter = asyncio.create_task(signals.wait(Signals.TICKET, 5))
        await asyncio.sleep(0)
        signals.notify(Signals.TICKET)
        waiter.cancel()
        done, _ = await asyncio.wait({waiter}, timeout=1)
        assert waiter in done and waiter.cancelled()


async def test_a_loop_stops_on_a_cancel_a_driver_swallowed():
    from nohold.aio import stop_if_cancelled

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass  # what a driver's wait_for() may do: the request stays counted
            stop_if_cancelled()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_every_logs_a_failed_pass_and_goes_on_until_cancelled(caplog):
    import logging

    from nohold.aio import every

    passes: list[int] = []
    third = asyncio.Event()

    async def tick() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise OSError("database is down")
        if len(passes) == 2:
            raise KeyError("a bug")
        third.set()

    task = asyncio.ensure_future(every(0.001, tick, logging.getLogger("t"), "t_failed",
                                       (OSError,)))
    await asyncio.wait_for(third.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed = [r for r in caplog.records if r.message.startswith("t_failed")]
    assert [(r.levelname, r.exc_info is not None) for r in failed] == [
        ("WARNING", False), ("ERROR", True)]
