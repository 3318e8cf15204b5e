"""The escalation loop: every open ticket that should alert gets a run, and every run's
due steps are carried out, until someone acknowledges or the plan runs out.

Each tick reads everything from the database, so any node, freshly restarted or not,
picks up where the others were: the run's frozen order and start give the plan
(`nohold.decisions.escalation`), the step rows say what was done, and the ticket's
state says whether anyone acknowledged. Replies from technicians come in through
`on_inbound` (the SMS gateway's thread hands them over).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from nohold.aio import stop_if_cancelled
from nohold.alerts.settings import AlertSettings, Person
from nohold.callbackdb import alerts as rows
from nohold.callbackdb.alerts import AlertRecord, AlertStore, NewTicket, RunRecord
from nohold.callbackdb.tickets import NoSuchTicket, TicketRecord, TicketStore
from nohold.decisions.alerts import (
    Delivery,
    alerts_for,
    parse_reply,
    retry_after,
    sms_text,
    to_carry_out,
)
from nohold.decisions.escalation import Step, Via, plan, unanswered_since
from nohold.decisions.numbers import NumberPolicy, NumberRefused
from nohold.feature import Calendars, Signals
from nohold.sms.link import Inbound, SmsFailed

log = logging.getLogger("nohold.alerts")

TICK = 1.0  # seconds between passes over the database
LEASE = timedelta(seconds=60)  # a sender silent this long is taken to be dead


class Sms(Protocol):
    async def send(self, to_e164: str, text: str) -> str: ...


class Voice(Protocol):
    async def call(self, alert: AlertRecord, ticket: TicketRecord, person: Person
                   ) -> tuple[str, str]: ...


class Escalator:
    def __init__(self, settings: AlertSettings, alerts: AlertStore, tickets: TicketStore,
                 sms: Sms, calendars: Calendars | None = None, voice: Voice | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 node: str | None = None, signals: Signals | None = None) -> None:
        self._s = settings
        self._alerts = alerts
        self._tickets = tickets
        self._sms = sms
        self._calendars = calendars
        self._signals = signals or Signals()
        self._voice = voice
        # A call rings, then reads the ticket: its claim must outlast all of it, or
        # another node would think its caller dead and ring the technician again.
        self._call_lease = timedelta(seconds=settings.ring_timeout + 180)
        self._calls: set[asyncio.Task[None]] = set()
        self._now = clock
        self._node = node or f"{socket.gethostname()}:{time.monotonic_ns() % 10**9}"
        self._numbers = NumberPolicy(settings.default_region, ())
        self._confirmations: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        log.info("alerts_started node=%s people=%d ack_within=%.0fs rounds=%d", self._node,
                 len(self._s.people), self._s.ack_within, self._s.rounds)
        while True:
            try:
                await self.tick()
            except (SQLAlchemyError, OSError) as exc:
                # The database is away: every promise is in it, so the next tick resumes.
                log.warning("alerts_tick_failed error=%r", str(exc).splitlines()[0])
            # A new ticket on this node wakes the loop at once; others within a tick.
            await self._signals.wait(Signals.TICKET, TICK)
            stop_if_cancelled()

    async def tick(self) -> None:
        now = self._now()
        for ticket in await self._alerts.without_run():
            await self._start(ticket, now)
        for run, ticket_state, done in await self._alerts.running():
            if ticket_state != "open":
                await self._stop(run, ticket_state, now)
            else:
                await self._advance(run, now, done)
        for alert in await self._alerts.take_over(self._node, now, self._lease):
            log.info("alert_retry ticket=%s step=%s attempt=%d", alert.ticket_id,
                     alert.step, alert.attempts)
            await self._carry_out(alert, now)

    # -- a ticket comes in --------------------------------------------------------------
    async def _start(self, t: NewTicket, now: datetime) -> None:
        desk_open = await self._desk_open(t.received_at)
        if not alerts_for(self._s.tickets, t.urgency, desk_open):
            await self._alerts.start_run(t.id, t.run, now, (), rows.NOT_ALERTED,
                                         f"{t.urgency} while open ({self._s.tickets})")
            log.info("alert_not_needed ticket=%s urgency=%s policy=%s", t.id, t.urgency,
                     self._s.tickets)
            return
        order = self._s.rota.on_duty(now)
        if not order:
            await self._alerts.start_run(t.id, t.run, now, (), rows.NOBODY,
                                         "nobody on duty (no shift, cover or fallback)")
            log.error("alert_nobody_on_duty ticket=%s: add alerts.fallback", t.id)
            return
        run = await self._alerts.start_run(t.id, t.run, now, order)
        if run is not None:
            log.info("alert_run_started ticket=%s run=%d order=%s urgency=%s", t.id, t.run,
                     ",".join(order), t.urgency)
            await self._advance(run, now)

    async def _desk_open(self, at: datetime) -> bool:
        if self._calendars is None:
            return False  # no calendar: the partner only takes calls when we are closed
        try:
            calendar = await self._calendars.get(self._s.calendar or None)
        except KeyError:
            return False
        return calendar.is_open(at).open

    # -- steps --------------------------------------------------------------------------
    def _plan(self, run: RunRecord) -> list[Step]:
        return plan(run.order, run.started_at, self._s.ack_delta, self._s.rounds,
                    self._s.call)

    async def _advance(self, run: RunRecord, now: datetime, done: set[str] | None = None
                       ) -> None:
        steps = self._plan(run)
        end = unanswered_since(steps, self._s.ack_delta)
        if done is None:
            done = await self._alerts.done_steps(run.ticket_id, run.run)
        do, skip = to_carry_out(steps, now, done)
        if not do and not skip and (end is None or now < end):
            return  # nothing due: no query, no write (the common case, every second)
        for step in skip:
            await self._alerts.claim(run.ticket_id, run.run, step, self._address(step),
                                     self._node, now, LEASE, rows.SKIPPED,
                                     "overtaken by a later step (nohold was down)")
        for step in do:
            alert = await self._alerts.claim(run.ticket_id, run.run, step,
                                             self._address(step), self._node, now,
                                             self._lease(step.via))
            if alert is not None:  # else another node has it
                await self._carry_out(alert, now)
        if end is not None and now >= end and len(done | {s.key for s in do + skip}) >= len(steps) \
                and not await self._alerts.in_flight(run.ticket_id, run.run):
            if await self._alerts.end_run(run.ticket_id, run.run, rows.EXHAUSTED,
                                          "nobody acknowledged", now):
                log.error("alert_unanswered ticket=%s rounds=%d order=%s", run.ticket_id,
                          self._s.rounds, run.people)

    def _lease(self, via: str) -> timedelta:
        return self._call_lease if via == Via.CALL else LEASE

    def _address(self, step: Step) -> str:
        person = self._s.people.get(step.person)
        return person.mobile if person else ""

    async def _carry_out(self, alert: AlertRecord, now: datetime) -> None:
        ticket = await self._tickets.get(alert.ticket_id)
        person = self._s.people.get(alert.person)
        if ticket is None or person is None or not alert.address:
            await self._alerts.failed(alert.id, "no ticket, person or number", None, now)
            return
        if alert.via == Via.CALL:
            # In its own task: a call lasts a minute, and the loop goes on meanwhile.
            task = asyncio.create_task(self._call(alert, ticket, person))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            return
        text = sms_text(ticket.id, ticket.urgency, ticket.category, ticket.caller,
                        ticket.customer, ticket.text)
        try:
            message_id = await self._sms.send(alert.address, text)
        except SmsFailed as exc:
            wait = retry_after(alert.attempts)
            await self._alerts.failed(alert.id, str(exc), self._now() + wait, self._now())
            log.warning("alert_sms_failed ticket=%s step=%s person=%s attempt=%d "
                        "error=%r retry_in=%.0fs", alert.ticket_id, alert.step, alert.person,
                        alert.attempts, str(exc), wait.total_seconds())
            return
        await self._alerts.sent(alert.id, message_id, self._now())
        log.info("alert_sms_sent ticket=%s step=%s person=%s message_id=%s attempt=%d",
                 alert.ticket_id, alert.step, alert.person, message_id, alert.attempts)

    async def _call(self, alert: AlertRecord, ticket: TicketRecord, person: Person) -> None:
        if self._voice is None:
            await self._alerts.call_outcome(alert.id, rows.SKIPPED, "voice calls off",
                                            self._now())
            return
        log.info("alert_call ticket=%s step=%s person=%s attempt=%d", alert.ticket_id,
                 alert.step, alert.person, alert.attempts)
        try:
            state, detail = await self._voice.call(alert, ticket, person)
        except Exception as exc:  # noqa: BLE001 - ARI or the database: the row says so
            log.exception("alert_call_failed ticket=%s step=%s", alert.ticket_id, alert.step)
            state, detail = rows.FAILED, f"{type(exc).__name__}: {exc}"
        await self._alerts.call_outcome(alert.id, state, detail, self._now())
        log.info("alert_call_done ticket=%s step=%s person=%s state=%s detail=%r",
                 alert.ticket_id, alert.step, alert.person, state, detail)

    async def _stop(self, run: RunRecord, ticket_state: str, now: datetime) -> None:
        if await self._alerts.end_run(run.ticket_id, run.run, rows.STOPPED, ticket_state,
                                      now):
            log.info("alert_run_stopped ticket=%s run=%d ticket_state=%s", run.ticket_id,
                     run.run, ticket_state)

    # -- what comes back ----------------------------------------------------------------
    async def on_inbound(self, msg: Inbound) -> None:
        """A delivery report or a technician's SMS. Raises when it could not be stored
        (the gateway then has the SMSC deliver it again)."""
        now = self._now()
        if msg.receipt is not None:
            state = {Delivery.DELIVERED: rows.DELIVERED,
                     Delivery.UNDELIVERABLE: rows.UNDELIVERABLE}.get(msg.receipt.delivery)
            if state is not None:
                alert = await self._alerts.delivery(msg.receipt.message_id, state,
                                                    msg.receipt.stat, now)
                log.info("alert_sms_report message_id=%s stat=%s ticket=%s",
                         msg.receipt.message_id, msg.receipt.stat,
                         alert.ticket_id if alert else "-")
            return
        try:
            sender = self._numbers.parse(msg.sender if msg.sender.startswith("+")
                                         else "+" + msg.sender).e164
        except NumberRefused:
            sender = ""
        person = self._s.person_by_number(sender) if sender else None
        if person is None:
            log.warning("sms_from_stranger sender=%s", msg.sender)
            return
        reply = parse_reply(msg.text)
        ticket_id = reply.ticket_id
        if reply.ack and ticket_id is None:
            ticket_id = await self._alerts.latest_open_for(person.name)
        if not reply.ack or ticket_id is None:
            log.info("sms_reply_not_understood person=%s text=%r", person.name, msg.text)
            await self._tell(person.mobile, "nohold: not understood. Reply with the ticket "
                             "number (e.g. 42) to acknowledge it.")
            return
        try:
            ticket, moved = await self._tickets.acknowledge(
                ticket_id, by=person.name, via="sms", now=now, note=msg.text[:200])
        except NoSuchTicket:
            await self._tell(person.mobile, f"nohold: there is no ticket #{ticket_id}.")
            return
        if moved:
            log.info("ticket_acknowledged ticket=%s by=%s via=sms", ticket_id, person.name)
            await self._tell(person.mobile, f"nohold #{ticket_id} acknowledged by "
                             f"{person.name}. Alerts stopped.")
        else:
            await self._tell(person.mobile, f"nohold #{ticket_id} is {ticket.state} "
                             f"already (by {ticket.acknowledged_by or '-'}).")

    async def _tell(self, to: str, text: str) -> None:
        """A confirmation: best effort, never retried (the acknowledgement is stored)."""
        async def send() -> None:
            try:
                await self._sms.send(to, text)
            except SmsFailed as exc:
                log.warning("sms_confirmation_failed to=%s error=%r", to, str(exc))
        # Not awaited here: the gateway's thread is waiting for this handler to return
        # before it reads the SMSC's answer to the confirmation.
        task = asyncio.get_running_loop().create_task(send())
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)

    async def close(self) -> None:
        """Lets confirmations still being sent finish (bounded by the gateway's timeout);
        calls in progress are cut (their rows keep the lease: another node, or this one
        restarted, calls again once it ends)."""
        for task in set(self._calls):
            task.cancel()
        if self._confirmations or self._calls:
            await asyncio.wait(set(self._confirmations) | set(self._calls))
