"""The inbound IVR as a feature: its `[ivr]` section and its Stasis application."""

from __future__ import annotations

from nohold.ari_apps.ivr.flow import IvrFlow
from nohold.ari_apps.ivr.prompt_check import check_asterisk_plays_prompts
from nohold.ari_apps.ivr.settings import SECTION, IvrSettings
from nohold.ari_apps.runtime import DialplanLocation
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext


def start(ctx: ServiceContext) -> Contribution:
    settings = ctx.settings
    flow = IvrFlow(settings, settings.section(IvrSettings), ctx.notice_ledger,
                   ctx.prompt_seconds[settings.notice.prompt], after_hours=ctx.after_hours)
    return Contribution(stasis=[(ctx.ari(settings.ari.app), flow)])


def orphans(settings: Settings) -> dict[str, DialplanLocation]:
    r = settings.routes
    return {settings.ari.app: settings.section(IvrSettings).fallback.location(
        r.queue_context, r.person_context)}


FEATURE = Feature(name="ivr", start=start, section=SECTION, orphans=orphans,
                  checks=(check_asterisk_plays_prompts,))
