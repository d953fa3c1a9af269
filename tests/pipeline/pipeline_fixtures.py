"""Shared DAR, addresses and packet builders for the pipeline tests.

Packets are plain dicts of header fields, as ``FakeSwitch.process`` takes them.
"""

from __future__ import annotations

from openflow_pipelines.dar_config import DarPipelineConfig
from openflow_pipelines.dar_flows import base_flows, install_binding, install_host
from openflow_pipelines.fake_table import FakeSwitch
from openflow_pipelines.model import (
    ETH_TYPE_IPV6,
    ICMPV6_NEIGHBOR_ADVERTISEMENT,
    ICMPV6_NEIGHBOR_SOLICITATION,
    ICMPV6_ROUTER_SOLICITATION,
    IP_PROTO_GRE,
    IP_PROTO_ICMPV6,
    IP_PROTO_MOBILITY_HEADER,
    FlowStep,
)

ACCESS_PORT_1 = 1
ACCESS_PORT_2 = 2
CORE_PORT = 10
GRE_PORT = 20
UNKNOWN_PORT = 99

ROUTER_MAC = "02:00:00:00:01:01"
CORE_NEXT_HOP_MAC = "02:00:00:00:00:fe"
MN_MAC = "02:00:00:00:aa:01"
OTHER_MN_MAC = "02:00:00:00:aa:02"

PREFIX = "2001:db8:1::/64"
SECOND_PREFIX = "2001:db8:11::/64"
ANCHOR = "2001:db8:1::1"
LINK_LOCAL = "fe80::1"
SUBNET_ROUTER_ANYCAST = "2001:db8:1::"

HOA = "2001:db8:1::a"  # bound, mobile node away
OTHER_HOA = "2001:db8:11::b"  # bound to OTHER_COA
COA = "2001:db8:2::a"
NEW_COA = "2001:db8:3::a"
OTHER_COA = "2001:db8:4::b"
ATTACHED_MN = "2001:db8:1::100"  # host entry on ACCESS_PORT_1
UNKNOWN_HOST = "2001:db8:1::200"  # in the prefix, no host entry
CORRESPONDENT = "2001:db8:99::5"  # somewhere beyond the core
OTHER_ANCHOR = "2001:db8:2::1"  # another DAR's anchor address

GENERATION = 1
LIFETIME_S = 3600

DAR = DarPipelineConfig(
    dpid=0xD1,
    access_ports=(ACCESS_PORT_1, ACCESS_PORT_2),
    core_port=CORE_PORT,
    gre_port=GRE_PORT,
    router_mac=ROUTER_MAC,
    core_next_hop_mac=CORE_NEXT_HOP_MAC,
    anchor_address=ANCHOR,
    own_addresses=(LINK_LOCAL, ANCHOR),
    access_prefixes=(PREFIX, SECOND_PREFIX),
)


def switch_with(*steps: FlowStep) -> FakeSwitch:
    """A switch holding the base flows, then ``steps``."""
    switch = FakeSwitch()
    switch.apply_all(base_flows(DAR, GENERATION))
    switch.apply_all(steps)
    return switch


def populated_switch() -> FakeSwitch:
    """Base flows, HOA bound to COA, OTHER_HOA to OTHER_COA, ATTACHED_MN on access port 1."""
    return switch_with(
        *install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S),
        *install_binding(DAR, OTHER_HOA, OTHER_COA, GENERATION, LIFETIME_S),
        *install_host(DAR, ATTACHED_MN, MN_MAC, ACCESS_PORT_1, GENERATION),
    )


def ipv6(
    in_port: int, src: str, dst: str, hop_limit: int = 64, **fields: object
) -> dict[str, object]:
    """An IPv6 packet (UDP unless ``ip_proto`` says otherwise)."""
    packet: dict[str, object] = {
        "in_port": in_port,
        "eth_type": ETH_TYPE_IPV6,
        "eth_src": "02:00:00:00:99:99",
        "eth_dst": ROUTER_MAC,
        "ipv6_src": src,
        "ipv6_dst": dst,
        "ip_proto": 17,
        "hop_limit": hop_limit,
    }
    packet.update(fields)
    return packet


def from_tunnel(outer_src: str, src: str, dst: str, hop_limit: int = 64) -> dict[str, object]:
    """A packet as OVS presents it after popping GRE: no Ethernet header, tun_ipv6_src set."""
    packet = ipv6(GRE_PORT, src, dst, hop_limit, tun_ipv6_src=outer_src)
    del packet["eth_src"], packet["eth_dst"]
    return packet


def icmpv6(
    in_port: int, src: str, dst: str, icmpv6_type: int, **fields: object
) -> dict[str, object]:
    return ipv6(in_port, src, dst, 255, ip_proto=IP_PROTO_ICMPV6, icmpv6_type=icmpv6_type, **fields)


def router_solicitation(in_port: int) -> dict[str, object]:
    return icmpv6(in_port, "fe80::aa", "ff02::2", ICMPV6_ROUTER_SOLICITATION)


def neighbor_solicitation(in_port: int, target: str) -> dict[str, object]:
    return icmpv6(
        in_port, "fe80::aa", "ff02::1:ff00:1", ICMPV6_NEIGHBOR_SOLICITATION, ipv6_nd_target=target
    )


def neighbor_advertisement(in_port: int, target: str) -> dict[str, object]:
    return icmpv6(in_port, target, LINK_LOCAL, ICMPV6_NEIGHBOR_ADVERTISEMENT, ipv6_nd_target=target)


def binding_update(in_port: int, coa: str, dst: str = ANCHOR) -> dict[str, object]:
    return ipv6(in_port, coa, dst, ip_proto=IP_PROTO_MOBILITY_HEADER)


def gre(in_port: int, src: str, dst: str) -> dict[str, object]:
    return ipv6(in_port, src, dst, ip_proto=IP_PROTO_GRE)
