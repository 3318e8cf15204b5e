"""asyncio helpers every layer may use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


def read_outcome(fut: asyncio.Future[Any]) -> None:
    """A done callback for a future whose waiter may be gone (cancelled, timed out):
    its exception counts as read, never "Future exception was never retrieved"."""
    if not fut.cancelled():
        fut.exception()


def stop_if_cancelled() -> None:
    """Python 3.11's wait_for() (in SQLAlchemy's drivers; nohold itself uses none) can swallow
    a cancel that races a result; the request stays counted on the task, so a loop that
    checks it between passes still stops when the service stops it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def every(seconds: float, tick: Callable[[], Awaitable[object]], log: logging.Logger,
                event: str, expected: tuple[type[BaseException], ...] = (),
                wait: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Runs `tick` every `seconds` until cancelled. A failure is one log line and the
    next pass tries again: a background loop never dies silently. `expected` failures
    (a database that is down) get a warning without a traceback. `wait` may return
    early (a nudge: work was just queued)."""
    while True:
        try:
            await tick()
        except expected as exc:
            log.warning("%s error=%r", event, (str(exc) or type(exc).__name__).splitlines()[0])
        except Exception:  # noqa: BLE001 - see above
            log.exception(event)
        await wait(seconds)
        stop_if_cancelled()
