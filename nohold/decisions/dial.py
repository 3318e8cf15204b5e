"""What became of an outbound call: ARI's Dial statuses and hang-up causes as one
typed outcome. Pure: no I/O.

Asterisk 22 reports the result of an originate in three places, none complete
on its own (seen on a live 22.10, tests/e2e/test_channel_ops.py):
- `Dial.dialstatus` on the dialled channel: BUSY and CONGESTION through a Local
  channel arrive only here (the ;1 half is then destroyed with cause 0), and a
  ring timeout sends no final Dial status at all.
- `ChannelDestroyed.cause` (Q.850): 19 for the ring timeout, 21 for a rejection
  that Dial reports as NOANSWER.
- `ChannelDestroyed.tech_cause` (from 22.7): the SIP response code, the most
  precise of the three when present.
So the final outcome takes the SIP code first, then a specific cause, then the
last Dial status, and a channel destroyed before any Dial event was never
placed at all (e.g. a Local channel to an extension that does not exist).
"""

from __future__ import annotations

from enum import Enum


class DialOutcome(Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    CONGESTION = "congestion"
    UNREACHABLE = "unreachable"
    # We hung it up before it was answered: our decision, whatever Asterisk reports
    # for it (NOANSWER/16 or CANCEL/0, depending on how far the dial had got).
    CANCELLED = "cancelled"
    FAILED = "failed"  # anything else: hung up at once after answering, lost

    @property
    def answered(self) -> bool:
        return self is DialOutcome.ANSWERED


# Dial statuses that mean the call is still being set up, not an outcome.
PROGRESS_STATUSES = frozenset({"", "RINGING", "PROGRESS", "PROCEEDING"})

_BY_DIALSTATUS = {
    "ANSWER": DialOutcome.ANSWERED,
    "BUSY": DialOutcome.BUSY,
    "NOANSWER": DialOutcome.NO_ANSWER,
    "CONGESTION": DialOutcome.CONGESTION,
    "CHANUNAVAIL": DialOutcome.UNREACHABLE,
    "DONTCALL": DialOutcome.REJECTED,
    "TORTURE": DialOutcome.REJECTED,
    "CANCEL": DialOutcome.FAILED,
    "INVALIDARGS": DialOutcome.FAILED,
}

# Q.850 causes as Asterisk uses them (causes.h). 0 (unknown) and 16 (normal
# clearing) say nothing about why a call failed, so they map to nothing.
_BY_CAUSE = {
    1: DialOutcome.UNREACHABLE,  # unallocated number (SIP 404)
    2: DialOutcome.UNREACHABLE,  # no route to network
    3: DialOutcome.UNREACHABLE,  # no route to destination
    17: DialOutcome.BUSY,
    # 18 "no user responding" (SIP 408): app_dial calls it NOANSWER too.
    18: DialOutcome.NO_ANSWER,
    19: DialOutcome.NO_ANSWER,  # also the originate ring timeout
    20: DialOutcome.UNREACHABLE,  # subscriber absent (unregistered)
    21: DialOutcome.REJECTED,  # SIP 603
    22: DialOutcome.UNREACHABLE,  # number changed (SIP 410)
    27: DialOutcome.UNREACHABLE,  # destination out of order
    28: DialOutcome.UNREACHABLE,  # invalid number format (SIP 484)
    34: DialOutcome.CONGESTION,  # no circuit available (SIP 503)
    38: DialOutcome.CONGESTION,  # network out of order
    41: DialOutcome.CONGESTION,  # temporary failure
    42: DialOutcome.CONGESTION,  # switching equipment congestion
    44: DialOutcome.CONGESTION,  # requested channel not available
}

_BY_SIP = {
    403: DialOutcome.REJECTED,
    404: DialOutcome.UNREACHABLE,
    408: DialOutcome.NO_ANSWER,
    410: DialOutcome.UNREACHABLE,
    480: DialOutcome.NO_ANSWER,
    484: DialOutcome.UNREACHABLE,
    486: DialOutcome.BUSY,
    500: DialOutcome.CONGESTION,
    502: DialOutcome.CONGESTION,
    503: DialOutcome.CONGESTION,
    504: DialOutcome.CONGESTION,
    600: DialOutcome.BUSY,
    603: DialOutcome.REJECTED,
    604: DialOutcome.UNREACHABLE,
}


def from_dialstatus(status: str | None) -> DialOutcome | None:
    """The outcome a Dial event's `dialstatus` reports; None while the call is still
    being set up (RINGING, PROGRESS, "" at the start)."""
    status = (status or "").strip().upper()
    if status in PROGRESS_STATUSES:
        return None
    return _BY_DIALSTATUS.get(status, DialOutcome.FAILED)


def is_final_dialstatus(status: str | None) -> bool:
    return from_dialstatus(status) is not None


def from_sip_code(code: int | None) -> DialOutcome | None:
    """A final SIP response code (ChannelDestroyed.tech_cause); None if unknown or absent."""
    if not code:
        return None
    if code in _BY_SIP:
        return _BY_SIP[code]
    if 200 <= code < 300:
        return None  # an answered leg hung up later: the code says nothing of a failure
    if 400 <= code < 700:
        return DialOutcome.FAILED
    return None


def from_cause(cause: int | None, tech_cause: int | None = None) -> DialOutcome | None:
    """The outcome a hang-up cause reports: the SIP code first when it is known,
    then the Q.850 cause; None when neither says why (0, 16, absent)."""
    by_sip = from_sip_code(tech_cause)
    if by_sip is not None:
        return by_sip
    if cause is None:
        return None
    return _BY_CAUSE.get(cause)


def final_outcome(
    *,
    dialstatus: str | None,
    cause: int | None,
    tech_cause: int | None = None,
    dialled: bool = True,
) -> DialOutcome:
    """Why an originated channel was destroyed before it reached the app.

    `dialstatus`: the last Dial status seen ("" or None if only progress);
    `dialled`: whether any Dial event was seen at all.
    """
    by_cause = from_cause(cause, tech_cause)
    if by_cause is not None:
        return by_cause
    by_status = from_dialstatus(dialstatus)
    if by_status is DialOutcome.ANSWERED:
        # Answered, then gone before StasisStart: nobody is there to talk to.
        return DialOutcome.FAILED
    if by_status is not None:
        return by_status
    if not dialled:
        return DialOutcome.UNREACHABLE
    return DialOutcome.FAILED
