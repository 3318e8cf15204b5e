"""The HTTP API server inside `nohold run`: one aiohttp server for every feature's routes.

Features contribute routes (`Contribution.http_routes`); this adapter owns what every
route needs and is easy to get wrong once per feature:

- **auth**: every request carries `Authorization: Bearer <[http] token>`, compared in
  constant time; anything else is 401 before any handler runs (an unknown path does
  not tell an outsider which paths exist). The one exception is a handler wrapped in
  `own_auth`: a webhook whose caller cannot hold the agents' token authenticates each
  request itself (the partner's tickets: an HMAC signature over the body), and must
  refuse with 401 what it cannot verify. Only a matched method and path skips the
  token, so an unknown path or method is still 401.
- **bounded bodies**: at most MAX_BODY bytes (413), read whole before a handler sees
  them.
- **JSON everywhere**: every answer, errors included, is `{"error": <code>, "message":
  <text>, ...}`; never an HTML page or a traceback. An unexpected exception is a 500
  and one log line with the exception.
- **one access line per request** (method, path, status, ms, peer); never the token,
  never the query string or body (numbers are personal data).

Plain HTTP: loopback by default, and a reverse proxy with TLS in front when it must be
reached from elsewhere (`nohold check` warns about any other host).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from nohold.config import HttpSettings
from nohold.decisions.peers import is_loopback

log = logging.getLogger("nohold.http")

MAX_BODY = 16 * 1024
# How long a request still in progress may finish when the service stops.
SHUTDOWN_SECONDS = 3.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own refusals (no route, wrong method, body too large), as error codes.
_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
          413: "too_large", 415: "unsupported_media_type"}


class HttpError(Exception):
    """An answer other than success, raised by a handler: `error` is a stable code for
    programs, `message` a sentence for people, `extra` more fields of the body."""

    def __init__(self, status: int, error: str, message: str,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers, self.extra = headers, extra

    def response(self) -> web.Response:
        return error_response(self.status, self.error, self.message, self.headers,
                              **self.extra)


def own_auth(handler: Handler) -> Handler:
    """`handler` authenticates its requests itself (e.g. a signature over the body): the
    server lets them through without the bearer token. Everything else the server does
    (body limit, JSON errors, access line) still applies."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    setattr(wrapped, _OWN_AUTH, True)
    wrapped.__doc__ = handler.__doc__
    return wrapped


_OWN_AUTH = "_nohold_own_auth"


def json_response(data: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json",
                        headers=headers)


def error_response(status: int, error: str, message: str,
                   headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status, headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; HttpError 400 (not JSON, not an object) or 413."""
    body = await request.read()  # raises 413 beyond the app's client_max_size
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "bad_json", "the body must be a JSON object")
    return data


def exposure_warnings(http: HttpSettings) -> list[str]:
    """What `nohold check` and `nohold run` say about an API listening beyond loopback."""
    if not http.enabled or is_loopback(http.host):
        return []
    return [
        f"[http] host = {http.host!r}: the HTTP API (callbacks booked, listed and cancelled "
        f"with the token) listens beyond this machine on port {http.port}, in plain HTTP: "
        "anyone on the path can read the token and the customers' numbers. Keep host = "
        "\"127.0.0.1\" and put a reverse proxy with TLS in front, or at least firewall the "
        "port to the agents' desktops"
    ]



class HttpServer:
    """The routes behind the token; `start` listens, `close` stops listening, lets
    requests in progress finish (SHUTDOWN_SECONDS at most) and closes every connection."""

    def __init__(self, routes: Sequence[web.RouteDef], token: str, *,
                 max_body: int = MAX_BODY) -> None:
        if len(token) < 24:  # the config refuses shorter ones; this is the last fence
            raise ValueError("the HTTP API needs a token of at least 24 characters")
        seen: set[tuple[str, str]] = set()
        for route in routes:
            if (route.method, route.path) in seen:  # two features on one path: a bug
                raise ValueError(f"two HTTP routes for {route.method} {route.path}")
            seen.add((route.method, route.path))
        self._token = token.encode()
        self.max_body = max_body
        self.app = web.Application(middlewares=[self._middleware], client_max_size=max_body)
        self.app.add_routes(routes)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Listening when this returns; OSError (e.g. the port is taken) leaves nothing
        open behind."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1] if runner.addresses else port
        log.info("http_listening host=%s port=%d", host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        # A matched route whose handler checks its own requests (own_auth); an unknown
        # path or method matches aiohttp's error handler, never marked.
        if getattr(request.match_info.handler, _OWN_AUTH, False):
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time: the comparison does not tell how much of a guess was right.
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                   self._token)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await self._answer(request, handler)
            status = response.status
            return response
        finally:
            log.info("http_request method=%s path=%s status=%d ms=%.1f peer=%s",
                     request.method, request.path, status,
                     (time.monotonic() - started) * 1000, request.remote or "-")

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not self._authorized(request):
                raise HttpError(401, "unauthorized",
                                "send the [http] token as Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": 'Bearer realm="nohold"'})
            if request.content_length is not None and request.content_length > self.max_body:
                raise HttpError(413, "too_large",
                                f"the body is over {self.max_body} bytes")
            return await handler(request)
        except HttpError as exc:
            return exc.response()
        except web.HTTPException as exc:  # aiohttp's own: no route, wrong method, 413
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(exc.status, _CODES.get(exc.status, f"http_{exc.status}"),
                                  exc.reason, headers)
        except Exception:  # noqa: BLE001 - the caller gets JSON, the log the traceback
            log.exception("http_failed method=%s path=%s", request.method, request.path)
            return error_response(500, "internal",
                                  "nohold could not handle this request; see its log")
