"""The partner's webhook (nohold/tickets/webhook.py) behind the real HTTP server on SQLite
and PostgreSQL: signed requests make tickets; forged, stale, future and replayed ones
are refused and write nothing; a repeat updates; bad payloads name the field."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from nohold.decisions.tickets import sign
from nohold.http_server import HttpServer
from nohold.registry import parse_settings
from nohold.tickets import webhook
from nohold.tickets.intake import Intake
from nohold.tickets.settings import TicketSettings

TOKEN = "agents-token-0123456789-abcdef"
SECRET = "partner-secret-0123456789abcdef-0123456789"
NOW = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
TICKET = {"id": "T-1001", "caller": "+48 601 234 567", "category": "outage",
          "urgency": "urgent", "text": "No internet since 20:00.", "customer": "10042",
          "call_id": "1741377600.42", "reported_at": "2026-03-07T20:55:00+01:00"}


@dataclass
class Partner:
    http: aiohttp.ClientSession
    url: str
    store: TicketStore
    clock: list[datetime]

    async def post(self, body: bytes | dict[str, Any], *, secret: str = SECRET,
                   at: datetime | None = None, headers: dict[str, str] | None = None,
                   ) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = str(int((at or self.clock[0]).timestamp()))
        signed = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": sign(secret.encode(), ts, raw),
                  "Content-Type": "application/json"}
        return await self.send(raw, {**signed, **(headers or {})})

    async def send(self, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(self.url, data=raw, headers=headers) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()


@pytest.fixture
async def partner(db_url: str) -> AsyncIterator[Partner]:
    await upgrade_async(db_url)
    settings = parse_settings({"http": {"enabled": True, "token": TOKEN},
                               "tickets": {"enabled": True, "secret": SECRET},
                               "database": {"url": db_url}})
    engine = make_engine(db_url)
    store = TicketStore(engine)
    clock = [NOW]
    server = HttpServer(webhook.routes(Intake(store, settings.section(TicketSettings)),
                                       clock=lambda: clock[0]), TOKEN)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Partner(http, f"http://127.0.0.1:{server.port}{webhook.PATH}", store, clock)
    finally:
        await server.close()
        await engine.dispose()


async def test_a_signed_report_makes_a_ticket_without_the_agents_token(partner):
    status, body = await partner.post(TICKET)
    assert status == 201, body
    assert body["outcome"] == "created" and body["ignored"] == [] and body["changed"] == []
    (ticket,) = await partner.store.find()
    assert body["ticket"] == {"id": ticket.id, "partner_id": "T-1001", "state": "open",
                              "category": "outage", "urgency": "urgent", "reports": 1}
    assert (ticket.caller, ticket.customer, ticket.call_id, ticket.channel, ticket.text) == (
        "+48601234567", "10042", "1741377600.42", "webhook", "No internet since 20:00.")


async def test_a_repeat_with_new_content_updates_the_same_ticket(partner):
    status, first = await partner.post(TICKET)
    assert status == 201
    partner.clock[0] = NOW + timedelta(seconds=40)
    status, body = await partner.post({**TICKET, "text": "Still down, neighbours too.",
                                       "urgency": "urgent"})
    assert status == 200, body
    assert (body["outcome"], body["changed"], body["ticket"]["id"], body["ticket"]["reports"]
            ) == ("updated", ["text"], first["ticket"]["id"], 2)
    status, body = await partner.post({**TICKET, "text": "Still down, neighbours too."},
                                      at=NOW + timedelta(seconds=41))
    assert (status, body["outcome"]) == (200, "unchanged")
    (ticket,) = await partner.store.find()
    assert ticket.text == "Still down, neighbours too." and ticket.reports == 3


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda h: {k: v for k, v in h.items() if k != "X-Nohold-Signature"}, "missing_signature"),
    (lambda h: {k: v for k, v in h.items() if k != "X-Nohold-Timestamp"}, "missing_timestamp"),
    (lambda h: {**h, "X-Nohold-Signature": "sha256=" + "ab" * 32}, "bad_signature"),
    (lambda h: {**h, "X-Nohold-Timestamp": str(int(h["X-Nohold-Timestamp"]) + 1)},
     "bad_signature"),
    (lambda h: {**h, "X-Nohold-Timestamp": "Sat, 07 Mar 2026 20:00:00 GMT"}, "bad_timestamp"),
    (lambda h: {**h, "Authorization": f"Bearer {TOKEN}", "X-Nohold-Signature": "sha256=00"},
     "bad_signature"),  # the agents' token is no way in
])
async def test_forged_requests_are_401_and_write_nothing(partner, mangle, reason, caplog):
    raw = json.dumps(TICKET).encode()
    ts = str(int(NOW.timestamp()))
    headers = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": sign(SECRET.encode(), ts, raw)}
    with caplog.at_level(logging.WARNING, "nohold.tickets"):
        status, body = await partner.send(raw, mangle(headers))
    assert (status, body["error"]) == (401, reason), body
    assert await partner.store.find() == []
    assert f"ticket_refused reason={reason}" in caplog.text


async def test_a_body_changed_after_signing_or_another_secret_is_refused(partner):
    raw = json.dumps(TICKET).encode()
    ts = str(int(NOW.timestamp()))
    headers = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": sign(SECRET.encode(), ts, raw)}
    status, body = await partner.send(raw.replace(b"urgent", b"normal"), headers)
    assert (status, body["error"]) == (401, "bad_signature")
    status, body = await partner.post(TICKET, secret="another-secret-0123456789abcdef-xyz")
    assert (status, body["error"]) == (401, "bad_signature")
    assert await partner.store.find() == []


@pytest.mark.parametrize(("age", "reason"), [(301, "stale"), (3600, "stale"), (-301, "future")])
async def test_stale_or_future_requests_are_401(partner, age, reason):
    status, body = await partner.post(TICKET, at=NOW - timedelta(seconds=age))
    assert (status, body["error"]) == (401, reason), body
    assert "clock" in body["message"]
    assert await partner.store.find() == []


async def test_within_the_age_either_way_is_accepted(partner):
    status, _ = await partner.post(TICKET, at=NOW - timedelta(seconds=299))
    assert status == 201
    status, _ = await partner.post({**TICKET, "id": "T-2"}, at=NOW + timedelta(seconds=299))
    assert status == 201


async def test_a_replayed_request_is_409_and_changes_nothing(partner, caplog):
    raw = json.dumps(TICKET).encode()
    ts = str(int(NOW.timestamp()))
    headers = {"X-Nohold-Timestamp": ts, "X-Nohold-Signature": sign(SECRET.encode(), ts, raw)}
    status, first = await partner.send(raw, headers)
    assert status == 201
    # Someone who saw the request sends it again, a little later, within the window.
    partner.clock[0] = NOW + timedelta(seconds=200)
    with caplog.at_level(logging.WARNING, "nohold.tickets"):
        status, body = await partner.send(raw, headers)
    assert (status, body["error"], body["ticket"]) == (409, "replayed", first["ticket"]["id"])
    assert "ticket_replayed" in caplog.text
    (ticket,) = await partner.store.find()
    assert ticket.reports == 1
    # After the window it is stale, so it can never come back.
    partner.clock[0] = NOW + timedelta(seconds=301)
    status, body = await partner.send(raw, headers)
    assert (status, body["error"]) == (401, "stale")
    # The same content signed anew is a repeat, not a replay.
    status, body = await partner.post(TICKET)
    assert (status, body["outcome"]) == (200, "unchanged")


@pytest.mark.parametrize(("change", "field"), [
    ({"id": None}, "id"),
    ({"caller": "12345"}, "caller"),
    ({"category": "network"}, "category"),
    ({"urgency": "asap"}, "urgency"),
    ({"text": ""}, "text"),
    ({"text": "x" * 4001}, "text"),
    ({"reported_at": "2026-03-07 20:55"}, "reported_at"),
])
async def test_a_bad_payload_is_400_naming_the_field_logged_and_nothing_written(
        partner, change, field, caplog):
    with caplog.at_level(logging.WARNING, "nohold.tickets"):
        status, body = await partner.post({**TICKET, **change})
    assert (status, body["error"], body["field"]) == (400, "bad_request", field), body
    assert body["message"].startswith(f"{field}:")
    assert "ticket_bad via=webhook" in caplog.text and f"field={field}" in caplog.text
    assert await partner.store.find() == []
    # The partner fixes it and the same ticket id goes through.
    status, _ = await partner.post(TICKET, at=NOW + timedelta(seconds=1))
    assert status == 201


async def test_a_bad_update_leaves_the_ticket_as_it_was(partner):
    await partner.post(TICKET)
    status, body = await partner.post({**TICKET, "text": "new", "category": "?"},
                                      at=NOW + timedelta(seconds=1))
    assert (status, body["field"]) == (400, "category")
    (ticket,) = await partner.store.find()
    assert ticket.text == "No internet since 20:00." and ticket.reports == 1


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_400(partner, raw):
    status, body = await partner.post(raw)
    assert (status, body["error"]) == (400, "bad_json")


async def test_malformed_details_are_dropped_named_and_the_ticket_kept(partner, caplog):
    with caplog.at_level(logging.WARNING, "nohold.tickets"):
        status, body = await partner.post({**TICKET, "call_id": "no such call!",
                                           "customer": "10042; DROP", "priority": 1})
    assert status == 201, body
    assert [i["field"] for i in body["ignored"]] == ["priority", "customer", "call_id"]
    (ticket,) = await partner.store.find()
    assert (ticket.call_id, ticket.customer) == ("", "")
    assert caplog.text.count("ticket_field_ignored") == 3


async def test_the_log_names_the_ticket_never_the_text_or_numbers(partner, caplog):
    with caplog.at_level(logging.INFO, "nohold.tickets"):
        await partner.post(TICKET)
    assert "ticket_created" in caplog.text and "partner_id=T-1001" in caplog.text
    assert "601" not in caplog.text and "No internet" not in caplog.text
