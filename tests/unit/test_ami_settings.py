import pytest

from nohold.ami.settings import AmiSettings, parse_ami_settings
from nohold.config import ConfigError


def test_off_by_default_so_the_built_in_defaults_run_as_they_are():
    assert parse_ami_settings({}, {}) == AmiSettings(enabled=False)


def test_defaults_with_secret_from_environment():
    s = parse_ami_settings({"enabled": True}, {"NOHOLD_AMI_SECRET": "s3cret"})
    assert s == AmiSettings(enabled=True, secret="s3cret")
    assert (s.host, s.port, s.user, s.enabled) == ("127.0.0.1", 5038, "nohold", True)


def test_environment_secret_wins_over_the_file_and_never_shows_in_repr():
    s = parse_ami_settings({"secret": "from-file"}, {"NOHOLD_AMI_SECRET": "from-env"})
    assert s.secret == "from-env"
    assert "from-env" not in repr(s)


def test_file_values_are_used():
    s = parse_ami_settings(
        {"host": "pbx.local", "port": 15038, "user": "nh", "secret": "x",
         "connect_timeout": 2, "action_timeout": 3.5},
        {},
    )
    assert (s.host, s.port, s.user, s.secret) == ("pbx.local", 15038, "nh", "x")
    assert (s.connect_timeout, s.action_timeout) == (2.0, 3.5)


def test_disabled_needs_no_secret():
    assert parse_ami_settings({"enabled": False}, {}).enabled is False


@pytest.mark.parametrize(
    ("raw", "env", "words"),
    [
        ({"enabled": True}, {},
         ["ami.secret is empty", "NOHOLD_AMI_SECRET", "[nohold]", "manager.conf"]),
        ({"secrte": "x"}, {}, ["unknown key ami.secrte", "allowed in [ami]", "secret"]),
        ({"port": 0, "secret": "x"}, {}, ["ami.port = 0", "between 1 and 65535"]),
        ({"port": "5038", "secret": "x"}, {}, ["ami.port = '5038'", "expected an integer"]),
        ({"port": True, "secret": "x"}, {}, ["ami.port = True"]),
        ({"enabled": "yes", "secret": "x"}, {}, ["ami.enabled = 'yes'", "expected a bool"]),
        ({"host": "a b", "secret": "x"}, {}, ["ami.host = 'a b'", "host name or IP"]),
        ({"user": "no hold", "secret": "x"}, {}, ["ami.user = 'no hold'", "manager.conf user"]),
        ({"action_timeout": 0, "secret": "x"}, {}, ["ami.action_timeout = 0", "between 0.1"]),
        ({"connect_timeout": 1000, "secret": "x"}, {}, ["ami.connect_timeout = 1000"]),
        ({"enabled": True}, {"NOHOLD_AMI_SECRET": "a\r\nAction: Command"}, ["line break"]),
    ],
)
def test_bad_settings_name_key_value_and_what_is_allowed(raw, env, words):
    with pytest.raises(ConfigError) as err:
        parse_ami_settings(raw, env)
    for word in words:
        assert word in str(err.value)
