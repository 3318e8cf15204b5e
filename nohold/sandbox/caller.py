"""A scripted caller for tests and the demo: a real call into the sandbox, driven over ARI.

Why not SIP: a Local channel pair originated over ARI needs no RTP, gives us
both halves' ids up front and lets us press real DTMF (tried first-hand: an ARI
originated Local pair whose ";1" gets POST /channels/{id}/dtmf). The ";1"
half sits in our own Stasis app (our "phone"); the ";2" half runs the dialplan
and the IVR under test. What the caller experiences is read from ARI events of
every channel sharing the call's linkedid (so a transfer to a new channel, a
queue agent, a re-entry into the IVR all count), recorded in a timeline that
tests wait on event by event instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriError, AriNotFound
from nohold.sandbox.instance import Sandbox

logger = logging.getLogger(__name__)

Match = str | Callable[["TimelineEntry"], bool]

_PLAYBACK_EVENTS = ("PlaybackStarted", "PlaybackContinuing", "PlaybackFinished")
_CHANNEL_EVENTS = (
    "ChannelDialplan",
    "StasisStart",
    "StasisEnd",
    "ChannelUserevent",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
)


# Every channel and bridge, never device states (see AriClient.subscribe).
ALL_CHANNELS_AND_BRIDGES = ("channel:", "bridge:")


@dataclass(frozen=True)
class TimelineEntry:
    """One thing the caller experienced. `t` is seconds since the call was placed;
    `channel` is the channel id it happened on (for playbacks: the target channel)."""

    t: float
    type: str
    channel: str | None
    detail: str
    event: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def media_uri(self) -> str:
        return str(self.event.get("playback", {}).get("media_uri", ""))

    @property
    def userevent(self) -> dict[str, str]:
        fields = dict(self.event.get("userevent", {}))
        fields.pop("eventname", None)
        return fields


class ScriptedCaller:
    """`async with ScriptedCaller(sandbox, exten="s") as caller:` places a call on enter
    and hangs up on exit.

    target: a Sandbox or (ari_url, user, password).
    """

    def __init__(
        self,
        target: Sandbox | tuple[str, str, str],
        context: str = "nohold-inbound",
        exten: str = "s",
        variables: dict[str, str] | None = None,
        *,
        caller_id: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if isinstance(target, Sandbox):
            url, user, password = target.ari_url, target.ari_user, target.ari_password
        else:
            url, user, password = target
        self.app = f"nohold-caller-{secrets.token_hex(4)}"
        self.context = context
        self.exten = exten
        self.variables = dict(variables or {})
        self.caller_id = caller_id
        self.connect_timeout = connect_timeout
        self.channel_id = str(uuid.uuid4())  # ";1": our phone, in our Stasis app
        self.dialplan_channel_id = str(uuid.uuid4())  # ";2": runs the dialplan / IVR
        # A Local ;1 created first is the call's oldest channel, so its id is the linkedid.
        self.linkedid = self.channel_id
        self.timeline: list[TimelineEntry] = []
        self._client = AriClient(url, user, password, self.app,
                                 subscribe=ALL_CHANNELS_AND_BRIDGES)
        self._t0 = time.monotonic()
        self._linked: dict[str, str | None] = {
            self.channel_id: self.linkedid,
            self.dialplan_channel_id: self.linkedid,
        }
        self._names: dict[str, str] = {}
        self._bridges: set[str] = set()
        self._dtmf_received = 0
        self._changed = asyncio.Condition()
        self._connected = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._hung_up = False
        self.connects = 0

    async def __aenter__(self) -> ScriptedCaller:
        await self.dial()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def dial(self) -> None:
        """Register our app, then originate the Local pair (the app must exist first)."""
        self._pump_task = asyncio.create_task(self._pump(), name=f"{self.app}-events")
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._connected.wait()
        except TimeoutError:
            await self.close()
            raise AriError(f"ARI events WebSocket for {self.app} did not connect") from None
        self._t0 = time.monotonic()
        params: dict[str, Any] = {
            "endpoint": f"Local/{self.exten}@{self.context}",
            "app": self.app,
            "channelId": self.channel_id,
            "otherChannelId": self.dialplan_channel_id,
        }
        if self.caller_id:
            params["callerId"] = self.caller_id
        body = {"variables": self.variables} if self.variables else None
        await self._record("Originated", None, f"called Local/{self.exten}@{self.context}", {})
        try:
            await self._client.request("POST", "/channels", params=params, json=body)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Hang up (if not yet) and drop the ARI connection. Never raises on a gone call."""
        if self._pump_task is not None and not self._hung_up:
            try:
                await self.hangup(wait=2.0)
            except AriError as exc:
                logger.warning("caller %s: hangup on close failed: %s", self.app, exc)
        # Closing the client ends the event stream by itself; the pump then returns.
        await self._client.close()
        if self._pump_task is not None:
            try:
                async with asyncio.timeout(5):
                    await self._pump_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
            self._pump_task = None

    # --- actions -----------------------------------------------------------------

    async def press(
        self,
        digits: str,
        between_ms: int = 150,
        duration_ms: int = 100,
        timeout: float = 10.0,  # noqa: ASYNC109 - the API waits on events, bounded per call
    ) -> None:
        """Send DTMF from our phone and wait until the dialplan side has received every digit."""
        await self.wait_for(
            lambda e: e.type == "StasisStart" and e.channel == self.channel_id, timeout=timeout
        )
        expected = self._dtmf_received + len(digits)
        await self._record("Pressed", self.channel_id, f"pressed {digits}", {})
        await self._client.request(
            "POST",
            f"/channels/{self.channel_id}/dtmf",
            params={"dtmf": digits, "between": between_ms, "duration": duration_ms},
        )
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self._dtmf_received >= expected)
            except TimeoutError:
                raise TimeoutError(
                    f"digits {digits!r} not all received by the dialplan side within {timeout}s\n"
                    + self.format_timeline()
                ) from None

    async def say(self, media: str = "sound:demo-thanks", timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Speak into the call: play `media` from our phone (the dialplan side hears it,
        e.g. to leave a voice message) and wait until it has been said."""
        playback_id = f"caller-say-{uuid.uuid4().hex[:12]}"
        since = len(self.timeline)
        await self._record("Said", self.channel_id, f"says {media}", {})
        await self._client.request("POST", f"/channels/{self.channel_id}/play/{playback_id}",
                                   params={"media": media})
        await self.wait_for(lambda e: e.type == "PlaybackFinished"
                            and e.event.get("playback", {}).get("id") == playback_id,
                            timeout, since=since)

    async def hangup(self, wait: float = 5.0) -> None:
        """Hang up our phone. A call already gone (404) is a successful hang-up."""
        self._hung_up = True
        try:
            await self._client.request("DELETE", f"/channels/{self.channel_id}")
        except AriNotFound:
            return
        try:
            await self.wait_for(
                lambda e: e.type == "ChannelDestroyed" and e.channel == self.channel_id,
                timeout=wait,
            )
        except TimeoutError:
            logger.warning("caller %s: no ChannelDestroyed within %ss of hangup", self.app, wait)

    # --- waiting -----------------------------------------------------------------

    async def wait_for(
        self,
        match: Match,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-wait bound reads better in tests
        *,
        since: int = 0,
    ) -> TimelineEntry:
        """First timeline entry (from index `since`) matching an event type or predicate.

        Entries already recorded count, so a prompt that started before the call
        to wait_for is found. Raises TimeoutError with the timeline so far.
        """
        pred: Callable[[TimelineEntry], bool] = (
            (lambda e: e.type == match) if isinstance(match, str) else match
        )
        deadline = time.monotonic() + timeout
        checked = since
        async with self._changed:
            while True:
                for entry in self.timeline[checked:]:
                    if pred(entry):
                        return entry
                checked = max(checked, len(self.timeline))
                if self._pump_task is not None and self._pump_task.done():
                    raise AriError(
                        f"caller {self.app}: event stream ended\n{self.format_timeline()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"caller {self.app}: no matching event within {timeout}s "
                        f"({match!r})\n{self.format_timeline()}"
                    )
                try:
                    async with asyncio.timeout(left):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def wait_for_playback(
        self,
        media_substring: str,
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        finished: bool = False,
    ) -> TimelineEntry:
        """Wait until a sound whose media URI contains `media_substring` starts (or finishes)."""
        kinds = ("PlaybackFinished",) if finished else ("PlaybackStarted", "PlaybackContinuing")
        return await self.wait_for(
            lambda e: e.type in kinds and media_substring in e.media_uri, timeout
        )

    async def wait_reached(self, target: str, timeout: float = 10.0) -> TimelineEntry:  # noqa: ASYNC109
        """Wait for UserEvent(NoholdReached,target: <target>) from a route target."""
        return await self.wait_for(
            lambda e: (
                e.type == "ChannelUserevent"
                and e.event.get("eventname") == "NoholdReached"
                and e.userevent.get("target") == target
            ),
            timeout,
        )

    async def wait_dialplan_app(
        self,
        app: str,
        data_prefix: str = "",
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        since: int = 0,
    ) -> TimelineEntry:
        """Wait until a channel of the call runs dialplan application `app` (e.g.
        "Stasis", "nohold-ivr" for entering the IVR; "Queue", "tech")."""
        return await self.wait_for(
            lambda e: (
                e.type == "Dialplan"
                and e.event.get("dialplan_app") == app
                and str(e.event.get("dialplan_app_data", "")).startswith(data_prefix)
            ),
            timeout,
            since=since,
        )

    async def wait_hungup(self, timeout: float = 10.0) -> TimelineEntry:  # noqa: ASYNC109
        """Wait until the dialplan side of the call is gone (the system hung up or we did)."""
        return await self.wait_for(
            lambda e: e.type == "ChannelDestroyed" and e.channel == self.dialplan_channel_id,
            timeout,
        )

    # --- reading -----------------------------------------------------------------

    def playbacks(self) -> list[str]:
        """Media URIs of every sound started for this call, in order."""
        return [
            e.media_uri
            for e in self.timeline
            if e.type in ("PlaybackStarted", "PlaybackContinuing")
        ]

    def userevents(self, name: str | None = None) -> list[dict[str, str]]:
        """Fields of every UserEvent raised by this call's channels (optionally by name)."""
        return [
            e.userevent
            for e in self.timeline
            if e.type == "ChannelUserevent" and (name is None or e.event.get("eventname") == name)
        ]

    def format_timeline(self) -> str:
        return "\n".join(f"+{e.t:.2f}s  {e.detail}" for e in self.timeline)

    # --- event pump --------------------------------------------------------------

    async def _pump(self) -> None:
        async for event in self._client.events():
            kind = event.get("type", "")
            if kind == CONNECTED_EVENT:
                self.connects += 1  # more than one: the socket dropped and came back
                self._connected.set()
                continue
            try:
                await self._handle(kind, event)
            except AriError as exc:  # a lookup for a vanished channel: not the call's problem
                logger.debug("caller %s: %s while handling %s", self.app, exc, kind)

    async def _handle(self, kind: str, event: dict[str, Any]) -> None:
        chan = event.get("channel") or {}
        cid = chan.get("id")
        if cid and chan.get("name"):
            self._names[cid] = chan["name"]
        if kind == "ChannelCreated" and cid:
            await self._is_ours(cid)
            return
        if kind == "ChannelDtmfReceived":
            if cid == self.dialplan_channel_id:
                self._dtmf_received += 1
                await self._record(
                    kind, cid, f"{self._name(cid)} got DTMF {event.get('digit')}", event
                )
            return
        if kind in _PLAYBACK_EVENTS:
            pb = event.get("playback", {})
            target = str(pb.get("target_uri", ""))
            if await self._target_is_ours(target):
                state = {
                    "PlaybackStarted": "started",
                    "PlaybackContinuing": "next",
                    "PlaybackFinished": "finished",
                }[kind]
                # entry.channel: the channel played to (None when played to a bridge)
                kind_, _, ident = target.partition(":")
                channel = ident if kind_ == "channel" else None
                await self._record(kind, channel, f"heard {pb.get('media_uri')} ({state})", event)
            return
        if kind not in _CHANNEL_EVENTS or not cid or not await self._is_ours(cid):
            return
        name = self._name(cid)
        if kind == "ChannelDialplan":
            # An app subscribed to all channels gets no StasisStart/StasisEnd for channels entering
            # *another* app (nohold-ivr); the dialplan step running Stasis() is what we see.
            app = event.get("dialplan_app") or ""
            if not app or app.startswith("AppDial"):  # AppDial*: Asterisk's dialing stub
                return
            kind = "Dialplan"
            detail = f"{name} runs {app}({event.get('dialplan_app_data', '')})"
        elif kind == "StasisStart":
            detail = f"{name} entered Stasis {event.get('application')} args={event.get('args')}"
        elif kind == "StasisEnd":
            detail = f"{name} left Stasis {event.get('application')}"
        elif kind == "ChannelUserevent":
            fields = " ".join(
                f"{k}={v}" for k, v in event.get("userevent", {}).items() if k != "eventname"
            )
            detail = f"{name} UserEvent {event.get('eventname')} {fields}".rstrip()
        elif kind in ("ChannelEnteredBridge", "ChannelLeftBridge"):
            bridge = str(event.get("bridge", {}).get("id", ""))
            if kind == "ChannelEnteredBridge":
                self._bridges.add(bridge)
            verb = "joined" if kind == "ChannelEnteredBridge" else "left"
            detail = f"{name} {verb} bridge {bridge}"
        else:
            cause = event.get("cause")
            what = "hang-up requested" if kind == "ChannelHangupRequest" else "destroyed"
            cause_txt = event.get("cause_txt", "")
            detail = f"{name} {what} (cause {cause} {cause_txt})".replace(" )", ")")
        await self._record(kind, cid, detail, event)

    async def _target_is_ours(self, target_uri: str) -> bool:
        kind, _, ident = target_uri.partition(":")
        if kind == "channel":
            return await self._is_ours(ident)
        if kind == "bridge":
            return ident in self._bridges
        return False

    async def _is_ours(self, channel_id: str) -> bool:
        """Does this channel belong to our call (same linkedid)? Asked once per channel.

        ARI's channel model has no linkedid in Asterisk 22, so we read CHANNEL(linkedid).
        """
        if channel_id not in self._linked:
            try:
                got = await self._client.request(
                    "GET",
                    f"/channels/{channel_id}/variable",
                    params={"variable": "CHANNEL(linkedid)"},
                )
                self._linked[channel_id] = (got or {}).get("value")
            except AriError:
                self._linked[channel_id] = None  # already gone: unknowable, not ours
        return self._linked[channel_id] == self.linkedid

    def _name(self, channel_id: str) -> str:
        return self._names.get(channel_id, channel_id)

    async def _record(
        self, kind: str, channel: str | None, detail: str, event: dict[str, Any]
    ) -> None:
        entry = TimelineEntry(round(time.monotonic() - self._t0, 3), kind, channel, detail, event)
        async with self._changed:
            self.timeline.append(entry)
            self._changed.notify_all()
