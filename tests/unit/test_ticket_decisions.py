"""The partner's tickets, pure (nohold/decisions/tickets.py): the signature with a given
clock, what a report must say, and the state machine."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from nohold.decisions.numbers import NumberPolicy
from nohold.decisions.tickets import (
    Action,
    BadReport,
    BadSignature,
    Category,
    NotAllowed,
    State,
    Urgency,
    after,
    delivery_key,
    sign,
    validate,
    verify,
)

SECRET = b"partner-secret-0123456789abcdef-0123456789"
OLD = b"the-previous-secret-0123456789abcdef-xyz"
NOW = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b'{"id": "T-1"}'
AGE = timedelta(minutes=5)
POLICY = NumberPolicy("PL", ())


# -- signature ---------------------------------------------------------------------------
def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_in_lower_hex():
    expected = hmac.new(SECRET, TS.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == "sha256=" + expected
    assert verify([SECRET], TS, "sha256=" + expected, BODY, NOW, AGE) == NOW
    # Upper-case hex and the previous secret during a rotation are accepted.
    assert verify([SECRET], TS, "SHA256=" + expected.upper(), BODY, NOW, AGE) == NOW
    assert verify([SECRET, OLD], TS, sign(OLD, TS, BODY), BODY, NOW, AGE) == NOW


@pytest.mark.parametrize(("timestamp", "signature", "body", "reason"), [
    (None, sign(SECRET, TS, BODY), BODY, "missing_timestamp"),
    (TS, None, BODY, "missing_signature"),
    (TS, "", BODY, "missing_signature"),
    ("2026-03-07T20:00:00Z", sign(SECRET, TS, BODY), BODY, "bad_timestamp"),
    (TS, sign(SECRET, TS, BODY)[7:], BODY, "bad_signature"),  # no sha256= prefix
    (TS, sign(OLD, TS, BODY), BODY, "bad_signature"),  # another secret
    (TS, sign(SECRET, TS, BODY), BODY + b" ", "bad_signature"),  # the body changed
    (str(int(TS) + 1), sign(SECRET, TS, BODY), BODY, "bad_signature"),  # the time changed
    (TS, "sha256=" + "0" * 64, BODY, "bad_signature"),
    (TS, "sha256=zz\u00e9", BODY, "bad_signature"),
])
def test_a_missing_or_wrong_signature_is_refused(timestamp, signature, body, reason):
    with pytest.raises(BadSignature) as exc:
        verify([SECRET], timestamp, signature, body, NOW, AGE)
    assert exc.value.reason == reason


@pytest.mark.parametrize(("offset", "reason"), [
    (-301, "stale"), (-300, None), (0, None), (300, None), (301, "future")])
def test_a_timestamp_more_than_max_age_away_either_way_is_refused(offset, reason):
    ts = str(int(TS) + offset)
    signature = sign(SECRET, ts, BODY)
    if reason is None:
        assert verify([SECRET], ts, signature, BODY, NOW, AGE) == NOW + timedelta(
            seconds=offset)
    else:
        with pytest.raises(BadSignature) as exc:
            verify([SECRET], ts, signature, BODY, NOW, AGE)
        assert exc.value.reason == reason


def test_a_forged_old_request_is_bad_signature_not_stale():
    # The signature is checked first: a forger learns nothing about the clock.
    old = str(int(TS) - 3600)
    with pytest.raises(BadSignature) as exc:
        verify([SECRET], old, sign(OLD, old, BODY), BODY, NOW, AGE)
    assert exc.value.reason == "bad_signature"


def test_no_secret_refuses_everything():
    with pytest.raises(BadSignature):
        verify([], TS, sign(b"", TS, BODY), BODY, NOW, AGE)


def test_the_delivery_key_is_the_signed_message_whatever_the_secret():
    assert delivery_key(TS, BODY) == hashlib.sha256(TS.encode() + b"." + BODY).hexdigest()
    assert delivery_key(TS, BODY) != delivery_key(str(int(TS) + 1), BODY)
    assert delivery_key(TS, BODY) != delivery_key(TS, BODY + b" ")


# -- reports -----------------------------------------------------------------------------
GOOD = {"id": "T-1001", "caller": "+48 601 234 567", "category": "Outage",
        "urgency": "urgent", "text": "No internet since 20:00.\nRouter LOS light red.",
        "customer": "10042", "call_id": "1741377600.42",
        "reported_at": "2026-03-07T20:55:00+01:00"}


def test_a_good_report_is_normalised():
    got = validate(GOOD, POLICY, NOW)
    r = got.report
    assert (r.partner_id, r.caller, r.category, r.urgency, r.customer, r.call_id) == (
        "T-1001", "+48601234567", Category.OUTAGE, Urgency.URGENT, "10042", "1741377600.42")
    assert r.text.startswith("No internet") and "\n" in r.text
    assert r.reported_at == datetime(2026, 3, 7, 19, 55, tzinfo=UTC)
    assert got.ignored == ()


def test_only_the_required_fields_leave_the_rest_unsaid():
    got = validate({"id": 77, "caller": "601234567", "category": "fault", "text": "x"},
                   POLICY, NOW)
    r = got.report
    assert (r.partner_id, r.caller, r.urgency, r.customer, r.call_id, r.reported_at) == (
        "77", "+48601234567", None, None, None, None)


@pytest.mark.parametrize("caller", ["anonymous", "Withheld"])
def test_a_withheld_caller_is_an_empty_number(caller):
    assert validate({**GOOD, "caller": caller}, POLICY, NOW).report.caller == ""


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"id": None}, "id", "required"),
    ({"id": "  "}, "id", "required"),
    ({"id": "T 1"}, "id", "letters, digits"),
    ({"id": "x" * 65}, "id", "at most 64"),
    ({"caller": None}, "caller", "required"),
    ({"caller": "12"}, "caller", "not a phone number"),
    ({"caller": "+48 601 234 567; DROP"}, "caller", "not a phone number"),
    ({"category": "network"}, "category", "outage, fault, billing, other"),
    ({"category": None}, "category", "expected one of"),
    ({"urgency": "asap"}, "urgency", "low, normal, urgent"),
    ({"urgency": 3}, "urgency", "expected one of"),
    ({"text": ""}, "text", "required"),
    ({"text": "x" * 4001}, "text", "at most 4000"),
    ({"text": "bell\x07"}, "text", "control characters"),
    ({"text": ["a"]}, "text", "expected a string"),
    ({"reported_at": "2026-03-07 20:55"}, "reported_at", "offset"),
    ({"reported_at": "yesterday"}, "reported_at", "ISO 8601"),
    ({"reported_at": "2026-03-07T21:10:00Z"}, "reported_at", "future"),
])
def test_a_wrong_required_field_refuses_the_report_naming_it(change, field, words):
    data = {**GOOD, **change}
    with pytest.raises(BadReport) as exc:
        validate(data, POLICY, NOW)
    assert exc.value.field == field
    assert words in str(exc.value)


def test_the_first_wrong_field_in_order_is_named():
    with pytest.raises(BadReport) as exc:
        validate({"caller": "1", "category": "?"}, POLICY, NOW)
    assert exc.value.field == "id"


@pytest.mark.parametrize(("change", "field"), [
    ({"call_id": "not a call id"}, "call_id"),
    ({"call_id": "x" * 65}, "call_id"),
    ({"call_id": 12}, "call_id"),
    ({"customer": "10042; rm"}, "customer"),
    ({"customer": "1" * 33}, "customer"),
    ({"priority": "high"}, "priority"),
])
def test_a_malformed_detail_is_left_out_and_named_but_the_ticket_is_kept(change, field):
    got = validate({**GOOD, **change}, POLICY, NOW)
    assert [i.field for i in got.ignored] == [field]
    if field != "priority":
        assert getattr(got.report, field) is None
    assert got.report.partner_id == "T-1001"


# -- states ------------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "action", "to"), [
    (State.OPEN, Action.ACK, State.ACKNOWLEDGED),
    (State.OPEN, Action.RESOLVE, State.RESOLVED),
    (State.ACKNOWLEDGED, Action.RESOLVE, State.RESOLVED),
    (State.RESOLVED, Action.REOPEN, State.OPEN),
    (State.ACKNOWLEDGED, Action.ACK, None),
    (State.RESOLVED, Action.ACK, None),
])
def test_the_moves_a_ticket_may_make(state, action, to):
    assert after(state, action) == to


@pytest.mark.parametrize(("state", "action", "words"), [
    (State.RESOLVED, Action.RESOLVE, "resolved already"),
    (State.OPEN, Action.REOPEN, "not resolved"),
    (State.ACKNOWLEDGED, Action.REOPEN, "not resolved"),
])
def test_the_moves_that_make_no_sense_are_refused(state, action, words):
    with pytest.raises(NotAllowed, match=words):
        after(state, action)


def test_every_state_and_action_is_decided():
    for state in State:
        for action in Action:
            try:
                after(state, action)
            except NotAllowed:
                pass
