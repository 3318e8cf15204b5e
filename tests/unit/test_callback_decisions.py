"""Callback states, retries, the estimate and the promised window (pure)."""

from __future__ import annotations

import itertools

import pytest

from nohold.decisions.callbacks import (
    ALLOWED,
    FINAL,
    LIVE,
    AttemptOutcome,
    AttemptPolicy,
    IllegalTransition,
    State,
    after_attempt,
    check_transition,
    entry_position,
    estimate_wait,
    handle_time,
    offer_at_once,
    placeholders_wanted,
    promise_window,
)

POLICY = AttemptPolicy(max_attempts=3, retry_after=600, expire_after=4 * 3600)


def test_the_documented_path_is_allowed_and_final_states_are_final():
    path = [State.PENDING, State.QUEUED, State.AGENT_CONNECTED, State.DIALLING, State.RETRY,
            State.QUEUED, State.AGENT_CONNECTED, State.DIALLING, State.COMPLETED]
    for old, new in itertools.pairwise(path):
        check_transition(old, new)
    for final in FINAL:
        assert not ALLOWED[final]
    assert LIVE | FINAL == set(State) and not LIVE & FINAL


@pytest.mark.parametrize("old, new", [
    (State.PENDING, State.DIALLING),         # never dial without an agent on the line
    (State.QUEUED, State.DIALLING),
    (State.DIALLING, State.CANCELLED),       # it may already ring: the attempt ends itself
    (State.DIALLING, State.PENDING),         # a dial is an attempt, never silently undone
    (State.COMPLETED, State.PENDING),
    (State.EXPIRED, State.QUEUED),
])
def test_shortcuts_that_would_break_a_promise_are_refused(old, new):
    with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
        check_transition(old, new)


def test_talked_completes_whatever_the_attempt():
    assert after_attempt(AttemptOutcome.TALKED, 3, 0, 1, POLICY).state is State.COMPLETED


def test_failed_attempts_retry_then_expire_at_max_attempts():
    first = after_attempt(AttemptOutcome.BUSY, 1, now=1000, expires_at=20000, policy=POLICY)
    assert (first.state, first.due_at) == (State.RETRY, 1600)
    assert after_attempt(AttemptOutcome.NO_ANSWER, 2, 1000, 20000, POLICY).state is State.RETRY
    last = after_attempt(AttemptOutcome.NO_ANSWER, 3, 1000, 20000, POLICY)
    assert (last.state, last.reason) == (State.EXPIRED, "max_attempts")


def test_a_retry_that_would_fall_after_expiry_expires_now():
    late = after_attempt(AttemptOutcome.BUSY, 1, now=1000, expires_at=1600, policy=POLICY)
    assert (late.state, late.reason) == (State.EXPIRED, "expire_after")
    assert after_attempt(AttemptOutcome.BUSY, 1, 1000, 1601, POLICY).state is State.RETRY


def test_the_estimate_is_position_times_handle_time_over_agents():
    assert estimate_wait(4, 300, 2).seconds == 600
    assert estimate_wait(1, 300, 1).seconds == 300
    assert estimate_wait(3, 300, 0).seconds is None
    with pytest.raises(ValueError):
        estimate_wait(0, 300, 1)


def test_handle_time_falls_back_to_the_default_until_calls_complete():
    assert handle_time(talktime=240, holdtime=30, completed=5, default=300) == 240
    assert handle_time(talktime=0, holdtime=0, completed=0, default=300) == 300
    assert handle_time(talktime=100, holdtime=0, completed=0, default=300) == 300


def test_the_window_brackets_the_estimate_in_whole_minutes():
    window = promise_window(estimate_wait(4, 300, 2))   # 600 s, slack max(120, 150)
    assert (window.earliest, window.latest, window.minutes) == (420, 780, 10)
    short = promise_window(estimate_wait(1, 60, 2))      # 30 s, slack 120
    assert (short.earliest, short.latest, short.minutes) == (0, 180, 2)
    unknown = promise_window(estimate_wait(1, 60, 0))
    assert (unknown.earliest, unknown.latest) == (0, 3600)
    for pos, aht, agents in itertools.product((1, 3, 17), (45, 300, 901), (1, 2, 7)):
        est = estimate_wait(pos, aht, agents)
        w = promise_window(est)
        assert w.earliest <= est.seconds <= w.latest and w.minutes >= 1


def test_offer_at_once_when_the_wait_is_long_or_nobody_serves():
    assert offer_at_once(estimate_wait(10, 60, 1), threshold=300)
    assert not offer_at_once(estimate_wait(5, 60, 1), threshold=300)
    assert offer_at_once(estimate_wait(1, 60, 0), threshold=300)


def test_placeholders_per_logged_in_agent_never_negative():
    assert placeholders_wanted(logged_in=2, max_per_agent=2, standing=1) == 3
    assert placeholders_wanted(logged_in=1, max_per_agent=2, standing=5) == 0
    assert placeholders_wanted(logged_in=0, max_per_agent=2, standing=0) == 0


def test_a_placeholder_enters_behind_earlier_arrivals_and_ahead_of_later():
    assert entry_position(100.0, [50.0, 99.0, 101.0, 300.0]) == 3
    assert entry_position(100.0, [100.0]) == 2   # a tie: whoever stands there stays ahead
    assert entry_position(100.0, []) == 1


def test_offer_args_from_the_exit_context_are_checked():
    from nohold.decisions.callbacks import BadOfferArgs, read_offer_args
    ok = read_offer_args(["offer", "billing", "1000.5", "3", "1700.1"], ("billing",), 1100)
    assert (ok.queue, ok.joined_at, ok.position, ok.call_id) == ("billing", 1000.5, 3, "1700.1")
    assert read_offer_args(["offer", "billing", "1000", "", "x"], ("billing",), 1100).position == 0
    for args, why in [
        (["offer", "tech", "1000", "3", "x"], "does not offer"),
        (["offer", "billing", "soon", "3", "x"], "not a number"),
        (["offer", "billing", "5000", "3", "x"], "last day"),
        (["offer", "billing", str(1100 - 90000), "3", "x"], "last day"),
        (["offer", "billing", "1000", "-1", "x"], "whole number"),
        (["offer", "billing", "1000", "3"], "expected"),
        (["placeholder", "billing", "1000", "3", "x"], "expected"),
    ]:
        with pytest.raises(BadOfferArgs, match=why):
            read_offer_args(args, ("billing",), 1100)


def test_position_counts_earlier_live_callers_and_earlier_callbacks_once():
    from nohold.decisions.callbacks import position_in_queue, serving
    from nohold.decisions.queue_state import (
        DEVICE_NOT_INUSE,
        DEVICE_UNAVAILABLE,
        QueueCaller,
        QueueMember,
        QueueView,
    )
    view = QueueView(name="billing", callers=(
        QueueCaller("u1", "PJSIP/a-1", 1, joined_at=0.0),     # waited 100 s: arrived 900
        QueueCaller("u2", "Local/cb-7@nohold-callback-placeholder-1;2", 2, joined_at=50.0),
        QueueCaller("u3", "PJSIP/b-2", 3, joined_at=80.0),    # arrived 980
    ), members={
        "a": QueueMember("a", status=DEVICE_NOT_INUSE),
        "b": QueueMember("b", status=DEVICE_NOT_INUSE, paused=True),
        "c": QueueMember("c", status=DEVICE_UNAVAILABLE),
    })
    # wall clock 1000 = view clock 100; our caller arrived at wall 950
    assert position_in_queue(view, 950.0, 1000.0, 100.0, callbacks_ahead=1,
                             placeholder_marker="nohold-callback-placeholder") == 3
    assert serving(view) == 1


def test_the_queue_setup_check_reads_getconfig_and_names_each_fix():
    from nohold.decisions.callbacks import offer_setup_problems, parse_config_lines
    fields = [{"Response": "Success", "Category-000000": "general",
               "Line-000000-000000": "persistentmembers=no",
               "Category-000001": "billing",
               "Line-000001-000000": "strategy=ringall",
               "Line-000001-000001": "periodic-announce=/var/lib/nohold/prompts/callback_offer",
               "Line-000001-000002": "periodic-announce-startdelay=180",
               "Line-000001-000003": "periodic-announce-frequency=120",
               "Line-000001-000004": "announce-to-first-user=yes",
               "Line-000001-000005": "context=nohold-callback-offer",
               "Line-000001-000006": "member=Local/a@x",
               "Line-000001-000007": "member=Local/b@x",
               "Category-000002": "tech",
               "Line-000002-000000": "periodic-announce=queue-periodic-announce",
               "Line-000002-000001": "periodic-announce-frequency=60"}]
    conf = parse_config_lines(fields)
    assert conf["billing"]["member"] == ["Local/a@x", "Local/b@x"]
    args = ("callback_offer", 180.0, 120.0, "nohold-callback-offer")
    assert offer_setup_problems(conf, "billing", *args) == []
    problems = offer_setup_problems(conf, "tech", *args)
    assert [p.split(" ", 2)[1] for p in problems] == [
        "context", "periodic-announce", "periodic-announce-startdelay",
        "periodic-announce-frequency", "announce-to-first-user"]
    assert "now 60" in problems[3]
    assert offer_setup_problems(conf, "sales", *args) == [
        "queues.conf has no queue [sales] (callbacks.queues lists it)"]


def test_placeholders_count_ahead_only_when_in_the_queue_and_served_earlier():
    """app_queue's position counts who is there: a callback served earlier whose
    placeholder is still on its way is not ahead yet (else a later one, already in
    the queue, ends in front of it: seen after an Asterisk restart as [1, 3, 2])."""
    from nohold.decisions.callbacks import placeholder_callback, standing_ahead, turn
    from nohold.decisions.queue_state import QueueCaller, QueueView

    assert placeholder_callback("cb-12-0a1b2c3d-q", "cb-") == 12
    for other in ("cb-12-0a1b2c3d", "cb-12-a1-0a1b2c", "cb-x-0a1b2c3d-q", "x-12-0a1b2c3d-q",
                  "cb-12-0a1b2c3-q", "1796328355.6"):
        assert placeholder_callback(other, "cb-") is None, other

    def view(*uniqueids: str) -> QueueView:
        return QueueView(name="billing", callers=tuple(
            QueueCaller(u, f"Local/s@nohold-callback-placeholder-{n};2", n + 1, 0.0)
            for n, u in enumerate(uniqueids)))

    turns = {1: turn(False, 10.0, 1), 2: turn(False, 20.0, 2), 3: turn(False, 30.0, 3),
             9: turn(True, 99.0, 9)}
    # Only 3 stands: 1 is placed first, then 2 behind 1 (once 1 stands), never behind 3.
    assert standing_ahead(view("cb-3-00000000-q"), turns[1], turns, "cb-") == 0
    assert standing_ahead(view("cb-3-00000000-q"), turns[2], turns, "cb-") == 0
    assert standing_ahead(view("cb-1-00000000-q", "cb-3-00000000-q"), turns[2], turns,
                          "cb-") == 1
    # An agreed time is served first whatever its arrival; an unknown id is nobody.
    assert standing_ahead(view("cb-9-00000000-q", "cb-5-00000000-q", "PJSIP/x"),
                          turns[1], turns, "cb-") == 1
