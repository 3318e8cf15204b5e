"""The on-duty rota and the escalation plan (nohold/decisions/rota.py, escalation.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.decisions.escalation import Step, Via, due, plan, unanswered_since
from nohold.decisions.hours import NaiveDatetime, Window
from nohold.decisions.rota import Cover, Rota, Shift, overlapping_shifts

WAW = ZoneInfo("Europe/Warsaw")
EVENINGS = Shift(frozenset(range(5)), Window(17 * 60, 24 * 60), ("ewa", "jan"))
NIGHTS = Shift(frozenset(range(7)), Window(0, 10 * 60), ("jan", "ewa"))
WEEKENDS = Shift(frozenset({5, 6}), Window(10 * 60, 24 * 60), ("piotr", "jan"))
ROTA = Rota((EVENINGS, NIGHTS, WEEKENDS), fallback=("office",), tz=WAW)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=WAW)


@pytest.mark.parametrize("when, order", [
    (at(2026, 12, 3, 18, 30), ("ewa", "jan")),      # Thursday evening
    (at(2026, 12, 4, 3, 0), ("jan", "ewa")),        # Friday night
    (at(2026, 12, 5, 12, 0), ("piotr", "jan")),     # Saturday
    (at(2026, 12, 3, 12, 0), ("office",)),          # office hours: the fallback
    (at(2026, 12, 3, 17, 0), ("ewa", "jan")),       # a shift starts on its minute
    (at(2026, 12, 3, 16, 59), ("office",)),
])
def test_who_is_on_duty_follows_the_wall_clock_shifts(when, order):
    assert ROTA.on_duty(when) == order
    assert ROTA.on_duty(when.astimezone(UTC)) == order  # an instant, whatever its zone


def test_a_cover_replaces_the_shifts_and_the_last_listed_wins():
    christmas = Cover(at(2026, 12, 24), at(2026, 12, 27), ("jan",), "Christmas")
    sick = Cover(at(2026, 12, 25), at(2026, 12, 26), ("piotr",), "jan ill")
    rota = Rota(ROTA.shifts, (christmas, sick), ROTA.fallback, WAW)
    assert rota.on_duty(at(2026, 12, 24, 20, 0)) == ("jan",)
    assert rota.on_duty(at(2026, 12, 25, 20, 0)) == ("piotr",)
    assert rota.on_duty(at(2026, 12, 27, 20, 0)) == ("piotr", "jan")  # Sunday: shifts again
    with pytest.raises(NaiveDatetime):
        rota.on_duty(datetime(2026, 12, 24, 20, 0))


def test_overlapping_shifts_are_named():
    assert overlapping_shifts(ROTA.shifts) is None
    late = Shift(frozenset({4}), Window(23 * 60, 24 * 60), ("x",))
    assert "overlap" in (overlapping_shifts((*ROTA.shifts, late)) or "")


T0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def test_the_plan_alerts_each_person_by_sms_then_a_call_then_the_next_in_rounds():
    steps = plan(("ewa", "jan"), T0, FIVE, rounds=2)
    assert [(s.round, s.person, s.via, int((s.due - T0) / FIVE)) for s in steps] == [
        (1, "ewa", Via.SMS, 0), (1, "ewa", Via.CALL, 1), (1, "jan", Via.SMS, 2),
        (1, "jan", Via.CALL, 3), (2, "ewa", Via.SMS, 4), (2, "ewa", Via.CALL, 5),
        (2, "jan", Via.SMS, 6), (2, "jan", Via.CALL, 7)]
    assert len({s.key for s in steps}) == len(steps)  # one key per step: never twice
    assert unanswered_since(steps, FIVE) == T0 + 8 * FIVE
    assert [s.via for s in plan(("ewa",), T0, FIVE, 1, call=False)] == [Via.SMS]


def test_due_steps_skip_the_done_and_stop_at_an_acknowledgement():
    steps = plan(("ewa", "jan"), T0, FIVE, rounds=1)
    assert due(steps, T0, done=(), acknowledged=False) == steps[:1]
    # A restart 12 minutes in, the first SMS done: the call to ewa and jan's SMS are due.
    later = T0 + timedelta(minutes=12)
    assert [s.key for s in due(steps, later, {steps[0].key}, False)] == [
        "r1:call:ewa", "r1:sms:jan"]
    assert due(steps, later, (), acknowledged=True) == []
    with pytest.raises(ValueError):
        plan(("ewa",), T0, timedelta(0), 1)
    assert isinstance(steps[0], Step)
