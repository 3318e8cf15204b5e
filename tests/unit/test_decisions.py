import pytest

from nohold.ari_apps.ivr.settings import IvrSettings
from nohold.decisions.menu import (
    MAX_MENU_HOPS,
    Fallback,
    GoToMenu,
    Leave,
    MenuProgress,
    Repeat,
    decide,
    digits_valid,
    read_stasis_args,
)
from nohold.decisions.routes import Route, RouteError, parse_route
from nohold.registry import parse_settings

MENUS = parse_settings({}).section(IvrSettings).menus
MAIN = MENUS["main"]


def test_valid_key_leaves_for_its_route():
    decision, progress = decide(MAIN, "1", MenuProgress(), max_repeats=2)
    assert decision == Leave(parse_route("queue:tech"))
    assert progress == MenuProgress()


def test_menu_key_changes_menu_and_counts_a_hop():
    decision, progress = decide(MAIN, "2", MenuProgress(), max_repeats=2)
    assert decision == GoToMenu("billing")
    assert progress.hops == 1


def test_invalid_input_repeats_twice_then_a_person_takes_over():
    progress = MenuProgress()
    seen = []
    for key in ["9", None, "*"]:
        decision, progress = decide(MAIN, key, progress, max_repeats=2)
        seen.append(decision)
    assert seen[0] == Repeat(say_invalid=True)
    assert seen[1] == Repeat(say_invalid=False)  # silence: just repeat the menu
    assert isinstance(seen[2], Fallback) and "invalid key '*'" in seen[2].reason


def test_failures_count_across_menus_so_no_endless_loop():
    progress = MenuProgress(failures=2)
    decision, _ = decide(MENUS["billing"], None, progress, max_repeats=2)
    assert isinstance(decision, Fallback)


def test_menu_hopping_is_bounded():
    progress = MenuProgress(hops=MAX_MENU_HOPS)
    decision, _ = decide(MAIN, "2", progress, max_repeats=2)
    assert isinstance(decision, Fallback)


def test_zero_repeats_means_first_failure_goes_to_a_person():
    decision, _ = decide(MAIN, None, MenuProgress(), max_repeats=0)
    assert isinstance(decision, Fallback)


@pytest.mark.parametrize(("entered", "ok"), [("1234", True), ("123", False), ("12a4", False),
                                            ("", False), ("1" * 12, True), ("1" * 13, False)])
def test_identification_digits(entered, ok):
    assert digits_valid(entered, (4, 12)) is ok


def test_stasis_args_give_menu_and_call_id():
    menus = {"main", "billing"}
    assert read_stasis_args([], menus, "main") == ("main", "", None)
    assert read_stasis_args([""], menus, "main") == ("main", "", None)
    assert read_stasis_args(["", "1700.1"], menus, "main") == ("main", "1700.1", None)
    assert read_stasis_args(["billing", "1700.1"], menus, "main") == ("billing", "1700.1", None)
    assert read_stasis_args(["billing"], menus, "main") == ("billing", "", None)
    menu, call_id, warning = read_stasis_args(["x", "y", "z"], menus, "main")
    assert (menu, call_id) == ("main", "") and "unknown Stasis arguments" in warning
    menu, _, warning = read_stasis_args(["nosuch", "1700.1"], menus, "main")
    assert menu == "main" and warning


def test_routes_parse_and_locate():
    assert parse_route("dialplan:ctx,100,3") == Route("dialplan", "100", "ctx", 3)
    assert parse_route("queue:tech").location("q", "p") == ("q", "tech", 1)
    assert parse_route("person:operator").location("q", "p") == ("p", "operator", 1)
    for bad in ["queue:", "queue:a b", "dialplan:ctx", "dialplan:c,e,0", "nope:x", "menu"]:
        with pytest.raises(RouteError):
            parse_route(bad)
    with pytest.raises(RouteError):
        parse_route("menu:main").location("q", "p")
