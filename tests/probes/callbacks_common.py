"""Shared bits of the callback probes (tests/probes/callbacks_*.py): a sandbox with
extra config, and one recorder of every ARI event (channels and bridges) and every
AMI event, each stamped with Asterisk's own time, to read event order and delays.

Not collected by pytest; run a probe as
    PYTHONPATH=$PWD .venv/bin/python tests/probes/callbacks_offer.py
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nohold.ami.client import AmiClient
from nohold.ami.settings import AmiSettings
from nohold.ari_apps.ari_client import CONNECTED_EVENT, DISCONNECTED_EVENT, AriClient
from nohold.sandbox import Sandbox, start_sandbox

APP = "cbprobe"
# AMI events carry "Timestamp: <epoch.usec>" with this, so AMI and ARI share one clock.
AMI_TIMESTAMPS = "[general](+)\ntimestampevents = yes\n"


def sandbox(name: str, *, queues: str = "", dialplan: str = "") -> Sandbox:
    return start_sandbox(
        name,
        extra_dialplan=dialplan,
        extra_config={"queues.conf": queues, "manager.conf": AMI_TIMESTAMPS},
    )


@dataclass
class Ev:
    ts: float  # Asterisk's epoch seconds (ARI "timestamp", AMI "Timestamp")
    src: str  # "ari" | "ami"
    type: str
    data: dict[str, Any] = field(repr=False)

    def chan(self) -> str:
        if self.src == "ari":
            return str((self.data.get("channel") or {}).get("name", ""))
        return str(self.data.get("Channel", ""))

    def line(self, t0: float) -> str:
        d = self.data
        if self.src == "ari":
            extra = {k: v for k, v in d.items() if k in (
                "dialstatus", "cause", "digit", "args", "eventname", "userevent")}
            ch = d.get("channel") or d.get("peer") or {}
            state = ch.get("state", "")
            br = (d.get("bridge") or {}).get("id", "")
            pb = (d.get("playback") or {}).get("media_uri", "")
            return (f"+{self.ts - t0:7.3f} ARI {self.type:22} {ch.get('name', '')} {state} "
                    f"{br} {pb} {extra or ''}").rstrip()
        keep = ("Channel", "Queue", "Position", "Count", "Uniqueid", "Class", "Interface",
                "MemberName", "HoldTime", "DestChannel", "DialStatus", "UserEvent",
                "ChannelStateDesc", "BridgeUniqueid", "Exten", "Application", "AppData")
        fields = " ".join(f"{k}={d[k]}" for k in keep if k in d)
        return f"+{self.ts - t0:7.3f} AMI {self.type:22} {fields}"


class Recorder:
    """Every ARI event of app APP (subscribed to all channels and bridges) and every AMI event."""

    def __init__(self, box: Sandbox, app: str = APP) -> None:
        self.box = box
        self.app = app
        self.events: list[Ev] = []
        self.t0 = time.time()
        self.ari = AriClient(box.ari_url, box.ari_user, box.ari_password, app,
                             subscribe=("channel:", "bridge:"))
        self.ami = AmiClient(AmiSettings(enabled=True, port=box.ami_port, user=box.ami_user,
                                         secret=box.ami_password), events="on")
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self.on_ari: Callable[[dict[str, Any]], None] | None = None

    async def __aenter__(self) -> Recorder:
        self.ami.on_event(self._ami_event)
        await self.ami.start()
        await self.ami.wait_ready(20)
        self._pump = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), 10)
        self.t0 = time.time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ari.close()
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        await self.ami.close()

    async def _run(self) -> None:
        async for e in self.ari.events():
            if e.get("type") == CONNECTED_EVENT:
                self._connected.set()
                continue
            if e.get("type") == DISCONNECTED_EVENT:
                continue  # ours, not Asterisk's: no timestamp
            ts = dt.datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            self._add(Ev(ts, "ari", e.get("type", ""), e))
            if self.on_ari:
                self.on_ari(e)

    def _ami_event(self, e: Any) -> None:
        d = dict(e)
        ts = float(d.get("Timestamp") or time.time())
        self._add(Ev(ts, "ami", str(d.get("Event", "")), d))

    def _add(self, ev: Ev) -> None:
        self.events.append(ev)
        self._changed.set()

    async def req(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        return await self.ari.request(method, path, params=params, json=json)

    async def wait(self, pred: Callable[[Ev], bool], timeout: float = 20, since: int = 0) -> Ev:
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.events):
                if pred(self.events[i]):
                    return self.events[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching event\n" + self.dump())
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def find(self, pred: Callable[[Ev], bool]) -> list[Ev]:
        return [e for e in self.events if pred(e)]

    def dump(self, pred: Callable[[Ev], bool] = lambda e: True) -> str:
        return "\n".join(e.line(self.t0) for e in sorted(self.events, key=lambda e: e.ts)
                         if pred(e))


def ami(kind: str, **fields: str) -> Callable[[Ev], bool]:
    return lambda e: (e.src == "ami" and e.type == kind
                      and all(str(e.data.get(k, "")).startswith(v) for k, v in fields.items()))


def ari(kind: str, channel_id: str | None = None, **fields: Any) -> Callable[[Ev], bool]:
    def pred(e: Ev) -> bool:
        if e.src != "ari" or e.type != kind:
            return False
        # Dial events name the dialled channel "peer", not "channel".
        ch = e.data.get("channel") or e.data.get("peer") or {}
        if channel_id and ch.get("id") != channel_id:
            return False
        return all(e.data.get(k) == v for k, v in fields.items())
    return pred


# Sound events in the queue (app_queue's own playbacks make no ARI/AMI event): the
# verbose log's "Playing 'file'" lines, with Asterisk's timestamps.
def log_lines(box: Sandbox, needle: str) -> list[str]:
    try:
        text = box.messages_log.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if needle in ln]
