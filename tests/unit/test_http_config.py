"""[http]: the HTTP API server's switch, address and token (shared by every feature that
serves HTTP), and what `nohold check` says about it."""

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from nohold.cli import main
from nohold.config import ConfigError, load_settings, parse_settings
from nohold.http_server import exposure_warnings

TOKEN = "s3cr3t-token-of-32-characters-xx"


def test_off_by_default_on_loopback():
    http = parse_settings({}).http
    assert (http.enabled, http.host, http.port, http.token) == (False, "127.0.0.1", 8095, "")
    assert exposure_warnings(http) == []


def test_enabled_with_a_token():
    http = parse_settings({"http": {"enabled": True, "token": TOKEN, "port": 9000}}).http
    assert (http.enabled, http.port, http.token) == (True, 9000, TOKEN)
    assert TOKEN not in repr(http)  # never in a log line that prints the settings


@pytest.mark.parametrize(("token", "words"), [
    (None, ["http.token", "got nothing", "needs one", "openssl rand"]),
    ("", ["http.token", "got nothing"]),
    ("short-token", ["http.token", "got 11 characters"]),
    ("a" * 23, ["http.token", "got 23 characters"]),
    ("a" * 30 + " b", ["http.token", "other characters"]),
    ("a" * 30 + "\n", ["http.token"]),
    (12345678901234567890123456, ["http.token", "expected a string"]),
])
def test_enabled_without_a_good_token_is_an_error_naming_the_key_never_the_value(token, words):
    raw = {"http": {"enabled": True, **({} if token is None else {"token": token})}}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    for word in words:
        assert word in str(err.value)
    if token:
        assert str(token).strip() not in str(err.value)


def test_a_token_is_checked_even_while_disabled_but_none_is_needed():
    assert parse_settings({"http": {"enabled": False}}).http.token == ""
    with pytest.raises(ConfigError, match="http.token"):
        parse_settings({"http": {"token": "too-short"}})


def test_the_environment_token_wins_and_is_named_in_errors(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[http]\nenabled = true\ntoken = "{TOKEN}"\n')
    other = "from-the-environment-0123456789"
    settings = load_settings(path, env={"NOHOLD_HTTP_TOKEN": other})
    assert settings.http.token == other
    assert "$NOHOLD_HTTP_TOKEN" in settings.source
    path.write_text("[http]\nenabled = true\n")
    assert load_settings(path, env={"NOHOLD_HTTP_TOKEN": other}).http.token == other
    with pytest.raises(ConfigError, match=r"\$NOHOLD_HTTP_TOKEN.*got 5 characters"):
        load_settings(path, env={"NOHOLD_HTTP_TOKEN": "short"})


@pytest.mark.parametrize(("raw", "key"), [
    ({"port": 0}, "http.port"),
    ({"port": 70000}, "http.port"),
    ({"port": "8095"}, "http.port"),
    ({"host": "my host"}, "http.host"),
    ({"enabled": "yes"}, "http.enabled"),
    ({"tokn": TOKEN}, "http.tokn"),
])
def test_bad_values_and_unknown_keys_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_settings({"http": {"enabled": True, "token": TOKEN, **raw}})


def test_the_agi_port_cannot_be_shared():
    with pytest.raises(ConfigError, match=r"http.port = 4573: \[agi\]"):
        parse_settings({"http": {"enabled": True, "token": TOKEN, "port": 4573}})
    # FastAGI off: the port is free for HTTP.
    parse_settings({"http": {"enabled": True, "token": TOKEN, "port": 4573},
                    "agi": {"enabled": False}})


def test_a_host_beyond_loopback_is_allowed_when_written_and_warned_about():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        http = parse_settings({"http": {"enabled": True, "token": TOKEN, "host": host}}).http
        assert exposure_warnings(http) == [], host
    http = parse_settings({"http": {"enabled": True, "token": TOKEN, "host": "0.0.0.0"}}).http
    (warning,) = exposure_warnings(http)
    assert "[http] host = '0.0.0.0'" in warning and "reverse proxy with TLS" in warning
    # Off: nothing listens, nothing to warn about.
    off = parse_settings({"http": {"token": TOKEN, "host": "0.0.0.0"}}).http
    assert exposure_warnings(off) == []


def test_check_warns_loudly_about_an_exposed_api(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[http]\nenabled = true\nhost = "0.0.0.0"\ntoken = "{TOKEN}"\n'
                    f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    result = CliRunner().invoke(main, ["--config", str(path), "check"])
    # It goes on to fail at the prompts (none built here); the warning came first.
    assert "WARNING: [http] host = '0.0.0.0'" in result.output
    assert TOKEN not in result.output


def test_the_example_files_commented_block_is_valid_once_uncommented():
    text = (Path(__file__).parents[2] / "config" / "nohold.example.toml").read_text()
    block = text.split("\n# [http]\n", 1)[1].split("\n\n", 1)[0]
    lines = [m.group(1) for m in re.finditer(r"^# (\w+ = .*)$", block, re.MULTILINE)]
    assert [ln.split()[0] for ln in lines] == ["enabled", "host", "port", "token"]
    toml = "[http]\n" + "\n".join(ln for ln in lines if not ln.startswith("token"))
    raw = tomllib.loads(toml)
    http = parse_settings({"http": {**raw["http"], "token": TOKEN}}).http
    assert (http.enabled, http.host, http.port) == (True, "127.0.0.1", 8095)
