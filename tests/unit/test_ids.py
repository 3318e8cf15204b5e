"""Ids from outside: what Asterisk sends passes, anything else is refused with a reason."""

import pytest

from nohold.decisions import ids


@pytest.mark.parametrize("value", ["1700000000.42", "pytest-1234-1700000000.42",
                                   "4c0f7a1e-3c55-4a4e-9a57-0cf1a2f5b1d2", "a" * 64])
def test_asterisk_ids_pass(value):
    assert ids.check_id("agi_linkedid", value) == value


@pytest.mark.parametrize(("value", "rule"), [
    ("", "1 to 64"),
    ("x" * 60_006, "1 to 64"),
    ("x547b84 level=error", "letters, digits"),
    ("1700.1\n", "letters, digits"),
    ("../1700.1", "letters, digits"),
    ("1700.1\u00e9", "letters, digits"),
])
def test_other_ids_are_refused_with_field_and_rule(value, rule):
    with pytest.raises(ids.BadId) as err:
        ids.check_id("agi_linkedid", value)
    assert str(err.value).startswith("agi_linkedid ") and rule in str(err.value)
    assert len(str(err.value)) < 200  # a 60 kB value is not repeated in the message


@pytest.mark.parametrize("value", ["PJSIP/alice-00000001", "Local/s@nohold-ivr-00000002;1",
                                   "IAX2/host:4569-1234", "DAHDI/i1/5551234-1"])
def test_channel_names_pass(value):
    assert ids.check_channel("agi_channel", value) == value


@pytest.mark.parametrize("value", ["", "PJSIP/a b", 'PJSIP/"a"', "PJSIP/a\\b", "P" * 81,
                                   "PJSIP/a\r\n"])
def test_odd_channel_names_are_refused(value):
    with pytest.raises(ids.BadId):
        ids.check_channel("agi_channel", value)


@pytest.mark.parametrize("value", ["", "unknown", "+4930123456", "*31#100", "anonymous"])
def test_caller_numbers_pass(value):
    assert ids.check_caller("agi_callerid", value) == value


@pytest.mark.parametrize("value", ["100 level=error", "1" * 65, "100\n", '"x"'])
def test_odd_caller_numbers_are_refused(value):
    with pytest.raises(ids.BadId):
        ids.check_caller("agi_callerid", value)
