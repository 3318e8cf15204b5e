"""The dial allow-list: deny by default, by region and line type or E.164 prefix."""

from __future__ import annotations

import pytest

from nohold.decisions.numbers import NumberPolicy, NumberRefused, parse_rule

PL = NumberPolicy("PL", (parse_rule("PL:fixed_line"), parse_rule("PL:mobile")))


@pytest.mark.parametrize("raw, e164, kind", [
    ("+48221234567", "+48221234567", "fixed_line"),
    ("221234567", "+48221234567", "fixed_line"),
    ("601234567", "+48601234567", "mobile"),
    ("0048601234567", "+48601234567", "mobile"),
])
def test_home_fixed_and_mobile_numbers_pass_in_e164(raw, e164, kind):
    number = PL.check(raw)
    assert (number.e164, number.kind, number.region) == (e164, kind, "PL")


@pytest.mark.parametrize("raw, reason", [
    ("+48701234567", "not_allowed"),   # premium rate (70x)
    ("+48800123456", "not_allowed"),   # toll free: not listed
    ("+4930123456", "not_allowed"),    # Germany: international not listed
    ("+882123456789", "invalid"),      # international networks: not a valid number
    ("12", "invalid"),
    ("anonymous", "withheld"),
    ("", "withheld"),
    ("601 234 567", "not_digits"),
    ("601234567;Local/x", "not_digits"),
    ("+48+601234567", "not_digits"),
    ("9" * 18, "too_long"),
])
def test_everything_else_is_refused_with_a_reason(raw, reason):
    with pytest.raises(NumberRefused) as refused:
        PL.check(raw)
    assert refused.value.reason == reason


def test_a_listed_foreign_type_or_prefix_is_admitted():
    policy = NumberPolicy("PL", (parse_rule("DE:fixed_line"), parse_rule("+48800*")))
    assert policy.check("+4930123456").e164 == "+4930123456"
    assert policy.check("800123456").kind == "toll_free"
    with pytest.raises(NumberRefused):
        policy.check("601234567")


def test_either_fixed_or_mobile_regions_pass_under_either_entry():
    us_number = "+12015550123"  # phonenumbers cannot tell fixed from mobile in the US
    assert NumberPolicy("PL", (parse_rule("US:mobile"),)).check(us_number).kind == \
        "fixed_line_or_mobile"
    with pytest.raises(NumberRefused):
        NumberPolicy("PL", (parse_rule("US:toll_free"),)).check(us_number)


def test_keyed_digits_are_bounded_and_digits_only():
    assert PL.check_keyed("601234567", 6, 15).e164 == "+48601234567"
    for digits in ("60123456*", "+48601234567", "", "1" * 16):
        with pytest.raises(NumberRefused):
            PL.check_keyed(digits, 6, 15)


@pytest.mark.parametrize("text", ["PL", "pl:mobile", "XX:mobile", "PL:premium", "+48*1",
                                  "4822*", "+*", "PL:mobile "])
def test_bad_rules_say_what_is_allowed(text):
    with pytest.raises(ValueError, match="REGION:type|not a region|line type"):
        parse_rule(text)


def test_dial_formats():
    number = PL.check("+48221234567")
    assert (number.digits("e164"), number.digits("e164_digits"), number.digits("national")) \
        == ("+48221234567", "48221234567", "221234567")
    assert NumberPolicy("PL", (parse_rule("DE:fixed_line"),)).check(
        "+4930123456").digits("national") == "030123456"
    with pytest.raises(ValueError):
        number.digits("tech")
