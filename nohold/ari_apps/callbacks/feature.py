"""Callbacks as a feature: the `[callbacks]` section, the `nohold-callback` Stasis app
(the offer, the placeholders, the agent-first dial), its dialler loop, the agents'
HTTP API (served when [http] enabled) and the supervisors' commands."""

from __future__ import annotations

from nohold.ari_apps.callbacks import api
from nohold.ari_apps.callbacks.app import CallbackApp
from nohold.ari_apps.callbacks.check import check_callbacks_setup
from nohold.ari_apps.callbacks.commands import COMMANDS
from nohold.ari_apps.callbacks.dialer import Dialer
from nohold.ari_apps.callbacks.followup import FollowUps
from nohold.ari_apps.callbacks.notices import SmsNotices
from nohold.ari_apps.callbacks.offer import OfferFlow
from nohold.ari_apps.callbacks.parts import CallbackParts
from nohold.ari_apps.callbacks.settings import SECTION, CallbackSettings
from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.followups import FollowUpStore
from nohold.callbackdb.sms import SmsOutbox
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext


def enabled(settings: Settings) -> bool:
    return settings.section(CallbackSettings).enabled


def start(ctx: ServiceContext) -> Contribution:
    cb = ctx.settings.section(CallbackSettings)
    store = CallbackStore(ctx.engine, cb.node, cb.lease)
    parts = CallbackParts(ctx.settings, cb, store, ctx.queues, calendars=ctx.calendars)
    dialer = Dialer(parts)
    app = CallbackApp(OfferFlow(parts), dialer)
    tasks = [dialer.run]
    if cb.followup.enabled:
        tasks.append(FollowUps(cb, store, FollowUpStore(ctx.engine), ctx.calendars).run)
    if cb.sms.enabled and ctx.sms is not None:
        tasks.append(SmsNotices(cb, store, SmsOutbox(ctx.engine), ctx.calendars,
                                ctx.signals).run)
    return Contribution(stasis=[(ctx.ari(cb.app), app)], tasks=tasks,
                        http_routes=api.routes(store, cb, ctx.calendars))


FEATURE = Feature(name="callbacks", start=start, section=SECTION, enabled=enabled,
                  checks=(check_callbacks_setup,), commands=COMMANDS)
