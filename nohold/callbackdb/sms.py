"""The SMS outbox: messages to customers, stored before they are sent.

A feature enqueues a message under a key that says what it is (`callback:12:confirm:
<window>`): enqueueing again is a no-op, so every node may try on every pass and the
customer still gets one message. The sender claims a row with a lease before it calls
the SMSC; a sender that dies after the SMSC took the message but before it could say
so leaves the lease to run out, and the message is sent again (at least once, never
lost: the same trade as the alerts, decision 0013).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.models import SmsOut
from nohold.callbackdb.times import aware_utc

QUEUED, SENDING, SENT = "queued", "sending", "sent"
DELIVERED, UNDELIVERABLE, EXPIRED = "delivered", "undeliverable", "expired"
WITHDRAWN = "withdrawn"  # not to be sent any more (the callback was made meanwhile...)


@dataclass(frozen=True)
class SmsRecord:
    id: int
    key: str
    about: str
    kind: str
    to_number: str
    text: str
    state: str
    attempts: int
    next_try_at: datetime | None
    expires_at: datetime
    holder: str
    lease_until: datetime | None
    message_id: str
    detail: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> SmsRecord:
        return cls(**{f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)})


class SmsOutbox:
    def __init__(self, engine: AsyncEngine, node: str = "") -> None:
        self._engine = engine
        self._node = node
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    async def enqueue(self, *, key: str, about: str, kind: str, to: str, text: str,
                      now: datetime, expires_at: datetime) -> bool:
        """True when this call stored it; False when it was there already."""
        now = now.astimezone(UTC)
        stmt = (self._dialect.insert(SmsOut)
                .values(key=key[:120], about=about[:40], kind=kind[:16], to_number=to,
                        text=text[:640], state=QUEUED, attempts=0, next_try_at=now,
                        expires_at=expires_at.astimezone(UTC), holder="", message_id="",
                        detail="", created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=[SmsOut.key])
                .returning(SmsOut.id))
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def about(self, abouts: Iterable[str]) -> list[SmsRecord]:
        """Every message about these things (e.g. callback:12), oldest first."""
        names = list(abouts)
        if not names:
            return []
        stmt = select(SmsOut).where(SmsOut.about.in_(names)).order_by(SmsOut.id)
        async with self._engine.connect() as conn:
            return [SmsRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def queued(self, about_prefix: str, limit: int = 500) -> list[SmsRecord]:
        """Messages not yet sent (waiting for a first try or a retry) about things whose
        name starts with `about_prefix`."""
        stmt = (select(SmsOut).where(SmsOut.state == QUEUED,
                                     SmsOut.about.startswith(about_prefix, autoescape=True))
                .order_by(SmsOut.id).limit(limit))
        async with self._engine.connect() as conn:
            return [SmsRecord.of(r) for r in (await conn.execute(stmt)).all()]

    async def withdraw(self, record: SmsRecord, why: str, now: datetime) -> bool:
        """A queued message that must not go any more; False when a sender took it."""
        stmt = (update(SmsOut).where(SmsOut.id == record.id, SmsOut.state == QUEUED)
                .values(state=WITHDRAWN, next_try_at=None, detail=why[:200],
                        updated_at=now.astimezone(UTC)))
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def claim(self, now: datetime, lease: timedelta, limit: int = 20
                    ) -> list[SmsRecord]:
        """Messages due now (queued and due, or sending with a dead sender's lease),
        each taken by this node with one guarded update."""
        now = now.astimezone(UTC)
        due = (select(SmsOut.id, SmsOut.state, SmsOut.lease_until)
               .where(or_((SmsOut.state == QUEUED) & (SmsOut.next_try_at <= now),
                          (SmsOut.state == SENDING) & (SmsOut.lease_until < now)))
               .order_by(SmsOut.next_try_at, SmsOut.id).limit(limit))
        taken: list[SmsRecord] = []
        async with self._engine.begin() as conn:
            candidates = (await conn.execute(due)).all()
        for c in candidates:
            guard = [SmsOut.id == c.id, SmsOut.state == c.state]
            if c.state == SENDING:
                guard.append(SmsOut.lease_until == c.lease_until)
            stmt = (update(SmsOut).where(*guard)
                    .values(state=SENDING, holder=self._node, lease_until=now + lease,
                            attempts=SmsOut.attempts + 1, updated_at=now)
                    .returning(SmsOut.__table__))
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).first()
            if row is not None:
                taken.append(SmsRecord.of(row))
        return taken

    async def _settle(self, record: SmsRecord, now: datetime, **values: Any) -> bool:
        stmt = (update(SmsOut)
                .where(SmsOut.id == record.id, SmsOut.state == SENDING,
                       SmsOut.holder == self._node, SmsOut.attempts == record.attempts)
                .values(updated_at=now.astimezone(UTC), lease_until=None, **values))
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def sent(self, record: SmsRecord, message_id: str, now: datetime) -> bool:
        return await self._settle(record, now, state=SENT, message_id=message_id[:64],
                                  next_try_at=None, detail="")

    async def retry(self, record: SmsRecord, at: datetime, why: str, now: datetime) -> bool:
        return await self._settle(record, now, state=QUEUED, next_try_at=at.astimezone(UTC),
                                  detail=why[:200])

    async def expire(self, record: SmsRecord, why: str, now: datetime) -> bool:
        return await self._settle(record, now, state=EXPIRED, next_try_at=None,
                                  detail=why[:200])

    async def delivery(self, message_id: str, state: str, stat: str, now: datetime
                       ) -> SmsRecord | None:
        """A delivery report for one of ours; None when the id is not ours."""
        stmt = (update(SmsOut)
                .where(SmsOut.message_id == message_id, SmsOut.state == SENT)
                .values(state=state, detail=stat[:200], updated_at=now.astimezone(UTC))
                .returning(SmsOut.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else SmsRecord.of(row)

    async def find(self, limit: int = 100) -> list[SmsRecord]:
        stmt = select(SmsOut).order_by(SmsOut.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [SmsRecord.of(r) for r in (await conn.execute(stmt)).all()]
