"""A locked or down database never holds a caller, and loses no proof: the bounded
claim wait (claim-or-play) and the durable outbox (callbackdb/outbox.py)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.callbackdb.outbox import ProofOutbox
from nohold.config import ConfigError, parse_settings


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite:///{tmp_path}/n.db"
    await upgrade_async(url)
    yield url


@contextmanager
def locked(path: Path, seconds: float) -> Iterator[None]:
    """Another process's `BEGIN EXCLUSIVE` (an admin's sqlite3 shell), for `seconds`."""
    ready = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(path)
        con.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        con.rollback()
        con.close()

    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait()
    try:
        yield
    finally:
        holder.join()


class Unavailable:
    """Makes the ledger's writes fail as a database locked past busy_timeout does,
    without the test waiting 5 s for it."""

    def __init__(self, led: NoticeLedger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = True
        real = led._write_batch

        async def write(claims: Any, finishes: Any, replay: Any = None) -> None:
            if self.down:
                raise OperationalError("INSERT", {}, Exception("database is locked"))
            await real(claims, finishes, replay)

        monkeypatch.setattr(led, "_write_batch", write)


async def open_ledger(url: str, outbox: Path) -> NoticeLedger:
    return NoticeLedger(make_engine(url), ProofOutbox(outbox))


async def close(led: NoticeLedger) -> None:
    await led.drain()
    await led._engine.dispose()


# -- the outbox file ------------------------------------------------------------------
async def test_records_survive_a_reopen_and_a_torn_last_line_costs_only_itself(tmp_path):
    path = tmp_path / "state" / "outbox.jsonl"
    now = datetime.now(UTC)
    await ProofOutbox(path).append([("claim", {"call_id": "c1", "started_at": now}),
                                    ("finish", {"b_call_id": "c1", "b_outcome": "completed",
                                                "b_finished_at": now})])
    with path.open("a") as f:
        f.write('{"kind":"finish","values":{"b_call_')  # a kill -9 mid-write
    reopened = ProofOutbox(path)  # a new process
    records = await reopened.read()
    assert records == [("claim", {"call_id": "c1", "started_at": now}),
                       ("finish", {"b_call_id": "c1", "b_outcome": "completed",
                                   "b_finished_at": now})]
    assert reopened.backlog_sync() == 2
    await reopened.clear(2)
    assert not path.exists() and reopened.backlog_sync() == 0


# -- the bounded claim wait ------------------------------------------------------------
async def test_a_locked_database_costs_the_caller_claim_wait_not_busy_timeout(db, tmp_path,
                                                                               caplog):
    caplog.set_level(logging.INFO, "nohold.notice")
    led = await open_ledger(db, tmp_path / "outbox.jsonl")
    try:
        with locked(tmp_path / "n.db", 1.5):
            started = time.monotonic()
            assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1", wait=0.3)
            waited = time.monotonic() - started
            assert 0.25 < waited < 0.8, waited
            assert "notice_claim_slow channel=ch-1 waited=0.3" in caplog.text
        await led.drain()  # the claim went on in the background and won once the lock went
        assert (await led.get("call-1")).outcome == "playing"
        assert "notice_claim_late channel=ch-1" in caplog.text and "result=claimed" in caplog.text
    finally:
        await close(led)


async def test_a_late_claim_lost_to_another_channel_is_logged_as_played_twice(db, tmp_path,
                                                                               caplog):
    led = await open_ledger(db, tmp_path / "outbox.jsonl")
    try:
        assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1")
        with locked(tmp_path / "n.db", 1.0):
            assert await led.claim_or_assume_first("call-1", "ch-2", "100", "v1", wait=0.2)
        await led.drain()
        assert "notice_played_twice channel=ch-2" in caplog.text
        assert (await led.get("call-1")).channel_id == "ch-1"
    finally:
        await close(led)


# -- the outbox in the ledger -----------------------------------------------------------
async def test_proofs_the_database_cannot_take_are_kept_then_replayed_in_order(
        db, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "nohold.notice")
    outbox = tmp_path / "outbox.jsonl"
    led = await open_ledger(db, outbox)
    try:
        db_state = Unavailable(led, monkeypatch)
        assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1")  # played
        await led.record("call-1", "ch-1", "caller_hung_up")
        await led.record("call-1", "ch-1", "completed")  # later, so it must not win
        assert led.backlog == 3 and ProofOutbox(outbox).backlog_sync() == 3
        assert "notice_proof_outboxed call_id=call-1 kind=claim" in caplog.text
        assert "notice_end channel=ch-1 outcome=caller_hung_up proof=outbox" in caplog.text
        assert await led.get("call-1") is None

        db_state.down = False
        led.replay()
        await led.drain()
        row = await led.get("call-1")
        assert (row.channel_id, row.outcome) == ("ch-1", "caller_hung_up")
        assert led.backlog == 0 and not outbox.exists()
    finally:
        await close(led)


async def test_a_restart_replays_what_a_killed_process_left_and_replay_is_idempotent(
        db, tmp_path, monkeypatch):
    outbox = tmp_path / "outbox.jsonl"
    first = await open_ledger(db, outbox)
    Unavailable(first, monkeypatch)
    assert await first.claim_or_assume_first("call-1", "ch-1", "100", "v1")
    await first.record("call-1", "ch-1", "completed")
    assert await first.claim_or_assume_first("call-2", "ch-9", "100", "v1")
    await close(first)  # as good as killed: nothing was written to the database
    kept = outbox.read_text()

    second = await open_ledger(db, outbox)  # the restart
    try:
        second.replay()
        await second.drain()
        assert (await second.get("call-1")).outcome == "completed"
        assert (await second.get("call-2")).outcome == "playing"
        # A crash between the commit and the file's removal: the same records again.
        outbox.write_text(kept)
        await second.finish("call-2", "caller_hung_up")
        third = await open_ledger(db, outbox)
        try:
            third.replay()
            await third.drain()
            assert third.backlog == 0 and not outbox.exists()
            assert (await third.get("call-1")).outcome == "completed"
            assert (await third.get("call-2")).outcome == "caller_hung_up"  # not rewound
        finally:
            await close(third)
    finally:
        await close(second)


async def test_a_claim_after_the_database_is_back_sees_the_outboxed_claim_first(
        db, tmp_path, monkeypatch):
    """The outbox goes first, in the same transaction: a second channel of a call whose
    claim waited in the outbox does not play the notice again."""
    led = await open_ledger(db, tmp_path / "outbox.jsonl")
    try:
        db_state = Unavailable(led, monkeypatch)
        assert await led.claim_or_assume_first("call-1", "ch-1", "100", "v1")
        db_state.down = False
        assert await led.claim_or_assume_first("call-1", "ch-2", "100", "v1") is False
        await led.drain()  # the file is emptied right after the commit
        assert led.backlog == 0
    finally:
        await close(led)


# -- config ---------------------------------------------------------------------------
def test_claim_wait_and_outbox_are_validated_and_name_their_key():
    settings = parse_settings({"notice": {"claim_wait": 0.5},
                               "database": {"url": "sqlite:////srv/n/nohold.db"}})
    assert settings.notice.claim_wait == 0.5
    assert str(settings.database.outbox_path) == "/srv/n/nohold.db.outbox.jsonl"
    with pytest.raises(ConfigError, match=r"notice\.claim_wait = 30\.0: must be between"):
        parse_settings({"notice": {"claim_wait": 30}})
    with pytest.raises(ConfigError, match=r"database\.outbox"):
        parse_settings({"database": {"outbox": "/var/lib/nohold/"}})
