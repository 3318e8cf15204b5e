"""The `[callbacks]` section: which queues offer a callback, when, and what may be dialled.

Off by default. Turning it on needs the company's caller id, an outbound route and
at least one `allowed_numbers` entry: nohold dials nothing the admin did not list
(deny by default, nohold.decisions.numbers). Durations are in seconds.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from nohold.ami.settings import AmiSettings
from nohold.config import (
    DIALPLAN_NAME,
    ConfigError,
    Section,
    Settings,
    Table,
    bounded,
    check_prompt_known,
    choice,
    digits_range,
    matching,
    text,
)
from nohold.decisions.callback_sms import (
    DEFAULT_CONFIRM,
    DEFAULT_MOVED,
    DEFAULT_REMINDER,
    Texts,
    template_problem,
)
from nohold.decisions.callbacks import AttemptPolicy
from nohold.decisions.dial_target import OUTBOUND, Outbound
from nohold.decisions.hours import Window, parse_window
from nohold.decisions.numbers import DIAL_FORMATS, AllowRule, NumberPolicy, parse_rule
from nohold.decisions.slots import SlotRule, slot_problem

# The company's number as the customer sees it: digits, optional leading +.
CALLER_ID = re.compile(r"^\+?[0-9]{3,15}$")
# A node's name in the callbacks table's owner column (String(64)).
NODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PROMPTS = ("offer_prompt", "number_is_prompt", "confirm_prompt", "enter_number_prompt",
           "promise_prompt", "minutes_prompt", "already_prompt", "refused_prompt",
           "whisper_prompt", "info_prompt", "agent_outcome_prompt", "whisper_owner_prompt",
           "whisper_taken_prompt")

# What a caller choosing a time hears ([prompts.texts] changes the words): the times
# are said as "<day> between <hour> and <hour>", the hours by Asterisk (number:).
DAY_PROMPTS = ("callback_today", "callback_tomorrow", "callback_monday", "callback_tuesday",
               "callback_wednesday", "callback_thursday", "callback_friday",
               "callback_saturday", "callback_sunday")
SLOT_PROMPTS = ("callback_times", "callback_between", "callback_and", "callback_press",
                "callback_keep_waiting", "callback_no_times", "callback_booked",
                "callback_goodbye", *DAY_PROMPTS)


@dataclass(frozen=True)
class FollowUpSettings:
    """`[callbacks.followup]`: a resolved ticket's caller is called back
    `after_working_days` working days later (the callback calendar's), in `window`
    (wall clock), agent first, to ask whether the fix held."""

    enabled: bool = False
    after_working_days: int = 2
    window: Window = Window(10 * 60, 12 * 60)
    queue: str = ""  # "" = the first of callbacks.queues


@dataclass(frozen=True)
class SmsNotices:
    """`[callbacks.sms]`: when `[sms]` is enabled, a caller who took a callback gets an
    SMS with the number that will call and the window, another if the window moves,
    and a reminder `reminder_before` seconds ahead of a time agreed with them."""

    enabled: bool = True
    reminder_before: float = 900.0  # 0: no reminders
    texts: Texts = Texts()


@dataclass(frozen=True)
class CallbackSettings:
    enabled: bool = False
    queues: tuple[str, ...] = ()
    app: str = "nohold-callback"
    node: str = ""
    offer_after: float = 180.0
    offer_when_wait_over: float = 300.0
    offer_every: float = 120.0
    max_waiting_per_agent: int = 1
    retry_after: float = 600.0
    max_attempts: int = 3
    expire_after: float = 4 * 3600.0
    ring_timeout: float = 25.0
    caller_id: str = ""
    caller_name: str = ""
    outbound: Outbound = Outbound("context", "nohold-callback-out")
    dial_format: str = "e164"
    default_region: str = "PL"
    allowed_numbers: tuple[AllowRule, ...] = ()
    number_digits: tuple[int, int] = (6, 15)
    default_handle_time: float = 300.0
    lease: float = 30.0
    amd: bool = False
    # The named business calendar that bounds dialling ("" = not bounded; scheduled
    # callbacks are then booked against the calendar's default one).
    calendar: str = ""
    # A callback at an agreed time rings the agent who promised it first; after this
    # long past the time without them, the queue's next free agent takes it.
    owner_grace: float = 300.0
    # "Press 2 to choose a time": the day's slots with the agents expected then (none:
    # no choice is offered), how many free ones a caller hears, how many days ahead,
    # and how soon a slot may start to be offered.
    slots: tuple[SlotRule, ...] = ()
    slots_offered: int = 3
    slots_days: int = 7
    slot_lead: float = 900.0
    followup: FollowUpSettings = field(default_factory=lambda: FollowUpSettings())
    sms: SmsNotices = field(default_factory=lambda: SmsNotices())
    offer_prompt: str = "callback_offer"
    number_is_prompt: str = "callback_number_is"
    confirm_prompt: str = "callback_confirm"
    enter_number_prompt: str = "callback_enter_number"
    promise_prompt: str = "callback_promise"
    minutes_prompt: str = "callback_minutes"
    already_prompt: str = "callback_already"
    refused_prompt: str = "callback_refused"
    whisper_prompt: str = "callback_whisper"
    whisper_owner_prompt: str = "callback_whisper_owner"  # to the agent who promised it
    whisper_taken_prompt: str = "callback_whisper_taken"  # to another, after owner_grace
    info_prompt: str = "callback_info"
    agent_outcome_prompt: str = "callback_not_reached"

    @property
    def policy(self) -> AttemptPolicy:
        return AttemptPolicy(self.max_attempts, self.retry_after, self.expire_after)

    @property
    def numbers(self) -> NumberPolicy:
        return NumberPolicy(self.default_region, self.allowed_numbers)


CALENDAR_NAME = re.compile(r"^([a-z0-9_-]{1,32})?$")


def parse_callbacks(t: Table, env: Mapping[str, str]) -> CallbackSettings:
    queues = t.get("queues", list, [])
    for i, queue in enumerate(queues):
        if not isinstance(queue, str) or not DIALPLAN_NAME.match(queue):
            raise ConfigError(f"{t.key('queues')}[{i}] = {queue!r}: expected an app_queue "
                              "queue name (letters, digits, _ + . @ -)")
    if len(set(queues)) != len(queues):
        raise ConfigError(f"{t.key('queues')} = {queues!r}: a queue is listed twice")
    rules: list[AllowRule] = []
    for i, entry in enumerate(t.get("allowed_numbers", list, [])):
        if not isinstance(entry, str):
            raise ConfigError(f"{t.key('allowed_numbers')}[{i}] = {entry!r}: expected a string")
        try:
            rules.append(parse_rule(entry))
        except ValueError as exc:
            raise ConfigError(f"{t.key('allowed_numbers')}[{i}]: {exc}") from None
    outbound = matching(t, "outbound", "context:nohold-callback-out", OUTBOUND,
                        "'context:<dialplan context>' or 'endpoint:PJSIP/{number}@<trunk>'")
    kind, _, target = outbound.partition(":")
    region = t.get("default_region", str, "PL")
    try:
        parse_rule(f"{region}:mobile")
    except ValueError:
        raise ConfigError(f"{t.key('default_region')} = {region!r}: expected a two-letter "
                          "region such as 'PL'") from None
    node = t.get("node", str, "") or socket.gethostname()[:64]
    if not NODE.match(node):
        raise ConfigError(f"{t.key('node')} = {node!r}: letters, digits, _ . : - (1-64)")
    caller_id = t.get("caller_id", str, "")
    if caller_id and not CALLER_ID.match(caller_id):
        raise ConfigError(f"{t.key('caller_id')} = {caller_id!r}: the company's number, "
                          "digits with an optional leading +")
    settings = CallbackSettings(
        enabled=t.get("enabled", bool, False),
        queues=tuple(queues),
        app=matching(t, "app", "nohold-callback", DIALPLAN_NAME, "an ARI application name"),
        node=node,
        offer_after=bounded(t, "offer_after", 180.0, 1.0, 3600.0),
        offer_when_wait_over=bounded(t, "offer_when_wait_over", 300.0, 0.0, 7200.0),
        offer_every=bounded(t, "offer_every", 120.0, 1.0, 3600.0),
        max_waiting_per_agent=t.integer("max_waiting_per_agent", 1, 1, 20),
        retry_after=bounded(t, "retry_after", 600.0, 10.0, 86400.0),
        max_attempts=t.integer("max_attempts", 3, 1, 10),
        expire_after=bounded(t, "expire_after", 4 * 3600.0, 60.0, 7 * 86400.0),
        ring_timeout=bounded(t, "ring_timeout", 25.0, 15.0, 120.0),
        caller_id=caller_id,
        caller_name=text(t, "caller_name", "Customer service", 40),
        outbound=Outbound(kind, target),
        dial_format=choice(t, "dial_format", "e164", DIAL_FORMATS),
        default_region=region,
        allowed_numbers=tuple(rules),
        number_digits=digits_range(t, "number_digits", (6, 15)),
        default_handle_time=bounded(t, "default_handle_time", 300.0, 10.0, 7200.0),
        lease=bounded(t, "lease", 30.0, 5.0, 600.0),
        amd=t.get("amd", bool, False),
        owner_grace=bounded(t, "owner_grace", 300.0, 0.0, 3600.0),
        calendar=matching(t, "calendar", "", CALENDAR_NAME,
                          "a calendar name ([calendar.<name>]: a-z, 0-9, _ or -) or \"\""),
        slots=_slots(t),
        slots_offered=t.integer("slots_offered", 3, 1, 5),
        slots_days=t.integer("slots_days", 7, 0, 30),
        slot_lead=bounded(t, "slot_lead", 900.0, 0.0, 86400.0),
        followup=_followup(t.table("followup")),
        sms=_sms(t.table("sms")),
        **{name: t.get(name, str, getattr(CallbackSettings, name)) for name in PROMPTS},
    )
    if "offer_prompt" not in t.data and settings.slots:
        # The queue's offer must tell the caller that 2 chooses a time.
        settings = replace(settings, offer_prompt="callback_offer_or_time")
    t.done()
    return settings


def _followup(t: Table) -> FollowUpSettings:
    hours = t.get("window", str, "10:00-12:00")
    try:
        window = parse_window(hours)
    except ValueError as exc:
        raise ConfigError(f"{t.key('window')} = {hours!r}: {exc}") from None
    settings = FollowUpSettings(
        enabled=t.get("enabled", bool, False),
        after_working_days=t.integer("after_working_days", 2, 1, 10),
        window=window,
        queue=t.get("queue", str, ""))
    t.done()
    return settings


def _sms(t: Table) -> SmsNotices:
    def template(name: str, default: str) -> str:
        value = t.get(name, str, default)
        problem = template_problem(value)
        if problem:
            raise ConfigError(f"{t.key(name)} = {value!r}: {problem}")
        return value

    date_format = t.get("date_format", str, Texts.date_format)
    sample = datetime(2026, 12, 24, 9, 5).strftime(date_format)
    if not date_format.strip() or "%" not in date_format or len(sample) > 40:
        raise ConfigError(f"{t.key('date_format')} = {date_format!r}: a strftime pattern "
                          "such as \"%d.%m.%Y\" (at most 40 characters once written)")
    notices = SmsNotices(
        enabled=t.get("enabled", bool, True),
        reminder_before=bounded(t, "reminder_before", 900.0, 0.0, 86400.0),
        texts=Texts(confirm=template("confirm", DEFAULT_CONFIRM),
                    moved=template("moved", DEFAULT_MOVED),
                    reminder=template("reminder", DEFAULT_REMINDER),
                    date_format=date_format))
    t.done()
    return notices


def _slots(t: Table) -> tuple[SlotRule, ...]:
    rules = []
    for i, entry in enumerate(t.get("slots", list, [])):
        where = f"{t.key('slots')}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} = {entry!r}: expected {{ window = \"18:00-20:00\", "
                              "agents = 2 }")
        slot = Table(entry, where)
        try:
            window = parse_window(slot.get("window", str, ""))
        except ValueError as exc:
            raise ConfigError(f"{slot.key('window')}: {exc}") from None
        rules.append(SlotRule(window, slot.integer("agents", 1, 1, 1000)))
        slot.done()
    problem = slot_problem(rules)
    if problem:
        raise ConfigError(f"{t.key('slots')}: {problem}")
    return tuple(sorted(rules, key=lambda r: r.window))


def check_callbacks(cb: CallbackSettings, s: Settings) -> None:
    for name in PROMPTS:
        check_prompt_known(s, getattr(cb, name), f"callbacks.{name}")
    for name in SLOT_PROMPTS if cb.slots else ():
        check_prompt_known(s, name, "callbacks.slots")
    if not cb.enabled:
        return
    missing = [key for key, value in (("queues", cb.queues), ("caller_id", cb.caller_id),
                                      ("allowed_numbers", cb.allowed_numbers)) if not value]
    if missing:
        raise ConfigError(
            f"callbacks.enabled = true needs callbacks.{', callbacks.'.join(missing)}: the "
            "queues that offer a callback, the company's number the customer sees, and the "
            "numbers nohold may dial (e.g. allowed_numbers = [\"PL:fixed_line\", \"PL:mobile\"])")
    if cb.app == s.ari.app:
        raise ConfigError(f"callbacks.app = {cb.app!r} is the IVR's app (ari.app): "
                          "each feature needs its own")
    if cb.retry_after >= cb.expire_after:
        raise ConfigError(f"callbacks.retry_after = {cb.retry_after:g} must be shorter than "
                          f"callbacks.expire_after = {cb.expire_after:g}: no retry could happen")
    if not s.section(AmiSettings).enabled:
        raise ConfigError("callbacks.enabled = true needs [ami] enabled = true: placeholders "
                          "stand in a queue only where nohold sees the queue's state")
    f = cb.followup
    if f.enabled and f.queue and f.queue not in cb.queues:
        raise ConfigError(f"callbacks.followup.queue = {f.queue!r}: not one of "
                          f"callbacks.queues ({', '.join(cb.queues)})")


SECTION = Section("callbacks", parse_callbacks, check_callbacks)
