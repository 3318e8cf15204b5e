"""Typed settings: defaults < TOML file < conf.d/*.toml < environment, validated once.

Every error names the key, the bad value and what is allowed. Unknown keys are
errors: a typo in a menu option must not silently become "press 1 for nothing".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nohold.decisions.peers import LOOPBACK, Network, parse_networks
from nohold.decisions.routes import Route, RouteError, parse_route


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
}

DTMF_KEYS = set("0123456789*#")
_PROMPT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088"
    user: str = "nohold"
    password: str = ""
    app: str = "nohold-ivr"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:////var/lib/nohold/nohold.db"


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


@dataclass(frozen=True)
class MenuOption:
    route: Route
    identify: bool = False


@dataclass(frozen=True)
class Menu:
    name: str
    prompt: str
    options: Mapping[str, MenuOption]


@dataclass(frozen=True)
class IdentificationSettings:
    customer_number_prompt: str = "customer_number"
    customer_number_digits: tuple[int, int] = (4, 12)
    second_factor_prompt: str = "second_factor"
    second_factor_digits: tuple[int, int] = (2, 8)


@dataclass(frozen=True)
class IvrSettings:
    start_menu: str = "main"
    max_repeats: int = 2
    input_timeout: float = 5.0
    invalid_prompt: str = "invalid"
    transfer_prompt: str = "transferring"
    fallback: Route = field(default_factory=lambda: parse_route("person:operator"))
    menus: Mapping[str, Menu] = field(default_factory=dict)
    identification: IdentificationSettings = field(default_factory=IdentificationSettings)


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
    ivr: IvrSettings
    routes: RouteSettings
    agi: AgiSettings = field(default_factory=AgiSettings)
    source: str = "built-in defaults"


DEFAULT_MENUS: dict[str, Any] = {
    "main": {
        "prompt": "main_menu",
        "options": {"1": "queue:tech", "2": "menu:billing", "3": "person:operator"},
    },
    "billing": {
        "prompt": "billing_menu",
        "options": {"1": "queue:billing", "0": "menu:main"},
    },
}

ENV_OVERRIDES = {
    "NOHOLD_ARI_URL": ("ari", "url"),
    "NOHOLD_ARI_USER": ("ari", "user"),
    "NOHOLD_ARI_PASSWORD": ("ari", "password"),
    "NOHOLD_DATABASE_URL": ("database", "url"),
}


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
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
    return parse_settings(raw, source=" < ".join(sources))


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


class _Table:
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

    def table(self, name: str) -> _Table:
        self.used.add(name)
        return _Table(self.data.get(name, {}), self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used)) or "(none)"
            raise ConfigError(
                f"unknown key {self.key(unknown[0])!s} = {self.data[unknown[0]]!r}; "
                f"allowed in [{self.where or 'top level'}]: {allowed}"
            )


def _bounded(t: _Table, name: str, default: float, low: float, high: float) -> float:
    value = t.get(name, float, default)
    if not low <= value <= high:
        raise ConfigError(f"{t.key(name)} = {value!r}: must be between {low} and {high}")
    return float(value)


def _choice(t: _Table, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = t.get(name, str, default)
    if value not in allowed:
        raise ConfigError(f"{t.key(name)} = {value!r}: allowed values are {', '.join(allowed)}")
    return str(value)


def _digits_range(t: _Table, name: str, default: tuple[int, int]) -> tuple[int, int]:
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


def _parse_route(t: _Table, name: str, value: Any) -> Route:
    if not isinstance(value, str):
        raise ConfigError(f"{t.key(name)} = {value!r}: expected a route string")
    try:
        return parse_route(value)
    except RouteError as exc:
        raise ConfigError(f"{t.key(name)} = {value!r}: {exc}") from None


def parse_settings(raw: Mapping[str, Any], source: str = "built-in defaults") -> Settings:
    top = _Table(dict(raw), "")

    t = top.table("ari")
    ari = AriSettings(
        url=t.get("url", str, AriSettings.url),
        user=t.get("user", str, AriSettings.user),
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

    t = top.table("database")
    database = DatabaseSettings(url=t.get("url", str, DatabaseSettings.url))
    t.done()
    if not database.url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            f"database.url = {database.url!r}: use sqlite:///path or postgresql://user@host/db"
        )

    t = top.table("logging")
    logging_settings = LoggingSettings(
        level=_choice(t, "level", "info", ("debug", "info", "warning", "error")),
        format=_choice(t, "format", "logfmt", ("logfmt", "json")),
    )
    t.done()

    prompts = _parse_prompts(top.table("prompts"))

    t = top.table("notice")
    notice = NoticeSettings(
        prompt=t.get("prompt", str, NoticeSettings.prompt),
        version=t.get("version", str, NoticeSettings.version),
        max_seconds=_bounded(t, "max_seconds", NoticeSettings.max_seconds, 0.5, 60.0),
    )
    t.done()

    t = top.table("routes")
    routes = RouteSettings(
        queue_context=t.get("queue_context", str, RouteSettings.queue_context),
        person_context=t.get("person_context", str, RouteSettings.person_context),
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
        host=t.get("host", str, "127.0.0.1"),
        port=int(_bounded(t, "port", 4573, 0, 65535)),
        allow=networks,
        command_timeout=_bounded(t, "command_timeout", AgiSettings.command_timeout, 0.5, 60.0),
    )
    t.done()

    ivr = _parse_ivr(top.table("ivr"))
    top.done()

    settings = Settings(ari, database, logging_settings, prompts, notice, ivr, routes, agi,
                        source)
    _cross_check(settings)
    return settings


def _parse_prompts(t: _Table) -> PromptSettings:
    texts = dict(DEFAULT_PROMPT_TEXTS)
    tt = t.table("texts")
    for name in list(tt.data):
        if not _PROMPT_NAME.match(name):
            raise ConfigError(f"{tt.key(name)}: prompt names are lower-case letters, digits, '_'")
        texts[name] = tt.get(name, str, "")
        if not texts[name].strip():
            raise ConfigError(f"{tt.key(name)} is empty: give the words to say")
    tt.done()
    files: dict[str, Path] = {}
    tf = t.table("files")
    for name in list(tf.data):
        if not _PROMPT_NAME.match(name):
            raise ConfigError(f"{tf.key(name)}: prompt names are lower-case letters, digits, '_'")
        path = Path(tf.get(name, str, ""))
        if path.suffix not in (".wav", ".gsm"):
            raise ConfigError(f"{tf.key(name)} = {str(path)!r}: must be a .wav or .gsm file")
        files[name] = path
    tf.done()
    settings = PromptSettings(
        language=t.get("language", str, "en"),
        dir=Path(t.get("dir", str, str(PromptSettings.dir))),
        asterisk_dir=t.get("asterisk_dir", str, ""),
        texts=texts,
        files=files,
    )
    t.done()
    if not re.match(r"^[a-z]{2,3}([-_][A-Za-z0-9]+)?$", settings.language):
        raise ConfigError(
            f"prompts.language = {settings.language!r}: an espeak-ng voice such as 'en' or 'pl'"
        )
    return settings


def _parse_ivr(t: _Table) -> IvrSettings:
    menus_table = t.table("menus")
    raw_menus = menus_table.data or DEFAULT_MENUS
    menus: dict[str, Menu] = {}
    for name in list(raw_menus):
        menus_table.used.add(name)
        m = _Table(raw_menus[name], menus_table.key(name))
        options: dict[str, MenuOption] = {}
        ot = m.table("options")
        for key in list(ot.data):
            ot.used.add(key)
            if key not in DTMF_KEYS:
                raise ConfigError(f"{ot.key(key)}: a menu key is one of 0-9, * or #")
            value = ot.data[key]
            if isinstance(value, dict):
                opt = _Table(value, ot.key(key))
                route = _parse_route(opt, "route", opt.get("route", str, ""))
                options[key] = MenuOption(route, identify=opt.get("identify", bool, False))
                opt.done()
            else:
                options[key] = MenuOption(_parse_route(ot, key, value))
        ot.done()
        if not options:
            raise ConfigError(f"{m.key('options')}: a menu needs at least one option")
        menus[name] = Menu(name=name, prompt=m.get("prompt", str, f"{name}_menu"), options=options)
        m.done()
    menus_table.done()

    it = t.table("identification")
    ident = IdentificationSettings(
        customer_number_prompt=it.get("customer_number_prompt", str, "customer_number"),
        customer_number_digits=_digits_range(it, "customer_number_digits", (4, 12)),
        second_factor_prompt=it.get("second_factor_prompt", str, "second_factor"),
        second_factor_digits=_digits_range(it, "second_factor_digits", (2, 8)),
    )
    it.done()

    ivr = IvrSettings(
        start_menu=t.get("start_menu", str, "main"),
        max_repeats=int(_bounded(t, "max_repeats", 2, 0, 5)),
        input_timeout=_bounded(t, "input_timeout", 5.0, 1.0, 60.0),
        invalid_prompt=t.get("invalid_prompt", str, "invalid"),
        transfer_prompt=t.get("transfer_prompt", str, "transferring"),
        fallback=_parse_route(t, "fallback", t.get("fallback", str, "person:operator")),
        menus=menus,
        identification=ident,
    )
    t.done()
    return ivr


def _cross_check(s: Settings) -> None:
    ivr = s.ivr
    if ivr.start_menu not in ivr.menus:
        raise ConfigError(
            f"ivr.start_menu = {ivr.start_menu!r}: no such menu; defined: {', '.join(ivr.menus)}"
        )
    if ivr.fallback.kind == "menu":
        raise ConfigError(
            f"ivr.fallback = {ivr.fallback}: the fallback must reach a person or a queue, "
            "never another menu"
        )
    needed = {s.notice.prompt, ivr.invalid_prompt, ivr.transfer_prompt}
    for menu in ivr.menus.values():
        needed.add(menu.prompt)
        for key, opt in menu.options.items():
            if opt.route.kind == "menu" and opt.route.target not in ivr.menus:
                raise ConfigError(
                    f"ivr.menus.{menu.name}.options.{key} = {opt.route}: no menu "
                    f"{opt.route.target!r}; defined: {', '.join(ivr.menus)}"
                )
            if opt.identify:
                if opt.route.kind == "menu":
                    raise ConfigError(
                        f"ivr.menus.{menu.name}.options.{key}: identify applies to routes that "
                        "leave the IVR (queue, person, dialplan), not to menus"
                    )
                needed.add(ivr.identification.customer_number_prompt)
                needed.add(ivr.identification.second_factor_prompt)
    known = set(s.prompts.names())
    for prompt in sorted(needed):
        if not _PROMPT_NAME.match(prompt):
            raise ConfigError(f"prompt name {prompt!r}: lower-case letters, digits, '_' only")
        if prompt not in known:
            raise ConfigError(
                f"prompt {prompt!r} is used but has neither [prompts.texts].{prompt} "
                f"nor [prompts.files].{prompt}"
            )
