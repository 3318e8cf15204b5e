"""Voice messages on disk without a ticket become tickets.

When nohold is down (or its voice-message flow failed), `[nohold-partner]` still
takes the caller's message: Asterisk records it by itself into the recording
directory as `nohold-vm-<call id>-asterisk-<DIALSTATUS>-<caller>.wav`. And a message
nohold's own flow recorded (`nohold-vm-<call id>-<DIALSTATUS>-<caller>.wav`) has no
ticket when the database failed just then. Nothing would tell the technician, so
nohold looks there at start and every `SWEEP_EVERY` seconds, and makes each finished
message without a ticket one (`vma-<call id>` for Asterisk's, `vm-<call id>` for its
own), which alerts like any other. A message is finished once its file has not
changed for `settle_seconds` (Asterisk writes a recording as the audio comes, every
20 ms); one of nohold's own waits at least `OWN_SETTLE`, time for its flow to write
the ticket itself. One shorter than `min_seconds` is no message, as in the flow. The
ticket's unique id makes a second look (a restart, a second node on the same
directory) change nothing; files older than `MAX_AGE` are left alone.

nohold may see the directory under another path (`sweep_dir`: a container's volume)
or not at all (another host): then one warning says so (`nohold check` says it too)
and the sweep keeps looking.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from nohold.aio import every
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.audio import AudioError, duration_seconds
from nohold.callbackdb.tickets import TicketStore
from nohold.decisions.numbers import NumberPolicy
from nohold.decisions.partner import Message, MessageFile, message_file, voicemail_report
from nohold.decisions.tickets import BadReport, parse_caller

log = logging.getLogger("nohold.afterhours")

SWEEP_EVERY = 15.0  # seconds between two looks at the recording directory
# A message nohold's flow recorded is its flow's to ticket: the sweep waits this long
# (seconds unchanged) before it takes one the flow could not (a database down).
OWN_SETTLE = 60.0
# Older files are history, not news: a database replaced or reset must not page the
# technician for every message ever left. An outage of a long weekend stays within it.
MAX_AGE = 7 * 86400.0
VIA = "voicemail"
WAV_HEADER = 44
WAV_BYTES_PER_SECOND = 16000


@dataclass(frozen=True)
class _Found:
    name: str
    recording: MessageFile
    changed_at: float  # the file's mtime (epoch seconds)
    seconds: float


class UnticketedMessages:
    def __init__(self, after: AfterHoursSettings, store: TicketStore,
                 default_region: str = "PL",
                 on_ticket: Callable[[], None] = lambda: None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.after = after
        self.store = store
        self.on_ticket = on_ticket
        self.numbers = NumberPolicy(default_region, ())
        self._now = now
        self._done: set[str] = set()  # file names settled in this process
        self._blind = False  # said once that the directory is not visible
        self._settles_in = 0.0  # seconds until the next unsettled message settles; 0: none

    async def run(self) -> None:
        await every(SWEEP_EVERY, self.sweep_once, log, "voicemail_sweep_failed",
                    (SQLAlchemyError, OSError), wait=self._until_next_look)

    async def _until_next_look(self, seconds: float) -> None:
        # A message seen still settling is looked at again as soon as it has settled,
        # not a whole SWEEP_EVERY later.
        await asyncio.sleep(min(seconds, self._settles_in) if self._settles_in else seconds)

    async def sweep_once(self) -> int:
        """One look; returns how many tickets it made."""
        directory = Path(self.after.voicemail.dir_here)
        try:
            found = await asyncio.to_thread(_look, directory, self._done)
        except OSError as exc:  # not there (another host), not readable
            if not self._blind:
                log.warning("voicemail_sweep_blind dir=%s error=%s: messages Asterisk "
                            "records alone there need the admin", directory,
                            type(exc).__name__)
                self._blind = True
            return 0
        self._blind = False
        made = 0
        now = self._now()
        self._settles_in = 0.0
        for item in found:
            settle = float(self.after.voicemail.settle_seconds)
            if not item.recording.alone:
                settle = max(settle, OWN_SETTLE)
            age = now.timestamp() - item.changed_at
            if age > MAX_AGE:
                self._done.add(item.name)
                continue
            if age < settle:  # still being recorded, perhaps: look again once settled
                wait = settle - age + 0.1
                self._settles_in = min(self._settles_in or wait, wait)
                continue
            made += await self._settle(directory, item, now)
            self._done.add(item.name)
        return made

    async def _settle(self, directory: Path, item: _Found, now: datetime) -> int:
        rec = item.recording
        partner_id = rec.partner_id
        if await self.store.by_partner_id(partner_id) is not None:
            return 0  # ticketed before (a restart, another node)
        vm = self.after.voicemail
        if item.seconds < vm.min_seconds:
            log.info("voicemail_none call=%s caller=%s reason=no_message seconds=%s via=%s",
                     rec.call_id, rec.caller or "-", item.seconds, _by(rec))
            return 0
        path = f"{vm.recording_dir}/{item.name}"  # as the PBX names it
        message = Message(call_id=rec.call_id, caller=self._caller(rec.caller), customer="",
                          reason="closed", partner_status=rec.partner_status, recording=path,
                          seconds=item.seconds,
                          received_at=datetime.fromtimestamp(item.changed_at, UTC))
        report = replace(voicemail_report(message, vm.urgency, vm.category),
                         partner_id=partner_id)
        ticket, outcome, _ = await self.store.report(report, via=VIA, now=now)
        log.info("voicemail_ticket ticket=%s outcome=%s partner_id=%s seconds=%.1f "
                 "recording=%s via=%s", ticket.id, outcome, ticket.partner_id,
                 item.seconds, path, _by(rec))
        self.on_ticket()
        return 1

    def _caller(self, raw: str) -> str:
        """E.164 for the ticket, "" when withheld or not a number (the ticket says so)."""
        try:
            return parse_caller(raw, self.numbers) if raw else ""
        except BadReport:
            return ""


def _by(rec: MessageFile) -> str:
    """Who recorded it, for the log: Asterisk alone, or nohold's flow (swept later)."""
    return "asterisk" if rec.alone else "sweep"


def _look(directory: Path, done: set[str]) -> list[_Found]:
    """The directory's voice messages not settled yet (blocking: a thread)."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in done:
                continue
            recording = message_file(entry.name)
            if recording is None or not entry.is_file():
                continue
            stat = entry.stat()
            found.append(_Found(entry.name, recording, stat.st_mtime,
                                _seconds(Path(entry.path), stat.st_size)))
    return found


def _seconds(path: Path, size: int) -> float:
    """The recording's length. A WAV whose header was never finished (Asterisk stopped
    mid-message) says 0 frames or cannot be read: its size counts then, as 8 kHz
    16-bit mono (Asterisk's `wav`), so a message is never lost for want of a header."""
    try:
        seconds = duration_seconds(path)
    except AudioError:
        seconds = 0.0
    return seconds or max(0.0, (size - WAV_HEADER) / WAV_BYTES_PER_SECOND)
