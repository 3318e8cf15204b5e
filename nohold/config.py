"""Typed settings: defaults < TOML file < conf.d/*.toml < environment, validated once.

This module is the loader, the merge, the validation toolkit (`Table` and the
`bounded`/`integer`/`choice`/`route` readers) and the core sections that the
shared runtime needs (ari, database, logging, prompts, notice, routes, agi).
Each feature owns its section in its own folder and hands the loader a
`Section`; the service passes every enabled feature's sections in, so adding a
feature touches no other feature's file.

Every error names the key, the bad value and what is allowed. Unknown keys are
errors: a typo in a menu option must not silently become "press 1 for nothing".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from nohold.decisions.peers import LOOPBACK, Network, is_loopback, parse_networks
from nohold.decisions.routes import Route, RouteError, parse_route

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and how to fix it."""


DEFAULT_PROMPT_TEXTS: dict[str, str] = {
    "notice": "Example Net records this call. Details at example dot net slash privacy.",
    "main_menu": "For a fault or outage, press 1. For billing, press 2. "
    "For anything else, press 3.",
    "billing_menu": "For invoices and payments, press 1. To go back, press 0.",
    "invalid": "Sorry, that is not an option.",
    "transferring": "Connecting you now.",
    "customer_number": "Please enter your customer number, then the hash key.",
    "second_factor": "Please enter the postcode of your address, then the hash key.",
    # [callbacks]: the offer in the queue, the read-back and the promise, the agent's
    # whisper, and the information message if the agent is lost as the customer answers.
    "callback_offer": "To be called back instead of waiting, press 1. "
    "You keep your place in the queue.",
    "callback_offer_or_time": "To be called back instead of waiting, press 1. "
    "To choose a time for our call, press 2. You keep your place in the queue.",
    # Choosing a time: "We can call you back: today, between 18 and 20, press 1. ..."
    "callback_times": "We can call you back at these times.",
    "callback_today": "today",
    "callback_tomorrow": "tomorrow",
    "callback_monday": "on Monday",
    "callback_tuesday": "on Tuesday",
    "callback_wednesday": "on Wednesday",
    "callback_thursday": "on Thursday",
    "callback_friday": "on Friday",
    "callback_saturday": "on Saturday",
    "callback_sunday": "on Sunday",
    "callback_between": "between",
    "callback_and": "and",
    "callback_press": "press",
    "callback_keep_waiting": "To keep your place in the queue, press 0.",
    "callback_no_times": "Sorry, no time is free to choose. You keep your place in the queue.",
    "callback_booked": "Thank you. We will call you back",
    "callback_goodbye": "You can hang up now. Goodbye.",
    "callback_number_is": "We will call you back on",
    "callback_confirm": "If that is right, press 1. To enter another number, press 2.",
    "callback_enter_number": "Please enter the number to call you back on, "
    "then the hash key.",
    "callback_promise": "Thank you. We will call you back in about",
    "callback_minutes": "minutes. You can hang up now. Goodbye.",
    "callback_already": "You are already on our list, and you keep your place.",
    "callback_refused": "Sorry, we cannot call this number back.",
    "callback_whisper": "Callback. The customer waited",
    "callback_whisper_owner": "A callback you promised. The customer is being called now.",
    "callback_whisper_taken": ("A callback another agent promised, for you to take. "
                               "The customer is being called now."),
    "callback_info": "This is Example Net returning your call. We lost our consultant's "
    "line. We will call you again shortly.",
    "callback_not_reached": "The customer could not be reached. We will try again later.",
    # [alerts]: the voice call to the on-duty technician, around the ticket read aloud.
    "alert_intro": "This is nohold, with an alert for the technician on duty.",
    "alert_press": "To acknowledge this ticket, press 1. To hear it again, press 2.",
    "alert_acknowledged": "Acknowledged. Thank you. The other alerts are stopped. Goodbye.",
    "alert_goodbye": "The ticket is not acknowledged. We will keep alerting. Goodbye.",
    # [afterhours]: out of hours the partner call centre takes the call; when it cannot,
    # a voice message that becomes a ticket.
    "partner_intro": "Our office is closed now. Our partner will take your call.",
    "partner_unavailable": "Sorry, our partner cannot take your call right now. "
    "Please leave a message after the tone: your name, your number and what happened. "
    "Press the hash key when you are done.",
    "partner_alerted": "Thank you. Your message is recorded, and our technician on duty "
    "is being alerted now. Goodbye.",
    "partner_thanks": "Thank you. Your message is recorded. Goodbye.",
}

PROMPT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088"
    user: str = "nohold"
    password: str = ""
    app: str = "nohold-ivr"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:////var/lib/nohold/nohold.db"
    # The proof outbox (callbackdb/outbox.py); "" = beside the SQLite file, or in
    # /var/lib/nohold for PostgreSQL.
    outbox: str = ""

    @property
    def outbox_path(self) -> Path:
        if self.outbox:
            return Path(self.outbox)
        m = re.match(r"^sqlite:///(.+)$", self.url)
        if m and m.group(1) != ":memory:":
            return Path(m.group(1) + ".outbox.jsonl")
        return Path("/var/lib/nohold/proof-outbox.jsonl")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "logfmt"


@dataclass(frozen=True)
class PromptSettings:
    language: str = "en"
    dir: Path = Path("/var/lib/nohold/prompts")
    # How Asterisk names that same directory (differs when Asterisk runs in a chroot).
    asterisk_dir: str = ""
    texts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PROMPT_TEXTS))
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def asterisk_path(self) -> str:
        return self.asterisk_dir or str(self.dir)

    def names(self) -> list[str]:
        return sorted(set(self.texts) | set(self.files))


@dataclass(frozen=True)
class NoticeSettings:
    prompt: str = "notice"
    version: str = "1"
    max_seconds: float = 5.0
    # Seconds a caller waits for the claim before hearing the notice anyway.
    claim_wait: float = 1.0


@dataclass(frozen=True)
class AgiSettings:
    """The FastAGI server inside `nohold run` (agi_scripts/)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573
    # Peers that may connect; None = not set in the config (loopback only), which
    # `nohold check` tells apart from an explicit list.
    allow: tuple[Network, ...] | None = None
    # Seconds to wait for Asterisk's answer to one command (STREAM FILE: plus the notice).
    command_timeout: float = 5.0

    @property
    def allowed(self) -> tuple[Network, ...]:
        return LOOPBACK if self.allow is None else self.allow


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP API server inside `nohold run` (nohold/http_server.py), shared by every
    feature that serves requests (the agents' callbacks now, webhooks later)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8095
    # The bearer token every request must carry; $NOHOLD_HTTP_TOKEN wins over the file.
    token: str = field(default="", repr=False)


# A bearer token (RFC 6750 b64token characters), long enough not to be guessed.
HTTP_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{24,512}")


@dataclass(frozen=True)
class SmppSettings:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "nohold"
    password: str = field(default="", repr=False)
    source: str = "nohold"
    enquire_every: float = 30.0


@dataclass(frozen=True)
class SmsHttpSettings:
    """An HTTP SMS gateway: nohold POSTs {"to", "from", "text"} as JSON with a bearer
    token and takes {"id"} back; replies and delivery reports come in as webhooks."""

    url: str = ""
    token: str = field(default="", repr=False)
    source: str = "nohold"
    timeout: float = 10.0


@dataclass(frozen=True)
class SmsSettings:
    """`[sms]`: the one SMS link that nohold's features share (the technicians' alerts,
    the callers' callback SMS): the operator's SMSC over SMPP, or an HTTP gateway."""

    enabled: bool = False
    transport: str = "smpp"  # smpp | http
    smpp: SmppSettings = field(default_factory=SmppSettings)
    http: SmsHttpSettings = field(default_factory=SmsHttpSettings)


SMS_HTTP_TOKEN_ENV = "NOHOLD_SMS_HTTP_TOKEN"
# The longest any SMS link waits for its SMSC or gateway to take a message: the SMS
# outbox's leases (nohold/sms/outbox.py) are sized for it.
SMS_SEND_TIMEOUT = 15.0
_SMS_URL = re.compile(r"^https?://[A-Za-z0-9_.:\[\]-]{1,253}(/[!-~]*)?$")


SMPP_PASSWORD_ENV = "NOHOLD_SMPP_PASSWORD"
# SMPP 3.4 C-Octet strings: system_id 16 and password 9 octets with the final NUL.
_SYSTEM_ID = re.compile(r"^[!-~]{1,15}$")
_SMPP_PASSWORD = re.compile(r"^[!-~]{0,8}$")
_SMS_SOURCE = re.compile(r"^(\+?[0-9]{3,15}|[A-Za-z0-9 ._-]{1,11})$")


@dataclass(frozen=True)
class RouteSettings:
    queue_context: str = "nohold-queues"
    person_context: str = "nohold-people"


@dataclass(frozen=True)
class Settings:
    ari: AriSettings
    database: DatabaseSettings
    logging: LoggingSettings
    prompts: PromptSettings
    notice: NoticeSettings
    routes: RouteSettings
    agi: AgiSettings = field(default_factory=AgiSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    # Each feature's own settings object, by section name.
    sections: Mapping[str, object] = field(default_factory=dict)
    source: str = "built-in defaults"

    def section(self, kind: type[T]) -> T:
        """The one feature section of type `kind` (each feature has its own type)."""
        for value in self.sections.values():
            if isinstance(value, kind):
                return value
        raise KeyError(f"no config section of type {kind.__name__} was loaded")


SectionParser = Callable[["Table", Mapping[str, str]], object]
SectionCheck = Callable[[Any, Settings], None]


@dataclass(frozen=True)
class Section:
    """A feature's TOML table: `parse` reads it (unknown keys are errors: call
    table.done()), `check` validates it against the core settings afterwards."""

    name: str
    parse: SectionParser
    check: SectionCheck | None = None


ENV_OVERRIDES = {
    "NOHOLD_ARI_URL": ("ari", "url"),
    "NOHOLD_ARI_USER": ("ari", "user"),
    "NOHOLD_ARI_PASSWORD": ("ari", "password"),
    "NOHOLD_DATABASE_URL": ("database", "url"),
    # A secret kept out of the config file (e.g. systemd's EnvironmentFile or credentials).
    "NOHOLD_HTTP_TOKEN": ("http", "token"),
}


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    sections: tuple[Section, ...] = (),
) -> Settings:
    """Read, merge and validate. `path=None` means the built-in defaults only."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    sources = ["built-in defaults"]
    if path is not None:
        files = [path] + sorted((path.parent / "conf.d").glob("*.toml"))
        for file in files:
            _deep_merge(raw, _read_toml(file))
            sources.append(str(file))
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"[{section}] must be a table, got {raw[section]!r}")
            raw[section][key] = env[var]
            sources.append(f"${var}")
    return parse_settings(raw, source=" < ".join(sources), sections=sections, env=env)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


class Table:
    """One TOML table being read: tracks which keys were used so leftovers are errors."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table, got {data!r}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            kinds = (kind,) if isinstance(kind, type) else kind
            want = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.key(name)} = {value!r}: expected a {want}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number in [low, high]: 2.7 or "2" is an error, never truncated."""
        self.used.add(name)
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)} = {value!r}: expected an integer")
        if not low <= value <= high:
            raise ConfigError(f"{self.key(name)} = {value!r}: must be between {low} and {high}")
        return value

    def table(self, name: str) -> Table:
        self.used.add(name)
        return Table(self.data.get(name, {}), self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used)) or "(none)"
            raise ConfigError(
                f"unknown key {self.key(unknown[0])!s} = {self.data[unknown[0]]!r}; "
                f"allowed in [{self.where or 'top level'}]: {allowed}"
            )


def bounded(t: Table, name: str, default: float, low: float, high: float) -> float:
    value = t.get(name, float, default)
    if not low <= value <= high:
        raise ConfigError(f"{t.key(name)} = {value!r}: must be between {low} and {high}")
    return float(value)


def choice(t: Table, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = t.get(name, str, default)
    if value not in allowed:
        raise ConfigError(f"{t.key(name)} = {value!r}: allowed values are {', '.join(allowed)}")
    return str(value)


def digits_range(t: Table, name: str, default: tuple[int, int]) -> tuple[int, int]:
    value = t.get(name, list, list(default))
    if (
        len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 1 <= value[0] <= value[1] <= 32
    ):
        raise ConfigError(
            f"{t.key(name)} = {value!r}: expected [min, max] digits with 1 <= min <= max <= 32"
        )
    return (value[0], value[1])


def route(t: Table, name: str, value: Any) -> Route:
    if not isinstance(value, str):
        raise ConfigError(f"{t.key(name)} = {value!r}: expected a route string")
    try:
        return parse_route(value)
    except RouteError as exc:
        raise ConfigError(f"{t.key(name)} = {value!r}: {exc}") from None


HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")
# Asterisk context (and ARI user/app) names: no spaces, brackets, ';' or ','.
DIALPLAN_NAME = re.compile(r"^[A-Za-z0-9_+.@-]{1,79}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def matching(t: Table, name: str, default: str, pattern: re.Pattern[str], what: str) -> str:
    """A string that must match `pattern`; `what` tells the admin what is allowed."""
    value = str(t.get(name, str, default))
    if not pattern.match(value):
        raise ConfigError(f"{t.key(name)} = {value!r}: expected {what}")
    return value


def text(t: Table, name: str, default: str, max_len: int = 200) -> str:
    """Free text on one line: not blank, no control characters, bounded."""
    value = str(t.get(name, str, default))
    if not value.strip() or _CONTROL.search(value) or len(value) > max_len:
        raise ConfigError(
            f"{t.key(name)} = {value!r}: expected 1-{max_len} characters on one line"
        )
    return value


def absolute_path(t: Table, name: str, default: str, *, empty_ok: bool = False) -> str:
    value = str(t.get(name, str, default))
    if (value or not empty_ok) and not Path(value).is_absolute():
        raise ConfigError(f"{t.key(name)} = {value!r}: expected an absolute path")
    return value


def parse_settings(
    raw: Mapping[str, Any],
    source: str = "built-in defaults",
    sections: tuple[Section, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Validate `raw` (merged TOML). Top-level tables that are neither core nor one
    of `sections` are errors."""
    top = Table(dict(raw), "")

    t = top.table("ari")
    ari = AriSettings(
        url=t.get("url", str, AriSettings.url),
        user=matching(t, "user", AriSettings.user, DIALPLAN_NAME,
                      "an ari.conf user name (letters, digits, '_', '.', '@', '-')"),
        password=t.get("password", str, AriSettings.password),
        app=t.get("app", str, AriSettings.app),
    )
    t.done()
    if not re.match(r"^https?://[^/\s]+/?$", ari.url):
        raise ConfigError(
            f"ari.url = {ari.url!r}: expected http(s)://host:port of Asterisk's HTTP server "
            "(without /ari)"
        )
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", ari.app):
        raise ConfigError(f"ari.app = {ari.app!r}: letters, digits, '_', '.', '-' only")
    if _CONTROL.search(ari.password):
        raise ConfigError("ari.password contains a control character (a line break?)")

    t = top.table("database")
    database = DatabaseSettings(url=t.get("url", str, DatabaseSettings.url),
                                outbox=t.get("outbox", str, DatabaseSettings.outbox))
    t.done()
    if _CONTROL.search(database.outbox) or database.outbox.endswith("/"):
        raise ConfigError(f"database.outbox = {database.outbox!r}: a file path, e.g. "
                          "/var/lib/nohold/proof-outbox.jsonl")
    if not re.match(r"^(sqlite:///.+|postgresql(\+[a-z0-9]+)?://.+)$", database.url):
        raise ConfigError(
            f"database.url = {database.url!r}: use sqlite:///path or postgresql://user@host/db"
        )

    t = top.table("logging")
    logging_settings = LoggingSettings(
        level=choice(t, "level", "info", ("debug", "info", "warning", "error")),
        format=choice(t, "format", "logfmt", ("logfmt", "json")),
    )
    t.done()

    prompts = _parse_prompts(top.table("prompts"))

    t = top.table("notice")
    notice = NoticeSettings(
        prompt=t.get("prompt", str, NoticeSettings.prompt),
        version=text(t, "version", NoticeSettings.version, max_len=32),
        max_seconds=bounded(t, "max_seconds", NoticeSettings.max_seconds, 0.5, 60.0),
        # Below 0.1 s a healthy database would lose races it should win (two notices);
        # above 5 s the caller hears minutes of silence behind a locked database.
        claim_wait=bounded(t, "claim_wait", NoticeSettings.claim_wait, 0.1, 5.0),
    )
    t.done()

    t = top.table("routes")
    routes = RouteSettings(
        queue_context=matching(t, "queue_context", RouteSettings.queue_context, DIALPLAN_NAME,
                               "a dialplan context name (letters, digits, '_', '-', '.')"),
        person_context=matching(t, "person_context", RouteSettings.person_context,
                                DIALPLAN_NAME,
                                "a dialplan context name (letters, digits, '_', '-', '.')"),
    )
    t.done()

    t = top.table("agi")
    allow = t.get("allow", list, None)
    try:
        networks = None if allow is None else parse_networks(allow)
    except ValueError as exc:
        raise ConfigError(f"agi.allow = {allow!r}: {exc}") from None
    agi = AgiSettings(
        enabled=t.get("enabled", bool, True),
        host=matching(t, "host", "127.0.0.1", HOST, "an IP address or host name to listen on"),
        port=t.integer("port", 4573, 1, 65535),
        allow=networks,
        command_timeout=bounded(t, "command_timeout", AgiSettings.command_timeout, 0.5, 60.0),
    )
    t.done()

    http = _parse_http(top.table("http"), agi, env or {})
    sms = _parse_sms(top.table("sms"), env or {})

    parsed = {sec.name: sec.parse(top.table(sec.name), env or {}) for sec in sections}
    top.done()

    if sms.enabled and sms.transport == "http" and not http.enabled:
        raise ConfigError("sms.transport = \"http\" needs [http] enabled = true: the "
                          "gateway delivers replies and delivery reports to "
                          "POST /v1/sms/inbound")
    settings = Settings(ari, database, logging_settings, prompts, notice, routes, agi, http,
                        sms, parsed, source)
    check_prompt_known(settings, notice.prompt, "notice.prompt")
    for sec in sections:
        if sec.check is not None:
            sec.check(parsed[sec.name], settings)
    return settings


def _parse_sms(t: Table, env: Mapping[str, str]) -> SmsSettings:
    enabled = t.get("enabled", bool, False)
    s = t.table("smpp")
    password = env.get(SMPP_PASSWORD_ENV) or s.get("password", str, "")
    s.used.add("password")
    if not _SMPP_PASSWORD.match(password):
        raise ConfigError(f"{s.key('password')} (or ${SMPP_PASSWORD_ENV}): at most 8 "
                          "printable characters without blanks (SMPP 3.4)")
    smpp = SmppSettings(
        host=matching(s, "host", "127.0.0.1", HOST, "a host name or address"),
        port=s.integer("port", 2775, 1, 65535),
        system_id=matching(s, "system_id", "nohold", _SYSTEM_ID,
                           "1-15 printable characters without blanks (SMPP 3.4)"),
        password=password,
        source=matching(s, "source", "nohold", _SMS_SOURCE,
                        "a number (3-15 digits, + allowed) or 1-11 letters and digits"),
        enquire_every=bounded(s, "enquire_every", 30.0, 1.0, 600.0))
    s.done()
    transport = choice(t, "transport", "smpp", ("smpp", "http"))
    http = _parse_sms_http(t.table("http"), env, required=enabled and transport == "http")
    t.done()
    return SmsSettings(enabled, transport, smpp, http)


def _parse_sms_http(t: Table, env: Mapping[str, str], required: bool) -> SmsHttpSettings:
    url = t.get("url", str, "")
    if (url or required) and not _SMS_URL.match(url):
        raise ConfigError(f"{t.key('url')} = {url!r}: the gateway's address, "
                          "https://host[:port]/path (http:// only on this host)")
    if url.startswith("http://") and not is_loopback(urlsplit(url).hostname or ""):
        raise ConfigError(f"{t.key('url')} = {url!r}: plain http would send the token and "
                          "the customers' numbers in clear; use https:// (http:// only to "
                          "this host)")
    token = env.get(SMS_HTTP_TOKEN_ENV) or t.get("token", str, "")
    t.used.add("token")
    if required and not token:
        raise ConfigError(f"{t.key('token')} (or ${SMS_HTTP_TOKEN_ENV}): the gateway's "
                          "bearer token")
    settings = SmsHttpSettings(
        url=url, token=token,
        source=matching(t, "source", "nohold", _SMS_SOURCE,
                        "a number (3-15 digits, + allowed) or 1-11 letters and digits"),
        timeout=bounded(t, "timeout", 10.0, 1.0, SMS_SEND_TIMEOUT))
    t.done()
    return settings


def _parse_http(t: Table, agi: AgiSettings, env: Mapping[str, str]) -> HttpSettings:
    token = t.data.get("token", "")
    where = "$NOHOLD_HTTP_TOKEN" if env.get("NOHOLD_HTTP_TOKEN") else "http.token"
    t.used.add("token")
    # Never echo the token: errors name its length and what is allowed.
    if not isinstance(token, str):
        raise ConfigError(f"{where}: expected a string")
    http = HttpSettings(
        enabled=t.get("enabled", bool, HttpSettings.enabled),
        host=matching(t, "host", HttpSettings.host, HOST,
                      "an IP address or host name to listen on"),
        port=t.integer("port", HttpSettings.port, 1, 65535),
        token=token,
    )
    t.done()
    if (token or http.enabled) and not HTTP_TOKEN.fullmatch(token):
        got = f"{len(token)} characters" if token else "nothing"
        other = " with other characters" if 24 <= len(token) <= 512 else ""
        raise ConfigError(
            f"{where}: expected a token of 24-512 letters, digits or ._~+/=- (got {got}"
            f"{other}); "
            + ("the HTTP API needs one to let anyone in: " if http.enabled else "")
            + "generate one with `openssl rand -hex 32`")
    if (http.enabled and agi.enabled and http.port == agi.port
            and (http.host == agi.host or "0.0.0.0" in (http.host, agi.host))):
        raise ConfigError(f"http.port = {http.port}: [agi] listens on that port too; "
                          "choose another")
    return http


def check_prompt_known(settings: Settings, prompt: str, used_by: str) -> None:
    """A prompt a feature plays must have words to speak or a recorded file."""
    if not PROMPT_NAME.match(prompt):
        raise ConfigError(f"{used_by} = {prompt!r}: lower-case letters, digits, '_' only")
    if prompt not in settings.prompts.names():
        raise ConfigError(
            f"prompt {prompt!r} is used but has neither [prompts.texts].{prompt} "
            f"nor [prompts.files].{prompt}"
        )


def _parse_prompts(t: Table) -> PromptSettings:
    texts = dict(DEFAULT_PROMPT_TEXTS)
    tt = t.table("texts")
    for name in list(tt.data):
        if not PROMPT_NAME.match(name):
            raise ConfigError(f"{tt.key(name)}: prompt names are lower-case letters, digits, '_'")
        texts[name] = tt.get(name, str, "")
        if not texts[name].strip():
            raise ConfigError(f"{tt.key(name)} is empty: give the words to say")
    tt.done()
    files: dict[str, Path] = {}
    tf = t.table("files")
    for name in list(tf.data):
        if not PROMPT_NAME.match(name):
            raise ConfigError(f"{tf.key(name)}: prompt names are lower-case letters, digits, '_'")
        path = Path(tf.get(name, str, ""))
        if path.suffix not in (".wav", ".gsm"):
            raise ConfigError(f"{tf.key(name)} = {str(path)!r}: must be a .wav or .gsm file")
        files[name] = path
    tf.done()
    settings = PromptSettings(
        language=t.get("language", str, "en"),
        dir=Path(absolute_path(t, "dir", str(PromptSettings.dir))),
        asterisk_dir=absolute_path(t, "asterisk_dir", "", empty_ok=True),
        texts=texts,
        files=files,
    )
    t.done()
    if not re.match(r"^[a-z]{2,3}([-_][A-Za-z0-9]+)?$", settings.language):
        raise ConfigError(
            f"prompts.language = {settings.language!r}: an espeak-ng voice such as 'en' or 'pl'"
        )
    return settings
