"""AGI `hours`: the dialplan asks whether a business calendar is open now.

    same => n,AGI(agi://127.0.0.1:4573/hours)            ; the default calendar
    same => n,AGI(agi://127.0.0.1:4573/hours,callbacks)  ; a named one
    same => n,AGI(nohold-agi,hours,callbacks)            ; the same, as classic AGI
    same => n,GotoIf($["${NOHOLD_OPEN}" = "0"]?closed,1)

Sets NOHOLD_OPEN (1 or 0), NOHOLD_CLOSED_REASON (empty when open; else weekend,
holiday, override, outside-hours or day-off), NOHOLD_CLOSED_DETAIL (the holiday's
name or the override's note, in plain ASCII; empty when open), NOHOLD_NEXT_CHANGE
(when that flips, ISO 8601 with the calendar's offset; empty if not within a year)
and NOHOLD_AGI_STATUS: OK, BAD_INPUT (a calendar name nohold will not read) or
UNKNOWN_CALENDAR; on those NOHOLD_OPEN is not set.

It only reads: nothing is claimed or written, so unlike `notice_once` no proof is
asked that the peer is Asterisk running the call (a forger learns the opening
hours, which the company publishes anyway).
"""

from __future__ import annotations

import logging

from nohold.agi_scripts.agi import Agi
from nohold.calendar.settings import NAME, Clock, utc_now
from nohold.decisions.hours import ascii_label
from nohold.feature import Calendars

log = logging.getLogger("nohold.agi.hours")


class HoursRoute:
    def __init__(self, calendars: Calendars, now: Clock = utc_now) -> None:
        self.calendars = calendars
        self._now = now

    async def __call__(self, agi: Agi) -> None:
        name = (agi.args[0] if agi.args else "") or self.calendars.default
        if not NAME.match(name):
            log.warning("agi_bad_input peer=%s route=hours calendar=%r", agi.peer, name[:40])
            await agi.set_variable("NOHOLD_AGI_STATUS", "BAD_INPUT")
            return
        if name not in self.calendars.names:
            log.warning("agi_unknown_calendar peer=%s calendar=%s known=%s", agi.peer, name,
                        ",".join(self.calendars.names))
            await agi.set_variable("NOHOLD_AGI_STATUS", "UNKNOWN_CALENDAR")
            return
        calendar = await self.calendars.get(name)
        status = calendar.is_open(self._now())
        change = ("" if status.next_change is None
                  else status.next_change.astimezone(calendar.tz).isoformat())
        log.info("hours channel=%s calendar=%s open=%d reason=%s next_change=%s", agi.channel,
                 name, status.open, status.why.value, change or "-")
        await agi.set_variable("NOHOLD_OPEN", "1" if status.open else "0")
        await agi.set_variable("NOHOLD_CLOSED_REASON", "" if status.open else status.why.value)
        await agi.set_variable("NOHOLD_CLOSED_DETAIL",
                               "" if status.open else ascii_label(status.detail))
        await agi.set_variable("NOHOLD_NEXT_CHANGE", change)
        await agi.set_variable("NOHOLD_AGI_STATUS", "OK")
