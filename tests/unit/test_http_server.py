"""The HTTP API server (nohold/http_server.py) over real sockets: the token, JSON errors
everywhere, the body limit, one access line per request without the token, and a
clean stop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from nohold.http_server import (
    HttpError,
    HttpServer,
    json_response,
    own_auth,
    read_json_object,
)
from tests.support.leaks import server_sessions, wait_until

TOKEN = "test-token-0123456789-abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def echo(request: web.Request) -> web.Response:
    return json_response({"got": await read_json_object(request)})


async def teapot(request: web.Request) -> web.Response:
    raise HttpError(418, "teapot", "short and stout", field="spout")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("the handler's own bug")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.3)
    return json_response({"slow": True})


async def signed(request: web.Request) -> web.Response:
    """A webhook that checks its own requests (a stand-in for a signature)."""
    if request.headers.get("X-Proof") != "yes":
        raise HttpError(401, "bad_signature", "no proof")
    return json_response({"got": await read_json_object(request)})


ROUTES = [web.post("/v1/echo", echo), web.get("/v1/teapot", teapot),
          web.get("/v1/broken", broken), web.get("/v1/slow", slow),
          web.post("/v1/hook", own_auth(signed))]


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer(ROUTES, TOKEN, max_body=1024)
    await srv.start("127.0.0.1", 0)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(server: HttpServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def call(http: aiohttp.ClientSession, method: str, address: str,
               **kwargs: object) -> tuple[int, dict[str, object], dict[str, str]]:
    async with http.request(method, address, **kwargs) as resp:  # type: ignore[arg-type]
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json(), dict(resp.headers)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token-0123456789-abcdefghij"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
])
async def test_missing_or_wrong_token_is_401_json_for_every_path(server, http, headers):
    for method, path in (("POST", "/v1/echo"), ("GET", "/v1/teapot"), ("GET", "/nowhere")):
        status, body, resp_headers = await call(http, method, url(server, path),
                                                headers=headers, json={"a": 1})
        assert status == 401, (path, body)
        assert body["error"] == "unauthorized" and "Bearer" in str(body["message"])
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_route_with_its_own_auth_needs_no_token_but_its_own_proof(server, http):
    status, body, _ = await call(http, "POST", url(server, "/v1/hook"),
                                 headers={"X-Proof": "yes"}, json={"a": 1})
    assert (status, body) == (200, {"got": {"a": 1}})
    status, body, _ = await call(http, "POST", url(server, "/v1/hook"), json={"a": 1})
    assert (status, body["error"]) == (401, "bad_signature")
    # Only the matched method and path: another method, or a path beside it, still
    # needs the token (and says nothing about which paths exist).
    for method, path in (("GET", "/v1/hook"), ("POST", "/v1/hook/x"), ("POST", "/v1/hooks")):
        status, body, _ = await call(http, method, url(server, path),
                                     headers={"X-Proof": "yes"}, json={})
        assert (status, body["error"]) == (401, "unauthorized"), (method, path)
    # The body limit holds for it too.
    big = b'{"a": "' + b"x" * 2000 + b'"}'
    status, body, _ = await call(http, "POST", url(server, "/v1/hook"),
                                 headers={"X-Proof": "yes"}, data=big)
    assert (status, body["error"]) == (413, "too_large")


async def test_the_right_token_gets_through(server, http):
    status, body, _ = await call(http, "POST", url(server, "/v1/echo"), headers=AUTH,
                                 json={"a": [1, 2]})
    assert (status, body) == (200, {"got": {"a": [1, 2]}})
    # The scheme is case-insensitive (RFC 7235).
    status, _, _ = await call(http, "POST", url(server, "/v1/echo"),
                              headers={"Authorization": f"bearer {TOKEN}"}, json={})
    assert status == 200


async def test_errors_are_json_with_a_code_and_a_message(server, http):
    status, body, _ = await call(http, "GET", url(server, "/v1/teapot"), headers=AUTH)
    assert (status, body) == (418, {"error": "teapot", "message": "short and stout",
                                    "field": "spout"})
    status, body, _ = await call(http, "GET", url(server, "/v1/nowhere"), headers=AUTH)
    assert (status, body["error"]) == (404, "not_found")
    status, body, headers = await call(http, "DELETE", url(server, "/v1/echo"), headers=AUTH)
    assert (status, body["error"], headers["Allow"]) == (405, "method_not_allowed", "POST")


@pytest.mark.parametrize(("data", "words"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "a JSON object"),
    (b"\xff\xfe", "not JSON"),
    (b"", "not JSON"),
])
async def test_a_body_that_is_not_a_json_object_is_400(server, http, data, words):
    status, body, _ = await call(http, "POST", url(server, "/v1/echo"), headers=AUTH, data=data)
    assert (status, body["error"]) == (400, "bad_json") and words in str(body["message"])


async def test_a_body_over_the_limit_is_413_declared_or_streamed(server, http):
    big = b'{"a": "' + b"x" * 2000 + b'"}'
    status, body, _ = await call(http, "POST", url(server, "/v1/echo"), headers=AUTH, data=big)
    assert (status, body["error"]) == (413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b" " * 200
        yield b"{}"

    status, body, _ = await call(http, "POST", url(server, "/v1/echo"), headers=AUTH,
                                 data=chunks())
    assert (status, body["error"]) == (413, "too_large")


async def test_an_unexpected_exception_is_500_json_and_one_log_line(server, http, caplog):
    caplog.set_level(logging.INFO, logger="nohold.http")
    status, body, _ = await call(http, "GET", url(server, "/v1/broken"), headers=AUTH)
    assert (status, body["error"]) == (500, "internal")
    assert "Traceback" not in str(body) and "the handler's own bug" not in str(body)
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert "http_failed method=GET path=/v1/broken" in failed[0].getMessage()


async def test_one_access_line_per_request_never_the_token_nor_the_query(server, http, caplog):
    caplog.set_level(logging.INFO, logger="nohold.http")
    await call(http, "POST", url(server, "/v1/echo?number=48601000001"), headers=AUTH,
               json={"number": "48601000001"})
    await call(http, "GET", url(server, "/v1/teapot"),
               headers={"Authorization": "Bearer guessed-0123456789-0123456789"})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("http_request")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("http_request method=POST path=/v1/echo status=200 ms=")
    assert lines[1].startswith("http_request method=GET path=/v1/teapot status=401 ms=")
    assert "peer=127.0.0.1" in lines[0]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in text and "guessed" not in text and "48601000001" not in text


def test_two_routes_for_one_path_or_a_short_token_are_refused():
    with pytest.raises(ValueError, match="two HTTP routes for GET /v1/echo"):
        HttpServer([web.get("/v1/echo", echo), web.get("/v1/echo", teapot)], TOKEN)
    with pytest.raises(ValueError, match="24 characters"):
        HttpServer(ROUTES, "short")


async def test_a_taken_port_fails_start_and_leaves_nothing_open():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = HttpServer(ROUTES, TOKEN)
        with pytest.raises(OSError):
            await srv.start("127.0.0.1", port)
        await srv.close()


async def test_close_finishes_requests_in_progress_then_frees_the_port_and_connections():
    srv = HttpServer(ROUTES, TOKEN)
    await srv.start("127.0.0.1", 0)
    port = srv.port
    async with aiohttp.ClientSession() as http:
        status, _, _ = await call(http, "POST", f"http://127.0.0.1:{port}/v1/echo",
                                  headers=AUTH, json={})
        assert status == 200  # a kept-alive connection is now open
        in_progress = asyncio.create_task(
            call(http, "GET", f"http://127.0.0.1:{port}/v1/slow", headers=AUTH))
        await asyncio.sleep(0.1)
        await srv.close()
        status, body, _ = await in_progress
        assert (status, body) == (200, {"slow": True})
    assert wait_until(lambda: server_sessions(port) == 0, 2.0)
    with socket.socket() as again:  # nothing listens any more (TIME_WAIT is fine)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
