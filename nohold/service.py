"""`nohold run`: start-up checks, then the ARI applications until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from agi_scripts.fastagi import FastAgiServer
from agi_scripts.notice_once import NoticeOnce
from ari_apps.ari_client import AriClient, AriError, AriHttpError
from ari_apps.ivr.flow import IvrFlow
from ari_apps.ivr.stasis import IvrApp
from callbackdb.engine import make_engine
from callbackdb.migrate import current_revision, head_revision
from callbackdb.notice_ledger import NoticeLedger
from nohold.config import Settings
from nohold.decisions.peers import exposure_warnings
from nohold.prompts import PromptError, check_prompts

log = logging.getLogger("nohold.service")


class StartupError(Exception):
    """nohold cannot start; the message says what to fix."""


@dataclass
class Report:
    asterisk_version: str
    prompt_seconds: dict[str, float]
    db_revision: str


async def preflight(settings: Settings) -> Report:
    """Everything `nohold check` and `nohold run` verify before taking calls."""
    try:
        durations = check_prompts(settings)
    except PromptError as exc:
        raise StartupError(str(exc)) from None
    engine = make_engine(settings.database.url)
    try:
        revision = await current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot reach the DB"
        raise StartupError(f"database {settings.database.url!r} unreachable: {exc}") from None
    finally:
        await engine.dispose()
    if revision != head_revision():
        raise StartupError(
            f"database schema is at {revision or 'nothing'}, nohold needs {head_revision()}: "
            "run `nohold db upgrade`"
        )
    ari = AriClient(settings.ari.url, settings.ari.user, settings.ari.password, settings.ari.app)
    try:
        info = await ari.check()
    except AriHttpError as exc:
        hint = "check [ari] user/password against ari.conf" if exc.status == 401 else exc.message
        raise StartupError(f"ARI at {settings.ari.url} refused: {exc.status} ({hint})") from None
    except AriError as exc:
        raise StartupError(
            f"ARI at {settings.ari.url} unreachable ({exc}): is Asterisk running with "
            "http.conf enabled and res_ari loaded?"
        ) from None
    finally:
        await ari.close()
    version = info.get("system", {}).get("version", "?")
    return Report(version, durations, revision or "")


async def serve(
    settings: Settings,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the process exit code."""
    report = await preflight(settings)
    log.info("starting asterisk=%s app=%s notice=%.2fs db=%s", report.asterisk_version,
             settings.ari.app, report.prompt_seconds[settings.notice.prompt], report.db_revision)
    engine = make_engine(settings.database.url)
    ari = AriClient(settings.ari.url, settings.ari.user, settings.ari.password, settings.ari.app)
    ledger = NoticeLedger(engine)
    app = IvrApp(ari, IvrFlow(settings, ledger, report.prompt_seconds[settings.notice.prompt]))
    agi = FastAgiServer({"notice_once": NoticeOnce(settings, ledger, ari)},
                        allow=settings.agi.allowed, command_timeout=settings.agi.command_timeout)
    if settings.agi.enabled:
        for warning in exposure_warnings(settings.agi.host, settings.agi.allow):
            log.warning("fastagi_exposed reason=%s", warning)
        try:
            await agi.start(settings.agi.host, settings.agi.port)
        except OSError as exc:
            await ari.close()
            await engine.dispose()
            raise StartupError(
                f"cannot listen for FastAGI on {settings.agi.host}:{settings.agi.port} ({exc}): "
                "change [agi] port, or set [agi] enabled = false"
            ) from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(app.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        connected = asyncio.create_task(app.connected.wait())
        await asyncio.wait({connected, runner}, return_when=asyncio.FIRST_COMPLETED)
        if connected.done():
            log.info("ready app=%s", settings.ari.app)
            if ready is not None:
                ready.set()
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        runner.cancel()
        stopper.cancel()
        await agi.close()
        await app.shutdown()
        await ari.close()
        await engine.dispose()
    if app.replaced.is_set():
        log.error("stopped: replaced by another process using app %s", settings.ari.app)
        return 3
    log.info("stopped cleanly")
    return 0
