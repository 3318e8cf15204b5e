"""[watchdog] settings: how long an app may be unserved before `nohold watchdog` acts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nohold.config import Section, Table, bounded


@dataclass(frozen=True)
class WatchdogSettings:
    # Longer than a systemd restart of nohold (~2 s), which reconciles by itself;
    # every second of it is a second of silence for the callers left inside.
    grace_seconds: float = 3.0
    poll_seconds: float = 1.0


def parse_watchdog(t: Table, env: Mapping[str, str]) -> WatchdogSettings:
    s = WatchdogSettings(
        grace_seconds=bounded(t, "grace_seconds", WatchdogSettings.grace_seconds, 1.0, 300.0),
        poll_seconds=bounded(t, "poll_seconds", WatchdogSettings.poll_seconds, 0.2, 30.0),
    )
    t.done()
    return s


SECTION = Section("watchdog", parse_watchdog)
