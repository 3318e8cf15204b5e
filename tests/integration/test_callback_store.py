"""The callback store on SQLite and a real PostgreSQL: guarded moves, exactly-once turns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from nohold.callbackdb.callbacks import CallbackStore, CannotCancel
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.decisions.callbacks import (
    AttemptOutcome,
    AttemptPolicy,
    IllegalTransition,
    State,
    after_attempt,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def engines(db_url):
    await upgrade_async(db_url)
    made = [make_engine(db_url), make_engine(db_url)]
    yield made
    for engine in made:
        await engine.dispose()


@pytest.fixture
def node_a(engines):
    return CallbackStore(engines[0], "node-a", lease=30)


@pytest.fixture
def node_b(engines):
    return CallbackStore(engines[1], "node-b", lease=30)


async def ask(store: CallbackStore, number: str, arrived: float, queue: str = "billing",
              now: float = 1000):
    return await store.request(call_id=f"call-{number}-{arrived}", number=number, queue=queue,
                               arrived_at=at(arrived), now=at(now),
                               promised=(at(now + 300), at(now + 900)),
                               expires_at=at(now + 4 * 3600))


async def test_a_second_request_for_a_live_callback_updates_it(node_a):
    first, created = await ask(node_a, "+48601000001", arrived=10)
    assert created and first.state is State.PENDING and first.requests == 1
    again, created = await ask(node_a, "+48601000001", arrived=500)
    assert not created and again.id == first.id and again.requests == 2
    assert again.arrived_at == at(10), "the earlier place is kept"
    other_queue, created = await ask(node_a, "+48601000001", arrived=20, queue="tech")
    assert created and other_queue.id != first.id
    await node_a.cancel(first.id, at(1001))
    fresh, created = await ask(node_a, "+48601000001", arrived=600)
    assert created and fresh.id != first.id, "a final callback does not block a new one"


async def test_turns_go_in_arrival_order_and_two_nodes_never_share_one(node_a, node_b):
    for i in range(200):
        await ask(node_a, f"+486010{i:05d}", arrived=float((i * 37) % 200))
    taken: dict[str, list] = {"a": [], "b": []}

    async def take(store, key):
        while batch := await store.take_turns("billing", 7, at(2000)):
            taken[key].extend(batch)
            await asyncio.sleep(0)

    await asyncio.gather(take(node_a, "a"), take(node_b, "b"))
    ids_a = [r.id for r in taken["a"]]
    ids_b = [r.id for r in taken["b"]]
    assert not set(ids_a) & set(ids_b)
    assert len(ids_a) + len(ids_b) == 200
    for key, owner in (("a", "node-a"), ("b", "node-b")):
        assert all(r.state is State.QUEUED and r.owner == owner for r in taken[key])
    first = await node_a.take_turns("billing", 5, at(2000))
    assert first == [], "nothing is taken twice"


async def test_a_batch_is_the_earliest_arrivals(node_a):
    for i, arrived in enumerate([50, 10, 30, 20, 40]):
        await ask(node_a, f"+4860100010{i}", arrived=arrived)
    batch = await node_a.take_turns("billing", 3, at(2000))
    assert [r.arrived_at for r in batch] == [at(10), at(20), at(30)]
    assert [r.arrived_at for r in await node_a.waiting("billing", at(2000))] == [at(40), at(50)]


async def test_moves_are_guarded_by_state_and_holder(node_a, node_b):
    record, _ = await ask(node_a, "+48601000002", arrived=10)
    [queued] = await node_a.take_turns("billing", 1, at(2000))
    assert await node_b.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(2001)) is None
    with pytest.raises(IllegalTransition):
        await node_a.move(queued.id, State.QUEUED, State.DIALLING, at(2001))
    connected = await node_a.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(2001))
    assert connected is not None and connected.lease_until == at(2031)
    assert await node_a.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(2002)) is None


async def test_an_attempt_is_numbered_once_then_retried_then_expired(node_a):
    policy = AttemptPolicy(max_attempts=2, retry_after=600, expire_after=4 * 3600)
    record, _ = await ask(node_a, "+48601000003", arrived=10)
    for attempt, outcome in ((1, AttemptOutcome.BUSY), (2, AttemptOutcome.NO_ANSWER)):
        now = 2000 + attempt * 1000
        [queued] = await node_a.take_turns("billing", 1, at(now))
        connected = await node_a.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(now))
        dialling = await node_a.begin_attempt(connected, "Local/agent", at(now))
        assert dialling.state is State.DIALLING and dialling.attempts == attempt
        assert await node_a.begin_attempt(connected, "Local/agent", at(now)) is None
        after = after_attempt(outcome, dialling.attempts, at(now + 25).timestamp(),
                              record.expires_at.timestamp(), policy)
        ended = await node_a.end_attempt(dialling, outcome, after, at(now + 25), cause="17")
        assert ended.state is after.state
    assert ended.state is State.EXPIRED and ended.outcome == "max_attempts"
    attempts = await node_a.attempts(record.id)
    assert [(a.attempt, a.outcome, a.cause) for a in attempts] == [
        (1, "busy", "17"), (2, "no_answer", "17")]
    assert attempts[0].ended_at == at(3025)


async def test_a_retry_waits_for_its_due_time(node_a):
    record, _ = await ask(node_a, "+48601000004", arrived=10)
    [queued] = await node_a.take_turns("billing", 1, at(2000))
    connected = await node_a.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(2000))
    dialling = await node_a.begin_attempt(connected, "Local/agent", at(2000))
    after = after_attempt(AttemptOutcome.BUSY, 1, at(2010).timestamp(),
                          record.expires_at.timestamp(), AttemptPolicy(retry_after=600))
    retry = await node_a.end_attempt(dialling, AttemptOutcome.BUSY, after, at(2010))
    assert retry.state is State.RETRY and retry.due_at == at(2610)
    assert await node_a.take_turns("billing", 1, at(2609)) == []
    assert [r.id for r in await node_a.take_turns("billing", 1, at(2610))] == [record.id]


async def test_a_dead_nodes_callbacks_are_taken_over_after_its_lease(node_a, node_b):
    await ask(node_a, "+48601000005", arrived=10)
    [held] = await node_a.take_turns("billing", 1, at(2000))
    assert await node_b.lapsed(at(2029)) == []
    [lapsed] = await node_b.lapsed(at(2031))
    mine = await node_b.take_over(lapsed, at(2031))
    assert mine is not None and mine.owner == "node-b" and mine.state is State.QUEUED
    assert await node_a.take_over(lapsed, at(2032)) is None, "seen lease is gone"
    assert await node_a.move(held.id, State.QUEUED, State.AGENT_CONNECTED, at(2032)) is None
    assert await node_a.renew([held.id], at(2032)) == set()
    assert await node_b.renew([held.id], at(2032)) == {held.id}
    back = await node_b.move(held.id, State.QUEUED, State.PENDING, at(2033))
    assert back.owner == "" and back.arrived_at == at(10), "back in line at its old place"


async def test_waiting_callbacks_expire_and_dialling_ones_cannot_be_cancelled(node_a):
    old, _ = await ask(node_a, "+48601000006", arrived=10, now=1000)
    [expired] = await node_a.expire_waiting(at(1000 + 4 * 3600))
    assert expired.id == old.id and expired.state is State.EXPIRED
    record, _ = await ask(node_a, "+48601000007", arrived=10, now=1000)
    [queued] = await node_a.take_turns("billing", 1, at(2000))
    connected = await node_a.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, at(2000))
    await node_a.begin_attempt(connected, "Local/agent", at(2000))
    with pytest.raises(CannotCancel, match="being dialled"):
        await node_a.cancel(record.id, at(2001))
    with pytest.raises(CannotCancel, match="already expired"):
        await node_a.cancel(old.id, at(2001))
    with pytest.raises(CannotCancel, match="no callback"):
        await node_a.cancel(99999, at(2001))


async def test_do_not_call_list(node_a, node_b):
    assert await node_a.dnc_add("+48601000008", at(0), "asked on the phone")
    assert not await node_b.dnc_add("+48601000008", at(1))
    assert await node_b.on_dnc("+48601000008")
    assert [n for n, _, _ in await node_a.dnc_list()] == ["+48601000008"]
    assert await node_a.dnc_remove("+48601000008")
    assert not await node_a.dnc_remove("+48601000008")
    assert not await node_b.on_dnc("+48601000008")


async def test_callbacks_ahead_count_earlier_live_arrivals_of_the_queue(node_a):
    for i, arrived in enumerate([10, 20, 30]):
        await ask(node_a, f"+4860100020{i}", arrived=arrived)
    await ask(node_a, "+48601000209", arrived=5, queue="tech")
    assert await node_a.count_ahead("billing", at(20)) == 2
    assert await node_a.count_ahead("billing", at(9)) == 0
    [first] = await node_a.take_turns("billing", 1, at(2000))
    assert await node_a.count_ahead("billing", at(20)) == 2, "a placeholder is still ahead"
    await node_a.cancel(first.id, at(2001))
    assert await node_a.count_ahead("billing", at(20)) == 1


async def test_turns_give_each_callbacks_serving_order(node_a, node_b):
    from nohold.decisions.callbacks import turn

    made = [(await ask(node_a, f"+4860100021{i}", arrived=arrived))[0]
            for i, arrived in enumerate([30, 10])]
    turns = await node_b.turns([made[0].id, made[1].id, 99999, made[0].id])
    assert turns == {made[0].id: turn(False, at(30).timestamp(), made[0].id),
                     made[1].id: turn(False, at(10).timestamp(), made[1].id)}
    assert turns[made[1].id] < turns[made[0].id]
    assert await node_b.turns([]) == {}
