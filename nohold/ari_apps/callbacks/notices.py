"""The callers' SMS about their callbacks: confirmed, moved, and a reminder before an
agreed time (nohold.decisions.callback_sms says which and when).

A loop reads the callbacks still waiting and what each was already told, and puts the
message due into the SMS outbox under a key naming the callback, the message and the
window: every node may run this, and a caller still gets each message once. The
service's SMS sender sends it. Numbers are checked again against the allow-list and
the do-not-call list when the message is written: the config or the list may have
changed since the callback was taken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from nohold.ari_apps.callbacks.booking import NotBooked, callback_calendar
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackRecord, CallbackStore
from nohold.callbackdb.sms import SmsOutbox
from nohold.aio import every
from nohold.decisions.callback_sms import (
    TEXTABLE,
    Kind,
    Told,
    Waiting,
    about,
    due,
    key,
    render,
    whole_seconds,
)
from nohold.decisions.callbacks import State
from nohold.decisions.hours import DEFAULT_TIMEZONE
from nohold.decisions.numbers import NumberRefused
from nohold.feature import Calendars, Signals

log = logging.getLogger("nohold.callbacks.sms")

TICK = 2.0  # seconds: a caller who just took a callback has the SMS within a few
# Still waiting to be made: a message about it is still worth sending.
NOT_YET_MADE = (State.PENDING, State.RETRY, State.QUEUED)
PREFIX = "callback:"  # the outbox's `about` of a callback's messages


class SmsNotices:
    def __init__(self, cb: CallbackSettings, store: CallbackStore, outbox: SmsOutbox,
                 calendars: Calendars | None, signals: Signals | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cb = cb
        self.store = store
        self.outbox = outbox
        self.calendars = calendars
        self.signals = signals or Signals()
        self.now = clock
        self._refused: set[int] = set()  # said once per callback, not every tick
        self._said: set[str] = set()

    async def run(self) -> None:
        await every(TICK, self.tick, log, "callback_sms_tick_failed",
                    (SQLAlchemyError, OSError))

    async def tick(self) -> int:
        """Writes every message due now; how many it wrote."""
        now = self.now()
        waiting = [c for c in await self.store.find(NOT_YET_MADE)
                   if c.promised_earliest and c.promised_latest
                   and c.promised_latest > now]
        await self._withdraw_stale({c.id for c in waiting}, now)
        if not waiting:
            return 0
        told: dict[str, list[Told]] = {}
        for m in await self.outbox.about(about(c.id) for c in waiting):
            try:
                start = datetime.fromtimestamp(int(m.key.rsplit(":", 1)[1]), UTC)
                told.setdefault(m.about, []).append(Told(Kind(m.kind), start, m.created_at))
            except ValueError:  # not one of ours: leave it, tell the admin once
                self._refuse_once(m.about, f"outbox row {m.id} has an unknown key {m.key!r}")
        tz = await self._zone()
        written = 0
        before = timedelta(seconds=self.cb.sms.reminder_before)
        for c in waiting:
            assert c.promised_earliest is not None and c.promised_latest is not None
            window = (whole_seconds(c.promised_earliest), whole_seconds(c.promised_latest))
            kind = due(Waiting(c.id, c.scheduled, window), told.get(about(c.id), []), now,
                       before)
            if kind is not None and await self._write(c, kind, window, tz, now):
                written += 1
        if written:
            self.signals.notify(Signals.SMS)
        return written

    async def _write(self, c: CallbackRecord, kind: Kind, window: tuple[datetime, datetime],
                     tz: tzinfo, now: datetime) -> bool:
        try:
            checked = self.cb.numbers.check(c.number)
        except NumberRefused as exc:
            self._refuse(c, f"not an allowed number: {exc}")
            return False
        number = checked.e164
        if checked.kind not in TEXTABLE:
            self._refuse(c, f"{checked.kind} line: no SMS")
            return False
        if await self.store.on_dnc(number):
            self._refuse(c, "on the do-not-call list")
            return False
        text = render(self.cb.sms.texts, kind, self.cb.caller_id, window, tz)
        # A reminder is worth nothing once the time has come; the others until the
        # window is over.
        expires = window[0] if kind == Kind.REMINDER else window[1]
        stored = await self.outbox.enqueue(key=key(c.id, kind, window[0]), about=about(c.id),
                                           kind=kind.value, to=number, text=text, now=now,
                                           expires_at=expires)
        if stored:
            log.info("callback_sms_queued callback=%s call=%s kind=%s", c.id, c.call_id,
                     kind.value)
        return stored

    def _refuse(self, c: CallbackRecord, why: str) -> None:
        if c.id not in self._refused:
            self._refused.add(c.id)
            log.warning("callback_sms_refused callback=%s call=%s reason=%r", c.id, c.call_id,
                        why)

    def _refuse_once(self, what: str, why: str) -> None:
        if what not in self._said:
            self._said.add(what)
            log.warning("callback_sms_skipped about=%s reason=%r", what, why)

    async def _withdraw_stale(self, waiting: set[int], now: datetime) -> None:
        """Messages still queued (the SMSC down) for callbacks made, cancelled or expired
        meanwhile, or for a number put on the do-not-call list: never sent late."""
        for m in await self.outbox.queued(PREFIX):
            callback_id = int(m.about.removeprefix(PREFIX)) \
                if m.about.removeprefix(PREFIX).isdigit() else None
            if callback_id is not None and callback_id not in waiting:
                why = "the callback is no longer waiting"
            elif await self.store.on_dnc(m.to_number):
                why = "the number is on the do-not-call list"
            else:
                continue
            if await self.outbox.withdraw(m, why, now):
                log.info("callback_sms_withdrawn about=%s kind=%s reason=%r", m.about,
                         m.kind, why)

    async def _zone(self) -> tzinfo:
        try:
            return (await callback_calendar(self.cb, self.calendars)).tz
        except NotBooked:
            return ZoneInfo(DEFAULT_TIMEZONE)
