"""The follow-up calls of resolved tickets: one row per resolution of a ticket, holding
the scheduled callback that makes the call and what the agent recorded.

The row is created once (its key is the ticket and its `reopened` count at the
resolution), by whichever node sees the resolution first; answers move it once, with
a guarded update from `scheduled`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.models import Callback, Ticket, TicketFollowUp
from nohold.callbackdb.tickets import NotAllowed, TicketRecord, TicketStore
from nohold.callbackdb.times import aware_utc

SCHEDULED, FIXED, NOT_FIXED = "scheduled", "fixed", "not_fixed"
UNREACHABLE, NOT_SCHEDULED = "unreachable", "not_scheduled"
ANSWERS = (FIXED, NOT_FIXED, UNREACHABLE)



@dataclass(frozen=True)
class FollowUpRecord:
    ticket_id: int
    resolution: int
    callback_id: int | None
    state: str
    due_at: datetime | None
    detail: str
    answered_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> FollowUpRecord:
        return cls(**{f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (v.isoformat() if isinstance(v := getattr(self, f.name), datetime)
                         else v) for f in fields(self)}


@dataclass(frozen=True)
class Resolved:
    """A resolved ticket whose resolution has no follow-up yet."""

    id: int
    resolution: int
    caller: str
    resolved_at: datetime
    resolution_note: str


class FollowUpStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    async def resolved_without(self, limit: int = 50) -> list[Resolved]:
        stmt = (select(Ticket.id, Ticket.reopened, Ticket.caller, Ticket.resolved_at,
                       Ticket.resolution)
                .outerjoin(TicketFollowUp, and_(TicketFollowUp.ticket_id == Ticket.id,
                                                TicketFollowUp.resolution == Ticket.reopened))
                .where(Ticket.state == "resolved", TicketFollowUp.ticket_id.is_(None))
                .order_by(Ticket.id).limit(limit))
        async with self._engine.connect() as conn:
            return [Resolved(r.id, r.reopened, r.caller, aware_utc(r.resolved_at), r.resolution)
                    for r in (await conn.execute(stmt)).all()]

    async def create(self, ticket_id: int, resolution: int, state: str, now: datetime, *,
                     callback_id: int | None = None, due_at: datetime | None = None,
                     detail: str = "") -> FollowUpRecord | None:
        """The row, or None when another node created it first."""
        now = now.astimezone(UTC)
        stmt = (self._dialect.insert(TicketFollowUp)
                .values(ticket_id=ticket_id, resolution=resolution, callback_id=callback_id,
                        state=state, due_at=due_at.astimezone(UTC) if due_at else None,
                        detail=detail[:200], answered_by="", created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=[TicketFollowUp.ticket_id,
                                                        TicketFollowUp.resolution])
                .returning(TicketFollowUp.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else FollowUpRecord.of(row)

    async def of_ticket(self, ticket_id: int) -> list[FollowUpRecord]:
        stmt = (select(TicketFollowUp).where(TicketFollowUp.ticket_id == ticket_id)
                .order_by(TicketFollowUp.resolution))
        async with self._engine.connect() as conn:
            return [FollowUpRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def answer(self, ticket_id: int, state: str, by: str, now: datetime,
                     detail: str = "") -> FollowUpRecord | None:
        """The ticket's scheduled follow-up moved to `state` (fixed, not_fixed,
        unreachable); None when it has none waiting for an answer."""
        if state not in ANSWERS:
            raise ValueError(f"{state!r}: one of {', '.join(ANSWERS)}")
        now = now.astimezone(UTC)
        async with self._engine.begin() as conn:
            current = (await conn.execute(
                select(TicketFollowUp.resolution)
                .where(TicketFollowUp.ticket_id == ticket_id,
                       TicketFollowUp.state == SCHEDULED)
                .order_by(TicketFollowUp.resolution.desc()).limit(1))).scalar()
            if current is None:
                return None
            row = (await conn.execute(
                update(TicketFollowUp)
                .where(TicketFollowUp.ticket_id == ticket_id,
                       TicketFollowUp.resolution == current,
                       TicketFollowUp.state == SCHEDULED)
                .values(state=state, answered_by=by[:80], updated_at=now,
                        detail=detail[:200] or TicketFollowUp.detail)
                .returning(TicketFollowUp.__table__))).first()
        return None if row is None else FollowUpRecord.of(row)

    async def reopen_ticket(self, done: FollowUpRecord, now: datetime) -> TicketRecord | None:
        """The ticket of a "not fixed" answer, reopened (so the technician on duty is
        alerted again); None when someone else already did. Also called by the
        follow-up loop for an answer whose reopening a killed process never wrote."""
        note = done.detail
        try:
            return await TicketStore(self._engine).reopen(
                done.ticket_id, by=done.answered_by or "nohold", via="followup",
                note=f"follow-up: not fixed{': ' + note if note else ''}", now=now)
        except NotAllowed:  # reopened by someone else meanwhile: open it stays
            return None

    async def not_fixed_unreopened(self) -> list[FollowUpRecord]:
        """"Not fixed" answers whose ticket is still resolved at that resolution: the
        answer was stored and its reopening was not (a process killed in between)."""
        stmt = (select(TicketFollowUp)
                .join(Ticket, Ticket.id == TicketFollowUp.ticket_id)
                .where(TicketFollowUp.state == NOT_FIXED, Ticket.state == "resolved",
                       Ticket.reopened == TicketFollowUp.resolution))
        async with self._engine.connect() as conn:
            return [FollowUpRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def ended_unanswered(self) -> list[FollowUpRecord]:
        """Scheduled follow-ups whose callback ended without an answer recorded
        (expired after its retries, or cancelled): to be marked unreachable."""
        stmt = (select(TicketFollowUp)
                .join(Callback, Callback.id == TicketFollowUp.callback_id)
                .where(TicketFollowUp.state == SCHEDULED,
                       Callback.state.in_(["expired", "cancelled"])))
        async with self._engine.connect() as conn:
            return [FollowUpRecord.of(r) for r in (await conn.execute(stmt)).all()]
