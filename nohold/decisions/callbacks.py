"""A callback's life, its retries and its promised time. Pure: no I/O, no clock.

States (stored as their value; every change is one guarded SQL update from a
known state, see callbackdb/callbacks.py):

    pending ──▶ queued ──▶ agent_connected ──▶ dialling ──▶ completed
       ▲          │  ▲            │                │
       └──────────┘  └── (lost) ──┘                ├──▶ retry ──▶ queued ...
                                                   └──▶ expired
    cancelled: from any state before dialling;  expired: before dialling too

- pending: promised, waiting in the database for its turn to stand in the queue.
- queued: its placeholder stands in the queue at the caller's place.
- agent_connected: the queue gave the placeholder an agent; nothing dialled yet.
  If the placeholder or the agent is lost here, it goes back to pending and keeps
  its arrival time: no customer was called, so no attempt is spent.
- dialling: the customer's channel exists. Only the dialler that made this
  transition may dial, and it dials once; whatever happens next ends the attempt.
- retry: an attempt failed (busy, no answer...); waits until `due_at`.

Times are seconds on whatever clock the caller uses (the store uses UTC epoch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from nohold.decisions.queue_state import QueueView


class State(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    AGENT_CONNECTED = "agent_connected"
    DIALLING = "dialling"
    RETRY = "retry"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Waiting for a placeholder (in arrival order; retry also waits for due_at).
WAITING = frozenset({State.PENDING, State.RETRY})
LIVE = frozenset({State.PENDING, State.QUEUED, State.AGENT_CONNECTED, State.DIALLING,
                  State.RETRY})
FINAL = frozenset({State.COMPLETED, State.EXPIRED, State.CANCELLED})

ALLOWED: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.QUEUED, State.EXPIRED, State.CANCELLED}),
    State.RETRY: frozenset({State.QUEUED, State.EXPIRED, State.CANCELLED}),
    State.QUEUED: frozenset({State.AGENT_CONNECTED, State.PENDING, State.EXPIRED,
                             State.CANCELLED}),
    State.AGENT_CONNECTED: frozenset({State.DIALLING, State.PENDING, State.EXPIRED,
                                      State.CANCELLED}),
    # No cancel once dialling: the customer's phone may already ring; the attempt
    # ends on its own within the ring timeout.
    State.DIALLING: frozenset({State.COMPLETED, State.RETRY, State.EXPIRED}),
    State.COMPLETED: frozenset(),
    State.EXPIRED: frozenset(),
    State.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(old: State, new: State) -> None:
    if new not in ALLOWED[old]:
        raise IllegalTransition(f"a callback cannot go from {old} to {new}")


class AttemptOutcome(StrEnum):
    """How one dial of the customer ended (one row of callback_attempts)."""

    TALKED = "talked"  # answered and bridged with the agent
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    CONGESTION = "congestion"
    MACHINE = "machine"  # answering machine (app_amd)
    # The agent left in the instant after the customer answered: the customer heard
    # the information message. Counted as an attempt; the customer asked for the
    # call, so it is retried (the 72 h rule is for calls nobody asked for).
    ABANDONED = "abandoned"
    AGENT_GONE = "agent_gone"  # the agent left while it rang: the ring was cancelled
    # The node died while dialling: whether the phone rang is unknown. Counted, so a
    # crash loop cannot ring a customer more than max_attempts times.
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class AttemptPolicy:
    max_attempts: int = 3
    retry_after: float = 600.0
    expire_after: float = 4 * 3600.0


@dataclass(frozen=True)
class AfterAttempt:
    state: State  # COMPLETED, RETRY or EXPIRED
    due_at: float | None = None  # for RETRY
    reason: str = ""  # for EXPIRED: why it will not be dialled again


def after_attempt(outcome: AttemptOutcome, attempts: int, now: float, expires_at: float,
                  policy: AttemptPolicy) -> AfterAttempt:
    """What the callback becomes once attempt number `attempts` (1-based) ended."""
    if outcome is AttemptOutcome.TALKED:
        return AfterAttempt(State.COMPLETED)
    if attempts >= policy.max_attempts:
        return AfterAttempt(State.EXPIRED, reason="max_attempts")
    due = now + policy.retry_after
    if due >= expires_at:
        return AfterAttempt(State.EXPIRED, reason="expire_after")
    return AfterAttempt(State.RETRY, due_at=due)


def expired(now: float, expires_at: float) -> bool:
    """Nothing is dialled at or after expires_at (requested_at + expire_after)."""
    return now >= expires_at


# -- the estimate and the promise ---------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """Seconds from now until an agent takes this caller (or its placeholder)."""

    seconds: float | None  # None: no agent is serving, nothing honest to promise
    position: int
    agents: int
    handle_time: float


def estimate_wait(position: int, handle_time: float, agents: int) -> Estimate:
    """wait ≈ position × average handle time ÷ agents serving.

    `position` counts everyone ahead in the queue plus this caller, placeholders
    and callbacks still waiting in the database included (they will be served
    first). Each agent frees up once per handle time, so `agents` agents serve
    `agents` callers per handle time.
    """
    if position < 1:
        raise ValueError("position starts at 1")
    if agents <= 0:
        return Estimate(None, position, agents, handle_time)
    return Estimate(position * handle_time / agents, position, agents, handle_time)


def handle_time(talktime: float, holdtime: float, completed: int, default: float) -> float:
    """Average handle time from app_queue's own averages (QueueParams TalkTime),
    or the configured default until the queue has completed calls."""
    if completed <= 0 or talktime <= 0:
        return default
    return float(talktime)


@dataclass(frozen=True)
class Window:
    """The promise, in seconds from the moment it was made."""

    earliest: float
    latest: float

    @property
    def minutes(self) -> int:
        """What the caller hears: "in about N minutes" (the window's middle)."""
        return max(1, round((self.earliest + self.latest) / 2 / 60))


def promise_window(estimate: Estimate, slack: float = 0.25, min_slack: float = 120.0,
                   unknown_latest: float = 3600.0) -> Window:
    """The window said to the caller and stored with the callback.

    Symmetric around the estimate with `slack` of it on either side (at least
    `min_slack` seconds): queues are noisy, and a window nobody can meet is a
    broken promise. With no agent serving there is no estimate: the window runs
    from now to `unknown_latest`.
    """
    if estimate.seconds is None:
        return Window(0.0, unknown_latest)
    half = max(min_slack, estimate.seconds * slack)
    earliest = max(0.0, estimate.seconds - half)
    latest = estimate.seconds + half
    # Whole minutes: what the caller hears and what the report checks must agree.
    return Window(60.0 * math.floor(earliest / 60), 60.0 * math.ceil(latest / 60))


def offer_at_once(estimate: Estimate, threshold: float) -> bool:
    """Offer on joining the queue, before offer_after, when the wait is long
    (or unknown: nobody is serving)."""
    return estimate.seconds is None or estimate.seconds > threshold


# -- placeholders -------------------------------------------------------------------------

def placeholders_wanted(logged_in: int, max_per_agent: int, standing: int) -> int:
    """How many more placeholders may enter a queue now (never negative).

    At most max_per_agent per logged-in agent stand in a queue, so callbacks
    cannot crowd out live callers; the rest wait in the database, in order.
    """
    return max(0, logged_in * max_per_agent - standing)


def entry_position(arrived_at: float, joined: list[float]) -> int:
    """Where a placeholder enters: behind every caller in the queue who arrived at
    or before the callback's caller did, ahead of all who arrived later. `joined`
    are the join times of those in the queue now, on the same clock. 1-based."""
    return 1 + sum(1 for t in joined if t <= arrived_at)


def position_in_queue(view: QueueView, arrived_at: float, wall_now: float, view_now: float,
                      callbacks_ahead: int, placeholder_marker: str) -> int:
    """The callback's place: live callers who arrived no later than its caller, plus
    callbacks of the queue that arrived earlier (`callbacks_ahead`, from the
    database: waiting or standing as placeholders), plus itself. Placeholders in
    the view (channel names containing `placeholder_marker`) are those callbacks,
    so they are not counted twice. The view's join times are on the monitor's
    clock (`view_now`); arrivals are wall-clock (`wall_now`)."""
    live = [wall_now - c.wait(view_now) for c in view.callers
            if placeholder_marker not in c.channel]
    return entry_position(arrived_at, live) + callbacks_ahead


# A placeholder's queue half: `<prefix><callback id>-<8 hex token>-q` (the dialler's ids).
_PLACEHOLDER_HALF = re.compile(r"(\d+)-[0-9a-f]{8}-q")

Turn = tuple[bool, float, int]


def turn(scheduled: bool, arrived_at: float, callback_id: int) -> Turn:
    """The order callbacks are served in: an agreed time (due) first, then the
    caller's arrival, then the id. Smaller is served first."""
    return (not scheduled, arrived_at, callback_id)


def placeholder_callback(uniqueid: str, prefix: str) -> int | None:
    """The callback whose placeholder is the queue caller `uniqueid`, or None."""
    if not uniqueid.startswith(prefix):
        return None
    found = _PLACEHOLDER_HALF.fullmatch(uniqueid, len(prefix))
    return int(found.group(1)) if found else None


def standing_ahead(view: QueueView, mine: Turn, turns: Mapping[int, Turn],
                   prefix: str) -> int:
    """Placeholders in the queue now (any node's) whose callbacks are served before
    `mine`: app_queue's position counts who is there, not who is on the way, so a
    callback whose placeholder is still being made is not ahead yet. `turns` holds
    the standing callbacks' turns (from the database); one unknown there is a
    placeholder of a callback already gone, and is ahead of nobody."""
    ahead = 0
    for caller in view.callers:
        callback_id = placeholder_callback(caller.uniqueid, prefix)
        theirs = turns.get(callback_id) if callback_id is not None else None
        if theirs is not None and theirs < mine:
            ahead += 1
    return ahead


def serving(view: QueueView) -> int:
    """Agents who will take calls: logged in and not paused."""
    return sum(1 for m in view.members.values() if m.logged_in and not m.paused)


# -- what the dialplan hands the offer flow ------------------------------------------------

class BadOfferArgs(ValueError):
    pass


@dataclass(frozen=True)
class OfferArgs:
    queue: str
    joined_at: float  # wall clock, when the caller first joined the queue
    position: int  # app_queue's QUEUEPOSITION as they left (0: unknown)
    call_id: str


# A day: an older join time is a stale variable, not a caller still waiting.
_MAX_AGE = 86400.0


def read_offer_args(args: list[str], queues: tuple[str, ...], now: float) -> OfferArgs:
    """`Stasis(app,offer,<queue>,<joined epoch>,<position>,<linkedid>)` from the
    exit context, checked: a queue the offer is configured for, a join time in the
    last day and not in the future, a position that is a small integer."""
    if len(args) != 5 or args[0] != "offer":
        raise BadOfferArgs(f"expected offer,<queue>,<joined>,<position>,<call id>; got {args!r}")
    _, queue, joined, position, call_id = args
    if queue not in queues:
        raise BadOfferArgs(f"queue {queue!r} does not offer callbacks (callbacks.queues)")
    try:
        joined_at = float(joined)
    except ValueError:
        raise BadOfferArgs(f"joined time {joined!r} is not a number") from None
    if not now - _MAX_AGE <= joined_at <= now + 1:
        raise BadOfferArgs(f"joined time {joined!r} is not within the last day")
    if not position.isdigit() or len(position) > 5:
        if position:
            raise BadOfferArgs(f"position {position!r} is not a whole number")
        position = "0"
    return OfferArgs(queue, joined_at, int(position), call_id)


# -- is the admin's queue set up for the offer? ------------------------------------------------

def parse_config_lines(fields: list[dict[str, str]]) -> dict[str, dict[str, list[str]]]:
    """AMI GetConfig's answer (Category-NNNNNN / Line-NNNNNN-MMMMMM) as
    category -> key -> values (a key may repeat, e.g. member)."""
    names: dict[str, str] = {}
    out: dict[str, dict[str, list[str]]] = {}
    for message in fields:
        for key, value in message.items():
            if key.startswith("Category-"):
                names[key[len("Category-"):]] = value
                out.setdefault(value, {})
        for key, value in message.items():
            if key.startswith("Line-") and "=" in value:
                number = key[len("Line-"):].split("-")[0]
                category = names.get(number)
                if category is None:
                    continue
                name, _, setting = value.partition("=")
                out[category].setdefault(name.strip(), []).append(setting.strip())
    return out


def offer_setup_problems(queues_conf: dict[str, dict[str, list[str]]], queue: str,
                         offer_prompt: str, offer_after: float, offer_every: float,
                         exit_context: str) -> list[str]:
    """What the admin must change in queues.conf for `queue` to offer callbacks."""
    q = queues_conf.get(queue)
    if q is None:
        return [f"queues.conf has no queue [{queue}] (callbacks.queues lists it)"]

    def one(key: str) -> str:
        return (q.get(key) or [""])[-1]

    problems = []
    if one("context") != exit_context:
        problems.append(f"[{queue}] context = {exit_context} (the caller's 1 leaves the "
                        f"queue to nohold); now {one('context') or 'unset'}")
    announce = one("periodic-announce")
    if not announce.split(",")[0].rstrip("/").endswith("/" + offer_prompt):
        problems.append(f"[{queue}] periodic-announce = <prompts.asterisk_dir>/{offer_prompt}"
                        f"; now {announce or 'unset'}")
    for key, want in (("periodic-announce-startdelay", offer_after),
                      ("periodic-announce-frequency", offer_every)):
        got = one(key)
        if not got.isdigit() or abs(int(got) - want) > 1:
            problems.append(f"[{queue}] {key} = {want:.0f} (callbacks.offer_"
                            f"{'after' if 'start' in key else 'every'}); now {got or 'unset'}")
    if one("announce-to-first-user") not in ("yes", "true", "1", "on"):
        problems.append(f"[{queue}] announce-to-first-user = yes (the head of the line hears "
                        "the offer too)")
    return problems
