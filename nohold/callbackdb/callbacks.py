"""The callback store: every promise to call back, its attempts, and the do-not-call list.

Every change of state is one guarded UPDATE (compare-and-set on the state and, for
the states a node holds, on the owner), and the statement's own result says whether
this node won. So two nodes on one database, or a node restarted after `kill -9`,
can race anywhere and still move each callback once: the loser's UPDATE matches no
row. The transitions themselves are checked against the pure state machine
(nohold.decisions.callbacks) before any SQL runs.

A node holds a callback while it is queued, has an agent, or is being dialled,
for `lease` seconds at a time, and renews the lease while it works on it. A node
that stops renewing (killed, partitioned) loses its callbacks to any node that
takes them over (`take_over`), and its own later updates then match nothing.

Times are timezone-aware UTC datetimes; SQLite stores them without the zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nohold.callbackdb.models import LIVE_STATES_SQL, Callback, CallbackAttempt, DoNotCall
from nohold.decisions.callbacks import (
    FINAL,
    LIVE,
    WAITING,
    AfterAttempt,
    AttemptOutcome,
    State,
    Turn,
    check_transition,
    turn,
)

# The states a node holds under a lease.
HELD = frozenset({State.QUEUED, State.AGENT_CONNECTED, State.DIALLING})


class CannotCancel(Exception):
    pass


def _utc(value: Any) -> Any:
    # SQLite gives back naive datetimes (stored as UTC): make them aware again.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class CallbackRecord:
    id: int
    call_id: str
    number: str
    queue: str
    state: State
    arrived_at: datetime
    requested_at: datetime
    promised_earliest: datetime | None
    promised_latest: datetime | None
    expires_at: datetime
    due_at: datetime | None
    attempts: int
    requests: int
    owner: str
    lease_until: datetime | None
    outcome: str
    updated_at: datetime
    scheduled: bool = False  # agreed for due_at, its window ending at expires_at
    owner_agent: str = ""  # who promised it
    note: str = ""
    moved_from: datetime | None = None  # the agreed time before a closure moved it
    moved_why: str = ""

    @classmethod
    def of(cls, row: Any) -> CallbackRecord:
        values: dict[str, Any] = {f.name: _utc(row._mapping[f.name]) for f in fields(cls)}
        values["state"] = State(values["state"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else (
                str(value) if isinstance(value, State) else value)
        return out


@dataclass(frozen=True)
class AttemptRecord:
    callback_id: int
    attempt: int
    node: str
    agent: str
    agent_up_at: datetime | None
    customer_ring_at: datetime | None
    customer_answer_at: datetime | None
    bridged_at: datetime | None
    ended_at: datetime | None
    outcome: str
    cause: str
    answer_to_audio_ms: float | None

    @classmethod
    def of(cls, row: Any) -> AttemptRecord:
        values = dict(row._mapping)
        return cls(**{f.name: _utc(values[f.name]) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (v.isoformat() if isinstance(v, datetime) else v)
                for f in fields(self) for v in (getattr(self, f.name),)}


_ATTEMPT_TIMES = ("agent_up_at", "customer_ring_at", "customer_answer_at", "bridged_at")


class CallbackStore:
    def __init__(self, engine: AsyncEngine, node: str, lease: float = 30.0) -> None:
        self._engine = engine
        self.node = node
        self.lease = timedelta(seconds=lease)
        self._postgres = engine.dialect.name == "postgresql"
        self._dialect = postgresql if self._postgres else sqlite

    # -- requests -----------------------------------------------------------------------
    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def request(self, *, call_id: str, number: str, queue: str, arrived_at: datetime,
                      now: datetime, promised: tuple[datetime, datetime] | None,
                      expires_at: datetime, due_at: datetime | None = None,
                      owner_agent: str = "", note: str = "") -> tuple[CallbackRecord, bool]:
        """A pending callback, and True; or, when one is already live for this number
        and queue, that one (asked once more, keeping the earlier arrival) and False.
        With `due_at` it is scheduled: not served before it, ahead of the others after."""
        # SQLite keeps no offset: every instant is stored in UTC.
        arrived_at, now, expires_at = (t.astimezone(UTC) for t in (arrived_at, now, expires_at))
        due_at = due_at.astimezone(UTC) if due_at is not None else None
        promised = (promised[0].astimezone(UTC), promised[1].astimezone(UTC)) \
            if promised else None
        values = {
            "scheduled": due_at is not None, "due_at": due_at,
            "owner_agent": owner_agent[:80], "note": note[:200],
            "call_id": call_id, "number": number, "queue": queue, "state": State.PENDING.value,
            "arrived_at": arrived_at, "requested_at": now, "expires_at": expires_at,
            "promised_earliest": promised[0] if promised else None,
            "promised_latest": promised[1] if promised else None,
            "updated_at": now, "attempts": 0, "requests": 1, "owner": "", "outcome": "",
        }
        live = Callback.__table__.c
        stmt = (
            self._dialect.insert(Callback)
            .values(values)
            .on_conflict_do_nothing(index_elements=[live.number, live.queue],
                                    # the index's own words: SQLite matches them as written
                                    index_where=text(LIVE_STATES_SQL))
            .returning(Callback.__table__)
        )
        again = (
            update(Callback)
            .where(Callback.number == number, Callback.queue == queue,
                   Callback.state.in_([s.value for s in LIVE]))
            .values(requests=Callback.requests + 1, updated_at=now)
            .returning(Callback.__table__)
        )
        # A live row can turn final between the two statements: then insert again.
        for _ in range(3):
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).first()
                if row is not None:
                    return CallbackRecord.of(row), True
                row = (await conn.execute(again)).first()
                if row is not None:
                    return CallbackRecord.of(row), False
        raise RuntimeError(f"callback for {number} in {queue} kept changing state")

    # -- turns --------------------------------------------------------------------------
    def _waiting(self, now: datetime) -> Any:
        return and_(
            or_(and_(Callback.state == State.PENDING.value,
                     or_(Callback.due_at.is_(None), Callback.due_at <= now)),
                and_(Callback.state == State.RETRY.value, Callback.due_at <= now)),
            Callback.expires_at > now,
        )

    async def take_turns(self, queue: str, limit: int, now: datetime) -> list[CallbackRecord]:
        """Up to `limit` waiting callbacks of `queue`, earliest arrival first, now
        queued and held by this node. Nodes racing here split them, never share."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC text
        if limit <= 0:
            return []
        pick = (
            select(Callback.id)
            .where(Callback.queue == queue, self._waiting(now))
            # An agreed time first (it is due now), then arrival order.
            .order_by(Callback.scheduled.desc(), Callback.arrived_at, Callback.id)
            .limit(limit)
        )
        if self._postgres:
            pick = pick.with_for_update(skip_locked=True)
        # Materialised once: as a plain IN (subquery) PostgreSQL may run the LIMIT
        # more than once in one UPDATE and take more rows than asked (seen: 4 of 3).
        picked = pick.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
        stmt = (
            update(Callback)
            .where(Callback.id.in_(select(picked.c.id)), self._waiting(now))
            .values(state=State.QUEUED.value, owner=self.node, lease_until=now + self.lease,
                    updated_at=now)
            .returning(Callback.__table__)
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted((CallbackRecord.of(r) for r in rows),
                      key=lambda r: (not r.scheduled, r.arrived_at, r.id))

    async def waiting(self, queue: str, now: datetime) -> list[CallbackRecord]:
        """Callbacks of `queue` waiting in the database for a place, in arrival order."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC text
        stmt = (select(Callback).where(Callback.queue == queue, self._waiting(now))
                .order_by(Callback.arrived_at, Callback.id))
        async with self._engine.connect() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def count_ahead(self, queue: str, arrived_at: datetime,
                          states: Iterable[State] = LIVE) -> int:
        """Callbacks of `queue` (live ones, or those in `states`) whose callers arrived
        no later than `arrived_at`: they are served first."""
        stmt = (select(func.count()).select_from(Callback)
                .where(Callback.queue == queue, Callback.arrived_at <= arrived_at,
                       Callback.state.in_([s.value for s in states])))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def turns(self, ids: Iterable[int]) -> dict[int, Turn]:
        """The serving order (decisions.callbacks.turn) of the callbacks `ids`."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        stmt = select(Callback.id, Callback.scheduled, Callback.arrived_at).where(
            Callback.id.in_(wanted))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return {r.id: turn(bool(r.scheduled), _utc(r.arrived_at).timestamp(), r.id)
                for r in rows}

    async def count_in(self, queue: str, state: State) -> int:
        """Callbacks of `queue` in `state`, whoever holds them (e.g. placeholders standing)."""
        stmt = (select(func.count()).select_from(Callback)
                .where(Callback.queue == queue, Callback.state == state.value))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    # -- moves --------------------------------------------------------------------------
    async def move(self, callback_id: int, old: State, new: State, now: datetime,
                   **values: Any) -> CallbackRecord | None:
        """old -> new if the callback is still in `old` (and, if `old` is held, held by
        this node); the updated record, or None when another move won."""
        check_transition(old, new)
        async with self._engine.begin() as conn:
            return await self._move(conn, callback_id, old, new, now, values)

    async def _move(self, conn: AsyncConnection, callback_id: int, old: State, new: State,
                    now: datetime, values: dict[str, Any]) -> CallbackRecord | None:
        guard = [Callback.id == callback_id, Callback.state == old.value]
        if old in HELD:
            guard.append(Callback.owner == self.node)
        if new in HELD:
            values = {"owner": self.node, "lease_until": now + self.lease, **values}
        else:
            values = {"owner": "", "lease_until": None, **values}
        stmt = (update(Callback).where(*guard)
                .values(state=new.value, updated_at=now, **values)
                .returning(Callback.__table__))
        row = (await conn.execute(stmt)).first()
        return CallbackRecord.of(row) if row is not None else None

    async def renew(self, ids: Iterable[int], now: datetime) -> set[int]:
        """Extend this node's leases; the ids still held (a missing one was taken over)."""
        ids = list(ids)
        if not ids:
            return set()
        stmt = (update(Callback)
                .where(Callback.id.in_(ids), Callback.owner == self.node,
                       Callback.state.in_([s.value for s in HELD]))
                .values(lease_until=now + self.lease)
                .returning(Callback.id))
        async with self._engine.begin() as conn:
            return set((await conn.execute(stmt)).scalars())

    async def lapsed(self, now: datetime) -> list[CallbackRecord]:
        """Held callbacks whose holder stopped renewing (any node, this one included
        after a restart)."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC text
        stmt = (select(Callback)
                .where(Callback.state.in_([s.value for s in HELD]), Callback.lease_until < now)
                .order_by(Callback.arrived_at, Callback.id))
        async with self._engine.connect() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def mine(self) -> list[CallbackRecord]:
        """Callbacks this node holds (after a restart: what it held before it died)."""
        stmt = (select(Callback)
                .where(Callback.owner == self.node, Callback.state.in_([s.value for s in HELD]))
                .order_by(Callback.arrived_at, Callback.id))
        async with self._engine.connect() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def take_over(self, record: CallbackRecord, now: datetime) -> CallbackRecord | None:
        """Hold a lapsed callback as it is; None if its holder renewed or another node
        took it first (the guard is the exact owner and lease that were seen)."""
        stmt = (update(Callback)
                .where(Callback.id == record.id, Callback.state == record.state.value,
                       Callback.owner == record.owner,
                       Callback.lease_until == record.lease_until)
                .values(owner=self.node, lease_until=now + self.lease, updated_at=now)
                .returning(Callback.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return CallbackRecord.of(row) if row is not None else None

    async def due_scheduled(self, now: datetime) -> list[CallbackRecord]:
        """Scheduled callbacks waiting whose time has come (whether their window is still
        open or not): what a closure of the calendar may have to move."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC text
        stmt = (select(Callback)
                .where(Callback.state.in_([s.value for s in WAITING]),
                       Callback.scheduled.is_(True), Callback.due_at <= now)
                .order_by(Callback.due_at, Callback.id))
        async with self._engine.connect() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def move_agreed(self, record: CallbackRecord, at: datetime, until: datetime,
                          why: str, now: datetime) -> CallbackRecord | None:
        """Agreed again for [at, until) (a closure moved it); None when it changed
        meanwhile (taken, cancelled, moved by another node). The first agreed time is
        kept in moved_from."""
        at, until, now = (t.astimezone(UTC) for t in (at, until, now))
        stmt = (update(Callback)
                .where(Callback.id == record.id, Callback.state == record.state.value,
                       Callback.due_at == record.due_at)
                .values(due_at=at, promised_earliest=at, promised_latest=until,
                        expires_at=until, moved_why=why[:120], updated_at=now,
                        moved_from=func.coalesce(Callback.moved_from, record.promised_earliest))
                .returning(Callback.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return CallbackRecord.of(row) if row is not None else None

    async def expire_waiting(self, now: datetime) -> list[CallbackRecord]:
        """Waiting callbacks past expires_at: expired, never dialled."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC text
        stmt = (update(Callback)
                .where(Callback.state.in_([s.value for s in WAITING]), Callback.expires_at <= now)
                # An agreed window that passed is a broken promise, named as such.
                .values(state=State.EXPIRED.value,
                        outcome=case((Callback.scheduled, "missed_window"),
                                     else_="expire_after"),
                        updated_at=now, owner="", lease_until=None)
                .returning(Callback.__table__))
        async with self._engine.begin() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def cancel(self, callback_id: int, now: datetime, reason: str = "cancelled") -> \
            CallbackRecord:
        """Cancelled now, from whatever state allows it; CannotCancel says why not."""
        for _ in range(5):
            record = await self.get(callback_id)
            if record is None:
                raise CannotCancel(f"no callback {callback_id}")
            if record.state in FINAL:
                raise CannotCancel(f"callback {callback_id} is already {record.state}")
            if record.state is State.DIALLING:
                raise CannotCancel(f"callback {callback_id} is being dialled now; its attempt "
                                   "ends within the ring timeout")
            stmt = (update(Callback)
                    .where(Callback.id == callback_id, Callback.state == record.state.value)
                    .values(state=State.CANCELLED.value, outcome=reason, updated_at=now,
                            owner="", lease_until=None)
                    .returning(Callback.__table__))
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).first()
            if row is not None:
                return CallbackRecord.of(row)
        raise CannotCancel(f"callback {callback_id} kept changing state; try again")

    # -- attempts -----------------------------------------------------------------------
    async def begin_attempt(self, record: CallbackRecord, agent: str, now: datetime,
                            agent_up_at: datetime | None = None) -> CallbackRecord | None:
        """agent_connected -> dialling with the next attempt number, and its row, in one
        transaction: the only way to a dial. None if this node no longer holds it."""
        check_transition(record.state, State.DIALLING)
        attempt = record.attempts + 1
        async with self._engine.begin() as conn:
            moved = await self._move(conn, record.id, record.state, State.DIALLING, now,
                                     {"attempts": attempt})
            if moved is None:
                return None
            await conn.execute(insert(CallbackAttempt).values(
                callback_id=record.id, attempt=attempt, node=self.node, agent=agent[:80],
                agent_up_at=agent_up_at or now, outcome="", cause=""))
        return moved

    async def note_attempt(self, callback_id: int, attempt: int, **times: datetime | float
                           ) -> None:
        """Timestamps of the attempt as they happen (ring, answer, bridged, audio)."""
        allowed = set(_ATTEMPT_TIMES) | {"answer_to_audio_ms"}
        unknown = set(times) - allowed
        if unknown:
            raise ValueError(f"not attempt fields: {sorted(unknown)}")
        async with self._engine.begin() as conn:
            await conn.execute(
                update(CallbackAttempt)
                .where(CallbackAttempt.callback_id == callback_id,
                       CallbackAttempt.attempt == attempt)
                .values(**times))

    async def end_attempt(self, record: CallbackRecord, outcome: AttemptOutcome,
                          after: AfterAttempt, now: datetime, cause: str = "",
                          **times: datetime | float) -> CallbackRecord | None:
        """The attempt's end and the callback's next state, in one transaction.
        `record` is the dialling record begin_attempt returned; `after.due_at` is
        UTC epoch seconds."""
        async with self._engine.begin() as conn:
            moved = await self._move(
                conn, record.id, State.DIALLING, after.state, now,
                {"due_at": _at(after.due_at), "outcome": after.reason or str(outcome)})
            if moved is None:
                return None
            await conn.execute(
                update(CallbackAttempt)
                .where(CallbackAttempt.callback_id == record.id,
                       CallbackAttempt.attempt == record.attempts)
                .values(outcome=str(outcome), cause=cause[:40], ended_at=now, **times))
        return moved

    async def attempts(self, callback_id: int) -> list[AttemptRecord]:
        stmt = (select(CallbackAttempt).where(CallbackAttempt.callback_id == callback_id)
                .order_by(CallbackAttempt.attempt))
        async with self._engine.connect() as conn:
            return [AttemptRecord.of(r) for r in (await conn.execute(stmt)).all()]

    # -- reading ------------------------------------------------------------------------
    async def get(self, callback_id: int) -> CallbackRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(Callback).where(Callback.id == callback_id))).first()
        return CallbackRecord.of(row) if row is not None else None

    async def find(self, states: Sequence[State] | None = None, limit: int = 1000,
                   scheduled: bool | None = None) -> list[CallbackRecord]:
        stmt = select(Callback).order_by(Callback.arrived_at, Callback.id).limit(limit)
        if states:
            stmt = stmt.where(Callback.state.in_([s.value for s in states]))
        if scheduled is not None:
            stmt = stmt.where(Callback.scheduled.is_(scheduled))
        async with self._engine.connect() as conn:
            return [CallbackRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def booked_times(self, queue: str, start: datetime, end: datetime
                           ) -> list[datetime]:
        """The agreed times of the live scheduled callbacks of `queue` in [start, end):
        what the slots a caller may choose are already holding."""
        stmt = (select(Callback.promised_earliest)
                .where(Callback.state.in_([s.value for s in LIVE]),
                       Callback.scheduled.is_(True), Callback.queue == queue,
                       Callback.promised_earliest >= start.astimezone(UTC),
                       Callback.promised_earliest < end.astimezone(UTC)))
        async with self._engine.connect() as conn:
            return [_utc(t) for (t,) in (await conn.execute(stmt)).all()]

    # -- do not call --------------------------------------------------------------------
    async def dnc_add(self, number: str, now: datetime, note: str = "") -> bool:
        """True if added, False if it was listed already."""
        stmt = (self._dialect.insert(DoNotCall)
                .values(number=number, added_at=now, note=note[:200])
                .on_conflict_do_nothing(index_elements=[DoNotCall.number])
                .returning(DoNotCall.number))
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def dnc_remove(self, number: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(DoNotCall).where(DoNotCall.number == number).returning(DoNotCall.number))
            return result.first() is not None

    async def dnc_list(self) -> list[tuple[str, datetime, str]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(DoNotCall).order_by(DoNotCall.number))).all()
        return [(r.number, _utc(r.added_at) or r.added_at, r.note) for r in rows]

    async def on_dnc(self, number: str) -> bool:
        async with self._engine.connect() as conn:
            row = (await conn.execute(
                select(DoNotCall.number).where(DoNotCall.number == number))).first()
        return row is not None


def utc_at(epoch: float) -> datetime:
    """The store's time type from epoch seconds (the pure layer's clock)."""
    return datetime.fromtimestamp(epoch, UTC)


def _at(epoch: float | None) -> datetime | None:
    return utc_at(epoch) if epoch is not None else None
