"""The `nohold-callback` Stasis application: callers taking the offer, and the legs the
dialler makes (placeholders and customers, which enter through channels/create and
never reach `run_call`)."""

from __future__ import annotations

import logging

from nohold.ari_apps.callbacks.dialer import PLACEHOLDER_PREFIX, Dialer
from nohold.ari_apps.callbacks.offer import OFFER_CONTEXT, QUEUE_CONTEXT, OfferFlow
from nohold.ari_apps.channel import Channel
from nohold.ari_apps.runtime import DialplanLocation, StasisRuntime

log = logging.getLogger("nohold.callbacks")


class CallbackApp:
    name = "callbacks"

    def __init__(self, offer: OfferFlow, dialer: Dialer) -> None:
        self.offer = offer
        self.dialer = dialer

    def bind_runtime(self, runtime: StasisRuntime) -> None:
        self.dialer.rt = runtime

    async def run_call(self, ch: Channel) -> None:
        if ch.args[:1] in (["offer"], ["offer-time"]):
            await self.offer.run(ch)
            return
        if ch.args[:1] == ["join"]:
            await self.offer.at_join(ch)
            return
        log.warning("callback_unexpected_channel channel=%s args=%s: hanging up", ch.id,
                    ",".join(ch.args))
        await ch.hangup()

    def fallback(self, ch: Channel | None) -> DialplanLocation | None:
        """An offer caller goes back in line (the `back` extension hangs up anything
        that never was in a queue); the dialler's own legs are hung up."""
        if ch is not None and ch.id.startswith(PLACEHOLDER_PREFIX):
            return None
        if ch is not None and ch.args[:1] == ["join"] and ch.args[1:2] and \
                ch.args[1] in self.offer.cb.queues:
            # NOHOLD_JOINED is set by now: the queue context goes straight to Queue().
            return (QUEUE_CONTEXT, ch.args[1], 1)
        return (OFFER_CONTEXT, "back", 1)

    def leaves_orphan(self, channel_id: str) -> bool:
        # The dialler's legs are recovered from the database (Dialer.recover), which
        # knows a conversation from a leftover.
        return channel_id.startswith(PLACEHOLDER_PREFIX)
