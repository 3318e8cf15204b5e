"""What every SMS link gives the features: send a text, hear what comes back.

One link per process (the service starts it when `[sms] enabled`): the alerts send a
technician's SMS and listen for their replies, the callbacks' confirmations go out
through the outbox (nohold/sms/outbox.py). The link itself keeps nothing: whatever
must survive a restart is in the database before `send` is called.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from nohold.decisions.alerts import Receipt


class SmsFailed(Exception):
    """The message was not taken by the SMSC (down, refused, throttled, no answer)."""


@dataclass(frozen=True)
class Inbound:
    """What the SMSC delivered: a delivery report (`receipt`) or a person's SMS."""

    sender: str  # as the SMSC wrote it: digits, perhaps with a leading +
    text: str
    receipt: Receipt | None


Listener = Callable[[Inbound], Coroutine[Any, Any, None]]


class Listeners:
    """Who hears what a link receives: every link keeps its listeners here, so each
    delivers the same way."""

    def __init__(self) -> None:
        self._all: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._all.append(listener)

    async def deliver(self, inbound: Inbound) -> None:
        """`inbound` to every listener; raises when nobody could store it (no listener
        yet, or one failed), so the sender delivers it again later."""
        if not self._all:
            raise SmsFailed("no listener yet")
        for listener in self._all:
            await listener(inbound)


class SmsLink(Protocol):
    @property
    def bound(self) -> bool: ...

    async def send(self, to_e164: str, text: str) -> str:
        """The SMSC's message id once it took the whole message; SmsFailed otherwise."""
        ...

    def listen(self, listener: Listener) -> None:
        """`listener` gets every inbound message; when it raises, the SMSC is told to
        deliver the message again later (nothing is lost to a crash)."""
        ...
