"""What a caller who took a callback is told by SMS, and when (issue 10 §5).

Three messages, each at most once per callback and window:
- `confirm`: once the callback is promised for a window, the number that will call
  and the window;
- `moved`: the window changed after a confirmation (a closure moved an agreed time);
- `reminder`: a callback at an agreed time, `reminder_before` ahead of it, unless the
  caller was told about that window less than `reminder_before` before it anyway.
Nothing once the window is over or the callback is no longer waiting. A message's
key names the callback, the kind and the window: stored under a unique key, it is
sent once whatever the nodes and restarts.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

PLACEHOLDERS = ("number", "date", "from", "to")
MAX_TEMPLATE = 320  # two SMS parts at most in GSM 7-bit, with room for the values

DEFAULT_CONFIRM = "We will call you back from {number} on {date} between {from} and {to}."
DEFAULT_MOVED = ("Your callback has moved: we will call you from {number} on {date} "
                 "between {from} and {to}.")
DEFAULT_REMINDER = "Reminder: we will call you from {number} on {date} between {from} and {to}."


class Kind(StrEnum):
    CONFIRM = "confirm"
    MOVED = "moved"
    REMINDER = "reminder"


def template_problem(text: str) -> str | None:
    """Why `text` cannot be a message template (None when it can)."""
    if not text.strip():
        return "empty"
    if len(text) > MAX_TEMPLATE:
        return f"{len(text)} characters: at most {MAX_TEMPLATE}"
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        return f"not a template ({exc}); write {{{{ and }}}} for a brace"
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        return (f"unknown placeholder {{{unknown[0]}}}; use "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    try:
        text.format_map(dict.fromkeys(PLACEHOLDERS, "x"))
    except (ValueError, TypeError, KeyError) as exc:
        return f"not a template ({exc})"
    return None


@dataclass(frozen=True)
class Texts:
    confirm: str = DEFAULT_CONFIRM
    moved: str = DEFAULT_MOVED
    reminder: str = DEFAULT_REMINDER
    date_format: str = "%Y-%m-%d"

    def of(self, kind: Kind) -> str:
        return {Kind.CONFIRM: self.confirm, Kind.MOVED: self.moved,
                Kind.REMINDER: self.reminder}[kind]


def render(texts: Texts, kind: Kind, number: str, window: tuple[datetime, datetime],
           tz: tzinfo) -> str:
    start, end = (t.astimezone(tz) for t in window)
    return texts.of(kind).format_map({
        "number": number, "date": start.strftime(texts.date_format),
        "from": start.strftime("%H:%M"), "to": end.strftime("%H:%M")})


@dataclass(frozen=True)
class Waiting:
    """A callback still waiting to be made, as the messages need it."""

    id: int
    scheduled: bool
    window: tuple[datetime, datetime] | None  # promised earliest, latest


@dataclass(frozen=True)
class Told:
    """A message already stored for this callback."""

    kind: Kind
    window_start: datetime
    at: datetime  # when it was stored


def key(callback_id: int, kind: Kind, window_start: datetime) -> str:
    return f"callback:{callback_id}:{kind.value}:{int(window_start.timestamp())}"


def whole_seconds(t: datetime) -> datetime:
    """Windows are told and compared to the second (a window promised on the phone
    carries microseconds; the key of a message keeps whole seconds)."""
    return t.replace(microsecond=0)


# Texts go to mobiles only: an allow-list for dialling may admit landlines, where an SMS
# is refused or, with some operators, turned into a paid voice delivery.
TEXTABLE = frozenset({"mobile", "fixed_line_or_mobile"})


def about(callback_id: int) -> str:
    return f"callback:{callback_id}"


def due(cb: Waiting, told: Iterable[Told], now: datetime, reminder_before: timedelta
        ) -> Kind | None:
    """The message this callback should get now, if any."""
    if cb.window is None or now >= cb.window[1]:
        return None
    start = whole_seconds(cb.window[0])
    told = list(told)
    about_this = [t for t in told if whole_seconds(t.window_start) == start]
    if not told:
        return Kind.CONFIRM
    if not any(t.kind in (Kind.CONFIRM, Kind.MOVED) for t in about_this):
        return Kind.MOVED
    if not cb.scheduled or reminder_before <= timedelta(0):
        return None
    remind_at = start - reminder_before
    if now < remind_at or now >= start or any(t.kind == Kind.REMINDER for t in about_this):
        return None
    if any(t.at >= remind_at for t in about_this):
        return None  # told about this window lately enough
    return Kind.REMINDER
