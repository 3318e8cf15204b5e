"""`nohold-agi`: nohold's AGI routes as classic AGI, one process per call.

    exten => 200,1,AGI(nohold-agi,notice_once)       ; the notice, once per call
     same => n,AGI(nohold-agi,hours)                  ; NOHOLD_OPEN ... (or hours,NAME)
     same => n,AGI(nohold-agi,partner)                ; after hours: the partner's call

For admins who cannot run nohold's FastAGI server (`[agi]` in `nohold run`): the
routes are the very same handlers FastAGI serves, over pyst2 (agi_scripts/classic.py).
The process opens the config and the database itself, serves one call, and ends: it
needs no `nohold run`, and costs a Python start per call (bench/README.md).

Usage: `nohold-agi [--config FILE] ROUTE [ARG...]`; the config is `--config`, else
`$NOHOLD_CONFIG`, else /etc/nohold/nohold.toml. Whatever goes wrong (a bad argument,
an unknown route, a broken config, a database that does not answer) the dialplan goes
on: the error is written to stderr (Asterisk's console or journal) and to Asterisk's
verbose log, and `NOHOLD_AGI_STATUS` says what happened, as over FastAGI
(UNKNOWN_SCRIPT, BAD_INPUT, ERROR, or the route's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from nohold import logs, registry
from nohold.agi_scripts.agi import AgiError, Route, dispatch, report_status
from nohold.agi_scripts.channel_proof import asterisk_child
from nohold.agi_scripts.classic import ClassicAgi, open_session
from nohold.agi_scripts.notice_once import NoticeOnce
from nohold.ari_apps.afterhours.partner import PartnerRoute, PartnerRouter
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.calendar.agi import HoursRoute
from nohold.calendar.book import CalendarBook
from nohold.calendar.settings import CalendarSettings
from nohold.callbackdb.calendar_overrides import CalendarOverrideStore
from nohold.callbackdb.engine import DatabaseUrlError, make_engine
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.config import ConfigError, Settings

log = logging.getLogger("nohold.agi")

DEFAULT_CONFIG = Path("/etc/nohold/nohold.toml")
USAGE = "usage: nohold-agi [--config FILE] ROUTE [ARG...]"


class UsageError(Exception):
    pass


def parse_argv(argv: list[str]) -> tuple[Path | None, str, list[str]]:
    """(config given, route, the route's arguments)."""
    config: Path | None = None
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-c", "--config"):
            if not rest or not rest[0]:
                raise UsageError(f"{option} needs a file")
            config = Path(rest.pop(0))
        elif option.startswith("--config="):
            config = Path(option.removeprefix("--config="))
        else:
            raise UsageError(f"unknown option {option!r}")
    if not rest or not rest[0]:
        raise UsageError("no route given")
    return config, rest[0], rest[1:]


def config_path(given: Path | None, env: Mapping[str, str]) -> Path | None:
    if given is not None:
        return given
    if env.get("NOHOLD_CONFIG"):
        return Path(env["NOHOLD_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


# -- the routes, built from each feature's own handler over what this process opens --
Build = Callable[[Settings, AsyncEngine], AbstractAsyncContextManager[Route]]


@contextlib.asynccontextmanager
async def _notice_once(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Route]:
    # No outbox: the service's outbox file has one writer, the service. A database
    # that fails costs this call's proof row (notice_proof_not_saved), never the notice.
    ledger = NoticeLedger(engine)
    try:
        yield NoticeOnce(settings, ledger, asterisk_child)
        await ledger.drain()  # the outcome is written in the background: wait for it
    finally:
        ledger.close()


def _book(settings: Settings, engine: AsyncEngine) -> CalendarBook:
    return CalendarBook(settings.section(CalendarSettings), CalendarOverrideStore(engine))


@contextlib.asynccontextmanager
async def _hours(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Route]:
    yield HoursRoute(_book(settings, engine))


@contextlib.asynccontextmanager
async def _partner(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Route]:
    after = settings.section(AfterHoursSettings)
    yield PartnerRoute(PartnerRouter(after, _book(settings, engine)),
                       f"{settings.prompts.asterisk_path}/{after.prompt}")


def routes(settings: Settings) -> dict[str, Build]:
    """The routes this config serves, as `nohold run`'s FastAGI does (partner only
    with [afterhours] enabled)."""
    built: dict[str, Build] = {"notice_once": _notice_once, "hours": _hours}
    if settings.section(AfterHoursSettings).enabled:
        built["partner"] = _partner
    return built


async def serve(agi: ClassicAgi, settings: Settings, script: str) -> None:
    known = routes(settings)
    build = known.get(script)
    if build is None:
        await fail(agi, "UNKNOWN_SCRIPT", f"no route {script!r} (this config serves "
                   f"{', '.join(sorted(known))})")
        return
    engine = make_engine(settings.database.url)
    try:
        async with build(settings, engine) as route:
            await dispatch(agi, {script: route}, script, "agi")
    finally:
        await engine.dispose()


async def fail(agi: ClassicAgi, status: str, why: str) -> None:
    """An error the admin must see (stderr and Asterisk's verbose log); the dialplan
    goes on with NOHOLD_AGI_STATUS."""
    log.error("agi_%s channel=%s reason=%s", status.lower(), agi.channel, why)
    await agi.verbose(f"nohold-agi: {why}; NOHOLD_AGI_STATUS={status}")
    await report_status(agi, status)


async def _start(agi: ClassicAgi, argv: list[str]) -> None:
    try:
        given, script, args = parse_argv(argv)
    except UsageError as exc:
        await fail(agi, "UNKNOWN_SCRIPT" if "no route" in str(exc) else "BAD_INPUT",
                   f"{exc}; {USAGE}")
        return
    agi.args = args
    try:
        settings = registry.load_settings(config_path(given, os.environ))
    except (ConfigError, OSError) as exc:
        await fail(agi, "ERROR", f"config: {exc}")
        return
    logs.setup_logging(settings.logging.level, settings.logging.format)
    agi.command_timeout = settings.agi.command_timeout
    try:
        await serve(agi, settings, script)
    except DatabaseUrlError as exc:
        await fail(agi, "ERROR", f"database.url: {exc}")


async def _run(agi: ClassicAgi, argv: list[str]) -> None:
    try:
        await _start(agi, argv)
    except Exception as exc:  # noqa: BLE001 - never a traceback instead of a status
        log.exception("agi_failed channel=%s", agi.channel)
        await fail(agi, "ERROR", f"{type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if sys.stdin.isatty():
        print(f"{USAGE}\nnohold-agi is run by Asterisk's AGI(), e.g. "
              "AGI(nohold-agi,notice_once): it reads the call from its stdin.",
              file=sys.stderr)
        return 2
    logs.setup_logging("info")
    try:
        agi = open_session([])
    except AgiError as exc:
        log.error("agi_no_environment reason=%s (nohold-agi is run by Asterisk's AGI())", exc)
        return 1
    asyncio.run(_run(agi, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
