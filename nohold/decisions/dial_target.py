"""Where nohold dials a number: the admin's outbound dialplan context, or an endpoint
pattern. Pure. Only `{number}` varies, and it is always digits that a check passed."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "context:<dialplan context>" (Local/<number>@context, the admin's own outbound
# dialplan) or "endpoint:<tech>/<resource with {number}>" (e.g. PJSIP/{number}@trunk).
OUTBOUND = re.compile(r"^(context:[A-Za-z0-9_+.-]{1,79}"
                      r"|endpoint:[A-Za-z0-9]+/[^\s,;()]*\{number\}[^\s,;()]*)$")
OUTBOUND_HELP = "'context:<dialplan context>' or 'endpoint:PJSIP/{number}@<trunk>'"


@dataclass(frozen=True)
class Outbound:
    kind: str  # "context" or "endpoint"
    target: str

    @classmethod
    def parse(cls, spec: str) -> Outbound:
        """From a spec OUTBOUND matched."""
        kind, _, target = spec.partition(":")
        return cls(kind, target)

    def endpoint(self, digits: str) -> str:
        if not re.fullmatch(r"\+?[0-9]{3,17}", digits):
            raise ValueError(f"refusing to dial {digits!r}: not a checked number")
        if self.kind == "context":
            return f"Local/{digits}@{self.target}"
        return self.target.replace("{number}", digits)
