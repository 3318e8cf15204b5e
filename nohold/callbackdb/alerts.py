"""The on-duty technician's alerts: one run per opening of a ticket, one row per step.

A step happens once: it is claimed by inserting its row (unique ticket, run, step), and
only the node whose insert won sends it. A sender that dies between the claim and the
outcome leaves the row `sending` with a lease; when the lease ends, any node takes it
again and resends (at least once: an SMSC that took the message just before the crash
sends it twice, which is better than a technician never told). A failed send waits in
`retry` with a growing pause, and is never given up while the ticket is open.

Times are timezone-aware UTC datetimes; SQLite stores them without the zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.models import Alert, AlertRun, Ticket
from nohold.callbackdb.times import aware_utc
from nohold.decisions.escalation import Step

# Row states.
SENDING, SENT, RETRY = "sending", "sent", "retry"
DELIVERED, UNDELIVERABLE = "delivered", "undeliverable"
SKIPPED, CANCELLED, FAILED = "skipped", "cancelled", "failed"
ANSWERED, ACKNOWLEDGED, UNANSWERED = "answered", "acknowledged", "unanswered"
# Run states.
RUNNING, STOPPED, EXHAUSTED, NOBODY, NOT_ALERTED = (
    "running", "stopped", "exhausted", "nobody", "not_alerted")



@dataclass(frozen=True)
class RunRecord:
    ticket_id: int
    run: int
    started_at: datetime
    people: str
    state: str
    why: str
    ended_at: datetime | None

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(p for p in self.people.split(",") if p)

    @classmethod
    def of(cls, row: Any) -> RunRecord:
        return cls(**{f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)})


@dataclass(frozen=True)
class AlertRecord:
    id: int
    ticket_id: int
    run: int
    step: str
    round: int
    person: str
    via: str
    address: str
    due_at: datetime
    state: str
    attempts: int
    next_try_at: datetime | None
    holder: str
    lease_until: datetime | None
    message_id: str
    detail: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> AlertRecord:
        return cls(**{f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (v.isoformat() if isinstance(v := getattr(self, f.name), datetime)
                         else v) for f in fields(self)}


@dataclass(frozen=True)
class NewTicket:
    """An open ticket whose current opening has no run yet."""

    id: int
    run: int
    urgency: str
    received_at: datetime


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    # -- runs ---------------------------------------------------------------------------
    async def without_run(self, limit: int = 50) -> list[NewTicket]:
        stmt = (select(Ticket.id, Ticket.reopened, Ticket.urgency, Ticket.received_at)
                .outerjoin(AlertRun, and_(AlertRun.ticket_id == Ticket.id,
                                          AlertRun.run == Ticket.reopened))
                .where(Ticket.state == "open", AlertRun.ticket_id.is_(None))
                .order_by(Ticket.id).limit(limit))
        async with self._engine.connect() as conn:
            return [NewTicket(r.id, r.reopened, r.urgency, aware_utc(r.received_at))
                    for r in (await conn.execute(stmt)).all()]

    async def start_run(self, ticket_id: int, run: int, now: datetime,
                        people: Iterable[str], state: str = RUNNING, why: str = ""
                        ) -> RunRecord | None:
        """The run, or None when another node started it first."""
        now = now.astimezone(UTC)
        stmt = (self._dialect.insert(AlertRun)
                .values(ticket_id=ticket_id, run=run, started_at=now,
                        people=",".join(people), state=state, why=why[:200],
                        ended_at=None if state == RUNNING else now)
                .on_conflict_do_nothing(index_elements=[AlertRun.ticket_id, AlertRun.run])
                .returning(AlertRun.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else RunRecord.of(row)

    async def running(self) -> list[tuple[RunRecord, str, set[str]]]:
        """Every running run with its ticket's state now and the steps it has done, in
        two queries whatever the number of runs (the loop asks every second)."""
        runs = (select(AlertRun, Ticket.state.label("ticket_state"))
                .join(Ticket, Ticket.id == AlertRun.ticket_id)
                .where(AlertRun.state == RUNNING).order_by(AlertRun.ticket_id))
        steps = (select(Alert.ticket_id, Alert.run, Alert.step)
                 .join(AlertRun, and_(AlertRun.ticket_id == Alert.ticket_id,
                                      AlertRun.run == Alert.run))
                 .where(AlertRun.state == RUNNING))
        async with self._engine.connect() as conn:
            found = [(RunRecord.of(r), r.ticket_state) for r in (await conn.execute(runs)).all()]
            done: dict[tuple[int, int], set[str]] = {}
            for r in (await conn.execute(steps)).all():
                done.setdefault((r.ticket_id, r.run), set()).add(r.step)
        return [(run, state, done.get((run.ticket_id, run.run), set()))
                for run, state in found]

    async def end_run(self, ticket_id: int, run: int, state: str, why: str, now: datetime
                      ) -> bool:
        """Ends a running run (True), and cancels its sends still waiting for a retry;
        False when it had ended already (another node)."""
        now = now.astimezone(UTC)
        async with self._engine.begin() as conn:
            done = (await conn.execute(
                update(AlertRun)
                .where(AlertRun.ticket_id == ticket_id, AlertRun.run == run,
                       AlertRun.state == RUNNING)
                .values(state=state, why=why[:200], ended_at=now))).rowcount
            if done:
                await conn.execute(
                    update(Alert).where(Alert.ticket_id == ticket_id, Alert.run == run,
                                        Alert.state == RETRY)
                    .values(state=CANCELLED, next_try_at=None, updated_at=now,
                            detail="acknowledged meanwhile" if state == STOPPED else why))
        return bool(done)

    async def runs(self, ticket_id: int) -> list[RunRecord]:
        stmt = select(AlertRun).where(AlertRun.ticket_id == ticket_id).order_by(AlertRun.run)
        async with self._engine.connect() as conn:
            return [RunRecord.of(r) for r in (await conn.execute(stmt)).all()]

    # -- steps --------------------------------------------------------------------------
    async def done_steps(self, ticket_id: int, run: int) -> set[str]:
        stmt = select(Alert.step).where(Alert.ticket_id == ticket_id, Alert.run == run)
        async with self._engine.connect() as conn:
            return set((await conn.execute(stmt)).scalars().all())

    async def in_flight(self, ticket_id: int, run: int) -> int:
        """Steps of the run still being carried out (a call ringing, an SMS waiting for
        its retry): the run is not over while one may still be acknowledged."""
        stmt = select(Alert.id).where(Alert.ticket_id == ticket_id, Alert.run == run,
                                      Alert.state.in_([SENDING, RETRY]))
        async with self._engine.connect() as conn:
            return len((await conn.execute(stmt)).all())

    async def claim(self, ticket_id: int, run: int, step: Step, address: str, holder: str,
                    now: datetime, lease: timedelta, state: str = SENDING, detail: str = ""
                    ) -> AlertRecord | None:
        """The step's row, claimed by `holder` (state `sending`, or `skipped`); None when it
        was claimed before (by anyone, at any time)."""
        now = now.astimezone(UTC)
        stmt = (self._dialect.insert(Alert)
                .values(ticket_id=ticket_id, run=run, step=step.key, round=step.round,
                        person=step.person, via=step.via.value, address=address,
                        due_at=step.due.astimezone(UTC), state=state, attempts=1,
                        holder=holder if state == SENDING else "",
                        lease_until=now + lease if state == SENDING else None,
                        message_id="", detail=detail[:200], created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=[Alert.ticket_id, Alert.run, Alert.step])
                .returning(Alert.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else AlertRecord.of(row)

    async def take_over(self, holder: str, now: datetime,
                        lease: Callable[[str], timedelta], limit: int = 20
                        ) -> list[AlertRecord]:
        """Sends to try again now: `retry` rows whose pause is over, and `sending` rows
        whose sender's lease ended (it died), in running runs of open tickets. Each
        guarded move to `sending` is won by one node; `lease(via)` is how long the
        new sender may take."""
        now = now.astimezone(UTC)
        stmt = (select(Alert.id, Alert.state, Alert.attempts, Alert.via)
                .join(AlertRun, and_(AlertRun.ticket_id == Alert.ticket_id,
                                     AlertRun.run == Alert.run))
                .where(AlertRun.state == RUNNING,
                       ((Alert.state == RETRY) & (Alert.next_try_at <= now))
                       | ((Alert.state == SENDING) & (Alert.lease_until < now)))
                .order_by(Alert.id).limit(limit))
        taken = []
        async with self._engine.begin() as conn:
            for r in (await conn.execute(stmt)).all():
                row = (await conn.execute(
                    update(Alert).where(Alert.id == r.id, Alert.state == r.state,
                                        Alert.attempts == r.attempts)
                    .values(state=SENDING, holder=holder, lease_until=now + lease(r.via),
                            attempts=Alert.attempts + 1, next_try_at=None, updated_at=now)
                    .returning(Alert.__table__))).first()
                if row is not None:
                    taken.append(AlertRecord.of(row))
        return taken

    async def _set(self, alert_id: int, now: datetime, *, only: Iterable[str] | None = None,
                   **values: Any) -> AlertRecord | None:
        stmt = update(Alert).where(Alert.id == alert_id)
        if only is not None:
            stmt = stmt.where(Alert.state.in_(list(only)))
        values["updated_at"] = now.astimezone(UTC)
        if "detail" in values:
            values["detail"] = str(values["detail"])[:200]
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt.values(values).returning(Alert.__table__))).first()
        return None if row is None else AlertRecord.of(row)

    async def sent(self, alert_id: int, message_id: str, now: datetime) -> None:
        await self._set(alert_id, now, only=(SENDING,), state=SENT,
                        message_id=message_id[:64], lease_until=None, holder="")

    async def failed(self, alert_id: int, error: str, retry_at: datetime | None,
                     now: datetime) -> None:
        """A send that failed: tried again at `retry_at` (None: failed for good)."""
        await self._set(alert_id, now, only=(SENDING,),
                        state=RETRY if retry_at else FAILED, detail=error,
                        next_try_at=retry_at.astimezone(UTC) if retry_at else None,
                        lease_until=None, holder="")

    async def call_outcome(self, alert_id: int, state: str, detail: str, now: datetime
                           ) -> None:
        await self._set(alert_id, now, only=(SENDING, SENT, ANSWERED), state=state,
                        detail=detail, lease_until=None, holder="")

    async def delivery(self, message_id: str, state: str, detail: str, now: datetime
                       ) -> AlertRecord | None:
        """The SMSC's delivery report for `message_id`; the alert it is about, or None."""
        stmt = (update(Alert).where(Alert.message_id == message_id,
                                    Alert.state.in_([SENT, SENDING]))
                .values(state=state, detail=detail[:200], updated_at=now.astimezone(UTC))
                .returning(Alert.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else AlertRecord.of(row)

    # -- reading ------------------------------------------------------------------------
    async def alerts(self, ticket_id: int) -> list[AlertRecord]:
        stmt = select(Alert).where(Alert.ticket_id == ticket_id).order_by(Alert.id)
        async with self._engine.connect() as conn:
            return [AlertRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def latest_open_for(self, person: str) -> int | None:
        """The open ticket most recently alerted to `person` (what a bare "ok" means)."""
        stmt = (select(Alert.ticket_id).join(Ticket, Ticket.id == Alert.ticket_id)
                .where(Alert.person == person, Ticket.state == "open",
                       Alert.state != SKIPPED)
                .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(1))
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()
