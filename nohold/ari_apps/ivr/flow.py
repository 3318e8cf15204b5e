"""The inbound IVR call, top to bottom as the caller hears it:

answer -> recording notice (once per call) -> menu(s) -> optional identification
-> "connecting you" -> on to a queue or a person.

Out of hours (the afterhours feature, when it runs): answer -> recording notice ->
optional identification -> "our partner will take your call" -> the partner's trunk.

Decisions come from nohold.decisions; this module only sequences I/O.
"""

from __future__ import annotations

import asyncio
import logging

from nohold.ari_apps.channel import CallerHungUp, Channel
from nohold.ari_apps.ivr.settings import IvrSettings
from nohold.ari_apps.runtime import DialplanLocation
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold import logs
from nohold.config import Settings
from nohold.decisions.menu import (
    Fallback,
    GoToMenu,
    Leave,
    MenuProgress,
    Repeat,
    decide,
    digits_valid,
    read_stasis_args,
)
from nohold.decisions.partner import CallFacts
from nohold.decisions.routes import Route
from nohold.feature import AfterHours

log = logging.getLogger("nohold.ivr")


# A notice that ends this much earlier than its length was cut off, not heard.
CUT_SHORT_TOLERANCE = 0.3


class IvrFlow:
    """The IVR as a Stasis feature: `run_call` is the flow; the runtime calls
    `fallback` when anything in it fails."""

    name = "ivr"

    def __init__(self, settings: Settings, ivr: IvrSettings, ledger: NoticeLedger,
                 notice_seconds: float, after_hours: AfterHours | None = None) -> None:
        self.settings = settings
        self.ivr = ivr
        self.ledger = ledger
        self.notice_seconds = notice_seconds
        self.after_hours = after_hours

    def media(self, prompt: str) -> str:
        return f"sound:{self.settings.prompts.asterisk_path}/{prompt}"

    async def run_call(self, ch: Channel) -> None:
        menu, call_id, warning = read_stasis_args(ch.args, set(self.ivr.menus),
                                                  self.ivr.start_menu)
        if warning:
            log.warning("stasis_args channel=%s %s", ch.id, warning)
        ch.call_id = call_id or ch.call_id or await ch.fetch_call_id()
        logs.call_id.set(ch.call_id)
        log.info("call_start channel=%s caller=%s menu=%s", ch.id, ch.caller, menu)
        told = True  # not claimed: told earlier in this call, its variable inherited
        claimed = await self.answer_and_claim_notice(ch)
        if claimed:
            told = await self.play_notice(ch)
        closed = await self.closed_reason(ch)
        if closed is not None:
            # Even a caller who was not told goes to the partner: nobody else answers
            # now, and the partner, told so, plays its own notice.
            if not claimed:
                told = await ch.get_var("NOHOLD_NOTICE_PLAYED") == "1"
            await self.send_to_partner(ch, closed, told)
            return
        if not told and self.ivr.not_told == "fallback":
            # The transfer prompt is skipped: it lives beside the notice Asterisk
            # could not open, and would only add silence.
            await self.send_on(ch, self.ivr.fallback, {}, announce=False)
            return
        route, identity = await self.choose_route(ch, menu)
        await self.send_on(ch, route, identity)

    def fallback(self, ch: Channel | None) -> DialplanLocation:
        return self.location(self.ivr.fallback)

    # -- the recording notice ----------------------------------------------------------
    async def answer_and_claim_notice(self, ch: Channel) -> bool:
        """Answering and claiming the notice are independent: overlap them. A claimed
        notice whose caller is gone before it starts still gets its proof row closed."""
        # The claim is handed to the ledger's writer, then the answer runs in this
        # task: no task or gather of their own, whose starts and ends each cost a loop
        # iteration on the way to the notice (bench/README.md). The claim is written
        # whatever happens here.
        notice = self.settings.notice
        claim = self.ledger.claim_soon(ch.call_id, ch.id, ch.caller, notice.version)
        try:
            await ch.answer()
        except Exception as answered:
            if await self.ledger.first(claim, wait=notice.claim_wait):
                hung_up = isinstance(answered, CallerHungUp)
                self._record_notice(ch, "caller_hung_up" if hung_up else "failed")
            raise
        return await self.ledger.first(claim, wait=notice.claim_wait)

    async def play_notice(self, ch: Channel) -> bool:
        """Play the claimed notice; True when the caller heard all of it. A notice
        Asterisk fails to play (a missing file, a playback ended early) is tried once
        more; failing again, the call is `not_told`. The channel variables say what
        the caller heard as soon as that is known, so a hand-over at shutdown keeps
        them honest too."""
        log.info("notice_start channel=%s version=%s", ch.id, self.settings.notice.version)
        outcome = "failed"
        try:
            # No hang-up grace on the first try: a retry on a channel that is gone
            # fails by itself, so a missing file costs the caller one wait, not two.
            outcome = await self._notice_attempt(ch, hangup_grace=0.0)
            if outcome == "failed":
                log.info("notice_retry channel=%s", ch.id)
                outcome = await self._notice_attempt(ch, hangup_grace=1.0)
                if outcome == "failed":
                    outcome = "not_told"
                    log.warning("notice_not_told channel=%s then=%s", ch.id, self.ivr.not_told)
        except CallerHungUp:
            outcome = "caller_hung_up"
            raise
        finally:
            await self._settle_notice(ch, outcome)
        dropped = ch.discard_keys()
        if dropped:
            log.info("keys_during_notice_ignored channel=%s keys=%s", ch.id, "".join(dropped))
        return outcome == "completed"

    async def _notice_attempt(self, ch: Channel, hangup_grace: float) -> str:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ch.play(self.media(self.settings.notice.prompt), interruptible=False,
                      hangup_grace=hangup_grace)
        heard = loop.time() - started
        if ch.last_play_failed:
            return "failed"  # Channel already waited for a hang-up that did not come
        if heard + CUT_SHORT_TOLERANCE < self.notice_seconds:
            # Asterisk may report PlaybackFinished before the hang-up events: the
            # clock, not the event order, says whether the caller heard it all.
            return await self._why_cut_short(ch, heard)
        return "completed"

    async def _why_cut_short(self, ch: Channel, heard: float) -> str:
        try:
            async with asyncio.timeout(1.0):
                await ch.gone.wait()
        except TimeoutError:
            log.warning("notice_cut_short channel=%s heard=%.2fs of %.2fs", ch.id, heard,
                        self.notice_seconds)
            return "failed"
        raise CallerHungUp(ch.id)

    async def _settle_notice(self, ch: Channel, outcome: str) -> None:
        """The proof (handed to the ledger) and the channel variables, finished even
        when a shutdown cancels the call meanwhile: it hands the caller over next, and
        the dialplan there must read the truth."""
        work = asyncio.ensure_future(self._record_and_mark(ch, outcome))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait({work}, timeout=2.0)
            if work.done() and not work.cancelled() and work.exception() is not None:
                log.warning("notice_variables_not_set channel=%s outcome=%s error=%s", ch.id,
                            outcome, work.exception())
            raise

    async def _record_and_mark(self, ch: Channel, outcome: str) -> None:
        self._record_notice(ch, outcome)
        if outcome == "caller_hung_up":
            return
        told = outcome == "completed"
        # Inherited (__) so that every later leg of the call (a queue's agent, a
        # transfer) knows whether the caller was told; never "1" unless heard in full.
        values = {"__NOHOLD_NOTICE_PLAYED": "1" if told else "0",
                  "NOHOLD_NOTICE": "played" if told else "not_told"}
        try:
            await ch.set_vars(values)
        except CallerHungUp:
            pass  # the flow's next step ends the call

    def _record_notice(self, ch: Channel, outcome: str) -> None:
        # In the background: the menu must not wait for the database (a locked one
        # held callers 15-20 s between the notice and the menu). The ledger keeps the
        # proof (database or outbox) and drains it at shutdown.
        self.ledger.record_soon(ch.call_id, ch.id, outcome)

    # -- the menus ---------------------------------------------------------------------
    async def choose_route(self, ch: Channel, menu_name: str) -> tuple[Route, dict[str, str]]:
        progress = MenuProgress()
        say_invalid = False
        while True:
            menu = self.ivr.menus[menu_name]
            key = None
            if say_invalid:
                key = await ch.play(self.media(self.ivr.invalid_prompt), interruptible=True)
            if key is None:
                key = await ch.play(self.media(menu.prompt), interruptible=True)
            if key is None:
                key = await ch.next_key(self.ivr.input_timeout)
            decision, progress = decide(menu, key, progress, self.ivr.max_repeats)
            log.info("menu_input channel=%s menu=%s key=%s decision=%s", ch.id, menu.name,
                     key if key is not None else "none", decision)
            match decision:
                case GoToMenu(menu=next_menu):
                    menu_name, say_invalid = next_menu, False
                case Repeat(say_invalid=invalid):
                    say_invalid = invalid
                case Leave(route=route, identify=identify):
                    identity = await self.identify(ch) if identify else {}
                    return route, identity
                case Fallback(reason=reason):
                    log.info("menu_fallback channel=%s reason=%r", ch.id, reason)
                    return self.ivr.fallback, {}

    async def identify(self, ch: Channel) -> dict[str, str]:
        """Customer number plus one more factor; the agent verifies them, never trivia."""
        ident = self.ivr.identification
        number = await self._ask_digits(ch, ident.customer_number_prompt,
                                        ident.customer_number_digits)
        factor = await self._ask_digits(ch, ident.second_factor_prompt,
                                        ident.second_factor_digits) if number else None
        if not number or not factor:
            log.info("identification_skipped channel=%s", ch.id)
            return {"NOHOLD_IDENTIFIED": "no"}
        log.info("identification_collected channel=%s", ch.id)
        return {"NOHOLD_CUSTOMER": number, "NOHOLD_ID_FACTOR": factor,
                "NOHOLD_IDENTIFIED": "collected"}

    async def _ask_digits(self, ch: Channel, prompt: str, bounds: tuple[int, int]) -> str | None:
        for _attempt in range(2):
            first = await ch.play(self.media(prompt), interruptible=True)
            entered = await ch.collect(bounds[1], self.ivr.input_timeout, first)
            if digits_valid(entered, bounds):
                return entered
            await ch.play(self.media(self.ivr.invalid_prompt), interruptible=True)
        return None

    # -- out of hours ------------------------------------------------------------------
    async def closed_reason(self, ch: Channel) -> str | None:
        """Why the line is closed now (the partner takes the call), None when open or
        when no partner is configured."""
        if self.after_hours is None:
            return None
        try:
            return await self.after_hours.closed_reason()
        except Exception as exc:  # noqa: BLE001 - a calendar that cannot answer is "open"
            # The menu and the queues are the way calls go when nothing says closed.
            log.warning("after_hours_unknown channel=%s error=%r", ch.id, exc)
            return None

    async def send_to_partner(self, ch: Channel, reason: str, told: bool) -> None:
        after = self.after_hours
        assert after is not None
        identity = await self.identify(ch) if after.identify else {}
        facts = CallFacts(call_id=ch.call_id, caller=ch.caller, reason=reason,
                          notice_played=told, customer=identity.get("NOHOLD_CUSTOMER", ""))
        # Set before the prompt: a caller handed over during it still reaches the
        # partner with the right headers.
        await ch.set_vars({"NOHOLD_ROUTE": "partner", **identity, **after.variables(facts)})
        await ch.play(self.media(after.prompt), interruptible=False)
        context, exten, priority = after.location
        log.info("call_to_partner channel=%s reason=%s notice_played=%d identified=%s "
                 "to=%s,%s,%s", ch.id, reason, told, "yes" if facts.customer else "no",
                 context, exten, priority)
        await ch.continue_to(context, exten, priority)

    # -- leaving the IVR ---------------------------------------------------------------
    def location(self, route: Route) -> DialplanLocation:
        """The dialplan (context, exten, priority) a leaving route continues to."""
        routes = self.settings.routes
        return route.location(routes.queue_context, routes.person_context)

    async def send_on(self, ch: Channel, route: Route, identity: dict[str, str], *,
                      announce: bool = True) -> None:
        context, exten, priority = self.location(route)
        await ch.set_vars({"NOHOLD_ROUTE": str(route), **identity})
        if announce:
            await ch.play(self.media(self.ivr.transfer_prompt), interruptible=False)
        log.info("call_routed channel=%s route=%s to=%s,%s,%s", ch.id, route, context, exten,
                 priority)
        await ch.continue_to(context, exten, priority)
