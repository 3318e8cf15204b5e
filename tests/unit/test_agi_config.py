"""[agi]: who may speak FastAGI to nohold, and how long nohold waits for it."""

from ipaddress import ip_network

import pytest
from click.testing import CliRunner

from nohold.cli import main
from nohold.config import ConfigError, parse_settings
from nohold.decisions.peers import LOOPBACK


def test_allow_defaults_to_loopback_and_takes_cidrs():
    default = parse_settings({}).agi
    assert default.allow is None and default.allowed == LOOPBACK
    assert default.command_timeout == 5.0
    agi = parse_settings({"agi": {"allow": ["10.0.0.5/32", "fd00::/64"],
                                  "command_timeout": 2}}).agi
    assert agi.allowed == (ip_network("10.0.0.5/32"), ip_network("fd00::/64"))
    assert agi.command_timeout == 2.0


@pytest.mark.parametrize(("allow", "words"), [
    (["10.0.0.1/24"], ["agi.allow = ['10.0.0.1/24']", "'10.0.0.1/24' is not a network",
                       "host bits set", "10.0.0.0/24"]),
    (["asterisk.example.net"], ["'asterisk.example.net' is not a network", "CIDRs like"]),
    ([], ["agi.allow = []", "at least one network"]),
    ([5], ["5 is not a string"]),
    ("127.0.0.1/32", ["agi.allow = '127.0.0.1/32'", "expected a list"]),
])
def test_bad_allow_names_key_value_and_what_is_allowed(allow, words):
    with pytest.raises(ConfigError) as err:
        parse_settings({"agi": {"allow": allow}})
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("timeout", [0, 600, "5"])
def test_command_timeout_is_bounded(timeout):
    with pytest.raises(ConfigError, match="agi.command_timeout"):
        parse_settings({"agi": {"command_timeout": timeout}})


def _check(tmp_path, agi: str) -> str:
    config = tmp_path / "nohold.toml"
    # Nothing else is there: check fails later (prompts), after the config verdict.
    config.write_text(f'[prompts]\ndir = "{tmp_path}/none"\n[agi]\n{agi}\n')
    return CliRunner().invoke(main, ["--config", str(config), "check"]).output


def test_check_warns_loudly_about_a_listener_beyond_loopback_without_allow(tmp_path):
    out = _check(tmp_path, 'host = "0.0.0.0"')
    assert "WARNING: [agi] host = '0.0.0.0' listens beyond this machine" in out
    assert "allow" in out


@pytest.mark.parametrize("agi", ['host = "127.0.0.1"',
                                 'host = "0.0.0.0"\nallow = ["10.0.0.5/32"]'])
def test_check_is_quiet_about_loopback_or_an_explicit_allowlist(tmp_path, agi):
    out = _check(tmp_path, agi)
    assert "config: ok" in out and "WARNING" not in out
