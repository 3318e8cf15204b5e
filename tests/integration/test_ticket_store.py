"""The ticket store (callbackdb/tickets.py) on SQLite and PostgreSQL: one ticket per
partner id whatever repeats, races and replays, updates that keep what was not said,
the history, and the state machine with guarded updates."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.models import Base
from nohold.callbackdb.tickets import NoSuchTicket, NotAllowed, Outcome, Replayed, TicketStore
from nohold.decisions.tickets import Category, Report, State, Urgency

NOW = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
REPORT = Report(partner_id="T-1", caller="+48601234567", category=Category.OUTAGE,
                text="No internet", urgency=Urgency.URGENT, customer="10042",
                call_id="1741377600.42", reported_at=NOW - timedelta(minutes=3))




async def test_the_migration_makes_the_tables_the_models_describe(ticket_store):
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        found = compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)
        return [d for d in found if "ticket" in repr(d)]

    async with ticket_store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_a_report_creates_an_open_ticket_with_its_history(ticket_store):
    record, outcome, changed = await ticket_store.report(REPORT, via="webhook", now=NOW)
    assert (outcome, changed) == (Outcome.CREATED, ())
    assert (record.partner_id, record.channel, record.caller, record.customer,
            record.category, record.urgency, record.call_id, record.state,
            record.reports) == ("T-1", "webhook", "+48601234567", "10042", Category.OUTAGE,
                                Urgency.URGENT, "1741377600.42", State.OPEN, 1)
    assert record.reported_at == NOW - timedelta(minutes=3)
    assert record.received_at == record.updated_at == NOW
    assert record.reported_at.tzinfo is not None
    assert await ticket_store.get(record.id) == record == await ticket_store.by_partner_id("T-1")
    (event,) = await ticket_store.events(record.id)
    assert (event.kind, event.via, event.note) == ("reported", "webhook", "outage urgent")


async def test_unsaid_urgency_is_normal_and_reported_at_is_the_arrival(ticket_store):
    bare = Report(partner_id="T-2", caller="", category=Category.OTHER, text="?")
    record, _, _ = await ticket_store.report(bare, via="email", now=NOW)
    assert (record.urgency, record.reported_at, record.caller, record.customer,
            record.call_id) == (Urgency.NORMAL, NOW, "", "", "")


async def test_a_repeat_updates_never_duplicates_and_keeps_what_it_leaves_out(ticket_store):
    first, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW)
    later = NOW + timedelta(minutes=1)
    repeat = Report(partner_id="T-1", caller="+48601234567", category=Category.FAULT,
                    text="No internet; modem rebooted, still down")  # no urgency, customer
    record, outcome, changed = await ticket_store.report(repeat, via="email", now=later)
    assert outcome is Outcome.UPDATED and changed == ("category", "text")
    assert record.id == first.id
    assert (record.category, record.text, record.urgency, record.customer, record.call_id,
            record.channel, record.reports, record.received_at, record.updated_at) == (
        Category.FAULT, "No internet; modem rebooted, still down", Urgency.URGENT, "10042",
        "1741377600.42", "webhook", 2, NOW, later)
    assert len(await ticket_store.find()) == 1
    events = await ticket_store.events(record.id)
    assert [(e.kind, e.via, e.note) for e in events] == [
        ("reported", "webhook", "outage urgent"),
        ("updated", "email", "category outage -> fault, text")]
    # The same content again: counted, nothing changes, no history line.
    record, outcome, changed = await ticket_store.report(repeat, via="email", now=later)
    assert (outcome, changed, record.reports, record.updated_at) == (
        Outcome.UNCHANGED, (), 3, later)
    assert len(await ticket_store.events(record.id)) == 2


async def test_racing_first_reports_of_one_ticket_make_one_ticket(db_url, ticket_store):
    other = TicketStore(make_engine(db_url))  # a second node
    try:
        texts = [replace(REPORT, text=f"text {i}") for i in range(10)]
        results = await asyncio.gather(*[
            (ticket_store if i % 2 else other).report(r, via="webhook", now=NOW)
            for i, r in enumerate(texts)])
    finally:
        await other.engine.dispose()
    assert [o for _, o, _ in results].count(Outcome.CREATED) == 1
    (only,) = await ticket_store.find()
    assert only.reports == 10


async def test_a_delivery_key_is_accepted_once_within_the_window(ticket_store):
    record, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW, delivery="k" * 64)
    with pytest.raises(Replayed) as exc:
        await ticket_store.report(replace(REPORT, text="changed"), via="webhook",
                           now=NOW + timedelta(seconds=30), delivery="k" * 64)
    assert exc.value.ticket_id == record.id
    # The refused replay wrote nothing.
    assert (await ticket_store.get(record.id)).text == "No internet"
    assert len(await ticket_store.events(record.id)) == 1
    # Past the window the key is forgotten (by the next delivery) - the signature's own
    # age check refuses such a request long before.
    await ticket_store.report(replace(REPORT, partner_id="T-9"), via="webhook",
                       now=NOW + timedelta(minutes=11), delivery="m" * 64,
                       keep=timedelta(minutes=10))
    assert await ticket_store.deliveries() == 1


async def test_a_failed_report_writes_nothing_not_even_its_delivery(ticket_store):
    bad = replace(REPORT, text="x" * 5000) if ticket_store.engine.dialect.name == "postgresql" \
        else replace(REPORT, category="nonsense")  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - the database's own refusal
        await ticket_store.report(bad, via="webhook", now=NOW, delivery="d" * 64)
    assert await ticket_store.find() == [] and await ticket_store.deliveries() == 0
    # The same delivery can come again and land.
    await ticket_store.report(REPORT, via="webhook", now=NOW, delivery="d" * 64)


async def test_ack_resolve_reopen_with_who_when_and_the_history(ticket_store):
    record, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW)
    t1, t2, t3, t4 = (NOW + timedelta(minutes=m) for m in (5, 6, 60, 70))
    acked, moved = await ticket_store.acknowledge(record.id, by="anna", via="sms", now=t1)
    assert moved and (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (
        State.ACKNOWLEDGED, "anna", t1)
    # A second acknowledgement changes nothing: the first one is kept.
    again, moved = await ticket_store.acknowledge(record.id, by="bob", via="call", now=t2)
    assert not moved and (again.acknowledged_by, again.acknowledged_at) == ("anna", t1)
    done = await ticket_store.resolve(record.id, by="anna", via="cli", note="fibre spliced", now=t3)
    assert (done.state, done.resolved_by, done.resolved_at, done.resolution) == (
        State.RESOLVED, "anna", t3, "fibre spliced")
    with pytest.raises(NotAllowed, match="resolved already"):
        await ticket_store.resolve(record.id, by="anna", via="cli", note="again", now=t3)
    back = await ticket_store.reopen(record.id, by="agent", via="cli", note="still down", now=t4)
    assert (back.state, back.reopened, back.acknowledged_by, back.resolved_at,
            back.resolution) == (State.OPEN, 1, "", None, "")
    with pytest.raises(NotAllowed, match="not resolved"):
        await ticket_store.reopen(record.id, by="agent", via="cli", note="x", now=t4)
    assert [(e.kind, e.via, e.actor, e.note) for e in await ticket_store.events(record.id)] == [
        ("reported", "webhook", "", "outage urgent"),
        ("acknowledged", "sms", "anna", ""),
        ("resolved", "cli", "anna", "fibre spliced"),
        ("reopened", "cli", "agent", "still down")]


async def test_resolving_an_open_ticket_acknowledges_it_too(ticket_store):
    record, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW)
    done = await ticket_store.resolve(record.id, by="anna", via="cli", note="ok", now=NOW)
    assert (done.acknowledged_by, done.acknowledged_at) == ("anna", NOW)


async def test_racing_acknowledgements_move_it_once(db_url, ticket_store):
    record, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW)
    other = TicketStore(make_engine(db_url))
    try:
        results = await asyncio.gather(*[
            (ticket_store if i % 2 else other).acknowledge(record.id, by=f"p{i}", via="sms",
                                                           now=NOW)
            for i in range(8)])
    finally:
        await other.engine.dispose()
    assert [moved for _, moved in results].count(True) == 1
    assert [e.kind for e in await ticket_store.events(record.id)].count("acknowledged") == 1


async def test_unknown_ticket_and_find_by_state(ticket_store):
    with pytest.raises(NoSuchTicket):
        await ticket_store.acknowledge(99, by="x", via="cli", now=NOW)
    a, _, _ = await ticket_store.report(REPORT, via="webhook", now=NOW)
    b, _, _ = await ticket_store.report(replace(REPORT, partner_id="T-2"), via="webhook",
                                 now=NOW + timedelta(seconds=1))
    await ticket_store.resolve(a.id, by="x", via="cli", note="", now=NOW)
    assert [t.id for t in await ticket_store.find()] == [b.id, a.id]  # newest first
    assert [t.id for t in await ticket_store.find([State.OPEN])] == [b.id]
    assert [t.id for t in await ticket_store.find([State.RESOLVED, State.ACKNOWLEDGED])] == [a.id]
    assert [t.id for t in await ticket_store.find(limit=1)] == [b.id]
