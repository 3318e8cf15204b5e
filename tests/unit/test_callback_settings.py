"""[callbacks]: off by default, deny-by-default dialling, clear errors naming the key."""

from __future__ import annotations

import pytest

from nohold.ari_apps.callbacks.settings import CallbackSettings, Outbound
from nohold.config import ConfigError
from nohold.registry import parse_settings

READY = {"enabled": True, "queues": ["billing"], "caller_id": "+48221234567",
         "allowed_numbers": ["PL:fixed_line", "PL:mobile"]}


def parsed(**callbacks) -> CallbackSettings:
    return parse_settings({"callbacks": callbacks}).section(CallbackSettings)


def test_off_by_default_with_the_documented_defaults():
    cb = parsed()
    assert not cb.enabled and cb.queues == () and cb.allowed_numbers == ()
    assert (cb.offer_after, cb.offer_when_wait_over, cb.offer_every) == (180, 300, 120)
    assert (cb.retry_after, cb.max_attempts, cb.expire_after, cb.ring_timeout) == (
        600, 3, 14400, 25)
    assert cb.node  # the host name when not set


@pytest.mark.parametrize("values, message", [
    ({"queues": ["bil ling"]}, r"callbacks.queues\[0\]"),
    ({"queues": ["a", "a"]}, "listed twice"),
    ({"allowed_numbers": ["PL:premium"]}, r"allowed_numbers\[0\].*line type"),
    ({"allowed_numbers": ["*"]}, "REGION:type"),
    ({"ring_timeout": 10}, "ring_timeout = 10.0: must be between 15"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"outbound": "Local/123@x"}, "context:<dialplan context>"),
    ({"outbound": "endpoint:PJSIP/trunk"}, "endpoint:PJSIP/{number}"),
    ({"outbound": "endpoint:PJSIP/{number}@t,30"}, "callbacks.outbound"),
    ({"caller_id": "Example <123>"}, "caller_id"),
    ({"default_region": "Poland"}, "default_region"),
    ({"dial_format": "tech"}, "dial_format"),
    ({"node": "a b"}, "callbacks.node"),
    ({"offer_prompt": "nope"}, "prompt 'nope' is used"),
    ({"colour": "blue"}, "unknown key callbacks.colour"),
    ({"slots": ["18:00-20:00"]}, r"callbacks.slots\[0\].*window = "),
    ({"slots": [{"window": "20:00-18:00"}]}, r"callbacks.slots\[0\].window: .*ends before"),
    ({"slots": [{"window": "18:00-20:00", "agents": 0}]}, r"slots\[0\].agents = 0"),
    ({"slots": [{"window": "18:00-20:00", "people": 2}]}, r"unknown key .*slots\[0\].people"),
    ({"slots": [{"window": "10:00-12:00"}, {"window": "11:00-13:00"}]}, "overlap"),
    ({"slots": [{"window": "08:00-18:00"}]}, "5 minutes to 8 hours"),
    ({"slots_offered": 9}, "slots_offered"),
])
def test_bad_values_name_the_key_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError, match=message):
        parsed(**values)


def test_slots_are_sorted_and_make_the_offer_say_2_unless_the_admin_chose_a_prompt():
    cb = parsed(slots=[{"window": "18:00-20:00"}, {"window": "10:00-12:00", "agents": 3}])
    assert [(str(r.window), r.agents) for r in cb.slots] == [("10:00-12:00", 3),
                                                             ("18:00-20:00", 1)]
    assert (cb.offer_prompt, cb.slots_offered, cb.slots_days) == ("callback_offer_or_time", 3, 7)
    assert parsed().offer_prompt == "callback_offer"
    assert parsed(slots=[{"window": "18:00-20:00"}],
                  offer_prompt="callback_offer").offer_prompt == "callback_offer"


@pytest.mark.parametrize("missing", ["queues", "caller_id", "allowed_numbers"])
def test_enabling_needs_queues_caller_id_and_an_allow_list(missing):
    values = {k: v for k, v in READY.items() if k != missing}
    with pytest.raises(ConfigError, match=f"needs callbacks.{missing}"):
        parsed(**values)


def test_enabled_needs_the_queue_state_and_a_retry_before_expiry():
    with pytest.raises(ConfigError, match=r"needs \[ami\] enabled = true"):
        parsed(**READY)
    ami = {"enabled": True, "secret": "s"}
    cb = parse_settings({"callbacks": READY, "ami": ami}).section(CallbackSettings)
    assert cb.enabled and cb.numbers.check("601234567").e164 == "+48601234567"
    with pytest.raises(ConfigError, match="retry_after"):
        parse_settings({"callbacks": {**READY, "retry_after": 600, "expire_after": 600},
                        "ami": ami})
    with pytest.raises(ConfigError, match="IVR's app"):
        parse_settings({"callbacks": {**READY, "app": "nohold-ivr"}, "ami": ami})


def test_the_outbound_route_only_ever_takes_checked_digits():
    assert Outbound("context", "out").endpoint("+48601234567") == "Local/+48601234567@out"
    assert Outbound("endpoint", "PJSIP/{number}@trunk").endpoint("48601") == \
        "PJSIP/48601@trunk"
    for bad in ("601&PJSIP/900", "", "123@other", "6012345678901234567"):
        with pytest.raises(ValueError, match="refusing to dial"):
            Outbound("context", "out").endpoint(bad)
