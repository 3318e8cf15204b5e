"""Every feature nohold has. Adding one: a folder that exports a `Feature`, and a
line here. The service, the config loader and the CLI learn it from this list."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nohold import config
from nohold.agi_scripts import notice_once
from nohold.alerts import feature as alerts
from nohold.ami import feature as ami
from nohold.ari_apps.afterhours import feature as afterhours
from nohold.ari_apps.callbacks import feature as callbacks
from nohold.ari_apps.ivr import feature as ivr
from nohold.calendar import feature as calendar
from nohold.feature import Feature
from nohold.tickets import feature as tickets
from nohold.watchdog import feature as watchdog

# In start order: ami and calendar first, so that later features find the queue state
# and the calendars; afterhours before the IVR, which asks it.
FEATURES: tuple[Feature, ...] = (ami.FEATURE, calendar.FEATURE, afterhours.FEATURE, ivr.FEATURE,
                                 notice_once.FEATURE, watchdog.FEATURE, callbacks.FEATURE,
                                 tickets.FEATURE, alerts.FEATURE)


def sections() -> tuple[config.Section, ...]:
    return tuple(f.section for f in FEATURES if f.section is not None)


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None
                  ) -> config.Settings:
    """The config file (and conf.d, environment) with every feature's section."""
    return config.load_settings(path, env, sections())


def parse_settings(raw: Mapping[str, Any], source: str = "built-in defaults") -> config.Settings:
    return config.parse_settings(raw, source, sections())


def enabled(settings: config.Settings) -> list[Feature]:
    return [f for f in FEATURES if f.enabled(settings)]


def orphan_fallbacks(settings: config.Settings) -> dict[str, tuple[str, str, int]]:
    """Every enabled feature's Stasis apps and where their orphaned callers go."""
    out: dict[str, tuple[str, str, int]] = {}
    for f in enabled(settings):
        out.update(f.orphans(settings))
    return out
