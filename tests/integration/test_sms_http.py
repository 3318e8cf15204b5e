"""SMS through an HTTP gateway (`[sms] transport = "http"`), against a gateway stub the
test runs (aiohttp, its own port): the JSON nohold sends, the refusals and timeouts it
turns into retries, and `POST /v1/sms/inbound` on nohold's own HTTP API, where a
technician's reply acknowledges a ticket (SQLite and PostgreSQL) and a reply that
cannot be stored is answered 503 so the gateway delivers it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nohold.alerts.escalator import Escalator
from nohold.alerts.settings import AlertSettings
from nohold.callbackdb.alerts import AlertStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from nohold.config import ConfigError
from nohold.decisions.tickets import Category, Report, Urgency
from nohold.http_server import HttpServer
from nohold.registry import parse_settings
from nohold.sms import inbound
from nohold.sms.http_link import HttpSmsLink
from nohold.sms.link import Inbound, SmsFailed

TOKEN = "gateway-token-0123456789"
API_TOKEN = "nohold-api-token-0123456789-abcdef"
T0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


@dataclass
class Gateway:
    """The stub: answers each POST with the next planned (status, body, delay)."""

    url: str = ""
    got: list[dict[str, Any]] = field(default_factory=list)
    plan: list[tuple[int, Any, float]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append({"auth": request.headers.get("Authorization"),
                         "body": await request.json()})
        status, body, delay = self.plan.pop(0) if self.plan else (200, {"id": "g-1"}, 0.0)
        await asyncio.sleep(delay)  # the stub playing a slow gateway, not the test waiting
        return web.json_response(body, status=status)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/send", gw.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gw.url = f"http://127.0.0.1:{port}/send"
    yield gw
    await runner.cleanup()


def sms_settings(gw: Gateway, **http: Any) -> Any:
    return parse_settings({
        "http": {"enabled": True, "token": API_TOKEN},
        "sms": {"enabled": True, "transport": "http",
                "http": {"url": gw.url, "token": TOKEN, "source": "ISP", "timeout": 1,
                         **http}}}).sms.http


async def test_a_message_is_posted_as_json_with_the_token_and_its_id_comes_back(gateway):
    link = HttpSmsLink(sms_settings(gateway))
    await link.start()
    try:
        gateway.plan = [(201, {"id": "g-42"}, 0.0), (200, {"queued": True}, 0.0)]
        assert await link.send("+48601000001", "Zażółć gęślą jaźń") == "g-42"
        assert gateway.got[0] == {"auth": f"Bearer {TOKEN}", "body": {
            "to": "+48601000001", "from": "ISP", "text": "Zażółć gęślą jaźń"}}
        assert await link.send("+48601000001", "no id") == ""  # taken, nothing to match
    finally:
        await link.close()


@pytest.mark.parametrize("status, body, delay, words", [
    (500, {"error": "down"}, 0.0, "gateway answered 500"),
    (401, {"error": "bad token"}, 0.0, "gateway answered 401"),
    (200, {"id": "late"}, 1.5, "gateway http://"),  # over the 1 s timeout
])
async def test_a_refusal_or_no_answer_is_a_failed_send_to_retry(gateway, status, body, delay,
                                                                  words):
    link = HttpSmsLink(sms_settings(gateway))
    await link.start()
    try:
        gateway.plan = [(status, body, delay)]
        with pytest.raises(SmsFailed, match=words):
            await link.send("+48601000001", "x")
    finally:
        await link.close()


async def test_a_gateway_nobody_runs_is_a_failed_send(gateway):
    link = HttpSmsLink(sms_settings(gateway, url="http://127.0.0.1:9/send"))
    await link.start()
    try:
        with pytest.raises(SmsFailed, match="127.0.0.1:9"):
            await link.send("+48601000001", "x")
    finally:
        await link.close()


def test_config_says_what_the_http_transport_needs():
    with pytest.raises(ConfigError, match=r"needs \[http\] enabled"):
        parse_settings({"sms": {"enabled": True, "transport": "http", "http": {
            "url": "https://sms.example.net/send", "token": "t"}}})
    with pytest.raises(ConfigError, match="plain http"):
        parse_settings({"sms": {"http": {"url": "http://sms.example.net/send"}}})


@pytest.fixture
async def nohold_api(db_url: str, gateway: Gateway) -> AsyncIterator[Any]:
    """The escalator on the HTTP link, and nohold's HTTP API serving /v1/sms/inbound."""
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    settings = parse_settings({
        "http": {"enabled": True, "token": API_TOKEN},
        "sms": {"enabled": True, "transport": "http",
                "http": {"url": gateway.url, "token": TOKEN}},
        "alerts": {"enabled": True, "tickets": "all", "rounds": 1,
                   "people": {"jan": {"mobile": "+48601000001"}}, "fallback": ["jan"]}})
    link = HttpSmsLink(settings.sms.http)
    tickets = TicketStore(engine)
    now = [T0]
    escalator = Escalator(settings.section(AlertSettings), AlertStore(engine), tickets, link,
                          clock=lambda: now[0], node="node-a")
    link.listen(escalator.on_inbound)
    server = HttpServer(inbound.routes(link), API_TOKEN)
    await link.start()
    await server.start("127.0.0.1", 0)
    try:
        yield link, escalator, tickets, f"http://127.0.0.1:{server.port}/v1/sms/inbound", now
    finally:
        await escalator.close()
        await server.close()
        await link.close()
        await engine.dispose()


async def post(url: str, body: Any, token: str | None = API_TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body,
                                                          headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_reply_through_the_gateway_acknowledges_the_ticket(nohold_api, gateway):
    link, escalator, tickets, url, now = nohold_api
    record, _, _ = await tickets.report(
        Report(partner_id="P-1", caller="+48221234567", category=Category.OUTAGE,
               text="No internet", urgency=Urgency.URGENT), via="webhook", now=T0)
    await escalator.tick()
    assert [g["body"]["to"] for g in gateway.got] == ["+48601000001"]
    assert gateway.got[0]["body"]["text"].startswith(f"nohold #{record.id} URGENT")
    # The delivery report and the reply come in as webhooks.
    assert await post(url, {"message_id": "g-1", "status": "delivered"}) == (200, {"ok": True})
    assert await post(url, {"from": "+48601000001", "text": f"ACK {record.id}"}) == (
        200, {"ok": True})
    ticket = await tickets.get(record.id)
    assert ticket is not None and (ticket.state, ticket.acknowledged_by) == (
        "acknowledged", "jan")
    await escalator.close()  # lets the "acknowledged" SMS back go out
    assert gateway.got[-1]["body"]["text"] == (
        f"nohold #{record.id} acknowledged by jan. Alerts stopped.")


@pytest.mark.parametrize("body, field_name", [
    ({"from": "jan", "text": "ACK 1"}, "from"),
    ({"from": "+48601000001", "text": 42}, "text"),
    ({"message_id": "", "status": "delivered"}, "message_id"),
    ({"message_id": "g-1", "status": "lost"}, "status"),
])
async def test_bad_inbound_bodies_are_refused_naming_the_field(nohold_api, body, field_name):
    *_, url, _ = nohold_api
    status, answer = await post(url, body)
    assert (status, answer.get("field")) == (400, field_name), answer


async def test_inbound_needs_the_token_and_a_failed_store_asks_for_it_again(nohold_api):
    link, *_, url, _ = nohold_api
    assert (await post(url, {"from": "+48601000001", "text": "1"}, token="wrong"))[0] == 401

    async def broken(msg: Inbound) -> None:
        raise OSError("database is down")

    link.listen(broken)
    status, answer = await post(url, {"from": "+48601000001", "text": "1"})
    assert (status, answer["error"]) == (503, "not_stored"), answer
