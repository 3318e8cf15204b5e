"""What a recovering dialler reads from the channel ids and states Asterisk lists."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from nohold.ari_apps.callbacks.dialer import _is_customer, _of, _talking
from nohold.callbackdb.callbacks import CallbackRecord
from nohold.decisions.callbacks import State

T = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = CallbackRecord(
    id=5, call_id="c", number="+48601000001", queue="q", state=State.DIALLING, arrived_at=T,
    requested_at=T, promised_earliest=None, promised_latest=None, expires_at=T, due_at=None,
    attempts=2, requests=1, owner="n", lease_until=T, outcome="", updated_at=T)


def test_customer_legs_are_told_from_placeholders() -> None:
    assert _is_customer(5, "cb-5-a2-2078d3")
    # A placeholder's token may start with "a" and be all digits after it.
    assert not _is_customer(5, "cb-5-a1234567")
    assert not _is_customer(5, "cb-5-a1234567-q")
    assert not _is_customer(5, "cb-55-a2-2078d3")
    assert not _is_customer(15, "cb-5-a2-2078d3")


def test_talking_is_the_current_attempts_leg_answered_not_ringing() -> None:
    assert _talking(RECORD, {"cb-5-a2-2078d3": "Up", "cb-5-e1e81b8e": "Up"})
    assert not _talking(RECORD, {"cb-5-a2-2078d3": "Ringing"})
    assert not _talking(RECORD, {"cb-5-a1-2078d3": "Up"})  # an earlier attempt's leg
    assert not _talking(replace(RECORD, id=55), {"cb-5-a2-2078d3": "Up"})


def test_a_callbacks_channels_are_its_own() -> None:
    channels = {"cb-5-a2-2078d3": "Up", "cb-5-e1e81b8e": "Up", "cb-5-e1e81b8e-q": "Up",
                "cb-55-0badf00d": "Up"}
    assert _of(RECORD, channels) == ["cb-5-a2-2078d3", "cb-5-e1e81b8e", "cb-5-e1e81b8e-q"]
