"""Sends what the features put in the SMS outbox (callbackdb/sms.py), on every node.

Each pass claims the messages due (a lease per message), hands each to the link, and
records the SMSC's answer: its message id, or a retry after a growing pause (the
alerts' own: 5 s doubling to 5 min) while the SMSC is down or refuses. A message
whose `expires_at` has passed (a confirmation of a window already over) is not sent.
Delivery reports come back through the link and land on the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from nohold.aio import every
from nohold.callbackdb import sms as rows
from nohold.callbackdb.sms import SmsOutbox, SmsRecord
from nohold.config import SMS_SEND_TIMEOUT
from nohold.decisions.alerts import Delivery, retry_after
from nohold.sms.link import Inbound, SmsFailed, SmsLink

log = logging.getLogger("nohold.sms")

TICK = 1.0  # seconds between passes when nobody nudges
LEASE = timedelta(seconds=60)  # longer than the link's own wait for the SMSC's answer
PER_PASS = int(LEASE.total_seconds() // SMS_SEND_TIMEOUT) - 1  # 3


Wait = Callable[[float], Awaitable[object]]


class Sender:
    """`wait(seconds)` returns early when a feature enqueued something (the service's
    signals): a confirmation leaves within a pass, not a tick later."""

    def __init__(self, outbox: SmsOutbox, link: SmsLink, wait: Wait = asyncio.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._outbox = outbox
        self._link = link
        self._wait = wait
        self._now = clock
        self._sending = 0  # sends whose message id is not recorded yet
        link.listen(self.on_inbound)

    async def run(self) -> None:
        await every(TICK, self.pass_once, log, "sms_outbox_pass_failed",
                    (SQLAlchemyError, OSError), wait=self._wait)

    async def pass_once(self) -> int:
        """Sends every message due now; how many were claimed."""
        # No more than can be sent within the lease at the SMSC's slowest: a claimed
        # message still waiting its turn when its lease ran out would be sent by
        # another node as well.
        claimed = await self._outbox.claim(self._now(), LEASE, limit=PER_PASS)
        for record in claimed:
            await self._send(record)
        return len(claimed)

    async def _send(self, record: SmsRecord) -> None:
        now = self._now()
        if now >= record.expires_at:
            await self._outbox.expire(record, "not sent before it expired", now)
            log.warning("sms_expired id=%s about=%s kind=%s attempts=%d", record.id,
                        record.about, record.kind, record.attempts - 1)
            return
        self._sending += 1
        try:
            message_id = await self._link.send(record.to_number, record.text)
        except SmsFailed as exc:
            self._sending -= 1
            at = self._now() + retry_after(record.attempts)
            await self._outbox.retry(record, at, str(exc), self._now())
            log.warning("sms_retry id=%s about=%s kind=%s attempt=%d error=%r retry_at=%s",
                        record.id, record.about, record.kind, record.attempts, str(exc),
                        at.isoformat(timespec="seconds"))
            return
        try:
            await self._outbox.sent(record, message_id, self._now())
        finally:
            self._sending -= 1
        log.info("sms_sent id=%s about=%s kind=%s to=%s message_id=%s", record.id,
                 record.about, record.kind, record.to_number, message_id)

    async def on_inbound(self, msg: Inbound) -> None:
        if msg.receipt is None:
            return
        state = {Delivery.DELIVERED: rows.DELIVERED,
                 Delivery.UNDELIVERABLE: rows.UNDELIVERABLE}.get(msg.receipt.delivery)
        if state is None:
            return
        record = await self._outbox.delivery(msg.receipt.message_id, state,
                                             msg.receipt.stat, self._now())
        if record is None and self._sending:
            # Perhaps the report of a message whose id is being recorded right now (a
            # fast SMSC): the SMSC is told to deliver it again, by when it will match.
            raise SmsFailed("a send is being recorded; deliver the report again")
        if record is not None:
            log.info("sms_report id=%s about=%s stat=%s", record.id, record.about,
                     msg.receipt.stat)
