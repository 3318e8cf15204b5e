"""Proof that a FastAGI session is Asterisk running the channel it names, for the call it
names, before anything is claimed on that call's behalf.

FastAGI has no authentication and linkedids are predictable (`<system>-<epoch>.<seq>`):
a local process that "claims" a call's notice makes the real caller skip it and be
recorded without being told. Only Asterisk can make a value we chose appear on one
of its channels, so: set a fresh random nonce on the channel over the AGI socket,
read it back over ARI (our own authenticated connection to the same Asterisk), and
read the channel's linkedid over ARI too. A forger controls only its own socket: its
"200 result=1" to SET VARIABLE sets nothing that ARI can see.

Cost: one AGI round trip, and two ARI GETs sent together (one HTTP round trip on
loopback, about a millisecond).

Classic AGI (`nohold-agi`) needs no such proof: Asterisk itself started the process
for the channel, on pipes only Asterisk holds (`asterisk_child`). Whoever could run
it by hand with a forged environment needs nohold's config and database, and could
write the ledger directly: there the boundary is those files' permissions.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from nohold.agi_scripts.agi import Agi
from nohold.ari_apps.ari_client import AriError, AriNotFound

NONCE_VARIABLE = "NOHOLD_AGI_NONCE"


class Ari(Protocol):
    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any: ...


class Verdict(enum.Enum):
    PROVEN = "proven"
    # ARI answered, and not what Asterisk running this call would make it answer.
    REFUSED = "refused"
    # ARI did not answer: Asterisk and a forger cannot be told apart.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Proof:
    verdict: Verdict
    reason: str = ""


class ChannelProof(Protocol):
    """How a route learns that the session is Asterisk running this channel of this
    call (`channel_id` and `call_id` already checked ids)."""

    async def __call__(self, agi: Agi, channel_id: str, call_id: str) -> Proof: ...


@dataclass(frozen=True)
class AriProof:
    """FastAGI: a nonce set over the AGI socket, read back over ARI."""

    ari: Ari
    timeout: float

    async def __call__(self, agi: Agi, channel_id: str, call_id: str) -> Proof:
        return await prove_channel(agi, self.ari, channel_id, call_id, self.timeout)


async def asterisk_child(agi: Agi, channel_id: str, call_id: str) -> Proof:
    """Classic AGI: the process is Asterisk's child, on its stdin and stdout."""
    return Proof(Verdict.PROVEN, "asterisk_child")


async def prove_channel(
    agi: Agi, ari: Ari, channel_id: str, call_id: str, timeout: float
) -> Proof:
    """`channel_id` (agi_uniqueid) and `call_id` must already be checked ids."""
    nonce = secrets.token_hex(16)
    await agi.set_variable(NONCE_VARIABLE, nonce)
    try:
        async with asyncio.timeout(timeout):
            seen, linkedid = await asyncio.gather(
                _variable(ari, channel_id, NONCE_VARIABLE),
                _variable(ari, channel_id, "CHANNEL(linkedid)"),
            )
    except AriNotFound:
        # No such channel (a predicted id, or one that already hung up), or no nonce on it.
        return Proof(Verdict.REFUSED, "channel_or_nonce_not_found")
    except (AriError, TimeoutError) as exc:
        return Proof(Verdict.UNAVAILABLE, type(exc).__name__)
    if not hmac.compare_digest(seen.encode(), nonce.encode()):
        return Proof(Verdict.REFUSED, "nonce_mismatch")
    if linkedid != call_id:
        return Proof(Verdict.REFUSED, "linkedid_mismatch")
    return Proof(Verdict.PROVEN)


async def _variable(ari: Ari, channel_id: str, name: str) -> str:
    result = await ari.request("GET", f"/channels/{channel_id}/variable",
                               params={"variable": name})
    value = result.get("value") if isinstance(result, dict) else None
    return value if isinstance(value, str) else ""
