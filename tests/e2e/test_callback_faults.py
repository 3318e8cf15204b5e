"""Callbacks across faults (issue 8 §4, §7): a promise is never lost and never carried
out twice across `kill -9` of nohold, an Asterisk restart, and a second node.

The bed is tests/e2e/callback_bed.py (a sandbox per test, queue cb-billing, agents
paused until the test wants them). Callbacks are created directly in the store, with
their callers' arrival in the past: the phone part is tests/e2e/test_callbacks.py's.
Invariants are counted from Asterisk's own events (placeholders joining the queue,
customer legs created, customers answering) and from nohold's database; waits are
bounded, never sleeps.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nohold.ami.client import AmiError
from nohold.callbackdb.callbacks import CallbackRecord
from nohold.sandbox import Sandbox
from tests.e2e.callback_bed import (
    ANSWERS,
    NO_ANSWER,
    PLACEHOLDER,
    QUEUE,
    RETRY_AFTER,
    Bed,
    customer_leg,
    on_customer,
    open_bed,
    placeholder_of,
    running_cb_box,
    scripted_call,
    short_call,
    wait_until,
)
from tests.support.asterisk_events import Ev, ami, ari
from tests.support.postgres import PostgresUnavailable, empty_database, postgres_server

pytestmark = pytest.mark.e2e

NODE = "node-a"


@pytest.fixture
def cb_box() -> Iterator[Sandbox]:
    with running_cb_box() as box:
        yield box


async def make_callbacks(bed: Bed, numbers: list[str]) -> list[CallbackRecord]:
    """Pending callbacks for `numbers`, their callers arrived a minute ago, a second
    apart, in this order."""
    now = datetime.now(UTC)
    rows = []
    for i, number in enumerate(numbers):
        row, new = await bed.store.request(
            call_id=f"fault-{number}", number=f"+48{number}", queue=QUEUE,
            arrived_at=now - timedelta(seconds=60 + len(numbers) - i), now=now, promised=None,
            expires_at=now + timedelta(hours=1))
        assert new, row
        rows.append(row)
    return rows


def ph_join(callback_id: int) -> Callable[[Ev], bool]:
    """Callback `callback_id`'s placeholder joins the queue."""
    return lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e) and placeholder_of(callback_id)(e)


def any_ph_join(e: Ev) -> bool:
    return ami("QueueCallerJoin", Queue=QUEUE)(e) and e.channel_name.startswith(PLACEHOLDER)


def answered(number: str) -> Callable[[Ev], bool]:
    """The customer at `number` answers (the dialplan's own UserEvent)."""
    return lambda e: (ari("ChannelUserevent")(e) and e.data.get("eventname") == "CbCustomerAnswered"
                      and e.data.get("userevent", {}).get("number") == f"48{number}")


async def standing(bed: Bed) -> list[int]:
    """The callbacks whose placeholders wait in `queue show`, in queue order (the
    placeholder's queue half is `cb-<callback>-<token>-q`)."""
    shown = await asyncio.to_thread(bed.box.cli, f"queue show {QUEUE}")
    order = [ln.split(". ", 1)[1].split(" ", 1)[0] for ln in shown.splitlines()
             if ". Local/" in ln]
    ids = {c["name"]: c["id"] for c in await bed.rec.rest("GET", "/channels")}
    out = []
    for name in order:
        channel_id = ids.get(name, "")
        assert name.startswith(PLACEHOLDER) and channel_id.startswith("cb-"), (name, channel_id)
        out.append(int(channel_id.split("-")[1]))
    return out


async def until_standing(bed: Bed, expected: list[int], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    seen = await standing(bed)
    while seen != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"standing {seen}, expected {expected}" + bed.context())
        await asyncio.sleep(0.3)
        seen = await standing(bed)


async def all_completed(bed: Bed, rows: list[CallbackRecord], timeout: float  # noqa: ASYNC109
                        ) -> list[CallbackRecord]:
    return [await bed.row_becomes(r.id, lambda x: x.state.value == "completed", timeout,
                                  "completed") for r in rows]


async def assert_each_talked_once(bed: Bed, rows: list[CallbackRecord], numbers: list[str]
                                  ) -> None:
    for row, number in zip(rows, numbers, strict=True):
        attempts = await bed.attempts(row.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "talked")], (row, attempts)
        assert bed.rec.count(customer_leg(number)) == 1, number + bed.context()
        assert bed.rec.count(answered(number)) == 1, number + bed.context()
    assert bed.rec.count(lambda e: e.type == "MusicOnHoldStart" and on_customer(e)) == 0


def kill(bed: Bed) -> None:
    assert bed.nohold.stop(signal.SIGKILL) == -signal.SIGKILL


# -- 1: kill -9 with callbacks standing --------------------------------------------------
async def test_kill_9_with_callbacks_standing_stands_each_once_again_and_completes_each_once(
        cb_box: Sandbox, tmp_path: Path) -> None:
    async with open_bed(cb_box, tmp_path, {"node": NODE, "max_waiting_per_agent": 3}) as bed:
        numbers = [short_call(n) for n in (1, 2, 3)]
        rows = await make_callbacks(bed, numbers)
        ids = [r.id for r in rows]
        first = {i: await bed.rec.wait(ph_join(i), 20, what=f"callback {i} standing")
                 for i in ids}
        await until_standing(bed, ids, 10)
        assert {(r.state.value, r.owner) for r in await bed.rows()} == {("queued", NODE)}

        kill(bed)
        mark = len(bed.rec.events)
        # Nobody hung them up: the dead node's placeholders still stand.
        assert await standing(bed) == ids
        await bed.another_nohold("restarted", config=bed.nohold.config)
        # Each leftover is hung up, and each callback stands once again, in order.
        for i in ids:
            await bed.rec.wait(ari("ChannelDestroyed", first[i].channel_id), 15, mark,
                               what=f"callback {i}'s old placeholder hung up")
            await bed.rec.wait(ph_join(i), 15, mark, what=f"callback {i} standing again")
        await until_standing(bed, ids, 10)
        last = max(e.seq for e in bed.rec.find(any_ph_join))
        await bed.rec.wait_none(any_ph_join, 3, last + 1, what="a placeholder standing twice")
        assert [bed.rec.count(ph_join(i)) for i in ids] == [2, 2, 2], bed.context()
        assert await standing(bed) == ids
        assert {(r.state.value, r.owner) for r in await bed.rows()} == {("queued", NODE)}

        mark = len(bed.rec.events)
        await bed.pause(False)
        await all_completed(bed, rows, 60)
        await assert_each_talked_once(bed, rows, numbers)
        legs = [e for e in bed.rec.find(lambda e: any(customer_leg(n)(e) for n in numbers))]
        assert [e.channel_name.split("@")[0] for e in legs] == \
            [f"Local/48{n}" for n in numbers], "called back in arrival order"
        assert await standing(bed) == []


# -- 2: kill -9 while dialling -----------------------------------------------------------
async def ringing(bed: Bed, number: str) -> tuple[CallbackRecord, Ev]:
    """One callback for `number`, its placeholder standing, the agent freed: returns it
    and the customer's leg once the customer's phone rings."""
    (row,) = await make_callbacks(bed, [number])
    await bed.rec.wait(ph_join(row.id), 20, what="the placeholder standing")
    mark = len(bed.rec.events)
    await bed.pause(False)
    leg = await bed.rec.wait(customer_leg(number), 30, mark, what="the customer's leg")
    await bed.rec.wait(lambda e: ari("ChannelUserevent")(e)
                       and e.data.get("eventname") == "CbCustomer", 10, leg.seq,
                       what="the customer's phone ringing")
    return row, leg



async def test_kill_9_while_the_customer_rings_ends_the_attempt_interrupted_and_retries(
        cb_box: Sandbox, tmp_path: Path) -> None:
    async with open_bed(cb_box, tmp_path, {"node": NODE}) as bed:
        row, leg = await ringing(bed, NO_ANSWER)
        assert (await bed.store.get(row.id)).state.value == "dialling"  # type: ignore[union-attr]

        kill(bed)
        await bed.another_nohold("restarted", config=bed.nohold.config)
        retry = await bed.row_becomes(row.id, lambda r: r.state.value == "retry", 15, "retry")
        (a1,) = await bed.attempts(row.id)
        assert (a1.outcome, a1.customer_answer_at, retry.outcome, retry.attempts) == (
            "interrupted", None, "interrupted", 1), (a1, retry)
        # The ring is ended (not left to the dead node's ring timeout), the agent freed.
        gone = await bed.rec.wait(ari("ChannelDestroyed", leg.channel_id), 15, leg.seq,
                                  what="the ringing leg ended")
        assert gone.ts - leg.ts < 15, "ended by the recovery, before the ring timeout"
        await bed.rec.wait(ami("AgentComplete", Queue=QUEUE), 15, leg.seq,
                           what="the agent released")

        # Retried after retry_after; attempt 2 rings out: max_attempts (2) reached.
        second = await bed.rec.wait(lambda e: customer_leg(NO_ANSWER)(e) and e.seq > leg.seq,
                                    RETRY_AFTER + 30, leg.seq, what="attempt 2's customer leg")
        assert retry.due_at is not None and second.ts >= retry.due_at.timestamp() - 0.5
        final = await bed.row_becomes(row.id, lambda r: r.state.value == "expired", 40,
                                      "expired")
        assert (final.outcome, final.attempts) == ("max_attempts", 2), final
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
            (1, "interrupted"), (2, "no_answer")]
        await bed.rec.wait_none(lambda e: customer_leg(NO_ANSWER)(e) and e.seq > second.seq,
                                RETRY_AFTER + 3, second.seq, what="a third customer leg")
        assert bed.rec.count(customer_leg(NO_ANSWER)) == 2


async def test_kill_9_while_the_customer_rings_who_then_talks_and_hangs_up_is_never_rung_again(
        cb_box: Sandbox, tmp_path: Path) -> None:
    """The node dies before it can note the answer; the customer answers the ringing leg,
    talks with the agent and hangs up while nohold is down. Asterisk noted the answer
    (the leg's hangup handler, AstDB): the restarted node ends the attempt as talked."""
    number = short_call(31)  # answers after 0.5 s of ringing, hangs up 1 s later
    async with open_bed(cb_box, tmp_path, {"node": NODE}) as bed:
        row, leg = await ringing(bed, number)
        kill(bed)
        assert f"callback_talking callback={row.id}" not in bed.nohold.log(), \
            "killed before the answer" + bed.context()
        await bed.rec.wait(answered(number), 10, leg.seq, what="the customer answering")
        await bed.rec.wait(ari("ChannelDestroyed", leg.channel_id), 10, leg.seq,
                           what="the customer hanging up while nohold is down")
        noted = await bed.rec.action("DBGet", Family="nohold-callback-legs",
                                     Key=f"{row.id}-a1")
        assert any(m.get("Val") == "answered" for m in noted), noted

        down = len(bed.rec.events)
        await bed.another_nohold("restarted", config=bed.nohold.config)
        done = await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 15,
                                     "completed")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
            (1, "talked")], done
        # The agent, alone on the dead node's bridge, is released.
        await bed.rec.wait(ami("AgentComplete", Queue=QUEUE), 15, down,
                           what="the agent released")
        await bed.rec.wait_none(lambda e: customer_leg(number)(e) and e.seq > leg.seq,
                                RETRY_AFTER + 3, leg.seq, what="a second customer leg")
        assert bed.rec.count(answered(number)) == 1
        # Asterisk's note was read and deleted: AstDB does not grow with every call.
        with pytest.raises(AmiError):
            await bed.rec.action("DBGet", Family="nohold-callback-legs", Key=f"{row.id}-a1")


@pytest.mark.parametrize("ends_while_down", [False, True], ids=["still_talking", "ended"])
async def test_kill_9_while_talking_leaves_the_conversation_and_never_dials_again(
        cb_box: Sandbox, tmp_path: Path, ends_while_down: bool) -> None:
    async with open_bed(cb_box, tmp_path, {"node": NODE}) as bed:
        (row,) = await make_callbacks(bed, [ANSWERS])
        await bed.rec.wait(ph_join(row.id), 20, what="the placeholder standing")
        mark = len(bed.rec.events)
        await bed.pause(False)
        leg = await bed.rec.wait(customer_leg(ANSWERS), 30, mark, what="the customer's leg")
        await bed.rec.wait(answered(ANSWERS), 15, leg.seq, what="the customer answering")
        await wait_until(lambda: f"callback_talking callback={row.id}" in bed.nohold.log(), 10,
                         "nohold sees the conversation" + bed.context())

        kill(bed)
        far = next(e for e in bed.rec.find(lambda e: ari("ChannelCreated")(e) and on_customer(e))
                   if e.channel_name.endswith(";2"))
        if ends_while_down:
            await bed.rec.rest("DELETE", f"/channels/{far.channel_id}")
            await bed.rec.wait(ari("ChannelDestroyed", leg.channel_id), 10, leg.seq,
                               what="the conversation over while nohold is down")
        down = len(bed.rec.events)
        await bed.another_nohold("restarted", config=bed.nohold.config)
        done = await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 15,
                                     "completed")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
            (1, "talked")], done
        if not ends_while_down:
            # The conversation goes on: the customer's leg is up, never hung up by nohold.
            up = await bed.rec.rest("GET", f"/channels/{leg.channel_id}")
            assert up["state"] == "Up", up
            assert not bed.rec.find(ari("ChannelDestroyed", leg.channel_id), down)
            await bed.rec.rest("DELETE", f"/channels/{far.channel_id}")
        # Once it is over, the agent is released (not left on a dead line).
        await bed.rec.wait(ami("AgentComplete", Queue=QUEUE), 15, down,
                           what="the agent released")
        await bed.rec.wait_none(lambda e: customer_leg(ANSWERS)(e) and e.seq > leg.seq,
                                RETRY_AFTER + 3, leg.seq, what="a second customer leg")
        assert bed.rec.count(customer_leg(ANSWERS)) == 1
        assert bed.rec.count(answered(ANSWERS)) == 1


# -- 3: Asterisk restarts ----------------------------------------------------------------
async def test_asterisk_restart_puts_standing_callbacks_back_and_each_completes_once(
        cb_box: Sandbox, tmp_path: Path) -> None:
    async with open_bed(cb_box, tmp_path, {"node": NODE, "max_waiting_per_agent": 3}) as bed:
        numbers = [short_call(n) for n in (11, 12, 13)]
        rows = await make_callbacks(bed, numbers)
        ids = [r.id for r in rows]
        for i in ids:
            await bed.rec.wait(ph_join(i), 20, what=f"callback {i} standing")
        await until_standing(bed, ids, 10)

        # The agents answer nothing until the test says (an AstDB key survives restarts;
        # after a restart the queue's members are no longer paused).
        bed.box.cli("database put cbtest closed 1")
        ari_before, ami_before = bed.rec.ari_connects, bed.rec.ami.connects
        bed.box.cli("core restart now")
        await asyncio.to_thread(bed.box.wait_fully_booted)
        await bed.rec.reconnected(ari_before, ami_before, 60)
        # Every callback stands again, once each, in arrival order.
        await until_standing(bed, ids, 60)
        # While Asterisk shut down, placeholders could not be made ("Allocation failed",
        # then 503): asked again a few times, never in a tight loop (once: 168 in 1 s).
        failed = bed.nohold.log().count("callback_placeholder_failed")
        assert failed <= 15, f"{failed} failed placeholders: a tight loop"
        for i in ids:
            await wait_until(lambda i=i: f"callback_back_in_line callback={i} " in
                             bed.nohold.log(), 5, f"callback {i} back in line")
        assert {(r.state.value, r.owner) for r in await bed.rows()} == {("queued", NODE)}

        mark = len(bed.rec.events)
        bed.box.cli("database del cbtest closed")
        await all_completed(bed, rows, 60)
        for row, number in zip(rows, numbers, strict=True):
            attempts = await bed.attempts(row.id)
            assert [(a.attempt, a.outcome) for a in attempts] == [(1, "talked")], attempts
            assert bed.rec.count(customer_leg(number)) == 1, number + bed.context()
            assert bed.rec.count(answered(number)) == 1, number + bed.context()
        legs = bed.rec.find(lambda e: any(customer_leg(n)(e) for n in numbers), mark)
        assert [e.channel_name.split("@")[0] for e in legs] == [f"Local/48{n}" for n in numbers]
        assert await standing(bed) == []


# -- 4: two nodes, one killed --------------------------------------------------------------
# The size: two processes, 200 callbacks, one process killed mid-way.
AGENTS = 8
CALLBACKS = 200
# No offer to the placeholders for a minute: app_queue rings no agent for a caller while
# it plays them the offer, and at the flow tests' pace (every 5 s) that serialises the
# queue (see queues_conf).
OFFER_QUIET = 60


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def eight_agents() -> Iterator[Sandbox]:
    with running_cb_box(agents=AGENTS, offer_every=OFFER_QUIET, offer_after=OFFER_QUIET) as box:
        yield box


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    url = request.getfixturevalue("pg_url")
    await empty_database(url)
    yield url


async def test_two_nodes_one_killed_midway_every_callback_completes_exactly_once(
        eight_agents: Sandbox, tmp_path: Path, database: str | None) -> None:
    async with open_bed(eight_agents, tmp_path, {"node": NODE, "offer_after": OFFER_QUIET,
                                                 "offer_every": OFFER_QUIET},
                        agents=AGENTS, database_url=database) as bed:
        # Customers answer after 0.5 s of ringing and talk for 1 s.
        await bed.rec.action("Setvar", Variable="GLOBAL(CB_TALK)", Value="1")
        b = await bed.another_nohold("node-b", {"callbacks": {
            "node": "node-b", "app": "nohold-callback-b", "offer_after": OFFER_QUIET,
            "offer_every": OFFER_QUIET}})
        numbers = [scripted_call(n) for n in range(CALLBACKS)]
        rows = await make_callbacks(bed, numbers)
        await bed.pause(False)

        # Midway: a quarter done, and node-b holding callbacks (standing, or with an
        # agent or a customer on the line).
        async def midway() -> bool:
            found = await bed.rows()
            done = sum(r.state.value == "completed" for r in found)
            return done >= CALLBACKS // 4 and any(r.owner == "node-b" for r in found)
        deadline = time.monotonic() + 90
        while not await midway():
            assert time.monotonic() < deadline, "never midway" + bed.context()
            await asyncio.sleep(0.1)
        held = [r.id for r in await bed.rows() if r.owner == "node-b"]
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL

        done = await all_completed(bed, rows, 120)
        assert len(done) == CALLBACKS
        assert [r for r in await bed.rows() if r.state.value != "completed"] == []
        for row, number in zip(rows, numbers, strict=True):
            attempts = await bed.attempts(row.id)
            talked = [a for a in attempts if a.outcome == "talked"]
            assert len(talked) == 1, (row, attempts)
            # Any other attempt was cut short by the kill before the customer answered.
            assert all(a.outcome == "interrupted" and a.customer_answer_at is None
                       for a in attempts if a not in talked), (row, attempts)
            assert bed.rec.count(answered(number)) == 1, number + bed.context()
        assert held, "node-b held callbacks when killed"
        # What node-b held is done, after the kill, by node-a.
        for callback_id in held:
            last = (await bed.attempts(callback_id))[-1]
            assert last.node == NODE or last.outcome == "talked", last
        assert await standing(bed) == []
