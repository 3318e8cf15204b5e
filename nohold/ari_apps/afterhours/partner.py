"""Is the line closed now, and what the call to the partner needs: shared by the IVR
(as `ServiceContext.after_hours`) and the FastAGI route `partner` for dialplans that
bypass the IVR."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nohold.agi_scripts.agi import Agi
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.ari_apps.runtime import DialplanLocation
from nohold import logs
from nohold.decisions.hours import Why
from nohold.decisions.ids import BadId, check_id
from nohold.decisions.partner import CallFacts, closed_reason, dial_variables
from nohold.feature import Calendars

log = logging.getLogger("nohold.afterhours")

# The shipped dialplan that dials the partner (dialplan/nohold.conf).
PARTNER_CONTEXT = "nohold-partner"
HEADERS_CONTEXT = "nohold-partner-headers"
PARTNER_LOCATION: DialplanLocation = (PARTNER_CONTEXT, "s", 1)
# Said when the dialplan sent a call to the partner while the calendar is open.
OPEN_REASON = "open"


def utc_now() -> datetime:
    return datetime.now(UTC)


class PartnerRouter:
    """The after-hours decision for the IVR (the `AfterHours` protocol)."""

    def __init__(self, after: AfterHoursSettings, calendars: Calendars,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.after = after
        self.calendars = calendars
        self._now = now

    @property
    def identify(self) -> bool:
        return self.after.identify

    @property
    def prompt(self) -> str:
        return self.after.prompt

    @property
    def location(self) -> DialplanLocation:
        return PARTNER_LOCATION

    async def closed_reason(self) -> str | None:
        calendar = await self.calendars.get(self.after.calendar or None)
        status = calendar.is_open(self._now())
        return None if status.open else closed_reason(status.why)

    def variables(self, facts: CallFacts, prompt: str = "") -> dict[str, str]:
        return dial_variables(facts, self.after.trunks, self.after.ring_timeout,
                              self.after.headers, prompt, self.after.voicemail.recording_dir)


class PartnerRoute:
    """AGI `partner` (FastAGI, or classic `AGI(nohold-agi,partner)`): sets the variables
    `[nohold-partner]` dials the partner with.

        same => n,AGI(agi://127.0.0.1:4573/hours)
        same => n,GotoIf($["${NOHOLD_OPEN}" = "0"]?closed)
        ...
        same => n(closed),AGI(agi://127.0.0.1:4573/partner)
        same => n,Goto(nohold-partner,s,1)

    The reason is the `hours` route's NOHOLD_CLOSED_REASON when the dialplan asked it,
    else the afterhours calendar's ("open" when it is open: the dialplan chose the
    partner itself). The header values come from the channel (caller id, linkedid,
    NOHOLD_CUSTOMER, NOHOLD_NOTICE_PLAYED) and are made safe before use. Only reads:
    the trunks come from the config, never from the channel.
    """

    def __init__(self, router: PartnerRouter, prompt_path: str) -> None:
        self.router = router
        self.prompt_path = prompt_path

    async def __call__(self, agi: Agi) -> None:
        try:
            call_id = check_id("call id", await agi.get_variable("CHANNEL(linkedid)"))
        except BadId as exc:
            log.warning("agi_bad_input peer=%s route=partner reason=%s", agi.peer, exc)
            await agi.set_variable("NOHOLD_AGI_STATUS", "BAD_INPUT")
            return
        logs.call_id.set(call_id)
        reason = await self._reason(agi)
        facts = CallFacts(
            call_id=call_id,
            caller=agi.env.get("agi_callerid", ""),
            reason=reason,
            notice_played=await agi.get_variable("NOHOLD_NOTICE_PLAYED") == "1",
            customer=await agi.get_variable("NOHOLD_CUSTOMER"),
        )
        for name, value in self.router.variables(facts, self.prompt_path).items():
            await agi.set_variable(name, value)
        await agi.set_variable("NOHOLD_AGI_STATUS", "OK")
        log.info("call_to_partner channel=%s reason=%s notice_played=%d identified=%s via=agi",
                 agi.channel, reason, facts.notice_played, "yes" if facts.customer else "no")

    async def _reason(self, agi: Agi) -> str:
        said = await agi.get_variable("NOHOLD_CLOSED_REASON")
        try:
            return closed_reason(Why(said))
        except ValueError:
            pass  # not asked, open, or not a reason nohold gives: ask the calendar
        return await self.router.closed_reason() or OPEN_REASON
