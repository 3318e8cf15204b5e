"""The follow-up call of a resolved ticket (issue 10 §4) on SQLite and PostgreSQL: booked
as a scheduled callback on the right working day, once whatever the passes, carrying
the ticket in its note; the agent's answer recorded once; "not fixed" reopens the
ticket (and so alerts again); an expired callback makes it unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from nohold.ari_apps.callbacks.followup import FollowUps
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.followups import FollowUpStore
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from nohold.cli import main
from nohold.decisions.hours import Calendar, Window
from nohold.decisions.tickets import Category, Report, State
from nohold.registry import parse_settings

WARSAW = ZoneInfo("Europe/Warsaw")
MONDAY = datetime(2026, 12, 7, 15, 0, tzinfo=WARSAW)  # a Monday
DAY = (Window(8 * 60, 21 * 60),)


class Calendars:
    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.default = calendar.name
        self.names = (calendar.name,)

    async def get(self, name: str | None = None) -> Calendar:
        return self.calendar


@dataclass
class Bed:
    url: str
    tickets: TicketStore
    callbacks: CallbackStore
    followups: FollowUpStore
    now: datetime = MONDAY

    def loop(self, calendar: Calendar) -> FollowUps:
        cb = parse_settings({"callbacks": {
            "queues": ["tech"], "allowed_numbers": ["PL:mobile"],
            "followup": {"enabled": True, "after_working_days": 2,
                         "window": "10:00-12:00"}}}).section(CallbackSettings)
        return FollowUps(cb, self.callbacks, self.followups, Calendars(calendar),
                         clock=lambda: self.now)

    async def resolved(self, partner_id: str = "P-1", caller: str = "+48601000001") -> int:
        record, _, _ = await self.tickets.report(
            Report(partner_id=partner_id, caller=caller, category=Category.FAULT,
                   text="No internet"), via="webhook", now=self.now - timedelta(hours=5))
        await self.tickets.resolve(record.id, by="jan", via="cli", note="fibre spliced",
                                   now=self.now)
        return record.id


@pytest.fixture
async def bed(db_url: str) -> AsyncIterator[Bed]:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        yield Bed(db_url, TicketStore(engine), CallbackStore(engine, "node-a"),
                  FollowUpStore(engine))
    finally:
        await engine.dispose()


def six_days() -> Calendar:
    return Calendar("desk", {d: DAY for d in range(6)}, WARSAW)


async def test_resolved_on_monday_is_called_on_wednesday_in_the_window_once(bed):
    tid = await bed.resolved()
    loop = bed.loop(six_days())
    bed.now = MONDAY + timedelta(minutes=1)
    await loop.tick()
    await loop.tick()
    (f,) = await bed.followups.of_ticket(tid)
    assert (f.state, f.resolution) == ("scheduled", 0)
    (cb,) = await bed.callbacks.find()
    assert cb.id == f.callback_id and cb.scheduled
    assert (cb.number, cb.queue, cb.call_id) == ("+48601000001", "tech", f"followup-{tid}-0")
    assert cb.due_at == datetime(2026, 12, 9, 10, 0, tzinfo=WARSAW) == f.due_at
    assert cb.expires_at == datetime(2026, 12, 9, 12, 0, tzinfo=WARSAW)
    assert cb.note == f"Follow-up of ticket #{tid}: fibre spliced"


async def test_a_closed_day_is_not_counted(bed):
    tid = await bed.resolved()
    no_tuesday = Calendar("desk", {d: DAY for d in (0, 2, 3, 4, 5)}, WARSAW)
    await bed.loop(no_tuesday).tick()
    (f,) = await bed.followups.of_ticket(tid)
    assert f.due_at == datetime(2026, 12, 10, 10, 0, tzinfo=WARSAW)  # Thursday


async def test_a_ticket_without_a_callable_number_gets_no_call_and_says_why(bed):
    tid = await bed.resolved("P-2", caller="")
    other = await bed.resolved("P-3", caller="+48221234567")  # a fixed line: not allowed
    await bed.loop(six_days()).tick()
    (f,) = await bed.followups.of_ticket(tid)
    assert f.state == "not_scheduled" and f.detail.startswith("number:")
    (g,) = await bed.followups.of_ticket(other)
    assert g.state == "not_scheduled" and "+48221234567" in g.detail
    assert await bed.callbacks.find() == []


async def test_an_expired_callback_makes_the_follow_up_unreachable(bed):
    tid = await bed.resolved()
    loop = bed.loop(six_days())
    await loop.tick()
    (f,) = await bed.followups.of_ticket(tid)
    assert f.callback_id is not None
    await bed.callbacks.cancel(f.callback_id, bed.now, reason="expired")
    (cb,) = await bed.callbacks.find()
    if cb.state != "expired":  # cancel() names its state; expiry is what the rules do
        from sqlalchemy import update

        from nohold.callbackdb.models import Callback
        async with bed.callbacks.engine.begin() as conn:
            await conn.execute(update(Callback).values(state="expired"))
    await loop.tick()
    (f,) = await bed.followups.of_ticket(tid)
    assert (f.state, f.answered_by) == ("unreachable", "nohold")


async def test_not_fixed_reopens_the_ticket_and_its_next_resolution_gets_its_own_call(
        bed, tmp_path):
    tid = await bed.resolved()
    loop = bed.loop(six_days())
    await loop.tick()
    config = tmp_path / "nohold.toml"
    config.write_text(f'[database]\nurl = "{bed.url}"\n')

    async def nohold(*args: str):  # type: ignore[no-untyped-def]
        # The CLI runs its own event loop, as it does for an agent at a shell.
        return await asyncio.to_thread(CliRunner().invoke, main,
                                       ["--config", str(config), *args])

    said = await nohold("tickets", "followup", str(tid), "not-fixed", "--note", "still down",
                  "--by", "agent-a")
    assert said.exit_code == 0, said.output
    assert "reopened, the technician on duty is alerted again" in said.output
    ticket = await bed.tickets.get(tid)
    assert ticket is not None and (ticket.state, ticket.reopened) == (State.OPEN, 1)
    (f,) = await bed.followups.of_ticket(tid)
    assert (f.state, f.answered_by, f.detail) == ("not_fixed", "agent-a", "still down")
    (call,) = await bed.callbacks.find()  # answered before it was made: not needed
    assert (call.state, call.outcome) == ("cancelled", "follow-up answered")
    again = await nohold("tickets", "followup", str(tid), "fixed")
    assert again.exit_code == 1 and "no follow-up call waiting" in again.output
    # fixed for real this time: a second follow-up, for the second resolution
    bed.now = MONDAY + timedelta(days=1)
    await bed.tickets.resolve(tid, by="jan", via="cli", note="modem replaced", now=bed.now)
    await loop.tick()
    first, second = await bed.followups.of_ticket(tid)
    assert (second.resolution, second.state) == (1, "scheduled")
    assert second.due_at == datetime(2026, 12, 10, 10, 0, tzinfo=WARSAW)
    fixed = await nohold("tickets", "followup", str(tid), "fixed", "--by", "agent-b")
    assert fixed.exit_code == 0 and "follow-up fixed" in fixed.output
    assert (await bed.tickets.get(tid)).state is State.RESOLVED  # type: ignore[union-attr]


async def test_the_migration_makes_the_table_the_model_describes(bed):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from nohold.callbackdb.models import Base

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        found = compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)
        return [d for d in found if "followup" in repr(d)]

    async with bed.callbacks.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_the_agent_records_the_answer_over_the_http_api(bed):
    import aiohttp

    from nohold.http_server import HttpServer
    from nohold.tickets import api

    tid = await bed.resolved()
    await bed.loop(six_days()).tick()
    token = "followup-token-0123456789-abcdef"
    server = HttpServer(api.routes(bed.callbacks.engine), token)
    await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/v1/tickets/{tid}/followup"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as http:
            async def post(body, headers=auth, where=url):  # type: ignore[no-untyped-def]
                async with http.post(where, json=body, headers=headers) as resp:
                    return resp.status, await resp.json()

            assert (await post({"answer": "fixed"}, headers={}))[0] == 401
            status, body = await post({"answer": "maybe"})
            assert (status, body["error"], body["field"]) == (400, "bad_request", "answer")
            status, body = await post({"answer": "fixed", "by": ""})
            assert (status, body["field"]) == (400, "by")
            status, body = await post({"answer": "not_fixed", "by": "agent-a",
                                       "note": "still down"})
            assert status == 200 and body["reopened"] is True, body
            assert body["followup"]["state"] == "not_fixed"
            status, body = await post({"answer": "fixed", "by": "agent-a"})
            assert (status, body["error"]) == (404, "no_followup")
            for bad in ("x", "99999999999999999999", "0", "-1"):
                status, body = await post({"answer": "fixed"}, where=url.replace(
                    f"/tickets/{tid}/", f"/tickets/{bad}/"))
                assert (status, body["error"]) == (404, "not_found"), (bad, body)
    finally:
        await server.close()
    ticket = await bed.tickets.get(tid)
    assert ticket is not None and ticket.state is State.OPEN


async def test_a_not_fixed_answer_whose_reopening_was_never_written_is_reopened_by_the_loop(
        bed):
    """kill -9 between storing "not fixed" and reopening the ticket: the answer is not
    lost, the loop's next pass reopens the ticket (so the alerts start again), once."""
    tid = await bed.resolved()
    loop = bed.loop(six_days())
    await loop.tick()
    # What the killed process left: the answer stored, the ticket still resolved.
    assert await bed.followups.answer(tid, "not_fixed", "agent-a", bed.now, "still down")
    ticket = await bed.tickets.get(tid)
    assert ticket is not None and ticket.state == State.RESOLVED
    await loop.tick()
    ticket = await bed.tickets.get(tid)
    assert ticket is not None and (ticket.state, ticket.reopened) == (State.OPEN, 1)
    await loop.tick()  # nothing more to do
    ticket = await bed.tickets.get(tid)
    assert ticket is not None and ticket.reopened == 1
