"""A thin asyncio ARI client over aiohttp (why not a library: docs/decisions/0001-ari-client.md).

Two things only: REST requests that raise typed errors, and an event stream that
reconnects by itself. A WebSocket that closes cleanly is treated as a drop, not as
the end, so the application never silently stops receiving events.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

CONNECTED_EVENT = "NoholdConnected"
# Yielded when a connection that had connected ends: until the next CONNECTED the app
# is not registered with Asterisk, and a channel made into it dies unheard.
DISCONNECTED_EVENT = "NoholdDisconnected"
"""Synthetic event yielded each time the socket is (re)established: the app
reconciles what it owns then, since Asterisk does not replay missed events."""


LIVENESS_SUFFIX = ".alive"


def liveness_app(app: str) -> str:
    """The companion app a nohold process registers on the same WebSocket as `app`.

    Asterisk keeps an app whose socket is gone in `GET /applications` for as long
    as it owns channels, with nothing in the answer to say it is inactive: a live
    and a dead `app` with callers look the same. The companion never owns
    anything, so Asterisk drops it the moment the socket goes: it is registered
    exactly while `app`'s socket is up, and a 404 for it means "nobody serves `app`".
    """
    return app + LIVENESS_SUFFIX


class AriError(Exception):
    """ARI could not be reached or answered unexpectedly."""


class AriHttpError(AriError):
    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"ARI {method} {path} -> {status}: {message}")
        self.status = status
        self.message = message


class AriNotFound(AriHttpError):
    """404: the channel (or variable, or playback) is gone. On hang-up this is success."""


class AriConflict(AriHttpError):
    """409: the channel is not in a state for that request (e.g. not in Stasis)."""


class AriUnprocessable(AriHttpError):
    """422: the request named something that does not exist (e.g. an endpoint)."""


_BY_STATUS: dict[int, type[AriHttpError]] = {
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
}


class AriClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        subscribe: tuple[str, ...] = (),
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 10.0,
        backoff_max: float = 10.0,
        also_register: tuple[str, ...] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        # Event sources subscribed on every (re)connect, e.g. ("channel:", "bridge:")
        # for every channel and bridge. Never subscribeAll: it also subscribes to
        # all device states, and a socket that closes while a device state is being
        # delivered deadlocks Asterisk 22's whole ARI (asterisk/asterisk#2170:
        # unsubscribe_device_state() joins the subscription under the session lock
        # the delivery waits for). Asterisk unsubscribes these "all" sources by
        # itself when the socket closes, and no device-state path is ever taken.
        self.subscribe = subscribe
        # More apps on the same socket (e.g. liveness_app(app)): they live and die with it.
        self.also_register = also_register
        # Credentials go in a header, never in the URL, so they stay out of logs.
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._own_session = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._backoff_max = backoff_max
        self._closed = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        # The subscription request of the socket being set up, while it is unanswered.
        self._subscribing: asyncio.Future[Any] | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        # A subscription Asterisk reads after the socket's close is made on an app it
        # has already unregistered: the app then stays listed, holding the "all"
        # subscriptions, for good (stasis_app_subscribe() finds the app until cleanup()
        # unlinks it, and nothing unlinks it later). So it is answered first.
        await _settle(self._subscribing)
        if self._ws is not None:
            await self._ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        url = f"{self.base_url}/ari{path}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self.session.request(
                method, url, params=clean, json=json, headers=self._headers, timeout=self._timeout
            ) as resp:
                body = await resp.text()
                if resp.status >= 400:
                    raise _BY_STATUS.get(resp.status, AriHttpError)(
                        resp.status, _error_message(body), method, path
                    )
                if not body:
                    return None
                return jsonlib.loads(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path} failed: {exc!r}") from exc

    async def check(self) -> dict[str, Any]:
        """One request that proves URL, credentials and ARI module are all right."""
        info: dict[str, Any] = await self.request("GET", "/asterisk/info")
        return info

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield events forever, reconnecting with jittered backoff until close()."""
        attempt = 0
        while not self._closed:
            connected = False
            try:
                async for event in self._one_connection():
                    attempt = 0
                    connected = connected or event.get("type") == CONNECTED_EVENT
                    yield event
                if not self._closed:
                    log.warning("ari_events_closed app=%s (clean close counts as a drop)", self.app)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("ari_events_failed app=%s error=%r", self.app, exc)
            if self._closed:
                return
            if connected:
                yield {"type": DISCONNECTED_EVENT, "application": self.app}
            attempt += 1
            delay = min(self._backoff_max, 0.2 * 2 ** min(attempt, 10))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _one_connection(self) -> AsyncIterator[dict[str, Any]]:
        ws_url = self.base_url.replace("http", "ws", 1) + "/ari/events"
        async with self.session.ws_connect(
            ws_url, params={"app": ",".join((self.app, *self.also_register))},
            headers=self._headers, heartbeat=20,
        ) as ws:
            self._ws = ws
            if self.subscribe:
                # Before CONNECTED: whoever waits for it may act at once and must
                # see the events. A failure ends this connection (retried), never
                # a silently deaf app.
                # The request runs on its own so that neither close() nor a cancel of
                # this generator closes the socket before Asterisk has answered it.
                self._subscribing = asyncio.ensure_future(self.request(
                    "POST", f"/applications/{self.app}/subscription",
                    params={"eventSource": ",".join(self.subscribe)}))
                try:
                    await asyncio.shield(self._subscribing)
                except AriError as exc:
                    raise aiohttp.ClientError(f"subscribing {self.subscribe}: {exc}") from exc
                except asyncio.CancelledError:
                    await _settle(self._subscribing)
                    raise
                finally:
                    self._subscribing = None
            if self._closed:
                return
            log.info("ari_events_connected app=%s url=%s", self.app, ws_url)
            yield {"type": CONNECTED_EVENT, "application": self.app}
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = jsonlib.loads(msg.data)
                    except ValueError:
                        log.error("ari_event_not_json app=%s data=%.200r", self.app, msg.data)
                        continue
                    if isinstance(event, dict):
                        yield event
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
            self._ws = None


async def wait_for_application(
    client: AriClient,
    app: str,
    *,
    timeout: float = 30.0,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Until Asterisk knows `app` (its WebSocket is up): asked, not slept for.
    Raises TimeoutError, or RuntimeError as soon as `alive()` says its process died."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if not alive():
            raise RuntimeError(f"the process serving ARI app {app!r} exited")
        try:
            await client.request("GET", f"/applications/{app}")
            return
        except AriNotFound:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"ARI app {app!r} not registered within {timeout:g}s")


async def _settle(fut: asyncio.Future[Any] | None) -> None:
    """Until `fut` is done, whatever its outcome (bounded by the request timeout)."""
    if fut is not None and not fut.done():
        await asyncio.wait({fut})
    if fut is not None and fut.done() and not fut.cancelled():
        fut.exception()  # retrieved: an outcome nobody awaits is not an error here


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_message(body: str) -> str:
    try:
        data = jsonlib.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return body.strip()[:200]
