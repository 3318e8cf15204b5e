"""The notice ledger's SQLite writes on the event loop itself, when they cost microseconds.

A group-committed batch (the claims' INSERT ... ON CONFLICT DO NOTHING RETURNING,
the outcomes' UPDATE, one commit) on a local SQLite file in WAL mode with
synchronous=NORMAL is a few page writes into the WAL and no fsync: tens of
microseconds. Through SQLAlchemy and aiosqlite the same batch cost six round trips
to aiosqlite's worker thread, each waiting for the GIL held by a busy event loop:
that handover was the largest part of the wait between a caller's StasisStart and
the notice (bench/README.md). So this module writes the batch with the stdlib
sqlite3 module, on one connection of its own, without leaving the loop.

It never blocks the loop on a lock or a disk sync, and it never decides anything
the threaded path would decide differently:
- busy_timeout is 0 and the transaction starts with BEGIN IMMEDIATE: a write lock
  held by anyone else (another process, the engine's own connection) fails at
  once, before anything is written, and the ledger hands the batch to its threaded
  path, which waits for the lock (busy_timeout) exactly as before;
- any other error rolls back and hands the batch over too: that path then meets
  the same error and handles it as it always has (outbox, row by row). SQLite's
  atomic commit means a failed COMMIT wrote nothing, so the retry cannot see a
  half-done claim;
- durability is the engine's: WAL, synchronous=NORMAL (callbackdb/engine.py),
  and the same unique key on call_id decides between channels and nodes;
- the WAL's checkpoint (which fsyncs) is not run on this connection
  (wal_autocheckpoint=0): `checkpoint_due()` tells the ledger when to run a
  passive one off the loop;
- it is used only in WAL mode: in rollback-journal mode every commit fsyncs.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import URL

log = logging.getLogger("nohold.notice")

# In-loop commits between two passive checkpoints run off the loop. A claim batch
# writes 2-4 pages to the WAL, so this keeps the WAL near SQLite's own default
# of 1000 pages between checkpoints.
CHECKPOINT_EVERY = 200

_INSERT = (
    "INSERT INTO notice_plays (call_id, channel_id, caller, notice_version, started_at, outcome)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING RETURNING call_id"
)
_UPDATE = (
    "UPDATE notice_plays SET outcome = ?, finished_at = ? WHERE call_id = ? AND outcome = 'playing'"
)


def sqlite_file(url: URL) -> Path | None:
    """The database file of a plain file URL; None for anything else (PostgreSQL,
    :memory:, URLs with options this module would not honour)."""
    if url.get_backend_name() != "sqlite" or url.query:
        return None
    if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


class InLoopSqlite:
    """One stdlib sqlite3 connection, used only by the ledger's writer task (never
    two calls at once), on the loop's thread except for `open()`."""

    def __init__(self, path: Path, datetime_bind: Callable[[datetime | None], Any]) -> None:
        self.path = path
        # SQLAlchemy's own text form of a DateTime column, so the rows read back
        # through the ORM exactly as if the engine had written them.
        self._dt = datetime_bind
        self._con: sqlite3.Connection | None = None
        self.disabled = False  # not WAL: every batch takes the threaded path
        self._commits = 0

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def open(self) -> None:
        """Blocking (file open, first read of the schema): call it off the loop.
        Raises sqlite3.Error when the file cannot be opened (it is never created
        here: that, like every other failure, is left to the threaded path)."""
        uri = f"file:{quote(str(self.path.absolute()))}?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None,
                              check_same_thread=False, cached_statements=16)
        try:
            con.execute("PRAGMA busy_timeout=0")
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                # The engine turns WAL on at connect; do the same, or step aside.
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.info("notice_ledger_inloop_off journal_mode=%s", mode)
                self.disabled = True
                con.close()
                return
            con.execute("PRAGMA synchronous=NORMAL")  # as callbackdb/engine.py
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            con.close()
            raise
        self._con = con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def write(self, rows: list[dict[str, Any]], finishes: list[dict[str, Any]]) -> set[str] | None:
        """One transaction: the claims (one per call_id), then the outcomes. Returns
        the call_ids whose claim this transaction inserted, or None when it wrote
        nothing and the batch must take the threaded path (locked, or any error)."""
        con = self._con
        assert con is not None
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # Busy (someone else is writing): nothing done, the threaded path waits.
            log.debug("notice_ledger_inloop_busy error=%s", exc)
            return None
        try:
            won: set[str] = set()
            for row in rows:
                cur = con.execute(_INSERT, (
                    row["call_id"], row["channel_id"], row["caller"], row["notice_version"],
                    self._dt(row["started_at"]), row["outcome"],
                ))
                won.update(str(call_id) for (call_id,) in cur.fetchall())
            if finishes:
                con.executemany(_UPDATE, [
                    (p["b_outcome"], self._dt(p["b_finished_at"]), p["b_call_id"])
                    for p in finishes
                ])
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            if con.in_transaction:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:
                    # The connection is in a state we do not know: drop it, reopen later.
                    self.close()
            log.debug("notice_ledger_inloop_failed error=%r", exc)
            return None
        self._commits += 1
        return won

    def checkpoint_due(self) -> bool:
        """True once every CHECKPOINT_EVERY in-loop commits (and resets the count)."""
        if self._commits < CHECKPOINT_EVERY:
            return False
        self._commits = 0
        return True
