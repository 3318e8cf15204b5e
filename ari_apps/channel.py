"""One caller's channel as awaitable steps: play, wait for a key, continue in the dialplan.

Events for the channel arrive through `feed()` in the order Asterisk sent them.
A hang-up at any moment makes the step in progress raise CallerHungUp, which the
flow treats as a normal end, never as an error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from ari_apps.ari_client import AriClient, AriConflict, AriNotFound

log = logging.getLogger(__name__)
T = TypeVar("T")

_GONE_EVENTS = {"StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"}


class CallerHungUp(Exception):
    pass


class Channel:
    def __init__(self, ari: AriClient, event: dict[str, Any]) -> None:
        ch = event["channel"]
        self.ari = ari
        self.id: str = ch["id"]
        # The call's unique id (linkedid), shared by every channel of one call
        # (transfers, Local pairs). ARI's channel object lacks it: see call_id_from().
        self.call_id: str = ch.get("linkedid") or ""
        self.caller: str = (ch.get("caller") or {}).get("number", "") or ""
        self.args: list[str] = list(event.get("args") or [])
        self.keys: asyncio.Queue[str] = asyncio.Queue()
        self.gone = asyncio.Event()
        # playback id -> its final state ("done", or "failed" e.g. on hang-up)
        self._playbacks: dict[str, asyncio.Future[str]] = {}
        # Those of them Asterisk has accepted (the POST returned): only these can be
        # asked about after a reconnect without mistaking "not yet" for "ended".
        self._accepted: set[str] = set()

    # -- events ---------------------------------------------------------------------
    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "ChannelDtmfReceived":
            self.keys.put_nowait(event.get("digit", ""))
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            playback = event.get("playback", {})
            fut = self._playbacks.pop(playback.get("id", ""), None)
            if fut is not None and not fut.done():
                state = "failed" if kind == "PlaybackFailed" else playback.get("state", "done")
                fut.set_result(state)
        elif kind in _GONE_EVENTS:
            self.gone.set()

    # -- steps ----------------------------------------------------------------------
    async def _until_gone(self, aw: Awaitable[T]) -> T:
        """Await `aw`, but raise CallerHungUp as soon as the channel goes away."""
        task = asyncio.ensure_future(aw)
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            gone.cancel()
            raise
        gone.cancel()
        if task.done():
            return task.result()
        task.cancel()
        raise CallerHungUp(self.id)

    async def _rest(self, method: str, path: str, **params: Any) -> Any:
        if self.gone.is_set():
            raise CallerHungUp(self.id)
        try:
            return await self._until_gone(self.ari.request(method, path, params=params))
        except (AriNotFound, AriConflict) as exc:
            # The channel vanished between our decision and the request.
            raise CallerHungUp(self.id) from exc

    async def fetch_call_id(self) -> str:
        """For dialplans that do not pass ${CHANNEL(linkedid)} to Stasis()."""
        result = await self._rest("GET", f"/channels/{self.id}/variable",
                                  variable="CHANNEL(linkedid)")
        return str(result.get("value") or self.id)

    async def answer(self) -> None:
        await self._rest("POST", f"/channels/{self.id}/answer")

    async def play(self, media: str, *, interruptible: bool) -> str | None:
        """Play to the end; with `interruptible`, a key press stops it and is returned."""
        playback_id = f"nohold-{uuid.uuid4().hex[:16]}"
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = done
        await self._rest("POST", f"/channels/{self.id}/play/{playback_id}", media=media)
        if not done.done():
            self._accepted.add(playback_id)
        if not interruptible:
            await self._check_finished(await self._until_gone(done))
            return None
        key_task: asyncio.Future[str] = asyncio.ensure_future(self.keys.get())
        waiting: set[asyncio.Future[Any]] = {done, key_task}
        try:
            await self._until_gone(asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED))
        finally:
            if not key_task.done():
                key_task.cancel()
        if key_task.done() and not key_task.cancelled():
            await self._stop_playback(playback_id)
            return key_task.result()
        await self._check_finished(done.result())
        return None

    async def _check_finished(self, state: str) -> None:
        """A playback that failed because the caller left is a hang-up, not a success.
        Asterisk may send that PlaybackFinished before the hang-up events."""
        if state == "done":
            return
        try:
            await asyncio.wait_for(self.gone.wait(), 1.0)
        except TimeoutError:
            log.warning("playback_failed channel=%s state=%s", self.id, state)
            return
        raise CallerHungUp(self.id)

    async def stop_playbacks(self) -> None:
        """Before handing the channel on: ARI's continue waits behind a running playback."""
        for playback_id in list(self._playbacks):
            await self._stop_playback(playback_id)

    async def _stop_playback(self, playback_id: str) -> None:
        self._playbacks.pop(playback_id, None)
        try:
            await self.ari.request("DELETE", f"/playbacks/{playback_id}")
        except (AriNotFound, AriConflict):
            pass  # finished on its own meanwhile, or the channel is gone

    async def recheck_playbacks(self) -> None:
        """After a reconnect: a PlaybackFinished sent while the socket was down reached
        nobody (Asterisk does not replay events), and the step waiting for it would hold
        the caller in silence forever. A playback Asterisk no longer knows has ended;
        its final state is lost, so "done" (the notice's own clock still judges it)."""
        for playback_id in list(self._accepted):
            fut = self._playbacks.get(playback_id)
            if fut is None or fut.done():
                self._accepted.discard(playback_id)
                continue
            try:
                await self.ari.request("GET", f"/playbacks/{playback_id}")
            except AriNotFound:
                log.info("playback_ended_unseen channel=%s playback=%s", self.id, playback_id)
                self._accepted.discard(playback_id)
                self._playbacks.pop(playback_id, None)
                fut.set_result("done")

    async def next_key(self, timeout: float) -> str | None:
        try:
            return await self._until_gone(asyncio.wait_for(self.keys.get(), timeout))
        except TimeoutError:
            return None

    async def collect(self, max_digits: int, timeout: float, first: str | None = None) -> str:
        """Digits until '#', `max_digits`, or `timeout` seconds of silence."""
        entered = ""
        key = first
        while True:
            if key is None:
                key = await self.next_key(timeout)
            if key is None or key == "#":
                return entered
            entered += key
            if len(entered) >= max_digits:
                return entered
            key = None

    def discard_keys(self) -> list[str]:
        dropped = []
        while not self.keys.empty():
            dropped.append(self.keys.get_nowait())
        return dropped

    async def set_vars(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            await self._rest("POST", f"/channels/{self.id}/variable", variable=name, value=value)

    async def continue_to(self, context: str, exten: str, priority: int = 1) -> None:
        await self._rest(
            "POST",
            f"/channels/{self.id}/continue",
            context=context,
            extension=exten,
            priority=priority,
        )
