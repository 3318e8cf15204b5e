"""`nohold hours` (is it open, why, until when) and `nohold hours override add|list|remove`.

They need the config and the database (for the overrides a supervisor set), never
Asterisk or a running nohold. Times without an offset are local times in the
calendar's zone; with one (`+01:00`, `Z`) they are instants.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime, tzinfo
from typing import TypeVar

import click

from nohold.calendar.book import build_calendars
from nohold.calendar.settings import (
    NOTE_MAX,
    CalendarSettings,
    CalendarSpec,
    parse_iso,
    utc_now,
)
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore, OverrideRow
from nohold.config import Settings
from nohold.db_commands import on_database
from nohold.decisions.hours import (
    Kind,
    Override,
    Status,
    local_instant,
    override_for,
    parse_window,
)

T = TypeVar("T")


def _settings(ctx: click.Context) -> tuple[Settings, CalendarSettings]:
    settings: Settings = ctx.obj["load_settings"]()
    return settings, settings.section(CalendarSettings)


def _spec(cals: CalendarSettings, name: str | None) -> CalendarSpec:
    try:
        return cals.spec(name)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="'--calendar'") from None


def _store(settings: Settings, work: Callable[[CalendarOverrideStore], Awaitable[T]]) -> T:
    return on_database(settings, "the calendar's overrides table",
                       lambda engine: work(CalendarOverrideStore(engine)))


def _instant(value: str, option: str) -> datetime:
    parsed = parse_iso(value, datetime)
    if not isinstance(parsed, datetime):
        raise click.BadParameter(
            f"{value!r}: expected a date and time, e.g. 2026-12-31T13:00 (in the calendar's "
            "zone) or 2026-12-31T13:00+01:00", param_hint=f"'{option}'")
    return parsed


def _local(tz: tzinfo, value: datetime) -> str:
    return value.astimezone(tz).isoformat(timespec="minutes")


def _status_lines(spec: CalendarSpec, at: datetime, status: Status) -> list[str]:
    tz = spec.tz
    head = f"{'open' if status.open else 'closed'}: {status.reason}"
    where = f"calendar {spec.name} ({spec.timezone}, {spec.holidays_label}) at {_local(tz, at)}"
    if status.next_change is None:
        change = "next change: none within a year"
    else:
        verb = "closes" if status.open else "opens"
        change = f"next change: {verb} {_local(tz, status.next_change)}"
    return [head, where, change]


@click.group("hours", invoke_without_command=True)
@click.option("--calendar", "name", default=None, metavar="NAME",
              help="Which calendar (default: [calendar] default, 'office').")
@click.option("--at", "at", default=None, metavar="ISO-TIME",
              help="Ask about this time instead of now (no offset: the calendar's zone).")
@click.option("--json", "as_json", is_flag=True,
              help='One line: {"open": bool, "reason": str, "next_change": ISO-TIME}.')
@click.pass_context
def hours(ctx: click.Context, name: str | None, at: str | None, as_json: bool) -> None:
    """Is the line open now (or --at), why not, and when that changes."""
    if ctx.invoked_subcommand is not None:
        if name or at or as_json:
            raise click.UsageError(f"--calendar, --at and --json go after `hours "
                                   f"{ctx.invoked_subcommand}` (or without it)")
        return
    settings, cals = _settings(ctx)
    spec = _spec(cals, name)
    now = utc_now()
    when = now if at is None else local_instant(spec.tz, _instant(at, "--at"))
    since = min(now, when)
    db = _store(settings, lambda store: store.by_calendar(since))
    calendar = build_calendars(cals, db, since)[spec.name]
    status = calendar.is_open(when)
    if as_json:
        click.echo(json.dumps({
            "open": status.open, "reason": status.reason,
            "next_change": (None if status.next_change is None
                            else status.next_change.astimezone(spec.tz).isoformat())},
            ensure_ascii=False))
        return
    for line in _status_lines(spec, when, status):
        click.echo(line)


@hours.group("override")
def override() -> None:
    """Extra closed or open periods, kept in the database (no restart needed)."""


def _describe(spec_tz: tzinfo, o: Override) -> str:
    return f"{_local(spec_tz, o.start)} to {_local(spec_tz, o.end)}"


@override.command("add")
@click.option("--calendar", "name", default=None, metavar="NAME",
              help="Which calendar (default: the default one).")
@click.option("--closed/--open", "closed", default=True, show_default=True,
              help="Close the line (default) or open it.")
@click.option("--day", default=None, metavar="YYYY-MM-DD", help="A whole day (or --hours).")
@click.option("--hours", "window", default=None, metavar="HH:MM-HH:MM",
              help="With --day: only these hours.")
@click.option("--from", "start", default=None, metavar="ISO-TIME", help="Start of a period.")
@click.option("--to", "end", default=None, metavar="ISO-TIME",
              help="End of the period (default: the end of --from's day).")
@click.option("--until", "until", default=None, metavar="ISO-TIME",
              help="Ignore the override from then on (default: never).")
@click.option("--note", default="", help="Why; said as the reason (and to the dialplan).")
@click.pass_context
def override_add(ctx: click.Context, name: str | None, closed: bool, day: str | None,
                 window: str | None, start: str | None, end: str | None, until: str | None,
                 note: str) -> None:
    """Close (or open) a calendar for a day, some hours, or a period."""
    settings, cals = _settings(ctx)
    spec = _spec(cals, name)
    tz = spec.tz
    if (day is None) == (start is None):
        raise click.UsageError("give either --day (with --hours for part of it) or --from")
    if window is not None and day is None:
        raise click.UsageError("--hours goes with --day; with --from, give --to")
    if end is not None and start is None:
        raise click.UsageError("--to needs --from")
    if len(note) > NOTE_MAX or any(ord(c) < 32 or ord(c) == 127 for c in note):
        raise click.BadParameter(f"at most {NOTE_MAX} characters on one line",
                                 param_hint="'--note'")
    the_day = None
    if day is not None:
        the_day = parse_iso(day, date)
        if not isinstance(the_day, date):
            raise click.BadParameter(f"{day!r}: expected a date, e.g. 2026-12-24",
                                     param_hint="'--day'")
    parsed_window = None
    if window is not None:
        try:
            parsed_window = parse_window(window)
        except ValueError as exc:
            raise click.BadParameter(f"{window!r}: {exc}", param_hint="'--hours'") from None
    kind = Kind.CLOSED if closed else Kind.OPEN
    try:
        made = override_for(
            tz, kind, day=the_day, window=parsed_window,
            start=None if start is None else _instant(start, "--from"),
            end=None if end is None else _instant(end, "--to"),
            expires=None if until is None else _instant(until, "--until"),
            note=note)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    now = utc_now()
    if made.until <= now:
        what = "expires" if made.expires is not None and made.expires <= made.end else "ends"
        raise click.UsageError(f"that override {what} before now ({_local(tz, now)}): "
                               "it would change nothing")
    row = _store(settings, lambda store: store.add(spec.name, made, now, _who()))
    click.echo(f"added override {row.id}: {_row_line(tz, row)}")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _row_line(tz: tzinfo, row: OverrideRow) -> str:
    return _line(tz, "", row.calendar, row.override).strip()


def _line(tz: tzinfo, ident: str, calendar: str, o: Override, now: datetime | None = None
          ) -> str:
    expiry = "-" if o.expires is None else _local(tz, o.expires)
    state = ""
    if now is not None and (o.expired(now) or o.end <= now):
        state = "  (over)"
    return (f"{ident:>6}  {calendar:<12} {o.kind.value:<6} {_describe(tz, o)}  "
            f"expires {expiry}  {o.note}{state}").rstrip()


@override.command("list")
@click.option("--calendar", "name", default=None, metavar="NAME",
              help="Only this calendar's (default: every calendar's).")
@click.option("--all", "everything", is_flag=True, help="Also those over or expired.")
@click.pass_context
def override_list(ctx: click.Context, name: str | None, everything: bool) -> None:
    """The overrides in force or to come: id, calendar, kind, period, expiry, note
    (id 'config' for those in the config file, which only the file changes)."""
    settings, cals = _settings(ctx)
    if name is not None:
        _spec(cals, name)
    now = utc_now()
    rows = _store(settings, lambda store: store.find(name, None if everything else now))
    lines = []
    for cal_name, spec in cals.calendars.items():
        if name is not None and cal_name != name:
            continue
        for o in spec.overrides:
            if everything or not (o.expired(now) or o.end <= now):
                lines.append((o.start, _line(spec.tz, "config", cal_name, o, now)))
    for row in rows:
        tz = _zone_of(cals, row.calendar)
        lines.append((row.starts_at, _line(tz, str(row.id), row.calendar, row.override, now)))
    for _, line in sorted(lines, key=lambda item: item[0]):
        click.echo(line)
    if not lines:
        click.echo("no overrides" + ("" if everything else " in force or to come"))


def _zone_of(cals: CalendarSettings, name: str) -> tzinfo:
    """The zone to show a row in (a calendar since removed from the config: the default's)."""
    spec = cals.calendars.get(name) or cals.spec()
    return spec.tz


@override.command("remove")
@click.argument("override_id", type=int)
@click.pass_context
def override_remove(ctx: click.Context, override_id: int) -> None:
    """Remove one override set with `add` (by its id from `list`)."""
    settings, cals = _settings(ctx)
    row = _store(settings, lambda store: store.remove(override_id))
    if row is None:
        raise click.ClickException(f"no override {override_id} in the database (config "
                                   "overrides are changed in the config file)")
    tz = _zone_of(cals, row.calendar)
    click.echo(f"removed override {row.id}: {_row_line(tz, row)}")


COMMANDS = (hours,)
