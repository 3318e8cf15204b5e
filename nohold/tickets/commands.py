"""`nohold tickets list|show|ack|resolve|reopen`: the partner's tickets, for technicians and
supervisors.

They work on the database alone (no running nohold, no Asterisk), with the same
guarded updates as the service, so two people resolving at once resolve it once.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click

from nohold.callbackdb.tickets import (
    EventRecord,
    NoSuchTicket,
    NotAllowed,
    TicketRecord,
    TicketStore,
)
from nohold.db_commands import on_database
from nohold.decisions.tickets import MAX_ACTOR, MAX_NOTE, State
from nohold.tickets.followup import record_answer

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[[TicketStore], Awaitable[T]]) -> T:
    return on_database(ctx.obj["load_settings"](), "the tickets' tables",
                       lambda engine: work(TicketStore(engine)))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _first_line(text: str, width: int = 50) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 1] + "…"


def _line(t: TicketRecord) -> str:
    return (f"{t.id:>6}  {t.state.value:<12} {t.urgency.value:<6} {t.category.value:<7} "
            f"{t.partner_id:<14} {t.caller or 'withheld':<14} {_when(t.received_at)}  "
            + _first_line(t.text))


def _who(by: str | None) -> str:
    if by:
        return by[:MAX_ACTOR]
    try:
        return getpass.getuser()[:MAX_ACTOR]
    except (KeyError, OSError):
        return "cli"


STATES = ("open", "acknowledged", "resolved", "unresolved", "all")


@click.group("tickets")
def tickets() -> None:
    """The partner's tickets: list, show, acknowledge, resolve, reopen."""


@tickets.command("list")
@click.option("--state", "state", type=click.Choice(STATES), default="unresolved",
              show_default=True, help="unresolved = open and acknowledged.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of tickets.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.pass_context
def list_tickets(ctx: click.Context, state: str, as_json: bool, limit: int) -> None:
    """Tickets, the newest first."""
    states: list[State] | None = {
        "all": None, "unresolved": [State.OPEN, State.ACKNOWLEDGED]}.get(
        state, [State(state)] if state in {s.value for s in State} else None)
    found = _run(ctx, lambda store: store.find(states, limit))
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in found], indent=1, ensure_ascii=False))
        return
    for t in found:
        click.echo(_line(t))
    if not found:
        click.echo("no tickets" if state == "all" else f"no {state} tickets")


@tickets.command("show")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, ticket_id: int, as_json: bool) -> None:
    """One ticket with its history."""

    async def work(store: TicketStore) -> tuple[TicketRecord | None, list[EventRecord]]:
        return await store.get(ticket_id), await store.events(ticket_id)

    record, events = _run(ctx, work)
    if record is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        out = record.as_dict()
        out["events"] = [e.as_dict() for e in events]
        click.echo(json.dumps(out, indent=1, ensure_ascii=False))
        return
    for key, value in record.as_dict().items():
        if key != "text":
            click.echo(f"{key:<16} {value if value not in ('', None) else '-'}")
    click.echo("text:")
    for line in record.text.splitlines():
        click.echo(f"  {line}")
    click.echo("history:")
    for e in events:
        click.echo(f"  {_when(e.at)}  {e.kind:<12} via {e.via or '-'}"
                   + (f" by {e.actor}" if e.actor else "") + (f": {e.note}" if e.note else ""))


def _move(ctx: click.Context, ticket_id: int,
          work: Callable[[TicketStore, datetime], Awaitable[tuple[TicketRecord, bool]]],
          done: str) -> None:
    try:
        record, moved = _run(ctx, lambda store: work(store, datetime.now(UTC)))
    except NoSuchTicket:
        raise click.ClickException(f"no ticket {ticket_id}") from None
    except NotAllowed as exc:
        raise click.ClickException(f"ticket {ticket_id}: {exc}") from None
    if moved:
        click.echo(f"ticket {record.id} ({record.partner_id}) {done}")
    else:
        click.echo(f"ticket {record.id} ({record.partner_id}) was {record.state.value} "
                   f"already (by {record.acknowledged_by or '-'} at "
                   f"{_when(record.acknowledged_at)}): nothing changed")


def _note(value: str) -> str:
    if not value.strip():
        raise click.BadParameter("say what was done (it is kept in the history)",
                                 param_hint="'--note'")
    if len(value) > MAX_NOTE:
        raise click.BadParameter(f"at most {MAX_NOTE} characters", param_hint="'--note'")
    return value.strip()


@tickets.command("ack")
@click.argument("ticket_id", type=int)
@click.option("--by", default=None, help="Who acknowledges (default: your login name).")
@click.option("--note", default="", help="Optional words for the history.")
@click.pass_context
def ack(ctx: click.Context, ticket_id: int, by: str | None, note: str) -> None:
    """Acknowledge: someone is on it (the alerts stop)."""
    _move(ctx, ticket_id, lambda store, now: store.acknowledge(
        ticket_id, by=_who(by), via="cli", now=now, note=note[:MAX_NOTE]), "acknowledged")


@tickets.command("resolve")
@click.argument("ticket_id", type=int)
@click.option("--note", required=True, help="What was fixed (the follow-up call says it).")
@click.option("--by", default=None, help="Who fixed it (default: your login name).")
@click.pass_context
def resolve(ctx: click.Context, ticket_id: int, note: str, by: str | None) -> None:
    """Resolved, with what was done."""
    text = _note(note)

    async def work(store: TicketStore, now: datetime) -> tuple[TicketRecord, bool]:
        return await store.resolve(ticket_id, by=_who(by), via="cli", note=text,
                                   now=now), True

    _move(ctx, ticket_id, work, "resolved")


@tickets.command("reopen")
@click.argument("ticket_id", type=int)
@click.option("--note", required=True, help="Why (e.g. the customer says it is not fixed).")
@click.option("--by", default=None, help="Who reopens it (default: your login name).")
@click.pass_context
def reopen(ctx: click.Context, ticket_id: int, note: str, by: str | None) -> None:
    """Open again: the fix did not hold."""
    text = _note(note)

    async def work(store: TicketStore, now: datetime) -> tuple[TicketRecord, bool]:
        return await store.reopen(ticket_id, by=_who(by), via="cli", note=text, now=now), True

    _move(ctx, ticket_id, work, "reopened")


@tickets.command("followup")
@click.argument("ticket_id", type=int)
@click.argument("answer", type=click.Choice(["fixed", "not-fixed", "no-answer"]))
@click.option("--note", default="", help="What the customer said.")
@click.option("--by", default=None, help="The agent (default: your login name).")
@click.pass_context
def followup(ctx: click.Context, ticket_id: int, answer: str, note: str,
             by: str | None) -> None:
    """Record the follow-up call's answer: fixed, not-fixed (reopens the ticket, so the
    technician on duty is alerted again) or no-answer (unreachable)."""
    text = _note(note) if note else ""
    done, reopened = on_database(
        ctx.obj["load_settings"](), "the follow-ups' table",
        lambda engine: record_answer(engine, ticket_id, answer, _who(by), text,
                                     datetime.now(UTC)))
    if done is None:
        raise click.ClickException(f"ticket {ticket_id} has no follow-up call waiting for "
                                   "an answer")
    click.echo(f"ticket {ticket_id}: follow-up {done.state}"
               + (" -> reopened, the technician on duty is alerted again" if reopened
                  else ""))


COMMANDS = (tickets,)
