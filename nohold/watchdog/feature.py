"""The watchdog as a feature: its `[watchdog]` section and the `nohold watchdog` command.

It adds nothing to `nohold run`: its whole point is to work while `nohold run` is
dead, so it runs as its own process (config/nohold-watchdog.service).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Mapping

import click

from nohold.ami.client import AmiClient
from nohold.ami.settings import AmiSettings
from nohold.ari_apps.ari_client import AriClient
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext
from nohold.watchdog.loop import DialplanLocation, Watchdog
from nohold.watchdog.settings import SECTION, WatchdogSettings


def start(ctx: ServiceContext) -> Contribution:
    return Contribution()


async def watch(settings: Settings, apps: Mapping[str, DialplanLocation]) -> None:
    """Until SIGTERM/SIGINT."""
    a = settings.ari
    ami_settings = settings.section(AmiSettings)
    ami = AmiClient(ami_settings) if ami_settings.enabled else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AriClient(a.url, a.user, a.password, "nohold-watchdog") as ari:
        if ami is not None:
            await ami.start()  # reconnects by itself; hand-overs never wait for it
        dog = Watchdog(ari, apps, settings.section(WatchdogSettings), ami)
        task = asyncio.create_task(dog.run())
        try:
            await stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if ami is not None:
                await ami.close()


@click.command("watchdog")
@click.pass_context
def watchdog(ctx: click.Context) -> None:
    """Send callers left in an unserved Stasis app (nohold killed) to the fallback."""
    from nohold.logs import setup_logging

    load: Callable[[], Settings] = ctx.obj["load_settings"]
    orphans: Callable[[Settings], Mapping[str, DialplanLocation]] = ctx.obj["orphan_fallbacks"]
    settings = load()
    setup_logging(settings.logging.level, settings.logging.format)
    apps = orphans(settings)
    if not apps:
        raise click.ClickException("no enabled feature runs a Stasis app: nothing to watch")
    asyncio.run(watch(settings, apps))
    sys.exit(0)


FEATURE = Feature(name="watchdog", start=start, section=SECTION, commands=(watchdog,))
