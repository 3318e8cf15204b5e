"""The caller who pressed 1 in the queue, top to bottom as they hear it:

number to call (caller id, or keyed in) -> read back -> 1 to confirm, 2 to re-enter
-> the promise ("about 12 minutes") -> goodbye.   Anything else: back in the queue
at their place (the dialplan after Stasis() does that; so does the fallback).

The caller who pressed 2 (callbacks.slots configured): the next free times ("today
between 18 and 20, press 1 ...", 0 keeps the place) -> a key chooses -> the number,
as above -> booked at that time ("we will call you back tomorrow between 10 and 12")
-> goodbye.  No free time, no choice, or no number: back in the queue at their place.

Nothing the caller keys becomes part of a dial string unchecked: digits are
bounded and pass the allow-list (nohold.decisions.numbers) before they are stored.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from nohold.ari_apps.callbacks.booking import NotBooked, Request, callback_calendar, schedule
from nohold.ari_apps.callbacks.parts import CallbackParts
from nohold.ari_apps.callbacks.settings import DAY_PROMPTS
from nohold.ari_apps.channel import Channel
from nohold.callbackdb.callbacks import utc_at
from nohold import logs
from nohold.decisions.callbacks import (
    BadOfferArgs,
    Estimate,
    OfferArgs,
    Window,
    estimate_wait,
    handle_time,
    offer_at_once,
    position_in_queue,
    promise_window,
    read_offer_args,
    serving,
)
from nohold.decisions.hours import NoOpening
from nohold.decisions.numbers import Dialable, NumberRefused
from nohold.decisions.slots import Slot, candidate_slots, free_slots

log = logging.getLogger("nohold.callbacks")

# How many times the read-back is offered before the caller goes back in line.
MAX_TRIES = 3
KEY_TIMEOUT = 6.0
# Channel names of placeholders contain this (the context they run in).
PLACEHOLDER_CONTEXT = "nohold-callback-placeholder"
# Hangup handler of customer legs: notes in AstDB (family LEG_FAMILY) that one answered.
LEG_END_CONTEXT = "nohold-callback-leg-end"
LEG_FAMILY = "nohold-callback-legs"
# Answering-machine detection (callbacks.amd): a Gosub for the called party, and where
# a machine's leg ends (noting "machine" under LEG_FAMILY).
AMD_CONTEXT = "nohold-callback-amd"
MACHINE_CONTEXT = "nohold-callback-machine"
# The queue's exit context (queues.conf `context =`): 1 comes here, `back` re-queues.
OFFER_CONTEXT = "nohold-callback-offer"
# Callers enter the queue through it (and go back in line through it).
QUEUE_CONTEXT = "nohold-callback-queue"


class OfferFlow:
    def __init__(self, parts: CallbackParts) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.cb = parts.cb
        self.store = parts.store
        self.queues = parts.queues
        self.clock = parts.clock
        self.media = parts.media

    async def at_join(self, ch: Channel) -> None:
        """On the way into the queue: when the wait will be long (or nobody serves),
        the offer comes at once instead of after offer_after; otherwise, or with no
        key, on into the queue (the dialplan's next priority)."""
        args = list(ch.args)
        try:
            # join,<queue>,<joined>,<call id>: the offer's arguments without a position
            offer = read_offer_args(["offer", *args[1:3], "", *args[3:4]], self.cb.queues,
                                    self.clock())
        except BadOfferArgs as exc:
            log.warning("callback_join_args channel=%s reason=%s", ch.id, exc)
            await ch.continue_on()
            return
        ch.call_id = offer.call_id or ch.call_id
        logs.call_id.set(ch.call_id)
        estimate = await self.estimate(offer, self.clock())
        if not offer_at_once(estimate, self.cb.offer_when_wait_over):
            await ch.continue_on()
            return
        log.info("callback_offer_at_join channel=%s queue=%s estimate=%s", ch.id, offer.queue,
                 "unknown" if estimate.seconds is None else f"{estimate.seconds:.0f}s")
        key = await ch.play(self.media(self.cb.offer_prompt), interruptible=True)
        key = key or await ch.next_key(KEY_TIMEOUT / 2)
        if key == "2" and self.cb.slots:
            await self.choose_time(ch, offer)
            return
        if key != "1":
            await ch.continue_on()
            return
        await self.accepted(ch, offer)

    async def run(self, ch: Channel) -> None:
        """From the queue: `offer,...` (pressed 1) or `offer-time,...` (pressed 2)."""
        try:
            offer = read_offer_args(["offer", *ch.args[1:]], self.cb.queues, self.clock())
        except BadOfferArgs as exc:
            log.warning("callback_offer_refused channel=%s reason=%s", ch.id, exc)
            await self.back_in_line(ch, None)
            return
        ch.call_id = offer.call_id or ch.call_id
        logs.call_id.set(ch.call_id)
        if ch.args[:1] == ["offer-time"]:
            await self.choose_time(ch, offer)
            return
        await self.accepted(ch, offer)

    async def accepted(self, ch: Channel, offer: OfferArgs) -> None:
        log.info("callback_offer_accepted channel=%s queue=%s position=%d waited=%.0fs",
                 ch.id, offer.queue, offer.position, self.clock() - offer.joined_at)
        number = await self.number_to_call(ch)
        if number is None:
            await self.back_in_line(ch, offer)
            return
        await self.promise(ch, offer, number)

    # -- the number ------------------------------------------------------------------------
    async def number_to_call(self, ch: Channel) -> Dialable | None:
        """The caller id if nohold may dial it, else keyed digits; read back and
        confirmed. None: no number the caller confirmed (back in line)."""
        number: Dialable | None = None
        try:
            number = self.cb.numbers.check(ch.caller)
        except NumberRefused as exc:
            log.info("callback_caller_id_unusable channel=%s reason=%s", ch.id, exc.reason)
        for _ in range(MAX_TRIES):
            if number is None:
                number = await self.keyed_number(ch)
                if number is None:
                    continue
            key = await self.read_back(ch, number)
            if key == "1":
                return number
            number = None  # 2, or anything else: enter it
        log.info("callback_no_number channel=%s", ch.id)
        return None

    async def keyed_number(self, ch: Channel) -> Dialable | None:
        low, high = self.cb.number_digits
        first = await ch.play(self.media(self.cb.enter_number_prompt), interruptible=True)
        digits = await ch.collect(high, KEY_TIMEOUT, first=first)
        try:
            return self.cb.numbers.check_keyed(digits, low, high)
        except NumberRefused as exc:
            # Logged without the digits: a caller's mistyped number is not the log's.
            log.info("callback_number_refused channel=%s reason=%s digits=%d", ch.id,
                     exc.reason, len(digits))
            await ch.play(self.media(self.cb.refused_prompt), interruptible=False)
            return None

    async def read_back(self, ch: Channel, number: Dialable) -> str | None:
        ch.discard_keys()
        key = await ch.play(self.media(self.cb.number_is_prompt), interruptible=True)
        key = key or await ch.play(f"digits:{number.spoken()}", interruptible=True)
        key = key or await ch.play(self.media(self.cb.confirm_prompt), interruptible=True)
        return key or await ch.next_key(KEY_TIMEOUT)

    # -- the promise ---------------------------------------------------------------------
    async def promise(self, ch: Channel, offer: OfferArgs, number: Dialable) -> None:
        now = self.clock()
        window = await self.window(offer, now)
        wall = utc_at(now)
        record, created = await self.store.request(
            call_id=ch.call_id, number=number.e164, queue=offer.queue,
            arrived_at=utc_at(offer.joined_at), now=wall,
            promised=(utc_at(now + window.earliest),
                      utc_at(now + window.latest)),
            expires_at=await self.expiry(now))
        log.info("callback_promised callback=%s channel=%s queue=%s created=%s window=%.0f-%.0fs",
                 record.id, ch.id, offer.queue, created, window.earliest, window.latest)
        if created:
            await ch.play(self.media(self.cb.promise_prompt), interruptible=False)
            await ch.play(f"number:{window.minutes}", interruptible=False)
            await ch.play(self.media(self.cb.minutes_prompt), interruptible=False)
        else:
            await ch.play(self.media(self.cb.already_prompt), interruptible=False)
        await ch.hangup()

    # -- a time of the caller's choosing --------------------------------------------------
    async def choose_time(self, ch: Channel, offer: OfferArgs) -> None:
        log.info("callback_time_wanted channel=%s queue=%s", ch.id, offer.queue)
        for _ in range(MAX_TRIES):
            slots = await self.free_slots(offer.queue)
            if not slots:
                log.info("callback_no_free_time channel=%s queue=%s", ch.id, offer.queue)
                await ch.play(self.media("callback_no_times"), interruptible=False)
                break
            slot = await self.pick(ch, slots)
            if slot is None:
                break
            number = await self.number_to_call(ch)
            if number is None:
                break
            if await self.book(ch, offer, slot, number):
                return
        await self.back_in_line(ch, offer)

    async def free_slots(self, queue: str, count: int | None = None) -> list[Slot]:
        now = utc_at(self.clock())
        try:
            calendar = await callback_calendar(self.cb, self.parts.calendars)
        except NotBooked as exc:
            log.error("callback_slots_unavailable reason=%s", exc)
            return []
        candidates = list(candidate_slots(
            self.cb.slots, calendar, now, handle_time=self.cb.default_handle_time,
            lead=timedelta(seconds=self.cb.slot_lead), days=self.cb.slots_days))
        if not candidates:
            return []
        booked = await self.store.booked_times(queue, candidates[0].begins,
                                               candidates[-1].ends)
        return free_slots(candidates, booked, count or self.cb.slots_offered)

    async def pick(self, ch: Channel, slots: list[Slot]) -> Slot | None:
        """The times said once each with their key; 0 or silence: none."""
        for _ in range(MAX_TRIES):
            ch.discard_keys()
            key = await ch.play(self.media("callback_times"), interruptible=True)
            for n, slot in enumerate(slots, 1):
                key = key or await self.say(ch, slot)
                key = key or await ch.play(self.media("callback_press"), interruptible=True)
                key = key or await ch.play(f"digits:{n}", interruptible=True)
            key = key or await ch.play(self.media("callback_keep_waiting"), interruptible=True)
            key = key or await ch.next_key(KEY_TIMEOUT)
            if key is None or key == "0":
                return None
            if key.isdigit() and 1 <= int(key) <= len(slots):
                return slots[int(key) - 1]
        return None

    async def say(self, ch: Channel, slot: Slot) -> str | None:
        """ "tomorrow between 10 and 12" (Asterisk says the numbers in the channel's
        language); minutes are said only when a time has them."""
        at, ends = slot.wall(slot.at), slot.wall(slot.ends)
        day = DAY_PROMPTS[slot.day] if slot.day < 2 else DAY_PROMPTS[2 + at.weekday()]
        parts = [self.media(day), self.media("callback_between"), *_clock(at),
                 self.media("callback_and"), *_clock(ends)]
        for media in parts:
            key = await ch.play(media, interruptible=True)
            if key:
                return key
        return None

    async def book(self, ch: Channel, offer: OfferArgs, slot: Slot, number: Dialable) -> bool:
        """Books the chosen time; False when it cannot be (taken meanwhile, or refused):
        the caller hears the times again."""
        # Another caller may have taken its last place while this one keyed their number.
        fresh = [s for s in await self.free_slots(offer.queue, 1000) if s.begins == slot.begins]
        if not fresh:
            log.info("callback_slot_taken channel=%s slot=%s", ch.id, slot.at.isoformat())
            await ch.play(self.media("callback_no_times"), interruptible=False)
            return False
        slot = fresh[0]
        try:
            record, created = await schedule(
                self.store, self.cb, self.parts.calendars,
                Request(number.e164, slot.at, slot.window, offer.queue),
                now=utc_at(self.clock()), call_id=ch.call_id)
        except NotBooked as exc:
            log.info("callback_time_refused channel=%s field=%s reason=%s", ch.id, exc.field,
                     exc.reason)
            await ch.play(self.media(self.cb.refused_prompt), interruptible=False)
            return False
        log.info("callback_booked callback=%s channel=%s queue=%s at=%s until=%s created=%s",
                 record.id, ch.id, offer.queue, slot.at.isoformat(), slot.ends.isoformat(),
                 created)
        if created:
            await ch.play(self.media("callback_booked"), interruptible=False)
            await self.say(ch, slot)
            await ch.play(self.media("callback_goodbye"), interruptible=False)
        else:
            await ch.play(self.media(self.cb.already_prompt), interruptible=False)
        await ch.hangup()
        return True

    async def expiry(self, now: float) -> datetime:
        """`expire_after` counted in the callback calendar's open time when dialling is
        bounded by one: a caller who asks at 16:55 on a Friday is called on Monday, not
        dropped over the weekend or a holiday."""
        plain = utc_at(now + self.cb.expire_after)
        if not self.cb.calendar or self.parts.calendars is None:
            return plain
        try:
            calendar = await self.parts.calendars.get(self.cb.calendar)
            return calendar.after_open_time(utc_at(now),
                                            timedelta(seconds=self.cb.expire_after))
        except (KeyError, NoOpening):
            return plain  # the dialler logs the calendar problem (and dials nobody)

    async def window(self, offer: OfferArgs, now: float) -> Window:
        return promise_window(await self.estimate(offer, now))

    async def estimate(self, offer: OfferArgs, now: float) -> Estimate:
        view = self.queues.view(offer.queue) if self.queues is not None else None
        if view is None:
            return estimate_wait(1, self.cb.default_handle_time, 0)
        assert self.queues is not None
        ahead = await self.store.count_ahead(offer.queue,
                                             utc_at(offer.joined_at))
        position = position_in_queue(view, offer.joined_at, now, self.queues.now(), ahead,
                                     PLACEHOLDER_CONTEXT)
        aht = handle_time(view.talktime, view.holdtime, view.completed,
                          self.cb.default_handle_time)
        return estimate_wait(position, aht, serving(view))

    async def back_in_line(self, ch: Channel, offer: OfferArgs | None) -> None:
        """Back in the queue at the position the exit context saved (its `back`
        extension re-queues from the channel's variables)."""
        log.info("callback_back_in_line channel=%s queue=%s", ch.id,
                 offer.queue if offer else "-")
        await ch.continue_to(*self.back_in_line_location())

    @staticmethod
    def back_in_line_location() -> tuple[str, str, int]:
        return (OFFER_CONTEXT, "back", 1)


def _clock(t: datetime) -> list[str]:
    return [f"number:{t.hour}"] + ([f"number:{t.minute}"] if t.minute else [])
