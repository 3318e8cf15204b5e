"""When the watchdog may act, from what `GET /applications` says."""

from __future__ import annotations

import pytest

from nohold.config import ConfigError
from nohold.decisions.watchdog import Outage, channels_of, registered_apps
from nohold.registry import parse_settings
from nohold.watchdog.settings import WatchdogSettings


def test_acts_only_after_the_grace_of_continuous_absence() -> None:
    o = Outage(grace=3.0)
    assert o.observe(10.0, registered=False) is None
    assert o.observe(13.0, registered=False) is None       # exactly the grace: not yet
    assert o.observe(13.5, registered=False) == 3.5


def test_one_sighting_of_the_app_starts_the_count_again() -> None:
    o = Outage(grace=3.0)
    o.observe(0.0, registered=False)
    o.observe(2.9, registered=True)
    assert o.observe(4.0, registered=False) is None
    assert o.observe(7.1, registered=False) == pytest.approx(3.1)


def test_registered_means_listed_by_name_and_channels_skip_all_topic_forwards() -> None:
    answer = [
        {"name": "nohold-ivr", "channel_ids": ["b", "__AST_CHANNEL_ALL_TOPIC", "a"]},
        {"name": "nohold-ivr.alive", "channel_ids": []},
        "junk",
    ]
    assert registered_apps(answer) == {"nohold-ivr", "nohold-ivr.alive"}
    assert channels_of(answer, "nohold-ivr") == ["a", "b"]
    assert channels_of(answer, "other") == []


def test_watchdog_section_defaults_and_errors_name_the_key() -> None:
    assert parse_settings({}).section(WatchdogSettings) == WatchdogSettings(3.0, 1.0)
    with pytest.raises(ConfigError, match="watchdog.grace_seconds"):
        parse_settings({"watchdog": {"grace_seconds": 0}})
    with pytest.raises(ConfigError, match="watchdog.bogus"):
        parse_settings({"watchdog": {"bogus": 1}})
