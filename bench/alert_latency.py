"""A partner's ticket to the technician's SMS: how long from the webhook POST to the
submit_sm at a real SMSC (node-smpp's server), nohold against a bare floor measured
in the same run on the same SMSC.

- floor: a bare aiohttp handler that submits the SMS with a bare, already bound
  smpplib client (in a thread) and answers: what any webhook-to-SMS bridge costs.
- nohold: the product's own path, in-process: the HTTP server and the signed webhook,
  the ticket stored (SQLite, WAL), the alerts loop woken, the run and the step row
  claimed, the SMS sent through nohold's SMPP link.

Tickets are posted one after another (each waits for its SMS), `--tickets` of each.
Figures: p50 and p99 in milliseconds, and nohold / floor.

    .venv/bin/python bench/alert_latency.py --tickets 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import smpplib.client
import smpplib.consts as c
import smpplib.gsm
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import percentile  # noqa: E402
from nohold.alerts.escalator import Escalator  # noqa: E402
from nohold.alerts.settings import AlertSettings  # noqa: E402
from nohold.callbackdb.alerts import AlertStore  # noqa: E402
from nohold.callbackdb.engine import make_engine  # noqa: E402
from nohold.callbackdb.migrate import upgrade_async  # noqa: E402
from nohold.callbackdb.tickets import TicketStore  # noqa: E402
from nohold.decisions.tickets import sign  # noqa: E402
from nohold.feature import Signals  # noqa: E402
from nohold.http_server import HttpServer  # noqa: E402
from nohold.registry import parse_settings  # noqa: E402
from nohold.sms.link import Inbound  # noqa: E402
from nohold.sms.smpp import SmppGateway, target  # noqa: E402
from nohold.tickets import webhook  # noqa: E402
from nohold.tickets.intake import Intake  # noqa: E402
from nohold.tickets.settings import TicketSettings  # noqa: E402
from tests.support.smsc import Smsc  # noqa: E402

TOKEN = "bench-token-0123456789-abcdef"
SECRET = "bench-partner-secret-0123456789abcdef-0123"
MOBILE = "+48601000001"


def ticket_body(n: int) -> bytes:
    return json.dumps({"id": f"B-{n}", "caller": "+48221234567", "category": "outage",
                       "urgency": "urgent", "text": "No internet in Zalesie"}).encode()


async def measure(smsc: Smsc, url: str, tickets: int, first: int) -> list[float]:
    """ms from each POST to the SMSC's submit_sm, one ticket at a time."""
    out = []
    async with aiohttp.ClientSession() as http:
        for n in range(first, first + tickets):
            raw = ticket_body(n)
            ts = str(int(time.time()))
            headers = {"X-Nohold-Timestamp": ts, "Content-Type": "application/json",
                       "X-Nohold-Signature": sign(SECRET.encode(), ts, raw)}
            seen = len(smsc.of("submit"))
            start = time.time()
            async with http.post(url, data=raw, headers=headers) as resp:
                assert resp.status in (200, 201), await resp.text()
            submit = (await smsc.count("submit", seen + 1))[seen]
            out.append((submit["t"] - start) * 1000)
    return out


class BareSmpp:
    """The floor's SMS: one bound smpplib client, used from one thread at a time."""

    def __init__(self, smsc: Smsc) -> None:
        self.client = smpplib.client.Client("127.0.0.1", smsc.port, timeout=10,
                                            allow_unknown_opt_params=True)
        self.client.set_message_sent_handler(lambda pdu, **_: None)
        self.client.connect()
        self.client.bind_transceiver(system_id=smsc.system_id, password=smsc.password)
        self.lock = threading.Lock()

    def send(self, text: str) -> None:
        parts, coding, esm = smpplib.gsm.make_parts(text)
        with self.lock:
            for part in parts:
                self.client.send_message(
                    source_addr_ton=c.SMPP_TON_ALNUM, source_addr="nohold",
                    dest_addr_ton=c.SMPP_TON_INTL, destination_addr=MOBILE.lstrip("+"),
                    short_message=part, data_coding=coding, esm_class=esm,
                    registered_delivery=True)
                self.client.read_once()  # its submit_sm_resp

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.unbind()
        self.client.disconnect()


async def floor_server(smsc: Smsc) -> tuple[str, Callable[[], Awaitable[None]]]:
    bare = await asyncio.to_thread(BareSmpp, smsc)

    async def receive(request: web.Request) -> web.Response:
        data = json.loads(await request.read())
        await asyncio.to_thread(bare.send, f"ticket {data['id']}: {data['text']}")
        return web.json_response({"ok": True}, status=201)

    app = web.Application()
    app.add_routes([web.post("/floor", receive)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def stop() -> None:
        await runner.cleanup()
        await asyncio.to_thread(bare.close)
    return f"http://127.0.0.1:{port}/floor", stop


async def nohold_server(smsc: Smsc, workdir: Path
                        ) -> tuple[str, Callable[[], Awaitable[None]]]:
    url = f"sqlite:///{workdir}/nohold.db"
    await upgrade_async(url)
    engine = make_engine(url)
    settings = parse_settings({
        "http": {"enabled": True, "token": TOKEN},
        "tickets": {"enabled": True, "secret": SECRET},
        "alerts": {"enabled": True, "tickets": "all", "people": {"jan": {"mobile": MOBILE}},
                   "fallback": ["jan"]},
        "sms": {"enabled": True,
                "smpp": {"host": "127.0.0.1", "port": smsc.port,
                         "system_id": smsc.system_id, "password": smsc.password}}})
    alerts = settings.section(AlertSettings)
    signals = Signals()
    escalator: list[Escalator] = []

    async def inbound(msg: Inbound) -> None:
        await escalator[0].on_inbound(msg)

    gateway = SmppGateway(target(settings.sms.smpp), inbound)
    escalator.append(Escalator(alerts, AlertStore(engine), TicketStore(engine), gateway,
                               signals=signals))
    intake = Intake(TicketStore(engine), settings.section(TicketSettings),
                    on_ticket=lambda: signals.notify(Signals.TICKET))
    server = HttpServer(webhook.routes(intake), TOKEN)
    await gateway.start()
    assert await gateway.wait_bound(10)
    await server.start("127.0.0.1", 0)
    loop = asyncio.create_task(escalator[0].run())

    async def stop() -> None:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await server.close()
        await escalator[0].close()
        await gateway.close()
        await engine.dispose()
    return f"http://127.0.0.1:{server.port}{webhook.PATH}", stop


async def run(tickets: int) -> None:
    async with Smsc.start() as smsc:
        with tempfile.TemporaryDirectory(prefix="nohold-bench-") as tmp:
            floor_url, stop_floor = await floor_server(smsc)
            nohold_url, stop_nohold = await nohold_server(smsc, Path(tmp))
            try:
                await measure(smsc, floor_url, 10, 0)  # warm up both
                await measure(smsc, nohold_url, 10, 10_000)
                floor: list[float] = []
                ours: list[float] = []
                # Interleaved in blocks, so a busy moment of the machine hits both.
                for block in range(4):
                    floor += await measure(smsc, floor_url, tickets // 4, 1000 * block)
                    ours += await measure(smsc, nohold_url, tickets // 4,
                                          20_000 + 1000 * block)
            finally:
                await stop_nohold()
                await stop_floor()
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    n50, n99 = percentile(ours, 50), percentile(ours, 99)
    print(f"webhook POST -> submit_sm at the SMSC, {len(ours)} tickets one at a time")
    print(f"floor  (bare aiohttp + bare smpplib): p50 {f50:7.2f} ms  p99 {f99:7.2f} ms")
    print(f"nohold (webhook, store, alerts loop): p50 {n50:7.2f} ms  p99 {n99:7.2f} ms")
    print(f"nohold / floor: p50 {n50 / f50:.1f}x (+{n50 - f50:.1f} ms), "
          f"p99 {n99 / f99:.1f}x (+{n99 - f99:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(max(args.tickets, 4)))


if __name__ == "__main__":
    main()
