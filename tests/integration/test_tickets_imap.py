"""The email channel (nohold/tickets/imap.py) against a real IMAP server (pymap) and a
real database: mails become tickets once, are moved to `processed` marked read; bad
mails are logged and set aside in `rejected`; nothing is lost when the database fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from nohold.feature import CheckFailed
from nohold.tickets.imap import ImapPoller, check_mailbox
from nohold.tickets.intake import Intake
from nohold.tickets.settings import ImapSettings, TicketSettings
from tests.support.imap_server import PASSWORD, USER, ImapServer, imap_server

NOW = datetime(2026, 3, 7, 21, 0, tzinfo=UTC)
PARTNER = "tickets@partner.example"


def mail(subject: str, body: str, *, sender: str = PARTNER, html: bool = False,
         date: str = "Sat, 07 Mar 2026 21:55:00 +0100") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Partner Desk <{sender}>"
    msg["To"] = "tickets@isp.example"
    msg["Subject"] = subject
    msg["Date"] = date
    if html:
        msg.set_content(f"<p>{body}</p>", subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes()


GOOD = mail("Ticket T-1001 no internet", "Caller: +48 601 234 567\nCategory: outage\n"
            "Urgency: urgent\nCustomer: 10042\nCall-Id: 1741377600.42\n\n"
            "No internet since 20:00.\nRouter LOS light red.\n")


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with imap_server() as server:
        yield server


def settings_for(server: ImapServer) -> ImapSettings:
    return ImapSettings(enabled=True, host=server.host, port=server.port, security="none",
                        user=USER, password=PASSWORD, senders=(PARTNER, "@backup.example"),
                        poll_seconds=0.2, timeout=5)


@pytest.fixture
async def poller(db_url: str, imap: ImapServer) -> AsyncIterator[ImapPoller]:
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        yield ImapPoller(Intake(TicketStore(engine), TicketSettings()), settings_for(imap),
                         clock=lambda: NOW)
    finally:
        await engine.dispose()


def store(poller: ImapPoller) -> TicketStore:
    return poller.intake.store


async def test_a_mail_becomes_a_ticket_and_is_moved_to_processed_marked_read(poller, imap):
    imap.deliver(GOOD)
    result = await poller.poll()
    assert (result.taken, result.rejected) == (1, 0)
    (ticket,) = await store(poller).find()
    assert (ticket.partner_id, ticket.channel, ticket.caller, ticket.category,
            ticket.urgency, ticket.customer, ticket.call_id) == (
        "T-1001", "email", "+48601234567", "outage", "urgent", "10042", "1741377600.42")
    assert ticket.text == "No internet since 20:00.\nRouter LOS light red."
    # Without Reported-At, the mail's Date.
    assert ticket.reported_at == datetime(2026, 3, 7, 20, 55, tzinfo=UTC)
    assert imap.mails("INBOX") == []
    ((flags, raw),) = imap.mails("nohold-processed")
    assert b"\\Seen" in flags and b"T-1001" in raw
    # Read once: the next poll finds nothing and the ticket is not touched.
    assert (await poller.poll()).taken == 0
    assert (await store(poller).find())[0].reports == 1


async def test_a_json_body_and_a_repeat_update_the_same_ticket(poller, imap):
    imap.deliver(GOOD)
    imap.deliver(mail("Re: Ticket #T-1001", '{"caller": "+48601234567", "category": "fault",'
                      ' "text": "Still down; a technician is expected", "urgency": "urgent"}',
                      sender="desk@backup.example"))
    result = await poller.poll()
    assert (result.taken, result.rejected) == (2, 0)
    (ticket,) = await store(poller).find()
    assert (ticket.category, ticket.text, ticket.reports, ticket.customer) == (
        "fault", "Still down; a technician is expected", 2, "10042")
    assert [e.kind for e in await store(poller).events(ticket.id)] == ["reported", "updated"]
    assert len(imap.mails("nohold-processed")) == 2


@pytest.mark.parametrize(("raw", "words"), [
    (mail("Ticket T-1", "Caller: 601234567\nCategory: outage\n\nx",
          sender="mallory@evil.example"), "not in [tickets.imap] senders"),
    (mail("no internet", "Caller: 601234567\nCategory: outage\n\nx"), "no ticket id"),
    (mail("Ticket T-1", "Caller: 601234567\nCategory: outage\n\nx", html=True),
     "no text/plain part"),
    (mail("Ticket T-1", "Caller: 601234567\nCategory: network\n\nx"), "field=category"),
    (mail("Ticket T-1", "Category: outage\n\nx"), "field=caller"),
    (mail("Ticket T-1", '{"id": "T-2", "caller": "601234567"}'), "not the subject's"),
    (mail("Ticket T-1", "{broken"), "not JSON"),
])
async def test_a_bad_mail_is_logged_and_set_aside_never_lost_and_the_rest_go_on(
        poller, imap, raw, words, caplog):
    imap.deliver(raw)
    imap.deliver(GOOD)
    with caplog.at_level(logging.WARNING, "nohold.tickets"):
        result = await poller.poll()
    assert (result.taken, result.rejected) == (1, 1)
    assert "ticket_mail_rejected" in caplog.text and words in caplog.text, caplog.text
    assert [t.partner_id for t in await store(poller).find()] == ["T-1001"]
    assert imap.mails("INBOX") == []
    ((flags, kept),) = imap.mails("nohold-rejected")
    assert kept.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert b"\\Seen" not in flags  # for a person to read
    # Never retried: the next poll has nothing to do.
    assert (await poller.poll()).rejected == 0


async def test_a_failing_database_leaves_the_mail_for_the_next_poll(tmp_path, imap):
    url = f"sqlite:///{tmp_path}/later.db"
    engine = make_engine(url)  # no schema yet: every write fails
    try:
        poller = ImapPoller(Intake(TicketStore(engine), TicketSettings()), settings_for(imap),
                            clock=lambda: NOW)
        imap.deliver(GOOD)
        with pytest.raises(Exception):  # noqa: B017 - the database's own error
            await poller.poll()
        assert len(imap.mails("INBOX")) == 1
        assert imap.mails("nohold-processed") == imap.mails("nohold-rejected") == []
        await upgrade_async(url)
        assert (await poller.poll()).taken == 1
        assert imap.mails("INBOX") == []
    finally:
        await engine.dispose()


async def test_the_loop_polls_survives_a_server_going_away_and_stops_cleanly(
        poller, imap, caplog):
    task = asyncio.create_task(poller.run())
    try:
        imap.deliver(GOOD)
        for _ in range(100):
            if await store(poller).find():
                break
            await asyncio.sleep(0.1)
        assert [t.partner_id for t in await store(poller).find()] == ["T-1001"]
        # A port where nothing listens: one line per failed poll, the loop goes on.
        poller.imap = replace(poller.imap, port=imap.port + 1 if imap.port < 65535 else 1)
        with caplog.at_level(logging.WARNING, "nohold.tickets"):
            for _ in range(50):
                if "tickets_imap_failed" in caplog.text:
                    break
                await asyncio.sleep(0.1)
        assert "tickets_imap_failed" in caplog.text
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_check_logs_in_and_counts_or_says_what_to_fix(imap):
    imap.deliver(GOOD)
    line = await check_mailbox(settings_for(imap))
    assert f"{USER}@{imap.host}/INBOX: 1 waiting" in line
    with pytest.raises(CheckFailed, match=r"\[tickets.imap\] host, port"):
        await check_mailbox(replace(settings_for(imap), password="wrong"))
