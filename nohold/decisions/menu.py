"""What the IVR does with one key press (or none). Pure: no I/O, no clock.

The caller is never looped forever: invalid or missing input is repeated at most
`max_repeats` times in the whole call, and a bounded number of menu hops is
allowed, after which a person takes over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nohold.decisions.routes import Route

MAX_MENU_HOPS = 8
DTMF_KEYS = frozenset("0123456789*#")


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
class GoToMenu:
    menu: str

    def __str__(self) -> str:
        return f"menu:{self.menu}"


@dataclass(frozen=True)
class Leave:
    """Leave the IVR for a queue, a person or a dialplan location."""

    route: Route
    identify: bool = False

    def __str__(self) -> str:
        return f"leave:{self.route}" + (" identify" if self.identify else "")


@dataclass(frozen=True)
class Repeat:
    """Play the same menu again, after the 'invalid' prompt when a wrong key was pressed."""

    say_invalid: bool

    def __str__(self) -> str:
        return "repeat:invalid" if self.say_invalid else "repeat:no_input"


@dataclass(frozen=True)
class Fallback:
    """Give up on the menu: a person takes the call."""

    reason: str

    def __str__(self) -> str:
        return "fallback"


Decision = GoToMenu | Leave | Repeat | Fallback


@dataclass(frozen=True)
class MenuProgress:
    """How the call has gone so far in the menus."""

    failures: int = 0
    hops: int = 0

    def failed(self) -> MenuProgress:
        return MenuProgress(self.failures + 1, self.hops)

    def hopped(self) -> MenuProgress:
        return MenuProgress(self.failures, self.hops + 1)


def decide(
    menu: Menu, key: str | None, progress: MenuProgress, max_repeats: int
) -> tuple[Decision, MenuProgress]:
    """`key` is the DTMF key pressed, or None when the caller pressed nothing in time."""
    option = menu.options.get(key) if key is not None else None
    if option is None:
        progress = progress.failed()
        if progress.failures > max_repeats:
            reason = "no input" if key is None else f"invalid key {key!r}"
            return Fallback(f"{reason} after {max_repeats} repeats"), progress
        return Repeat(say_invalid=key is not None), progress
    if option.route.kind == "menu":
        progress = progress.hopped()
        if progress.hops > MAX_MENU_HOPS:
            return Fallback(f"more than {MAX_MENU_HOPS} menu changes"), progress
        return GoToMenu(option.route.target), progress
    return Leave(option.route, identify=option.identify), progress


def digits_valid(entered: str, bounds: tuple[int, int]) -> bool:
    """Identification input: digits only, within the configured length."""
    low, high = bounds
    return entered.isdigit() and low <= len(entered) <= high


def read_stasis_args(
    args: list[str], menus: set[str], default: str
) -> tuple[str, str, str | None]:
    """Stasis(app,<menu>,<linkedid>) -> (menu, linkedid or "", warning or None)."""
    match args:
        case [] | [""]:
            return default, "", None
        case [menu, call_id] if (menu in menus or menu == "") and call_id:
            return menu or default, call_id, None
        case [menu] | [menu, ""] if menu in menus:
            return menu, "", None
        case _:
            return default, "", f"unknown Stasis arguments {args!r}; starting in {default!r}"
