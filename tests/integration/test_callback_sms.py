"""The callers' SMS about their callbacks (issue 10 §5) on SQLite and PostgreSQL, sent to
a real SMSC (node-smpp, tests/support/smsc.py) through nohold's own SMPP link: one
confirmation with the number that will call and the window, one more when a closure
moves it, a reminder before an agreed time; never twice across passes, nodes or a
sender that died mid-send; never to a number on the do-not-call list or outside the
allow-list; retried while the SMSC refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.ari_apps.callbacks.booking import Request, schedule
from nohold.ari_apps.callbacks.notices import SmsNotices
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb import sms as rows
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.sms import SmsOutbox
from nohold.decisions.hours import Calendar, Window
from nohold.registry import parse_settings
from nohold.sms.outbox import LEASE, Sender
from nohold.sms.smpp import SmppGateway, target
from tests.support.smsc import Smsc

WARSAW = ZoneInfo("Europe/Warsaw")
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=WARSAW)
CUSTOMER = "+48601000001"
COMPANY = "+48221234567"


class Calendars:
    def __init__(self) -> None:
        days = {d: (Window(8 * 60, 18 * 60),) for d in range(6)}
        self.calendar = Calendar("office", days, WARSAW)
        self.default = "office"
        self.names = ("office",)

    async def get(self, name: str | None = None) -> Calendar:
        return self.calendar


def settings(**sms: object) -> CallbackSettings:
    return parse_settings({"callbacks": {
        "queues": ["tech"], "allowed_numbers": ["PL:mobile"], "caller_id": COMPANY,
        "sms": {"confirm": "Oddzwonimy z {number} {date} {from}-{to}",
                "date_format": "%d.%m", **sms}}}).section(CallbackSettings)


@dataclass
class Node:
    notices: SmsNotices
    sender: Sender


@dataclass
class Bed:
    smsc: Smsc
    store: CallbackStore
    outbox: SmsOutbox
    engine: object
    gateway: SmppGateway
    calendars: Calendars = field(default_factory=Calendars)
    now: datetime = MONDAY
    cb: CallbackSettings = field(default_factory=settings)

    def node(self, name: str) -> Node:
        return Node(SmsNotices(self.cb, self.store, self.outbox, self.calendars,
                               clock=lambda: self.now),
                    Sender(SmsOutbox(self.engine, name), self.gateway,  # type: ignore[arg-type]
                           clock=lambda: self.now))

    async def book(self, at: datetime, number: str = CUSTOMER) -> int:
        record, _ = await schedule(self.store, self.cb, self.calendars,
                                   Request(number=number, at=at.replace(tzinfo=None),
                                           window=timedelta(minutes=30)),
                                   now=self.now, call_id="c-1")
        return record.id

    async def run(self, node: Node) -> int:
        """One pass of both halves; how many messages the SMSC got in all."""
        await node.notices.tick()
        await node.sender.pass_once()
        return len(self.smsc.of("submit"))


@pytest.fixture
async def bed(db_url: str) -> AsyncIterator[Bed]:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    async with Smsc.start() as smsc:
        sms = parse_settings({"sms": {"enabled": True, "smpp": {
            "host": "127.0.0.1", "port": smsc.port, "system_id": smsc.system_id,
            "password": smsc.password, "source": "ISP"}}}).sms
        gateway = SmppGateway(target(sms.smpp))
        b = Bed(smsc, CallbackStore(engine, "node-a"), SmsOutbox(engine, "node-a"), engine,
                gateway)
        await gateway.start()
        assert await gateway.wait_bound(10)
        try:
            yield b
        finally:
            await gateway.close()
            await engine.dispose()


async def test_a_booked_callback_is_confirmed_once_with_number_and_window(bed: Bed):
    node = bed.node("node-a")
    await bed.book(MONDAY.replace(hour=14))
    assert await bed.run(node) == 1
    submit = bed.smsc.of("submit")[0]
    assert (submit["to"], submit["from"], submit["text"]) == (
        CUSTOMER.lstrip("+"), "ISP", f"Oddzwonimy z {COMPANY} 07.12 14:00-14:30")
    for _ in range(3):
        assert await bed.run(node) == 1
    [row] = await bed.outbox.find()
    assert (row.state, row.kind, row.message_id) == (rows.SENT, "confirm", submit["message_id"])
    # The SMSC's delivery report lands on the message.
    await bed.smsc.command(cmd="receipt", message_id=submit["message_id"], stat="DELIVRD")
    await bed.smsc.next_event("deliver_resp")
    [row] = await bed.outbox.find()
    assert row.state == rows.DELIVERED


async def test_a_moved_window_is_told_and_the_reminder_is_for_the_new_one(bed: Bed):
    node = bed.node("node-a")
    cid = await bed.book(MONDAY.replace(hour=14))
    assert await bed.run(node) == 1
    record = await bed.store.get(cid)
    assert record is not None
    tuesday = MONDAY.replace(day=8, hour=10)
    assert await bed.store.move_agreed(record, tuesday, tuesday + timedelta(minutes=30),
                                       "closed-holiday", bed.now)
    assert await bed.run(node) == 2
    assert bed.smsc.of("submit")[1]["text"].startswith(
        f"Your callback has moved: we will call you from {COMPANY} on 08.12 between 10:00")
    bed.now = tuesday - timedelta(minutes=20)
    assert await bed.run(node) == 2  # not yet
    bed.now = tuesday - timedelta(minutes=15)
    assert await bed.run(node) == 3
    assert bed.smsc.of("submit")[2]["text"].startswith("Reminder: we will call you from")
    bed.now = tuesday - timedelta(minutes=5)
    assert await bed.run(node) == 3


async def test_two_nodes_send_each_message_once(bed: Bed):
    a, b = bed.node("node-a"), bed.node("node-b")
    await bed.book(MONDAY.replace(hour=14))
    await a.notices.tick()
    await b.notices.tick()
    await b.sender.pass_once()
    await a.sender.pass_once()
    assert await bed.run(a) == 1 and await bed.run(b) == 1


async def test_a_sender_that_died_mid_send_is_replaced_after_its_lease(bed: Bed):
    a, b = bed.node("node-a"), bed.node("node-b")
    await bed.book(MONDAY.replace(hour=14))
    await a.notices.tick()
    # node-a claims it and dies before the SMSC answers (its claim is all that is left).
    assert len(await SmsOutbox(bed.engine, "node-a").claim(bed.now, LEASE)) == 1  # type: ignore[arg-type]
    assert await bed.run(b) == 0  # leased to node-a
    bed.now += LEASE + timedelta(seconds=1)
    assert await bed.run(b) == 1
    [row] = await bed.outbox.find()
    assert (row.state, row.holder, row.attempts) == (rows.SENT, "node-b", 2)


async def test_no_sms_to_a_number_on_the_do_not_call_list_or_no_longer_allowed(bed: Bed):
    node = bed.node("node-a")
    await bed.book(MONDAY.replace(hour=14))
    await bed.store.dnc_add(CUSTOMER, bed.now, "asked not to be called")
    assert await bed.run(node) == 0
    await bed.store.dnc_remove(CUSTOMER)
    bed.cb = parse_settings({"callbacks": {"queues": ["tech"], "caller_id": COMPANY,
                                           "allowed_numbers": ["PL:fixed_line"]}}
                            ).section(CallbackSettings)
    assert await bed.run(bed.node("node-a")) == 0
    assert await bed.outbox.find() == []


async def test_a_refusing_smsc_is_asked_again_later_and_a_passed_window_is_not_sent(bed: Bed):
    node = bed.node("node-a")
    await bed.book(MONDAY.replace(hour=14))
    await bed.smsc.command(cmd="submit_status", status=0x58)  # throttled
    assert await bed.run(node) == 1
    [row] = await bed.outbox.find()
    assert (row.state, row.attempts) == (rows.QUEUED, 1) and "SMSC refused" in row.detail
    await bed.smsc.command(cmd="submit_status", status=0)
    assert await bed.run(node) == 1  # its retry is not due yet
    bed.now = row.next_try_at  # type: ignore[assignment]
    assert await bed.run(node) == 2
    [row] = await bed.outbox.find()
    assert row.state == rows.SENT

    # A second callback whose window passes while the SMSC refuses is never sent late.
    await bed.book(MONDAY.replace(hour=15), number="+48601000002")
    await bed.smsc.command(cmd="submit_status", status=0x58)
    assert await bed.run(node) == 3
    bed.now = MONDAY.replace(hour=15, minute=31)
    await bed.smsc.command(cmd="submit_status", status=0)
    await node.sender.pass_once()
    assert len(bed.smsc.of("submit")) == 3
    states = {r.to_number: r.state for r in await bed.outbox.find()}
    assert states == {CUSTOMER: rows.SENT, "+48601000002": rows.EXPIRED}


async def test_a_window_promised_on_the_phone_with_microseconds_is_confirmed_once(bed: Bed):
    node = bed.node("node-a")
    start = bed.now.replace(minute=17, second=3, microsecond=734_512)
    await bed.store.request(call_id="c-9", number=CUSTOMER, queue="tech", arrived_at=bed.now,
                            now=bed.now, promised=(start, start + timedelta(minutes=20)),
                            expires_at=bed.now + timedelta(hours=4))
    for _ in range(3):
        assert await bed.run(node) == 1
    assert [r.kind for r in await bed.outbox.find()] == ["confirm"]


async def test_a_message_still_queued_when_its_callback_is_made_or_the_number_barred_is_withdrawn(
        bed: Bed):
    node = bed.node("node-a")
    first = await bed.book(MONDAY.replace(hour=14))
    await bed.book(MONDAY.replace(hour=15), number="+48601000002")
    await bed.smsc.command(cmd="submit_status", status=0x58)  # the SMSC refuses for now
    assert await bed.run(node) == 2
    await bed.store.cancel(first, bed.now, reason="made by phone")
    await bed.store.dnc_add("+48601000002", bed.now, "asked")
    await bed.smsc.command(cmd="submit_status", status=0)
    bed.now += timedelta(minutes=10)  # every retry is due
    assert await bed.run(node) == 2  # nothing more reached the SMSC
    assert {r.to_number: r.state for r in await bed.outbox.find()} == {
        CUSTOMER: rows.WITHDRAWN, "+48601000002": rows.WITHDRAWN}


async def test_no_sms_to_a_landline_even_when_it_may_be_dialled(bed: Bed):
    bed.cb = parse_settings({"callbacks": {
        "queues": ["tech"], "caller_id": COMPANY,
        "allowed_numbers": ["PL:mobile", "PL:fixed_line"]}}).section(CallbackSettings)
    await bed.book(MONDAY.replace(hour=14), number="+48221112233")
    assert await bed.run(bed.node("node-a")) == 0
    assert await bed.outbox.find() == []
