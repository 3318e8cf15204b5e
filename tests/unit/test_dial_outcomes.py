import pytest

from nohold.decisions.dial import (
    DialOutcome,
    final_outcome,
    from_cause,
    from_dialstatus,
    from_sip_code,
    is_final_dialstatus,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("ANSWER", DialOutcome.ANSWERED),
        ("BUSY", DialOutcome.BUSY),
        ("NOANSWER", DialOutcome.NO_ANSWER),
        ("CONGESTION", DialOutcome.CONGESTION),
        ("CHANUNAVAIL", DialOutcome.UNREACHABLE),
        ("DONTCALL", DialOutcome.REJECTED),
        ("TORTURE", DialOutcome.REJECTED),
        ("CANCEL", DialOutcome.FAILED),
        ("INVALIDARGS", DialOutcome.FAILED),
        ("SOMETHINGNEW", DialOutcome.FAILED),
        ("busy", DialOutcome.BUSY),
    ],
)
def test_final_dialstatus(status, outcome):
    assert from_dialstatus(status) is outcome
    assert is_final_dialstatus(status)


@pytest.mark.parametrize("status", ["", None, "RINGING", "PROGRESS", "PROCEEDING"])
def test_progress_dialstatus_is_no_outcome_yet(status):
    assert from_dialstatus(status) is None
    assert not is_final_dialstatus(status)


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        (1, DialOutcome.UNREACHABLE),
        (2, DialOutcome.UNREACHABLE),
        (3, DialOutcome.UNREACHABLE),
        (17, DialOutcome.BUSY),
        (18, DialOutcome.NO_ANSWER),
        (19, DialOutcome.NO_ANSWER),
        (20, DialOutcome.UNREACHABLE),
        (21, DialOutcome.REJECTED),
        (22, DialOutcome.UNREACHABLE),
        (27, DialOutcome.UNREACHABLE),
        (28, DialOutcome.UNREACHABLE),
        (34, DialOutcome.CONGESTION),
        (38, DialOutcome.CONGESTION),
        (41, DialOutcome.CONGESTION),
        (42, DialOutcome.CONGESTION),
        (44, DialOutcome.CONGESTION),
    ],
)
def test_cause(cause, outcome):
    assert from_cause(cause) is outcome


@pytest.mark.parametrize("cause", [0, 16, None, 127])
def test_cause_that_says_nothing(cause):
    assert from_cause(cause) is None


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (486, DialOutcome.BUSY),
        (600, DialOutcome.BUSY),
        (480, DialOutcome.NO_ANSWER),
        (408, DialOutcome.NO_ANSWER),
        (603, DialOutcome.REJECTED),
        (403, DialOutcome.REJECTED),
        (404, DialOutcome.UNREACHABLE),
        (410, DialOutcome.UNREACHABLE),
        (484, DialOutcome.UNREACHABLE),
        (604, DialOutcome.UNREACHABLE),
        (503, DialOutcome.CONGESTION),
        (500, DialOutcome.CONGESTION),
        (502, DialOutcome.CONGESTION),
        (504, DialOutcome.CONGESTION),
        (488, DialOutcome.FAILED),
    ],
)
def test_sip_code(code, outcome):
    assert from_sip_code(code) is outcome


@pytest.mark.parametrize("code", [None, 0, 200, 100, 183])
def test_sip_code_that_says_nothing(code):
    assert from_sip_code(code) is None


def test_sip_code_wins_over_cause():
    # Asterisk maps 486 to 17 anyway; a 603 forwarded with a generic cause still rejects.
    assert from_cause(16, 603) is DialOutcome.REJECTED
    assert from_cause(17, 486) is DialOutcome.BUSY


# The combinations a live Asterisk 22.10 produced (see the module docstring).
@pytest.mark.parametrize(
    ("dialstatus", "cause", "tech_cause", "dialled", "outcome"),
    [
        # Local channel to Busy(): BUSY on Dial, ;1 destroyed with cause 0
        ("BUSY", 0, None, True, DialOutcome.BUSY),
        # Local channel to Congestion()
        ("CONGESTION", 0, None, True, DialOutcome.CONGESTION),
        # ring timeout: last status RINGING, cause 19
        ("RINGING", 19, None, True, DialOutcome.NO_ANSWER),
        # Hangup(21) while dialled: Dial says NOANSWER, the cause says rejected
        ("NOANSWER", 21, None, True, DialOutcome.REJECTED),
        # SIPp UAS answering 486
        ("BUSY", 17, 486, True, DialOutcome.BUSY),
        # PJSIP to a dead address: ring timeout reported as 480
        ("", 19, 480, True, DialOutcome.NO_ANSWER),
        # Local channel to a missing extension: no Dial event at all, cause 0
        (None, 0, None, False, DialOutcome.UNREACHABLE),
        # answered, then gone before StasisStart
        ("ANSWER", 16, None, True, DialOutcome.FAILED),
        # dialled, no status, nothing said
        ("", 16, None, True, DialOutcome.FAILED),
        ("CHANUNAVAIL", 0, None, True, DialOutcome.UNREACHABLE),
    ],
)
def test_final_outcome(dialstatus, cause, tech_cause, dialled, outcome):
    got = final_outcome(dialstatus=dialstatus, cause=cause, tech_cause=tech_cause,
                        dialled=dialled)
    assert got is outcome


def test_only_answered_is_answered():
    assert [o for o in DialOutcome if o.answered] == [DialOutcome.ANSWERED]
