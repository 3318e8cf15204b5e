"""The Stasis runtime every ARI feature runs on: events in, one task per call out.

A feature (the IVR, later callbacks and the dialer) implements `StasisFeature`:
how to run one call, and where a caller goes when anything fails. The runtime
owns everything else that each ARI application needs and that is easy to get
wrong: the channel registry, feeding each channel's events to its own task in
arrival order, the call id on every log line, reconnect and reconcile (Asterisk
does not replay missed events), ApplicationReplaced, and the hand-over of
callers still inside the app when nohold stops. Any exception in a call task
ends with the caller at the feature's fallback and one log line with the call id.

Outbound legs (`originate()`) and bridges (`create_bridge()`) are registered
here by their pre-assigned ids: Dial and ChannelDestroyed of a channel still
ringing go to its Outbound, its StasisStart completes the Outbound with a
Channel instead of starting a call flow, and bridge playbacks go to the Bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from nohold.ari_apps.ari_client import (
    CONNECTED_EVENT,
    DISCONNECTED_EVENT,
    AriClient,
    AriError,
    AriNotFound,
)
from nohold.ari_apps.bridge import Bridge
from nohold.ari_apps.channel import (
    CallerHungUp,
    Channel,
    DialplanLocation,
    Originations,
    Outbound,
    hand_over,
    originate,
)
from nohold import logs

log = logging.getLogger("nohold.stasis")

# How long the runtime keeps trying to hand a caller to the fallback when ARI
# fails (e.g. Asterisk's HTTP session limit is reached): long enough to outlast
# a brief overload, short enough that a caller never sits in silence for long.
RESCUE_DEADLINE = 20.0

# Asterisk lists a channel in the app as it enters Stasis, while its StasisStart may
# still be on the way to us: only a channel still unknown this long after reconcile's
# answer is an orphan. Orphans have waited since nohold went away; this adds little.
ORPHAN_GRACE = 0.5


class StasisFeature(Protocol):
    """What a feature gives the runtime for its ARI application."""

    name: str

    async def run_call(self, ch: Channel) -> None:
        """The call flow. May raise anything: the runtime sends the caller on."""

    def fallback(self, ch: Channel | None) -> DialplanLocation | None:
        """Where a caller goes when the flow fails, nohold stops, or a channel is
        found orphaned (ch is None). None: hang the channel up (outbound legs)."""


class StasisRuntime:
    def __init__(self, ari: AriClient, feature: StasisFeature) -> None:
        self.ari = ari
        self.feature = feature
        self.channels: dict[str, Channel] = {}
        self.originations = Originations()
        # Channels being made with channels/create, by id, until their StasisStart.
        self.expected: dict[str, asyncio.Future[Channel]] = {}
        self.bridges: dict[str, Bridge] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.replaced = asyncio.Event()
        self.connected = asyncio.Event()
        # A feature that makes its own channels (a dialler) gets its runtime.
        bind = getattr(feature, "bind_runtime", None)
        if bind is not None:
            bind(self)
        # Stops an orphan's current playback by channel id alone (the old process's
        # playback ids died with it); without it the hand-over waits for the prompt's end.
        self.stop_orphan_playback: Callable[[str], Awaitable[None]] | None = None

    @property
    def app(self) -> str:
        return self.ari.app

    async def run(self) -> None:
        """Consume events until cancelled or replaced by another nohold with the same app."""
        async for event in self.ari.events():
            try:
                self.dispatch(event)
            except Exception:  # noqa: BLE001 - one bad event must not end the app
                log.exception("event_dispatch_failed app=%s type=%s", self.app, event.get("type"))
            if self.replaced.is_set():
                return

    def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == CONNECTED_EVENT:
            self.connected.set()
            self._spawn(self.reconcile(), "-")
            return
        if kind == DISCONNECTED_EVENT:
            self.connected.clear()
            # Their StasisStart cannot come now: fail them at once, not after 10 s.
            for made, waiting in self.expected.items():
                if not waiting.done():
                    waiting.set_exception(AriError(
                        f"ARI events for {self.app} dropped before {made} entered"))
            return
        if kind == "ApplicationReplaced":
            log.error("application_replaced app=%s: another process took it; standing down",
                      self.app)
            self.replaced.set()
            return
        if kind == "StasisStart":
            if not self._enter_created(event) and not self._enter_originated(event):
                self._start_call(event)
            return
        if self.originations:
            pending = _channel_of(event)
            if pending and self.originations.feed(pending, event):
                return
        bridge_id = _bridge_of(event)
        if bridge_id is not None:
            bridge = self.bridges.get(bridge_id)
            if bridge is not None:
                bridge.feed(event)  # BridgeDestroyed removes it from self.bridges
            return
        channel_id = _channel_of(event)
        ch = self.channels.get(channel_id) if channel_id else None
        if channel_id and ch is not None:
            ch.feed(event)
            # A leg nohold dialled stays registered until ChannelDestroyed, which
            # alone carries its final cause (busy, rejected, no answer...).
            if kind == "ChannelDestroyed" or (kind == "StasisEnd" and ch.gone.is_set()
                                              and not ch.dialled):
                self.channels.pop(channel_id, None)

    def _enter_created(self, event: dict[str, Any]) -> bool:
        channel_id = _channel_of(event)
        waiting = self.expected.pop(channel_id, None) if channel_id else None
        if waiting is None:
            return False
        ch = Channel(self.ari, event)
        self.channels[ch.id] = ch
        if not waiting.done():
            waiting.set_result(ch)
        return True

    async def create_channel(
        self,
        endpoint: str,
        *,
        channel_id: str,
        other_channel_id: str | None = None,
        app_args: Sequence[str] = (),
        variables: dict[str, str] | None = None,
        originator: str | None = None,
        timeout: float = 10.0,
    ) -> Channel:
        """A channel made (channels/create) into this app, not yet dialled: it enters
        Stasis at once, and its events reach the returned Channel. Dial it with
        `Channel.dial`. Raises AriError, or TimeoutError when no StasisStart came."""
        waiting: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self.expected[channel_id] = waiting
        params: dict[str, Any] = {
            "endpoint": endpoint, "app": self.app, "channelId": channel_id,
            "otherChannelId": other_channel_id, "originator": originator,
            "appArgs": ",".join(app_args) if app_args else None,
        }
        body = {"variables": dict(variables)} if variables else None
        log.info("channel_create channel=%s endpoint=%s", channel_id, endpoint)
        try:
            await self.ari.request("POST", "/channels/create", params=params, json=body)
            try:
                async with asyncio.timeout(timeout):
                    return await waiting
            except BaseException:
                # Made but never ours (no StasisStart, or cancelled meanwhile): a
                # channel nobody holds must not stay in Asterisk.
                await asyncio.shield(self._drop(channel_id))
                raise
        finally:
            self.expected.pop(channel_id, None)
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # retrieved: a POST that failed first said it all

    async def _drop(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):  # 404: gone already
            await self.ari.request("DELETE", f"/channels/{channel_id}")

    def _enter_originated(self, event: dict[str, Any]) -> bool:
        channel_id = _channel_of(event)
        if channel_id not in self.originations:
            return False
        ch = Channel(self.ari, event)
        # From now on its events (hang-up, playbacks) reach it like any call's; the
        # feature that originated it runs the leg in its own task.
        self.channels[ch.id] = ch
        return self.originations.entered(ch)

    async def originate(
        self,
        endpoint: str,
        *,
        app_args: Sequence[str] = (),
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        caller_id: str | None = None,
        timeout: float = 30,
        variables: dict[str, str] | None = None,
    ) -> Outbound:
        """originate() into this runtime's app, its events routed here."""
        return await originate(
            self.ari, endpoint, app=self.app, originations=self.originations,
            app_args=app_args, channel_id=channel_id, other_channel_id=other_channel_id,
            caller_id=caller_id, timeout=timeout, variables=variables,
        )

    async def create_bridge(self, bridge_id: str | None = None, name: str | None = None) -> Bridge:
        """A mixing bridge whose events are routed to it."""
        bridge = Bridge(self.ari, bridge_id)
        self.bridges[bridge.id] = bridge
        bridge.on_gone.append(lambda b: self._forget_bridge(b.id))
        try:
            return await bridge.create(name)
        except BaseException:
            self.bridges.pop(bridge.id, None)
            raise

    def _forget_bridge(self, bridge_id: str) -> None:
        self.bridges.pop(bridge_id, None)

    def _start_call(self, event: dict[str, Any]) -> None:
        ch = Channel(self.ari, event)
        if ch.id in self.channels:
            log.warning("stasis_start_duplicate app=%s channel=%s", self.app, ch.id)
            return
        self.channels[ch.id] = ch
        self._spawn(self._call(ch), ch.call_id or "-")

    async def _call(self, ch: Channel) -> None:
        try:
            await self.feature.run_call(ch)
        except CallerHungUp:
            log.info("caller_hung_up app=%s channel=%s", self.app, ch.id)
        except Exception:  # noqa: BLE001 - whatever failed, the caller must reach someone
            log.exception("call_failed app=%s channel=%s; sending the caller to the fallback",
                          self.app, ch.id)
            await self.rescue(ch)

    def _spawn(self, coro: Coroutine[Any, Any, None], call_id: str) -> None:
        # The call id rides in the task's own context: no wrapping coroutine to set it.
        context = contextvars.copy_context()
        context.run(logs.call_id.set, call_id)
        task = asyncio.create_task(coro, context=context)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call_task_crashed app=%s", self.app, exc_info=task.exception())

    async def rescue(self, ch: Channel) -> None:
        """Hand the caller to the fallback, retrying while ARI fails (overload, a
        dropped connection), until the caller is served or gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESCUE_DEADLINE
        attempt = 0
        while True:
            try:
                await ch.stop_playbacks()
                await hand_over(self.ari, ch.id, self.feature.fallback(ch))
                return
            except CallerHungUp:
                return
            except AriError as exc:
                attempt += 1
                if loop.time() >= deadline:
                    log.error("rescue_failed app=%s channel=%s attempts=%d error=%s",
                              self.app, ch.id, attempt, exc)
                    return
                log.warning("rescue_retry app=%s channel=%s attempt=%d error=%s",
                            self.app, ch.id, attempt, exc)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))

    async def reconcile(self) -> None:
        """After (re)connecting: channels left in our app that no task owns (nohold was
        restarted, or events were missed) go to the fallback, so nobody waits in silence."""
        try:
            app = await self.ari.request("GET", f"/applications/{self.app}")
        except AriError:
            log.exception("reconcile_failed app=%s", self.app)
            return
        present = set(app.get("channel_ids", []))
        for channel_id, ch in list(self.channels.items()):
            if channel_id not in present and not await self._still_there(channel_id):
                log.info("reconcile_gone app=%s channel=%s", self.app, channel_id)
                ch.gone.set()
                self.channels.pop(channel_id, None)
        for channel_id, ch in list(self.channels.items()):
            try:
                await ch.recheck_playbacks()
            except AriError as exc:
                log.warning("reconcile_playbacks_failed app=%s channel=%s error=%s", self.app,
                            channel_id, exc)
        unknown = present - set(self.channels)
        if unknown:
            await asyncio.sleep(ORPHAN_GRACE)
        # Channels a feature recovers itself from its own records (a dialler's legs,
        # perhaps in a conversation that must go on) are not the fallback's.
        leave = getattr(self.feature, "leaves_orphan", None)
        for channel_id in sorted(unknown - set(self.channels)):
            if leave is not None and leave(channel_id):
                log.info("reconcile_orphan_left app=%s channel=%s", self.app, channel_id)
                continue
            log.warning("reconcile_orphan app=%s channel=%s: sending to fallback",
                        self.app, channel_id)
            if self.stop_orphan_playback is not None:
                try:
                    await self.stop_orphan_playback(channel_id)
                except Exception as exc:  # noqa: BLE001 - the hand-over matters more
                    log.warning("orphan_playback_stop_failed app=%s channel=%s error=%s",
                                self.app, channel_id, exc)
            await self._hand_over(channel_id, self.feature.fallback(None))

    async def _still_there(self, channel_id: str) -> bool:
        """Asked by id: after the app's socket was down, Asterisk 22 may list none of
        the app's channels although they are still in Stasis (docs/decisions/0006)."""
        try:
            await self.ari.request("GET", f"/channels/{channel_id}")
        except AriNotFound:
            return False
        except AriError:
            return True  # unknown: keep it; the next reconcile asks again
        return True

    async def _hand_over(self, channel_id: str, where: DialplanLocation | None) -> None:
        try:
            await hand_over(self.ari, channel_id, where)
        except CallerHungUp:
            pass
        except AriError as exc:
            log.info("fallback_not_possible app=%s channel=%s error=%s", self.app, channel_id,
                     exc)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop the call tasks; callers still in the app are handed to the fallback."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=grace)
        for channel_id, ch in list(self.channels.items()):
            if ch.keep_at_shutdown and not ch.gone.is_set():
                log.info("shutdown_left_talking app=%s channel=%s", self.app, channel_id)
            elif not ch.gone.is_set():
                log.info("shutdown_handover app=%s channel=%s", self.app, channel_id)
                try:
                    await ch.stop_playbacks()
                except AriError:
                    pass
                await self._hand_over(channel_id, self.feature.fallback(ch))
        self.channels.clear()


def _channel_of(event: dict[str, Any]) -> str | None:
    # Dial names the dialled channel `peer` (and the dialling one `caller`).
    channel = event.get("peer") if event.get("type") == "Dial" else event.get("channel")
    if isinstance(channel, dict):
        return channel.get("id")
    return _playback_target(event, "channel:")


def _bridge_of(event: dict[str, Any]) -> str | None:
    """The bridge a bridge-only event is about (its playbacks, its destruction); None
    for channel events, including a channel entering or leaving a bridge."""
    if event.get("type") == "BridgeDestroyed":
        bridge = event.get("bridge")
        return bridge.get("id") if isinstance(bridge, dict) else None
    return _playback_target(event, "bridge:")


def _playback_target(event: dict[str, Any], kind: str) -> str | None:
    """The id in a playback's (or a recording's) target_uri ("channel:<id>",
    "bridge:<id>")."""
    playback = event.get("playback") or event.get("recording")
    if isinstance(playback, dict):
        target = str(playback.get("target_uri", ""))
        if target.startswith(kind):
            return target[len(kind):]
    return None
