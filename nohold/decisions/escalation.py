"""Who is alerted about a ticket, how, and when, until someone acknowledges. Pure.

The PagerDuty model, in rounds: each person in the rota's order gets an SMS at
once and, when nobody has acknowledged within `ack_within`, a voice call placed
by the PBX; `ack_within` after that the next person is alerted the same way;
after the last person the next round starts again from the first, `rounds` times.
An acknowledgement by anyone stops everything still due. The plan depends only on
when the ticket came in and the order at that instant, so every node and every
restart computes the same steps; each step has a key (round, person, channel)
that the store records once, so nobody is alerted twice for one step.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Via(StrEnum):
    SMS = "sms"
    CALL = "call"


@dataclass(frozen=True)
class Step:
    round: int  # from 1
    person: str
    via: Via
    due: datetime

    @property
    def key(self) -> str:
        return f"r{self.round}:{self.via}:{self.person}"


def plan(order: Sequence[str], started: datetime, ack_within: timedelta, rounds: int,
         call: bool = True) -> list[Step]:
    """Every step, in time order (without `call`, SMS only: one per `ack_within`)."""
    if ack_within <= timedelta(0) or rounds < 1:
        raise ValueError("ack_within must be positive and rounds at least 1")
    steps: list[Step] = []
    at = started
    for round_ in range(1, rounds + 1):
        for person in order:
            steps.append(Step(round_, person, Via.SMS, at))
            at += ack_within
            if call:
                steps.append(Step(round_, person, Via.CALL, at))
                at += ack_within
    return steps


def due(steps: Sequence[Step], now: datetime, done: Collection[str],
        acknowledged: bool) -> list[Step]:
    """The steps to carry out now: due, not done yet, and nobody has acknowledged."""
    if acknowledged:
        return []
    return [s for s in steps if s.due <= now and s.key not in done]


def unanswered_since(steps: Sequence[Step], ack_within: timedelta) -> datetime | None:
    """When the plan has run out with nobody acknowledging (the last step's wait is
    over): the moment to tell the supervisors. None for an empty plan."""
    return steps[-1].due + ack_within if steps else None
