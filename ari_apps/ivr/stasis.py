"""ARI events in, per-call tasks out. Thin: filters, matches and delegates to IvrFlow.

Each channel gets its own task and its events are fed to it in arrival order.
Unknown input is logged; nothing raised here may stop the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriError
from ari_apps.ivr.channel import Channel
from ari_apps.ivr.flow import IvrFlow
from nohold import logs

log = logging.getLogger("nohold.stasis")


class IvrApp:
    def __init__(self, ari: AriClient, flow: IvrFlow) -> None:
        self.ari = ari
        self.flow = flow
        self.channels: dict[str, Channel] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.replaced = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Consume events until cancelled or replaced by another nohold with the same app."""
        async for event in self.ari.events():
            try:
                self.dispatch(event)
            except Exception:  # noqa: BLE001 - one bad event must not end the app
                log.exception("event_dispatch_failed type=%s", event.get("type"))
            if self.replaced.is_set():
                return

    def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == CONNECTED_EVENT:
            self.connected.set()
            self._spawn(self.reconcile(), "-")
            return
        if kind == "ApplicationReplaced":
            log.error("application_replaced app=%s: another process took it; standing down",
                      self.ari.app)
            self.replaced.set()
            return
        if kind == "StasisStart":
            self._start_call(event)
            return
        channel_id = _channel_of(event)
        ch = self.channels.get(channel_id) if channel_id else None
        if channel_id and ch is not None:
            ch.feed(event)
            if ch.gone.is_set() and kind in ("StasisEnd", "ChannelDestroyed"):
                self.channels.pop(channel_id, None)

    def _start_call(self, event: dict[str, Any]) -> None:
        ch = Channel(self.ari, event)
        if ch.id in self.channels:
            log.warning("stasis_start_duplicate channel=%s", ch.id)
            return
        self.channels[ch.id] = ch
        self._spawn(self.flow.run(ch), ch.call_id or "-")

    def _spawn(self, coro: Any, call_id: str) -> None:
        async def with_call_id() -> None:
            logs.call_id.set(call_id)
            await coro

        task = asyncio.create_task(with_call_id())
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call_task_crashed", exc_info=task.exception())

    async def reconcile(self) -> None:
        """After (re)connecting: channels left in our app that no task owns (nohold was
        restarted, or events were missed) go to the fallback, so nobody waits in silence."""
        try:
            app = await self.ari.request("GET", f"/applications/{self.ari.app}")
        except AriError:
            log.exception("reconcile_failed")
            return
        present = set(app.get("channel_ids", []))
        for channel_id, ch in list(self.channels.items()):
            if channel_id not in present:
                log.info("reconcile_gone channel=%s", channel_id)
                ch.gone.set()
                self.channels.pop(channel_id, None)
        for channel_id in sorted(present - set(self.channels)):
            log.warning("reconcile_orphan channel=%s: sending to fallback", channel_id)
            await self._continue_to_fallback(channel_id)

    async def _continue_to_fallback(self, channel_id: str) -> None:
        context, exten, priority = self.flow.location(self.flow.ivr.fallback)
        try:
            await self.ari.request(
                "POST", f"/channels/{channel_id}/continue",
                params={"context": context, "extension": exten, "priority": priority},
            )
        except AriError as exc:
            log.info("fallback_not_possible channel=%s error=%s", channel_id, exc)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop the call tasks; callers still in the IVR are handed to a person."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=grace)
        for channel_id, ch in list(self.channels.items()):
            if not ch.gone.is_set():
                log.info("shutdown_handover channel=%s", channel_id)
                try:
                    await ch.stop_playbacks()
                except AriError:
                    pass
                await self._continue_to_fallback(channel_id)
        self.channels.clear()


def _channel_of(event: dict[str, Any]) -> str | None:
    channel = event.get("channel")
    if isinstance(channel, dict):
        return channel.get("id")
    playback = event.get("playback")
    if isinstance(playback, dict):
        target = playback.get("target_uri", "")
        if target.startswith("channel:"):
            return target[len("channel:"):]
    return None
