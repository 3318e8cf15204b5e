"""The follow-up call: a resolved ticket's caller is called back a few working days
later, agent first, through the callback machinery, to ask whether the fix held.

A loop books it: for each resolution without a follow-up, a scheduled callback on the
`after_working_days`-th working day of the callback calendar, in `followup.window`,
through the one booking path (allow-list, do-not-call list, booking rule). The
callback carries the ticket and the fix in its note, for the agent. The agent records
the answer (`nohold tickets followup ID fixed|not-fixed|no-answer`); a callback that
ends unanswered after its retries marks the follow-up unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.exc import SQLAlchemyError

from nohold.ari_apps.callbacks.booking import NotBooked, Request, callback_calendar, schedule
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.followups import NOT_SCHEDULED, SCHEDULED, UNREACHABLE, FollowUpStore, Resolved
from nohold.aio import every
from nohold.decisions.hours import NoOpening
from nohold.feature import Calendars

log = logging.getLogger("nohold.callbacks.followup")

TICK = 30.0  # seconds between passes: a follow-up is days away, minutes do not matter


class FollowUps:
    def __init__(self, cb: CallbackSettings, store: CallbackStore, followups: FollowUpStore,
                 calendars: Calendars | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cb = cb
        self.store = store
        self.followups = followups
        self.calendars = calendars
        self.now = clock

    async def run(self) -> None:
        await every(TICK, self.tick, log, "followup_tick_failed", (SQLAlchemyError, OSError))

    async def tick(self) -> None:
        now = self.now()
        for ticket in await self.followups.resolved_without():
            await self.book(ticket, now)
        for f in await self.followups.not_fixed_unreopened():
            if await self.followups.reopen_ticket(f, now):
                log.warning("followup_reopened_late ticket=%s: the answer was stored, its "
                            "reopening was not", f.ticket_id)
        for f in await self.followups.ended_unanswered():
            if await self.followups.answer(f.ticket_id, UNREACHABLE, "nohold", now,
                                           "the callback ended unanswered"):
                log.info("followup_unreachable ticket=%s callback=%s", f.ticket_id,
                         f.callback_id)

    async def book(self, t: Resolved, now: datetime) -> None:
        f = self.cb.followup
        try:
            calendar = await callback_calendar(self.cb, self.calendars)
            day = calendar.nth_working_day_after(t.resolved_at.astimezone(calendar.tz).date(),
                                                 f.after_working_days)
        except (NotBooked, NoOpening) as exc:
            await self._not_booked(t, now, str(exc))
            return
        at = datetime.combine(day, time(f.window.start // 60, f.window.start % 60))
        length = timedelta(minutes=f.window.end - f.window.start)
        note = f"Follow-up of ticket #{t.id}: {t.resolution_note or 'resolved'}"[:200]
        request = Request(number=t.caller, at=at, window=length, queue=f.queue or None,
                          note=note)
        try:
            try:
                record, _ = await schedule(self.store, self.cb, self.calendars, request,
                                           now=now, call_id=f"followup-{t.id}-{t.resolution}")
            except NotBooked as exc:
                if exc.next_valid is None:
                    raise
                # The window does not fit that day (an early closing): the next time the
                # calendar accepts, rather than no follow-up at all.
                later = Request(number=t.caller, at=exc.next_valid, window=length,
                                queue=f.queue or None, note=note)
                record, _ = await schedule(self.store, self.cb, self.calendars, later,
                                           now=now,
                                           call_id=f"followup-{t.id}-{t.resolution}")
        except NotBooked as exc:
            await self._not_booked(t, now, f"{exc.field}: {exc.reason}")
            return
        made = await self.followups.create(t.id, t.resolution, SCHEDULED, now,
                                           callback_id=record.id, due_at=record.due_at)
        if made is not None:
            log.info("followup_scheduled ticket=%s callback=%s due=%s", t.id, record.id,
                     record.due_at.isoformat() if record.due_at else "-")

    async def _not_booked(self, t: Resolved, now: datetime, why: str) -> None:
        if await self.followups.create(t.id, t.resolution, NOT_SCHEDULED, now, detail=why):
            log.warning("followup_not_scheduled ticket=%s why=%r", t.id, why)
