"""The partner's tickets: one row per partner ticket id, its history, and the signed
webhook requests seen within the replay window.

`report` is the one way in, for the webhook and the email channel alike: in one
transaction it refuses a replayed delivery, creates the ticket or updates it (a repeat
never duplicates: the partner id is unique, and a field the repeat leaves out keeps its
value), and records what happened in the history. A report that fails writes nothing.

State changes (acknowledge, resolve, reopen) are checked against the pure state machine
(nohold.decisions.tickets) and written with a guarded UPDATE on the state read, so two
people or two nodes racing move a ticket once. Times are timezone-aware UTC datetimes;
SQLite stores them without the zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nohold.callbackdb.models import Ticket, TicketDelivery, TicketEvent
from nohold.callbackdb.times import aware_utc
from nohold.decisions.tickets import (
    MAX_ACTOR,
    MAX_NOTE,
    Action,
    Category,
    NotAllowed,
    Report,
    State,
    Urgency,
    after,
)

__all__ = ["EventRecord", "NotAllowed", "NoSuchTicket", "Outcome", "Replayed",
           "TicketRecord", "TicketStore"]


class Replayed(Exception):
    """This signed request was accepted before (within the replay window)."""

    def __init__(self, ticket_id: int | None) -> None:
        super().__init__(f"replayed request (ticket {ticket_id})")
        self.ticket_id = ticket_id


class NoSuchTicket(KeyError):
    pass


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"



def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, StrEnum) else value


@dataclass(frozen=True)
class TicketRecord:
    id: int
    partner_id: str
    channel: str
    caller: str
    customer: str
    category: Category
    urgency: Urgency
    text: str
    call_id: str
    reported_at: datetime
    received_at: datetime
    updated_at: datetime
    reports: int
    state: State
    acknowledged_at: datetime | None
    acknowledged_by: str
    resolved_at: datetime | None
    resolved_by: str
    resolution: str
    reopened: int

    @classmethod
    def of(cls, row: Any) -> TicketRecord:
        values = {f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)}
        values["category"] = Category(values["category"])
        values["urgency"] = Urgency(values["urgency"])
        values["state"] = State(values["state"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class EventRecord:
    id: int
    ticket_id: int
    at: datetime
    kind: str  # reported | updated | acknowledged | resolved | reopened
    via: str  # webhook | email | cli | ...
    actor: str
    note: str

    @classmethod
    def of(cls, row: Any) -> EventRecord:
        return cls(**{f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


# What a report may change on a repeat, in the order the history names them.
_CONTENT = ("caller", "customer", "category", "urgency", "text", "call_id", "reported_at")
# Changes the history spells out (the others are personal data or long: named only).
_SPELLED = ("category", "urgency")


class TicketStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- reports ------------------------------------------------------------------------
    async def report(self, report: Report, *, via: str, now: datetime,
                     delivery: str | None = None, keep: timedelta = timedelta(minutes=10),
                     only_new: bool = False,
                     ) -> tuple[TicketRecord, Outcome, tuple[str, ...]]:
        """Create or update the ticket `report.partner_id`; the ticket, what happened and
        the fields that changed. With `delivery` (the webhook's delivery key) the same
        key seen within `keep` raises Replayed and writes nothing; older keys are
        forgotten here. With `only_new` an existing ticket is left as it is
        (UNCHANGED): a report that may come second must not overwrite the first."""
        now = now.astimezone(UTC)
        async with self._engine.begin() as conn:
            if delivery is not None:
                await self._deliver(conn, delivery, now, keep)
            record, outcome, changed = await self._upsert(conn, report, via, now, only_new)
            if delivery is not None:
                await conn.execute(update(TicketDelivery)
                                   .where(TicketDelivery.key == delivery)
                                   .values(ticket_id=record.id))
            return record, outcome, changed

    async def _deliver(self, conn: AsyncConnection, key: str, now: datetime,
                       keep: timedelta) -> None:
        await conn.execute(delete(TicketDelivery)
                           .where(TicketDelivery.received_at < now - keep))
        stmt = (self._dialect.insert(TicketDelivery)
                .values(key=key, received_at=now)
                .on_conflict_do_nothing(index_elements=[TicketDelivery.key])
                .returning(TicketDelivery.key))
        if (await conn.execute(stmt)).first() is None:
            seen = (await conn.execute(select(TicketDelivery.ticket_id)
                                       .where(TicketDelivery.key == key))).scalar()
            raise Replayed(seen)

    async def _upsert(self, conn: AsyncConnection, r: Report, via: str, now: datetime,
                      only_new: bool = False) -> tuple[TicketRecord, Outcome, tuple[str, ...]]:
        reported_at = (r.reported_at or now).astimezone(UTC)
        values = {
            "partner_id": r.partner_id, "channel": via, "caller": r.caller,
            "customer": r.customer or "", "category": r.category.value,
            "urgency": (r.urgency or Urgency.NORMAL).value, "text": r.text,
            "call_id": r.call_id or "", "reported_at": reported_at, "received_at": now,
            "updated_at": now, "reports": 1, "state": State.OPEN.value,
            "acknowledged_by": "", "resolved_by": "", "resolution": "", "reopened": 0,
        }
        stmt = (self._dialect.insert(Ticket).values(values)
                .on_conflict_do_nothing(index_elements=[Ticket.partner_id])
                .returning(Ticket.__table__))
        row = (await conn.execute(stmt)).first()
        if row is not None:
            record = TicketRecord.of(row)
            await self._event(conn, record.id, now, "reported", via, "",
                              f"{record.category} {record.urgency}")
            return record, Outcome.CREATED, ()
        current = TicketRecord.of((await conn.execute(
            select(Ticket).where(Ticket.partner_id == r.partner_id).with_for_update())).one())
        if only_new:
            return current, Outcome.UNCHANGED, ()
        said = {"caller": r.caller, "customer": r.customer, "category": r.category,
                "urgency": r.urgency, "text": r.text, "call_id": r.call_id,
                "reported_at": r.reported_at}
        new = {k: v for k, v in said.items()
               if v is not None and _plain(v) != _plain(getattr(current, k))}
        changed = tuple(k for k in _CONTENT if k in new)
        sets: dict[str, Any] = {"reports": Ticket.reports + 1}
        if changed:
            sets.update({k: _plain(new[k]) if isinstance(new[k], StrEnum) else new[k]
                         for k in changed})
            sets["updated_at"] = now
        row = (await conn.execute(update(Ticket).where(Ticket.id == current.id)
                                  .values(sets).returning(Ticket.__table__))).one()
        record = TicketRecord.of(row)
        if not changed:
            return record, Outcome.UNCHANGED, ()
        note = ", ".join(f"{k} {_plain(getattr(current, k))} -> {_plain(new[k])}"
                         if k in _SPELLED else k for k in changed)
        await self._event(conn, record.id, now, "updated", via, "", note)
        return record, Outcome.UPDATED, changed

    async def _event(self, conn: AsyncConnection, ticket_id: int, at: datetime, kind: str,
                     via: str, actor: str, note: str) -> None:
        await conn.execute(insert(TicketEvent).values(
            ticket_id=ticket_id, at=at, kind=kind, via=via[:16], actor=actor[:MAX_ACTOR],
            note=note[:MAX_NOTE]))

    # -- reading ------------------------------------------------------------------------
    async def get(self, ticket_id: int) -> TicketRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(Ticket).where(Ticket.id == ticket_id))).first()
        return None if row is None else TicketRecord.of(row)

    async def by_partner_id(self, partner_id: str) -> TicketRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(
                select(Ticket).where(Ticket.partner_id == partner_id))).first()
        return None if row is None else TicketRecord.of(row)

    async def find(self, states: Iterable[State] | None = None, limit: int = 100
                   ) -> list[TicketRecord]:
        """Tickets in `states` (all when None), the newest first."""
        stmt = select(Ticket)
        if states is not None:
            stmt = stmt.where(Ticket.state.in_([State(s).value for s in states]))
        stmt = stmt.order_by(Ticket.received_at.desc(), Ticket.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [TicketRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def events(self, ticket_id: int) -> list[EventRecord]:
        stmt = (select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                .order_by(TicketEvent.id))
        async with self._engine.connect() as conn:
            return [EventRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def deliveries(self) -> int:
        """How many signed requests are remembered (for tests and `nohold check`)."""
        async with self._engine.connect() as conn:
            return len((await conn.execute(select(TicketDelivery.key))).all())

    # -- states -------------------------------------------------------------------------
    async def acknowledge(self, ticket_id: int, *, by: str, via: str, now: datetime,
                          note: str = "") -> tuple[TicketRecord, bool]:
        """The ticket acknowledged by `by`, and True; or as it was and False when it was
        acknowledged (or resolved) already: the first acknowledgement is the one kept."""
        return await self._move(ticket_id, Action.ACK, by, via, note, now)

    async def resolve(self, ticket_id: int, *, by: str, via: str, note: str,
                      now: datetime) -> TicketRecord:
        """Resolved, with `note` as the resolution; NotAllowed if it is resolved already."""
        return (await self._move(ticket_id, Action.RESOLVE, by, via, note, now))[0]

    async def reopen(self, ticket_id: int, *, by: str, via: str, note: str,
                     now: datetime) -> TicketRecord:
        """Open again (a fix that did not hold); NotAllowed unless it is resolved. The
        acknowledgement and resolution are cleared (the history keeps them), so the
        alerts start again."""
        return (await self._move(ticket_id, Action.REOPEN, by, via, note, now))[0]

    async def _move(self, ticket_id: int, action: Action, by: str, via: str, note: str,
                    now: datetime) -> tuple[TicketRecord, bool]:
        now = now.astimezone(UTC)
        by, note = by[:MAX_ACTOR], note[:MAX_NOTE]
        for _ in range(5):
            async with self._engine.begin() as conn:
                row = (await conn.execute(select(Ticket).where(Ticket.id == ticket_id))).first()
                if row is None:
                    raise NoSuchTicket(ticket_id)
                current = TicketRecord.of(row)
                to = after(current.state, action)
                if to is None:
                    return current, False
                sets: dict[str, Any] = {"state": to.value, "updated_at": now}
                if action is Action.ACK:
                    sets.update(acknowledged_at=now, acknowledged_by=by)
                elif action is Action.RESOLVE:
                    sets.update(resolved_at=now, resolved_by=by, resolution=note)
                    if current.acknowledged_at is None:  # resolving acknowledges too
                        sets.update(acknowledged_at=now, acknowledged_by=by)
                else:
                    sets.update(acknowledged_at=None, acknowledged_by="", resolved_at=None,
                                resolved_by="", resolution="",
                                reopened=Ticket.reopened + 1)
                row = (await conn.execute(
                    update(Ticket).where(Ticket.id == ticket_id,
                                         Ticket.state == current.state.value)
                    .values(sets).returning(Ticket.__table__))).first()
                if row is None:
                    continue  # moved by someone else meanwhile: decide again
                kind = {Action.ACK: "acknowledged", Action.RESOLVE: "resolved",
                        Action.REOPEN: "reopened"}[action]
                await self._event(conn, ticket_id, now, kind, via, by, note)
                return TicketRecord.of(row), True
        raise RuntimeError(f"ticket {ticket_id} kept changing state")
