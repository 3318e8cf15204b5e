"""The contract between a feature and the service that runs it.

A feature is a folder (its wiring, flow, settings, storage) that exports one
`Feature`. The service (`nohold/registry.py` lists them) loads each feature's
config section, starts every enabled feature with a `ServiceContext`, and runs
what it contributes: Stasis applications on the shared runtime, FastAGI routes,
HTTP API routes, background tasks. `nohold check` runs every enabled feature's checks, and the
CLI grows each feature's sub-commands. This module sits below the features and
above the adapters: it knows their shapes, never a feature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import click
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.agi_scripts.agi import Route as AgiRoute
from nohold.ami.queues import QueueMonitor
from nohold.ari_apps.ari_client import AriClient, liveness_app
from nohold.ari_apps.runtime import DialplanLocation, StasisFeature
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.config import Section, Settings
from nohold.decisions.hours import Calendar
from nohold.decisions.partner import CallFacts
from nohold.sms.link import SmsLink

# HTTP sessions nohold holds at Asterisk at most, whatever the load: every ARI
# client shares one pool of ARI_POOL_SIZE kept-alive REST connections, plus one
# WebSocket per Stasis application (at most MAX_STASIS_APPS, checked at start).
# Asterisk's http.conf sessionlimit (default 100) is shared with the admin's other
# HTTP and ARI users, so this stays small and fixed.
ARI_POOL_SIZE = 8
MAX_STASIS_APPS = 4
HTTP_SESSIONS_MAX = ARI_POOL_SIZE + MAX_STASIS_APPS


class Calendars(Protocol):
    """The business calendars (the calendar feature): the config's, with the database's
    overrides merged in, as pure `Calendar`s to ask."""

    @property
    def default(self) -> str: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    async def get(self, name: str | None = None) -> Calendar:
        """The calendar `name` (the default one for None); KeyError if unknown."""
        ...


class Signals:
    """In-process nudges between features, by name (a new ticket wakes the alerts loop
    at once). Never the only path: a consumer polls too, so a nudge lost (another node
    took the ticket, a restart) costs at most one poll."""

    TICKET = "ticket"  # a partner's ticket was created or changed
    SMS = "sms"  # a message was put in the SMS outbox

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def _event(self, name: str) -> asyncio.Event:
        return self._events.setdefault(name, asyncio.Event())

    def notify(self, name: str) -> None:
        self._event(name).set()

    async def wait(self, name: str, timeout: float) -> bool:  # noqa: ASYNC109
        """True when nudged within `timeout` seconds (or before, since the last wait)."""
        event = self._event(name)
        # Not wait_for(): in Python 3.11 it returns instead of raising when a cancel
        # arrives just as the event is set, and the loop waiting here would never stop.
        waiter = asyncio.ensure_future(event.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            return waiter in done
        finally:
            waiter.cancel()
            event.clear()


class AfterHours(Protocol):
    """The after-hours feature as the IVR asks it: is the line closed now, and if so
    what the call to the partner needs."""

    @property
    def identify(self) -> bool:
        """Ask the caller's customer number before sending them on."""
        ...

    @property
    def prompt(self) -> str:
        """The prompt ("our partner will take your call") the IVR plays first."""
        ...

    @property
    def location(self) -> DialplanLocation:
        """Where the call to the partner is dialled (dialplan [nohold-partner])."""
        ...

    async def closed_reason(self) -> str | None:
        """The reason the partner is told (closed-holiday...), or None when open."""
        ...

    def variables(self, facts: CallFacts) -> dict[str, str]:
        """The channel variables the dialplan dials the partner with."""
        ...


@dataclass
class ServiceContext:
    """What the running service shares with every feature it starts."""

    settings: Settings
    engine: AsyncEngine
    notice_ledger: NoticeLedger
    # Measured at start (prompt name -> seconds): flows judge a cut-off notice by it.
    prompt_seconds: dict[str, float]
    # One bounded HTTP connection pool for every ARI client (Asterisk's
    # http.conf sessionlimit is shared by all of them, 100 by default).
    http: aiohttp.ClientSession
    # Live app_queue state, when the ami feature runs (features started after it see it).
    queues: QueueMonitor | None = None
    # The business calendars, when the calendar feature runs (started before the
    # features that ask them).
    calendars: Calendars | None = None
    signals: Signals = field(default_factory=Signals)
    # Calls out of hours go to the partner, when the afterhours feature runs (started
    # before the IVR, which asks it).
    after_hours: AfterHours | None = None
    # The one SMS link, when [sms] enabled: created before the features start (they
    # register their listeners), bound after.
    sms: SmsLink | None = None

    def ari(self, app: str) -> AriClient:
        a = self.settings.ari
        # The companion app tells `nohold watchdog` (REST only) that this socket is up.
        return AriClient(a.url, a.user, a.password, app, session=self.http,
                         also_register=(liveness_app(app),))


@dataclass
class Contribution:
    """What one started feature adds to the running service."""

    stasis: list[tuple[AriClient, StasisFeature]] = field(default_factory=list)
    agi_routes: dict[str, AgiRoute] = field(default_factory=dict)
    # Served by the one HTTP API server (nohold/http_server.py: token, JSON errors,
    # body limit) when [http] enabled; paths under /v1/, each owned by one feature.
    http_routes: list[web.RouteDef] = field(default_factory=list)
    # Started with the service, cancelled when it stops.
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


Check = Callable[[Settings], Awaitable[str]]
"""One `nohold check` item: returns a line like "ivr: ok (...)", raises
nohold.service.StartupError-like `CheckFailed` with what to fix."""


class CheckFailed(Exception):
    """A feature's check found something to fix; the message says what and how."""


@dataclass(frozen=True)
class Feature:
    name: str
    start: Callable[[ServiceContext], Contribution]
    section: Section | None = None
    enabled: Callable[[Settings], bool] = lambda settings: True
    checks: tuple[Check, ...] = ()
    commands: tuple[click.Command, ...] = ()
    # Stasis app -> where a caller left in it goes when no nohold serves the app
    # (read by `nohold watchdog`, which runs without the feature being started).
    orphans: Callable[[Settings], Mapping[str, DialplanLocation]] = lambda settings: {}
