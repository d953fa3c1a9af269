"""Properties over random packets: what reaches the controller, duplication, hop limits.

The oracle below restates the pipeline's contract from the FAMA profile and
the brief, independently of the flow builders: the controller sees Router
Solicitations and Neighbor Advertisements from access ports, Neighbor
Solicitations for the DAR's own addresses and Mobility Headers to the anchor
address from access and core ports, and routed packets for an access-prefix
address that is nobody's yet; nothing else.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_fixtures import (
    ACCESS_PORT_1,
    ACCESS_PORT_2,
    ANCHOR,
    ATTACHED_MN,
    COA,
    CORE_PORT,
    CORRESPONDENT,
    GRE_PORT,
    HOA,
    LINK_LOCAL,
    NEW_COA,
    OTHER_ANCHOR,
    OTHER_COA,
    OTHER_HOA,
    PREFIX,
    SECOND_PREFIX,
    SUBNET_ROUTER_ANYCAST,
    UNKNOWN_HOST,
    UNKNOWN_PORT,
    populated_switch,
)

from openflow_pipelines.fake_table import normalise_packet
from openflow_pipelines.model import CONTROLLER_PORT, LOCAL_PORT, NO_BUFFER

ACCESS_PORTS = (ACCESS_PORT_1, ACCESS_PORT_2)
PREFIXES = tuple(ipaddress.IPv6Network(prefix) for prefix in (PREFIX, SECOND_PREFIX))
OWN = {ANCHOR, LINK_LOCAL}
BOUND = {HOA: COA, OTHER_HOA: OTHER_COA}
HOSTS = {ATTACHED_MN}
SUBNET_ROUTER_ANYCASTS = {prefix.network_address.compressed for prefix in PREFIXES}
ICMPV6, MOBILITY_HEADER, GRE = 58, 135, 47
RS, NS, NA = 133, 135, 136

SWITCH = populated_switch()  # process() never changes the tables


def _in(prefixes: tuple[ipaddress.IPv6Network, ...], address: str) -> bool:
    return any(ipaddress.IPv6Address(address) in prefix for prefix in prefixes)


def expected_control_punt(packet: dict[str, object]) -> bool:
    if packet["eth_type"] != 0x86DD:
        return False
    port = packet["in_port"]
    from_access, from_link = port in ACCESS_PORTS, port in (*ACCESS_PORTS, CORE_PORT)
    if packet["ip_proto"] == ICMPV6:
        kind = packet["icmpv6_type"]
        if from_access and kind in (RS, NA):
            return True
        if from_link and kind == NS and packet["ipv6_nd_target"] in OWN:
            return True
    return from_link and packet["ip_proto"] == MOBILITY_HEADER and packet["ipv6_dst"] == ANCHOR


def expected_resolution_punt(packet: dict[str, object]) -> bool:
    """A routed packet for an access-prefix address that is no one's: the controller resolves it."""
    if packet["eth_type"] != 0x86DD:
        return False
    port, source, destination = packet["in_port"], packet["ipv6_src"], packet["ipv6_dst"]
    assert isinstance(source, str) and isinstance(destination, str)
    if port in ACCESS_PORTS:
        routed = _in(PREFIXES, source)  # ingress filtering
    elif port == CORE_PORT:
        consumed_by_ovs = packet["ip_proto"] == GRE and destination == ANCHOR
        consumed_by_ovs |= packet["ip_proto"] == ICMPV6 and packet["icmpv6_type"] == NA
        routed = not ipaddress.IPv6Address(source).is_link_local and not consumed_by_ovs
    elif port == GRE_PORT:
        routed = BOUND.get(source) == packet["tun_ipv6_src"]  # P15
    else:
        return False
    nobodys = destination not in OWN | HOSTS | BOUND.keys() | SUBNET_ROUTER_ANYCASTS
    return routed and _in(PREFIXES, destination) and nobodys


def _in_prefix(prefix: ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    base = int(prefix.network_address)
    return st.integers(0, 2**64 - 1).map(lambda host: ipaddress.IPv6Address(base + host).compressed)


NAMED_ADDRESSES = [
    ANCHOR,
    LINK_LOCAL,
    HOA,
    OTHER_HOA,
    COA,
    NEW_COA,
    OTHER_COA,
    ATTACHED_MN,
    UNKNOWN_HOST,
    CORRESPONDENT,
    OTHER_ANCHOR,
    SUBNET_ROUTER_ANYCAST,
    "2001:db8:11::",
    "ff02::1",
    "ff02::2",
    "ff02::1:ff00:1",
    "fe80::aa",
    "::",
    "::1",
]
addresses = st.one_of(
    st.sampled_from(NAMED_ADDRESSES),
    *(_in_prefix(prefix) for prefix in PREFIXES),
    st.integers(0, 2**128 - 1).map(lambda number: ipaddress.IPv6Address(number).compressed),
)


@st.composite
def packets(draw: st.DrawFn) -> dict[str, object]:
    in_port = draw(st.sampled_from([*ACCESS_PORTS, CORE_PORT, GRE_PORT, LOCAL_PORT, UNKNOWN_PORT]))
    eth_type = draw(st.sampled_from([0x86DD, 0x86DD, 0x86DD, 0x0800, 0x0806]))
    packet: dict[str, object] = {"in_port": in_port, "eth_type": eth_type}
    if in_port == GRE_PORT:
        packet["tun_ipv6_src"] = draw(st.sampled_from([COA, OTHER_COA, NEW_COA]) | addresses)
    if eth_type != 0x86DD:
        return packet
    ip_proto = draw(st.sampled_from([ICMPV6, ICMPV6, MOBILITY_HEADER, GRE, 6, 17]))
    packet.update(
        ipv6_src=draw(addresses),
        ipv6_dst=draw(addresses),
        ip_proto=ip_proto,
        hop_limit=draw(st.integers(0, 255)),
    )
    if ip_proto == ICMPV6:
        kind = draw(st.sampled_from([RS, 134, NS, NA, 137, 128, 129]))
        packet["icmpv6_type"] = kind
        if kind in (NS, NA):
            packet["ipv6_nd_target"] = draw(addresses)
    return packet


@settings(max_examples=800, deadline=None)
@given(packets())
def test_only_declared_packets_reach_the_controller(packet: dict[str, object]) -> None:
    fate = SWITCH.process(packet)
    expected = expected_control_punt(packet) or expected_resolution_punt(packet)
    assert fate.punted == expected, fate


@settings(max_examples=800, deadline=None)
@given(packets())
def test_a_packet_goes_at_most_one_way_and_punts_are_whole_and_unchanged(
    packet: dict[str, object],
) -> None:
    fate = SWITCH.process(packet)
    assert len(fate.emissions) <= 1, fate
    if fate.punted:
        assert fate.single().max_len == NO_BUFFER
        assert fate.single().packet == normalise_packet(packet)


@settings(max_examples=800, deadline=None)
@given(packets())
def test_forwarding_decrements_the_hop_limit_exactly_once(packet: dict[str, object]) -> None:
    fate = SWITCH.process(packet)
    for emission in fate.emissions:
        if emission.port == CONTROLLER_PORT:
            continue
        if LOCAL_PORT in (packet["in_port"], emission.port):
            # The DAR's own packets and packets it terminates are not forwarded.
            assert emission.packet["hop_limit"] == packet["hop_limit"]
        else:
            assert isinstance(packet["hop_limit"], int) and packet["hop_limit"] > 1
            assert emission.packet["hop_limit"] == packet["hop_limit"] - 1
