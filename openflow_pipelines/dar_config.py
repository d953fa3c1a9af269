"""What the DAR flow builders need to know about one bridge (P1, P14).

The project's config loader converts its own configuration into a
``DarPipelineConfig``; addresses and MACs are normalised here (compressed
IPv6, lower-case MAC) so flows built from differently spelled configs are
identical.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from openflow_pipelines.model import FIELDS, MAX_PHYSICAL_PORT, ipv6_packed
from openflow_pipelines.pipeline import PortRole

ACCESS_PREFIX_LENGTH = 64  # P1
MAX_PUNT_PPS = 1_000_000
PUNT_BURST_FRACTION = 10  # each punt meter lets a tenth of a second's rate through at once


@dataclass(frozen=True)
class PuntRates:
    """Packets per second each punt meter of the DAR lets reach the controller.

    ``domain_mobility_pps`` and ``mobility_pps`` are Mobility Headers to the
    anchor address from sources inside and outside the domain's access
    prefixes; ``neighbor_discovery_pps`` are RS, NA and NS for own
    addresses; ``resolve_pps`` are packets for access-prefix hosts with no
    route.  The defaults stay below what one controller core decides
    (docs/hardening-floods.md).
    """

    domain_mobility_pps: int = 1000
    mobility_pps: int = 500
    neighbor_discovery_pps: int = 500
    resolve_pps: int = 100

    def __post_init__(self) -> None:
        for name in (
            "domain_mobility_pps",
            "mobility_pps",
            "neighbor_discovery_pps",
            "resolve_pps",
        ):
            rate = getattr(self, name)
            if not isinstance(rate, int) or not 1 <= rate <= MAX_PUNT_PPS:
                raise ValueError(f"{name} {rate!r} out of range 1..{MAX_PUNT_PPS}")


@dataclass(frozen=True)
class DarPipelineConfig:
    """One DAR bridge.

    ``own_addresses`` are every address of the DAR itself (its link-local
    address and ``anchor_address`` at least); ``anchor_address`` (A_d) is the
    home-agent address and the DAR end of every tunnel, inside the first
    access prefix (P1).  ``router_mac`` is the MAC the DAR answers Neighbor
    Solicitations with and must be the bridge's own (LOCAL port) MAC: Open
    vSwitch only terminates tunnel packets addressed to that MAC.
    ``domain_prefixes`` are the access prefixes of the other DARs of the
    domain: Mobility Headers from there (and from this DAR's own prefixes)
    take the domain's punt meter.  ``punt_rates`` sets the punt meters.
    """

    dpid: int
    access_ports: tuple[int, ...]
    core_port: int
    gre_port: int
    router_mac: str
    core_next_hop_mac: str
    anchor_address: str
    own_addresses: tuple[str, ...]
    access_prefixes: tuple[str, ...]
    domain_prefixes: tuple[str, ...] = ()
    punt_rates: PuntRates = PuntRates()
    # Packed forms for the per-binding checks (derived, so not compared).
    _prefix_heads: dict[bytes, str] = field(init=False, repr=False, compare=False)
    _own_packed: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.dpid < (1 << 64):
            raise ValueError(f"dpid {self.dpid} does not fit 64 bits")
        ports = (*self.access_ports, self.core_port, self.gre_port)
        if not self.access_ports:
            raise ValueError("a DAR needs at least one access port")
        if len(set(ports)) != len(ports) or not all(0 < port < MAX_PHYSICAL_PORT for port in ports):
            raise ValueError(f"ports must be distinct physical port numbers, got {ports}")
        mac = FIELDS["eth_src"]
        for name in ("router_mac", "core_next_hop_mac"):
            value = mac.normalise(getattr(self, name))
            if mac.to_int(value) >> 40 & 1:
                raise ValueError(f"{name} {value} is a multicast MAC")
            object.__setattr__(self, name, value)
        prefixes = tuple(ipaddress.IPv6Network(prefix) for prefix in self.access_prefixes)
        if not prefixes or any(prefix.prefixlen != ACCESS_PREFIX_LENGTH for prefix in prefixes):
            raise ValueError(
                f"access prefixes must be one or more /64s, got {self.access_prefixes}"
            )
        anchor = ipaddress.IPv6Address(self.anchor_address)
        if anchor not in prefixes[0]:
            raise ValueError(f"anchor address {anchor} is not in the first access prefix (P1)")
        own = tuple(ipaddress.IPv6Address(address) for address in self.own_addresses)
        if anchor not in own:
            raise ValueError("own_addresses must include the anchor address")
        object.__setattr__(self, "access_prefixes", tuple(prefix.compressed for prefix in prefixes))
        others = tuple(ipaddress.IPv6Network(prefix) for prefix in self.domain_prefixes)
        if any(prefix.prefixlen != ACCESS_PREFIX_LENGTH for prefix in others):
            raise ValueError(f"domain prefixes must be /64s, got {self.domain_prefixes}")
        # Own prefixes first, each prefix once, in a stable order.
        domain = dict.fromkeys(prefix.compressed for prefix in (*prefixes, *others))
        object.__setattr__(self, "domain_prefixes", tuple(domain))
        object.__setattr__(self, "anchor_address", anchor.compressed)
        object.__setattr__(self, "own_addresses", tuple(address.compressed for address in own))
        heads = {prefix.network_address.packed[:8]: prefix.compressed for prefix in prefixes}
        anycast = {prefix.network_address.packed for prefix in prefixes}
        object.__setattr__(self, "_prefix_heads", heads)
        object.__setattr__(self, "_own_packed", frozenset({a.packed for a in own} | anycast))

    def port_role(self, port: int) -> PortRole | None:
        if port in self.access_ports:
            return PortRole.ACCESS
        if port == self.core_port:
            return PortRole.CORE
        if port == self.gre_port:
            return PortRole.GRE
        return None

    def is_own_address(self, address: str) -> bool:
        """An address of the DAR itself, or an access prefix's subnet-router anycast address."""
        return self.is_own_packed(ipv6_packed(address))

    def is_own_packed(self, address: bytes) -> bool:
        return address in self._own_packed

    def access_prefix_of(self, address: str) -> str | None:
        """The access prefix containing ``address``, if any."""
        return self.access_prefix_of_packed(ipv6_packed(address))

    def access_prefix_of_packed(self, address: bytes) -> str | None:
        return self._prefix_heads.get(address[:8])  # every prefix is a /64 (P1)
