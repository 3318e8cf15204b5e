"""Claim-once ledger for the recording notice, keyed by the call's linkedid.

Writes are group-committed: claims and outcomes that arrive while a transaction
is in flight are written together in the next one (one INSERT ... ON CONFLICT DO
NOTHING RETURNING for all claims, one executemany UPDATE for all outcomes, one
commit). The claim sits between a caller's StasisStart and the first sound they
hear, and per-claim transactions were most of that wait: each cost 5 round trips
to aiosqlite's thread and ~2 ms of SQLAlchemy CPU on one connection, so at 20
calls at once the 20th claim queued behind 19 others (bench/README.md). A claim
still returns only after its row is committed, and the unique key on call_id
still decides between channels and nodes: nothing of the promise is weakened.
Nothing waits for a batch to fill either: an idle writer starts at once.

On SQLite the batch is written on the event loop itself, with the stdlib sqlite3
module (callbackdb/inloop_sqlite.py): tens of microseconds instead of six thread
round trips. Whenever that cannot be done at once (the file is locked, any
error, an outbox to replay) the batch takes the threaded path above, unchanged.

The database never holds a caller: a claim not answered within `claim_wait`
means "play the notice" (claim-or-play, the claim finishes in the background),
outcomes are written in the background, and a batch the database cannot take
(locked past busy_timeout, down) goes to the durable outbox (callbackdb/outbox.py),
replayed in order ahead of the next batch, in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import DateTime, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nohold.aio import read_outcome
from nohold.callbackdb.engine import sessions
from nohold.callbackdb.inloop_sqlite import InLoopSqlite, sqlite_file
from nohold.callbackdb.models import NoticePlay
from nohold.callbackdb.outbox import ProofOutbox
from nohold.decisions.ids import BadId, check_id

# not_told: Asterisk could not play it, even on a retry, and the caller went on untold.
# The column is a free String(20) (no CHECK): a new outcome needs no migration.
OUTCOMES = ("completed", "caller_hung_up", "failed", "not_told")

log = logging.getLogger("nohold.notice")

# At most this many rows per statement (SQLite's bound-parameter limit is 32766
# since 3.32; 6 columns a row). Larger backlogs take several statements, one commit.
MAX_BATCH = 500

# At most this many rows (claims and outcomes) per in-loop transaction: ~25 us each
# on the benchmark machine, so the event loop is never held much beyond 1 ms.
INLOOP_MAX_ROWS = 32

# What the database says when it is locked, down or unreachable: the batch goes to the
# outbox. Any other error (a bad row) is retried row by row, as before.
UNAVAILABLE = (OperationalError, InterfaceError, OSError)

# Seconds a caller waits for the claim when the caller of claim_or_assume_first
# does not say ([notice] claim_wait).
DEFAULT_CLAIM_WAIT = 1.0

_Claim = tuple[dict[str, Any], asyncio.Future[bool]]
# A finish's future says True when written to the database, False when to the outbox.
_Finish = tuple[dict[str, Any], asyncio.Future[bool]]
_Record = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim handed to the ledger's writer (`NoticeLedger.claim_soon`)."""

    channel_id: str
    started: float  # loop time it was handed in: `first()`'s wait counts from here
    written: asyncio.Future[bool] | None  # None: refused (bad ids), the notice plays


def _recorded(channel_id: str, outcome: str, reason: str, done: asyncio.Future[bool]) -> None:
    extra = f" reason={reason}" if reason else ""
    if done.cancelled():
        # Only a writer cancelled before drain(): the proof of this notice is lost.
        log.warning("notice_proof_not_saved channel=%s outcome=%s%s error=cancelled",
                    channel_id, outcome, extra)
        return
    exc = done.exception()
    if exc is not None:
        log.error("notice_proof_not_saved channel=%s outcome=%s%s", channel_id, outcome, extra,
                  exc_info=exc)
        return
    where = "" if done.result() else " proof=outbox"
    log.info("notice_end channel=%s outcome=%s%s%s", channel_id, outcome, extra, where)


def _waiters(claims: list[_Claim], finishes: list[_Finish]) -> list[asyncio.Future[Any]]:
    return [fut for _, fut in claims] + [done for _, done in finishes]


def _settled(fut: asyncio.Future[Any]) -> bool:
    return fut.done() and not fut.cancelled()


class NoticeLedger:
    def __init__(self, engine: AsyncEngine, outbox: ProofOutbox | None = None) -> None:
        self._engine = engine
        self.outbox = outbox
        # Records in the outbox file; -1 = not read yet (the writer reads it first).
        self._backlog = -1 if outbox is not None else 0
        self._replay_wanted = outbox is not None
        # Proofs neither the database nor the outbox took (a full disk): counted.
        self.unrecorded = 0
        self._background: set[asyncio.Task[Any]] = set()
        # Outcomes handed in whose log line is not out yet (drain() waits for them).
        self._unlogged: set[asyncio.Future[bool]] = set()
        self._sessions = sessions(engine)
        # ON CONFLICT (call_id) DO NOTHING RETURNING call_id: the rows we inserted are
        # the claims we won; a call_id already present (another channel, another node)
        # returns nothing. Both dialects have it (SQLite >= 3.35, PostgreSQL >= 9.5).
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._claim_stmt = (
            dialect.insert(NoticePlay)
            .on_conflict_do_nothing(index_elements=[NoticePlay.call_id])
            .returning(NoticePlay.call_id)
        )
        self._finish_stmt = (
            update(NoticePlay)
            .where(NoticePlay.call_id == bindparam("b_call_id"), NoticePlay.outcome == "playing")
            .values(outcome=bindparam("b_outcome"), finished_at=bindparam("b_finished_at"))
        )
        self._claims: list[_Claim] = []
        self._finishes: list[_Finish] = []
        self._writer: asyncio.Task[None] | None = None
        path = sqlite_file(engine.url)
        self._inloop: InLoopSqlite | None = None
        if path is not None:
            datetime_bind = DateTime(timezone=True).dialect_impl(engine.dialect).bind_processor(
                engine.dialect)
            assert datetime_bind is not None  # SQLite stores datetimes as text
            self._inloop = InLoopSqlite(path, datetime_bind)
        # Batches written in the loop / handed to the threaded path (for tests, logs).
        self.inloop_batches = 0
        self.threaded_batches = 0

    async def claim(self, call_id: str, channel_id: str, caller: str, version: str) -> bool:
        """True when this call has not had the notice yet (and now owns playing it).

        The unique key makes this atomic across channels and nohold nodes: of two
        channels of one call racing here, exactly one wins. Ids that do not fit the
        columns raise BadId: SQLite would store them whole, and a cut key could collide.
        """
        return await self._enqueue_claim(call_id, channel_id, caller, version)

    def _enqueue_claim(self, call_id: str, channel_id: str, caller: str,
                       version: str) -> asyncio.Future[bool]:
        """The claim handed to the writer now (raises BadId now): the future says
        whether it won, once written. Nothing the caller does cancels the write."""
        check_id("call_id", call_id)
        check_id("channel_id", channel_id)
        row = {
            "call_id": call_id,
            "channel_id": channel_id,
            "caller": caller[:64],
            "notice_version": version[:80],
            "started_at": datetime.now(UTC),
            "outcome": "playing",
        }
        won: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append((row, won))
        self._wake_writer()
        return won

    async def finish(self, call_id: str, outcome: str) -> bool:
        """True when written to the database, False when kept in the outbox."""
        return await self._enqueue_finish(call_id, outcome)

    def _enqueue_finish(self, call_id: str, outcome: str) -> asyncio.Future[bool]:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown notice outcome {outcome!r}")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        params = {"b_call_id": call_id, "b_outcome": outcome, "b_finished_at": datetime.now(UTC)}
        self._finishes.append((params, done))
        self._wake_writer()
        return done

    @property
    def backlog(self) -> int:
        """Proofs waiting in the outbox (0 before the writer first read it)."""
        return max(self._backlog, 0)

    def replay(self) -> None:
        """Ask the writer to replay the outbox now (at start, then periodically)."""
        if self.outbox is not None and self._backlog != 0:
            self._replay_wanted = True
            self._wake_writer()

    async def replay_forever(self, interval: float) -> None:
        while True:
            self.replay()
            await asyncio.sleep(interval)

    async def drain(self) -> None:
        """Until every claim and outcome handed in so far is written and its line
        logged (before the engine is disposed at shutdown: background outcomes outlive
        their call task). Never busy: every pass awaits something."""
        while True:
            if self._background:
                await asyncio.wait(set(self._background))
            elif self._writer is not None and not self._writer.done():
                await asyncio.wait({self._writer})
            elif self._claims or self._finishes:
                # Queued behind a writer that died (a cancel, a bug): a new one takes them.
                self._wake_writer()
            elif pending := {done for done in self._unlogged if not done.done()}:
                await asyncio.wait(pending)
            elif self._unlogged:
                await asyncio.sleep(0)  # a done future's callbacks run on the next pass
            else:
                return

    def close(self) -> None:
        """Close the in-loop SQLite connection (after drain(), before the engine is
        disposed). A ledger used again reopens it."""
        if self._inloop is not None:
            self._inloop.close()

    # -- the group-commit writer ---------------------------------------------------------
    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            # A fresh context: the writer serves many calls, its task must not carry
            # the call id (logs.call_id) of whichever call happened to start it.
            self._writer = asyncio.create_task(self._write_all(), context=contextvars.Context())

    async def _write_all(self) -> None:
        while self._claims or self._finishes or self._replay_wanted:
            self._replay_wanted = False
            claims, self._claims = self._claims, []
            finishes, self._finishes = self._finishes, []
            replay = await self._read_outbox()
            try:
                await self._write_batch(claims, finishes, replay)
                if replay:
                    await self._cleared(len(replay))
            except (SQLAlchemyError, OSError) as exc:
                # Claims and outcomes already written on the loop have their result.
                claims = [claim for claim in claims if not _settled(claim[1])]
                finishes = [fin for fin in finishes if not _settled(fin[1])]
                if replay:
                    log.warning("notice_outbox_replay_failed backlog=%d error=%s",
                                len(replay), type(exc).__name__)
                if self.outbox is not None and isinstance(exc, UNAVAILABLE):
                    await self._to_outbox(claims, finishes, exc)
                elif len(claims) + len(finishes) == 1:
                    self._fail(claims, finishes, exc)
                else:
                    # One bad row must not fail the others: write each on its own.
                    for claim in claims:
                        await self._write_alone([claim], [])
                    for fin in finishes:
                        await self._write_alone([], [fin])
            except BaseException:
                for fut in _waiters(claims, finishes):
                    fut.cancel()
                raise

    async def _read_outbox(self) -> list[_Record]:
        if self.outbox is None or self._backlog == 0:
            return []
        try:
            records = await self.outbox.read()
        except OSError:
            log.exception("notice_outbox_unreadable path=%s", self.outbox.path)
            return []
        self._backlog = len(records)
        return records

    async def _cleared(self, replayed: int) -> None:
        assert self.outbox is not None
        log.info("notice_outbox_replayed proofs=%d", replayed)
        try:
            await self.outbox.clear(replayed)
            self._backlog = 0
        except OSError:
            # Committed but not removed: the next replay writes them again, a no-op.
            log.exception("notice_outbox_not_cleared path=%s", self.outbox.path)

    async def _to_outbox(self, claims: list[_Claim], finishes: list[_Finish],
                         exc: BaseException) -> None:
        """The database cannot take this batch: keep it, in order, on disk. Claims
        still fail (unknown whether first: the caller is told); outcomes are kept."""
        assert self.outbox is not None
        records: list[_Record] = [("claim", row) for row, _ in claims]
        records += [("finish", params) for params, _ in finishes]
        if not records:  # only a replay failed: it stays in the file for the next one
            return
        try:
            await self.outbox.append(records)
        except OSError:
            self.unrecorded += len(records)
            for kind, values in records:
                log.error("notice_proof_unrecorded call_id=%s kind=%s error=%s",
                          values.get("call_id") or values.get("b_call_id"), kind, exc)
            self._fail(claims, finishes, exc)
            return
        self._backlog = max(self._backlog, 0) + len(records)
        for kind, values in records:
            log.warning("notice_proof_outboxed call_id=%s kind=%s backlog=%d error=%s",
                        values.get("call_id") or values.get("b_call_id"), kind, self._backlog,
                        type(exc).__name__)
        for _, fut in claims:
            if not fut.done():
                fut.set_exception(exc)
        for _, done in finishes:
            if not done.done():
                done.set_result(False)

    async def _write_alone(self, claims: list[_Claim], finishes: list[_Finish]) -> None:
        try:
            await self._write_batch(claims, finishes)
        except (SQLAlchemyError, OSError) as exc:
            self._fail(claims, finishes, exc)

    @staticmethod
    def _fail(claims: list[_Claim], finishes: list[_Finish], exc: BaseException) -> None:
        # The error itself is raised in each waiter: claim_or_assume_first turns it
        # into "play the notice", record() into notice_proof_not_saved.
        for fut in _waiters(claims, finishes):
            if not fut.done():
                fut.set_exception(exc)

    async def _write_batch(self, claims: list[_Claim], finishes: list[_Finish],
                           replay: list[_Record] | None = None) -> None:
        """One transaction for all of them; futures are resolved only after the commit.
        The outbox's records go first, one by one in file order: a call's outcome
        must land after its claim. On SQLite, what can be written on the loop is
        (and resolved there, per transaction); the rest comes here."""
        if not replay:
            claims, finishes = await self._write_inloop(claims, finishes)
            if not claims and not finishes:
                return
        first: dict[str, int] = {}  # call_id -> index of its first claim in this batch
        for i, (row, _) in enumerate(claims):
            first.setdefault(row["call_id"], i)
        rows = [claims[i][0] for i in first.values()]
        won = await self._write_threaded(rows, [params for params, _ in finishes], replay)
        for i, (row, fut) in enumerate(claims):
            if not fut.done():
                # Two channels of one call in one batch: only the first can win.
                fut.set_result(row["call_id"] in won and first[row["call_id"]] == i)
        for _, done in finishes:
            if not done.done():
                done.set_result(True)

    async def _write_inloop(self, claims: list[_Claim], finishes: list[_Finish],
                            ) -> tuple[list[_Claim], list[_Finish]]:
        """The batch on the loop (SQLite only), in transactions of at most
        INLOOP_MAX_ROWS rows (about a millisecond each), the loop free between them;
        each transaction's waiters are resolved after its commit. Returns what is
        left for the threaded path: everything from the first transaction that
        could not be done here (locked, an error), untouched."""
        inloop = self._inloop
        if inloop is None or inloop.disabled or not (claims or finishes):
            return claims, finishes
        if not inloop.is_open:
            try:
                await asyncio.to_thread(inloop.open)
            except sqlite3.Error as exc:
                log.debug("notice_ledger_inloop_unopened error=%r", exc)
                return claims, finishes
            if inloop.disabled:
                return claims, finishes
        by_call: dict[str, list[_Claim]] = {}  # call_id -> its claims, in arrival order
        for claim in claims:
            by_call.setdefault(claim[0]["call_id"], []).append(claim)
        calls = list(by_call.values())
        while calls or finishes:
            some_calls = calls[:INLOOP_MAX_ROWS]
            some_finishes = finishes[:INLOOP_MAX_ROWS - len(some_calls)]
            won = inloop.write([same[0][0] for same in some_calls],
                               [params for params, _ in some_finishes])
            if won is None:
                break
            calls, finishes = calls[len(some_calls):], finishes[len(some_finishes):]
            self.inloop_batches += 1
            for same in some_calls:
                # Two channels of one call in one batch: only the first can win.
                for n, (row, fut) in enumerate(same):
                    if not fut.done():
                        fut.set_result(n == 0 and row["call_id"] in won)
            for _, done in some_finishes:
                if not done.done():
                    done.set_result(True)
            if inloop.checkpoint_due():
                self._keep(asyncio.create_task(self._checkpoint(),
                                               context=contextvars.Context()))
            if calls or finishes:
                await asyncio.sleep(0)  # let the loop run between two transactions
        return [claim for same in calls for claim in same], finishes

    async def _checkpoint(self) -> None:
        """A passive WAL checkpoint (it fsyncs) off the loop, on the engine's
        connection: it waits for no one and nobody waits for it."""
        try:
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except (SQLAlchemyError, OSError) as exc:
            log.warning("notice_ledger_checkpoint_failed error=%s", type(exc).__name__)

    async def _write_threaded(self, rows: list[dict[str, Any]], finishes: list[dict[str, Any]],
                              replay: list[_Record] | None) -> set[str]:
        self.threaded_batches += 1
        won: set[str] = set()
        async with self._engine.begin() as conn:
            for kind, values in replay or []:
                if kind == "claim":
                    await self._insert(conn, [values])
                else:
                    await conn.execute(self._finish_stmt, [values])
            for start in range(0, len(rows), MAX_BATCH):
                won |= await self._insert(conn, rows[start:start + MAX_BATCH])
            for start in range(0, len(finishes), MAX_BATCH):
                await conn.execute(self._finish_stmt, finishes[start:start + MAX_BATCH])
        return won

    async def _insert(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
        if len(rows) == 1:  # the common case when calls do not overlap: no executemany
            result = await conn.execute(self._claim_stmt, rows[0])
        else:
            result = await conn.execute(self._claim_stmt, rows)
        return {str(call_id) for call_id in result.scalars()}

    async def claim_or_assume_first(
        self, call_id: str, channel_id: str, caller: str, version: str,
        wait: float = DEFAULT_CLAIM_WAIT,
    ) -> bool:
        """claim(), but a database failure means "play it": the law asks for the notice,
        and a caller told twice is a lesser harm than one recorded without being told.
        So is a database slower than `wait` seconds (locked by another process: each
        claim queues behind busy_timeout): the caller hears the notice and the claim
        finishes in the background."""
        return await self.first(self.claim_soon(call_id, channel_id, caller, version), wait)

    def claim_soon(self, call_id: str, channel_id: str, caller: str, version: str) -> Claim:
        """The claim handed to the writer now; `first()` says later whether it won, so a
        caller can be answered meanwhile. No task of its own: its start and end would
        cost two loop iterations on the way to the notice (bench/README.md). The claim
        is written even if nobody asks `first()` (a hang-up, a shutdown)."""
        started = asyncio.get_running_loop().time()
        try:
            written = self._enqueue_claim(call_id, channel_id, caller, version)
        except BadId as exc:
            # Edges validate first, so this is a bug upstream; the caller is told anyway.
            log.warning("notice_ledger_refused reason=%s; playing the notice without proof", exc)
            return Claim(channel_id, started, None)
        # Its waiter may be cancelled (a shutdown) before a failed batch fails it.
        written.add_done_callback(read_outcome)
        return Claim(channel_id, started, written)

    async def first(self, claim: Claim, wait: float = DEFAULT_CLAIM_WAIT) -> bool:
        """True when the caller is to hear the notice: the claim won, or the database
        failed or took longer than `wait` seconds since the claim was handed in."""
        written = claim.written
        if written is None:
            return True
        loop = asyncio.get_running_loop()
        if not written.done():  # usually done: the claim is written while Asterisk answers
            await asyncio.wait({written}, timeout=max(0.0, claim.started + wait - loop.time()))
        if not written.done():
            waited = loop.time() - claim.started
            log.warning("notice_claim_slow channel=%s waited=%.2fs; playing the notice",
                        claim.channel_id, waited)
            written.add_done_callback(
                lambda fut: self._late_claim(fut, claim.channel_id, loop.time() - claim.started))
            return True
        try:
            won = written.result()
        except (SQLAlchemyError, OSError):
            log.exception("notice_ledger_unavailable channel=%s; playing the notice",
                          claim.channel_id)
            return True
        if not won:
            log.info("notice_skipped channel=%s reason=already_played_in_call", claim.channel_id)
        return won

    @staticmethod
    def _late_claim(task: asyncio.Future[bool], channel_id: str, waited: float) -> None:
        """A claim that came back after its caller was already hearing the notice."""
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, UNAVAILABLE):
            # With an outbox, the claim is on disk (notice_proof_outboxed said so).
            log.warning("notice_claim_late channel=%s waited=%.2fs result=unavailable "
                        "error=%s", channel_id, waited, type(exc).__name__)
        elif exc is not None:
            log.error("notice_claim_late channel=%s waited=%.2fs result=error error=%r",
                      channel_id, waited, exc)
        elif task.result():
            log.info("notice_claim_late channel=%s waited=%.2fs result=claimed",
                     channel_id, waited)
        else:
            # The accepted price of claim-or-play: another channel of this call had
            # already claimed it, so this caller may have heard the notice twice.
            log.warning("notice_played_twice channel=%s waited=%.2fs", channel_id, waited)

    def _keep(self, task: asyncio.Task[Any]) -> None:
        # Held until done (the loop keeps only weak references), and drained at shutdown.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def record_soon(self, call_id: str, channel_id: str, outcome: str,
                    reason: str = "") -> asyncio.Future[bool]:
        """The outcome handed to the writer now: the call goes on without waiting for
        the database, and nothing it does (a hang-up, a cancel) takes the proof back.
        The line saying where it went is logged once written, with the caller's
        context (its call id). `reason` says why a notice failed (the log line carries
        it; the row has no column). No task per outcome: the writer resolves it."""
        done = self._enqueue_finish(call_id, outcome)
        self._unlogged.add(done)
        done.add_done_callback(partial(_recorded, channel_id, outcome, reason),
                               context=contextvars.copy_context())
        done.add_done_callback(self._unlogged.discard)  # after the line
        return done

    async def record(self, call_id: str, channel_id: str, outcome: str, reason: str = "") -> None:
        """record_soon(), and until it is written (or failed: this never raises)."""
        await asyncio.wait({self.record_soon(call_id, channel_id, outcome, reason)})

    async def get(self, call_id: str) -> NoticePlay | None:
        async with self._sessions() as session:
            result = await session.execute(select(NoticePlay).where(NoticePlay.call_id == call_id))
            return result.scalar_one_or_none()
