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
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callbackdb.engine import sessions
from callbackdb.models import NoticePlay
from nohold.decisions.ids import BadId, check_id

# not_told: Asterisk could not play it, even on a retry, and the caller went on untold.
# The column is a free String(20) (no CHECK): a new outcome needs no migration.
OUTCOMES = ("completed", "caller_hung_up", "failed", "not_told")

log = logging.getLogger("nohold.notice")

# At most this many rows per statement (SQLite's bound-parameter limit is 32766
# since 3.32; 6 columns a row). Larger backlogs take several statements, one commit.
MAX_BATCH = 500

_Claim = tuple[dict[str, Any], asyncio.Future[bool]]
_Finish = tuple[dict[str, Any], asyncio.Future[None]]


def _waiters(claims: list[_Claim], finishes: list[_Finish]) -> list[asyncio.Future[Any]]:
    return [fut for _, fut in claims] + [done for _, done in finishes]


class NoticeLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
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

    async def claim(self, call_id: str, channel_id: str, caller: str, version: str) -> bool:
        """True when this call has not had the notice yet (and now owns playing it).

        The unique key makes this atomic across channels and nohold nodes: of two
        channels of one call racing here, exactly one wins. Ids that do not fit the
        columns raise BadId: SQLite would store them whole, and a cut key could collide.
        """
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
        return await won

    async def finish(self, call_id: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown notice outcome {outcome!r}")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        params = {"b_call_id": call_id, "b_outcome": outcome, "b_finished_at": datetime.now(UTC)}
        self._finishes.append((params, done))
        self._wake_writer()
        await done

    async def drain(self) -> None:
        """Until every claim and outcome handed in so far is written (before the
        engine is disposed at shutdown: shielded outcomes outlive their call task)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})

    # -- the group-commit writer ---------------------------------------------------------
    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            # A fresh context: the writer serves many calls, its task must not carry
            # the call id (logs.call_id) of whichever call happened to start it.
            self._writer = asyncio.create_task(self._write_all(), context=contextvars.Context())

    async def _write_all(self) -> None:
        while self._claims or self._finishes:
            claims, self._claims = self._claims, []
            finishes, self._finishes = self._finishes, []
            try:
                await self._write_batch(claims, finishes)
            except SQLAlchemyError as exc:
                if len(claims) + len(finishes) == 1:
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

    async def _write_alone(self, claims: list[_Claim], finishes: list[_Finish]) -> None:
        try:
            await self._write_batch(claims, finishes)
        except SQLAlchemyError as exc:
            self._fail(claims, finishes, exc)

    @staticmethod
    def _fail(claims: list[_Claim], finishes: list[_Finish], exc: SQLAlchemyError) -> None:
        # The error itself is raised in each waiter: claim_or_assume_first turns it
        # into "play the notice", record() into notice_proof_not_saved.
        for fut in _waiters(claims, finishes):
            if not fut.done():
                fut.set_exception(exc)

    async def _write_batch(self, claims: list[_Claim], finishes: list[_Finish]) -> None:
        """One transaction for all of them; futures are resolved only after the commit."""
        first: dict[str, int] = {}  # call_id -> index of its first claim in this batch
        for i, (row, _) in enumerate(claims):
            first.setdefault(row["call_id"], i)
        rows = [claims[i][0] for i in first.values()]
        won: set[str] = set()
        async with self._engine.begin() as conn:
            for start in range(0, len(rows), MAX_BATCH):
                won |= await self._insert(conn, rows[start:start + MAX_BATCH])
            for start in range(0, len(finishes), MAX_BATCH):
                chunk = finishes[start:start + MAX_BATCH]
                await conn.execute(self._finish_stmt, [params for params, _ in chunk])
        for i, (row, fut) in enumerate(claims):
            if not fut.done():
                # Two channels of one call in one batch: only the first can win.
                fut.set_result(row["call_id"] in won and first[row["call_id"]] == i)
        for _, done in finishes:
            if not done.done():
                done.set_result(None)

    async def _insert(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
        if len(rows) == 1:  # the common case when calls do not overlap: no executemany
            result = await conn.execute(self._claim_stmt, rows[0])
        else:
            result = await conn.execute(self._claim_stmt, rows)
        return {str(call_id) for call_id in result.scalars()}

    async def claim_or_assume_first(
        self, call_id: str, channel_id: str, caller: str, version: str
    ) -> bool:
        """claim(), but a database failure means "play it": the law asks for the notice,
        and a caller told twice is a lesser harm than one recorded without being told."""
        try:
            first = await self.claim(call_id, channel_id, caller, version)
        except SQLAlchemyError:
            log.exception("notice_ledger_unavailable channel=%s; playing the notice", channel_id)
            return True
        except BadId as exc:
            # Edges validate first, so this is a bug upstream; the caller is told anyway.
            log.warning("notice_ledger_refused reason=%s; playing the notice without proof", exc)
            return True
        if not first:
            log.info("notice_skipped channel=%s reason=already_played_in_call", channel_id)
        return first

    async def record(self, call_id: str, channel_id: str, outcome: str, reason: str = "") -> None:
        """finish(), shielded from cancellation (a shutdown must not lose the proof of a
        notice already heard) and never raising: the call goes on either way. `reason`
        says why a notice failed (the log line carries it; the row has no column)."""
        try:
            await asyncio.shield(self.finish(call_id, outcome))
            if reason:
                log.info("notice_end channel=%s outcome=%s reason=%s", channel_id, outcome, reason)
            else:
                log.info("notice_end channel=%s outcome=%s", channel_id, outcome)
        except SQLAlchemyError:
            log.exception("notice_proof_not_saved channel=%s outcome=%s", channel_id, outcome)

    async def get(self, call_id: str) -> NoticePlay | None:
        async with self._sessions() as session:
            result = await session.execute(select(NoticePlay).where(NoticePlay.call_id == call_id))
            return result.scalar_one_or_none()
