"""Asterisk's own account of a test: every ARI channel and bridge event and every AMI
event, each stamped with Asterisk's clock, to count and order from.

ARI events come on one WebSocket in the order Asterisk published them (`seq` keeps
that order); AMI events carry `Timestamp` when manager.conf has `timestampevents =
yes` (AMI_TIMESTAMPS). Tests wait on these with bounded timeouts and count them;
they never sleep for an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nohold.ami.client import AmiClient
from nohold.ami.settings import AmiSettings
from nohold.ari_apps.ari_client import CONNECTED_EVENT, DISCONNECTED_EVENT, AriClient
from nohold.sandbox import Sandbox
from nohold.sandbox.caller import ALL_CHANNELS_AND_BRIDGES

# manager.conf addition: AMI events carry Asterisk's own time, the clock ARI uses.
AMI_TIMESTAMPS = "[general](+)\ntimestampevents = yes\n"


@dataclass
class Ev:
    seq: int  # arrival order over both streams (ARI's is Asterisk's publication order)
    ts: float  # Asterisk's epoch seconds (ARI "timestamp", AMI "Timestamp")
    src: str  # "ari" | "ami"
    type: str
    data: dict[str, Any] = field(repr=False)

    @property
    def channel(self) -> dict[str, Any]:
        """ARI: the event's channel (a Dial event's dialled channel is its "peer")."""
        return dict(self.data.get("channel") or self.data.get("peer") or {})

    @property
    def channel_id(self) -> str:
        if self.src == "ari":
            return str(self.channel.get("id", ""))
        return str(self.data.get("Uniqueid", ""))

    @property
    def channel_name(self) -> str:
        if self.src == "ari":
            return str(self.channel.get("name", ""))
        return str(self.data.get("Channel", ""))

    @property
    def bridge_id(self) -> str:
        if self.src == "ari":
            return str((self.data.get("bridge") or {}).get("id", ""))
        return str(self.data.get("BridgeUniqueid", ""))

    def line(self, t0: float) -> str:
        d = self.data
        if self.src == "ari":
            extra = {k: v for k, v in d.items() if k in (
                "dialstatus", "cause", "digit", "args", "eventname", "userevent")}
            ch = self.channel
            pb = (d.get("playback") or {}).get("media_uri", "")
            return (f"+{self.ts - t0:7.3f} ARI {self.type:22} {ch.get('id', '')} "
                    f"{ch.get('name', '')} {ch.get('state', '')} {self.bridge_id} {pb} "
                    f"{extra or ''}").rstrip()
        keep = ("Channel", "Queue", "Position", "Count", "Uniqueid", "Interface",
                "MemberName", "Paused", "HoldTime", "DestChannel", "DestUniqueid",
                "DialStatus", "UserEvent", "ChannelStateDesc", "BridgeUniqueid", "Exten",
                "Context", "Class")
        fields = " ".join(f"{k}={d[k]}" for k in keep if k in d)
        return f"+{self.ts - t0:7.3f} AMI {self.type:22} {fields}"


Pred = Callable[[Ev], bool]

# Left out of failure dumps (still recorded and searchable): per-step chatter.
NOISE = frozenset({"VarSet", "Newexten", "ChannelVarset", "ChannelDialplan", "SuccessfulAuth",
                   "RTCPSent", "RTCPReceived", "DeviceStateChange", "ExtensionStatus",
                   "NewConnectedLine", "NewCallerid", "LocalBridge", "ChannelConnectedLine",
                   "ChannelCallerId", "Registry", "FullyBooted"})


def ami(kind: str, **fields: str) -> Pred:
    """An AMI event of `kind` whose fields equal the given values."""
    return lambda e: (e.src == "ami" and e.type == kind
                      and all(str(e.data.get(k, "")) == v for k, v in fields.items()))


def ari(kind: str, channel_id: str | None = None, **fields: Any) -> Pred:
    """An ARI event of `kind` (on channel `channel_id`) whose fields equal the values."""
    def pred(e: Ev) -> bool:
        if e.src != "ari" or e.type != kind:
            return False
        if channel_id is not None and e.channel_id != channel_id:
            return False
        return all(e.data.get(k) == v for k, v in fields.items())
    return pred


class AsteriskEvents:
    """`async with AsteriskEvents(box) as rec:` records from then on."""

    def __init__(self, box: Sandbox, app: str | None = None) -> None:
        self.box = box
        self.app = app or f"events-{uuid.uuid4().hex[:8]}"
        self.events: list[Ev] = []
        self.t0 = time.time()
        self.ari = AriClient(box.ari_url, box.ari_user, box.ari_password, self.app,
                             subscribe=ALL_CHANNELS_AND_BRIDGES)
        self.ami = AmiClient(AmiSettings(enabled=True, port=box.ami_port, user=box.ami_user,
                                         secret=box.ami_password, action_timeout=5.0),
                             events="on")
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self.ari_connects = 0  # WebSocket (re)connections so far (Asterisk restarts)
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsteriskEvents:
        self.ami.on_event(self._ami_event)
        await self.ami.start()
        try:
            await self.ami.wait_ready(20)
            self._pump = asyncio.create_task(self._run(), name=f"{self.app}-pump")
            await asyncio.wait_for(self._connected.wait(), 10)
        except BaseException:
            await self.close()
            raise
        self.t0 = time.time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ari.close()
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
            self._pump = None
        await self.ami.close()

    async def _run(self) -> None:
        async for e in self.ari.events():
            if e.get("type") == CONNECTED_EVENT:
                self.ari_connects += 1
                self._changed.set()
                self._connected.set()
                continue
            if e.get("type") == DISCONNECTED_EVENT:
                continue  # ours, not Asterisk's: no timestamp
            ts = dt.datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            self._add(ts, "ari", str(e.get("type", "")), e)

    def _ami_event(self, e: Any) -> None:
        d = dict(e)
        self._add(float(d.get("Timestamp") or time.time()), "ami", str(d.get("Event", "")), d)

    def _add(self, ts: float, src: str, kind: str, data: dict[str, Any]) -> None:
        self.events.append(Ev(len(self.events), ts, src, kind, data))
        self._changed.set()

    # -- acting ----------------------------------------------------------------------
    async def action(self, name: str, **fields: str) -> Any:
        return await self.ami.action(name, fields)

    async def rest(self, method: str, path: str, **params: Any) -> Any:
        return await self.ari.request(method, path, params=params)

    # -- reading ---------------------------------------------------------------------
    async def wait(self, pred: Pred, timeout: float = 20, since: int = 0,  # noqa: ASYNC109
                   what: str = "") -> Ev:
        """The first event from index `since` matching `pred`, recorded already or
        arriving within `timeout` s; TimeoutError with the record so far."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.events):
                if pred(self.events[i]):
                    return self.events[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what or 'matching event'} within {timeout:g}s; "
                                   f"Asterisk said:\n{self.dump()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_none(self, pred: Pred, seconds: float, since: int = 0,
                        what: str = "") -> None:
        """Asserts that no event matching `pred` comes within `seconds` (a bounded wait
        for something that must not happen; the events are what decide)."""
        try:
            found = await self.wait(pred, seconds, since)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {what or 'event'}: {found.line(self.t0)}\n"
                             f"{self.dump()}")

    async def reconnected(self, ari_after: int, ami_after: int, timeout: float) -> None:  # noqa: ASYNC109
        """Both streams connected again since the counts `ari_after`/`ami_after` (after
        an Asterisk restart): what happened from then on is recorded."""
        deadline = time.monotonic() + timeout
        while self.ari_connects <= ari_after or self.ami.connects <= ami_after:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"recorder not reconnected within {timeout:g}s "
                                   f"(ari {self.ari_connects}, ami {self.ami.connects})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    def find(self, pred: Pred, since: int = 0) -> list[Ev]:
        return [e for e in self.events[since:] if pred(e)]

    def count(self, pred: Pred) -> int:
        return len(self.find(pred))

    def dump(self, pred: Pred = lambda e: True, events: Iterable[Ev] | None = None,
             last: int = 400) -> str:
        chosen = [e for e in (self.events if events is None else events)
                  if pred(e) and e.type not in NOISE]
        return "\n".join(e.line(self.t0) for e in chosen[-last:])
