"""After hours as a feature: the `[afterhours]` section; the partner decision the IVR
asks (`ServiceContext.after_hours`); the FastAGI route `partner` for dialplans that
bypass the IVR; the Stasis app of the voice message left when the partner cannot take
the call, which becomes a ticket; the sweep that makes tickets of the messages Asterisk
recorded alone while nohold was down; `nohold check` of the partner's trunks."""

from __future__ import annotations

from nohold.ari_apps.afterhours.sweep import UnticketedMessages
from nohold.ari_apps.afterhours.check import check_partner
from nohold.ari_apps.afterhours.partner import PartnerRoute, PartnerRouter
from nohold.ari_apps.afterhours.settings import SECTION, AfterHoursSettings
from nohold.ari_apps.afterhours.voicemail import RECORD_ALONE, VoicemailFlow
from nohold.ari_apps.runtime import DialplanLocation
from nohold.callbackdb.tickets import TicketStore
from nohold.config import ConfigError, Settings
from nohold.feature import Contribution, Feature, ServiceContext


def enabled(settings: Settings) -> bool:
    return settings.section(AfterHoursSettings).enabled


def start(ctx: ServiceContext) -> Contribution:
    settings = ctx.settings
    after = settings.section(AfterHoursSettings)
    if ctx.calendars is None:
        raise ConfigError("afterhours needs the calendar feature (started before it)")
    router = PartnerRouter(after, ctx.calendars)
    ctx.after_hours = router
    region = getattr(settings.sections.get("tickets"), "default_region", "PL")
    store = TicketStore(ctx.engine)

    def new_ticket() -> None:
        ctx.signals.notify(ctx.signals.TICKET)  # the alerts wake at once

    flow = VoicemailFlow(settings, after, store, default_region=region, on_ticket=new_ticket)
    sweep = UnticketedMessages(after, store, default_region=region, on_ticket=new_ticket)
    prompt = f"{settings.prompts.asterisk_path}/{after.prompt}"
    return Contribution(stasis=[(ctx.ari(after.app), flow)],
                        agi_routes={"partner": PartnerRoute(router, prompt)},
                        tasks=[sweep.run])


def orphans(settings: Settings) -> dict[str, DialplanLocation]:
    return {settings.section(AfterHoursSettings).app: RECORD_ALONE}


FEATURE = Feature(name="afterhours", start=start, section=SECTION, enabled=enabled,
                  checks=(check_partner,), orphans=orphans)
