"""After hours: the call to the partner call centre, its context headers, and the voice
message left when the partner cannot take the call. Pure: no I/O, no clock.

The INVITE to the partner carries `X-Nohold-*` headers. Their values come partly from
callers (the caller id, the digits of a customer number), so each value is made safe
here once: printable ASCII from a small alphabet, one line, bounded; a value that is
empty once made safe is not sent at all. The dialplan (`[nohold-partner]`) reads them
from channel variables, so the same alphabet also keeps them from breaking out of a
dialplan application's arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from nohold.decisions.hours import Why
from nohold.decisions.tickets import (
    MAX_CUSTOMER,
    MAX_PARTNER_ID,
    MAX_TEXT,
    Category,
    Report,
    Urgency,
)

# The headers nohold can send, by the key the config names them with, in the order
# the dialplan adds them. Variables are inherited by the partner's leg (one "_").
HEADERS: dict[str, str] = {
    "call-id": "X-Nohold-Call-Id",
    "caller": "X-Nohold-Caller",
    "customer": "X-Nohold-Customer",
    "reason": "X-Nohold-Reason",
    "notice-played": "X-Nohold-Notice-Played",
}
HEADER_VARIABLES: dict[str, str] = {
    "call-id": "_NOHOLD_HDR_CALL_ID",
    "caller": "_NOHOLD_HDR_CALLER",
    "customer": "_NOHOLD_HDR_CUSTOMER",
    "reason": "_NOHOLD_HDR_REASON",
    "notice-played": "_NOHOLD_HDR_NOTICE_PLAYED",
}
MAX_HEADER_VALUE = 64
# Letters, digits and + . _ - @ only: no blank, comma, colon, quote, bracket, dollar,
# backslash, CR or LF (a header injection, a dialplan argument split, a ${...}).
_UNSAFE = re.compile(r"[^A-Za-z0-9+._@-]")

# The calendar's reason (nohold.decisions.hours.Why) as the partner reads it.
REASONS: dict[Why, str] = {
    Why.HOLIDAY: "closed-holiday",
    Why.WEEKEND: "closed-weekend",
    Why.OUTSIDE_HOURS: "closed-hours",
    Why.DAY_OFF: "closed-day-off",
    Why.OVERRIDE: "closed-override",
}


def closed_reason(why: Why) -> str:
    """`X-Nohold-Reason` for a closed calendar; ValueError for an open one."""
    try:
        return REASONS[why]
    except KeyError:
        raise ValueError(f"the calendar is open ({why}): there is no closed reason") from None


def safe_header_value(value: str, max_len: int = MAX_HEADER_VALUE) -> str:
    """`value` with every character outside the safe alphabet dropped, at most `max_len`
    characters ("" when nothing safe is left: the header is then not sent)."""
    return _UNSAFE.sub("", value)[:max_len]


@dataclass(frozen=True)
class CallFacts:
    """What nohold knows about the call it sends to the partner."""

    call_id: str
    caller: str
    reason: str  # closed_reason(...)
    notice_played: bool
    customer: str = ""


def header_values(facts: CallFacts, send: Iterable[str]) -> dict[str, str]:
    """Header name -> value for the headers in `send` (keys of HEADERS) that have a
    value: a customer only when identified, Notice-Played only when the notice was
    heard in full (the partner plays its own otherwise)."""
    raw = {
        "call-id": facts.call_id,
        "caller": facts.caller,
        "customer": facts.customer,
        "reason": facts.reason,
        "notice-played": "1" if facts.notice_played else "",
    }
    out: dict[str, str] = {}
    for key in HEADERS:
        if key in send:
            value = safe_header_value(raw[key])
            if value:
                out[HEADERS[key]] = value
    return out


@dataclass(frozen=True)
class Trunk:
    """A PJSIP endpoint of the partner, and optionally the extension to ask it for."""

    endpoint: str
    exten: str = ""

    @property
    def dial_string(self) -> str:
        return f"PJSIP/{self.exten}@{self.endpoint}" if self.exten else f"PJSIP/{self.endpoint}"


def dial_variables(facts: CallFacts, trunks: Iterable[Trunk], ring_timeout: int,
                   send: Iterable[str], prompt: str = "", recording_dir: str = ""
                   ) -> dict[str, str]:
    """The channel variables `[nohold-partner]` dials with: the trunks in order (at most
    two), the ring time, the header values (every header variable is set, "" for one
    not sent, so a value left from earlier in the call is never sent), and the prompt
    the dialplan plays first ("" when the IVR already played it), and where Asterisk
    keeps a message by itself if nohold is gone by then."""
    ordered = list(trunks)
    if not 1 <= len(ordered) <= 2:
        raise ValueError("one or two partner trunks")
    headers = header_values(facts, send)
    out = {
        "NOHOLD_PARTNER_DIAL1": ordered[0].dial_string,
        "NOHOLD_PARTNER_DIAL2": ordered[1].dial_string if len(ordered) > 1 else "",
        "NOHOLD_PARTNER_RING": str(ring_timeout),
        "NOHOLD_PARTNER_REASON": facts.reason,
        "NOHOLD_PARTNER_PROMPT": prompt,
        "NOHOLD_RECORDING_DIR": recording_dir,
    }
    for key, variable in HEADER_VARIABLES.items():
        out[variable] = headers.get(HEADERS[key], "")
    return out


# -- the voice message ----------------------------------------------------------------
def voicemail_partner_id(call_id: str) -> str:
    """The ticket's id for the message of call `call_id`: one ticket per call."""
    return f"vm-{call_id}"[:MAX_PARTNER_ID]


def recording_name(call_id: str, partner_status: str = "", caller: str = "") -> str:
    """The recording's name in Asterisk's recording directory: the call, the partner's
    answer and the caller's number, so that the file alone can still become a ticket
    (`message_file`) if the ticket could not be written when it was recorded."""
    return (f"nohold-vm-{_UNSAFE.sub('', call_id)}-{_NOT_STATUS.sub('', partner_status)[:20]}"
            f"-{_NOT_NUMBER.sub('', caller)[:32]}")


# A message in the recording directory: nohold's own (`recording_name`), or one
# Asterisk recorded alone (nohold was down, or its flow failed: `-asterisk` after the
# call id, as `[nohold-partner]` names it). Then the partner's DIALSTATUS and the
# caller's number, each filtered (A-Z; 0-9 and +). Older names without them are read.
# The call id is at most 64 characters and never holds "-asterisk": a name that does
# not fit is no message of ours, rather than one read with a wrong call id.
_MESSAGE = re.compile(r"nohold-vm-(?P<call>[A-Za-z0-9](?:(?!-asterisk)[A-Za-z0-9+._@-]){0,63}?)"
                      r"(?P<alone>-asterisk)?"
                      r"(?:-(?P<status>[A-Z]{0,20})-(?P<caller>[0-9+]{0,32}))?\.wav")
_NOT_STATUS = re.compile(r"[^A-Z]")
_NOT_NUMBER = re.compile(r"[^0-9+]")


@dataclass(frozen=True)
class MessageFile:
    call_id: str
    partner_status: str  # "" when the name does not say
    caller: str  # the caller's number as Asterisk had it (digits and +), or ""
    alone: bool  # recorded by Asterisk alone, not by nohold's flow

    @property
    def partner_id(self) -> str:
        """The ticket's id. A message Asterisk recorded alone is not `vm-<call id>`: one
        nohold's own flow ticketed before it failed keeps its ticket as it was."""
        return (f"vma-{self.call_id}"[:MAX_PARTNER_ID] if self.alone
                else voicemail_partner_id(self.call_id))


def message_file(file_name: str) -> MessageFile | None:
    """What the name of a voice message's file says; None for any other file."""
    m = _MESSAGE.fullmatch(file_name)
    if m is None:
        return None
    return MessageFile(m["call"], m["status"] or "", m["caller"] or "", m["alone"] is not None)


def is_message(state: str, duration: float | None, min_seconds: float) -> bool:
    """Is a finished recording a message? At least `min_seconds` of sound (Asterisk trims
    the trailing silence), so a caller who hangs up at the tone or says nothing leaves
    none. A recording Asterisk kept without saying how long (the caller left Stasis
    before the event) counts: a message is never thrown away for want of a number."""
    if state not in ("done", "stored"):
        return False
    return duration is None or duration >= min_seconds


@dataclass(frozen=True)
class Message:
    call_id: str
    caller: str  # E.164 or "" (withheld, unknown, not a number)
    customer: str
    reason: str
    partner_status: str  # the DIALSTATUS of the last try (BUSY, NOANSWER, CHANUNAVAIL...)
    recording: str  # the recording's path, as the PBX names it
    seconds: float
    received_at: datetime


def voicemail_report(m: Message, urgency: Urgency, category: Category = Category.OTHER
                     ) -> Report:
    """The ticket for a voice message left after hours."""
    text = (f"Voice message left after hours ({m.reason}): the partner did not take the "
            f"call ({m.partner_status or 'unknown'}). Recording: {m.recording} "
            f"({m.seconds:.0f} s).")
    customer = m.customer if m.customer and len(m.customer) <= MAX_CUSTOMER else None
    return Report(partner_id=voicemail_partner_id(m.call_id), caller=m.caller,
                  category=category, text=text[:MAX_TEXT], urgency=urgency,
                  customer=customer, call_id=m.call_id or None, reported_at=m.received_at)


def dial_status(value: str) -> str:
    """The partner's DIALSTATUS as the dialplan passed it, safe to log and store."""
    return _UNSAFE.sub("", value)[:20]
