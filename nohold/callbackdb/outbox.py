"""The proof outbox: notice claims and outcomes the database could not take in time.

An append-only JSON-lines file beside the database. Each record is flushed and
fsynced before the writer moves on, so a `kill -9` or a power cut right after
loses nothing; the ledger's writer replays the file into the database, in file
order, in the same transaction as its next batch, and empties the file only
after that commit. A crash between the commit and the truncation replays the
records once more, which is harmless: a claim is an insert that ignores a
call_id already present and an outcome only updates a row still `playing`.

Only the ledger's writer task touches the file, one operation at a time, so it
needs no lock. The blocking file calls run in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("nohold.notice")

_DATES = ("started_at", "b_finished_at")


def _encode(kind: str, values: dict[str, Any]) -> str:
    body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
    return json.dumps({"kind": kind, "values": body}, separators=(",", ":")) + "\n"


def _decode(line: str) -> tuple[str, dict[str, Any]] | None:
    try:
        record = json.loads(line)
        kind, values = record["kind"], dict(record["values"])
        for key in _DATES:
            if key in values:
                values[key] = datetime.fromisoformat(values[key])
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in ("claim", "finish"):
        return None
    return kind, values


class ProofOutbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def append(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Durable once this returns (fsynced). Raises OSError when the disk refuses."""
        text = "".join(_encode(kind, values) for kind, values in records)
        await asyncio.to_thread(self._append_sync, text)

    def _append_sync(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    async def read(self) -> list[tuple[str, dict[str, Any]]]:
        return await asyncio.to_thread(self.read_sync)

    def read_sync(self) -> list[tuple[str, dict[str, Any]]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(lines, 1):
            decoded = _decode(line)
            if decoded is None:
                # A line torn by a crash mid-write (only the last can be) or edited by
                # hand: skipping it must not cost the records after it.
                log.warning("notice_outbox_bad_line path=%s line=%d", self.path, number)
                continue
            records.append(decoded)
        return records

    def backlog_sync(self) -> int:
        """How many proofs wait in the file (for `nohold check`, the metrics)."""
        return len(self.read_sync())

    async def clear(self, replayed: int) -> None:
        """Drop the first `replayed` records (those just committed). Records appended
        meanwhile cannot exist (one writer), but keeping any tail costs nothing."""
        await asyncio.to_thread(self._clear_sync, replayed)

    def _clear_sync(self, replayed: int) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        except FileNotFoundError:
            return
        rest = [line for line in lines if _decode(line) is not None][replayed:]
        if not rest:
            self.path.unlink(missing_ok=True)
            return
        # Written aside and renamed: a crash mid-rewrite leaves the old file whole.
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(rest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
