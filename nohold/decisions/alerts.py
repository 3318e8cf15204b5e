"""What an alert says and what comes back: the SMS text, a technician's reply, an
SMSC's delivery report, the retry wait, which tickets alert. Pure: no I/O, no clock.

The escalation plan itself (who, how, when) is `escalation.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from nohold.decisions.escalation import Step, Via

# One SMS part: 160 GSM-7 characters, or 70 in UCS-2 (any Polish letter). The alert is
# kept to two parts at most; what matters (number, urgency, how to acknowledge) first.
MAX_SMS = 300


def sms_text(ticket_id: int, urgency: str, category: str, caller: str, customer: str,
             text: str, limit: int = MAX_SMS) -> str:
    """The alert: ticket, urgency, who called, how to acknowledge, then as much of the
    partner's text as fits (one line, cut at a word, with "...")."""
    head = f"nohold #{ticket_id} {urgency.upper()} {category}"
    who = f" from {caller}" if caller else ""
    if customer:
        who += f" (customer {customer})"
    tail = f" Reply {ticket_id} to acknowledge."
    body = " ".join(text.split())
    room = limit - len(head) - len(who) - len(tail) - 2
    if room < len(body):
        # "..." not "…": an ellipsis outside GSM-7 would make the whole SMS UCS-2,
        # halving what fits.
        cut = body[:max(room - 3, 0)]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        body = cut.rstrip() + "..." if room > 3 else ""
    return f"{head}{who}: {body}{tail}" if body else f"{head}{who}.{tail}"


def spoken_text(ticket_id: int, urgency: str, category: str, caller: str, customer: str,
                text: str, limit: int = 600) -> str:
    """The ticket as the voice call reads it: numbers digit by digit (a text-to-speech
    voice says +48221234567 as one huge number), the partner's text shortened."""
    def digits(value: str) -> str:
        return " ".join(ch for ch in value if ch.isdigit())
    parts = [f"Ticket {ticket_id}.", f"{urgency.capitalize()}.", f"{category.capitalize()}."]
    if caller:
        parts.append(f"Caller {digits(caller)}.")
    if customer:
        parts.append(f"Customer {' '.join(customer)}.")
    body = " ".join(text.split())
    if len(body) > limit:
        body = body[:limit].rsplit(" ", 1)[0] + "."
    if body:
        parts.append(body)
    return " ".join(parts)


@dataclass(frozen=True)
class Reply:
    """A technician's SMS answer: an acknowledgement of `ticket_id` (None: the latest
    open ticket alerted to them), or not an acknowledgement at all (`ack` False)."""

    ack: bool
    ticket_id: int | None = None


_ACK_WORDS = {"ack", "ok", "okay", "yes", "y", "1", "tak", "t", "potwierdzam", "przyjmuje",
              "przyjmuję", "accept", "accepted", "on it", "mam"}
_NUMBERED = re.compile(r"^\s*(?:(?:ack|ok|#)\s*)?#?\s*(\d{1,9})\s*(?:ack|ok)?[\s.!]*$", re.I)


def parse_reply(text: str) -> Reply:
    """"42", "ACK 42", "#42", "ok 42": ticket 42. "ok", "ack", "1", "tak": the latest.
    Anything else ("call me", "who is this?") acknowledges nothing."""
    m = _NUMBERED.match(text)
    if m:
        number = int(m.group(1))
        # A bare "1" is "press/answer 1", the word for yes, not ticket 1 ... unless the
        # technician wrote it with a marker ("#1", "ack 1").
        if m.group(0).strip() == "1":
            return Reply(True, None)
        return Reply(True, number)
    words = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    return Reply(words in _ACK_WORDS, None)


class Delivery(StrEnum):
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    PENDING = "pending"


@dataclass(frozen=True)
class Receipt:
    message_id: str
    delivery: Delivery
    stat: str  # the SMSC's word: DELIVRD, UNDELIV, EXPIRED, ...


_RECEIPT = re.compile(r"\bid:(?P<id>\S{1,64}).*?\bstat:(?P<stat>[A-Z]{5,8})", re.S)
_STATS = {"DELIVRD": Delivery.DELIVERED, "ACCEPTD": Delivery.PENDING,
          "ENROUTE": Delivery.PENDING, "UNKNOWN": Delivery.PENDING}


def parse_receipt(text: str) -> Receipt | None:
    """An SMSC delivery report (SMPP 3.4 appendix B: "id:... stat:DELIVRD ..."), or None
    when the text is not one."""
    m = _RECEIPT.search(text)
    if not m:
        return None
    stat = m.group("stat")
    return Receipt(m.group("id"), _STATS.get(stat, Delivery.UNDELIVERABLE), stat)


RETRY_FIRST = timedelta(seconds=5)
RETRY_MAX = timedelta(minutes=5)


def retry_after(attempts: int) -> timedelta:
    """The wait before a failed send is tried again: 5 s doubling, at most 5 min (a
    gateway that is down is asked again, never given up on while nobody acknowledged)."""
    return min(RETRY_FIRST * (2 ** max(attempts - 1, 0)), RETRY_MAX)


class Policy(StrEnum):
    ALL = "all"  # every new ticket
    URGENT = "urgent"  # urgent tickets only
    URGENT_OR_CLOSED = "urgent_or_closed"  # urgent ones, and all while the desk is closed


def alerts_for(policy: Policy, urgency: str, desk_open: bool) -> bool:
    """Does a new ticket alert the on-duty technician?"""
    if policy is Policy.ALL or urgency == "urgent":
        return True
    return policy is Policy.URGENT_OR_CLOSED and not desk_open


def to_carry_out(steps: Sequence[Step], now: datetime, done: set[str]
                 ) -> tuple[list[Step], list[Step]]:
    """(do now, skip) among the due steps nobody carried out yet. After an outage several
    steps may be due at once: every SMS still goes (late is better than never, and it
    is cheap), but a call is skipped when a later step is due too, so nobody's phone
    rings for a step whose moment has passed."""
    pending = [s for s in steps if s.due <= now and s.key not in done]
    if not pending:
        return [], []
    last_due = max(s.due for s in pending)
    skip = [s for s in pending if s.via is Via.CALL and s.due < last_due]
    return [s for s in pending if s not in skip], skip
