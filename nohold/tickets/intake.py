"""One way in for a report, whichever channel brought it: validate it, store it, and
say in the log what happened (never the text or the numbers: personal data)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nohold.callbackdb.tickets import Outcome, TicketRecord, TicketStore
from nohold.decisions.numbers import NumberPolicy
from nohold.decisions.tickets import Ignored, validate
from nohold.tickets.settings import TicketSettings

log = logging.getLogger("nohold.tickets")


@dataclass(frozen=True)
class Taken:
    ticket: TicketRecord
    outcome: Outcome
    changed: tuple[str, ...]
    ignored: tuple[Ignored, ...]

    def as_dict(self) -> dict[str, Any]:
        t = self.ticket
        return {"ticket": {"id": t.id, "partner_id": t.partner_id, "state": str(t.state),
                           "category": str(t.category), "urgency": str(t.urgency),
                           "reports": t.reports},
                "outcome": str(self.outcome), "changed": list(self.changed),
                "ignored": [i.as_dict() for i in self.ignored]}


class Intake:
    def __init__(self, store: TicketStore, settings: TicketSettings,
                 on_ticket: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.settings = settings
        # Told after every ticket stored (the alerts loop wakes at once).
        self.on_ticket = on_ticket
        self.policy = NumberPolicy(settings.default_region, ())

    @property
    def replay_window(self) -> timedelta:
        # A timestamp may be max_age old or max_age ahead: remember keys that long, and
        # a minute more.
        return timedelta(seconds=2 * self.settings.max_age + 60)

    async def take(self, data: Mapping[str, Any], *, via: str, now: datetime,
                   delivery: str | None = None) -> Taken:
        """Validated and stored; BadReport (nothing written) or Replayed."""
        checked = validate(data, self.policy, now,
                           max_future=timedelta(seconds=self.settings.max_age))
        record, outcome, changed = await self.store.report(
            checked.report, via=via, now=now, delivery=delivery, keep=self.replay_window)
        log.info("ticket_%s ticket=%s partner_id=%s via=%s category=%s urgency=%s "
                 "state=%s changed=%s", outcome, record.id, record.partner_id, via,
                 record.category, record.urgency, record.state, ",".join(changed) or "-")
        self.on_ticket()
        for ignored in checked.ignored:
            log.warning("ticket_field_ignored ticket=%s partner_id=%s via=%s field=%s "
                        "reason=%r", record.id, record.partner_id, via, ignored.field,
                        ignored.reason)
        return Taken(record, outcome, changed, checked.ignored)
