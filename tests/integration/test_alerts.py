"""The on-duty alerts against a real SMSC (node-smpp's server, tests/support/smsc.py) and
a real database (SQLite and PostgreSQL): the escalation order and rounds, each step
sent once whatever the nodes, replies that acknowledge, delivery reports, an SMSC that
is down, a sender that died mid-send.

The clock is the test's: each `tick` is one pass of the loop at a chosen instant, and
a tick returns only after the SMSC answered what it sent, so what the SMSC saw is
counted, never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from nohold.alerts.escalator import LEASE, Escalator
from nohold.alerts.settings import AlertSettings
from nohold.callbackdb.alerts import AlertStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from nohold.decisions.escalation import Step, Via
from nohold.decisions.tickets import Category, Report, State, Urgency
from nohold.registry import parse_settings
from nohold.sms.link import Inbound
from nohold.sms.smpp import SmppGateway, target
from tests.support.smsc import Smsc

T0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
ACK = timedelta(minutes=5)
JAN, EWA = "48601000001", "48601000002"  # as the SMSC writes them: digits, no +


@dataclass
class Bed:
    smsc: Smsc
    tickets: TicketStore
    alerts: AlertStore
    escalator: Escalator
    gateway: SmppGateway
    now: datetime = T0

    async def tick(self, at: datetime) -> None:
        self.now = at
        await self.escalator.tick()

    async def ticket(self, partner_id: str = "P-1", urgency: Urgency = Urgency.URGENT
                     ) -> int:
        record, _, _ = await self.tickets.report(
            Report(partner_id=partner_id, caller="+48221234567", category=Category.OUTAGE,
                   text="No internet in Zalesie", urgency=urgency, customer="10042"),
            via="webhook", now=self.now)
        return record.id

    def sent_to(self) -> list[str]:
        return [e["to"] for e in self.smsc.of("submit")]

    async def reply(self, sender: str, text: str) -> None:
        """A technician's SMS; returns once nohold answered the deliver_sm (it answers
        only after storing what it meant)."""
        mark = len(self.smsc.events) - 1
        await self.smsc.command(cmd="mo", **{"from": sender, "text": text})
        resp = await self.smsc.next_event("deliver_resp", after=mark)
        assert resp["status"] == 0, resp


def settings(smsc: Smsc, **extra: object) -> AlertSettings:
    raw = {"enabled": True, "ack_within": ACK.total_seconds(), "rounds": 2,
           "tickets": "all",
           "people": {"jan": {"mobile": "+" + JAN}, "ewa": {"mobile": "+" + EWA}},
           "fallback": ["ewa", "jan"]}
    raw.update(extra)
    return parse_settings({"alerts": raw, "sms": sms_config(smsc)}).section(AlertSettings)


def sms_config(smsc: Smsc) -> dict[str, object]:
    return {"enabled": True,
            "smpp": {"host": "127.0.0.1", "port": smsc.port, "system_id": smsc.system_id,
                     "password": smsc.password, "source": "nohold"}}


@pytest.fixture
async def bed(db_url: str) -> AsyncIterator[Bed]:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    async with Smsc.start() as smsc:
        holder: list[Escalator] = []

        async def inbound(msg: Inbound) -> None:
            await holder[0].on_inbound(msg)

        s = settings(smsc)
        gateway = SmppGateway(target(parse_settings({'sms': sms_config(smsc)}).sms.smpp),
                              inbound)
        b = Bed(smsc, TicketStore(engine), AlertStore(engine), None, gateway)  # type: ignore[arg-type]
        b.escalator = Escalator(s, b.alerts, b.tickets, gateway, clock=lambda: b.now,
                                node="node-a")
        holder.append(b.escalator)
        await gateway.start()
        assert await gateway.wait_bound(10)
        try:
            yield b
        finally:
            await b.escalator.close()
            await gateway.close()
            await engine.dispose()


async def test_the_first_on_duty_is_texted_at_once_then_the_next_each_ack_within(bed):
    tid = await bed.ticket()
    await bed.tick(T0)
    assert bed.sent_to() == [EWA]
    (sms,) = bed.smsc.of("submit")
    assert sms["text"] == (f"nohold #{tid} URGENT outage from +48221234567 (customer "
                           f"10042): No internet in Zalesie Reply {tid} to acknowledge.")
    assert (sms["from"], sms["registered_delivery"]) == ("nohold", 1)
    await bed.tick(T0 + ACK - timedelta(seconds=1))
    await bed.tick(T0 + ACK - timedelta(seconds=1))
    assert bed.sent_to() == [EWA]  # nothing early, nothing twice
    for n in range(1, 4):
        await bed.tick(T0 + n * ACK)
        await bed.tick(T0 + n * ACK)
    assert bed.sent_to() == [EWA, JAN, EWA, JAN]  # two rounds, each step once
    (run,) = await bed.alerts.runs(tid)
    assert run.state == "running"
    await bed.tick(T0 + 4 * ACK)
    (run,) = await bed.alerts.runs(tid)
    assert (run.state, run.why) == ("exhausted", "nobody acknowledged")
    steps = [(a.step, a.state, a.attempts) for a in await bed.alerts.alerts(tid)]
    assert steps == [("r1:sms:ewa", "sent", 1), ("r1:sms:jan", "sent", 1),
                     ("r2:sms:ewa", "sent", 1), ("r2:sms:jan", "sent", 1)]
    await bed.tick(T0 + 10 * ACK)
    assert len(bed.sent_to()) == 4


async def test_a_reply_acknowledges_the_ticket_and_stops_the_alerts(bed):
    tid = await bed.ticket()
    await bed.tick(T0)
    (first,) = bed.smsc.of("submit")
    await bed.reply(EWA, f"ACK {tid}")
    ticket = await bed.tickets.get(tid)
    assert ticket is not None
    assert (ticket.state, ticket.acknowledged_by) == (State.ACKNOWLEDGED, "ewa")
    (event,) = [e for e in await bed.tickets.events(tid) if e.kind == "acknowledged"]
    assert (event.via, event.actor) == ("sms", "ewa")
    confirmation = await bed.smsc.count("submit", 2)
    assert (confirmation[1]["to"], confirmation[1]["text"]) == (
        EWA, f"nohold #{tid} acknowledged by ewa. Alerts stopped.")
    await bed.tick(T0 + ACK)
    await bed.tick(T0 + 5 * ACK)
    assert bed.sent_to() == [EWA, EWA]  # the alert and the confirmation, nothing else
    (run,) = await bed.alerts.runs(tid)
    assert (run.state, run.why) == ("stopped", "acknowledged")
    # the SMSC's delivery report lands on the alert it is about
    mark = len(bed.smsc.events) - 1
    await bed.smsc.command(cmd="receipt", message_id=first["message_id"], stat="DELIVRD")
    await bed.smsc.next_event("deliver_resp", after=mark)
    (alert,) = await bed.alerts.alerts(tid)
    assert (alert.state, alert.message_id, alert.detail) == (
        "delivered", first["message_id"], "DELIVRD")


async def test_a_bare_ok_acknowledges_the_latest_alerted_ticket_and_strangers_are_ignored(bed):
    older = await bed.ticket("P-1")
    await bed.tick(T0)
    newer = await bed.ticket("P-2")
    await bed.tick(T0 + timedelta(seconds=5))
    assert bed.sent_to() == [EWA, EWA]
    await bed.reply("48999000111", "ok")  # not one of the people
    await bed.reply(JAN, "ok")  # jan was alerted about nothing yet
    texts = [e["text"] for e in await bed.smsc.count("submit", 3)]
    assert texts[2].startswith("nohold: not understood")
    await bed.reply(EWA, "ok")
    await bed.smsc.count("submit", 4)
    states = [(await bed.tickets.get(t)).state for t in (older, newer)]  # type: ignore[union-attr]
    assert states == [State.OPEN, State.ACKNOWLEDGED]
    await bed.reply(EWA, f"{newer}")  # again: said, not moved twice
    last = (await bed.smsc.count("submit", 5))[-1]
    assert last["text"] == f"nohold #{newer} is acknowledged already (by ewa)."


async def test_a_normal_ticket_while_the_policy_wants_urgent_ones_alerts_nobody(bed):
    bed.escalator._s = settings(bed.smsc, tickets="urgent")
    tid = await bed.ticket(urgency=Urgency.NORMAL)
    await bed.tick(T0)
    await bed.tick(T0 + 3 * ACK)
    assert bed.sent_to() == []
    (run,) = await bed.alerts.runs(tid)
    assert run.state == "not_alerted"


async def test_an_smsc_that_refuses_us_gets_the_alert_once_it_is_back(bed):
    await bed.smsc.command(cmd="refuse_binds", value=True)
    await bed.smsc.command(cmd="drop")
    await bed.smsc.next_event("closed")
    tid = await bed.ticket()
    await bed.tick(T0)
    (alert,) = await bed.alerts.alerts(tid)
    # "not connected" once the link's thread saw the drop; "lost" if the send raced it
    assert alert.detail in ("SMSC not connected", "SMSC connection lost")
    assert (alert.state, alert.next_try_at) == ("retry", T0 + timedelta(seconds=5))
    await bed.tick(T0 + timedelta(seconds=4))
    assert bed.sent_to() == []
    await bed.smsc.command(cmd="refuse_binds", value=False)
    assert await bed.gateway.wait_bound(20)
    await bed.tick(T0 + timedelta(seconds=6))
    await bed.tick(T0 + timedelta(seconds=7))
    assert bed.sent_to() == [EWA]
    (alert,) = await bed.alerts.alerts(tid)
    assert (alert.state, alert.attempts) == ("sent", 2)


async def test_a_throttling_smsc_is_retried_with_growing_pauses(bed):
    await bed.smsc.command(cmd="submit_status", status=0x58)
    tid = await bed.ticket()
    await bed.tick(T0)
    await bed.tick(T0 + timedelta(seconds=5))
    (alert,) = await bed.alerts.alerts(tid)
    assert (alert.state, alert.attempts) == ("retry", 2)
    assert alert.next_try_at == T0 + timedelta(seconds=15)
    assert "Throttling" in alert.detail
    await bed.smsc.command(cmd="submit_status", status=0)
    await bed.tick(T0 + timedelta(seconds=15))
    assert [e["status"] for e in bed.smsc.of("submit")] == [0x58, 0x58, 0]
    (alert,) = await bed.alerts.alerts(tid)
    assert (alert.state, alert.attempts) == ("sent", 3)


async def test_a_sender_that_died_mid_send_is_taken_over_after_its_lease(bed):
    tid = await bed.ticket()
    run = await bed.alerts.start_run(tid, 0, T0, ("ewa", "jan"))
    assert run is not None
    # node-b claimed the first step and died before it could send or say so
    first = Step(1, "ewa", Via.SMS, T0)
    assert await bed.alerts.claim(tid, 0, first, "+" + EWA, "node-b", T0, LEASE)
    await bed.tick(T0 + LEASE - timedelta(seconds=1))
    assert bed.sent_to() == []  # its lease still holds
    await bed.tick(T0 + LEASE + timedelta(seconds=1))
    await bed.tick(T0 + LEASE + timedelta(seconds=2))
    assert bed.sent_to() == [EWA]
    (alert,) = await bed.alerts.alerts(tid)
    assert (alert.state, alert.attempts) == ("sent", 2)


async def test_two_nodes_ticking_together_send_each_step_once(bed):
    other = Escalator(bed.escalator._s, bed.alerts, bed.tickets, bed.gateway,
                      clock=lambda: bed.now, node="node-b")
    tids = [await bed.ticket(f"P-{i}") for i in range(5)]
    for at in (T0, T0 + ACK, T0 + 2 * ACK):
        bed.now = at
        await asyncio.gather(bed.escalator.tick(), other.tick(), bed.escalator.tick())
    assert sorted(bed.sent_to()) == sorted([EWA, JAN, EWA] * 5)
    for tid in tids:
        assert [a.step for a in await bed.alerts.alerts(tid)] == [
            "r1:sms:ewa", "r1:sms:jan", "r2:sms:ewa"]


async def test_the_migration_makes_the_tables_the_models_describe(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from nohold.callbackdb.models import Base

    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        def diff(sync_conn):  # type: ignore[no-untyped-def]
            found = compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)
            return [d for d in found if "alert" in repr(d)]

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()
