"""What the offer flow and the dialler share: settings, the store, the queue state, a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackStore
from nohold.ami.queues import QueueMonitor
from nohold.config import Settings
from nohold.feature import Calendars


@dataclass
class CallbackParts:
    settings: Settings
    cb: CallbackSettings
    store: CallbackStore
    queues: QueueMonitor | None
    clock: Callable[[], float] = field(default=time.time)
    calendars: Calendars | None = None

    def media(self, prompt: str) -> str:
        return f"sound:{self.settings.prompts.asterisk_path}/{prompt}"
