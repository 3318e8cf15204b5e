"""Where a caller can be sent, as plain data. Parsing only; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("menu", "queue", "person", "dialplan")
_NAME = re.compile(r"^[A-Za-z0-9_+*#.-]{1,64}$")


class RouteError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    """`menu:<name>`, `queue:<exten>`, `person:<exten>` or `dialplan:<context>,<exten>[,<prio>]`."""

    kind: str
    target: str
    context: str = ""
    priority: int = 1

    def __str__(self) -> str:
        if self.kind == "dialplan":
            return f"dialplan:{self.context},{self.target},{self.priority}"
        return f"{self.kind}:{self.target}"

    def location(self, queue_context: str, person_context: str) -> tuple[str, str, int]:
        """The dialplan (context, exten, priority) this route continues to."""
        if self.kind == "queue":
            return (queue_context, self.target, 1)
        if self.kind == "person":
            return (person_context, self.target, 1)
        if self.kind == "dialplan":
            return (self.context, self.target, self.priority)
        raise RouteError(f"{self} stays inside the IVR; it has no dialplan location")


def parse_route(text: str) -> Route:
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS:
        raise RouteError(
            "a route is menu:<name>, queue:<exten>, person:<exten> or "
            "dialplan:<context>,<exten>[,<priority>]"
        )
    if kind != "dialplan":
        if not _NAME.match(rest):
            raise RouteError(f"{rest!r} is not a valid {kind} name")
        return Route(kind, rest)
    parts = rest.split(",")
    if len(parts) not in (2, 3) or not all(_NAME.match(p) for p in parts[:2]):
        raise RouteError("dialplan routes are dialplan:<context>,<exten>[,<priority>]")
    priority = 1
    if len(parts) == 3:
        if not parts[2].isdigit() or int(parts[2]) < 1:
            raise RouteError(f"priority {parts[2]!r} must be a positive number")
        priority = int(parts[2])
    return Route("dialplan", parts[1], context=parts[0], priority=priority)
