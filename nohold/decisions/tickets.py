"""The partner's tickets (issue 10 §2): what a report must say, whether a webhook request
really comes from the partner, and how a ticket's state may move. Pure: no I/O, no clock
(the time is an argument).

A report is validated all at once: a required field that is missing or wrong refuses
the whole report (`BadReport` names the field), so nothing is half-written; an optional
field that only adds context (the call id, the customer number, an unknown key) and
is malformed is left out and named in `Validated.ignored`, so a ticket for a caller
waiting on a technician is never lost to a detail.

The signature (decision 0011): `X-Nohold-Signature: sha256=<hex>` where hex is
HMAC-SHA256(secret, timestamp + "." + raw body), and `X-Nohold-Timestamp` is the Unix
time in whole seconds when the partner signed. A request whose timestamp is more than
`max_age` from now, either way, is refused; the same signed message seen again within
that window is a replay (the store keeps `delivery_key` of each accepted one).

States:  open --ack--> acknowledged --resolve--> resolved --reopen--> open
         open --resolve--> resolved (a technician may fix it before acknowledging)
Acknowledging a ticket already acknowledged or resolved changes nothing (an SMS reply
and a key press may both arrive); resolving a resolved ticket or reopening one that is
not resolved is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from nohold.decisions.ids import BadId, check_id
from nohold.decisions.numbers import NumberPolicy, NumberRefused


class Category(StrEnum):
    OUTAGE = "outage"
    FAULT = "fault"
    BILLING = "billing"
    OTHER = "other"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    URGENT = "urgent"


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Action(StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    REOPEN = "reopen"


# Limits, also the database's column sizes.
MAX_PARTNER_ID = 64
MAX_CUSTOMER = 32
MAX_TEXT = 4000
MAX_NOTE = 1000
MAX_ACTOR = 80
FIELDS = ("id", "caller", "customer", "category", "urgency", "text", "call_id",
          "reported_at")
REQUIRED = ("id", "caller", "category", "text")
WITHHELD = ("anonymous", "withheld", "unknown", "restricted", "private")

_PARTNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]*")
_CUSTOMER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Text may have line breaks and tabs; other control characters are refused.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ONE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class BadReport(ValueError):
    """The report cannot become a ticket: `field` is the key to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Report:
    """A valid report. None means "not said": a repeat that leaves a field out keeps
    what the ticket had (urgency included: a repeat never lowers it by silence)."""

    partner_id: str
    caller: str  # E.164, or "" when the caller withheld the number
    category: Category
    text: str
    urgency: Urgency | None = None
    customer: str | None = None
    call_id: str | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class Ignored:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class Validated:
    report: Report
    ignored: tuple[Ignored, ...] = field(default=())


def _string(data: Mapping[str, Any], name: str, max_len: int, *, one_line: bool = True
            ) -> str:
    value = data.get(name)
    if value is None:
        raise BadReport(name, "required")
    if isinstance(value, int) and not isinstance(value, bool) and name == "id":
        value = str(value)  # a numeric ticket id is common enough
    if not isinstance(value, str):
        raise BadReport(name, f"expected a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise BadReport(name, "required (blank)")
    if len(value) > max_len:
        raise BadReport(name, f"at most {max_len} characters (got {len(value)})")
    control = _ONE_LINE_CONTROL if one_line else _TEXT_CONTROL
    if control.search(value):
        raise BadReport(name, "one line without control characters" if one_line
                        else "no control characters other than line breaks and tabs")
    return value


def _choice(data: Mapping[str, Any], name: str, kind: type[StrEnum]) -> Any:
    value = data.get(name)
    allowed = ", ".join(k.value for k in kind)
    if not isinstance(value, str):
        raise BadReport(name, f"expected one of {allowed}")
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise BadReport(name, f"{value[:40]!r}: expected one of {allowed}") from None


def parse_caller(raw: str, policy: NumberPolicy) -> str:
    """E.164 of the caller's number ("" when withheld); BadReport otherwise."""
    if raw.lower() in WITHHELD:
        return ""
    try:
        return policy.parse(re.sub(r"[\s().-]", "", raw)).e164
    except NumberRefused as exc:
        raise BadReport("caller", f"{raw[:40]!r} is not a phone number ({exc})") from None


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 instant with its offset (or Z)."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadReport(name, "expected an ISO 8601 time with its offset, "
                              "e.g. 2026-03-07T21:14:00+01:00")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadReport(name, f"{value!r}: expected an ISO 8601 time with its offset, "
                              "e.g. 2026-03-07T21:14:00+01:00") from None
    if at.tzinfo is None:
        raise BadReport(name, f"{value!r}: give the offset (e.g. +01:00 or Z): a time "
                              "without one means nothing certain")
    return at.astimezone(UTC)


def validate(data: Mapping[str, Any], policy: NumberPolicy, now: datetime,
             max_future: timedelta = timedelta(minutes=5)) -> Validated:
    """The report in `data` (the webhook's JSON object, or an email's fields), checked.
    BadReport for the first required field that is wrong (in FIELDS order)."""
    ignored: list[Ignored] = [Ignored(k, f"unknown field; known: {', '.join(FIELDS)}")
                              for k in sorted(set(data) - set(FIELDS))]
    partner_id = _string(data, "id", MAX_PARTNER_ID)
    if not _PARTNER_ID.fullmatch(partner_id):
        raise BadReport("id", "letters, digits and . _ : / # - only, starting with a "
                              "letter or digit")
    caller = parse_caller(_string(data, "caller", 40), policy)
    customer = None
    if data.get("customer") is not None:
        raw = data["customer"]
        raw = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if (isinstance(raw, str) and raw.strip() and len(raw.strip()) <= MAX_CUSTOMER
                and _CUSTOMER.fullmatch(raw.strip())):
            customer = raw.strip()
        else:
            ignored.append(Ignored("customer", f"expected 1-{MAX_CUSTOMER} letters, "
                                               "digits, '.', '_', '-'"))
    category = _choice(data, "category", Category)
    urgency = None if data.get("urgency") is None else _choice(data, "urgency", Urgency)
    text = _string(data, "text", MAX_TEXT, one_line=False)
    call_id = None
    if data.get("call_id") is not None:
        raw = data["call_id"]
        try:
            if not isinstance(raw, str):
                raise BadId("call_id", str(raw), "expected a string")
            call_id = check_id("call_id", raw.strip())
        except BadId as exc:
            ignored.append(Ignored("call_id", f"not a call id nohold gives ({exc.rule})"))
    reported_at = None
    if data.get("reported_at") is not None:
        reported_at = parse_time(data["reported_at"], "reported_at")
        if reported_at > now + max_future:
            raise BadReport("reported_at", f"{data['reported_at']} is in the future")
    report = Report(partner_id=partner_id, caller=caller, category=category, text=text,
                    urgency=urgency, customer=customer, call_id=call_id,
                    reported_at=reported_at)
    return Validated(report, tuple(ignored))


# -- the signature ----------------------------------------------------------------------
SIGNATURE_PREFIX = "sha256="


class BadSignature(ValueError):
    """The request is not provably the partner's, now: `reason` is a stable word
    (missing_timestamp, bad_timestamp, stale, future, missing_signature,
    bad_signature), the message says what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def signed_message(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"." + body


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The header value the partner sends: sha256=<lower-case hex>."""
    mac = hmac.new(secret, signed_message(timestamp, body), hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def delivery_key(timestamp: str, body: bytes) -> str:
    """What identifies one signed request, to refuse it a second time (the secret plays
    no part: a rotated secret does not make an old request new)."""
    return hashlib.sha256(signed_message(timestamp, body)).hexdigest()


def verify(secrets: Sequence[bytes], timestamp: str | None, signature: str | None,
           body: bytes, now: datetime, max_age: timedelta) -> datetime:
    """The signing time, if the request carries a valid signature by one of `secrets`
    (the current one, and the previous one while it is being rotated out) made within
    `max_age` of `now`; BadSignature otherwise. The signature is checked before the
    time, so an outsider learns nothing about the clock."""
    if not secrets:
        raise BadSignature("bad_signature", "no shared secret is configured")
    if not timestamp:
        raise BadSignature("missing_timestamp", "send X-Nohold-Timestamp: the Unix time "
                                                "in seconds when you signed")
    if not signature:
        raise BadSignature("missing_signature",
                           "send X-Nohold-Signature: sha256=<hex of HMAC-SHA256(secret, "
                           "timestamp + '.' + body)>")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise BadSignature("bad_timestamp", "X-Nohold-Timestamp: whole seconds since 1970 "
                                            "(e.g. `date +%s`)")
    given = signature.strip().lower()
    if not given.startswith(SIGNATURE_PREFIX):
        raise BadSignature("bad_signature", "X-Nohold-Signature must start with sha256=")
    if not any(hmac.compare_digest(given.encode("ascii", "replace"),
                                   sign(secret, timestamp, body).encode("ascii"))
               for secret in secrets):
        raise BadSignature("bad_signature", "the signature does not match the body and "
                                            "timestamp with the shared secret")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if signed_at < now - max_age:
        raise BadSignature("stale", f"signed {int((now - signed_at).total_seconds())} s ago; "
                                    f"at most {int(max_age.total_seconds())} s are accepted "
                                    "(is your clock right?)")
    if signed_at > now + max_age:
        raise BadSignature("future", f"signed {int((signed_at - now).total_seconds())} s in "
                                     "the future: is your clock right?")
    return signed_at


# -- states -----------------------------------------------------------------------------
class NotAllowed(ValueError):
    """The action makes no sense in the ticket's state; the message says why."""


_MOVES: dict[tuple[State, Action], State] = {
    (State.OPEN, Action.ACK): State.ACKNOWLEDGED,
    (State.OPEN, Action.RESOLVE): State.RESOLVED,
    (State.ACKNOWLEDGED, Action.RESOLVE): State.RESOLVED,
    (State.RESOLVED, Action.REOPEN): State.OPEN,
}
# Nothing to do, and nothing wrong: the ticket already is where the action leads.
_ALREADY = {(State.ACKNOWLEDGED, Action.ACK), (State.RESOLVED, Action.ACK)}


def after(state: State, action: Action) -> State | None:
    """The state `action` moves a ticket in `state` to; None when it is already done
    (an acknowledgement of an acknowledged or resolved ticket); NotAllowed if it makes
    no sense."""
    if (state, action) in _ALREADY:
        return None
    try:
        return _MOVES[(state, action)]
    except KeyError:
        why = {Action.RESOLVE: "it is resolved already",
               Action.REOPEN: f"it is {state.value}, not resolved"}.get(action, "")
        raise NotAllowed(f"cannot {action.value} a ticket that is {state.value}"
                         + (f": {why}" if why else "")) from None
