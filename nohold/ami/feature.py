"""Live queue state as a feature: the `[ami]` section, one long-lived AMI connection
with a QueueMonitor on it for the life of the service, and `nohold check` over AMI
(login, event classes, the nohold dialplan loaded)."""

from __future__ import annotations

import asyncio
import logging

from nohold.ami.check import check_ami
from nohold.ami.client import AmiClient
from nohold.ami.queues import QueueMonitor
from nohold.ami.settings import AmiSettings, parse_ami_settings
from nohold.config import Section, Settings
from nohold.feature import (
    HTTP_SESSIONS_MAX,
    CheckFailed,
    Contribution,
    Feature,
    ServiceContext,
)

log = logging.getLogger("nohold.ami")


def start(ctx: ServiceContext) -> Contribution:
    settings = ctx.settings.section(AmiSettings)
    client = AmiClient(settings)
    monitor = QueueMonitor(client)
    ctx.queues = monitor

    async def run() -> None:
        # The connection reconnects by itself; the IVR never waits for it.
        await client.start()
        try:
            await asyncio.Event().wait()
        finally:
            await monitor.close()
            await client.close()

    return Contribution(tasks=[run])


async def check(settings: Settings) -> str:
    report = await check_ami(settings.section(AmiSettings), http_need=HTTP_SESSIONS_MAX)
    if not report.ok:
        raise CheckFailed("; ".join(report.problems))
    return "\n".join(report.notes) or "ami: ok"


FEATURE = Feature(
    name="ami",
    start=start,
    section=Section("ami", parse_ami_settings),
    enabled=lambda settings: settings.section(AmiSettings).enabled,
    checks=(check,),
)
