"""asyncio helpers every layer may use."""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Python 3.11's wait_for() (in SQLAlchemy's drivers, in our SMS send) can swallow
    a cancel that races a result; the request stays counted on the task, so a loop that
    checks it between passes still stops when the service stops it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
