"""`nohold run`: start-up checks, then every enabled feature until SIGTERM/SIGINT.

The service owns what features share (the database engine, one bounded HTTP
pool for ARI, the FastAGI server, the HTTP API server) and runs what each feature
contributes: its Stasis applications on the shared runtime, its FastAGI routes, its
HTTP routes, its background tasks. Ready means every Stasis application of every
enabled feature is registered with Asterisk.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from nohold import registry
from nohold.agi_scripts.agi import Route as AgiRoute
from nohold.agi_scripts.fastagi import FastAgiServer
from nohold.ami.client import AmiClient, stop_channel_playback
from nohold.ari_apps.ari_client import AriClient, AriError, AriHttpError
from nohold.ari_apps.runtime import StasisRuntime
from nohold.callbackdb.engine import DatabaseUrlError, make_engine
from nohold.callbackdb.migrate import current_revision, head_revision
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.callbackdb.outbox import ProofOutbox
from nohold.callbackdb.sms import SmsOutbox
from nohold.config import Settings
from nohold.decisions.peers import exposure_warnings
from nohold.feature import (
    ARI_POOL_SIZE,
    MAX_STASIS_APPS,
    CheckFailed,
    ServiceContext,
    Signals,
)
from nohold.http_server import HttpServer
from nohold.http_server import exposure_warnings as http_exposure_warnings
from nohold.prompts import PromptError, check_prompts
from nohold.sms import inbound as sms_inbound
from nohold.sms.http_link import HttpSmsLink
from nohold.sms.outbox import Sender
from nohold.sms.smpp import SmppGateway, target

log = logging.getLogger("nohold.service")

# How often proofs waiting in the outbox are offered to the database again.
OUTBOX_REPLAY_SECONDS = 5.0


class StartupError(Exception):
    """nohold cannot start; the message says what to fix."""


@dataclass
class Report:
    asterisk_version: str
    prompt_seconds: dict[str, float]
    db_revision: str
    feature_lines: list[str]
    outbox_backlog: int = 0


async def preflight(settings: Settings) -> Report:
    """Everything `nohold check` and `nohold run` verify before taking calls."""
    try:
        durations = check_prompts(settings)
    except PromptError as exc:
        raise StartupError(str(exc)) from None
    try:
        engine = make_engine(settings.database.url)
    except DatabaseUrlError as exc:
        raise StartupError(f"database.url = {settings.database.url!r}: {exc}") from None
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
    lines = []
    for feature in registry.enabled(settings):
        for check in feature.checks:
            try:
                lines.append(await check(settings))
            except CheckFailed as exc:
                raise StartupError(f"{feature.name}: {exc}") from None
    try:
        backlog = await asyncio.to_thread(
            ProofOutbox(settings.database.outbox_path).backlog_sync)
    except OSError as exc:
        raise StartupError(f"proof outbox {settings.database.outbox_path}: {exc.strerror}: "
                           "make it readable or set [database] outbox") from None
    return Report(version, durations, revision or "", lines, backlog)


def sms_link(settings: Settings) -> SmppGateway | HttpSmsLink:
    """The one SMS link `[sms] transport` names."""
    if settings.sms.transport == "http":
        return HttpSmsLink(settings.sms.http)
    return SmppGateway(target(settings.sms.smpp))


def ari_http_pool() -> aiohttp.ClientSession:
    """The one HTTP pool all ARI clients share: bounded, kept alive."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=ARI_POOL_SIZE, limit_per_host=ARI_POOL_SIZE)
    )


async def serve(
    settings: Settings,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the process exit code."""
    report = await preflight(settings)
    features = registry.enabled(settings)
    log.info("starting asterisk=%s features=%s notice=%.2fs db=%s", report.asterisk_version,
             ",".join(f.name for f in features), report.prompt_seconds[settings.notice.prompt],
             report.db_revision)
    engine = make_engine(settings.database.url)
    http = ari_http_pool()
    ledger = NoticeLedger(engine, ProofOutbox(settings.database.outbox_path))
    ctx = ServiceContext(settings, engine, ledger, report.prompt_seconds, http)
    # The SMS link exists before the features start (they listen to it) and binds after
    # they have: nothing the SMSC had queued for nohold arrives with nobody to hear it.
    gateway = sms_link(settings) if settings.sms.enabled else None
    sender = None
    if gateway is not None:
        ctx.sms = gateway
        signals = ctx.signals
        sender = Sender(SmsOutbox(engine, f"{socket.gethostname()[:40]}:{os.getpid()}"),
                        gateway, wait=lambda seconds: signals.wait(Signals.SMS, seconds))
    runtimes: list[StasisRuntime] = []
    agi_routes: dict[str, AgiRoute] = {}
    http_routes: list[web.RouteDef] = []
    background: list[Any] = []
    for feature in features:
        part = feature.start(ctx)
        runtimes += [StasisRuntime(ari, stasis) for ari, stasis in part.stasis]
        if len(runtimes) > MAX_STASIS_APPS:  # a programming error, not a config one
            raise RuntimeError(f"more than {MAX_STASIS_APPS} Stasis apps: raise "
                               "MAX_STASIS_APPS in nohold/feature.py and its docs")
        agi_routes.update(part.agi_routes)
        http_routes += part.http_routes
        background += part.tasks
    if isinstance(gateway, HttpSmsLink):
        http_routes += sms_inbound.routes(gateway)
    if ctx.queues is not None:
        stop_playback = _ami_playback_stopper(ctx.queues.client)
        for rt in runtimes:
            rt.stop_orphan_playback = stop_playback
    agi = FastAgiServer(agi_routes, allow=settings.agi.allowed,
                        command_timeout=settings.agi.command_timeout)
    api = HttpServer(http_routes, settings.http.token) if settings.http.enabled else None

    async def close_shared() -> None:
        if gateway is not None:
            await gateway.close()
        for rt in runtimes:
            await rt.ari.close()
        await http.close()
        # Outcomes handed in by call tasks (record_soon: the writer, not the call, owns
        # them) may still be in the ledger's write queue: write them before disposing.
        await ledger.drain()
        ledger.close()
        await engine.dispose()

    if settings.agi.enabled and agi_routes:
        for warning in exposure_warnings(settings.agi.host, settings.agi.allow):
            log.warning("fastagi_exposed reason=%s", warning)
        try:
            await agi.start(settings.agi.host, settings.agi.port)
        except OSError as exc:
            await close_shared()
            raise StartupError(
                f"cannot listen for FastAGI on {settings.agi.host}:{settings.agi.port} ({exc}): "
                "change [agi] port, or set [agi] enabled = false"
            ) from None
    if api is not None:
        for warning in http_exposure_warnings(settings.http):
            log.warning("http_exposed reason=%s", warning)
        try:
            await api.start(settings.http.host, settings.http.port)
        except OSError as exc:
            await agi.close()
            await close_shared()
            raise StartupError(
                f"cannot listen for the HTTP API on {settings.http.host}:{settings.http.port} "
                f"({exc.strerror or exc}): is another nohold or program using the port? "
                "change [http] port, or set [http] enabled = false"
            ) from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = {asyncio.create_task(rt.run(), name=f"stasis-{rt.app}") for rt in runtimes}
    tasks = {asyncio.create_task(make()) for make in background}
    if gateway is not None and sender is not None:
        await gateway.start()
        tasks.add(asyncio.create_task(sender.run(), name="sms-outbox"))
    # Proofs a locked or down database could not take, from this run or one killed
    # before: replayed now, then retried while any wait.
    tasks.add(asyncio.create_task(ledger.replay_forever(OUTBOX_REPLAY_SECONDS)))
    stopper = asyncio.create_task(stop.wait())
    try:
        connected = asyncio.create_task(_all_connected(runtimes))
        await asyncio.wait({connected, *runners}, return_when=asyncio.FIRST_COMPLETED)
        if connected.done():
            log.info("ready apps=%s", ",".join(rt.app for rt in runtimes))
            # What start-up made (modules, config, SQLAlchemy's tables) lives as long
            # as the process: out of the collector's sight, a full collection walks
            # only what calls make, instead of pausing the loop ~60 ms (bench/README.md).
            gc.collect()
            gc.freeze()
            if ready is not None:
                ready.set()
        else:
            connected.cancel()
        # Any runner ending means an app was replaced: stand down as a whole.
        await asyncio.wait({*runners, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gc.unfreeze()  # serve() may run inside another program (tests): give it back
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for task in (*runners, *tasks, stopper):
            task.cancel()
        # No new booking or cancel once stopping; those in progress finish first.
        if api is not None:
            await api.close()
        await agi.close()
        for rt in runtimes:
            await rt.shutdown()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await close_shared()
    replaced = [rt.app for rt in runtimes if rt.replaced.is_set()]
    if replaced:
        log.error("stopped: replaced by another process using app %s", ",".join(replaced))
        return 3
    log.info("stopped cleanly")
    return 0


def _ami_playback_stopper(client: AmiClient) -> Callable[[str], Awaitable[None]]:
    async def stop(channel_id: str) -> None:
        # Reconcile runs right at (re)connect, when AMI may still be logging in.
        await client.wait_ready(2.0)
        await stop_channel_playback(client, channel_id)

    return stop


async def _all_connected(runtimes: list[StasisRuntime]) -> None:
    for rt in runtimes:
        await rt.connected.wait()
