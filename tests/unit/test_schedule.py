"""The booking rule of scheduled callbacks (nohold/decisions/schedule.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nohold.decisions.hours import Calendar, Kind, Window, override_for
from nohold.decisions.schedule import Booking, BookingRefused, book, moved_for_closure

WARSAW = ZoneInfo("Europe/Warsaw")
# Callbacks dialled 10:00-20:00 on working days.
DESK = Calendar(name="callbacks", tz=WARSAW,
                week={d: (Window(10 * 60, 20 * 60),) for d in range(5)})
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=WARSAW)  # a Thursday


def test_a_time_inside_the_calendar_is_booked_with_its_window() -> None:
    at = datetime(2026, 12, 3, 18, 30, tzinfo=WARSAW)
    booking = book(at, timedelta(minutes=30), NOW, DESK)
    assert (booking.at, booking.until) == (at, at + timedelta(minutes=30))


def test_outside_the_calendar_is_refused_with_the_next_valid_time() -> None:
    saturday = datetime(2026, 12, 5, 11, 0, tzinfo=WARSAW)
    with pytest.raises(BookingRefused) as refused:
        book(saturday, timedelta(minutes=30), NOW, DESK)
    assert "weekend" in refused.value.reason
    assert refused.value.next_valid == datetime(2026, 12, 7, 10, 0, tzinfo=WARSAW)
    evening = datetime(2026, 12, 3, 20, 30, tzinfo=WARSAW)
    with pytest.raises(BookingRefused) as refused:
        book(evening, timedelta(minutes=30), NOW, DESK)
    assert refused.value.next_valid == datetime(2026, 12, 4, 10, 0, tzinfo=WARSAW)


@pytest.mark.parametrize(("at", "window", "words"), [
    (NOW - timedelta(minutes=5), timedelta(minutes=30), "has passed"),
    (NOW + timedelta(days=31), timedelta(minutes=30), "30 days"),
    (NOW + timedelta(hours=2), timedelta(minutes=2), "window"),
    (NOW + timedelta(hours=2), timedelta(hours=9), "window"),
])
def test_past_too_far_and_silly_windows_are_refused(at: datetime, window: timedelta,
                                                   words: str) -> None:
    with pytest.raises(BookingRefused, match=words):
        book(at, window, NOW, DESK)


def test_a_minute_of_clock_skew_is_forgiven_and_naive_times_are_refused() -> None:
    open_now = datetime(2026, 12, 3, 12, 0, tzinfo=WARSAW)
    assert book(open_now - timedelta(seconds=30), timedelta(minutes=30), open_now, DESK)
    with pytest.raises(BookingRefused, match="time zone"):
        book(datetime(2026, 12, 3, 12, 0), timedelta(minutes=30), open_now, DESK)


def test_utc_input_is_judged_on_the_calendars_wall_clock() -> None:
    # 17:30 UTC is 18:30 in Warsaw (winter): inside 10-20.
    at = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)
    assert book(at, timedelta(minutes=30), NOW, DESK).at == at


# -- a callback due while the calendar is closed ----------------------------------------

def _desk_closed_on(day: int) -> Calendar:
    return DESK.with_overrides([override_for(WARSAW, Kind.CLOSED, day=date(2026, 12, day),
                                             note="staff training")])


def test_a_callback_due_on_a_day_closed_after_booking_moves_to_the_next_opening() -> None:
    due = datetime(2026, 12, 4, 18, 0, tzinfo=WARSAW)  # Friday, agreed 18:00-18:30
    promised = (due, due + timedelta(minutes=30))
    closed = _desk_closed_on(4)
    moved = moved_for_closure(promised, due, due + timedelta(seconds=1), closed)
    # Friday closed, then the weekend: Monday 10:00, the same 30 minutes.
    monday = datetime(2026, 12, 7, 10, 0, tzinfo=WARSAW)
    assert moved == Booking(monday, monday + timedelta(minutes=30))
    # Not yet due, or the calendar open: it stays.
    assert moved_for_closure(promised, due, due - timedelta(minutes=1), closed) is None
    assert moved_for_closure(promised, due, due + timedelta(minutes=1), DESK) is None


def test_a_window_that_ended_while_open_is_missed_not_moved() -> None:
    due = datetime(2026, 12, 3, 19, 0, tzinfo=WARSAW)  # Thursday 19:00-19:30, open to 20:00
    promised = (due, due + timedelta(minutes=30))
    # At 20:05 (closed) the window had ended at 19:30 while the desk was open.
    late = datetime(2026, 12, 3, 20, 5, tzinfo=WARSAW)
    assert moved_for_closure(promised, due, late, DESK) is None
    # A window running into the closing (19:45-20:15) moves to the next morning.
    due = datetime(2026, 12, 3, 19, 45, tzinfo=WARSAW)
    moved = moved_for_closure((due, due + timedelta(minutes=30)), due, late, DESK)
    friday = datetime(2026, 12, 4, 10, 0, tzinfo=WARSAW)
    assert moved == Booking(friday, friday + timedelta(minutes=30))
