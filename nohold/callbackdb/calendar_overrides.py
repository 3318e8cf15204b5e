"""The business calendar's overrides set at run time: a supervisor closes the office for
a day (or opens it on a Saturday) without editing files or restarting nohold.

Rows are plain facts (calendar, kind, period, expiry, note); what they mean is the
pure calendar's (nohold.decisions.hours). Times are timezone-aware UTC datetimes;
SQLite stores them without the zone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.models import CalendarOverride
from nohold.callbackdb.times import aware_utc
from nohold.decisions.hours import Kind, Override


@dataclass(frozen=True)
class OverrideRow:
    id: int
    calendar: str
    kind: Kind
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime | None
    note: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, row: Any) -> OverrideRow:
        values = {f.name: aware_utc(row._mapping[f.name]) for f in fields(cls)}
        values["kind"] = Kind(values["kind"])
        return cls(**values)

    @property
    def override(self) -> Override:
        return Override(self.kind, self.starts_at, self.ends_at, self.note, self.expires_at,
                        source=f"db:{self.id}")


class CalendarOverrideStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, calendar: str, override: Override, now: datetime,
                  created_by: str = "") -> OverrideRow:
        values = {"calendar": calendar, "kind": override.kind.value,
                  "starts_at": override.start, "ends_at": override.end,
                  "expires_at": override.expires, "note": override.note,
                  "created_at": now, "created_by": created_by[:64]}
        stmt = insert(CalendarOverride).values(values).returning(CalendarOverride.__table__)
        async with self._engine.begin() as conn:
            return OverrideRow.of((await conn.execute(stmt)).one())

    async def find(self, calendar: str | None = None, current_at: datetime | None = None,
                   limit: int = 1000) -> list[OverrideRow]:
        """Overrides in start order; with `current_at`, only those that still matter
        then (not ended, not expired)."""
        stmt = select(CalendarOverride)
        if calendar is not None:
            stmt = stmt.where(CalendarOverride.calendar == calendar)
        if current_at is not None:
            stmt = stmt.where(CalendarOverride.ends_at > current_at,
                              or_(CalendarOverride.expires_at.is_(None),
                                  CalendarOverride.expires_at > current_at))
        stmt = stmt.order_by(CalendarOverride.starts_at, CalendarOverride.id).limit(limit)
        async with self._engine.connect() as conn:
            return [OverrideRow.of(r) for r in (await conn.execute(stmt)).all()]

    async def by_calendar(self, current_at: datetime) -> dict[str, list[Override]]:
        """Every calendar's overrides that still matter at `current_at`."""
        out: dict[str, list[Override]] = {}
        for row in await self.find(current_at=current_at, limit=100000):
            out.setdefault(row.calendar, []).append(row.override)
        return out

    async def remove(self, override_id: int) -> OverrideRow | None:
        """Delete one override; the row as it was, or None if there was none."""
        stmt = (delete(CalendarOverride).where(CalendarOverride.id == override_id)
                .returning(CalendarOverride.__table__))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else OverrideRow.of(row)
