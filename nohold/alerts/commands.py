"""`nohold alerts rota|show`: who is on duty, and what was sent for a ticket.

Acknowledging is `nohold tickets ack ID` (or an SMS reply): the ticket's state is what
stops the alerts, whoever moved it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from nohold.alerts.settings import AlertSettings
from nohold.callbackdb.alerts import AlertRecord, AlertStore, RunRecord
from nohold.db_commands import on_database


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


@click.group("alerts")
def alerts() -> None:
    """The on-duty technician's alerts: the rota, and what each ticket sent."""


@alerts.command("rota")
@click.option("--at", "at", default=None,
              help="an instant (ISO 8601, e.g. 2026-12-24T20:00+01:00); default now")
@click.pass_context
def rota(ctx: click.Context, at: str | None) -> None:
    """Who would be alerted now (or --at), first on duty first."""
    settings: AlertSettings = ctx.obj["load_settings"]().section(AlertSettings)
    try:
        when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        raise click.BadParameter(f"{at!r}: expected an ISO 8601 date and time",
                                 param_hint="'--at'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=settings.rota.tz)
    order = settings.rota.on_duty(when)
    click.echo(f"at {when.astimezone(settings.rota.tz).isoformat()} ({settings.timezone}):")
    if not order:
        click.echo("  nobody is on duty: add a shift, a cover or alerts.fallback")
    for i, name in enumerate(order):
        person = settings.people[name]
        click.echo(f"  {i + 1}. {name:<12} {person.mobile}"
                   + ("  (on duty)" if i == 0 else "  (then)"))


def _alert_line(a: AlertRecord) -> str:
    return (f"  {a.step:<18} {a.address:<14} due {_when(a.due_at)}  {a.state:<13} "
            f"attempts {a.attempts}" + (f"  id {a.message_id}" if a.message_id else "")
            + (f"  ({a.detail})" if a.detail else ""))


def _run_line(r: RunRecord) -> str:
    return (f"run {r.run}: {r.state} since {_when(r.started_at)}, order {r.people or '-'}"
            + (f", ended {_when(r.ended_at)}" if r.ended_at else "")
            + (f" ({r.why})" if r.why else ""))


@alerts.command("show")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def show(ctx: click.Context, ticket_id: int, as_json: bool) -> None:
    """Every alert a ticket sent: step, number, state, the SMSC's report."""
    async def work(store: AlertStore) -> tuple[list[RunRecord], list[AlertRecord]]:
        return await store.runs(ticket_id), await store.alerts(ticket_id)

    runs, sent = on_database(ctx.obj["load_settings"](), "the alerts' tables",
                             lambda engine: work(AlertStore(engine)))
    if as_json:
        click.echo(json.dumps({"runs": [vars(r) | {"started_at": _when(r.started_at),
                                                   "ended_at": _when(r.ended_at)}
                                        for r in runs],
                               "alerts": [a.as_dict() for a in sent]}, indent=2))
        return
    if not runs:
        click.echo(f"ticket {ticket_id}: no alerts (not open yet, or not seen by nohold run)")
        return
    for r in runs:
        click.echo(_run_line(r))
        for a in sent:
            if a.run == r.run:
                click.echo(_alert_line(a))


COMMANDS = (alerts,)
