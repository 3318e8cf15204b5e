"""A booked callback's note as audio (ari_apps/callbacks/notes.py): rendered ahead by real
espeak-ng and sox for callbacks due soon, never for those far off, again when the
note changes; the whisper only ever reads a note that is ready."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nohold.ari_apps.callbacks.notes import AHEAD, NoteVoice, note_name
from nohold.audio import duration_seconds
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.config import PromptSettings

NOW = datetime(2026, 12, 9, 9, 50, tzinfo=UTC)


async def book(store: CallbackStore, number: str, at: datetime, note: str) -> int:
    record, _ = await store.request(
        call_id=f"c-{number}", number=number, queue="tech", arrived_at=at, now=NOW,
        promised=(at, at + timedelta(minutes=30)), expires_at=at + timedelta(minutes=30),
        due_at=at, note=note)
    return record.id


async def test_notes_of_callbacks_due_soon_are_rendered_ahead_and_only_then_read(
        db_url: str, tmp_path: Path) -> None:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    store = CallbackStore(engine, "node-a")
    voice = NoteVoice(PromptSettings(dir=tmp_path), store)
    try:
        soon = await book(store, "+48601000001", NOW + timedelta(minutes=10),
                          "Follow-up of ticket #7: fibre spliced")
        later = await book(store, "+48601000002", NOW + AHEAD + timedelta(minutes=1),
                           "Follow-up of ticket #8: router replaced")
        plain = await book(store, "+48601000003", NOW + timedelta(minutes=5), "")
        records = {r.id: r for r in await store.find()}
        assert voice.ready(records[soon]) is None  # nothing rendered yet: nothing read

        voice.prepare(NOW)
        await voice._task  # type: ignore[misc]
        name = voice.ready(records[soon])
        assert name == note_name(records[soon])
        assert duration_seconds(tmp_path / f"{name}.wav") > 1.0  # the sentence, spoken
        assert voice.ready(records[later]) is None and voice.ready(records[plain]) is None
        rendered = sorted(p.name for p in (tmp_path / "callbacks").iterdir())
        assert rendered == [f"{name.split('/')[1]}.wav"]

        # An edited note is a new text: not read until rendered again.
        edited = records[soon].__class__(**{**records[soon].__dict__, "note": "Ticket #7 again"})
        assert voice.ready(edited) is None and note_name(edited) != name
    finally:
        await voice.close()
        await engine.dispose()


async def test_a_pass_still_running_is_not_doubled(db_url: str, tmp_path: Path) -> None:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    voice = NoteVoice(PromptSettings(dir=tmp_path), CallbackStore(engine, "node-a"))
    try:
        voice.prepare(NOW)
        first = voice._task
        voice.prepare(NOW)
        assert voice._task is first
        await asyncio.gather(first)  # type: ignore[arg-type]
    finally:
        await voice.close()
        await engine.dispose()
