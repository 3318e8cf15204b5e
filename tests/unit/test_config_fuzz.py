"""Config fuzz: hundreds of generated bad configs, each refused with a ConfigError that
names the key. No traceback (any other exception), and no invalid value accepted.

Every case is invalid by construction: a wrong type, an out-of-range or malformed
value, an unknown key or table, a scalar where a table belongs. Generated from a
seed, so a failure names a case that reproduces.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from nohold.config import ConfigError
from nohold.registry import parse_settings

NOT_STR = [1, 2.5, True, [], {"x": 1}]
NOT_INT = [2.7, "2", True, [], {"x": 1}, math.nan]
NOT_FLOAT = ["5", True, [], {"x": 1}, math.nan, math.inf, -math.inf]
NOT_BOOL = ["yes", 1, 0, 1.0, [], {"x": 1}]
NAME_JUNK = ["", " ", "a b", "x]y", "x;y", "a\nb", "é" * 3, "x" * 200]

# (section path, key): invalid values. Paths are nested tables.
SPECS: dict[tuple[tuple[str, ...], str], list[Any]] = {
    (("ari",), "url"): [*NOT_STR, "", "localhost:8088", "http://h:1/ari", "ftp://h", "http://"],
    (("ari",), "user"): [*NOT_STR, *NAME_JUNK[:5]],
    (("ari",), "password"): [*NOT_STR, "a\nb"],
    (("ari",), "app"): [*NOT_STR, *NAME_JUNK],
    (("database",), "url"): [*NOT_STR, "", "mysql://x", "sqlite", "sqlitefoo:///x",
                             "postgres", "/var/lib/x.db"],
    (("logging",), "level"): [*NOT_STR, "loud", "INFO ", ""],
    (("logging",), "format"): [*NOT_STR, "xml", ""],
    (("prompts",), "language"): [*NOT_STR, "", "english!", "e"],
    (("prompts",), "dir"): [*NOT_STR, "", "relative/dir"],
    (("prompts",), "asterisk_dir"): [*NOT_STR, "relative/dir"],
    (("prompts", "texts"), "notice"): [*NOT_STR, "", "   "],
    (("prompts", "files"), "notice"): [*NOT_STR, "", "/x/notice.mp3", "/x/notice"],
    (("notice",), "prompt"): [*NOT_STR, "", "Notice", "nosuch", "a b"],
    (("notice",), "version"): [*NOT_STR, "", "v" * 100, "a\nb"],
    (("notice",), "max_seconds"): [*NOT_FLOAT, 0, 0.1, 500, -1],
    (("routes",), "queue_context"): [*NOT_STR, *NAME_JUNK],
    (("routes",), "person_context"): [*NOT_STR, *NAME_JUNK],
    (("agi",), "enabled"): NOT_BOOL,
    (("agi",), "host"): [*NOT_STR, "", "a b", "http://x", "x;y"],
    (("agi",), "port"): [*NOT_INT, 0, -1, 65536, 4573.0],
    (("agi",), "allow"): ["127.0.0.1", 1, True, [1], ["nonsense"], ["10.0.0.0/33"], [[]]],
    (("agi",), "command_timeout"): [*NOT_FLOAT, 0, 0.1, 61, -5],
    (("ami",), "enabled"): NOT_BOOL,
    (("ami",), "host"): [*NOT_STR, "", "a b"],
    (("ami",), "port"): [*NOT_INT, 0, 65536],
    (("ami",), "user"): [*NOT_STR, "", "no hold", "x]y"],
    (("ami",), "secret"): [*NOT_STR],
    (("ami",), "connect_timeout"): [*NOT_FLOAT, 0, 1000],
    (("ami",), "action_timeout"): [*NOT_FLOAT, 0, 1000],
    (("ivr",), "start_menu"): [*NOT_STR, "", "nope"],
    (("ivr",), "max_repeats"): [*NOT_INT, -1, 6, 2.0],
    (("ivr",), "input_timeout"): [*NOT_FLOAT, 0, 0.5, 61],
    (("ivr",), "invalid_prompt"): [*NOT_STR, "", "nosuch", "Bad Name"],
    (("ivr",), "transfer_prompt"): [*NOT_STR, "", "nosuch"],
    (("ivr",), "fallback"): [*NOT_STR, "", "menu:main", "call:me", "queue:", "queue:a b",
                             "dialplan:ctx", "dialplan:c,e,0", "dialplan:c,e,x"],
    (("ivr", "identification"), "customer_number_digits"): [
        "4-12", 4, [4], [12, 4], [0, 4], [4, 33], [4.0, 12], [True, 3], [4, 5, 6]],
    (("ivr", "identification"), "second_factor_digits"): ["2", [8, 2], [], [1, 99]],
    (("ivr", "identification"), "customer_number_prompt"): [*NOT_STR, "nosuch"],
    (("ivr", "menus", "main"), "prompt"): [*NOT_STR, "nosuch", ""],
    (("ivr", "menus", "main", "options"), "1"): [*NOT_STR[:3], "call:me", "menu:gone",
                                                 {"route": "queue:x", "identify": "yes"},
                                                 {"route": "menu:billing", "identify": True},
                                                 {"rout": "queue:x"}],
    (("ivr", "menus", "main", "options"), "12"): ["queue:tech"],
    (("ivr", "menus", "main", "options"), "a"): ["queue:tech"],
}

SECTIONS = ["ari", "database", "logging", "prompts", "notice", "routes", "agi", "ami", "ivr"]


def _put(path: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    table = raw
    for part in path:
        table = table.setdefault(part, {})
    table[key] = value
    # A menu table replaces the default menus: keep the ones the main menu names.
    if path[:2] == ("ivr", "menus"):
        raw["ivr"]["menus"].setdefault("billing", {"prompt": "billing_menu",
                                                   "options": {"0": "menu:main"}})
        raw["ivr"]["menus"]["main"].setdefault("options", {"3": "person:operator"})
    return raw


def _cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for (path, key), values in SPECS.items():
        for value in values:
            raw = _put(path, key, value)
            if path == ("ami",) and key != "enabled":
                raw["ami"].setdefault("enabled", True)
                raw["ami"].setdefault("secret", "s")
            cases.append((f"{'.'.join(path)}.{key}={value!r}", raw))
    for section in SECTIONS:
        cases.append((f"unknown key in [{section}]", {section: {"no_such_key": 1}}))
        cases.append((f"[{section}] as a scalar", {section: "x"}))
        cases.append((f"[{section}] as a list", {section: [1, 2]}))
    cases.append(("unknown table", {"callbaks": {"enabled": True}}))
    cases.append(("menus as a list", {"ivr": {"menus": ["main"]}}))
    cases.append(("a menu with no options", {"ivr": {"menus": {"main": {"options": {}}}}}))
    # Random mixes: a valid base plus one invalid value from several specs at once.
    rng = random.Random(20261125)
    specs = list(SPECS.items())
    for i in range(60):
        raw: dict[str, Any] = {}
        picks = rng.sample(specs, 3)
        for (path, key), values in picks:
            one = _put(path, key, rng.choice(values))
            for section, table in one.items():
                raw.setdefault(section, {}).update(table)
        names = ", ".join(".".join(p) + "." + k for (p, k), _ in picks)
        cases.append((f"mix {i}: {names}", raw))
    return cases


CASES = _cases()


def test_there_are_at_least_200_cases():
    assert len(CASES) >= 200


@pytest.mark.parametrize(("case", "raw"), CASES, ids=[c for c, _ in CASES])
def test_every_bad_config_is_refused_with_a_config_error(case: str, raw: dict[str, Any]):
    try:
        settings = parse_settings(raw)
    except ConfigError as exc:
        assert str(exc).strip(), case
        return
    pytest.fail(f"silently accepted: {case} -> {settings!r}")
