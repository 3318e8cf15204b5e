"""The voice alert: the PBX calls the technician, reads the ticket, and "press 1" on the
phone acknowledges it.

The technician is the person on the line, so this is a plain originate into the
`nohold-alerts` Stasis application (no agent-first bridge). The ticket is read from
text: espeak-ng renders it once per ticket into the prompts directory, where Asterisk
plays it like any prompt.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from nohold.alerts.settings import AlertSettings, Person
from nohold.ari_apps.channel import CallerHungUp, Channel
from nohold.ari_apps.runtime import DialplanLocation, StasisRuntime
from nohold.callbackdb import alerts as rows
from nohold.callbackdb.alerts import AlertRecord
from nohold.callbackdb.tickets import TicketRecord, TicketStore
from nohold.config import PromptSettings
from nohold.decisions.alerts import spoken_text
from nohold.prompts import PromptError, speak

log = logging.getLogger("nohold.alerts.voice")

KEY_WAIT = 8.0  # seconds for a key after "press 1"
READINGS = 3  # the ticket is read at most this many times in one call
ALERT_PREFIX = "nohold-alert-"  # channel ids of the calls this app places


class VoiceAlerts:
    """The Stasis feature of `alerts.app`: nothing enters it but the calls it places."""

    name = "alerts"

    def __init__(self, alerts: AlertSettings, prompts: PromptSettings,
                 tickets: TicketStore) -> None:
        self._a = alerts
        self._prompts = prompts
        self._tickets = tickets
        self.rt: StasisRuntime | None = None

    def bind_runtime(self, runtime: StasisRuntime) -> None:
        self.rt = runtime

    async def run_call(self, ch: Channel) -> None:
        log.warning("alert_app_unexpected_channel channel=%s: hanging up", ch.id)
        await ch.hangup()

    def fallback(self, ch: Channel | None) -> DialplanLocation | None:
        return None  # a call nohold placed: hang it up

    def media(self, prompt: str) -> str:
        return f"sound:{self._prompts.asterisk_path}/{prompt}"

    async def call(self, alert: AlertRecord, ticket: TicketRecord, person: Person
                   ) -> tuple[str, str]:
        """Ring `person`, read `ticket`, wait for 1: the alert's final state and why."""
        if self.rt is None:
            return rows.FAILED, "the alerts application is not running"
        try:
            audio = await self._ticket_audio(ticket)
        except PromptError as exc:
            log.error("alert_call_audio_failed ticket=%s error=%s", ticket.id, exc)
            audio = None  # the call still goes: the intro and "press 1" say enough
        endpoint = self._a.dial.endpoint(self._a.dial_digits(person))
        ob = await self.rt.originate(
            endpoint, app_args=["alert", str(alert.id)],
            channel_id=f"{ALERT_PREFIX}{alert.id}-{alert.attempts}",
            caller_id=self._a.caller_id or None, timeout=self._a.ring_timeout)
        result = await ob.result()
        if not result.answered or result.channel is None:
            detail = result.outcome.value + (f" ({result.detail})" if result.detail else "")
            log.info("alert_call_unanswered ticket=%s person=%s outcome=%s", ticket.id,
                     person.name, detail)
            return rows.UNANSWERED, detail
        ch = result.channel
        try:
            return await self._talk(ch, audio, ticket, person)
        except CallerHungUp:
            log.info("alert_call_hung_up ticket=%s person=%s", ticket.id, person.name)
            return rows.ANSWERED, "hung up before pressing 1"
        finally:
            await ch.hangup()

    async def _talk(self, ch: Channel, audio: str | None, ticket: TicketRecord,
                    person: Person) -> tuple[str, str]:
        """The call as the technician hears it."""
        await ch.play(self.media("alert_intro"), interruptible=False)
        for _ in range(READINGS):
            key = None
            if audio is not None:
                key = await ch.play(audio, interruptible=True)
            if key is None:
                key = await ch.play(self.media("alert_press"), interruptible=True)
            if key is None:
                key = await ch.next_key(KEY_WAIT)
            if key == "1":
                _, moved = await self._tickets.acknowledge(
                    ticket.id, by=person.name, via="call", now=datetime.now(UTC))
                log.info("ticket_acknowledged ticket=%s by=%s via=call moved=%s", ticket.id,
                         person.name, moved)
                await ch.play(self.media("alert_acknowledged"), interruptible=False)
                return rows.ACKNOWLEDGED, "pressed 1"
            ch.discard_keys()  # 2, another key, or silence: read it again
        await ch.play(self.media("alert_goodbye"), interruptible=False)
        return rows.ANSWERED, "no 1 pressed"

    async def _ticket_audio(self, ticket: TicketRecord) -> str:
        """The ticket read aloud, rendered once per ticket version (its update time)."""
        stamp = int(ticket.updated_at.timestamp())
        name = f"alerts/ticket-{ticket.id}-{stamp}"
        target = Path(self._prompts.dir) / f"{name}.wav"
        if not target.exists():
            text = spoken_text(ticket.id, ticket.urgency, ticket.category, ticket.caller,
                               ticket.customer, ticket.text)
            await asyncio.to_thread(speak, text, self._prompts.language, target)
        return self.media(name)

