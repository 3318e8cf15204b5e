"""Agent first, then the customer: dial a customer into a bridge an agent is already in.

The customer's channel is created only here, after the agent's channel is in the
mixing bridge; it is added to the bridge before it is dialled, so the moment the
customer answers they are talking with the agent (no step left to take, no
music, no queue). While it rings, the agent hears a ring tone played to their
channel (docs/decisions/0006: ringing indication alone does not reach a Local
agent), stopped on answer.

Outcomes come from the Dial status or the destroy cause, whichever comes first
(busy and congestion leave the channel in the bridge: it is hung up here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from nohold.ari_apps.ari_client import AriError
from nohold.ari_apps.bridge import Bridge
from nohold.ari_apps.channel import CallerHungUp, Channel
from nohold.ari_apps.runtime import StasisRuntime
from nohold.decisions.dial import PROGRESS_STATUSES, DialOutcome

log = logging.getLogger("nohold.dialer")

# After the ring timeout, how long to wait for Asterisk's own end before hanging up.
OUTCOME_GRACE = 5.0
# After the leg's hang-up, how long to wait for ChannelDestroyed and its cause.
DESTROY_GRACE = 2.0
RINGBACK = "tone:ring"


@dataclass
class CustomerLeg:
    outcome: DialOutcome
    channel: Channel | None
    agent_left: bool = False  # the agent's channel went away while it rang
    answer_to_audio_ms: float | None = None


def _ms_between(start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (b - a).total_seconds() * 1000


async def dial_into_bridge(rt: StasisRuntime, agent: Channel, bridge: Bridge, endpoint: str,
                           channel_id: str, ring_timeout: float,
                           app_args: tuple[str, ...] = (),
                           variables: dict[str, str] | None = None) -> CustomerLeg:
    """Create the customer's leg (after the agent is bridged: the caller checks),
    add it to `bridge`, dial, and wait for the outcome. On any end but ANSWERED the
    leg is gone when this returns."""
    customer = await rt.create_channel(endpoint, channel_id=channel_id, app_args=app_args,
                                       variables=variables, originator=agent.id)
    try:
        await bridge.add(customer)
        await customer.dial(ring_timeout)
    except (AriError, CallerHungUp):
        await customer.hangup()
        return CustomerLeg(customer.outcome() if customer.gone.is_set()
                           else DialOutcome.FAILED, customer)
    ringback = asyncio.ensure_future(_ringback(agent, customer))
    try:
        return await _ring(agent, customer, ring_timeout)
    finally:
        ringback.cancel()
        await asyncio.gather(ringback, return_exceptions=True)


async def _ringback(agent: Channel, customer: Channel) -> None:
    await customer.ringing.wait()
    if customer.up.is_set():
        return
    try:
        await agent.play(RINGBACK, interruptible=False, hangup_grace=0)
    except asyncio.CancelledError:
        await agent.stop_playbacks()
        raise


async def _ring(agent: Channel, customer: Channel, ring_timeout: float) -> CustomerLeg:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ring_timeout + OUTCOME_GRACE
    while True:
        if customer.up.is_set():
            audio = max(0.0, _ms_between(customer.up_at, customer.entered_bridge_at) or 0.0) \
                if customer.entered_bridge_at and customer.up_at else None
            with contextlib.suppress(AriError):  # the conversation matters more
                await agent.stop_playbacks()
            return CustomerLeg(DialOutcome.ANSWERED, customer, agent.gone.is_set(), audio)
        if customer.gone.is_set():
            # StasisEnd / ChannelHangupRequest come first; the cause (21 rejected,
            # 19 no answer, 17 busy) only with ChannelDestroyed.
            try:
                async with asyncio.timeout(DESTROY_GRACE):
                    await customer.destroyed.wait()
            except TimeoutError:
                log.warning("customer_no_destroy_cause channel=%s", customer.id)
            return CustomerLeg(customer.outcome(), customer)
        if customer.dialstatus not in PROGRESS_STATUSES and customer.dialstatus != "ANSWER":
            # BUSY, CONGESTION...: the channel stays in the bridge until we end it.
            outcome = customer.outcome()
            await customer.hangup()
            return CustomerLeg(outcome, customer)
        if agent.gone.is_set():
            log.info("customer_ring_cancelled channel=%s reason=agent_left", customer.id)
            await customer.hangup()
            return CustomerLeg(DialOutcome.CANCELLED, customer, agent_left=True)
        left = deadline - loop.time()
        if left <= 0:
            log.warning("customer_no_outcome channel=%s; hanging up", customer.id)
            await customer.hangup()
            return CustomerLeg(DialOutcome.NO_ANSWER, customer)
        customer.dial_changed.clear()
        waits = [asyncio.ensure_future(e.wait()) for e in
                 (customer.up, customer.gone, customer.dial_changed, agent.gone)]
        try:
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


async def until_one_leaves(a: Channel, b: Channel) -> Channel:
    """The conversation: returns the channel that went first."""
    waits = {asyncio.ensure_future(a.gone.wait()): a, asyncio.ensure_future(b.gone.wait()): b}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return waits[next(iter(done))]
