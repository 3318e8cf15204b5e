"""The caller who pressed 1 in the queue, top to bottom as they hear it:

number to call (caller id, or keyed in) -> read back -> 1 to confirm, 2 to re-enter
-> the promise ("about 12 minutes") -> goodbye.   Anything else: back in the queue
at their place (the dialplan after Stasis() does that; so does the fallback).

Nothing the caller keys becomes part of a dial string unchecked: digits are
bounded and pass the allow-list (nohold.decisions.numbers) before they are stored.
"""

from __future__ import annotations

import logging

from ari_apps.callbacks.parts import CallbackParts
from ari_apps.channel import Channel
from callbackdb.callbacks import utc_at
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
from nohold.decisions.numbers import Dialable, NumberRefused

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
        if key != "1":
            await ch.continue_on()
            return
        await self.accepted(ch, offer)

    async def run(self, ch: Channel) -> None:
        try:
            offer = read_offer_args(list(ch.args), self.cb.queues, self.clock())
        except BadOfferArgs as exc:
            log.warning("callback_offer_refused channel=%s reason=%s", ch.id, exc)
            await self.back_in_line(ch, None)
            return
        ch.call_id = offer.call_id or ch.call_id
        logs.call_id.set(ch.call_id)
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
            expires_at=utc_at(now + self.cb.expire_after))
        log.info("callback_promised callback=%s channel=%s queue=%s created=%s window=%.0f-%.0fs",
                 record.id, ch.id, offer.queue, created, window.earliest, window.latest)
        if created:
            await ch.play(self.media(self.cb.promise_prompt), interruptible=False)
            await ch.play(f"number:{window.minutes}", interruptible=False)
            await ch.play(self.media(self.cb.minutes_prompt), interruptible=False)
        else:
            await ch.play(self.media(self.cb.already_prompt), interruptible=False)
        await ch.hangup()

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
