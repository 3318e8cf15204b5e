"""Callbacks as a feature: the `[callbacks]` section and the supervisors' commands.

The offer, the placeholders and the agent-first dial join this feature as they
are proven against the real Asterisk (issue 8); until then `enabled = true` is
refused by the section's check rather than accepted and silently doing nothing.
"""

from __future__ import annotations

from ari_apps.callbacks.commands import COMMANDS
from ari_apps.callbacks.settings import SECTION, CallbackSettings
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext


def enabled(settings: Settings) -> bool:
    return settings.section(CallbackSettings).enabled


def start(ctx: ServiceContext) -> Contribution:
    return Contribution()


FEATURE = Feature(name="callbacks", start=start, section=SECTION, enabled=enabled,
                  commands=COMMANDS)
