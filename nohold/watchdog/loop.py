"""`nohold watchdog`: callers left in a Stasis app that nobody serves go to the fallback.

A separate, small process that talks to ARI over REST only (no WebSocket app of
its own, so it can never take over or replace nohold's apps). Asterisk keeps
channels in Stasis forever when the app's socket is gone (kill -9, a crash, a
host problem): without this, they wait in silence until nohold is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from nohold.ami.client import AmiClient, AmiError, stop_channel_playback
from nohold.ari_apps.ari_client import AriClient, AriError, AriNotFound, liveness_app
from nohold.ari_apps.channel import CallerHungUp, DialplanLocation, hand_over
from nohold.decisions.watchdog import Outage, channels_of, registered_apps
from nohold.watchdog.settings import WatchdogSettings

log = logging.getLogger("nohold.watchdog")



class Watchdog:
    def __init__(self, ari: AriClient, apps: Mapping[str, DialplanLocation],
                 settings: WatchdogSettings, ami: AmiClient | None = None) -> None:
        self.ari = ari
        self.apps = dict(apps)
        self.settings = settings
        self.ami = ami
        self.outages = {app: Outage(settings.grace_seconds) for app in self.apps}
        self.handed_over = 0
        # A continue is queued behind the channel's current playback, so a channel
        # handed over can stay listed in the app until its prompt ends: ask once.
        self.sent: dict[str, set[str]] = {app: set() for app in self.apps}

    async def run(self) -> None:
        log.info("watchdog_started apps=%s grace=%.1fs poll=%.1fs playback_stop=%s",
                 ",".join(self.apps), self.settings.grace_seconds, self.settings.poll_seconds,
                 "ami" if self.ami is not None else "none")
        while True:
            await self.poll_once()
            await asyncio.sleep(self.settings.poll_seconds)

    async def poll_once(self) -> None:
        try:
            answer = await self.ari.request("GET", "/applications")
        except AriError as exc:
            # Asterisk down or overloaded: no channel can be helped, and an unknown
            # answer must not count as "unregistered".
            log.warning("watchdog_ari_failed error=%s", exc)
            return
        apps = answer if isinstance(answer, list) else []
        names = registered_apps(apps)
        now = asyncio.get_running_loop().time()
        for app, where in self.apps.items():
            down_for = self.outages[app].observe(now, liveness_app(app) in names)
            present = channels_of(apps, app)
            self.sent[app] &= set(present)
            if down_for is None:
                self.sent[app].clear()
                continue
            for channel_id in present:
                if channel_id in self.sent[app]:
                    continue
                if not await self._still_down(app):
                    log.info("watchdog_stand_down app=%s: nohold is back", app)
                    self.outages[app].observe(now, True)
                    break
                await self._hand_over(app, channel_id, where, down_for)

    async def _still_down(self, app: str) -> bool:
        """Asked again right before each hand-over: a nohold that came back in the
        meantime reconciles its own callers."""
        try:
            await self.ari.request("GET", f"/applications/{liveness_app(app)}")
        except AriNotFound:
            return True
        except AriError:
            return False
        return False

    async def _hand_over(self, app: str, channel_id: str, where: DialplanLocation,
                         down_for: float) -> None:
        if self.ami is not None:
            try:
                await stop_channel_playback(self.ami, channel_id)
            except AmiError as exc:
                # Still worth the continue: it only waits for the prompt's end.
                log.warning("watchdog_playback_stop_failed channel=%s app=%s error=%s",
                            channel_id, app, exc)
        try:
            await hand_over(self.ari, channel_id, where)
        except CallerHungUp:  # hung up, or left the app meanwhile
            log.info("watchdog_channel_gone channel=%s app=%s", channel_id, app)
            return
        except AriError as exc:
            log.warning("watchdog_handover_failed channel=%s app=%s error=%s",
                        channel_id, app, exc)
            return
        context, exten, priority = where
        self.handed_over += 1
        self.sent[app].add(channel_id)
        log.warning("watchdog_handover channel=%s app=%s down_for=%.1f to=%s,%s,%s",
                    channel_id, app, down_for, context, exten, priority)
