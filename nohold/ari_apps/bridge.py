"""A mixing bridge owned by one ARI app: create, add and remove channels, play, destroy.

The agent-first dialer puts the agent in a bridge and dials the customer into
it, so nobody ever hears hold music. Events for the bridge (its playbacks,
whose target_uri is `bridge:<id>`, and BridgeDestroyed) arrive through `feed()`
from the runtime, in the order Asterisk sent them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from nohold.ari_apps.ari_client import AriClient, AriHttpError, AriNotFound
from nohold.ari_apps.channel import Channel

log = logging.getLogger(__name__)


class BridgeGone(Exception):
    """The bridge was destroyed (by us, another app, or an Asterisk restart)."""


def _ids(channels: tuple[Channel | str, ...]) -> str:
    return ",".join(c.id if isinstance(c, Channel) else c for c in channels)


class Bridge:
    def __init__(self, ari: AriClient, bridge_id: str | None = None) -> None:
        self.ari = ari
        # Pre-assigned so the runtime can route the bridge's events before the
        # create request has even returned.
        self.id = bridge_id or f"nohold-{uuid.uuid4().hex}"
        self.gone = asyncio.Event()
        self._playbacks: dict[str, asyncio.Future[str]] = {}
        # Called once when the bridge is known to be gone (the runtime forgets it).
        self.on_gone: list[Callable[[Bridge], None]] = []

    # -- events ---------------------------------------------------------------------
    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            playback = event.get("playback", {})
            fut = self._playbacks.pop(playback.get("id", ""), None)
            if fut is not None and not fut.done():
                state = "failed" if kind == "PlaybackFailed" else playback.get("state", "done")
                fut.set_result(state)
        elif kind == "BridgeDestroyed":
            self._mark_gone()

    def _mark_gone(self) -> None:
        if self.gone.is_set():
            return
        self.gone.set()
        for fut in self._playbacks.values():
            if not fut.done():
                fut.set_exception(BridgeGone(self.id))
        self._playbacks.clear()
        for callback in self.on_gone:
            callback(self)

    # -- requests -------------------------------------------------------------------
    async def create(self, name: str | None = None) -> Bridge:
        """A mixing bridge: everyone in it hears everyone else."""
        await self.ari.request("POST", f"/bridges/{self.id}",
                               params={"type": "mixing", "name": name})
        log.info("bridge_created bridge=%s", self.id)
        return self

    async def add(self, *channels: Channel | str) -> None:
        """Raises AriHttpError if a channel is gone or not in Stasis (422), or the bridge
        is gone (404): the feature decides what that means for the call."""
        await self.ari.request("POST", f"/bridges/{self.id}/addChannel",
                               params={"channel": _ids(channels)})
        log.info("bridge_add bridge=%s channels=%s", self.id, _ids(channels))

    async def remove(self, *channels: Channel | str) -> None:
        """A channel already gone, or already out of the bridge, is removed: success."""
        try:
            await self.ari.request("POST", f"/bridges/{self.id}/removeChannel",
                                   params={"channel": _ids(channels)})
        except AriHttpError as exc:
            if exc.status not in (404, 422):
                raise
            log.info("bridge_remove_not_there bridge=%s channels=%s status=%s", self.id,
                     _ids(channels), exc.status)
            return
        log.info("bridge_remove bridge=%s channels=%s", self.id, _ids(channels))

    async def play(self, media: str) -> str:
        """Play to everyone in the bridge, to the end. Returns the final state ("done",
        or "failed"); raises BridgeGone if the bridge is destroyed meanwhile."""
        if self.gone.is_set():
            raise BridgeGone(self.id)
        playback_id = f"nohold-{uuid.uuid4().hex[:16]}"
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = done
        try:
            await self.ari.request("POST", f"/bridges/{self.id}/play/{playback_id}",
                                   params={"media": media})
        except AriNotFound as exc:
            self._playbacks.pop(playback_id, None)
            raise BridgeGone(self.id) from exc
        except BaseException:
            self._playbacks.pop(playback_id, None)
            raise
        state = await done
        log.info("bridge_playback_finished bridge=%s playback=%s state=%s", self.id,
                 playback_id, state)
        return state

    async def destroy(self) -> None:
        """Channels still inside leave the bridge (they stay in the app). Already
        gone (404) is success.

        The destroying app did not get BridgeDestroyed in our e2e test on 22.10 (an
        observer subscribed to all bridges did), so the answer itself marks the
        bridge gone."""
        try:
            await self.ari.request("DELETE", f"/bridges/{self.id}")
        except AriNotFound:
            log.debug("bridge_already_gone bridge=%s", self.id)
        log.info("bridge_destroyed bridge=%s", self.id)
        self._mark_gone()
