"""When `nohold watchdog` may take callers out of a Stasis app: pure, the clock is given.

The watchdog must never fight a live nohold. It acts only once the app has been
seen unregistered on every poll for longer than the grace (a restart under
systemd takes ~2 s and the new process reconciles by itself), and any sighting
of the app registered starts the count again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Forward ids Asterisk lists among an app's channel_ids for an "all channels"
# subscription (e.g. __AST_CHANNEL_ALL_TOPIC): not channels.
_NOT_A_CHANNEL = "__AST_"


@dataclass
class Outage:
    grace: float
    down_since: float | None = None

    def observe(self, now: float, registered: bool) -> float | None:
        """Record one poll; the outage's length when it is past the grace, else None."""
        if registered:
            self.down_since = None
            return None
        if self.down_since is None:
            self.down_since = now
        down_for = now - self.down_since
        return down_for if down_for > self.grace else None


def registered_apps(applications: Iterable[object]) -> set[str]:
    """Names in a `GET /applications` answer."""
    names: set[str] = set()
    for app in applications:
        if isinstance(app, dict) and isinstance(app.get("name"), str):
            names.add(app["name"])
    return names


def channels_of(applications: Iterable[object], app: str) -> list[str]:
    """The channels `app` still owns, per a `GET /applications` answer."""
    for entry in applications:
        if isinstance(entry, dict) and entry.get("name") == app:
            ids = entry.get("channel_ids") or []
            return sorted(c for c in ids if isinstance(c, str) and not c.startswith(_NOT_A_CHANNEL))
    return []
