"""A booked callback's note, read to the agent after the whisper (a follow-up: "Follow-up
of ticket #42: fibre spliced").

Text-to-speech takes a few hundred milliseconds, too long to wait for while an agent is
connected and the customer's phone is about to ring: notes are rendered ahead, for
scheduled callbacks due within `AHEAD`, by a task of their own beside the dialler's
cycle. The whisper reads a note only when its audio is ready, and never waits for it.
The file name carries a digest of the text: an edited note is rendered again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nohold.callbackdb.callbacks import CallbackRecord, CallbackStore
from nohold.config import PromptSettings
from nohold.decisions.callbacks import WAITING
from nohold.prompts import PromptError, speak

log = logging.getLogger("nohold.callbacks.notes")

AHEAD = timedelta(minutes=15)


def note_name(record: CallbackRecord) -> str:
    """The prompt name (relative to the prompts directory) of the record's note."""
    digest = hashlib.sha256(record.note.encode()).hexdigest()[:10]
    return f"callbacks/note-{record.id}-{digest}"


class NoteVoice:
    def __init__(self, prompts: PromptSettings, store: CallbackStore) -> None:
        self.prompts = prompts
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self._failed: set[str] = set()  # said once, not tried again every second

    def _path(self, name: str) -> Path:
        return Path(self.prompts.dir) / f"{name}.wav"

    def ready(self, record: CallbackRecord) -> str | None:
        """The note's prompt name when its audio is there; None otherwise."""
        if not (record.scheduled and record.note):
            return None
        name = note_name(record)
        return name if self._path(name).exists() else None

    def prepare(self, now: datetime) -> None:
        """Renders, in the background, the notes of callbacks due soon (one pass at a
        time: a pass still running is not doubled)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._render_due(now))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _render_due(self, now: datetime) -> None:
        try:
            await self._render_due_once(now)
        except Exception:  # noqa: BLE001 - the dialler's next cycle tries again
            log.exception("callback_notes_pass_failed")

    async def _render_due_once(self, now: datetime) -> None:
        for record in await self.store.find(tuple(WAITING), scheduled=True):
            due = record.due_at
            if not record.note or due is None or due.astimezone(UTC) > now + AHEAD:
                continue
            name = note_name(record)
            target = self._path(name)
            if target.exists() or name in self._failed:
                continue
            try:
                await asyncio.to_thread(speak, record.note, self.prompts.language, target)
                log.info("callback_note_ready callback=%s", record.id)
            except (PromptError, OSError) as exc:
                self._failed.add(name)
                log.warning("callback_note_not_spoken callback=%s error=%s", record.id, exc)
