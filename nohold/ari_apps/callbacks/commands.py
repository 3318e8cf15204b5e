"""`nohold callbacks list|show|cancel|add|missed` and `nohold dnc add|remove|list`: for
supervisors and agents.

They work on the database alone (no Asterisk, no running service), so they also
work while nohold is stopped; every change goes through the same guarded updates
as the service's own, so a cancel racing a dial never half-happens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from nohold.ari_apps.callbacks.booking import NotBooked, Request, parse_window, schedule
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackRecord, CallbackStore, CannotCancel
from nohold.config import Settings
from nohold.db_commands import on_database
from nohold.decisions.callbacks import LIVE, State
from nohold.decisions.numbers import NumberRefused
from nohold.feature import Calendars

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[[CallbackStore, Settings], Awaitable[T]]) -> T:
    settings: Settings = ctx.obj["load_settings"]()
    node = settings.section(CallbackSettings).node
    return on_database(settings, "the callbacks' tables",
                       lambda engine: work(CallbackStore(engine, node), settings))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _line(r: CallbackRecord) -> str:
    return (f"{r.id:>6}  {r.state.value:<15} {r.queue:<12} {r.number:<16} "
            + (f"agreed {_when(r.due_at)}..{_when(r.expires_at)}" if r.scheduled
               else f"arrived {_when(r.arrived_at)}")
            + f"  attempts {r.attempts}"
            + (f"  due {_when(r.due_at)}" if r.due_at and not r.scheduled else "")
            + (f"  owner {r.owner_agent}" if r.owner_agent else "")
            + (f"  moved from {_when(r.moved_from)} ({r.moved_why})" if r.moved_from else "")
            + (f"  ({r.outcome})" if r.outcome else ""))


@click.group("callbacks")
def callbacks() -> None:
    """Callbacks promised to callers: list, show, cancel."""


@callbacks.command("list")
@click.option("--all", "everything", is_flag=True, help="Also completed, expired, cancelled.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per callback.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
@click.pass_context
def list_callbacks(ctx: click.Context, everything: bool, as_json: bool, limit: int) -> None:
    """Live callbacks (oldest arrival first)."""
    states = None if everything else sorted(LIVE)
    _print(_run(ctx, lambda store, _: store.find(states, limit)), as_json,
           "no callbacks" if everything else "no live callbacks")


def _print(found: list[CallbackRecord], as_json: bool, none: str) -> None:
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=1))
        return
    for record in found:
        click.echo(_line(record))
    if not found:
        click.echo(none)


@callbacks.command("show")
@click.argument("callback_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, callback_id: int, as_json: bool) -> None:
    """One callback with all its attempts."""

    async def work(store: CallbackStore, _: Settings) -> tuple[Any, Any]:
        return await store.get(callback_id), await store.attempts(callback_id)

    record, attempts = _run(ctx, work)
    if record is None:
        raise click.ClickException(f"no callback {callback_id}")
    if as_json:
        out = record.as_dict()
        out["attempt_rows"] = [a.as_dict() for a in attempts]
        click.echo(json.dumps(out, indent=1))
        return
    for key, value in record.as_dict().items():
        click.echo(f"{key:<18} {value}")
    for a in attempts:
        click.echo(f"attempt {a.attempt}: {a.outcome or 'in progress'} agent {a.agent or '-'} "
                   f"agent up {_when(a.agent_up_at)} rang {_when(a.customer_ring_at)} "
                   f"answered {_when(a.customer_answer_at)} ended {_when(a.ended_at)}"
                   + (f" cause {a.cause}" if a.cause else "")
                   + (f" answer->audio {a.answer_to_audio_ms:.0f} ms"
                      if a.answer_to_audio_ms is not None else ""))


@callbacks.command("cancel")
@click.argument("callback_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, callback_id: int) -> None:
    """Cancel a callback that is not being dialled right now."""

    async def work(store: CallbackStore, _: Settings) -> CallbackRecord:
        return await store.cancel(callback_id, datetime.now(UTC), reason="cancelled_by_cli")

    try:
        record = _run(ctx, work)
    except CannotCancel as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"cancelled: {_line(record)}")
    if record.state is State.CANCELLED and record.owner:
        click.echo("its placeholder leaves the queue within seconds")


def _duration(text: str) -> timedelta:
    try:
        return parse_window(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--window'") from None


@callbacks.command("add")
@click.option("--number", required=True, help="The customer's number (the allow-list applies).")
@click.option("--at", "at_text", required=True,
              help="The agreed time, ISO 8601 (e.g. 2026-12-04T18:30; no offset: the "
                   "callback calendar's zone).")
@click.option("--window", "window_text", default="30m", show_default=True,
              help="How long after --at the call may start, e.g. 30m, 1h.")
@click.option("--queue", default=None, help="Whose agents call (default: the first of "
              "callbacks.queues).")
@click.option("--owner", default="", help="The agent who promised it.")
@click.option("--note", default="", help="What it is about (the agent sees it).")
@click.pass_context
def add(ctx: click.Context, number: str, at_text: str, window_text: str, queue: str | None,
        owner: str, note: str) -> None:
    """Schedule a callback at an agreed time, inside the callback calendar."""
    settings: Settings = ctx.obj["load_settings"]()
    cb = settings.section(CallbackSettings)
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        raise click.BadParameter(f"{at_text!r}: expected an ISO time like 2026-12-04T18:30",
                                 param_hint="'--at'") from None
    request = Request(number, at, _duration(window_text), queue, owner, note)

    async def work(store: CallbackStore, _: Settings) -> tuple[CallbackRecord, bool]:
        calendars: Calendars = ctx.obj["calendars"](settings, store.engine)
        try:
            return await schedule(store, cb, calendars, request, now=datetime.now(UTC),
                                  call_id=f"cli-{uuid.uuid4().hex[:12]}")
        except NotBooked as exc:
            if exc.field == "queue":
                raise click.BadParameter(exc.reason, param_hint="'--queue'") from None
            raise click.ClickException(str(exc)) from None

    record, new = _run(ctx, work)
    if not new:
        raise click.ClickException(f"{record.number} already has a live callback in "
                                   f"{record.queue}: "
                                   f"{_line(record)} (cancel it first to agree a new time)")
    click.echo(f"scheduled: {_line(record)}")


@callbacks.command("missed")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
@click.pass_context
def missed(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Broken promises: scheduled callbacks whose window passed without a conversation."""
    _print(_run(ctx, lambda store, _: store.find([State.EXPIRED], limit, scheduled=True)),
           as_json, "no missed scheduled callbacks")


def _e164(settings: Settings, number: str) -> str:
    # Any valid number may be listed, allowed or not: refusing to call is always safe.
    try:
        return settings.section(CallbackSettings).numbers.parse(number).e164
    except NumberRefused as exc:
        raise click.ClickException(f"{number!r}: {exc}") from None


@click.group("dnc")
def dnc() -> None:
    """The do-not-call list, checked before every dial."""


@dnc.command("add")
@click.argument("number")
@click.option("--note", default="", help="Why (who asked, when).")
@click.pass_context
def dnc_add(ctx: click.Context, number: str, note: str) -> None:
    async def work(store: CallbackStore, settings: Settings) -> tuple[str, bool]:
        e164 = _e164(settings, number)
        return e164, await store.dnc_add(e164, datetime.now(UTC), note)

    e164, added = _run(ctx, work)
    click.echo(f"{e164}: {'added' if added else 'already listed'}")


@dnc.command("remove")
@click.argument("number")
@click.pass_context
def dnc_remove(ctx: click.Context, number: str) -> None:
    async def work(store: CallbackStore, settings: Settings) -> tuple[str, bool]:
        e164 = _e164(settings, number)
        return e164, await store.dnc_remove(e164)

    e164, removed = _run(ctx, work)
    if not removed:
        raise click.ClickException(f"{e164} is not on the do-not-call list")
    click.echo(f"{e164}: removed")


@dnc.command("list")
@click.pass_context
def dnc_list(ctx: click.Context) -> None:
    rows = _run(ctx, lambda store, _: store.dnc_list())
    for number, added, note in rows:
        click.echo(f"{number:<16} {_when(added)}  {note}")
    if not rows:
        click.echo("the do-not-call list is empty")


COMMANDS = (callbacks, dnc)
