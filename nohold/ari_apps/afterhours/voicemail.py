"""The voice message, top to bottom as the caller hears it, when the partner cannot take
an after-hours call (busy, rejected, unreachable, no answer in time):

"sorry, our partner cannot take your call; leave a message after the tone" -> beep ->
the message (Asterisk records it: silence, # or the time limit ends it) -> a ticket
-> "a technician is being alerted" -> goodbye.

The dialplan `[nohold-partner]` sends the caller here with
`Stasis(nohold-afterhours,message,<call id>,<DIALSTATUS>)`. A caller who hangs up after
speaking still gets their ticket; one who leaves no message gets none (a log line
`voicemail_none` says who called).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from nohold.ari_apps.afterhours.partner import PARTNER_CONTEXT, utc_now
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.ari_apps.channel import CallerHungUp, Channel, Recorded
from nohold.ari_apps.runtime import DialplanLocation
from nohold.callbackdb.tickets import TicketRecord, TicketStore
from nohold import logs
from nohold.config import Settings
from nohold.decisions.ids import BadId, check_id
from nohold.decisions.numbers import NumberPolicy
from nohold.decisions.partner import (
    Message,
    dial_status,
    is_message,
    recording_name,
    safe_header_value,
    voicemail_report,
)
from nohold.decisions.tickets import BadReport, parse_caller

log = logging.getLogger("nohold.afterhours")

# Where a caller goes when this flow fails: Asterisk records the message alone.
RECORD_ALONE: DialplanLocation = (PARTNER_CONTEXT, "record", 1)
VIA = "voicemail"
CUSTOMER = re.compile(r"[A-Za-z0-9]{1,32}")


def ticket_caller(raw: str, numbers: NumberPolicy) -> str:
    """E.164 for the ticket, "" when withheld or not a number (the ticket says so)."""
    try:
        return parse_caller(raw, numbers) if raw else ""
    except BadReport:
        return ""


class VoicemailFlow:
    """The Stasis app `afterhours.app`: `run_call` is the flow above."""

    name = "afterhours"

    def __init__(self, settings: Settings, after: AfterHoursSettings, store: TicketStore,
                 default_region: str = "PL",
                 now: Callable[[], datetime] = utc_now,
                 on_ticket: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.after = after
        self.store = store
        self.on_ticket = on_ticket
        self.numbers = NumberPolicy(default_region, ())
        self._now = now

    def media(self, prompt: str) -> str:
        return f"sound:{self.settings.prompts.asterisk_path}/{prompt}"

    def fallback(self, ch: Channel | None) -> DialplanLocation:
        return RECORD_ALONE

    async def run_call(self, ch: Channel) -> None:
        status = dial_status(ch.args[2] if len(ch.args) > 2 else "")
        ch.call_id = self._call_id(ch) or ch.call_id or await ch.fetch_call_id()
        logs.call_id.set(ch.call_id)
        log.info("partner_unavailable channel=%s status=%s", ch.id, status or "-")
        await ch.answer()  # a dialplan that bypassed the IVR may not have answered yet
        # Read now: once the caller hangs up, the channel can no longer be asked.
        customer, reason = await self._customer(ch), await self._reason(ch)
        vm = self.after.voicemail
        try:
            await ch.play(self.media(self.after.unavailable_prompt), interruptible=False)
            recorded = await ch.record(recording_name(ch.call_id, status, ch.caller),
                                       max_seconds=vm.max_seconds,
                                       max_silence=vm.silence_seconds)
        except CallerHungUp:
            log.info("voicemail_none channel=%s caller=%s reason=hung_up_before_the_tone",
                     ch.id, ch.caller)
            raise
        if not is_message(recorded.state, recorded.duration, vm.min_seconds):
            log.info("voicemail_none channel=%s caller=%s reason=no_message state=%s "
                     "seconds=%s hung_up=%s", ch.id, ch.caller, recorded.state,
                     recorded.duration, recorded.hung_up)
            if not recorded.hung_up:
                await ch.hangup()
            return
        ticket = await self.open_ticket(ch, recorded, status, customer, reason)
        # The ticket exists before the caller hears about it, even if they hung up.
        if recorded.hung_up:
            return
        await ch.play(self.media(self.after.alerted_prompt if ticket is not None
                                 else self.after.thanks_prompt), interruptible=False)
        await ch.hangup()

    async def open_ticket(self, ch: Channel, recorded: Recorded, status: str,
                          customer: str, reason: str) -> TicketRecord | None:
        path = f"{self.after.voicemail.recording_dir}/{recorded.name}.{recorded.format}"
        now = self._now()
        message = Message(call_id=ch.call_id, caller=ticket_caller(ch.caller, self.numbers),
                          customer=customer,
                          reason=reason, partner_status=status, recording=path,
                          seconds=recorded.duration or 0.0, received_at=now)
        report = voicemail_report(message, self.after.voicemail.urgency,
                                  self.after.voicemail.category)
        try:
            ticket, outcome, _ = await self.store.report(report, via=VIA, now=now)
        except Exception as exc:  # noqa: BLE001 - the message is on disk; say where
            log.error("voicemail_ticket_failed channel=%s recording=%s error=%r", ch.id,
                      path, exc)
            return None
        log.info("voicemail_ticket ticket=%s outcome=%s partner_id=%s channel=%s seconds=%s "
                 "recording=%s", ticket.id, outcome, ticket.partner_id, ch.id,
                 recorded.duration, path)
        self.on_ticket()  # the alerts wake at once, as for the partner's own tickets
        return ticket

    # -- what the call tells us ---------------------------------------------------------
    def _call_id(self, ch: Channel) -> str:
        raw = ch.args[1] if len(ch.args) > 1 else ""
        try:
            return check_id("call id", raw) if raw else ""
        except BadId as exc:
            log.warning("stasis_args channel=%s %s", ch.id, exc)
            return ""

    async def _customer(self, ch: Channel) -> str:
        # The IVR's identification gives digits; anything else is not stored.
        value = await ch.get_var("NOHOLD_CUSTOMER") or ""
        return value if CUSTOMER.fullmatch(value) else ""

    async def _reason(self, ch: Channel) -> str:
        return safe_header_value(await ch.get_var("NOHOLD_PARTNER_REASON") or "") or "closed"
