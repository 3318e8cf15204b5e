"""Callbacks keep their place, then an agent calls the customer: the dialler.

Every second (and at once when woken) the dialler, on each node:
- expires waiting callbacks past their time, renews the leases of those it holds,
  and takes over callbacks whose holder stopped renewing (a node killed);
- for each callback queue, lets waiting callbacks stand in the queue as
  placeholders, earliest arrival first, at most `max_waiting_per_agent` per
  logged-in agent, each entering at its caller's place.

A placeholder's life, as the agent hears it:
  the queue connects an agent -> bridge -> whisper ("callback, waited 14 minutes")
  -> the customer's leg is created, added, dialled (ring tone to the agent)
  -> answered: they talk -> either hangs up, the other leg is ended.
  -> busy, no answer...: the agent hears one short prompt and is released; retry.
If the agent leaves in the instant after the customer answered, the customer
hears the information message and the attempt counts as abandoned.

Exactly once: the only way to a dial is the guarded move to `dialling` with the
next attempt number (callbackdb/callbacks.py); a node that lost the callback
(cancelled, taken over) hangs its placeholder up instead. A node killed after the
dial cannot note the answer: Asterisk does, in AstDB, from the customer leg's
hangup handler ([nohold-callback-leg-end]), and whoever takes the attempt over
reads it there before deciding between "talked" and a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from datetime import UTC, datetime
from collections.abc import Mapping
from typing import Any

from nohold.ari_apps.agent_first import CustomerLeg, dial_into_bridge, until_one_leaves
from nohold.ari_apps.ari_client import AriError, AriNotFound
from nohold.ari_apps.bridge import Bridge
from nohold.ari_apps.callbacks.notes import NoteVoice
from nohold.ari_apps.callbacks.offer import LEG_END_CONTEXT, LEG_FAMILY, PLACEHOLDER_CONTEXT
from nohold.ari_apps.callbacks.parts import CallbackParts
from nohold.ari_apps.channel import CallerHungUp, Channel
from nohold.ari_apps.runtime import StasisRuntime
from nohold.callbackdb.callbacks import CallbackRecord, utc_at
from nohold import logs
from nohold.ami.client import AmiError, AmiErrorResponse
from nohold.decisions.callbacks import (
    AttemptOutcome,
    State,
    after_attempt,
    expired,
    placeholder_callback,
    placeholders_wanted,
    position_in_queue,
    standing_ahead,
    turn,
)
from nohold.decisions.dial import DialOutcome
from nohold.decisions.hours import Calendar
from nohold.decisions.numbers import NumberRefused
from nohold.decisions.queue_state import QueueMember, QueueView
from nohold.decisions.schedule import moved_for_closure

log = logging.getLogger("nohold.callbacks")

TICK = 1.0
# A customer who answered and lost the agent within this many seconds heard
# nobody: they get the information message, and the attempt is abandoned.
ABANDON_WINDOW = 2.0
# Seconds to wait for an answered customer leg to be gone before its AstDB note is deleted.
FORGET_WAIT = 30.0
PLACEHOLDER_PREFIX = "cb-"
# How long one placeholder may keep the next of its queue waiting for app_queue to
# show it joined (a join is a few milliseconds; a dead one ends sooner).
JOIN_WAIT = 5.0
# After a placeholder could not be made (Asterisk shutting down, overloaded, its
# app not registered), no new one for this long, doubling per failure in a row:
# a failing Asterisk is asked a few times a second at most, never in a tight loop.
STAND_OFF_FIRST = 0.25
STAND_OFF_MAX = 5.0
# A customer's leg: cb-<callback>-a<attempt>-<6 hex> (see `attempt`).
_CUSTOMER = re.compile(rf"{PLACEHOLDER_PREFIX}\d+-a\d+-[0-9a-f]{{6}}")

_BY_DIAL = {
    DialOutcome.BUSY: AttemptOutcome.BUSY,
    DialOutcome.NO_ANSWER: AttemptOutcome.NO_ANSWER,
    DialOutcome.REJECTED: AttemptOutcome.REJECTED,
    DialOutcome.CONGESTION: AttemptOutcome.CONGESTION,
    DialOutcome.UNREACHABLE: AttemptOutcome.UNREACHABLE,
    DialOutcome.CANCELLED: AttemptOutcome.AGENT_GONE,
    DialOutcome.FAILED: AttemptOutcome.FAILED,
}


class Dialer:
    def __init__(self, parts: CallbackParts) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.cb = parts.cb
        self.store = parts.store
        self.queues = parts.queues
        self.clock = parts.clock
        self.media = parts.media
        self.rt: StasisRuntime | None = None
        self.held: dict[int, asyncio.Task[None]] = {}
        self.dialling: set[int] = set()
        self.watching: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()
        # One placeholder at a time joins a queue: app_queue's position counts who is
        # there, so each one is placed after the last has joined (see _position).
        self.joining: dict[str, asyncio.Lock] = {}
        # Per queue: failures in a row, and until when no placeholder is made there.
        self.stand_off: dict[str, tuple[int, float]] = {}
        self.note_kept_warned = False
        self.calendar_problem_logged = False
        self.notes = NoteVoice(parts.settings.prompts, parts.store)

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        """The background task: until cancelled (then placeholders are hung up; the
        callbacks stay in the database and stand again at the next start)."""
        try:
            await self._wait_connected()
            await self.recover(await self.store.mine(), "restart")
            while True:
                try:
                    await self.cycle()
                except Exception:  # noqa: BLE001 - a failed cycle is retried next tick
                    log.exception("callback_cycle_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            tasks = [*self.held.values(), *self.watching]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.notes.close()

    async def _wait_connected(self) -> None:
        assert self.rt is not None, "the Stasis runtime binds the dialler before it runs"
        await self.rt.connected.wait()

    async def cycle(self) -> None:
        now = self.clock()
        self.notes.prepare(utc_at(now))
        await self.move_for_closure(now)
        for record in await self.store.expire_waiting(utc_at(now)):
            log.info("callback_expired callback=%s call=%s reason=expire_after", record.id,
                     record.call_id)
        await self.renew(now)
        lapsed = [r for r in await self.store.lapsed(utc_at(now)) if r.id not in self.held]
        if lapsed:
            await self.recover(lapsed, "lease_lapsed")
        for queue in self.cb.queues:
            await self.stand_in(queue, now)

    async def renew(self, now: float) -> None:
        if not self.held:
            return
        still = await self.store.renew(self.held, utc_at(now))
        for callback_id in set(self.held) - still - self.dialling:
            # Cancelled by a supervisor, expired, or taken over: the place is given up.
            log.info("callback_released callback=%s reason=no_longer_held", callback_id)
            self.held[callback_id].cancel()

    def _may_stand(self, queue: str, now: float) -> bool:
        """A placeholder may be made in `queue` now: its state is known (AMI), the app is
        registered with Asterisk (a channel made into it otherwise dies unheard), and
        no stand-off after a failure holds."""
        view = self.queues.view(queue) if self.queues is not None else None
        return (view is not None and self.queues is not None and self.queues.fresh
                and self.rt is not None and self.rt.connected.is_set()
                and now >= self.stand_off.get(queue, (0, 0.0))[1])

    def _failed(self, queue: str) -> None:
        failures, until = self.stand_off.get(queue, (0, 0.0))
        now = self.clock()
        if now >= until:  # the others of its batch, failing meanwhile, count once
            failures += 1
            until = now + min(STAND_OFF_MAX, STAND_OFF_FIRST * 2 ** (failures - 1))
        self.stand_off[queue] = (failures, until)

    async def stand_in(self, queue: str, now: float) -> None:
        view = self.queues.view(queue) if self.queues is not None else None
        if view is None or not self._may_stand(queue, now):
            return
        if not await self._calendar_open(now):
            return  # nobody is called outside the callback calendar; they wait for it
        standing = await self.store.count_in(queue, State.QUEUED)
        wanted = placeholders_wanted(view.logged_in, self.cb.max_waiting_per_agent, standing)
        if not wanted:
            return
        for record in await self.store.take_turns(queue, wanted, utc_at(now)):
            self._start(record)

    async def move_for_closure(self, now: float) -> None:
        """Agreed times that fall due while the callback calendar is closed (a holiday
        or closed day added after they were agreed, a closing inside the window) move to
        its next opening, keeping their window: kept late, not silently missed."""
        if not self.cb.calendar:
            return
        calendar = await self._calendar()
        wall = utc_at(now)
        if calendar is None or calendar.is_open(wall).open:
            return
        why = calendar.is_open(wall).reason
        for record in await self.store.due_scheduled(wall):
            assert record.due_at is not None
            promised = (record.promised_earliest or record.due_at, record.expires_at)
            booking = moved_for_closure(promised, record.due_at, wall, calendar)
            if booking is None:
                continue  # its window passed while open: expire_waiting names it missed
            moved = await self.store.move_agreed(record, booking.at, booking.until, why, wall)
            if moved is not None:
                log.info("callback_moved callback=%s call=%s from=%s to=%s why=%s", record.id,
                         record.call_id, promised[0].isoformat(), booking.at.isoformat(),
                         why)

    async def _calendar_open(self, now: float) -> bool:
        """Inside `callbacks.calendar` (always, when none is named). An unknown name
        dials nobody (a config mistake must not ring customers at night)."""
        if not self.cb.calendar:
            return True
        calendar = await self._calendar()
        return calendar is not None and calendar.is_open(utc_at(now)).open

    async def _calendar(self) -> Calendar | None:
        """The bounding calendar; None (logged once) when it cannot be had."""
        name = self.cb.calendar
        if self.parts.calendars is None:
            self._calendar_problem(f"calendar {name!r} named but the calendar feature is off")
            return None
        try:
            return await self.parts.calendars.get(name)
        except KeyError:
            self._calendar_problem(f"no calendar {name!r} ([calendar.{name}] in the config)")
            return None

    def _calendar_problem(self, text: str) -> None:
        if not self.calendar_problem_logged:
            self.calendar_problem_logged = True
            log.error("callback_calendar_unknown %s: no callback is dialled", text)

    def _start(self, record: CallbackRecord) -> None:
        async def with_ids() -> None:
            logs.call_id.set(record.call_id)
            try:
                await self.hold_place(record)
            finally:
                self.held.pop(record.id, None)
                self.dialling.discard(record.id)
                self.wake.set()

        self.held[record.id] = asyncio.create_task(with_ids())

    # -- one placeholder ---------------------------------------------------------------------
    async def hold_place(self, record: CallbackRecord) -> None:
        assert self.rt is not None
        token = uuid.uuid4().hex[:8]
        placeholder_id = f"{PLACEHOLDER_PREFIX}{record.id}-{token}"
        agent: Channel | None = None
        try:
            if record.scheduled and record.owner_agent:
                agent = await self._owner_first(record)
                if agent is not None:
                    await self.agent_connected(record, agent, owner=record.owner_agent)
                    return
            async with self.joining.setdefault(record.queue, asyncio.Lock()):
                # Waiting for the lock, the app may have dropped or the one ahead failed.
                if not self._may_stand(record.queue, self.clock()):
                    await self._back_in_line(record, "not_now")
                    return
                position = await self._position(record)
                agent = await self.rt.create_channel(
                    f"Local/s@{PLACEHOLDER_CONTEXT}/n", channel_id=placeholder_id,
                    other_channel_id=f"{placeholder_id}-q",
                    app_args=("placeholder", str(record.id)),
                    variables={"NOHOLD_CB_ID": str(record.id), "NOHOLD_CB_QUEUE": record.queue,
                               "NOHOLD_CB_POSITION": str(position)})
                await agent.dial()
                log.info("callback_standing callback=%s call=%s queue=%s position=%d "
                         "channel=%s", record.id, record.call_id, record.queue, position,
                         placeholder_id)
                await self._joined(record.queue, f"{placeholder_id}-q", agent)
            self.stand_off.pop(record.queue, None)
            await _first(agent.up, agent.gone)
            if not agent.up.is_set():
                await self._back_in_line(record, "placeholder_ended")
                return
            await self.agent_connected(record, agent)
        except (AriError, CallerHungUp, TimeoutError) as exc:
            log.warning("callback_placeholder_failed callback=%s error=%s: %s", record.id,
                        type(exc).__name__, exc)
            self._failed(record.queue)
            await self._back_in_line(record, "placeholder_failed")
        except asyncio.CancelledError:
            if record.id not in self.dialling:
                await asyncio.shield(self._back_in_line(record, "stopped"))
            raise
        finally:
            if agent is not None and not agent.keep_at_shutdown:
                with contextlib.suppress(AriError):
                    await agent.hangup()

    async def _position(self, record: CallbackRecord) -> int:
        """Where the placeholder enters, counted from who is in the queue now: live
        callers who arrived no later, and placeholders (any node's) of callbacks
        served earlier. An agreed time that fell due goes ahead of every live caller,
        behind agreed times due before it.

        Two nodes placing at the same moment may each miss the other's placeholder
        (tens of ms); the later one then stands one place early."""
        assert self.queues is not None and self.rt is not None
        view = self.queues.view(record.queue)
        assert view is not None, "_may_stand saw it"
        ids = [i for c in view.callers
               if (i := placeholder_callback(c.uniqueid, PLACEHOLDER_PREFIX)) is not None
               and not self._taken(c.uniqueid)]
        mine = turn(record.scheduled, record.arrived_at.timestamp(), record.id)
        ahead = standing_ahead(view, mine, await self.store.turns(ids), PLACEHOLDER_PREFIX)
        if record.scheduled:
            return 1 + ahead
        return position_in_queue(view, record.arrived_at.timestamp(), self.clock(),
                                 self.queues.now(), ahead, PLACEHOLDER_CONTEXT)

    def _taken(self, uniqueid: str) -> bool:
        """One of ours that an agent answered: the view (AMI) may not show it leaving
        yet, ARI said so first. Not ahead of anyone any more."""
        assert self.rt is not None
        ours = self.rt.channels.get(uniqueid.removesuffix("-q"))
        return ours is not None and ours.up.is_set()

    async def _joined(self, queue: str, uniqueid: str, agent: Channel) -> None:
        """Until app_queue shows the placeholder's queue half among the queue's callers
        (or it is answered or gone first), at most JOIN_WAIT: the next placeholder's
        position counts it."""
        if self.queues is None:
            return

        def there(views: Mapping[str, QueueView]) -> bool:
            if self.queues is None or not self.queues.fresh:
                return True  # AMI is down: nothing to see; the next one checks first
            view = views.get(queue)
            return view is not None and any(c.uniqueid == uniqueid for c in view.callers)

        seen = asyncio.ensure_future(self.queues.wait_for(there, JOIN_WAIT))
        try:
            await _first_done(seen, agent.up, agent.gone)
        finally:
            seen.cancel()
        if seen.done() and not seen.cancelled() and seen.exception() is not None:
            log.warning("callback_join_unseen channel=%s queue=%s within=%ss", uniqueid, queue,
                        JOIN_WAIT)

    async def _owner_first(self, record: CallbackRecord) -> Channel | None:
        """The agent who promised the call, rung directly while the grace lasts: each
        time the queue state shows them free (logged in, not paused, not on a call).
        None once the grace is over (the queue's next free agent takes it)."""
        assert self.rt is not None
        due = (record.due_at or record.arrived_at).timestamp()
        while self.clock() < due + self.cb.owner_grace:
            member = self._member(record.queue, record.owner_agent)
            if member is not None and member.available and not member.in_call:
                token = uuid.uuid4().hex[:8]
                agent = await self.rt.create_channel(
                    member.interface, channel_id=f"{PLACEHOLDER_PREFIX}{record.id}-{token}",
                    app_args=("owner", str(record.id)))
                await agent.dial(self.cb.ring_timeout)
                log.info("callback_owner_ringing callback=%s agent=%s", record.id,
                         record.owner_agent)
                await _first(agent.up, agent.gone)
                if agent.up.is_set():
                    return agent
                with contextlib.suppress(AriError):
                    await agent.hangup()
            await asyncio.sleep(TICK)
        log.info("callback_owner_grace_over callback=%s owner=%s: the queue takes it",
                 record.id, record.owner_agent)
        return None

    def _member(self, queue: str, who: str) -> QueueMember | None:
        """A member of `queue` by name (MemberName) or interface."""
        view = self.queues.view(queue) if self.queues is not None else None
        if view is None:
            return None
        return next((m for m in view.members.values() if who in (m.name, m.interface)), None)

    async def _back_in_line(self, record: CallbackRecord, reason: str) -> None:
        """The placeholder left the queue without an agent: pending again, same arrival."""
        now = utc_at(self.clock())
        for state in (State.QUEUED, State.AGENT_CONNECTED):
            try:
                if await self.store.move(record.id, state, State.PENDING, now,
                                         outcome=reason) is not None:
                    log.info("callback_back_in_line callback=%s reason=%s", record.id, reason)
                    return
            except Exception:  # noqa: BLE001 - the lease lapses and another pass recovers it
                log.exception("callback_back_in_line_failed callback=%s", record.id)
                return

    async def agent_connected(self, record: CallbackRecord, agent: Channel,
                              owner: str = "") -> None:
        assert self.rt is not None
        now = self.clock()
        connected = await self.store.move(record.id, State.QUEUED, State.AGENT_CONNECTED,
                                          utc_at(now))
        if connected is None:
            log.info("callback_not_ours callback=%s: releasing the agent", record.id)
            return
        # The placeholder's queue half (otherChannelId) is the caller app_queue saw.
        who = owner or (self.queues.agent_for(f"{agent.id}-q") if self.queues is not None
                        else "") or agent.connected
        log.info("callback_agent_connected callback=%s agent=%s", record.id, who or "-")
        refusal = await self._refusal(connected, now)
        if refusal is not None:
            final = State.EXPIRED if refusal == "expire_after" else State.CANCELLED
            await self.store.move(record.id, State.AGENT_CONNECTED, final, utc_at(now),
                                  outcome=refusal)
            log.warning("callback_not_dialled callback=%s reason=%s", record.id, refusal)
            return
        bridge = await self.rt.create_bridge(name=f"callback-{record.id}")
        try:
            await bridge.add(agent)
            # The customer sees the company's number: set on the agent's side, since
            # the bridge copies it to the customer's leg (docs/decisions/0006).
            await agent.set_vars({"CALLERID(num)": self.cb.caller_id,
                                  "CALLERID(name)": self.cb.caller_name,
                                  "CALLERID(pres)": "allowed"})
            dialling = await self.store.begin_attempt(connected, who, utc_at(now))
            if dialling is None:
                log.info("callback_not_ours callback=%s: lost before the dial", record.id)
                return
            self.dialling.add(record.id)
            # The whisper plays while the customer's phone starts ringing (the ring
            # tone queues behind it on the agent's channel): the agent does not idle
            # through it, and it is cut short if the customer answers first. A note
            # is the exception: heard before the dial.
            whisper = asyncio.ensure_future(self.whisper(agent, connected, now, bool(owner)))
            try:
                if self.notes.ready(connected) is not None:
                    # A note (a follow-up: the ticket and its fix) is what the agent must
                    # know before the customer says hello: heard whole before the dial,
                    # never cut short by a quick answer.
                    await whisper
                await self.attempt(dialling, agent, bridge, whisper)
            finally:
                whisper.cancel()
                await asyncio.gather(whisper, return_exceptions=True)
        finally:
            if not agent.keep_at_shutdown:
                await bridge.destroy()

    async def _refusal(self, record: CallbackRecord, now: float) -> str | None:
        """Checked again right before the dial: the list or the config may have changed."""
        if expired(now, record.expires_at.timestamp()):
            return "expire_after"
        try:
            self.cb.numbers.check(record.number)
        except NumberRefused as exc:
            return f"not_allowed:{exc.reason}"
        if await self.store.on_dnc(record.number):
            return "do_not_call"
        return None

    async def whisper(self, agent: Channel, record: CallbackRecord, now: float,
                      owner: bool = False) -> None:
        if record.scheduled and record.owner_agent:
            # Who promised it: this agent, or another whose grace ran out.
            said: tuple[str, ...] = (self.media(self.cb.whisper_owner_prompt if owner
                                                else self.cb.whisper_taken_prompt),)
        elif record.scheduled:
            said = (self.media(self.cb.whisper_owner_prompt),)
        else:
            waited = max(1, round((now - record.arrived_at.timestamp()) / 60))
            said = (self.media(self.cb.whisper_prompt), f"number:{waited}", "sound:minutes")
        note = self.notes.ready(record)
        if note is not None:
            # What the booking left for the agent (a follow-up: the ticket and its fix),
            # after who the call is for; rendered ahead, so the ring tone is not delayed.
            said += (self.media(note),)
        try:
            # One playback: the ring tone the dial starts meanwhile queues behind all of
            # it, never between who the call is for and the note.
            await agent.play(said, interruptible=False)
        except CallerHungUp:
            return  # the attempt sees the agent gone
        except asyncio.CancelledError:
            with contextlib.suppress(AriError, CallerHungUp):
                await agent.stop_playbacks()
            raise

    async def attempt(self, record: CallbackRecord, agent: Channel, bridge: Bridge,
                      whisper: asyncio.Future[None]) -> None:
        assert self.rt is not None
        number = self.cb.numbers.check(record.number)
        endpoint = self.cb.outbound.endpoint(number.digits(self.cb.dial_format))
        log.info("callback_dialling callback=%s attempt=%d endpoint=%s", record.id,
                 record.attempts, endpoint)
        leg: CustomerLeg | None = None
        times: dict[str, object] = {}
        try:
            leg = await dial_into_bridge(
                self.rt, agent, bridge, endpoint,
                f"{PLACEHOLDER_PREFIX}{record.id}-a{record.attempts}-{uuid.uuid4().hex[:6]}",
                self.cb.ring_timeout, app_args=("customer", str(record.id)),
                # Inherited (__) by a Local channel's other half, where an outbound
                # route's answering-machine detection runs and may note "machine".
                variables={"__NOHOLD_CB_LEG": _leg_key(record.id, record.attempts),
                           "CHANNEL(hangup_handler_push)": f"{LEG_END_CONTEXT},s,1"})
            rang = _asterisk_time(leg.channel.ringing_at) if leg.channel else None
            if rang is not None:
                times["customer_ring_at"] = rang
            if leg.outcome is DialOutcome.ANSWERED and leg.channel is not None:
                whisper.cancel()  # the customer said hello: the agent must hear them
                times["customer_answer_at"] = utc_at(self.clock())
                if leg.answer_to_audio_ms is not None:
                    times["answer_to_audio_ms"] = leg.answer_to_audio_ms
                await self._note_answer(record, times)
                outcome = await self.talk(record, agent, leg.channel)
                if outcome is AttemptOutcome.MACHINE:
                    await self.tell_agent(agent)
                # Asterisk notes the answer when the leg hangs up; this node knows it.
                self._forget_when_gone(record, leg.channel)
            else:
                outcome = _BY_DIAL.get(leg.outcome, AttemptOutcome.FAILED)
                if self.cb.amd and await self._machine(record):
                    outcome = AttemptOutcome.MACHINE
                await self.tell_agent(agent)
        except asyncio.CancelledError:
            if agent.keep_at_shutdown:
                # Stopped mid-conversation: the call goes on in Asterisk; the attempt
                # stays `dialling` and the next start finds the customer talking.
                raise
            if leg is None or leg.channel is None:
                log.warning("callback_dial_stopped callback=%s", record.id)
            await asyncio.shield(self._end(record, AttemptOutcome.INTERRUPTED, leg, times))
            raise
        await self._end(record, outcome, leg, times)

    async def _note_answer(self, record: CallbackRecord, times: dict[str, object]) -> None:
        """The answer, in the database at once: if this node dies mid-conversation, the
        recovery knows the customer talked even when the call is over by then."""
        try:
            await self.store.note_attempt(record.id, record.attempts, **times)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the end of the attempt records it again
            log.exception("callback_answer_not_noted callback=%s", record.id)

    async def talk(self, record: CallbackRecord, agent: Channel, customer: Channel) -> \
            AttemptOutcome:
        started = self.clock()
        log.info("callback_talking callback=%s", record.id)
        agent.keep_at_shutdown = customer.keep_at_shutdown = True
        first = agent if agent.gone.is_set() else await until_one_leaves(agent, customer)
        if first is customer and self.cb.amd and await self._machine(record):
            # app_amd heard a machine and ended its leg: the agent is told, not hung up.
            log.info("callback_machine callback=%s", record.id)
            return AttemptOutcome.MACHINE
        if first is agent and self.clock() - started < ABANDON_WINDOW:
            log.warning("callback_abandoned callback=%s: agent left as the customer answered",
                        record.id)
            with contextlib.suppress(AriError, CallerHungUp):
                await customer.play(self.media(self.cb.info_prompt), interruptible=False)
            await customer.hangup()
            return AttemptOutcome.ABANDONED
        await (customer if first is agent else agent).hangup()
        return AttemptOutcome.TALKED

    async def tell_agent(self, agent: Channel) -> None:
        with contextlib.suppress(AriError, CallerHungUp):
            await agent.play(self.media(self.cb.agent_outcome_prompt), interruptible=False)

    async def _end(self, record: CallbackRecord, outcome: AttemptOutcome,
                   leg: CustomerLeg | None, times: dict[str, object]) -> None:
        now = self.clock()
        after = after_attempt(outcome, record.attempts, now, record.expires_at.timestamp(),
                              self.cb.policy)
        try:
            ended = await self.store.end_attempt(
                record, outcome, after, utc_at(now),
                cause=str(leg.channel.cause) if leg and leg.channel and leg.channel.cause
                else "", **times)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the lease lapses; recovery ends it as interrupted
            log.exception("callback_attempt_not_recorded callback=%s", record.id)
            return
        log.info("callback_attempt_end callback=%s attempt=%d outcome=%s next=%s%s", record.id,
                 record.attempts, outcome, after.state,
                 f" reason={after.reason}" if after.reason else "")
        if ended is None:
            log.error("callback_attempt_end_lost callback=%s: no longer held", record.id)

    # -- recovery ------------------------------------------------------------------------
    async def recover(self, records: list[CallbackRecord], why: str) -> None:
        """Callbacks held by a node that is gone (this one before a restart, or another):
        their leftover channels are ended, queued ones go back in line, an attempt that
        was dialling ends as interrupted (counted: a crash loop cannot ring a customer
        more than max_attempts times), or as talked when the customer answered: a
        conversation still going on is left alone and watched, to release the other
        side when one hangs up."""
        assert self.rt is not None
        if not records:
            return
        leftovers = await self._channels()
        now = self.clock()
        for record in records:
            mine = record if record.owner == self.store.node else \
                await self.store.take_over(record, utc_at(now))
            if mine is None:
                continue
            log.warning("callback_recovered callback=%s state=%s from=%s reason=%s", mine.id,
                        mine.state, record.owner, why)
            if mine.state is not State.DIALLING:
                await self._end_leftovers(mine, leftovers)
                await self.store.move(mine.id, mine.state, State.PENDING, utc_at(now),
                                      outcome=f"recovered_{why}")
                continue
            talking = _talking(mine, leftovers)
            try:
                answered = talking or await self._answered(mine) or (
                    not _ringing(mine, leftovers) and await self._asterisk_saw_answer(mine))
            except AmiError as exc:
                # Not knowing whether the customer talked, nothing is decided: the
                # lease stays lapsed and the next pass asks again.
                log.warning("callback_recover_postponed callback=%s error=%s", mine.id, exc)
                continue
            if talking:
                log.info("callback_left_talking callback=%s channels=%s", mine.id,
                         ",".join(_of(mine, leftovers)))
                self._watch(mine, _of(mine, leftovers))
            else:
                await self._end_leftovers(mine, leftovers)
            outcome = AttemptOutcome.TALKED if answered else AttemptOutcome.INTERRUPTED
            after = after_attempt(outcome, mine.attempts, now, mine.expires_at.timestamp(),
                                  self.cb.policy)
            await self.store.end_attempt(mine, outcome, after, utc_at(now),
                                         cause=f"recovered_{why}")

    async def _channels(self) -> dict[str, str]:
        """The dialler's channels in Asterisk (any node's): id -> state (Up, Ring...)."""
        assert self.rt is not None
        try:
            channels = await self.rt.ari.request("GET", "/channels")
        except AriError:
            log.exception("callback_recover_list_failed")
            return {}
        return {str(c.get("id", "")): str(c.get("state", "")) for c in channels or []
                if str(c.get("id", "")).startswith(PLACEHOLDER_PREFIX)}

    async def _answered(self, record: CallbackRecord) -> bool:
        """The customer of the current attempt answered (noted as it happened)."""
        return any(a.attempt == record.attempts and a.customer_answer_at is not None
                   for a in await self.store.attempts(record.id))

    async def _asterisk_saw_answer(self, record: CallbackRecord) -> bool:
        """The current attempt's customer leg hung up after answering: Asterisk noted
        it (the node that dialled may have died before it could). Raises AmiError
        when Asterisk cannot be asked."""
        return await self._attempt_note(record) == "answered"

    async def _machine(self, record: CallbackRecord) -> bool:
        """The leg ended because app_amd heard a machine (the outbound route's Gosub
        noted it before ending the leg)."""
        try:
            return await self._attempt_note(record) == "machine"
        except AmiError as exc:
            log.warning("callback_amd_unknown callback=%s error=%s", record.id, exc)
            return False

    async def _attempt_note(self, record: CallbackRecord) -> str:
        """Asterisk's note on the current attempt's customer leg (read and deleted)."""
        return await self._leg_note(_leg_key(record.id, record.attempts))

    async def _forget_note(self, record: CallbackRecord) -> None:
        """The note is not needed once the leg is gone (its hangup handler has run):
        deleted, so that AstDB does not grow with every call; kept if AMI fails."""
        with contextlib.suppress(AmiError):
            await self._attempt_note(record)

    async def _leg_note(self, key: str) -> str:
        """Asterisk's note on a customer leg, read and deleted; "" when there is none."""
        if self.queues is None:
            raise AmiError("no AMI connection to ask Asterisk about the customer's leg")
        ami = self.queues.client
        try:
            found = await ami.action("DBGet", {"Family": LEG_FAMILY, "Key": key})
        except AmiErrorResponse:
            return ""  # "Database entry not found": the customer never answered
        messages = found if isinstance(found, list) else [found]
        value = next((str(m.get("Val", "")) for m in messages
                      if m.get("Event") == "DBGetResponse"), "")
        try:
            await ami.action("DBDel", {"Family": LEG_FAMILY, "Key": key})
        except AmiError as exc:
            if not self.note_kept_warned:
                self.note_kept_warned = True
                log.warning("callback_leg_note_kept family=%s key=%s error=%s: give the AMI "
                            "user write=system to delete these notes", LEG_FAMILY, key, exc)
        return value

    def _forget_when_gone(self, record: CallbackRecord, customer: Channel) -> None:
        """Asterisk's note of the answer, deleted once the answered leg is gone."""
        async def forget() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FORGET_WAIT):
                    await customer.destroyed.wait()
            await self._forget_note(record)

        task = asyncio.create_task(forget())
        self.watching.add(task)
        task.add_done_callback(self.watching.discard)

    async def _end_leftovers(self, record: CallbackRecord, channels: dict[str, str]) -> None:
        """Hang up what is left of a callback's placeholder and customer legs."""
        assert self.rt is not None
        for channel_id in _of(record, channels):
            with contextlib.suppress(AriNotFound, AriError):
                await self.rt.ari.request("DELETE", f"/channels/{channel_id}")

    def _watch(self, record: CallbackRecord, ids: list[str]) -> None:
        """A conversation recovered from a dead node goes on without its events: once
        the customer or the agent's side is gone, the rest is hung up."""
        async def watch() -> None:
            logs.call_id.set(record.call_id)
            customers = [i for i in ids if _is_customer(record.id, i)]
            agents = [i for i in ids if not _is_customer(record.id, i)]
            while True:
                await asyncio.sleep(TICK)
                alive = await self._channels()
                if not alive and not await self._asterisk_answers():
                    continue  # ARI unavailable: ask again
                if all(i in alive for i in customers) and any(i in alive for i in agents):
                    continue
                log.info("callback_conversation_over callback=%s", record.id)
                for channel_id in ids:
                    if channel_id in alive:
                        with contextlib.suppress(AriNotFound, AriError):
                            await self.rt.ari.request(  # type: ignore[union-attr]
                                "DELETE", f"/channels/{channel_id}")
                # Asterisk's note of the answer (the recovery already knew): once the
                # customer's leg is gone, its hangup handler has run.
                for _ in range(round(FORGET_WAIT / TICK)):
                    alive = await self._channels()
                    if not any(i in alive for i in customers):
                        break
                    await asyncio.sleep(TICK)
                await self._forget_note(record)
                return

        task = asyncio.create_task(watch())
        self.watching.add(task)
        task.add_done_callback(self.watching.discard)

    async def _asterisk_answers(self) -> bool:
        assert self.rt is not None
        try:
            await self.rt.ari.request("GET", "/asterisk/ping")
        except AriError:
            return False
        return True


def _is_customer(callback_id: int, channel_id: str) -> bool:
    """`cb-<callback>-a<attempt>-<token>` is a customer's leg (placeholders are
    `cb-<callback>-<token>` and `cb-<callback>-<token>-q`)."""
    return _CUSTOMER.fullmatch(channel_id) is not None and \
        channel_id.startswith(f"{PLACEHOLDER_PREFIX}{callback_id}-")


def _of(record: CallbackRecord, channels: dict[str, str]) -> list[str]:
    prefix = f"{PLACEHOLDER_PREFIX}{record.id}-"
    return sorted(i for i in channels if i.startswith(prefix))


def _asterisk_time(stamp: str) -> datetime | None:
    """An ARI event timestamp ("2026-12-03T08:40:33.944+0000"), or None."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    except ValueError:
        return None


def _leg_key(callback_id: int, attempt: int) -> str:
    """The AstDB key of an attempt's customer leg (family LEG_FAMILY)."""
    return f"{callback_id}-a{attempt}"


def _ringing(record: CallbackRecord, channels: dict[str, str]) -> bool:
    """The current attempt's customer leg is still there, not answered."""
    leg = f"{PLACEHOLDER_PREFIX}{record.id}-a{record.attempts}-"
    return any(i.startswith(leg) and _is_customer(record.id, i) and state != "Up"
               for i, state in channels.items())


def _talking(record: CallbackRecord, channels: dict[str, str]) -> bool:
    """The current attempt's customer leg is up (answered), not merely ringing."""
    leg = f"{PLACEHOLDER_PREFIX}{record.id}-a{record.attempts}-"
    return any(i.startswith(leg) and _is_customer(record.id, i) and state == "Up"
               for i, state in channels.items())


async def _first_done(task: asyncio.Future[Any], *events: asyncio.Event) -> None:
    """Until `task` is done or one of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait([task, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
