"""Tables. Times are stored in UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class NoticePlay(Base):
    """Proof that a call heard the recording notice (GDPR first-layer notice).

    One row per call: `call_id` is Asterisk's linkedid, shared by every channel of
    the call, so a transfer or a re-entry finds the row and does not replay.
    """

    __tablename__ = "notice_plays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    channel_id: Mapped[str] = mapped_column(String(64), nullable=False)
    caller: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    notice_version: Mapped[str] = mapped_column(String(80), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # playing -> completed | caller_hung_up | failed | not_told
    outcome: Mapped[str] = mapped_column(String(20), nullable=False, default="playing")


# The states a callback is live in (nohold.decisions.callbacks.LIVE), spelled out for
# the partial unique index below, which SQL needs as a literal.
LIVE_STATES_SQL = "state IN ('pending', 'queued', 'agent_connected', 'dialling', 'retry')"


class Callback(Base):
    """A promise to call a caller back, keeping their place in `queue`.

    `state` moves only through guarded updates (callbackdb/callbacks.py). `owner`
    and `lease_until` say which nohold node holds it while it is queued, has an
    agent or is being dialled; a node that stops renewing loses it to another.
    """

    __tablename__ = "callbacks"
    __table_args__ = (
        # One live callback per number and queue: a second request updates the first.
        Index("callbacks_one_live", "number", "queue", unique=True,
              sqlite_where=text(LIVE_STATES_SQL), postgresql_where=text(LIVE_STATES_SQL)),
        Index("callbacks_by_turn", "queue", "state", "arrived_at"),
        Index("callbacks_by_state", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), nullable=False)  # the request's linkedid
    number: Mapped[str] = mapped_column(String(20), nullable=False)  # E.164
    queue: Mapped[str] = mapped_column(String(80), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    promised_earliest: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    promised_latest: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    requests: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    owner: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Scheduled: agreed with the customer for due_at (the window ends at expires_at),
    # served at its time ahead of those merely waiting; owner_agent promised it.
    scheduled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owner_agent: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    note: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    # The agreed time before a closure (a holiday, a closed day) moved it, and why.
    moved_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    moved_why: Mapped[str] = mapped_column(String(120), nullable=False, default="")


class CallbackAttempt(Base):
    """One dial of the customer. (callback_id, attempt) is unique: an attempt number
    is written before its dial, so a second dial of the same attempt cannot happen."""

    __tablename__ = "callback_attempts"
    __table_args__ = (UniqueConstraint("callback_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    node: Mapped[str] = mapped_column(String(64), nullable=False)
    agent: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    agent_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customer_ring_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customer_answer_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bridged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    cause: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    # Customer answer -> two-way audio, from Asterisk's event timestamps.
    answer_to_audio_ms: Mapped[float | None] = mapped_column(Float)


class DoNotCall(Base):
    """Numbers never dialled, whatever asked for them (checked before every dial)."""

    __tablename__ = "do_not_call"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)  # E.164
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    note: Mapped[str] = mapped_column(String(200), nullable=False, default="")


class CalendarOverride(Base):
    """A supervisor's extra closed (or open) period for one business calendar, e.g. the
    office closed for a day (`nohold hours override add`). Ignored from `expires_at`
    on; merged with the config's overrides (nohold/calendar/)."""

    __tablename__ = "calendar_overrides"
    __table_args__ = (
        Index("calendar_overrides_by_end", "calendar", "ends_at"),
        CheckConstraint("kind IN ('closed', 'open')", name="calendar_overrides_kind"),
        CheckConstraint("starts_at < ends_at", name="calendar_overrides_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    calendar: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # closed | open
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class Ticket(Base):
    """A ticket the partner call centre reported (webhook or email), one row per partner
    ticket id: a repeat report updates it. Its state and who moved it last are what
    the alerts (who acknowledged) and the follow-up call (resolved when, how) read."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("partner_id", name="tickets_partner_id"),
        Index("tickets_by_state", "state", "received_at"),
        CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="tickets_state"),
        CheckConstraint("category IN ('outage', 'fault', 'billing', 'other')",
                        name="tickets_category"),
        CheckConstraint("urgency IN ('low', 'normal', 'urgent')", name="tickets_urgency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # webhook | email
    caller: Mapped[str] = mapped_column(String(20), nullable=False, default="")  # E.164
    customer: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    category: Mapped[str] = mapped_column(String(16), nullable=False)
    urgency: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    text: Mapped[str] = mapped_column(String(4000), nullable=False)
    call_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reports: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    resolution: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    reopened: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TicketEvent(Base):
    """A ticket's history: reported, updated (what changed), acknowledged, resolved,
    reopened; who did it, through what, with their note."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ticket_events_by_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    via: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    actor: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    note: Mapped[str] = mapped_column(String(1000), nullable=False, default="")


class TicketDelivery(Base):
    """Signed webhook requests accepted within the replay window, by the hash of what
    was signed: the same request again is a replay. Older rows are pruned."""

    __tablename__ = "ticket_deliveries"
    __table_args__ = (Index("ticket_deliveries_by_time", "received_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))


class AlertRun(Base):
    """One escalation for one opening of a ticket (`run` is the ticket's `reopened` count:
    a reopened ticket alerts again). The order of people is frozen when it starts, so
    every node and every restart computes the same plan from it."""

    __tablename__ = "alert_runs"
    __table_args__ = (
        Index("alert_runs_by_state", "state"),
        CheckConstraint("state IN ('running', 'stopped', 'exhausted', 'nobody', "
                        "'not_alerted')", name="alert_runs_state"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    run: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    people: Mapped[str] = mapped_column(String(400), nullable=False, default="")  # a,b,c
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    why: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """One step of a run carried out (or skipped): an SMS or a call to one person. The
    unique (ticket, run, step) is the claim that makes a step happen once whatever the
    nodes and restarts; `holder`/`lease_until` let another node resend a step whose
    sender died before it could say how the send went (at least once)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("ticket_id", "run", "step", name="alerts_step_once"),
        Index("alerts_by_state", "state", "next_try_at"),
        Index("alerts_by_message", "message_id"),
        Index("alerts_by_person", "person", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), nullable=False)
    run: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[str] = mapped_column(String(80), nullable=False)  # r1:sms:jan
    round: Mapped[int] = mapped_column(Integer, nullable=False)
    person: Mapped[str] = mapped_column(String(32), nullable=False)
    via: Mapped[str] = mapped_column(String(8), nullable=False)  # sms | call
    address: Mapped[str] = mapped_column(String(32), nullable=False)  # E.164
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # sending -> sent -> delivered | undeliverable; sending -> retry -> sending ...;
    # skipped; cancelled (acknowledged meanwhile); for calls: answered | acknowledged |
    # unanswered
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    holder: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    detail: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TicketFollowUp(Base):
    """The follow-up call of one resolution of a ticket (`resolution` is the ticket's
    `reopened` count when it was resolved: a ticket resolved again after a reopen gets
    its own follow-up). `callback_id` is the scheduled callback that makes the call;
    `state` is what the agent recorded, or what became of the callback."""

    __tablename__ = "ticket_followups"
    __table_args__ = (
        CheckConstraint("state IN ('scheduled', 'fixed', 'not_fixed', 'unreachable', "
                        "'not_scheduled')", name="ticket_followups_state"),
        Index("ticket_followups_by_state", "state"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id"))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    answered_by: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SmsOut(Base):
    """One SMS to a customer, written before it is sent. `key` is unique: a message is
    enqueued once whatever the nodes and restarts (the callback, what it says, for which
    window); `holder`/`lease_until` let another node resend one whose sender died before
    it could record the SMSC's answer (at least once, as the alerts)."""

    __tablename__ = "sms_outbox"
    __table_args__ = (
        UniqueConstraint("key", name="sms_outbox_once"),
        Index("sms_outbox_by_state", "state", "next_try_at"),
        Index("sms_outbox_by_about", "about"),
        Index("sms_outbox_by_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), nullable=False)
    about: Mapped[str] = mapped_column(String(40), nullable=False)  # callback:12
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # confirm | moved | ...
    to_number: Mapped[str] = mapped_column(String(20), nullable=False)  # E.164
    text: Mapped[str] = mapped_column(String(640), nullable=False)
    # queued -> sending -> sent -> delivered | undeliverable; sending -> queued (retry);
    # expired (no longer worth sending: its window passed); withdrawn (its reason went:
    # the callback was made, cancelled, or the number put on the do-not-call list)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    holder: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    detail: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
