"""The `[alerts]` section: the technicians, the on-duty rota, and how an alert escalates.

    [alerts]
    enabled = true
    tickets = "urgent_or_closed"    # which new tickets alert: all | urgent |
                                    # urgent_or_closed (urgent ones, all while closed)
    calendar = ""                   # the business calendar for "closed" ("" = default)
    timezone = "Europe/Warsaw"      # the rota's wall clock
    ack_within = 300                # seconds before the next step (a call, the next person)
    rounds = 3                      # times the whole order is alerted
    call = false                    # a voice call after the SMS (false: SMS only)
    dial = "context:nohold-callback-out"   # where calls go: your outbound dialplan, or
                                    # "endpoint:PJSIP/{number}@trunk"
    dial_format = "e164"            # the number as `dial` wants it: e164 | e164_digits |
                                    # national
    caller_id = ""                  # the number the technician sees ("" = Asterisk's)
    ring_timeout = 30               # seconds a call rings before it counts as unanswered
    app = "nohold-alerts"           # the Stasis application of the calls
    fallback = ["jan"]              # alerted when no shift or cover says who

    [alerts.people.jan]             # a name: a-z, 0-9, _ -
    mobile = "+48601000001"
    email = "jan@example.net"       # optional

    [[alerts.shifts]]               # days and wall-clock hours; first in `order` is on duty
    days = ["mon", "tue", "wed", "thu", "fri"]
    hours = "17:00-24:00"
    order = ["ewa", "jan"]

    [[alerts.covers]]               # replaces the shifts for a period (holidays, leave)
    from = 2026-12-24T00:00:00      # local time in `timezone`, or with an offset
    to = 2026-12-27T00:00:00
    order = ["jan"]
    note = "Christmas"

Every number is checked with libphonenumber (E.164 stored); every name in an order
must be a person; overlapping shifts are refused (who is on duty must not depend on
the order of lines in a file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nohold.config import (
    DIALPLAN_NAME,
    ConfigError,
    Section,
    Settings,
    Table,
    bounded,
    choice,
    matching,
    text,
)
from nohold.decisions.alerts import Policy
from nohold.decisions.dial_target import OUTBOUND, OUTBOUND_HELP, Outbound
from nohold.decisions.hours import (
    DEFAULT_TIMEZONE,
    WEEKDAYS,
    Window,
    local_instant,
    parse_window,
)
from nohold.decisions.numbers import DIAL_FORMATS, NumberPolicy, NumberRefused
from nohold.decisions.rota import Cover, Rota, Shift, overlapping_shifts

NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_CALLER_ID = re.compile(r"^(\+?[0-9]{3,15})?$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,}$")


@dataclass(frozen=True)
class Person:
    name: str
    mobile: str  # E.164
    email: str = ""


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = False
    tickets: Policy = Policy.URGENT_OR_CLOSED
    calendar: str = ""
    timezone: str = DEFAULT_TIMEZONE
    ack_within: float = 300.0
    rounds: int = 3
    call: bool = False
    dial: Outbound = Outbound("context", "nohold-callback-out")
    dial_format: str = "e164"
    caller_id: str = ""
    ring_timeout: float = 30.0
    app: str = "nohold-alerts"
    default_region: str = "PL"
    people: Mapping[str, Person] = field(default_factory=dict)
    rota: Rota = field(default_factory=Rota)

    def dial_digits(self, person: Person) -> str:
        """The person's mobile as `dial` wants it (`dial_format`)."""
        return NumberPolicy(self.default_region, ()).parse(person.mobile).digits(
            self.dial_format)

    def person_by_number(self, e164: str) -> Person | None:
        return next((p for p in self.people.values() if p.mobile == e164), None)

    @property
    def ack_delta(self) -> timedelta:
        return timedelta(seconds=self.ack_within)


def parse_alerts(t: Table, env: Mapping[str, str]) -> AlertSettings:
    if "smpp" in t.data:
        raise ConfigError("[alerts.smpp] has moved to [sms.smpp] (with [sms] enabled = "
                          "true): one SMS link for the alerts and the callers' SMS")
    zone = t.get("timezone", str, DEFAULT_TIMEZONE)
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{t.key('timezone')} = {zone!r}: not a time zone this system "
                          "knows (an IANA name such as 'Europe/Warsaw')") from None
    region = t.get("default_region", str, "PL")
    numbers = NumberPolicy(region, ())
    people = {}
    tp = t.table("people")
    for name in list(tp.data):
        if not NAME.match(name):
            raise ConfigError(f"{tp.key(name)}: a person's name is a-z, 0-9, _ or - "
                              "(1-32 characters)")
        people[name] = _person(tp.table(name), name, numbers)
    tp.done()

    def order(table: Table, key: str = "order") -> tuple[str, ...]:
        names = table.get(key, list, [])
        for i, who in enumerate(names):
            if who not in people:
                raise ConfigError(f"{table.key(key)}[{i}] = {who!r}: not one of "
                                  f"[alerts.people] ({', '.join(people) or 'none defined'})")
        if len(set(names)) != len(names):
            raise ConfigError(f"{table.key(key)} = {names!r}: a person is listed twice")
        return tuple(names)

    shifts = tuple(_shift(Table(entry, f"{t.key('shifts')}[{i}]"), order)
                   for i, entry in enumerate(_tables(t, "shifts")))
    problem = overlapping_shifts(shifts)
    if problem:
        raise ConfigError(f"{t.key('shifts')}: {problem}")
    covers = tuple(_cover(Table(entry, f"{t.key('covers')}[{i}]"), order, tz)
                   for i, entry in enumerate(_tables(t, "covers")))
    calendar = t.get("calendar", str, "")
    settings = AlertSettings(
        enabled=t.get("enabled", bool, False),
        tickets=Policy(choice(t, "tickets", Policy.URGENT_OR_CLOSED.value,
                              tuple(p.value for p in Policy))),
        calendar=calendar, timezone=zone,
        ack_within=bounded(t, "ack_within", 300.0, 1.0, 3600.0),
        rounds=t.integer("rounds", 3, 1, 10), call=t.get("call", bool, False),
        dial=Outbound.parse(matching(t, "dial", "context:nohold-callback-out", OUTBOUND,
                                     OUTBOUND_HELP)),
        dial_format=choice(t, "dial_format", "e164", DIAL_FORMATS),
        caller_id=matching(t, "caller_id", "", _CALLER_ID, "digits with an optional +, "
                           "3-15 of them, or \"\" for Asterisk's own"),
        ring_timeout=bounded(t, "ring_timeout", 30.0, 5.0, 120.0),
        app=matching(t, "app", "nohold-alerts", DIALPLAN_NAME,
                     "an ARI application name (letters, digits, _ + . @ -)"),
        default_region=region, people=people,
        rota=Rota(shifts, covers, order(t, "fallback"), tz))
    t.done()
    return settings


def _tables(t: Table, key: str) -> list[dict[str, object]]:
    entries = t.get(key, list, [])
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{t.key(key)}[{i}] = {entry!r}: expected a table "
                              f"([[alerts.{key}]])")
    return entries


def _person(t: Table, name: str, numbers: NumberPolicy) -> Person:
    mobile = t.get("mobile", str, "")
    try:
        # Written as people write numbers ("+48 601 000 001", "601-000-001").
        e164 = numbers.parse(re.sub(r"[\s().-]", "", mobile)).e164
    except NumberRefused as exc:
        raise ConfigError(f"{t.key('mobile')} = {mobile!r}: {exc}") from None
    email = t.get("email", str, "")
    if email and not EMAIL.match(email):
        raise ConfigError(f"{t.key('email')} = {email!r}: not an email address")
    t.done()
    return Person(name, e164, email)


def _shift(t: Table, order: object) -> Shift:
    days = t.get("days", list, [])
    if not days or any(d not in WEEKDAYS for d in days):
        raise ConfigError(f"{t.key('days')} = {days!r}: a list of {', '.join(WEEKDAYS)}")
    hours = t.get("hours", str, "00:00-24:00")
    try:
        window: Window = parse_window(hours)
    except ValueError as exc:
        raise ConfigError(f"{t.key('hours')} = {hours!r}: {exc}") from None
    people = order(t)  # type: ignore[operator]
    if not people:
        raise ConfigError(f"{t.key('order')}: who is on duty (at least one person)")
    t.done()
    return Shift(frozenset(WEEKDAYS.index(d) for d in days), window, people)


def _cover(t: Table, order: object, tz: ZoneInfo) -> Cover:
    start, end = (_instant(t, key, tz) for key in ("from", "to"))
    if end <= start:
        raise ConfigError(f"{t.key('to')}: ends before it starts")
    people = order(t)  # type: ignore[operator]
    if not people:
        raise ConfigError(f"{t.key('order')}: who covers (at least one person)")
    note = text(t, "note", "-", 200) if "note" in t.data else ""
    t.used.add("note")
    t.done()
    return Cover(start, end, people, note)


def _instant(t: Table, key: str, tz: ZoneInfo) -> datetime:
    value = t.get(key, (str, datetime), None)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        parsed = None
    if not isinstance(parsed, datetime):
        raise ConfigError(f"{t.key(key)} = {value!r}: expected a date and time, e.g. "
                          "2026-12-24T00:00 (local) or 2026-12-24T00:00+01:00")
    return local_instant(tz, parsed)


def check_alerts(a: AlertSettings, s: Settings) -> None:
    if a.enabled and a.call and a.app == s.ari.app:
        raise ConfigError(f"alerts.app = {a.app!r}: that is the IVR's application "
                          "(ari.app); name another")
    if a.enabled and not s.sms.enabled:
        raise ConfigError("alerts.enabled = true needs [sms] enabled = true (and "
                          "[sms.smpp]): the technicians are alerted by SMS first")
    if a.enabled and not a.people:
        raise ConfigError("alerts.enabled = true needs [alerts.people.<name>] with a mobile")
    if a.enabled and not (a.rota.shifts or a.rota.covers or a.rota.fallback):
        raise ConfigError("alerts.enabled = true needs [[alerts.shifts]] or alerts.fallback: "
                          "someone must be on duty")


SECTION = Section("alerts", parse_alerts, check_alerts)
