"""The IVR's `[ivr]` section: menus, repeats, identification. Read once at start.

Menus default to the documented two-level menu (fault / billing / operator), so
a fresh install answers calls sensibly before the admin writes a single menu.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nohold.config import (
    ConfigError,
    Section,
    Settings,
    Table,
    bounded,
    check_prompt_known,
    choice,
    digits_range,
    route,
)
from nohold.decisions.menu import DTMF_KEYS, Menu, MenuOption
from nohold.decisions.routes import Route, parse_route

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


@dataclass(frozen=True)
class IdentificationSettings:
    customer_number_prompt: str = "customer_number"
    customer_number_digits: tuple[int, int] = (4, 12)
    second_factor_prompt: str = "second_factor"
    second_factor_digits: tuple[int, int] = (2, 8)


# Where a caller goes whose notice Asterisk could not play, even on a retry:
# "fallback" (ivr.fallback, a person or a queue) or "continue" (on into the menu).
# "fallback" by default: a notice Asterisk cannot open usually means none of the
# prompts can be opened (a wrong prompts.asterisk_dir), so the menu would be
# silent too, and a person can tell the caller about the recording themselves.
NOT_TOLD_CHOICES = ("fallback", "continue")


@dataclass(frozen=True)
class IvrSettings:
    start_menu: str = "main"
    max_repeats: int = 2
    input_timeout: float = 5.0
    invalid_prompt: str = "invalid"
    transfer_prompt: str = "transferring"
    fallback: Route = field(default_factory=lambda: parse_route("person:operator"))
    not_told: str = "fallback"
    menus: Mapping[str, Menu] = field(default_factory=dict)
    identification: IdentificationSettings = field(default_factory=IdentificationSettings)


def parse_ivr(t: Table, env: Mapping[str, str]) -> IvrSettings:
    menus_table = t.table("menus")
    raw_menus = menus_table.data or DEFAULT_MENUS
    menus: dict[str, Menu] = {}
    for name in list(raw_menus):
        menus_table.used.add(name)
        m = Table(raw_menus[name], menus_table.key(name))
        options: dict[str, MenuOption] = {}
        ot = m.table("options")
        for key in list(ot.data):
            ot.used.add(key)
            if key not in DTMF_KEYS:
                raise ConfigError(f"{ot.key(key)}: a menu key is one of 0-9, * or #")
            value = ot.data[key]
            if isinstance(value, dict):
                opt = Table(value, ot.key(key))
                where = route(opt, "route", opt.get("route", str, ""))
                options[key] = MenuOption(where, identify=opt.get("identify", bool, False))
                opt.done()
            else:
                options[key] = MenuOption(route(ot, key, value))
        ot.done()
        if not options:
            raise ConfigError(f"{m.key('options')}: a menu needs at least one option")
        menus[name] = Menu(name=name, prompt=m.get("prompt", str, f"{name}_menu"), options=options)
        m.done()
    menus_table.done()

    it = t.table("identification")
    ident = IdentificationSettings(
        customer_number_prompt=it.get("customer_number_prompt", str, "customer_number"),
        customer_number_digits=digits_range(it, "customer_number_digits", (4, 12)),
        second_factor_prompt=it.get("second_factor_prompt", str, "second_factor"),
        second_factor_digits=digits_range(it, "second_factor_digits", (2, 8)),
    )
    it.done()

    ivr = IvrSettings(
        start_menu=t.get("start_menu", str, "main"),
        max_repeats=t.integer("max_repeats", 2, 0, 5),
        input_timeout=bounded(t, "input_timeout", 5.0, 1.0, 60.0),
        invalid_prompt=t.get("invalid_prompt", str, "invalid"),
        transfer_prompt=t.get("transfer_prompt", str, "transferring"),
        fallback=route(t, "fallback", t.get("fallback", str, "person:operator")),
        not_told=choice(t, "not_told", "fallback", NOT_TOLD_CHOICES),
        menus=menus,
        identification=ident,
    )
    t.done()
    return ivr


def check_ivr(ivr: IvrSettings, s: Settings) -> None:
    if ivr.start_menu not in ivr.menus:
        raise ConfigError(
            f"ivr.start_menu = {ivr.start_menu!r}: no such menu; defined: {', '.join(ivr.menus)}"
        )
    if ivr.fallback.kind == "menu":
        raise ConfigError(
            f"ivr.fallback = {ivr.fallback}: the fallback must reach a person or a queue, "
            "never another menu"
        )
    needed = {"ivr.invalid_prompt": ivr.invalid_prompt,
              "ivr.transfer_prompt": ivr.transfer_prompt}
    for menu in ivr.menus.values():
        needed[f"ivr.menus.{menu.name}.prompt"] = menu.prompt
        for key, opt in menu.options.items():
            if opt.route.kind == "menu" and opt.route.target not in ivr.menus:
                raise ConfigError(
                    f"ivr.menus.{menu.name}.options.{key} = {opt.route}: no menu "
                    f"{opt.route.target!r}; defined: {', '.join(ivr.menus)}"
                )
            if opt.identify and opt.route.kind == "menu":
                raise ConfigError(
                    f"ivr.menus.{menu.name}.options.{key}: identify applies to routes that "
                    "leave the IVR (queue, person, dialplan), not to menus"
                )
    # Checked even when no option identifies yet: turning one on later must not
    # meet a prompt that was never there.
    ident = ivr.identification
    needed["ivr.identification.customer_number_prompt"] = ident.customer_number_prompt
    needed["ivr.identification.second_factor_prompt"] = ident.second_factor_prompt
    for used_by, prompt in sorted(needed.items()):
        check_prompt_known(s, prompt, used_by)


SECTION = Section("ivr", parse_ivr, check_ivr)
