import asyncio
import logging

import pytest
from sqlalchemy import text

from nohold import logs
from nohold.callbackdb.engine import async_url, make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger
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


# -- the in-loop SQLite path (callbackdb/inloop_sqlite.py) -------------------------------
async def test_on_sqlite_a_claim_is_written_on_the_loop_without_the_engine(ledger, monkeypatch):
    """The claim and the outcome never touch SQLAlchemy's engine (aiosqlite's thread):
    with the engine broken they are still written, and read back through the ORM
    exactly as the engine writes them (the same text form of started_at)."""
    led, engine = ledger
    assert await led.claim("call-0", "ch-0", "100", "v1") is True  # opens the connection

    def broken(*_args, **_kwargs):
        raise AssertionError("the threaded path was used")

    monkeypatch.setattr(led, "_engine", type("Broken", (), {"begin": broken,
                                                             "connect": broken})())
    results = await asyncio.gather(*(led.claim(f"call-{i % 3}", f"ch-{i}", "100", "v1")
                                     for i in range(6)))
    assert results == [False, True, True, False, False, False]
    assert await led.finish("call-1", "completed") is True
    monkeypatch.undo()
    row = await led.get("call-1")
    assert row.outcome == "completed" and row.channel_id == "ch-1" and row.caller == "100"
    assert row.started_at is not None and row.finished_at >= row.started_at
    assert led.threaded_batches == 0 and led.inloop_batches >= 3
    led.close()


async def test_a_locked_database_hands_the_claim_to_the_threaded_path_without_blocking(
        tmp_path):
    """Another process holds the write lock: the in-loop attempt fails at once (busy
    timeout 0) and the threaded path waits for the lock, while the loop stays free."""
    import sqlite3
    import threading
    import time

    url = f"sqlite:///{tmp_path}/n.db"
    await upgrade_async(url)
    engine = make_engine(url)
    led = NoticeLedger(engine)
    assert await led.claim("call-0", "ch-0", "100", "v1") is True  # in-loop path ready
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(tmp_path / "n.db")
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        con.rollback()
        con.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    await asyncio.to_thread(locked.wait)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        claiming = asyncio.ensure_future(led.claim("call-1", "ch-1", "100", "v1"))
        await asyncio.sleep(0.3)
        assert not claiming.done()  # waiting for the lock, in the thread
        release.set()
        assert await claiming is True
        assert led.threaded_batches == 1
        assert max(gaps) < 0.1, f"the loop was blocked for {max(gaps):.3f}s"
        assert await led.claim("call-1", "ch-2", "100", "v1") is False
        assert led.threaded_batches == 1  # the lock is gone: back on the loop
    finally:
        ticking.cancel()
        release.set()
        holder.join()
        led.close()
        await engine.dispose()


def test_two_processes_racing_on_one_file_claim_each_call_exactly_once(tmp_path):
    """Two ledgers on one SQLite file, each with its own event loop in its own thread
    (as two processes would be), claiming the same 300 calls in bursts: the unique
    key decides, whichever path (in-loop or, when busy, threaded) each batch takes."""
    import threading

    url = f"sqlite:///{tmp_path}/n.db"
    asyncio.run(upgrade_async(url))
    results: dict[int, list[bool]] = {}
    counts: dict[int, tuple[int, int]] = {}
    start = threading.Barrier(2)

    def node(n: int) -> None:
        async def run() -> None:
            engine = make_engine(url)
            led = NoticeLedger(engine)
            try:
                start.wait()
                won: list[bool] = []
                for burst in range(30):
                    won += await asyncio.gather(*(
                        led.claim(f"call-{burst * 10 + i}", f"ch-{n}-{i}", "100", "v1")
                        for i in range(10)))
                results[n] = won
                counts[n] = (led.inloop_batches, led.threaded_batches)
            finally:
                led.close()
                await engine.dispose()
        asyncio.run(run())

    threads = [threading.Thread(target=node, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a + b for a, b in zip(results[0], results[1], strict=True)] == [1] * 300
    assert counts[0][0] + counts[1][0] > 0  # the in-loop path took part


async def test_large_batches_are_split_into_short_transactions_on_the_loop(ledger, monkeypatch):
    """A burst bigger than INLOOP_MAX_ROWS is written in several short transactions,
    the loop running between them, and one winner per call still."""
    from nohold.callbackdb import notice_ledger

    monkeypatch.setattr(notice_ledger, "INLOOP_MAX_ROWS", 4)
    led, engine = ledger
    results = await asyncio.gather(*(led.claim(f"call-{i % 10}", f"ch-{i}", "100", "v1")
                                     for i in range(20)))
    assert results == [True] * 10 + [False] * 10
    assert led.inloop_batches == 3 and led.threaded_batches == 0
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notice_plays"))).scalar() == 10
    led.close()


async def test_an_inloop_failure_midway_leaves_the_rest_to_the_threaded_path(ledger, monkeypatch):
    """The first in-loop transaction commits, the second cannot: only the rest is
    written by the threaded path, and claims already won stay won (a retry of a
    committed claim would wrongly read `already played`)."""
    from nohold.callbackdb import notice_ledger

    monkeypatch.setattr(notice_ledger, "INLOOP_MAX_ROWS", 3)
    led, _ = ledger
    assert await led.claim("call-x", "ch-x", "100", "v1") is True
    inloop = led._inloop
    real = inloop.write
    calls = 0

    def once_then_busy(rows, finishes):
        nonlocal calls
        calls += 1
        return real(rows, finishes) if calls == 1 else None

    monkeypatch.setattr(inloop, "write", once_then_busy)
    results = await asyncio.gather(*(led.claim(f"call-{i}", "ch-1", "100", "v1")
                                     for i in range(7)))
    assert results == [True] * 7
    assert led.threaded_batches == 1
    led.close()


async def test_postgres_urls_and_memory_databases_keep_the_threaded_path():
    from sqlalchemy.engine import make_url

    from nohold.callbackdb.inloop_sqlite import sqlite_file

    assert sqlite_file(make_url("postgresql+asyncpg://u:p@h/db")) is None
    assert sqlite_file(make_url("sqlite+aiosqlite:///:memory:")) is None
    assert sqlite_file(make_url("sqlite+aiosqlite:///x.db?mode=ro")) is None
    assert str(sqlite_file(make_url("sqlite+aiosqlite:////var/lib/n.db"))) == "/var/lib/n.db"


def test_the_inloop_connection_turns_wal_on_like_the_engine_and_creates_no_file(tmp_path):
    """Outside WAL every commit would fsync on the loop: opening switches the file to
    WAL as the engine does at connect (or steps aside). A missing file is not created
    (the threaded path then fails as it always has)."""
    import sqlite3

    from nohold.callbackdb.inloop_sqlite import InLoopSqlite

    path = tmp_path / "n.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.close()
    inloop = InLoopSqlite(path, str)
    inloop.open()
    assert inloop.is_open and not inloop.disabled
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    inloop.close()
    missing = InLoopSqlite(tmp_path / "missing.db", str)
    with pytest.raises(sqlite3.OperationalError):
        missing.open()
    assert not (tmp_path / "missing.db").exists()


async def test_the_wal_is_checkpointed_off_the_loop_every_so_many_inloop_commits(
        ledger, monkeypatch, caplog):
    """The in-loop connection never checkpoints (that fsyncs): every CHECKPOINT_EVERY
    in-loop commits the ledger runs a passive checkpoint through the engine
    (aiosqlite's thread), and it succeeds."""
    import sqlite3

    from nohold.callbackdb import inloop_sqlite

    monkeypatch.setattr(inloop_sqlite, "CHECKPOINT_EVERY", 5)
    led, engine = ledger
    real = led._checkpoint
    runs = 0

    async def counted() -> None:
        nonlocal runs
        runs += 1
        await real()

    monkeypatch.setattr(led, "_checkpoint", counted)
    for i in range(12):
        assert await led.claim(f"call-{i}", "ch-1", "100", "v1") is True
    await led.drain()  # the checkpoint is a background task the drain waits for
    assert runs == 2 and "checkpoint_failed" not in caplog.text
    con = sqlite3.connect(engine.url.database)
    assert con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # others: default
    con.close()
    assert led._inloop._con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert led.threaded_batches == 0
    led.close()


async def test_an_outcome_handed_in_is_written_and_logged_with_its_call_id_after_its_task_ends(
        ledger):
    # The flow hands the outcome in and goes on (or ends): the write and its log line
    # need no task of the call's, and the line still names the call.
    led, _ = ledger
    seen: list[tuple[str, str]] = []
    handler = logging.Handler()
    handler.addFilter(logs._CallIdFilter())
    handler.emit = lambda record: seen.append((record.call, record.getMessage()))
    logger = logging.getLogger("nohold.notice")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        async def call() -> None:
            logs.call_id.set("call-7")
            assert await led.claim_or_assume_first("call-7", "ch-7", "100", "v1")
            led.record_soon("call-7", "ch-7", "caller_hung_up")

        await asyncio.create_task(call())
        assert led._background == set()  # nothing of the call's left running
        await led.drain()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert ("call-7", "notice_end channel=ch-7 outcome=caller_hung_up") in seen
    assert (await led.get("call-7")).outcome == "caller_hung_up"


async def test_drain_ends_when_the_writer_died_with_outcomes_queued_behind_it(ledger,
                                                                             monkeypatch):
    # A bug kills the writer mid-batch while another outcome waits in the queue: drain()
    # must neither spin the loop nor wait forever; a new writer takes the queued one.
    led, _ = ledger
    assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1")
    assert await led.claim_or_assume_first("call-2", "ch-2", "100", "v1")
    real = led._write_batch
    calls = 0

    async def dies_once(claims, finishes, replay=None):
        nonlocal calls
        calls += 1
        if calls == 1:
            led.record_soon("call-2", "ch-2", "completed")  # queued meanwhile
            raise RuntimeError("a bug")
        await real(claims, finishes, replay)

    monkeypatch.setattr(led, "_write_batch", dies_once)
    first = led.record_soon("call-1", "ch-1", "completed")
    async with asyncio.timeout(5):
        await led.drain()
    assert first.cancelled()  # its batch died with the writer (logged, not hung)
    assert (await led.get("call-2")).outcome == "completed"
