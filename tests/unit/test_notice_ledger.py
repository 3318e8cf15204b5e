import asyncio
import logging

import pytest
from sqlalchemy import text

from callbackdb.engine import async_url, make_engine
from callbackdb.migrate import upgrade_async
from callbackdb.notice_ledger import NoticeLedger
from nohold.decisions.ids import BadId


@pytest.fixture
async def ledger(tmp_path):
    url = f"sqlite:///{tmp_path}/n.db"
    await upgrade_async(url)
    engine = make_engine(url)
    yield NoticeLedger(engine), engine
    await engine.dispose()


async def test_outcome_is_written_once(ledger):
    led, _ = ledger
    await led.claim("call-1", "ch-1", "100", "v1")
    await led.finish("call-1", "caller_hung_up")
    await led.finish("call-1", "completed")  # a late second finish does not rewrite history
    row = await led.get("call-1")
    assert row.outcome == "caller_hung_up" and row.finished_at is not None
    with pytest.raises(ValueError):
        await led.finish("call-1", "bogus")


def test_urls_get_async_drivers():
    assert async_url("sqlite:////var/x.db") == "sqlite+aiosqlite:////var/x.db"
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    with pytest.raises(ValueError):
        async_url("mysql://h/db")


async def test_database_down_means_play_the_notice_and_the_call_goes_on(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path}/never-migrated.db")  # no tables: every query fails
    try:
        led = NoticeLedger(engine)
        assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1") is True
        await led.record("call-1", "ch-1", "completed")  # logs, does not raise
        assert "notice_ledger_unavailable" in caplog.text
        assert "notice_proof_not_saved" in caplog.text
    finally:
        await engine.dispose()


async def test_second_claim_is_logged_as_skipped(ledger, caplog):
    caplog.set_level(logging.INFO, "nohold.notice")
    led, _ = ledger
    assert await led.claim_or_assume_first("call-9", "ch-1", "100", "v1") is True
    assert await led.claim_or_assume_first("call-9", "ch-2", "100", "v1") is False
    assert "notice_skipped channel=ch-2" in caplog.text


async def test_a_briefly_locked_database_waits_instead_of_failing(tmp_path):
    """Another process (an admin's sqlite3 shell, `nohold db upgrade`) holds the write lock."""
    import sqlite3
    import threading
    import time

    url = f"sqlite:///{tmp_path}/n.db"
    await upgrade_async(url)
    locked = threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(tmp_path / "n.db")
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(1.0)
        con.rollback()
        con.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    await asyncio.to_thread(locked.wait)
    engine = make_engine(url)
    try:
        started = time.monotonic()
        assert await NoticeLedger(engine).claim("call-1", "ch-1", "100", "v1") is True
        assert time.monotonic() - started >= 0.5  # it really waited for the lock
    finally:
        holder.join()
        await engine.dispose()


@pytest.mark.parametrize(("call_id", "channel_id"), [("x" * 60_006, "ch-1"), ("call-1", "c" * 65)])
async def test_the_ledger_refuses_ids_longer_than_its_columns(ledger, call_id, channel_id):
    """SQLite does not enforce String(64): without this check a 60 kB id was stored."""
    led, engine = ledger
    with pytest.raises(BadId):
        await led.claim(call_id, channel_id, "100", "v1")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notice_plays"))).scalar() == 0


async def test_an_id_the_ledger_refuses_still_means_play_the_notice(ledger, caplog):
    led, _ = ledger
    assert await led.claim_or_assume_first("x" * 65, "ch-1", "100", "v1") is True
    assert "notice_ledger_refused" in caplog.text


async def test_claims_arriving_together_are_one_transaction_and_one_winner_per_call(ledger):
    """Group commit: 40 claims at once, two channels each for 20 calls (and one call
    already claimed before): exactly one winner per call, every row written."""
    led, engine = ledger
    assert await led.claim("call-0", "ch-early", "100", "v1") is True
    results = await asyncio.gather(*(
        led.claim(f"call-{i % 20}", f"ch-{i}", "100", "v1") for i in range(40)
    ))
    winners = {f"call-{i % 20}" for i, won in enumerate(results) if won}
    assert sum(results) == 19 and winners == {f"call-{i}" for i in range(1, 20)}
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notice_plays"))).scalar() == 20
    await asyncio.gather(*(led.finish(f"call-{i}", "completed") for i in range(20)),
                         led.claim("call-20", "ch-x", "100", "v1"))
    for i in range(20):
        assert (await led.get(f"call-{i}")).outcome == "completed"
    assert (await led.get("call-20")).outcome == "playing"


async def test_one_failing_write_does_not_fail_the_others_in_its_batch(ledger, monkeypatch):
    """A batch that fails is retried row by row: only the bad row's waiter sees the error."""
    from sqlalchemy.exc import OperationalError

    led, _ = ledger
    real = led._write_batch

    async def poisoned(claims, finishes, replay=None):
        if any(row["call_id"] == "call-bad" for row, _ in claims):
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        await real(claims, finishes, replay)

    monkeypatch.setattr(led, "_write_batch", poisoned)
    results = await asyncio.gather(
        *(led.claim(f"call-{i}", "ch-1", "100", "v1") for i in range(5)),
        led.claim("call-bad", "ch-1", "100", "v1"), return_exceptions=True,
    )
    assert results[:5] == [True] * 5 and isinstance(results[5], OperationalError)
    assert await led.claim_or_assume_first("call-bad", "ch-2", "100", "v1") is True  # play


async def test_drain_waits_for_outcomes_handed_in(ledger):
    led, _ = ledger
    await led.claim("call-1", "ch-1", "100", "v1")
    pending = asyncio.ensure_future(asyncio.shield(led.finish("call-1", "caller_hung_up")))
    await asyncio.sleep(0)
    await led.drain()
    assert (await led.get("call-1")).outcome == "caller_hung_up"
    await pending
