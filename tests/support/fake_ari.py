"""A fake ARI (Asterisk REST Interface) for protocol-level flow tests. NOT Asterisk.

It serves, over real HTTP and a real WebSocket on 127.0.0.1, just enough of ARI for
the Stasis runtime and the IVR flow to run unchanged, and lets a test script the
caller's side (a call entering Stasis, key presses, a hang-up, when each playback
ends) and the faults (a REST path answering 500 or dropping the connection, the
event socket closing). It records every request and every event, so a test can
assert exact sequences and provoke exact event orderings that real Asterisk
produces only now and then.

What it fakes: Basic auth (401), `GET /asterisk/info`, `GET /applications/{app}`
(404 until the app's socket is up; `channel_ids`), `POST .../subscription`, the
event WebSocket (one current socket per app; a second one gets the app and the
older one an ApplicationReplaced), channels in Stasis (answer, play, variables,
continue, hang-up, `GET /channels[/{id}]`), playbacks (`GET`/`DELETE`), and the
404/409 answers for unknown channels and channels no longer in Stasis. A continue
takes effect only once the channel's playbacks have ended, as in Asterisk (the
runtime must stop them first).

What it does NOT model (use the real-Asterisk tests in tests/e2e for these):
audio and media files (every media URI "plays"; nothing checks it exists), playback
queueing (a second play starts at once; Asterisk queues it behind the first),
DTMF timing, channel states beyond Ring/Up, the dialplan (a continue records where
the call went; nothing runs there), Stasis() failing for an unregistered app
(`new_call` raises instead), subscriptions filtering events (every event of a
call goes to its app's socket), bridges, originate, recordings, ChannelVarset and
other events the IVR ignores, Asterisk's HTTP session limit and timing (inject
them as faults), parameter validation beyond what the runtime sends, and the
exact JSON of every model (only the fields nohold reads, plus a few for realism).

The test's side: `call = await fake.new_call(app, args, caller)` (StasisStart),
`call.press()`, `call.hang_up(playbacks="first"|"after_stasis_end")`,
`call.finish_playback(state=...)`, `call.wait_playing(prompt)`; `fake.playback_policy`
(at once / after N ms / never / fail, or a function of call and media);
`fake.on(event_type, hook)`, `fake.on_request(method, path, hook)`,
`fake.hold_events()`/`release_events()`; faults: `fake.fail(method, path, status,
times=, drop=)`, `fake.drop_socket(app)`; records: `fake.requests`, `fake.events`,
`fake.sent(...)`, `fake.requested(...)`, `await fake.until(pred)`.

Deterministic by design: the fake never sleeps. Events are sent in the order the
fake emits them; a playback ends when the test says so, at once, or after a
delay the test chose (`playback_policy`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

PlaybackState = Literal["done", "failed"]
Hook = Callable[[dict[str, Any]], Awaitable[None] | None]


class FakeAriError(AssertionError):
    """The test asked the fake for something real Asterisk would not do."""


@dataclass(frozen=True)
class PlaybackPolicy:
    """When a playback ends on its own: `state` None = never (the test ends it with
    `call.finish_playback()` or a hang-up); `after` seconds after PlaybackStarted."""

    state: PlaybackState | None = "done"
    after: float = 0.0

    @staticmethod
    def at_once(state: PlaybackState = "done") -> PlaybackPolicy:
        return PlaybackPolicy(state)

    @staticmethod
    def after_ms(ms: float, state: PlaybackState = "done") -> PlaybackPolicy:
        return PlaybackPolicy(state, ms / 1000)

    @staticmethod
    def never() -> PlaybackPolicy:
        return PlaybackPolicy(None)

    @staticmethod
    def fail() -> PlaybackPolicy:
        return PlaybackPolicy("failed")


PolicyChoice = PlaybackPolicy | Callable[["FakeCall", str], PlaybackPolicy]


@dataclass
class Received:
    """One request as the fake saw it, in arrival order (path without the /ari
    prefix); `status` is filled in when it is answered (-1: connection dropped)."""

    method: str
    path: str
    params: dict[str, str]
    status: int = 0

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass
class Sent:
    """One event the fake emitted; `delivered` False when no socket took it (lost)."""

    app: str
    event: dict[str, Any]
    delivered: bool

    @property
    def type(self) -> str:
        return str(self.event.get("type"))


@dataclass
class Fault:
    method: str
    path: str  # an fnmatch pattern over the path without /ari, e.g. /channels/*/play/*
    status: int = 500
    drop: bool = False  # close the connection without answering
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.hits < self.times and self.method in (method, "*")
                and fnmatch.fnmatchcase(path, self.path))


@dataclass
class FakePlayback:
    id: str
    media: str
    call: FakeCall
    state: str = "playing"
    timer: asyncio.TimerHandle | None = None

    def model(self) -> dict[str, Any]:
        return {"id": self.id, "media_uri": self.media, "target_uri": f"channel:{self.call.id}",
                "language": "en", "state": self.state}


@dataclass
class FakeCall:
    """One caller's channel, as the test drives it."""

    fake: FakeAri
    app: str
    id: str
    linkedid: str
    caller: str
    args: list[str]
    state: str = "Ring"
    in_stasis: bool = True
    alive: bool = True
    variables: dict[str, str] = field(default_factory=dict)
    playbacks: list[FakePlayback] = field(default_factory=list)
    continued_to: tuple[str, str, int] | None = None
    _pending_continue: tuple[str, str, int] | None = None

    # -- what the caller does --------------------------------------------------------
    async def press(self, digits: str) -> None:
        self._need_alive("press keys")
        for digit in digits:
            self.fake.emit(self.app, {"type": "ChannelDtmfReceived", "digit": digit,
                                      "duration_ms": 100, "channel": self.model()})

    async def hang_up(
        self,
        playbacks: Literal["first", "after_stasis_end"] = "first",
        playback_state: PlaybackState = "failed",
    ) -> None:
        """The caller hangs up. Playbacks still running end with `playback_state`,
        before the hang-up events or (a race Asterisk has) after StasisEnd."""
        self._need_alive("hang up")
        self.fake.hang_up(self, playbacks=playbacks, playback_state=playback_state)

    async def finish_playback(self, playback_id: str | None = None,
                              state: PlaybackState = "done") -> FakePlayback:
        """End one playback (default: the latest still playing) with `state`."""
        pb = self.playback(playback_id) if playback_id else self.current_playback()
        if pb is None or pb.state != "playing":
            raise FakeAriError(f"{self.id}: no playback {playback_id or ''} is playing")
        self.fake.end_playback(pb, state)
        return pb

    # -- what the test looks at ------------------------------------------------------
    @property
    def media(self) -> list[str]:
        """Every media URI played to this call, in order."""
        return [pb.media for pb in self.playbacks]

    @property
    def prompts(self) -> list[str]:
        """The same as bare prompt names: sound:/x/y/main_menu -> main_menu."""
        return [m.rsplit("/", 1)[-1] for m in self.media]

    def playback(self, playback_id: str) -> FakePlayback:
        for pb in self.playbacks:
            if pb.id == playback_id:
                return pb
        raise FakeAriError(f"{self.id}: no playback {playback_id}")

    def current_playback(self) -> FakePlayback | None:
        playing = [pb for pb in self.playbacks if pb.state == "playing"]
        return playing[-1] if playing else None

    async def wait_playing(self, prompt: str, timeout: float = 2.0) -> FakePlayback:  # noqa: ASYNC109
        """Until a playback whose media ends with /`prompt` is playing."""

        def found() -> FakePlayback | None:
            return next((pb for pb in self.playbacks
                         if pb.state == "playing" and pb.media.endswith("/" + prompt)), None)

        await self.fake.until(lambda: found() is not None, timeout,
                              f"{prompt} playing on {self.id}")
        pb = found()
        assert pb is not None
        return pb

    async def wait_left(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Until the channel has left Stasis (continued, or hung up)."""
        await self.fake.until(lambda: not self.in_stasis, timeout, f"{self.id} leaving Stasis")

    def model(self) -> dict[str, Any]:
        # No linkedid: Asterisk's channel model lacks it (GET variable CHANNEL(linkedid)).
        return {
            "id": self.id, "name": f"PJSIP/fake-{self.id}", "state": self.state,
            "protocol_id": "", "language": "en", "accountcode": "",
            "caller": {"name": "", "number": self.caller},
            "connected": {"name": "", "number": ""},
            "dialplan": {"context": "nohold-inbound", "exten": "s", "priority": 1,
                         "app_name": "Stasis", "app_data": ",".join([self.app, *self.args])},
            "creationtime": "2026-01-01T00:00:00.000+0000",
        }

    def _need_alive(self, what: str) -> None:
        if not self.alive:
            raise FakeAriError(f"{self.id} has hung up; it cannot {what}")


class _Socket:
    """One event WebSocket; a writer task keeps the emit order on the wire."""

    def __init__(self, app: str, ws: web.WebSocketResponse) -> None:
        self.app = app
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while (event := await self.queue.get()) is not None:
            try:
                await self.ws.send_str(json.dumps(event))
            except ConnectionError:
                return


class FakeAri:
    """`async with FakeAri() as fake:` then point an AriClient at `fake.url`."""

    def __init__(self, user: str = "nohold", password: str = "fake-secret") -> None:
        self.user = user
        self.password = password
        self.requests: list[Received] = []
        self.events: list[Sent] = []
        self.faults: list[Fault] = []
        self.calls: dict[str, FakeCall] = {}
        self.connections: dict[str, int] = {}  # app -> sockets opened so far
        self.subscriptions: dict[str, list[str]] = {}
        self.playback_policy: PolicyChoice = PlaybackPolicy.at_once()
        self._sockets: dict[str, _Socket] = {}
        self._all_sockets: list[_Socket] = []
        self._hooks: dict[str, list[Hook]] = {}
        self._request_hooks: list[tuple[str, str, Callable[[Received], Any]]] = []
        self._held: dict[str, list[dict[str, Any]]] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> FakeAri:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/ari/events", self._events)
        r.add_get("/ari/asterisk/info", self._info)
        r.add_get("/ari/applications/{app}", self._application)
        r.add_post("/ari/applications/{app}/subscription", self._subscribe)
        r.add_get("/ari/channels", self._channels)
        r.add_get("/ari/channels/{id}", self._channel)
        r.add_delete("/ari/channels/{id}", self._hangup)
        r.add_post("/ari/channels/{id}/answer", self._answer)
        r.add_post("/ari/channels/{id}/play", self._play)
        r.add_post("/ari/channels/{id}/play/{pid}", self._play)
        r.add_get("/ari/channels/{id}/variable", self._get_var)
        r.add_post("/ari/channels/{id}/variable", self._set_var)
        r.add_post("/ari/channels/{id}/continue", self._continue)
        r.add_get("/ari/playbacks/{pid}", self._get_playback)
        r.add_delete("/ari/playbacks/{pid}", self._stop_playback)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        for task in self._hook_tasks:
            task.cancel()
        for sock in self._all_sockets:
            sock.queue.put_nowait(None)
            sock.writer.cancel()
            await sock.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeAri:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting calls -------------------------------------------------------------
    async def new_call(self, app: str, args: list[str] | None = None, caller: str = "100",
                       *, linkedid: str | None = None, deliver: bool = True) -> FakeCall:
        """A channel enters Stasis(app, args...) and StasisStart is sent. `deliver`
        False: the StasisStart is lost on the way (the socket was dropping), so the
        channel is in the app's channel_ids but the app never heard of it."""
        if app not in self._sockets:
            raise FakeAriError(f"Stasis({app}) would fail in Asterisk: the app has no socket")
        n = next(self._ids)
        channel_id = f"1767225600.{n}"
        call = FakeCall(self, app, channel_id, linkedid or channel_id, caller,
                        list(args if args is not None else []))
        self.calls[channel_id] = call
        self.emit(app, {"type": "StasisStart", "args": call.args, "channel": call.model()},
                  deliver=deliver)
        return call

    def hang_up(self, call: FakeCall, *, playbacks: str = "first",
                playback_state: PlaybackState = "failed") -> None:
        running = [pb for pb in call.playbacks if pb.state == "playing"]
        call.alive = False
        if playbacks == "first":
            for pb in running:
                self.end_playback(pb, playback_state)
        self.emit(call.app, {"type": "ChannelHangupRequest", "cause": 16,
                             "channel": call.model()})
        if call.in_stasis:
            call.in_stasis = False
            self.emit(call.app, {"type": "StasisEnd", "channel": call.model()})
        for pb in running:
            if pb.state == "playing":
                self.end_playback(pb, playback_state)
        self.emit(call.app, {"type": "ChannelDestroyed", "cause": 16, "cause_txt":
                             "Normal Clearing", "channel": call.model()})

    def end_playback(self, pb: FakePlayback, state: str) -> None:
        if pb.state != "playing":
            return
        if pb.timer is not None:
            pb.timer.cancel()
        pb.state = state
        self.emit(pb.call.app, {"type": "PlaybackFinished", "playback": pb.model()})
        call = pb.call
        if call._pending_continue and not any(p.state == "playing" for p in call.playbacks):
            self._leave_stasis(call, call._pending_continue)

    # -- hooks and faults ------------------------------------------------------------
    def on(self, event_type: str, hook: Hook) -> None:
        """Call `hook(event)` right after each event of that type is emitted (an event
        the hook emits comes after it). An async hook runs as a task."""
        self._hooks.setdefault(event_type, []).append(hook)

    def on_request(self, method: str, path: str, hook: Callable[[Received], Any]) -> None:
        """Run `hook(request)` (awaited if async) before the fake answers each matching
        request: to make something happen between a request and its answer."""
        self._request_hooks.append((method, path, hook))

    def hold_events(self, app: str) -> None:
        """Events for `app` wait (in order) until release_events(): an event still in
        Asterisk's queue or on the wire while the app's REST requests are answered."""
        self._held.setdefault(app, [])

    def release_events(self, app: str) -> None:
        sock = self._sockets.get(app)
        for event in self._held.pop(app, []):
            if sock is not None:
                sock.queue.put_nowait(event)

    def fail(self, method: str, path: str, status: int = 500, *, times: int = 1,
             drop: bool = False) -> Fault:
        """The next `times` requests matching `method` ("*": any) and the fnmatch
        `path` (no /ari prefix) answer `status`, or lose their connection (`drop`).
        Mind that aiohttp's client resends an idempotent request (GET, DELETE) once when
        a kept-alive connection drops: such a drop needs times=2 to reach the app."""
        fault = Fault(method, path, status, drop, times)
        self.faults.append(fault)
        return fault

    async def drop_socket(self, app: str) -> None:
        """Close the app's event socket cleanly, as a restarting Asterisk would; events
        emitted until the client reconnects are lost (Asterisk does not replay them)."""
        sock = self._sockets.pop(app, None)
        if sock is None:
            raise FakeAriError(f"{app} has no socket to drop")
        sock.queue.put_nowait(None)
        await sock.writer
        await sock.ws.close()
        self._touch()

    def connected(self, app: str) -> bool:
        return app in self._sockets

    # -- waiting and asserting -------------------------------------------------------
    async def until(self, pred: Callable[[], bool], timeout: float = 2.0,  # noqa: ASYNC109
                    what: str = "condition") -> None:
        """Until `pred()` holds: re-checked whenever the fake sees or sends anything, and
        every few ms for predicates over the client's side (what the app received)."""
        async def wait() -> None:
            while not pred():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.005)
        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"fake ARI: no {what} within {timeout}s; requests:\n  "
                                 + "\n  ".join(map(str, self.requests))) from None

    async def wait_request(self, method: str, path: str, count: int = 1,
                           timeout: float = 2.0) -> Received:  # noqa: ASYNC109
        """Until `count` requests matching method and fnmatch `path` have arrived."""
        await self.until(lambda: len(self.requested(method, path)) >= count, timeout,
                         f"{count} x {method} {path}")
        return self.requested(method, path)[count - 1]

    def requested(self, method: str, path: str) -> list[Received]:
        return [r for r in self.requests
                if r.method == method and fnmatch.fnmatchcase(r.path, path)]

    def sent(self, *types: str, channel: str | None = None) -> list[str]:
        """Types of the events emitted (only of `types`, only for `channel`), in order."""
        out = []
        for s in self.events:
            if types and s.type not in types:
                continue
            if channel is not None and _channel_of(s.event) != channel:
                continue
            out.append(s.type)
        return out

    # -- events ----------------------------------------------------------------------
    def emit(self, app: str, event: dict[str, Any], *, deliver: bool = True) -> None:
        event = {**event, "application": app, "asterisk_id": "fa:ke:00:00:00:01",
                 "timestamp": "2026-01-01T00:00:00.000+0000"}
        sock = self._sockets.get(app) if deliver else None
        if sock is not None and app in self._held:
            self._held[app].append(event)
        elif sock is not None:
            sock.queue.put_nowait(event)
        self.events.append(Sent(app, event, sock is not None))
        self._touch()
        for hook in self._hooks.get(str(event["type"]), []):
            result = hook(event)
            if result is not None:
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- HTTP ------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        seen = Received(request.method, request.path.removeprefix("/ari"), dict(request.query))
        self.requests.append(seen)
        self._touch()
        try:
            if not self._authorized(request):
                seen.status = 401
                return _error(401, "Authentication required")
            for fault in self.faults:
                if fault.matches(request.method, seen.path):
                    fault.hits += 1
                    if fault.drop:
                        seen.status = -1
                        assert request.transport is not None
                        request.transport.close()
                        return web.Response(status=500)
                    seen.status = fault.status
                    return _error(fault.status, "Injected fault")
            for method, pattern, hook in self._request_hooks:
                if method in (request.method, "*") and fnmatch.fnmatchcase(seen.path, pattern):
                    result = hook(seen)
                    if result is not None:
                        await result
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                seen.status = exc.status
                raise
            seen.status = response.status
            return response
        finally:
            self._touch()

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") == f"Basic {expected}":
            return True
        return request.query.get("api_key") == f"{self.user}:{self.password}"

    async def _events(self, request: web.Request) -> web.StreamResponse:
        app = request.query.get("app", "")
        if not app:
            return _error(400, "app parameter is required")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        older = self._sockets.get(app)
        sock = _Socket(app, ws)
        self._all_sockets.append(sock)
        self._sockets[app] = sock
        self.connections[app] = self.connections.get(app, 0) + 1
        if older is not None:
            # Only the older socket hears it; the app (and its channels) move over.
            event = {"type": "ApplicationReplaced", "application": app,
                     "timestamp": "2026-01-01T00:00:00.000+0000"}
            older.queue.put_nowait(event)
            self.events.append(Sent(app, event, True))
        self._touch()
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        if self._sockets.get(app) is sock:
            del self._sockets[app]
            self._touch()
        sock.queue.put_nowait(None)
        return ws

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({
            "system": {"version": "22.0.0-fake", "entity_id": "fa:ke:00:00:00:01"},
            "build": {"os": "Linux"}, "status": {}, "config": {"name": "fake-ari"},
        })

    def _app_model(self, app: str) -> dict[str, Any]:
        return {"name": app, "channel_ids": [c.id for c in self.calls.values()
                                             if c.app == app and c.in_stasis],
                "bridge_ids": [], "endpoint_ids": [], "device_names": [],
                "events_allowed": [], "events_disallowed": []}

    async def _application(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        if app not in self._sockets:
            return _error(404, "Application not found")
        return web.json_response(self._app_model(app))

    async def _subscribe(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        if app not in self._sockets:
            return _error(404, "Application not found")
        sources = request.query.get("eventSource", "")
        if not sources:
            return _error(400, "eventSource is required")
        self.subscriptions.setdefault(app, []).extend(sources.split(","))
        return web.json_response(self._app_model(app))

    def _call(self, request: web.Request, *, in_stasis: bool = True) -> FakeCall:
        call = self.calls.get(request.match_info["id"])
        if call is None or not call.alive:
            raise _http(404, "Channel not found")
        if in_stasis and not call.in_stasis:
            raise _http(409, "Channel not in Stasis application")
        return call

    async def _channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.model() for c in self.calls.values() if c.alive])

    async def _channel(self, request: web.Request) -> web.Response:
        return web.json_response(self._call(request, in_stasis=False).model())

    async def _hangup(self, request: web.Request) -> web.Response:
        self.hang_up(self._call(request, in_stasis=False))
        return web.Response(status=204)

    async def _answer(self, request: web.Request) -> web.Response:
        call = self._call(request)
        if call.state != "Up":
            call.state = "Up"
            self.emit(call.app, {"type": "ChannelStateChange", "channel": call.model()})
        return web.Response(status=204)

    async def _play(self, request: web.Request) -> web.Response:
        call = self._call(request)
        media = request.query.get("media", "")
        if not media:
            return _error(400, "media is required")
        pid = request.match_info.get("pid") or f"fake-playback-{next(self._ids)}"
        if any(pb.id == pid for c in self.calls.values() for pb in c.playbacks):
            return _error(409, f"Playback {pid} already exists")
        pb = FakePlayback(pid, media, call)
        call.playbacks.append(pb)
        self.emit(call.app, {"type": "PlaybackStarted", "playback": pb.model()})
        choice = self.playback_policy
        policy = choice if isinstance(choice, PlaybackPolicy) else choice(call, media)
        if policy.state is not None:
            state = policy.state
            if policy.after <= 0:
                self.end_playback(pb, state)
            else:
                pb.timer = asyncio.get_running_loop().call_later(
                    policy.after, self.end_playback, pb, state)
        return web.json_response({**pb.model(), "state": "playing"}, status=201)

    async def _get_playback(self, request: web.Request) -> web.Response:
        pb = self._playing(request.match_info["pid"])
        return web.json_response(pb.model())

    async def _stop_playback(self, request: web.Request) -> web.Response:
        pb = self._playing(request.match_info["pid"])
        self.end_playback(pb, "done")  # Asterisk reports a stopped playback as done
        return web.Response(status=204)

    def _playing(self, pid: str) -> FakePlayback:
        for call in self.calls.values():
            for pb in call.playbacks:
                if pb.id == pid and pb.state == "playing":
                    return pb
        raise _http(404, "Playback not found")

    async def _get_var(self, request: web.Request) -> web.Response:
        call = self._call(request, in_stasis=False)
        name = request.query.get("variable", "")
        if name == "CHANNEL(linkedid)":
            return web.json_response({"value": call.linkedid})
        if name not in call.variables:
            return _error(404, "Provided variable was not found")
        return web.json_response({"value": call.variables[name]})

    async def _set_var(self, request: web.Request) -> web.Response:
        call = self._call(request, in_stasis=False)
        name = request.query.get("variable", "")
        if not name:
            return _error(400, "Variable name is required")
        call.variables[name] = request.query.get("value", "")
        return web.Response(status=204)

    async def _continue(self, request: web.Request) -> web.Response:
        call = self._call(request)
        q = request.query
        where = (q.get("context", ""), q.get("extension", ""), int(q.get("priority", "1")))
        if any(pb.state == "playing" for pb in call.playbacks):
            # Asterisk queues the continue behind the running playback.
            call._pending_continue = where
        else:
            self._leave_stasis(call, where)
        return web.Response(status=204)

    def _leave_stasis(self, call: FakeCall, where: tuple[str, str, int]) -> None:
        call._pending_continue = None
        call.continued_to = where
        call.in_stasis = False
        self.emit(call.app, {"type": "StasisEnd", "channel": call.model()})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _http(status: int, message: str) -> web.HTTPException:
    cls = {404: web.HTTPNotFound, 409: web.HTTPConflict}[status]
    return cls(text=json.dumps({"message": message}), content_type="application/json")


def _channel_of(event: dict[str, Any]) -> str | None:
    if isinstance(event.get("channel"), dict):
        return str(event["channel"].get("id"))
    target = (event.get("playback") or {}).get("target_uri", "")
    return target.removeprefix("channel:") if target.startswith("channel:") else None
