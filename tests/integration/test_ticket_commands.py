"""`nohold tickets list|show|ack|resolve|reopen` against a real SQLite database, no
Asterisk, no running nohold."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.tickets import TicketStore
from nohold.cli import main
from nohold.decisions.tickets import Category, Report, Urgency

NOW = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)


def nohold(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "nohold.toml"
    url = f"sqlite:///{tmp_path}/nohold.db"
    path.write_text(f'[database]\nurl = "{url}"\n')
    assert nohold(path, "db", "upgrade").exit_code == 0

    async def seed() -> None:
        engine = make_engine(url)
        try:
            store = TicketStore(engine)
            await store.report(Report("T-1", "+48601234567", Category.OUTAGE,
                                      "No internet since 20:00.\nLOS red.", Urgency.URGENT),
                               via="webhook", now=NOW)
            await store.report(Report("T-2", "", Category.BILLING, "Invoice twice"),
                               via="email", now=NOW + timedelta(minutes=1))
        finally:
            await engine.dispose()

    asyncio.run(seed())
    return path


def test_list_newest_first_unresolved_by_default(config):
    result = nohold(config, "tickets", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["2", "1"]
    assert "open" in lines[1] and "urgent" in lines[1] and "T-1" in lines[1]
    assert "No internet since 20:00." in lines[1] and "LOS" not in lines[1]
    assert "withheld" in lines[0]


def test_the_whole_life_of_a_ticket_from_the_command_line(config):
    result = nohold(config, "tickets", "ack", "1", "--by", "anna")
    assert result.exit_code == 0 and "acknowledged" in result.output, result.output
    result = nohold(config, "tickets", "ack", "1", "--by", "bob")
    assert result.exit_code == 0 and "nothing changed" in result.output
    assert "by anna" in result.output
    result = nohold(config, "tickets", "resolve", "1", "--note", "fibre spliced", "--by",
                    "anna")
    assert result.exit_code == 0 and "resolved" in result.output, result.output
    result = nohold(config, "tickets", "resolve", "1", "--note", "again")
    assert result.exit_code == 1 and "resolved already" in result.output
    listed = nohold(config, "tickets", "list", "--state", "resolved", "--json")
    (one,) = json.loads(listed.output)
    assert (one["id"], one["state"], one["resolution"], one["resolved_by"]) == (
        1, "resolved", "fibre spliced", "anna")
    assert [t["id"] for t in json.loads(nohold(config, "tickets", "list", "--json").output)] \
        == [2]
    result = nohold(config, "tickets", "reopen", "1", "--note", "customer: still down")
    assert result.exit_code == 0 and "reopened" in result.output, result.output
    shown = json.loads(nohold(config, "tickets", "show", "1", "--json").output)
    assert shown["state"] == "open" and shown["reopened"] == 1
    assert [(e["kind"], e["actor"] or "-", e["note"]) for e in shown["events"]][:3] == [
        ("reported", "-", "outage urgent"), ("acknowledged", "anna", ""),
        ("resolved", "anna", "fibre spliced")]
    assert shown["events"][3]["kind"] == "reopened"
    assert shown["events"][3]["via"] == "cli"


def test_show_in_words(config):
    result = nohold(config, "tickets", "show", "1")
    assert result.exit_code == 0, result.output
    assert "partner_id       T-1" in result.output
    assert "  No internet since 20:00.\n  LOS red." in result.output
    assert "reported" in result.output and "via webhook" in result.output


@pytest.mark.parametrize("args", [
    ("show", "9"), ("ack", "9"), ("resolve", "9", "--note", "x"), ("reopen", "9", "--note", "x")])
def test_an_unknown_ticket_is_one_line(config, args):
    result = nohold(config, "tickets", *args)
    assert result.exit_code == 1 and "no ticket 9" in result.output, result.output


def test_reopen_an_open_ticket_and_notes_that_say_nothing_are_refused(config):
    result = nohold(config, "tickets", "reopen", "2", "--note", "why")
    assert result.exit_code == 1 and "not resolved" in result.output
    result = nohold(config, "tickets", "resolve", "2", "--note", "  ")
    assert result.exit_code == 2 and "--note" in result.output
    result = nohold(config, "tickets", "resolve", "2")
    assert result.exit_code == 2 and "--note" in result.output


def test_a_database_without_the_tickets_schema_says_to_upgrade(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/old.db"\n')
    result = nohold(path, "tickets", "list")
    assert result.exit_code == 1 and "nohold db upgrade" in result.output, result.output
