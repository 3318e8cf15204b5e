"""The `[afterhours]` section: when the calendar says closed, calls go to the partner call
centre over a SIP trunk; when the partner cannot take one, the caller leaves a voice
message that becomes a ticket.

    [afterhours]
    enabled = false
    calendar = ""                  # the [calendar] to ask; "" = its default
    trunks = ["partner"]           # PJSIP endpoints, tried in order (one or two);
                                   # "support@partner" asks the endpoint for "support"
    ring_timeout = 30              # seconds each trunk may ring before the next step
    headers = ["call-id", "caller", "customer", "reason", "notice-played"]
    identify = false               # the IVR asks the customer number first (X-Nohold-Customer)
    app = "nohold-afterhours"      # the ARI application of the voice message
    prompt = "partner_intro"       # "our partner will take your call"
    unavailable_prompt = "partner_unavailable"  # "...leave a message after the tone"
    alerted_prompt = "partner_alerted"          # "...a technician is being alerted"
    thanks_prompt = "partner_thanks"            # "...your message is recorded" (no ticket)

    [afterhours.voicemail]
    max_seconds = 120              # the longest message
    silence_seconds = 4            # this much silence ends it (so does the # key)
    min_seconds = 1                # shorter is no message: no ticket
    category = "other"
    urgency = "normal"
    recording_dir = "/var/spool/asterisk/recording"  # Asterisk's, as the ticket names it
    settle_seconds = 10            # a message Asterisk recorded alone (nohold was down)
                                   # becomes a ticket once its file is this long unchanged
    sweep_dir = ""                 # where nohold reads recording_dir, when it sees it
                                   # under another path (a container's volume, a mount);
                                   # "" = recording_dir

The trunks only ever come from here: nothing a caller sends picks what is dialled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nohold.config import (
    DIALPLAN_NAME,
    ConfigError,
    Section,
    Settings,
    Table,
    absolute_path,
    bounded,
    check_prompt_known,
    choice,
    matching,
)
from nohold.decisions.partner import HEADERS, Trunk
from nohold.decisions.tickets import Category, Urgency

# A PJSIP endpoint (pjsip.conf section) name, optionally with the extension to ask it for.
TRUNK = re.compile(r"^(?:(?P<exten>[A-Za-z0-9+_.-]{1,40})@)?(?P<endpoint>[A-Za-z0-9_.-]{1,64})$")
CALENDAR_NAME = re.compile(r"^([a-z0-9_-]{1,32})?$")
PROMPTS = ("prompt", "unavailable_prompt", "alerted_prompt", "thanks_prompt")


@dataclass(frozen=True)
class VoicemailSettings:
    max_seconds: int = 120
    silence_seconds: int = 4
    min_seconds: float = 1.0
    category: Category = Category.OTHER
    urgency: Urgency = Urgency.NORMAL
    recording_dir: str = "/var/spool/asterisk/recording"
    settle_seconds: int = 10
    sweep_dir: str = ""

    @property
    def dir_here(self) -> str:
        """The recording directory as nohold sees it."""
        return self.sweep_dir or self.recording_dir


@dataclass(frozen=True)
class AfterHoursSettings:
    enabled: bool = False
    calendar: str = ""
    trunks: tuple[Trunk, ...] = (Trunk("partner"),)
    ring_timeout: int = 30
    headers: tuple[str, ...] = tuple(HEADERS)
    identify: bool = False
    app: str = "nohold-afterhours"
    prompt: str = "partner_intro"
    unavailable_prompt: str = "partner_unavailable"
    alerted_prompt: str = "partner_alerted"
    thanks_prompt: str = "partner_thanks"
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)


def _trunks(t: Table) -> tuple[Trunk, ...]:
    raw = t.get("trunks", list, ["partner"])
    if not 1 <= len(raw) <= 2:
        raise ConfigError(f"{t.key('trunks')} = {raw!r}: one or two PJSIP endpoints "
                          "(the second is tried when the first fails)")
    trunks = []
    for value in raw:
        m = TRUNK.match(value) if isinstance(value, str) else None
        if m is None:
            raise ConfigError(f"{t.key('trunks')}: {value!r} is not a PJSIP endpoint name "
                              "(letters, digits, _ . -), optionally exten@endpoint")
        trunks.append(Trunk(m["endpoint"], m["exten"] or ""))
    if len({tr.dial_string for tr in trunks}) != len(trunks):
        raise ConfigError(f"{t.key('trunks')} = {raw!r}: the same trunk twice")
    return tuple(trunks)


def _headers(t: Table) -> tuple[str, ...]:
    raw = t.get("headers", list, list(HEADERS))
    for value in raw:
        if value not in HEADERS:
            raise ConfigError(f"{t.key('headers')}: {value!r} is not a header nohold "
                              f"sends; allowed: {', '.join(HEADERS)}")
    return tuple(k for k in HEADERS if k in raw)


def _voicemail(t: Table) -> VoicemailSettings:
    vm = VoicemailSettings(
        max_seconds=t.integer("max_seconds", 120, 10, 600),
        silence_seconds=t.integer("silence_seconds", 4, 2, 30),
        min_seconds=bounded(t, "min_seconds", 1.0, 0.0, 10.0),
        category=Category(choice(t, "category", "other", tuple(c.value for c in Category))),
        urgency=Urgency(choice(t, "urgency", "normal", tuple(u.value for u in Urgency))),
        recording_dir=absolute_path(t, "recording_dir", "/var/spool/asterisk/recording"),
        settle_seconds=t.integer("settle_seconds", 10, 1, 300),
        sweep_dir=absolute_path(t, "sweep_dir", "", empty_ok=True),
    )
    t.done()
    return vm


def parse(t: Table, env: Mapping[str, str]) -> AfterHoursSettings:
    settings = AfterHoursSettings(
        enabled=t.get("enabled", bool, False),
        calendar=matching(t, "calendar", "", CALENDAR_NAME,
                          "a calendar name ([calendar.<name>]: a-z, 0-9, _ or -) or \"\""),
        trunks=_trunks(t),
        ring_timeout=t.integer("ring_timeout", 30, 5, 300),
        headers=_headers(t),
        identify=t.get("identify", bool, False),
        app=matching(t, "app", "nohold-afterhours", DIALPLAN_NAME, "an ARI application name"),
        **{name: t.get(name, str, getattr(AfterHoursSettings, name)) for name in PROMPTS},
        voicemail=_voicemail(t.table("voicemail")),
    )
    t.done()
    return settings


def check(after: AfterHoursSettings, s: Settings) -> None:
    if not after.enabled:
        return
    if after.app == s.ari.app:
        raise ConfigError(f"afterhours.app = {after.app!r} is the IVR's app (ari.app): "
                          "give the voice message its own application")
    calendar = s.sections.get("calendar")
    names = set(getattr(calendar, "calendars", {}) or {})
    if after.calendar and names and after.calendar not in names:
        raise ConfigError(f"afterhours.calendar = {after.calendar!r}: no such calendar; "
                          f"defined: {', '.join(sorted(names))}")
    for name in PROMPTS:
        check_prompt_known(s, getattr(after, name), f"afterhours.{name}")


SECTION = Section("afterhours", parse, check)
