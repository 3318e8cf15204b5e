import tomllib
from pathlib import Path

import pytest

from nohold.ari_apps.ivr.settings import IvrSettings
from nohold.config import ConfigError
from nohold.decisions.routes import parse_route
from nohold.registry import load_settings, parse_settings
from nohold.sandbox.nohold_config import to_toml

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_have_the_documented_menu():
    s = parse_settings({})
    assert s.section(IvrSettings).start_menu == "main"
    assert s.section(IvrSettings).menus["main"].options["2"].route == parse_route("menu:billing")
    assert s.notice.max_seconds == 5.0
    assert s.ari.url.startswith("http://127.0.0.1")


def test_example_file_parses_and_matches_defaults_where_it_says_so():
    example = load_settings(ROOT / "config" / "nohold.example.toml", env={})
    defaults = parse_settings({})
    assert example.section(IvrSettings).menus.keys() == defaults.section(IvrSettings).menus.keys()
    assert example.notice.max_seconds == defaults.notice.max_seconds
    assert example.section(IvrSettings).not_told == defaults.section(IvrSettings).not_told \
        == "fallback"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"ari": {"passwd": "x"}}, ["ari.passwd", "allowed in [ari]", "password"]),
        ({"bogus": 1}, ["unknown key bogus"]),
        ({"notice": {"max_seconds": 500}}, ["notice.max_seconds = 500", "between"]),
        ({"notice": {"max_seconds": "5"}}, ["notice.max_seconds = '5'", "expected a float"]),
        ({"ivr": {"max_repeats": 9}}, ["ivr.max_repeats", "between 0 and 5"]),
        ({"ivr": {"not_told": "person"}},
         ["ivr.not_told = 'person'", "allowed values are fallback, continue"]),
        ({"ivr": {"fallback": "menu:main"}}, ["ivr.fallback", "never another menu"]),
        ({"ivr": {"fallback": "call:me"}}, ["ivr.fallback = 'call:me'", "a route is"]),
        ({"ivr": {"start_menu": "nope"}}, ["ivr.start_menu = 'nope'", "defined: main, billing"]),
        ({"ivr": {"menus": {"main": {"prompt": "main_menu", "options": {"12": "queue:x"}}}}},
         ["ivr.menus.main.options.12", "0-9, * or #"]),
        ({"ivr": {"menus": {"main": {"prompt": "main_menu", "options": {"1": "menu:gone"}}}}},
         ["options.1 = menu:gone", "no menu 'gone'"]),
        ({"ivr": {"menus": {"main": {"prompt": "nosuch", "options": {"1": "queue:x"}}}}},
         ["prompt 'nosuch' is used"]),
        ({"ivr": {"menus": {"main": {"options": {}}}}}, ["at least one option"]),
        ({"prompts": {"files": {"notice": "/x/notice.mp3"}}}, [".wav or .gsm"]),
        ({"prompts": {"language": "english!"}}, ["prompts.language"]),
        ({"database": {"url": "mysql://x"}}, ["database.url"]),
        ({"ari": {"url": "http://h:8088/ari"}}, ["ari.url", "without /ari"]),
        ({"logging": {"level": "loud"}}, ["logging.level = 'loud'", "debug, info"]),
        ({"ivr": {"identification": {"customer_number_digits": [5, 2]}}},
         ["customer_number_digits = [5, 2]"]),
    ],
)
def test_bad_config_names_key_value_and_what_is_allowed(raw, words):
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    for word in words:
        assert word in str(err.value)


def test_file_conf_d_and_environment_layer_in_order(tmp_path):
    main = tmp_path / "nohold.toml"
    main.write_text('[ari]\npassword = "from-file"\nuser = "u1"\n[notice]\nversion = "a"\n')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-site.toml").write_text('[ari]\nuser = "u2"\n')
    s = load_settings(main, env={"NOHOLD_ARI_PASSWORD": "from-env"})
    assert (s.ari.user, s.ari.password, s.notice.version) == ("u2", "from-env", "a")
    assert "conf.d" in s.source and "$NOHOLD_ARI_PASSWORD" in s.source


def test_missing_and_broken_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[ari\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_identify_option_needs_a_leaving_route():
    raw = {"ivr": {"menus": {"main": {"prompt": "main_menu", "options": {
        "1": {"route": "menu:main", "identify": True}}}}}}
    with pytest.raises(ConfigError, match="identify applies"):
        parse_settings(raw)
    raw["ivr"]["menus"]["main"]["options"]["1"]["route"] = "queue:tech"
    assert parse_settings(raw).section(IvrSettings).menus["main"].options["1"].identify


def test_to_toml_round_trips_nested_tables():
    data = {"ari": {"url": "http://127.0.0.1:1", "password": 'p"w\\x'},
            "ivr": {"max_repeats": 1, "menus": {"main": {"prompt": "main_menu",
                                                          "options": {"1": "queue:tech"}}}}}
    assert tomllib.loads(to_toml(data)) == data


def test_the_shipped_systemd_unit_restarts_always_and_runs_real_commands():
    import configparser
    import shlex

    from nohold.cli import main

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "config" / "nohold.service")
    service = unit["Service"]
    assert (service["Restart"], service["RestartSec"]) == ("always", "1")
    argv = shlex.split(service["ExecStart"])
    assert argv[1:3] == ["-c", "/etc/nohold/nohold.toml"]
    assert argv[3] in main.commands, f"ExecStart: no `nohold {argv[3]}` command"
    # `run` checks before it starts; `check` also fails on a missing queue, which must
    # not keep nohold from starting (those callers go on to the operator).
    assert "ExecStartPre" not in service
    # The example is what `nohold install --systemd` writes for a system-wide pip install.
    from nohold.decisions.install import systemd_unit

    generated = configparser.ConfigParser(strict=False, interpolation=None)
    generated.optionxform = str  # type: ignore[assignment,method-assign]
    generated.read_string(systemd_unit("/usr/local/bin/nohold", "/etc/nohold/nohold.toml",
                                       "nohold"))
    for key in ("ExecStart", "User", "Restart", "RestartSec", "StateDirectory"):
        assert generated["Service"][key] == service[key], key


def test_shipped_watchdog_unit_restarts_always_and_runs_the_watchdog_command() -> None:
    import configparser
    import shlex

    from nohold.cli import main

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "config" / "nohold-watchdog.service")
    service = unit["Service"]
    assert (service["Restart"], service["RestartSec"]) == ("always", "1")
    argv = shlex.split(service["ExecStart"])
    assert argv[1:] == ["-c", "/etc/nohold/nohold.toml", "watchdog"]
    assert "watchdog" in main.commands
    # The example is what `nohold install --systemd` writes for a system-wide pip install.
    from nohold.decisions.install import systemd_unit

    generated = configparser.ConfigParser(strict=False, interpolation=None)
    generated.optionxform = str  # type: ignore[assignment,method-assign]
    generated.read_string(systemd_unit("/usr/local/bin/nohold", "/etc/nohold/nohold.toml",
                                       "nohold", command="watchdog"))
    for key in ("ExecStart", "User", "Restart", "RestartSec", "StateDirectory"):
        assert generated["Service"][key] == service[key], key
