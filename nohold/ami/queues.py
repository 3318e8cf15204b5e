"""The live queue-state view: rebuilt from QueueStatus + QueueSummary on every AMI
(re)connect, kept current from app_queue events in between.

Events that arrive while a snapshot is being read are held back and replayed on
top of it (applying them is idempotent, see nohold.decisions.queue_state), so
the snapshot never overwrites a newer event. An Asterisk restart drops the AMI
connection; the resync after the reconnect replaces everything, so callers and
dynamic members from before the restart vanish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping

from nohold.ami.client import AmiClient, AmiError, list_fields
from nohold.decisions.queue_state import QUEUE_EVENTS, QueueView, apply_event, rebuild

logger = logging.getLogger(__name__)

Views = Mapping[str, QueueView]

RESYNC_ATTEMPTS = 3
_AGENTS_KEEP = 1024


class QueueMonitor:
    """`monitor = QueueMonitor(client)` before `client.start()`; then `monitor.snapshot()`.

    queues: only these queues (None: every queue Asterisk reports).
    clock: the time base of QueueCaller.joined_at (monotonic seconds by default).
    """

    def __init__(
        self,
        client: AmiClient,
        *,
        queues: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.queues = frozenset(queues) if queues is not None else None
        self.clock = clock
        self.resyncs = 0  # completed resynchronisations
        self._views: dict[str, QueueView] = {}
        self._buffer: list[Mapping[str, str]] | None = None  # not None while resyncing
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._fresh = False
        self._pending_resync: asyncio.Task[None] | None = None
        # Caller uniqueid -> the agent app_queue connected to it (AgentConnect's
        # MemberName, else Interface): who took a call. Bounded, oldest dropped.
        self._agents: dict[str, str] = {}
        client.on_event(self._on_event)
        client.on_ready(self._on_ready)
        client.on_lost(self._on_lost)

    # -- reading ------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        """True while connected and resynchronised since the last (re)connect; otherwise
        snapshot() shows the last known state, which may be stale."""
        return self._fresh and self.client.ready

    def snapshot(self) -> dict[str, QueueView]:
        return dict(self._views)

    def view(self, queue: str) -> QueueView | None:
        return self._views.get(queue)

    def agent_for(self, uniqueid: str) -> str:
        """The agent app_queue connected to the caller `uniqueid` ("" if not seen)."""
        return self._agents.get(uniqueid, "")

    def now(self) -> float:
        """The current time on the clock of QueueCaller.joined_at (for wait())."""
        return self.clock()

    async def wait_for(
        self,
        predicate: Callable[[Views], bool],
        timeout: float,  # noqa: ASYNC109 - a bounded wait is the point
    ) -> dict[str, QueueView]:
        """Wait until predicate(snapshot) holds (checked now and after every change)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            changed = self._changed
            views = self.snapshot()
            if predicate(views):
                return views
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"queue state condition not met within {timeout}s: {views}")
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                pass

    async def wait_resynced(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until more than `after` resyncs have completed and the view is fresh."""
        await self.wait_for(lambda _: self.resyncs > after and self.fresh, timeout)
        return self.resyncs

    # -- keeping it current -------------------------------------------------------

    async def resync(self) -> None:
        """Replace the view with Asterisk's QueueStatus + QueueSummary (+ held-back events)."""
        async with self._lock:
            self._buffer = []
            try:
                status = list_fields(await self.client.action("QueueStatus"))
                summary = list_fields(await self.client.action("QueueSummary"))
                views = rebuild(status, self.clock(), summary)
                held, self._buffer = self._buffer or [], None
                for event in held:
                    views = apply_event(views, event, self.clock())
            finally:
                self._buffer = None
            if self.queues is not None:
                views = {k: v for k, v in views.items() if k in self.queues}
            self._views = views
            self._fresh = True
            self.resyncs += 1
            logger.info(
                "queue_state_resynced queues=%s callers=%s members=%s replayed=%s resyncs=%s",
                len(views),
                sum(len(v.callers) for v in views.values()),
                sum(len(v.members) for v in views.values()),
                len(held),
                self.resyncs,
            )
            self._notify()

    async def close(self) -> None:
        task, self._pending_resync = self._pending_resync, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _on_ready(self) -> None:
        for attempt in range(1, RESYNC_ATTEMPTS + 1):
            try:
                await self.resync()
                return
            except AmiError as exc:
                logger.warning("queue_state_resync_failed attempt=%s error=%r", attempt, str(exc))
                if not self.client.ready:
                    return  # the next connect resyncs again
                await asyncio.sleep(attempt)
        raise AmiError(f"queue state: QueueStatus failed {RESYNC_ATTEMPTS} times")

    def _on_lost(self) -> None:
        self._fresh = False
        self._notify()

    def _on_event(self, event: Mapping[str, str]) -> None:
        name = event.get("Event", "")
        if name not in QUEUE_EVENTS:
            return
        if self.queues is not None and event.get("Queue") not in self.queues:
            return
        logger.debug("queue_event %s buffered=%s", _brief(event), self._buffer is not None)
        if name == "AgentConnect" and event.get("Uniqueid"):
            if len(self._agents) >= _AGENTS_KEEP:
                self._agents.pop(next(iter(self._agents)))
            self._agents[event["Uniqueid"]] = (event.get("MemberName")
                                               or event.get("Interface") or "")
        if self._buffer is not None:
            self._buffer.append(event)
            return
        self._views = apply_event(self._views, event, self.clock())
        view = self._views.get(event.get("Queue", ""))
        if view is not None and view.suspect and self._pending_resync is None:
            logger.warning("queue_state_suspect queue=%s event=%s: resynchronising",
                           view.name, name)
            self._pending_resync = asyncio.get_running_loop().create_task(
                self._resync_after_suspect(), name="queue-state-resync"
            )
        self._notify()

    async def _resync_after_suspect(self) -> None:
        try:
            await self.resync()
        except AmiError as exc:
            logger.warning("queue_state_resync_failed error=%r", str(exc))
        finally:
            self._pending_resync = None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _brief(event: Mapping[str, str]) -> str:
    """An event's fields that matter to the view, for debug logs (logfmt-ish, one line)."""
    keys = ("Event", "Interface", "Uniqueid", "Status", "InCall", "Paused", "Position", "Count")
    return " ".join(f"{k}={event[k]!r}" for k in keys if k in event)
