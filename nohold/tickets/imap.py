"""The email channel: poll the partner's mailbox over IMAP, every `poll_seconds`.

The stdlib's imaplib, each command in a worker thread (`asyncio.to_thread`): the event
loop never waits on the mail server, and a socket timeout bounds every command.

Each poll reads every mail in `mailbox`, oldest first (at most PER_POLL):
- from a sender not in `senders`, without a ticket id in the subject, unreadable, or
  with a report the partner must fix: one log line, moved to `rejected` (kept for a
  person to read, never read again by nohold);
- otherwise the report is stored (idempotent on the partner's ticket id, as the
  webhook), then the mail is marked \\Seen and moved to `processed`.
A mail is moved only after its ticket is committed: a crash between the two reads it
again next time, and the repeat changes nothing. A database that fails leaves the mail
where it is for the next poll.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nohold.decisions.tickets import BadReport
from nohold.feature import CheckFailed
from nohold.tickets.intake import Intake
from nohold.tickets.mail import BadMail, parse_message, report_fields, sender
from nohold.tickets.settings import ImapSettings

log = logging.getLogger("nohold.tickets.imap")

PER_POLL = 100


class ImapFailed(Exception):
    """The server refused a command; the message names it."""


def connect(imap: ImapSettings) -> imaplib.IMAP4:
    """Logged in, the working folders created, `mailbox` selected. Blocking."""
    conn: imaplib.IMAP4
    if imap.security == "tls":
        conn = imaplib.IMAP4_SSL(imap.host, imap.port, ssl_context=ssl.create_default_context(),
                                 timeout=imap.timeout)
    else:
        conn = imaplib.IMAP4(imap.host, imap.port, timeout=imap.timeout)
    try:
        if imap.security == "starttls":
            conn.starttls(ssl.create_default_context())
        conn.login(imap.user, imap.password)
        for folder in (imap.processed, imap.rejected):
            conn.create(folder)  # NO when it exists already: fine
        _ok(conn.select(imap.mailbox), f"SELECT {imap.mailbox}")
    except BaseException:
        conn.shutdown()
        raise
    return conn


def _ok(answer: tuple[str, Sequence[Any]], what: str) -> Sequence[Any]:
    typ, data = answer
    if typ != "OK":
        raise ImapFailed(f"{what}: {typ} {data!r}")
    return data


@dataclass
class Mailbox:
    """One logged-in connection; every method blocks (run it in a thread)."""

    conn: imaplib.IMAP4
    imap: ImapSettings

    def waiting(self) -> list[str]:
        """The mails' UIDs, oldest first."""
        data = _ok(self.conn.uid("SEARCH", "ALL"), "UID SEARCH ALL")
        found = data[0] if data and isinstance(data[0], bytes) else b""
        return sorted((u.decode() for u in found.split()), key=int)[:PER_POLL]

    def fetch(self, uid: str) -> bytes:
        data = _ok(self.conn.uid("FETCH", uid, "(BODY.PEEK[])"), f"UID FETCH {uid}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        raise ImapFailed(f"UID FETCH {uid}: no body in {data!r}")

    def move(self, uid: str, folder: str, seen: bool) -> None:
        if seen:
            _ok(self.conn.uid("STORE", uid, "+FLAGS", "(\\Seen)"), "UID STORE \\Seen")
        if self._can("MOVE"):
            _ok(self.conn.uid("MOVE", uid, folder), f"UID MOVE to {folder}")
            return
        _ok(self.conn.uid("COPY", uid, folder), f"UID COPY to {folder}")
        _ok(self.conn.uid("STORE", uid, "+FLAGS", "(\\Deleted)"), "UID STORE \\Deleted")
        if self._can("UIDPLUS"):
            _ok(self.conn.uid("EXPUNGE", uid), "UID EXPUNGE")
        else:
            _ok(self.conn.expunge(), "EXPUNGE")

    def _can(self, capability: str) -> bool:
        typ, data = self.conn.capability()
        words = b" ".join(d for d in data if isinstance(d, bytes)).upper().split()
        return typ == "OK" and capability.encode() in words

    def count(self) -> int:
        return len(self.waiting())

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            self.conn.shutdown()


@dataclass
class PollResult:
    taken: int = 0
    rejected: int = 0


class ImapPoller:
    def __init__(self, intake: Intake, imap: ImapSettings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.intake, self.imap, self.clock = intake, imap, clock

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is one log line, and the next one tries
        again."""
        log.info("tickets_imap_polling host=%s mailbox=%s every=%.0fs", self.imap.host,
                 self.imap.mailbox, self.imap.poll_seconds)
        while True:
            try:
                await self.poll()
            except (OSError, imaplib.IMAP4.error, ImapFailed) as exc:
                log.warning("tickets_imap_failed host=%s error=%s: %s", self.imap.host,
                            type(exc).__name__, str(exc)[:200])
            except Exception:  # noqa: BLE001 - the database, say: next poll retries
                log.exception("tickets_imap_failed host=%s", self.imap.host)
            await asyncio.sleep(self.imap.poll_seconds)

    async def poll(self) -> PollResult:
        """One pass over the mailbox."""
        box = Mailbox(await asyncio.to_thread(connect, self.imap), self.imap)
        result = PollResult()
        try:
            for uid in await asyncio.to_thread(box.waiting):
                raw = await asyncio.to_thread(box.fetch, uid)
                if await self._one(uid, raw):
                    await asyncio.to_thread(box.move, uid, self.imap.processed, True)
                    result.taken += 1
                else:
                    await asyncio.to_thread(box.move, uid, self.imap.rejected, False)
                    result.rejected += 1
        except asyncio.CancelledError:
            box.conn.shutdown()  # the thread blocked on it, if any, ends at once
            raise
        except BaseException:
            await asyncio.to_thread(box.conn.shutdown)
            raise
        await asyncio.to_thread(box.close)
        return result

    async def _one(self, uid: str, raw: bytes) -> bool:
        """True when the mail became (or updated) a ticket; False when it is set aside.
        Anything else (the database) propagates and leaves the mail in place."""
        where = f"uid={uid} mailbox={self.imap.mailbox}"
        try:
            message = parse_message(raw)
            frm = sender(message)
            if not self.imap.sender_allowed(frm):
                raise BadMail(f"sender {frm or '(none)'!r} is not in [tickets.imap] senders")
            fields = report_fields(message)
        except BadMail as exc:
            log.warning("ticket_mail_rejected %s reason=%r", where, str(exc))
            return False
        try:
            await self.intake.take(fields, via="email", now=self.clock())
        except BadReport as exc:
            log.warning("ticket_mail_rejected %s partner_id=%s field=%s reason=%r", where,
                        _safe(fields.get("id")), exc.field, exc.message)
            return False
        return True


def _safe(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9._:/#-]", "_", str(value))[:64] or "-"


async def check_mailbox(imap: ImapSettings) -> str:
    """`nohold check`: nohold can log in, select the mailbox and make its folders."""

    def look() -> int:
        box = Mailbox(connect(imap), imap)
        try:
            return box.count()
        finally:
            box.close()

    try:
        waiting = await asyncio.to_thread(look)
    except (OSError, imaplib.IMAP4.error, ImapFailed) as exc:
        raise CheckFailed(f"tickets: the IMAP mailbox {imap.user}@{imap.host}:{imap.port} "
                          f"({imap.security}): {type(exc).__name__}: {exc}; check "
                          "[tickets.imap] host, port, security, user and password") from None
    return (f"mailbox {imap.user}@{imap.host}/{imap.mailbox}: {waiting} waiting, read "
            f"every {imap.poll_seconds:.0f} s")
