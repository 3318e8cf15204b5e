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
the ticket itself. One with less than `min_seconds` up to its last sound is no
message, as in the flow. The
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
import sys
import wave
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from nohold.aio import every
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.ari_apps.afterhours.voicemail import ticket_caller
from nohold.audio import AudioError, duration_seconds
from nohold.callbackdb.tickets import Outcome, TicketStore
from nohold.decisions.numbers import NumberPolicy
from nohold.decisions.partner import Message, MessageFile, message_file, voicemail_report

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
# The mean magnitude of 20 ms of audio above which it is sound, not silence: Asterisk's
# own default (dsp.conf silencethreshold), which ends a recording.
SILENCE = 256


@dataclass(frozen=True)
class _Found:
    name: str
    recording: MessageFile
    changed_at: float  # the file's mtime (epoch seconds)


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
        self._warned: set[str] = set()  # files skipped with a warning (said once)
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
            try:
                made += await self._settle(directory, item, now)
            except (OperationalError, InterfaceError):
                raise  # the database is down: this pass ends, the next one tries again
            except (SQLAlchemyError, OSError, AudioError) as exc:
                # This file alone (unreadable, a row the database refuses): the others
                # go on, and it is said once.
                if item.name not in self._warned:
                    log.warning("voicemail_sweep_skipped file=%s error=%r", item.name, exc)
                    self._warned.add(item.name)
                continue
            self._done.add(item.name)
        return made

    async def _settle(self, directory: Path, item: _Found, now: datetime) -> int:
        rec = item.recording
        partner_id = rec.partner_id
        if await self.store.by_partner_id(partner_id) is not None:
            return 0  # ticketed before (a restart, another node, nohold's own flow)
        vm = self.after.voicemail
        seconds = await asyncio.to_thread(sound_seconds, directory / item.name)
        if seconds < vm.min_seconds:
            log.info("voicemail_none call=%s caller=%s reason=no_message seconds=%.1f via=%s",
                     rec.call_id, rec.caller or "-", seconds, _by(rec))
            return 0
        path = f"{vm.recording_dir}/{item.name}"  # as the PBX names it
        message = Message(call_id=rec.call_id, caller=ticket_caller(rec.caller, self.numbers),
                          customer="",
                          reason="closed", partner_status=rec.partner_status, recording=path,
                          seconds=seconds,
                          received_at=datetime.fromtimestamp(item.changed_at, UTC))
        report = replace(voicemail_report(message, vm.urgency, vm.category),
                         partner_id=partner_id)
        # Only new: a ticket written meanwhile (the flow, another node) stays as it is.
        ticket, outcome, _ = await self.store.report(report, via=VIA, now=now, only_new=True)
        if outcome is not Outcome.CREATED:
            return 0
        log.info("voicemail_ticket ticket=%s outcome=%s partner_id=%s seconds=%.1f "
                 "recording=%s via=%s", ticket.id, outcome, ticket.partner_id,
                 seconds, path, _by(rec))
        self.on_ticket()
        return 1


def _by(rec: MessageFile) -> str:
    """Who recorded it, for the log: Asterisk alone, or nohold's flow (swept later)."""
    return "asterisk" if rec.alone else "sweep"


def _look(directory: Path, done: set[str]) -> list[_Found]:
    """The directory's voice messages not settled yet (blocking: a thread). A file that
    vanishes or cannot be read meanwhile is skipped: the others go on."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in done:
                continue
            recording = message_file(entry.name)
            if recording is None:
                continue
            try:
                if not entry.is_file():
                    continue
                changed_at = entry.stat().st_mtime
            except OSError:
                continue
            found.append(_Found(entry.name, recording, changed_at))
    return found


def sound_seconds(path: Path) -> float:
    """How long the message is, up to the end of its last sound (blocking). Asterisk
    keeps a second of the silence that ended a recording, and a caller who says nothing
    leaves only silence: both count for nothing here, as in nohold's own flow (where
    Asterisk trims it). A WAV whose header Asterisk never finished (it stopped
    mid-message) is read as its own `wav` is written, 8 kHz 16-bit mono: a message is
    never lost for want of a header. Another kind of file counts by its length."""
    rate = 8000
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getsampwidth(), w.getnchannels()) != (2, 1):
                return duration_seconds(path)
            rate = w.getframerate()
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        pcm = b""
    if not pcm:  # no header, or one that says 0 frames
        pcm = path.read_bytes()[WAV_HEADER:]
    samples = array("h")
    samples.frombytes(pcm[:len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    frame = rate // 50  # 20 ms
    last_sound = 0
    for start in range(0, len(samples), frame):
        chunk = samples[start:start + frame]
        if sum(map(abs, chunk)) > SILENCE * len(chunk):
            last_sound = start + len(chunk)
    return last_sound / rate
