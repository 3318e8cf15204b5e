"""The callbacks' HTTP API (ari_apps/callbacks/api.py) behind the real HTTP server, on a
real SQLite and PostgreSQL database: booking through the one booking path (queue,
allow-list, do-not-call, the calendar), listing, showing and cancelling, and every
answer a client can get."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from nohold.ari_apps.callbacks import api
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.calendar.book import CalendarBook
from nohold.calendar.settings import CalendarSettings
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.decisions.callbacks import AfterAttempt, AttemptOutcome, State
from nohold.http_server import HttpServer
from nohold.registry import parse_settings

WARSAW = ZoneInfo("Europe/Warsaw")
TOKEN = "api-test-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Monday 2 March 2026, 10:00 in Warsaw: the API's clock.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=WARSAW)
# Callbacks dialled 08:00-21:00 Monday to Saturday.
RAW: dict[str, Any] = {
    "callbacks": {"queues": ["billing", "sales"], "calendar": "desk",
                  "allowed_numbers": ["PL:mobile", "PL:fixed_line"]},
    "calendar": {"default": "desk", "desk": {
        day: ["08:00-21:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}},
}


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    store: CallbackStore

    async def call(self, method: str, path: str, *, auth: bool = True,
                   **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path,
                                     headers=AUTH if auth else {}, **kwargs) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()

    async def book(self, **fields: Any) -> tuple[int, Any]:
        body = {"number": "+48601000001", "at": "2026-03-02T18:30", **fields}
        return await self.call("POST", "/v1/callbacks", json=body)


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[Api]:
    await upgrade_async(db_url)
    settings = parse_settings({**RAW, "database": {"url": db_url}})
    engine = make_engine(db_url)
    store = CallbackStore(engine, "api-test")
    calendars = CalendarBook(settings.section(CalendarSettings), CalendarOverrideStore(engine))
    server = HttpServer(api.routes(store, settings.section(CallbackSettings), calendars,
                                   clock=lambda: NOW), TOKEN)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Api(http, f"http://127.0.0.1:{server.port}", store)
    finally:
        await server.close()
        await engine.dispose()


# -- auth -------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token-0123456789"}])
async def test_without_the_token_nothing_is_read_or_booked(client, headers):
    for method, path in (("GET", "/v1/callbacks"), ("POST", "/v1/callbacks"),
                         ("GET", "/v1/callbacks/1"), ("DELETE", "/v1/callbacks/1")):
        async with client.http.request(method, client.base + path, headers=headers,
                                       json={"number": "+48601000001",
                                             "at": "2026-03-02T18:30"}) as resp:
            assert resp.status == 401, (method, path)
            assert (await resp.json())["error"] == "unauthorized"
    assert await client.store.find() == []


# -- booking ----------------------------------------------------------------------------
async def test_a_booking_is_201_with_the_callback_stored_in_utc(client):
    status, body = await client.book(number="601000001", window="45m", owner="Agent B",
                                     note="router replaced, check the line", queue="sales")
    assert status == 201, body
    at = datetime(2026, 3, 2, 18, 30, tzinfo=WARSAW)  # no offset: the calendar's zone
    assert datetime.fromisoformat(body["due_at"]) == at
    assert body["due_at"].endswith("+00:00")  # every time with its offset
    assert datetime.fromisoformat(body["expires_at"]) == at + timedelta(minutes=45)
    assert (body["number"], body["queue"], body["state"], body["scheduled"],
            body["owner_agent"], body["note"]) == (
        "+48601000001", "sales", "pending", True, "Agent B", "router replaced, check the line")
    assert body["call_id"].startswith("api-")
    (row,) = await client.store.find()
    assert row.as_dict() == body


@pytest.mark.parametrize(("window", "minutes"), [(None, 30), (90, 90), ("2h", 120), ("15M", 15)])
async def test_the_window_in_minutes_or_as_text_default_30m(client, window, minutes):
    status, body = await client.book(**({} if window is None else {"window": window}))
    assert status == 201, body
    span = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["due_at"])
    assert span == timedelta(minutes=minutes)


async def test_an_offset_in_at_is_honoured(client):
    status, body = await client.book(at="2026-03-02T16:00:00Z")
    assert status == 201, body
    assert datetime.fromisoformat(body["due_at"]) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


async def test_outside_the_calendar_is_422_with_the_next_valid_time(client):
    status, body = await client.book(at="2026-03-02T22:00")  # closes at 21:00
    assert status == 422, body
    assert (body["error"], body["field"]) == ("not_booked", "at")
    assert "outside the desk calendar" in body["message"]
    # The next opening: Tuesday 08:00 in Warsaw.
    assert datetime.fromisoformat(body["next_valid"]) == datetime(2026, 3, 3, 8, 0,
                                                                  tzinfo=WARSAW)
    assert await client.store.find(None) == []


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"at": "2026-03-02T08:00"}, "at", "has passed"),
    ({"window": "1m"}, "window", "window"),
    ({"window": "9h"}, "window", "window"),
    ({"number": "+48701234567"}, "number", "is not called back"),
    ({"number": "+441632960000"}, "number", "is not called back"),
    ({"queue": "support"}, "queue", "not one of callbacks.queues"),
])
async def test_a_refusal_is_422_naming_the_field_and_nothing_is_stored(client, fields, field,
                                                                      words):
    status, body = await client.book(**fields)
    assert status == 422, body
    assert (body["error"], body["field"]) == ("not_booked", field)
    assert words in body["message"], body
    assert "next_valid" in body
    assert await client.store.find(None) == []


async def test_a_number_on_the_do_not_call_list_is_refused(client):
    await client.store.dnc_add("+48601000001", NOW, "asked on 1 March")
    status, body = await client.book()
    assert status == 422, body
    assert (body["field"], body["next_valid"]) == ("number", None)
    assert "do-not-call" in body["message"]
    assert await client.store.find(None) == []


async def test_a_number_with_a_live_callback_is_409_with_that_callback(client):
    status, first = await client.book(owner="Agent A")
    assert status == 201
    status, body = await client.book(at="2026-03-02T19:00", owner="Agent B")
    assert status == 409, body
    assert body["error"] == "already_booked" and "cancel it first" in body["message"]
    assert (body["callback"]["id"], body["callback"]["due_at"],
            body["callback"]["owner_agent"]) == (first["id"], first["due_at"], "Agent A")
    # Another queue is another promise.
    status, _ = await client.book(queue="sales")
    assert status == 201


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"at": "2026-03-02T18:30"}, "number", "required"),
    ({"number": "+48601000001"}, "at", "required"),
    ({"number": "   ", "at": "2026-03-02T18:30"}, "number", "required"),
    ({"number": 48601000001, "at": "2026-03-02T18:30"}, "number", "expected a string"),
    ({"number": "+48601000001", "at": "tomorrow at six"}, "at", "ISO 8601"),
    ({"number": "+48601000001", "at": 1772472600}, "at", "expected a string"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "window": "3 days"}, "window",
     "30m or 2h"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "window": True}, "window",
     "minutes"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "window": 10**30}, "window",
     "minutes"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "window": -5}, "window",
     "minutes"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "queue": 7}, "queue",
     "expected a string"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "owner": "A" * 81}, "owner",
     "at most 80"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "note": "n" * 201}, "note",
     "at most 200"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "note": "two\nlines"}, "note",
     "one line"),
    ({"number": "4" * 33, "at": "2026-03-02T18:30"}, "number", "at most 32"),
    ({"number": "+48601000001", "at": "2026-03-02T18:30", "priority": "high"}, "priority",
     "unknown field"),
])
async def test_a_malformed_booking_is_400_naming_the_field(client, body, field, words):
    status, answer = await client.call("POST", "/v1/callbacks", json=body)
    assert status == 400, answer
    assert (answer["error"], answer["field"]) == ("bad_request", field)
    assert words in answer["message"], answer
    assert await client.store.find(None) == []


async def test_the_longest_owner_and_note_are_kept_whole(client):
    status, body = await client.book(owner="A" * 80, note="n" * 200)
    assert status == 201, body
    assert (len(body["owner_agent"]), len(body["note"])) == (80, 200)


@pytest.mark.parametrize("data", [b"{\"number\": ", b"[]", b"null"])
async def test_a_body_that_is_not_a_json_object_is_400(client, data):
    status, body = await client.call("POST", "/v1/callbacks", data=data)
    assert (status, body["error"]) == (400, "bad_json"), body


async def test_a_body_over_16_kib_is_413_and_nothing_is_stored(client):
    status, body = await client.book(note="n" * (17 * 1024))
    assert (status, body["error"]) == (413, "too_large"), body
    assert await client.store.find(None) == []


# -- reading ----------------------------------------------------------------------------
async def test_list_live_by_default_with_filters(client):
    _, a = await client.book(number="+48601000001")
    _, b = await client.book(number="+48601000002", queue="sales")
    asap, _ = await client.store.request(
        call_id="asap", number="+48601000003", queue="billing", arrived_at=NOW, now=NOW,
        promised=None, expires_at=NOW + timedelta(hours=4))
    await client.store.cancel(b["id"], NOW)

    async def ids(query: str) -> list[int]:
        status, body = await client.call("GET", f"/v1/callbacks{query}")
        assert status == 200, body
        assert body["count"] == len(body["callbacks"])
        return [c["id"] for c in body["callbacks"]]

    assert sorted(await ids("")) == sorted([a["id"], asap.id])
    assert await ids("?scheduled=true") == [a["id"]]
    assert await ids("?scheduled=false") == [asap.id]
    assert await ids("?state=cancelled") == [b["id"]]
    assert sorted(await ids("?state=all")) == sorted([a["id"], b["id"], asap.id])
    assert sorted(await ids("?state=cancelled,live")) == sorted([a["id"], b["id"], asap.id])
    assert sorted(await ids("?state=pending&state=cancelled&scheduled=true")) == sorted(
        [a["id"], b["id"]])
    assert len(await ids("?state=all&limit=1")) == 1


@pytest.mark.parametrize(("query", "field"), [
    ("?state=sleeping", "state"), ("?scheduled=yes", "scheduled"), ("?limit=0", "limit"),
    ("?limit=1001", "limit"), ("?limit=ten", "limit"), ("?number=%2B48601000001", "number"),
])
async def test_bad_list_parameters_are_400_naming_them(client, query, field):
    status, body = await client.call("GET", f"/v1/callbacks{query}")
    assert (status, body["error"], body["field"]) == (400, "bad_request", field), body


async def test_show_has_the_attempts(client):
    _, booked = await client.book(at="2026-03-02T18:30")
    at = datetime(2026, 3, 2, 18, 30, tzinfo=WARSAW).astimezone(UTC)  # the store's clock
    (queued,) = await client.store.take_turns("billing", 1, at)
    connected = await client.store.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at)
    assert connected is not None
    dialling = await client.store.begin_attempt(connected, "Agent B", at)
    assert dialling is not None
    await client.store.end_attempt(dialling, AttemptOutcome.TALKED,
                                   AfterAttempt(State.COMPLETED), at + timedelta(minutes=3))
    status, body = await client.call("GET", f"/v1/callbacks/{booked['id']}")
    assert status == 200, body
    assert (body["state"], body["attempts"]) == ("completed", 1)
    (attempt,) = body["attempt_rows"]
    assert (attempt["attempt"], attempt["agent"], attempt["outcome"]) == (1, "Agent B",
                                                                          "talked")
    assert datetime.fromisoformat(attempt["ended_at"]) == at + timedelta(minutes=3)


@pytest.mark.parametrize("path", ["/v1/callbacks/999", "/v1/callbacks/abc",
                                  "/v1/callbacks/1234567890123456789012"])
async def test_an_unknown_callback_is_404(client, path):
    for method in ("GET", "DELETE"):
        status, body = await client.call(method, path)
        assert (status, body["error"]) == (404, "not_found"), (method, body)


# -- cancelling -------------------------------------------------------------------------
async def test_cancel_is_200_with_the_record_then_409_once_final(client):
    _, booked = await client.book()
    status, body = await client.call("DELETE", f"/v1/callbacks/{booked['id']}")
    assert status == 200, body
    assert (body["id"], body["state"], body["outcome"]) == (booked["id"], "cancelled",
                                                            "cancelled_by_api")
    status, body = await client.call("DELETE", f"/v1/callbacks/{booked['id']}")
    assert (status, body["error"]) == (409, "cannot_cancel"), body
    assert "already cancelled" in body["message"] and body["callback"]["state"] == "cancelled"
    # Cancelled, the number may be booked again.
    status, _ = await client.book(at="2026-03-02T19:00")
    assert status == 201


async def test_a_callback_being_dialled_cannot_be_cancelled(client):
    _, booked = await client.book()
    at = datetime(2026, 3, 2, 18, 30, tzinfo=WARSAW).astimezone(UTC)  # the store's clock
    (queued,) = await client.store.take_turns("billing", 1, at)
    connected = await client.store.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at)
    assert connected is not None and await client.store.begin_attempt(connected, "A", at)
    status, body = await client.call("DELETE", f"/v1/callbacks/{booked['id']}")
    assert (status, body["error"]) == (409, "cannot_cancel"), body
    assert "being dialled" in body["message"] and body["callback"]["state"] == "dialling"
    assert (await client.store.get(booked["id"])).state is State.DIALLING


async def test_no_calendar_is_503_naming_it(tmp_path):
    url = f"sqlite:///{tmp_path}/nohold.db"
    await upgrade_async(url)
    settings = parse_settings({**RAW, "database": {"url": url}})
    engine = make_engine(url)
    store = CallbackStore(engine, "api-test")
    # The calendar feature off: the service shares no calendars.
    server = HttpServer(api.routes(store, settings.section(CallbackSettings), None,
                                   clock=lambda: NOW), TOKEN)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            status, body = await Api(http, f"http://127.0.0.1:{server.port}", store).book()
        assert status == 503, body
        assert (body["error"], body["field"]) == ("not_booked", "calendar")
        assert "the calendar feature is off" in body["message"]
        assert await store.find(None) == []
    finally:
        await server.close()
        await engine.dispose()
