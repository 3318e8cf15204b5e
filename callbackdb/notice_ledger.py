"""Claim-once ledger for the recording notice, keyed by the call's linkedid."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from callbackdb.engine import sessions
from callbackdb.models import NoticePlay
from nohold.decisions.ids import BadId, check_id

# not_told: Asterisk could not play it, even on a retry, and the caller went on untold.
# The column is a free String(20) (no CHECK): a new outcome needs no migration.
OUTCOMES = ("completed", "caller_hung_up", "failed", "not_told")

log = logging.getLogger("nohold.notice")


class NoticeLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = sessions(engine)

    async def claim(self, call_id: str, channel_id: str, caller: str, version: str) -> bool:
        """True when this call has not had the notice yet (and now owns playing it).

        The unique key makes this atomic across channels and nohold nodes: of two
        channels of one call racing here, exactly one wins. Ids that do not fit the
        columns raise BadId: SQLite would store them whole, and a cut key could collide.
        """
        check_id("call_id", call_id)
        check_id("channel_id", channel_id)
        # A Core INSERT, not the ORM unit of work: this sits between a caller's
        # StasisStart and the first sound they hear.
        statement = insert(NoticePlay).values(
            call_id=call_id,
            channel_id=channel_id,
            caller=caller[:64],
            notice_version=version[:80],
            started_at=datetime.now(UTC),
            outcome="playing",
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement)
            return True
        except IntegrityError:
            return False

    async def finish(self, call_id: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown notice outcome {outcome!r}")
        async with self._engine.begin() as conn:
            await conn.execute(
                update(NoticePlay)
                .where(NoticePlay.call_id == call_id, NoticePlay.outcome == "playing")
                .values(outcome=outcome, finished_at=datetime.now(UTC))
            )

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
