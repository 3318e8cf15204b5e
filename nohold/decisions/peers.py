"""Which network peers may talk to nohold's listeners (FastAGI). Pure: no I/O.

FastAGI has no authentication of its own: whoever connects speaks as Asterisk.
The allowlist is the first fence; agi_scripts/channel_proof.py is the second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network

LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.1/32"), ip_network("::1/128"))


def parse_networks(values: Sequence[object]) -> tuple[Network, ...]:
    """CIDRs as written in the config; ValueError says which one and why."""
    if not values:
        raise ValueError("list at least one network, e.g. [\"127.0.0.1/32\"]")
    networks = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string; write CIDRs like \"10.0.0.5/32\"")
        try:
            networks.append(ip_network(value))
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a network ({exc}); write CIDRs like \"10.0.0.5/32\" or "
                "\"10.0.0.0/24\""
            ) from None
    return tuple(networks)


def peer_allowed(host: str, allowed: Iterable[Network]) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    # A dual-stack listener (`::`) shows IPv4 peers as ::ffff:a.b.c.d.
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


def exposure_warnings(host: str, allow: Sequence[Network] | None) -> list[str]:
    """What `nohold check` and `nohold run` say about a FastAGI listener beyond loopback.

    `allow` is None when the config does not set it (loopback peers only)."""
    warnings = []
    if not is_loopback(host) and allow is None:
        warnings.append(
            f"[agi] host = {host!r} listens beyond this machine, but [agi] allow is not set: "
            "only loopback peers are served and every other peer is refused. List the "
            "Asterisk servers that may claim the recording notice, e.g. "
            "allow = [\"10.0.0.5/32\"], or keep host = \"127.0.0.1\""
        )
    for network in allow or ():
        if network.prefixlen == 0:
            warnings.append(
                f"[agi] allow contains {network}: any host that reaches the port can speak "
                "as Asterisk; list only the Asterisk servers"
            )
    return warnings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
