"""The on-duty technician's alerts as a feature: the `[alerts]` section, the SMPP link,
the escalation loop, `nohold alerts`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nohold.alerts.commands import COMMANDS
from nohold.alerts.escalator import Escalator
from nohold.alerts.settings import SECTION, AlertSettings
from nohold.alerts.voice import VoiceAlerts
from nohold.callbackdb.alerts import AlertStore
from nohold.callbackdb.tickets import TicketStore
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext
from nohold.sms.link import SmsFailed
from nohold.sms.smpp import check_bind, target

log = logging.getLogger("nohold.alerts")


def enabled(settings: Settings) -> bool:
    return settings.section(AlertSettings).enabled


def start(ctx: ServiceContext) -> Contribution:
    alerts = ctx.settings.section(AlertSettings)
    tickets = TicketStore(ctx.engine)
    out = Contribution()
    voice = None
    if alerts.call:
        voice = VoiceAlerts(alerts, ctx.settings.prompts, tickets)
        out.stasis.append((ctx.ari(alerts.app), voice))

    sms = ctx.sms
    if sms is None:  # the config check makes [sms] a condition of [alerts]
        raise RuntimeError("alerts started without the SMS link ([sms] enabled)")

    escalator = Escalator(alerts, AlertStore(ctx.engine), tickets, sms,
                          ctx.calendars, voice, signals=ctx.signals)
    # Before the link binds (the service starts it after every feature): a reply the
    # SMSC had queued is heard, not lost.
    sms.listen(escalator.on_inbound)

    async def run() -> None:
        try:
            await escalator.run()
        finally:
            await escalator.close()

    out.tasks.append(run)
    return out


async def check_alerts(settings: Settings) -> str:
    alerts = settings.section(AlertSettings)
    ok = True
    if settings.sms.transport == "http":
        # Nothing to bind: every message is its own request.
        link = f"SMS through the HTTP gateway {settings.sms.http.url}"
    else:
        try:
            link = await check_bind(target(settings.sms.smpp))
        except SmsFailed as exc:
            # Not a reason to refuse to start: the IVR must not depend on the SMSC, and
            # alerts wait in the database until it answers. Said loudly all the same.
            log.warning("alerts_smsc_unavailable error=%r", str(exc))
            ok = False
            link = (f"WARNING: {exc}; alerts wait in the database until it answers "
                    "(check [sms.smpp] and the SMSC's account)")
    on_duty = alerts.rota.on_duty(datetime.now(UTC))
    return (f"alerts: {'ok' if ok else 'degraded'} ({link}; "
            f"{len(alerts.people)} people; on duty now: "
            f"{', '.join(on_duty) or 'NOBODY'})")


FEATURE = Feature(name="alerts", start=start, section=SECTION, enabled=enabled,
                  checks=(check_alerts,), commands=COMMANDS)
