"""Tests of fama_ryu/icmpv6.py: ND parsing/validation and the DAR's ICMPv6 builders.

Oracles are independent of the module under test:
* every frame the module builds is dissected by scapy (field by field) and its
  checksum is recomputed by scapy (``in6_chksum``);
* every frame the parser is fed is built by scapy, or assembled from raw
  bytes with a checksum computed by scapy;
* address helpers are compared with scapy's ``in6_getnsma`` /
  ``in6_getnsmac`` and with literal values from RFC 4291 / RFC 2464.

Spec references: RFC 4861 §4.1-4.4, §4.6, §6.1.1, §7.1.1, §7.1.2;
RFC 4443 §2.4, §3.4; RFC 6275 §7.1-7.2; FAMA-PROFILE P2.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    UDP,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ParamProblem,
    IPv6,
    in6_chksum,
    in6_getnsma,
    in6_getnsmac,
)
from scapy.layers.l2 import Ether

from fama_ryu import icmpv6
from fama_ryu.icmpv6 import (
    AdvertisedPrefix,
    NdMessage,
    NdParseError,
    NdRejectReason,
    build_neighbor_advertisement,
    build_neighbor_solicitation,
    build_parameter_problem,
    build_router_advertisement,
    icmpv6_checksum,
    link_local_from_mac,
    multicast_mac,
    parse_nd_frame,
    solicited_node_multicast,
)

# ---------------------------------------------------------------- fixtures
# Literal addresses only (an invalid string would make scapy try DNS).


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


DAR_MAC_S = "02:00:00:00:d0:01"
DAR_LL_S = "fe80::ff:fe00:d001"  # modified EUI-64 of DAR_MAC
MN_MAC_S = "02:00:00:00:00:0a"
MN_OPT_MAC_S = "02:00:00:00:00:0b"  # differs from the frame source on purpose
MN_LL_S = "fe80::ff:fe00:a"
A_D_S = "2001:db8:1::1"  # the DAR's anchor address A_d
PREFIX1_S = "2001:db8:1::"
PREFIX2_S = "2001:db8:2::"
MN_HOA_S = "2001:db8:1::100"
ALL_NODES_S = "ff02::1"
ALL_ROUTERS_S = "ff02::2"

DAR_MAC, MN_MAC, MN_OPT_MAC = mac(DAR_MAC_S), mac(MN_MAC_S), mac(MN_OPT_MAC_S)
DAR_LL, MN_LL, A_D = ip6(DAR_LL_S), ip6(MN_LL_S), ip6(A_D_S)
PREFIX1, PREFIX2, MN_HOA = ip6(PREFIX1_S), ip6(PREFIX2_S), ip6(MN_HOA_S)
ALL_NODES, ALL_ROUTERS = ip6(ALL_NODES_S), ip6(ALL_ROUTERS_S)
UNSPECIFIED = bytes(16)

ETH_IPV6 = 14 + 40
ICMP_OFFSET = ETH_IPV6  # first ICMPv6 byte in an Ethernet frame

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def snm_s(address: str) -> str:
    """Solicited-node multicast address per scapy (independent oracle)."""
    return str(ipaddress.IPv6Address(in6_getnsma(ip6(address))))


def scapy_checksum_ok(frame: bytes) -> bool:
    """scapy's in6_chksum over the frame's ICMPv6 bytes (checksum field included) is 0."""
    ip = Ether(frame)[IPv6]
    message = frame[ICMP_OFFSET : ICMP_OFFSET + ip.plen]
    return in6_chksum(58, ip, message) == 0


def scapy_expected_checksum(frame: bytes) -> int:
    """The checksum scapy computes for the frame's ICMPv6 message."""
    ip = Ether(frame)[IPv6]
    message = bytearray(frame[ICMP_OFFSET : ICMP_OFFSET + ip.plen])
    message[2:4] = b"\x00\x00"
    return in6_chksum(58, ip, bytes(message))


def raw_icmp_frame(
    message: bytes,
    *,
    src: str = MN_LL_S,
    dst: str = DAR_LL_S,
    hlim: int = 255,
    eth_src: str = MN_MAC_S,
    eth_dst: str = DAR_MAC_S,
    fix_checksum: bool = True,
) -> bytes:
    """Ethernet/IPv6 built by scapy around arbitrary ICMPv6 bytes, checksum by scapy."""
    ip = IPv6(src=src, dst=dst, nh=58, hlim=hlim, plen=len(message))
    if fix_checksum and len(message) >= 4:
        zeroed = message[:2] + b"\x00\x00" + message[4:]
        message = zeroed[:2] + struct.pack("!H", in6_chksum(58, ip, zeroed)) + zeroed[4:]
    return bytes(Ether(src=eth_src, dst=eth_dst) / ip) + message


def scapy_frame(
    icmp,
    *,
    src: str = MN_LL_S,
    dst: str = DAR_LL_S,
    hlim: int = 255,
    eth_src: str = MN_MAC_S,
    eth_dst: str = DAR_MAC_S,
) -> bytes:
    return bytes(Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst, hlim=hlim) / icmp)


# Valid ND frames a mobile node could send the DAR (all built by scapy).
def rs_with_slla() -> bytes:
    return scapy_frame(
        ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN_OPT_MAC_S),
        dst=ALL_ROUTERS_S,
        eth_dst="33:33:00:00:00:02",
    )


def rs_without_slla() -> bytes:
    return scapy_frame(ICMPv6ND_RS(), dst=ALL_ROUTERS_S, eth_dst="33:33:00:00:00:02")


def rs_unspecified_source() -> bytes:
    return scapy_frame(ICMPv6ND_RS(), src="::", dst=ALL_ROUTERS_S, eth_dst="33:33:00:00:00:02")


def ns_resolution() -> bytes:
    """Multicast NS from the MN resolving the DAR's A_d, with SLLA."""
    return scapy_frame(
        ICMPv6ND_NS(tgt=A_D_S) / ICMPv6NDOptSrcLLAddr(lladdr=MN_OPT_MAC_S),
        src=MN_HOA_S,
        dst=snm_s(A_D_S),
        eth_dst=in6_getnsmac(in6_getnsma(A_D)),
    )


def ns_unicast_without_slla() -> bytes:
    return scapy_frame(ICMPv6ND_NS(tgt=DAR_LL_S), src=MN_LL_S, dst=DAR_LL_S)


def na_with_tlla() -> bytes:
    return scapy_frame(
        ICMPv6ND_NA(R=0, S=1, O=1, tgt=MN_HOA_S) / ICMPv6NDOptDstLLAddr(lladdr=MN_OPT_MAC_S),
        src=MN_HOA_S,
        dst=A_D_S,
    )


def na_without_tlla() -> bytes:
    return scapy_frame(
        ICMPv6ND_NA(R=1, S=0, O=0, tgt=MN_HOA_S),
        src=MN_HOA_S,
        dst=ALL_NODES_S,
        eth_dst="33:33:00:00:00:01",
    )


def dad_ns() -> bytes:
    """Duplicate Address Detection probe: src ::, dst solicited-node, no SLLA."""
    return scapy_frame(
        ICMPv6ND_NS(tgt=MN_HOA_S),
        src="::",
        dst=snm_s(MN_HOA_S),
        eth_dst=in6_getnsmac(in6_getnsma(MN_HOA)),
    )


# ---------------------------------------------------------------- address helpers


def test_link_local_from_mac_profile_example():
    assert link_local_from_mac(mac("02:00:00:00:d0:01")) == ip6("fe80::ff:fe00:d001")


def test_link_local_from_mac_sets_universal_local_bit():
    # RFC 4291 App. A: the U/L bit (0x02 of the first octet) is inverted.
    assert link_local_from_mac(mac("00:11:22:33:44:55")) == ip6("fe80::211:22ff:fe33:4455")
    assert link_local_from_mac(mac("fe:ff:ff:ff:ff:ff")) == ip6("fe80::fcff:ffff:feff:ffff")


@FAST
@given(st.binary(min_size=6, max_size=6))
def test_link_local_from_mac_property(raw_mac):
    value = int.from_bytes(raw_mac, "big")
    eui64 = ((value >> 24) << 40) | (0xFFFE << 24) | (value & 0xFFFFFF)
    eui64 ^= 0x02 << 56  # modified EUI-64: invert U/L
    expected = (ipaddress.IPv6Address("fe80::") + eui64).packed
    assert link_local_from_mac(raw_mac) == expected


@pytest.mark.parametrize("address", [A_D_S, MN_HOA_S, DAR_LL_S, "2001:db8::aabb:ccdd"])
def test_solicited_node_multicast(address):
    result = solicited_node_multicast(ip6(address))
    assert len(result) == 16
    assert result == in6_getnsma(ip6(address))
    low24 = int.from_bytes(ip6(address)[13:], "big")
    assert result == (ipaddress.IPv6Address("ff02::1:ff00:0") + low24).packed


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("ff02::1", "33:33:00:00:00:01"),
        ("ff02::2", "33:33:00:00:00:02"),
        ("ff02::1:ffbb:ccdd", "33:33:ff:bb:cc:dd"),
        ("ff05::1:3", "33:33:00:01:00:03"),
    ],
)
def test_multicast_mac(group, expected):
    assert multicast_mac(ip6(group)) == mac(expected)
    assert multicast_mac(ip6(group)) == mac(in6_getnsmac(ip6(group)))


@FAST
@given(
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
    message=st.binary(min_size=0, max_size=96),
)
def test_icmpv6_checksum_matches_scapy(src, dst, message):
    ip = IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)))
    assert icmpv6_checksum(src, dst, message) == in6_chksum(58, ip, message)


@FAST
@given(
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
    body=st.binary(min_size=4, max_size=96),
)
def test_icmpv6_checksum_verifies_to_zero(src, dst, body):
    zeroed = body[:2] + b"\x00\x00" + body[4:]
    filled = zeroed[:2] + struct.pack("!H", icmpv6_checksum(src, dst, zeroed)) + zeroed[4:]
    assert icmpv6_checksum(src, dst, filled) == 0


def test_icmpv6_checksum_known_value():
    # scapy-built RS: the checksum scapy wrote must agree with the module.
    frame = rs_with_slla()
    message = frame[ICMP_OFFSET:]
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    assert icmpv6_checksum(MN_LL, ALL_ROUTERS, zeroed) == int.from_bytes(message[2:4], "big")


# ---------------------------------------------------------------- Router Advertisement


def build_p2_ra(**overrides) -> bytes:
    arguments = dict(
        router_mac=DAR_MAC,
        router_link_local=DAR_LL,
        destination=MN_LL,
        destination_mac=MN_MAC,
        prefixes=[
            AdvertisedPrefix(prefix=PREFIX1, router_address=A_D),
            AdvertisedPrefix(
                prefix=PREFIX2, length=48, valid_lifetime_s=7200, preferred_lifetime_s=3600
            ),
        ],
        router_lifetime_s=1500,
        cur_hop_limit=64,
        mtu=1400,
    )
    arguments.update(overrides)
    return build_router_advertisement(**arguments)


def pio_options(packet) -> list:
    found, layer = [], packet.getlayer(ICMPv6NDOptPrefixInfo)
    while layer is not None:
        if isinstance(layer, ICMPv6NDOptPrefixInfo):
            found.append(layer)
        layer = layer.payload.getlayer(ICMPv6NDOptPrefixInfo) if layer.payload else None
    return found


def test_ra_ethernet_and_ipv6_headers():
    packet = Ether(build_p2_ra())
    assert packet[Ether].dst == MN_MAC_S
    assert packet[Ether].src == DAR_MAC_S
    assert packet[Ether].type == 0x86DD
    ip = packet[IPv6]
    assert ip.version == 6
    assert ip.src == DAR_LL_S
    assert ip.dst == MN_LL_S
    assert ip.hlim == 255
    assert ip.nh == 58


def test_ra_to_all_nodes():
    frame = build_p2_ra(destination=ALL_NODES, destination_mac=mac("33:33:00:00:00:01"))
    packet = Ether(frame)
    assert packet[IPv6].dst == ALL_NODES_S
    assert packet[Ether].dst == "33:33:00:00:00:01"
    assert scapy_checksum_ok(frame)


def test_ra_lengths_consistent():
    frame = build_p2_ra()
    ip = Ether(frame)[IPv6]
    # 16 fixed + SLLA 8 + MTU 8 + 2 PIO x 32, and no trailing bytes.
    assert ip.plen == 16 + 8 + 8 + 2 * 32
    assert len(frame) == ETH_IPV6 + ip.plen


def test_ra_checksum_valid():
    frame = build_p2_ra()
    packet = Ether(frame)
    original = packet[ICMPv6ND_RA].cksum
    assert original == scapy_expected_checksum(frame)
    del packet[ICMPv6ND_RA].cksum
    assert Ether(bytes(packet))[ICMPv6ND_RA].cksum == original
    assert scapy_checksum_ok(frame)


def test_ra_round_trips_through_scapy():
    frame = build_p2_ra()
    assert bytes(Ether(frame)) == frame


def test_ra_fixed_fields_and_h_flag():
    ra = Ether(build_p2_ra())[ICMPv6ND_RA]
    assert ra.type == 134
    assert ra.code == 0
    assert ra.chlim == 64
    assert ra.M == 0
    assert ra.O == 0
    assert ra.H == 1  # RFC 6275 §7.1, P2
    assert ra.prf == 0
    assert ra.P == 0
    assert ra.res == 0
    assert ra.routerlifetime == 1500
    assert ra.reachabletime == 0
    assert ra.retranstimer == 0


def test_ra_home_agent_flag_can_be_cleared():
    ra = Ether(build_p2_ra(home_agent=False, cur_hop_limit=0))[ICMPv6ND_RA]
    assert ra.H == 0
    assert ra.M == 0 and ra.O == 0
    assert ra.chlim == 0


def test_ra_default_router_lifetime():
    frame = build_router_advertisement(
        router_mac=DAR_MAC,
        router_link_local=DAR_LL,
        destination=MN_LL,
        destination_mac=MN_MAC,
        prefixes=[],
    )
    packet = Ether(frame)
    assert packet[ICMPv6ND_RA].routerlifetime == 1800
    assert packet[ICMPv6ND_RA].H == 1
    assert not packet.haslayer(ICMPv6NDOptPrefixInfo)
    assert not packet.haslayer(ICMPv6NDOptMTU)
    assert packet[ICMPv6NDOptSrcLLAddr].lladdr == DAR_MAC_S
    assert scapy_checksum_ok(frame)


def test_ra_source_link_layer_option():
    option = Ether(build_p2_ra())[ICMPv6NDOptSrcLLAddr]
    assert option.type == 1
    assert option.len == 1
    assert option.lladdr == DAR_MAC_S


def test_ra_mtu_option_when_given():
    option = Ether(build_p2_ra(mtu=1400))[ICMPv6NDOptMTU]
    assert option.type == 5
    assert option.len == 1
    assert option.res == 0
    assert option.mtu == 1400


def test_ra_no_mtu_option_by_default():
    frame = build_p2_ra(mtu=None)
    packet = Ether(frame)
    assert not packet.haslayer(ICMPv6NDOptMTU)
    assert packet[IPv6].plen == 16 + 8 + 2 * 32
    assert scapy_checksum_ok(frame)


def test_ra_prefix_information_options():
    pios = pio_options(Ether(build_p2_ra()))
    assert len(pios) == 2
    with_r, without_r = pios
    # P2 / RFC 6275 §7.2: R=1 and the full A_d in the Prefix field.
    assert with_r.type == 3 and with_r.len == 4
    assert (with_r.L, with_r.A, with_r.R) == (1, 1, 1)
    assert with_r.res1 == 0 and with_r.res2 == 0
    assert with_r.prefixlen == 64
    assert with_r.prefix == A_D_S
    assert with_r.validlifetime == 2592000
    assert with_r.preferredlifetime == 604800
    # A prefix without router_address: R=0, the network address.
    assert (without_r.L, without_r.A, without_r.R) == (1, 1, 0)
    assert without_r.res1 == 0 and without_r.res2 == 0
    assert without_r.prefixlen == 48
    assert without_r.prefix == PREFIX2_S
    assert without_r.validlifetime == 7200
    assert without_r.preferredlifetime == 3600


prefix_strategy = st.builds(
    lambda net, length, valid, preferred, host, flagged: AdvertisedPrefix(
        prefix=net,
        length=length,
        valid_lifetime_s=valid,
        preferred_lifetime_s=preferred,
        router_address=(net[:8] + host) if flagged else None,
    ),
    net=st.binary(min_size=8, max_size=8).map(lambda b: b + bytes(8)),
    length=st.integers(0, 128),
    valid=st.integers(0, 0xFFFFFFFF),
    preferred=st.integers(0, 0xFFFFFFFF),
    host=st.binary(min_size=8, max_size=8),
    flagged=st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefixes=st.lists(prefix_strategy, max_size=4),
    lifetime=st.integers(0, 0xFFFF),
    mtu=st.one_of(st.none(), st.integers(1280, 0xFFFFFFFF)),
    home_agent=st.booleans(),
)
def test_ra_property_matches_scapy(prefixes, lifetime, mtu, home_agent):
    frame = build_p2_ra(
        prefixes=prefixes, router_lifetime_s=lifetime, mtu=mtu, home_agent=home_agent
    )
    packet = Ether(frame)
    assert scapy_checksum_ok(frame)
    ra = packet[ICMPv6ND_RA]
    assert int(home_agent) == ra.H
    assert ra.routerlifetime == lifetime
    assert (ra.M, ra.O) == (0, 0)
    assert packet.haslayer(ICMPv6NDOptMTU) == (mtu is not None)
    if mtu is not None:
        assert packet[ICMPv6NDOptMTU].mtu == mtu
    pios = pio_options(packet)
    assert len(pios) == len(prefixes)
    for pio, advertised in zip(pios, prefixes, strict=True):
        assert (pio.L, pio.A) == (1, 1)
        assert int(advertised.router_address is not None) == pio.R
        expected_field = advertised.router_address or advertised.prefix
        assert ipaddress.IPv6Address(pio.prefix).packed == expected_field
        assert pio.prefixlen == advertised.length
        assert pio.validlifetime == advertised.valid_lifetime_s
        assert pio.preferredlifetime == advertised.preferred_lifetime_s


# ---------------------------------------------------------------- Neighbor Advertisement


@pytest.mark.parametrize("solicited", [True, False])
def test_na_builder_dissected(solicited):
    destination = MN_HOA if solicited else ALL_NODES
    destination_mac = MN_MAC if solicited else mac("33:33:00:00:00:01")
    frame = build_neighbor_advertisement(
        router_mac=DAR_MAC,
        target=A_D,
        destination=destination,
        destination_mac=destination_mac,
        solicited=solicited,
    )
    packet = Ether(frame)
    assert packet[Ether].src == DAR_MAC_S
    assert packet[Ether].dst == mac_text(destination_mac)
    ip = packet[IPv6]
    assert ip.src == A_D_S  # source = target (one of the DAR's own addresses)
    assert ip.dst == str(ipaddress.IPv6Address(destination))
    assert ip.hlim == 255
    assert ip.plen == 24 + 8
    assert len(frame) == ETH_IPV6 + ip.plen
    na = packet[ICMPv6ND_NA]
    assert na.type == 136
    assert na.code == 0
    assert na.R == 1  # RFC 4861 §7.2.4: a router sets R
    assert na.O == 1
    assert int(solicited) == na.S
    assert na.res == 0
    assert na.tgt == A_D_S
    option = packet[ICMPv6NDOptDstLLAddr]
    assert option.type == 2 and option.len == 1
    assert option.lladdr == DAR_MAC_S
    assert scapy_checksum_ok(frame)
    assert na.cksum == scapy_expected_checksum(frame)


def test_na_builder_parses_back():
    frame = build_neighbor_advertisement(
        router_mac=DAR_MAC, target=DAR_LL, destination=MN_LL, destination_mac=MN_MAC, solicited=True
    )
    message = parse_nd_frame(frame)
    assert message.icmp_type == 136
    assert message.target == DAR_LL
    assert message.target_link_layer == DAR_MAC
    assert message.na_flags == 0xE0
    assert message.sender_mac == DAR_MAC


# ---------------------------------------------------------------- Neighbor Solicitation


def build_ns() -> bytes:
    return build_neighbor_solicitation(router_mac=DAR_MAC, source=A_D, target=MN_HOA)


def test_ns_builder_dissected():
    frame = build_ns()
    packet = Ether(frame)
    ip = packet[IPv6]
    assert ip.src == A_D_S
    assert ip.dst == snm_s(MN_HOA_S)  # ff02::1:ff00:100
    assert ip.hlim == 255
    assert ip.plen == 24 + 8
    assert len(frame) == ETH_IPV6 + ip.plen
    ns = packet[ICMPv6ND_NS]
    assert ns.type == 135 and ns.code == 0 and ns.res == 0
    assert ns.tgt == MN_HOA_S
    assert packet[ICMPv6NDOptSrcLLAddr].lladdr == DAR_MAC_S
    assert scapy_checksum_ok(frame)


def test_ns_builder_ethernet_addresses():
    frame = build_ns()
    assert frame[0:6] == mac("33:33:ff:00:01:00")
    assert frame[0:6] == mac(in6_getnsmac(in6_getnsma(MN_HOA)))
    assert frame[6:12] == DAR_MAC
    assert frame[12:14] == b"\x86\xdd"


def test_ns_builder_parses_back():
    message = parse_nd_frame(build_ns())
    assert message.icmp_type == 135
    assert message.target == MN_HOA
    assert message.source_link_layer == DAR_MAC


# ---------------------------------------------------------------- Parameter Problem


def invoking_packet(size: int) -> bytes:
    packet = IPv6(src=MN_HOA_S, dst=A_D_S, nh=59, hlim=64) / (bytes(range(256)) * 40)[: size - 40]
    raw = bytes(packet)
    assert len(raw) == size
    return raw


@pytest.mark.parametrize(
    ("size", "embedded"),
    [(40, 40), (120, 120), (1232, 1232), (1233, 1232), (1500, 1232), (9000, 1232)],
)
def test_parameter_problem_dissected(size, embedded):
    invoking = invoking_packet(size)
    frame = build_parameter_problem(
        router_mac=DAR_MAC,
        source=A_D,
        destination_mac=MN_MAC,
        invoking_packet=invoking,
        pointer=6,
        code=1,
    )
    packet = Ether(frame)
    assert packet[Ether].src == DAR_MAC_S
    assert packet[Ether].dst == MN_MAC_S
    ip = packet[IPv6]
    assert ip.src == A_D_S
    assert ip.dst == MN_HOA_S  # RFC 4443 §3.4: the invoking packet's source
    assert ip.hlim == 64
    assert ip.nh == 58
    assert ip.plen == 8 + embedded
    whole_ipv6 = frame[14:]
    assert len(whole_ipv6) == 40 + ip.plen
    assert len(whole_ipv6) <= 1280  # RFC 4443 §2.4 (c)
    pp = packet[ICMPv6ParamProblem]
    assert pp.type == 4
    assert pp.code == 1
    assert pp.ptr == 6
    # As much of the invoking packet as fits, from its first byte.
    assert frame[ICMP_OFFSET + 8 :] == invoking[:embedded]
    assert scapy_checksum_ok(frame)
    assert pp.cksum == scapy_expected_checksum(frame)


def test_parameter_problem_1500_byte_invoking_fills_minimum_mtu():
    frame = build_parameter_problem(
        router_mac=DAR_MAC,
        source=A_D,
        destination_mac=MN_MAC,
        invoking_packet=invoking_packet(1500),
        pointer=40,
    )
    assert len(frame) - 14 == 1280


def test_parameter_problem_default_code_and_pointer():
    frame = build_parameter_problem(
        router_mac=DAR_MAC,
        source=DAR_LL,
        destination_mac=MN_MAC,
        invoking_packet=invoking_packet(200),
        pointer=0x12345678,
    )
    pp = Ether(frame)[ICMPv6ParamProblem]
    assert pp.code == 0
    assert pp.ptr == 0x12345678
    assert Ether(frame)[IPv6].src == DAR_LL_S


# ---------------------------------------------------------------- parser, accepted frames


def test_parse_rs_with_slla():
    frame = rs_with_slla()
    assert parse_nd_frame(frame) == NdMessage(
        icmp_type=133,
        eth_source=MN_MAC,
        source=MN_LL,
        destination=ALL_ROUTERS,
        target=None,
        source_link_layer=MN_OPT_MAC,
        target_link_layer=None,
        na_flags=0,
    )
    assert parse_nd_frame(frame).sender_mac == MN_OPT_MAC


def test_parse_rs_without_slla():
    message = parse_nd_frame(rs_without_slla())
    assert message.icmp_type == 133
    assert message.source == MN_LL
    assert message.source_link_layer is None
    assert message.target is None
    assert message.sender_mac == MN_MAC  # falls back to the frame source


def test_parse_rs_from_unspecified_source_without_slla():
    message = parse_nd_frame(rs_unspecified_source())
    assert message.source == UNSPECIFIED
    assert message.sender_mac is None


def test_parse_ns_with_slla():
    message = parse_nd_frame(ns_resolution())
    assert message.icmp_type == 135
    assert message.eth_source == MN_MAC
    assert message.source == MN_HOA
    assert message.destination == in6_getnsma(A_D)
    assert message.target == A_D
    assert message.source_link_layer == MN_OPT_MAC
    assert message.target_link_layer is None
    assert message.na_flags == 0
    assert message.sender_mac == MN_OPT_MAC


def test_parse_unicast_ns_without_slla():
    message = parse_nd_frame(ns_unicast_without_slla())
    assert message.target == DAR_LL
    assert message.destination == DAR_LL
    assert message.source_link_layer is None
    assert message.sender_mac == MN_MAC


def test_parse_na_with_tlla():
    assert parse_nd_frame(na_with_tlla()) == NdMessage(
        icmp_type=136,
        eth_source=MN_MAC,
        source=MN_HOA,
        destination=A_D,
        target=MN_HOA,
        source_link_layer=None,
        target_link_layer=MN_OPT_MAC,
        na_flags=0x60,  # S and O
    )
    assert parse_nd_frame(na_with_tlla()).sender_mac == MN_OPT_MAC


def test_parse_na_without_tlla():
    message = parse_nd_frame(na_without_tlla())
    assert message.na_flags == 0x80  # R only
    assert message.target_link_layer is None
    assert message.sender_mac == MN_MAC


def test_parse_dad_ns():
    message = parse_nd_frame(dad_ns())
    assert message.icmp_type == 135
    assert message.source == UNSPECIFIED
    assert message.destination == in6_getnsma(MN_HOA)
    assert message.target == MN_HOA
    assert message.source_link_layer is None
    assert message.sender_mac is None  # a DAD probe says nothing about ownership


def test_parse_ignores_ethernet_padding():
    frame = rs_without_slla() + bytes(20)
    assert parse_nd_frame(frame) == parse_nd_frame(rs_without_slla())


def test_parse_ignores_unknown_options_and_reserved_field():
    # RFC 4861 §6.1.1 / §7.1.1: reserved fields and unrecognised options are ignored.
    nonce = bytes([14, 1]) + b"\xaa" * 6  # Nonce option (RFC 3971), unknown here
    message = bytes([135, 0, 0, 0]) + b"\xff\xff\xff\xff" + A_D + nonce
    message += bytes([1, 1]) + MN_OPT_MAC
    parsed = parse_nd_frame(raw_icmp_frame(message, src=MN_HOA_S, dst=A_D_S))
    assert parsed.target == A_D
    assert parsed.source_link_layer == MN_OPT_MAC


def test_parse_rs_reserved_field_ignored():
    frame = scapy_frame(ICMPv6ND_RS(res=0xFFFFFFFF), dst=ALL_ROUTERS_S)
    assert parse_nd_frame(frame).icmp_type == 133


def test_sender_mac_rules_on_constructed_messages():
    base = dict(eth_source=MN_MAC, source=MN_LL, destination=DAR_LL)
    assert NdMessage(icmp_type=136, target_link_layer=MN_OPT_MAC, **base).sender_mac == MN_OPT_MAC
    assert NdMessage(icmp_type=136, **base).sender_mac == MN_MAC
    # NA: the SLLA is not the sender's statement, only the TLLA is.
    assert NdMessage(icmp_type=136, source_link_layer=MN_OPT_MAC, **base).sender_mac == MN_MAC
    for icmp_type in (133, 135):
        assert NdMessage(icmp_type=icmp_type, source_link_layer=MN_OPT_MAC, **base).sender_mac == (
            MN_OPT_MAC
        )
        assert NdMessage(icmp_type=icmp_type, **base).sender_mac == MN_MAC
        unspecified = dict(base, source=UNSPECIFIED)
        assert NdMessage(icmp_type=icmp_type, **unspecified).sender_mac is None


# ---------------------------------------------------------------- parser, rejections


def _not_ipv6_ethertype() -> bytes:
    return mac(DAR_MAC_S) + mac(MN_MAC_S) + b"\x08\x00" + bytes(60)


def _ip_version_4_in_ipv6_frame() -> bytes:
    frame = bytearray(rs_without_slla())
    frame[14] = 0x40 | (frame[14] & 0x0F)
    return bytes(frame)


def _payload_past_end() -> bytes:
    return ns_resolution()[:-8]  # Payload Length says 8 bytes more than present


def _payload_length_below_8() -> bytes:
    return raw_icmp_frame(bytes([133, 0, 0, 0]), dst=ALL_ROUTERS_S)


def _ns_shorter_than_24() -> bytes:
    return raw_icmp_frame(bytes([135, 0, 0, 0]) + bytes(4) + A_D[:8], src=MN_HOA_S, dst=A_D_S)


def _na_shorter_than_24() -> bytes:
    return raw_icmp_frame(bytes([136, 0, 0, 0, 0x40, 0, 0, 0]) + MN_HOA[:12], src=MN_HOA_S)


def _udp() -> bytes:
    return bytes(
        Ether(src=MN_MAC_S, dst=DAR_MAC_S)
        / IPv6(src=MN_LL_S, dst=DAR_LL_S, hlim=255)
        / UDP(sport=5000, dport=5001)
        / (b"x" * 16)
    )


def _no_next_header() -> bytes:
    return bytes(
        Ether(src=MN_MAC_S, dst=DAR_MAC_S) / IPv6(src=MN_LL_S, dst=DAR_LL_S, nh=59, plen=8)
    ) + bytes(8)


def _with_hlim(frame: bytes, hlim: int) -> bytes:
    # Hop limit is not in the pseudo-header: the checksum stays valid.
    return frame[:21] + bytes([hlim]) + frame[22:]


def _flip_checksum(frame: bytes) -> bytes:
    b = bytearray(frame)
    b[ICMP_OFFSET + 2] ^= 0x01
    return bytes(b)


def _flip_destination(frame: bytes) -> bytes:
    b = bytearray(frame)
    b[14 + 39] ^= 0x01  # pseudo-header no longer matches
    return bytes(b)


def _option_bytes(options: bytes) -> bytes:
    message = bytes([135, 0, 0, 0]) + bytes(4) + A_D + options
    return raw_icmp_frame(message, src=MN_HOA_S, dst=A_D_S)


REJECTIONS = [
    ("ipv4_ethertype", NdRejectReason.NOT_IPV6, _not_ipv6_ethertype),
    (
        "short_non_ipv6",
        NdRejectReason.NOT_IPV6,
        lambda: mac(DAR_MAC_S) + mac(MN_MAC_S) + b"\x08\x06",
    ),
    ("ip_version_4", NdRejectReason.NOT_IPV6, _ip_version_4_in_ipv6_frame),
    ("payload_past_end", NdRejectReason.TRUNCATED, _payload_past_end),
    ("payload_length_below_8", NdRejectReason.TRUNCATED, _payload_length_below_8),
    ("ns_shorter_than_24", NdRejectReason.TRUNCATED, _ns_shorter_than_24),
    ("na_shorter_than_24", NdRejectReason.TRUNCATED, _na_shorter_than_24),
    ("udp", NdRejectReason.NOT_ICMPV6, _udp),
    ("no_next_header", NdRejectReason.NOT_ICMPV6, _no_next_header),
    ("rs_hop_limit_254", NdRejectReason.HOP_LIMIT_NOT_255, lambda: _with_hlim(rs_with_slla(), 254)),
    ("ns_hop_limit_1", NdRejectReason.HOP_LIMIT_NOT_255, lambda: _with_hlim(ns_resolution(), 1)),
    ("na_hop_limit_64", NdRejectReason.HOP_LIMIT_NOT_255, lambda: _with_hlim(na_with_tlla(), 64)),
    ("rs_bad_checksum", NdRejectReason.BAD_CHECKSUM, lambda: _flip_checksum(rs_with_slla())),
    ("na_bad_checksum", NdRejectReason.BAD_CHECKSUM, lambda: _flip_checksum(na_with_tlla())),
    (
        "ns_pseudo_header",
        NdRejectReason.BAD_CHECKSUM,
        lambda: _flip_destination(ns_unicast_without_slla()),
    ),
    ("ns_code_1", NdRejectReason.BAD_CODE, lambda: scapy_frame(ICMPv6ND_NS(tgt=DAR_LL_S, code=1))),
    (
        "rs_code_255",
        NdRejectReason.BAD_CODE,
        lambda: scapy_frame(ICMPv6ND_RS(code=255), dst=ALL_ROUTERS_S),
    ),
    (
        "echo_request",
        NdRejectReason.UNHANDLED_TYPE,
        lambda: scapy_frame(ICMPv6EchoRequest(id=1, seq=1)),
    ),
    (
        "router_advertisement",
        NdRejectReason.UNHANDLED_TYPE,
        lambda: scapy_frame(ICMPv6ND_RA(), dst=ALL_NODES_S),
    ),
    (
        "redirect",
        NdRejectReason.UNHANDLED_TYPE,
        lambda: scapy_frame(ICMPv6ND_Redirect(tgt=MN_LL_S, dst=MN_HOA_S)),
    ),
    (
        "zero_length_option",
        NdRejectReason.BAD_OPTION,
        lambda: _option_bytes(bytes([1, 0]) + bytes(6)),
    ),
    (
        "zero_length_after_valid",
        NdRejectReason.BAD_OPTION,
        lambda: _option_bytes(bytes([1, 1]) + MN_OPT_MAC + bytes([14, 0]) + bytes(6)),
    ),
    (
        "option_overruns",
        NdRejectReason.BAD_OPTION,
        lambda: _option_bytes(bytes([1, 2]) + MN_OPT_MAC),
    ),
    ("option_header_cut", NdRejectReason.BAD_OPTION, lambda: _option_bytes(bytes([1]))),
    (
        "ns_multicast_target",
        NdRejectReason.MULTICAST_TARGET,
        lambda: scapy_frame(ICMPv6ND_NS(tgt=ALL_NODES_S), dst=snm_s(ALL_NODES_S)),
    ),
    (
        "na_multicast_target",
        NdRejectReason.MULTICAST_TARGET,
        lambda: scapy_frame(ICMPv6ND_NA(tgt="ff02::1:ff00:100", S=1), src=MN_HOA_S, dst=A_D_S),
    ),
    (
        "na_solicited_to_all_nodes",
        NdRejectReason.SOLICITED_ADVERTISEMENT_TO_MULTICAST,
        lambda: scapy_frame(
            ICMPv6ND_NA(R=0, S=1, O=1, tgt=MN_HOA_S),
            src=MN_HOA_S,
            dst=ALL_NODES_S,
            eth_dst="33:33:00:00:00:01",
        ),
    ),
    (
        "dad_ns_with_slla",
        NdRejectReason.UNSPECIFIED_SOURCE_WITH_LINK_LAYER,
        lambda: scapy_frame(
            ICMPv6ND_NS(tgt=MN_HOA_S) / ICMPv6NDOptSrcLLAddr(lladdr=MN_MAC_S),
            src="::",
            dst=snm_s(MN_HOA_S),
        ),
    ),
    (
        "rs_unspecified_with_slla",
        NdRejectReason.UNSPECIFIED_SOURCE_WITH_LINK_LAYER,
        lambda: scapy_frame(
            ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN_MAC_S), src="::", dst=ALL_ROUTERS_S
        ),
    ),
    (
        "dad_ns_to_all_nodes",
        NdRejectReason.UNSPECIFIED_SOURCE_NOT_TO_SOLICITED_NODE,
        lambda: scapy_frame(ICMPv6ND_NS(tgt=MN_HOA_S), src="::", dst=ALL_NODES_S),
    ),
    (
        "dad_ns_to_unicast_target",
        NdRejectReason.UNSPECIFIED_SOURCE_NOT_TO_SOLICITED_NODE,
        lambda: scapy_frame(ICMPv6ND_NS(tgt=MN_HOA_S), src="::", dst=MN_HOA_S),
    ),
    (
        "dad_ns_to_other_solicited_node",
        NdRejectReason.UNSPECIFIED_SOURCE_NOT_TO_SOLICITED_NODE,
        lambda: scapy_frame(ICMPv6ND_NS(tgt=MN_HOA_S), src="::", dst=snm_s(A_D_S)),
    ),
]


@pytest.mark.parametrize(
    ("reason", "factory"), [(r, f) for _, r, f in REJECTIONS], ids=[i for i, _, _ in REJECTIONS]
)
def test_rejection_reason(reason, factory):
    frame = factory()
    with pytest.raises(NdParseError) as caught:
        parse_nd_frame(frame)
    assert caught.value.reason is reason
    assert str(caught.value).startswith(reason.value + ":")
    assert isinstance(caught.value, ValueError)


def test_every_reject_reason_is_exercised():
    assert {reason for _, reason, _ in REJECTIONS} == set(NdRejectReason)


def test_valid_counterparts_of_rejections_parse():
    # The rejection frames above are one defect away from these valid frames.
    for factory in (
        rs_with_slla,
        rs_without_slla,
        ns_resolution,
        ns_unicast_without_slla,
        na_with_tlla,
        na_without_tlla,
        rs_unspecified_source,
    ):
        assert isinstance(parse_nd_frame(factory()), NdMessage)
    assert parse_nd_frame(_option_bytes(bytes([1, 1]) + MN_OPT_MAC)).source_link_layer == MN_OPT_MAC
    assert parse_nd_frame(_with_hlim(rs_with_slla(), 255)).icmp_type == 133


def test_frame_cut_in_ipv6_header_is_truncated():
    frame = ns_resolution()[: 14 + 20]
    with pytest.raises(NdParseError) as caught:
        parse_nd_frame(frame)
    assert caught.value.reason is NdRejectReason.TRUNCATED


def test_na_solicited_to_multicast_rejected():
    frame = scapy_frame(
        ICMPv6ND_NA(R=0, S=1, O=1, tgt=MN_HOA_S) / ICMPv6NDOptDstLLAddr(lladdr=MN_OPT_MAC_S),
        src=MN_HOA_S,
        dst=ALL_NODES_S,
        eth_dst="33:33:00:00:00:01",
    )
    with pytest.raises(NdParseError):
        parse_nd_frame(frame)


def test_na_unsolicited_to_multicast_accepted():
    frame = scapy_frame(
        ICMPv6ND_NA(R=0, S=0, O=1, tgt=MN_HOA_S) / ICMPv6NDOptDstLLAddr(lladdr=MN_OPT_MAC_S),
        src=MN_HOA_S,
        dst=ALL_NODES_S,
        eth_dst="33:33:00:00:00:01",
    )
    assert parse_nd_frame(frame).sender_mac == MN_OPT_MAC


# ---------------------------------------------------------------- robustness (hypothesis)


def _check_outcome(frame: bytes) -> None:
    try:
        message = parse_nd_frame(frame)
    except NdParseError as error:
        assert isinstance(error.reason, NdRejectReason)
        return
    assert isinstance(message, NdMessage)
    assert message.icmp_type in (133, 135, 136)
    assert len(message.source) == 16 and len(message.destination) == 16
    assert message.target is None or len(message.target) == 16
    for link_layer in (message.source_link_layer, message.target_link_layer):
        assert link_layer is None or len(link_layer) == 6


def _refix_checksum(frame: bytes) -> bytes:
    """Recompute the ICMPv6 checksum of a (possibly mutated) frame if it has one."""
    if len(frame) < ETH_IPV6 + 4:
        return frame
    plen = int.from_bytes(frame[18:20], "big")
    message = bytearray(frame[ICMP_OFFSET : ICMP_OFFSET + plen])
    if len(message) < 4:
        return frame
    message[2:4] = b"\x00\x00"
    checksum = icmpv6_checksum(frame[22:38], frame[38:54], bytes(message))
    b = bytearray(frame)
    b[ICMP_OFFSET + 2 : ICMP_OFFSET + 4] = struct.pack("!H", checksum)
    return bytes(b)


@FAST
@given(
    payload=st.one_of(
        st.binary(max_size=160),
        st.tuples(st.sampled_from([133, 135, 136]), st.binary(max_size=160)).map(
            lambda t: bytes([t[0], 0, 0, 0]) + t[1]
        ),
    ),
    plen=st.one_of(st.none(), st.integers(0, 0xFFFF)),
    hlim=st.sampled_from([255, 255, 0, 1, 64, 254]),
    src=st.sampled_from([MN_LL, UNSPECIFIED, MN_HOA, ALL_NODES]),
    dst=st.sampled_from([DAR_LL, ALL_ROUTERS, ALL_NODES, A_D, ip6("ff02::1:ff00:100")]),
    fix=st.booleans(),
)
def test_random_payload_after_valid_ipv6_header(payload, plen, hlim, src, dst, fix):
    length = len(payload) if plen is None else plen
    header = struct.pack("!IHBB", 6 << 28, length, 58, hlim) + src + dst
    frame = DAR_MAC + MN_MAC + b"\x86\xdd" + header + payload
    if fix:
        frame = _refix_checksum(frame)
    _check_outcome(frame)


VALID_FRAMES = [
    rs_with_slla(),
    rs_without_slla(),
    rs_unspecified_source(),
    ns_resolution(),
    ns_unicast_without_slla(),
    na_with_tlla(),
    na_without_tlla(),
    dad_ns(),
]


@FAST
@given(
    base=st.sampled_from(VALID_FRAMES),
    mutations=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 120)),
    extra=st.binary(max_size=24),
    fix=st.booleans(),
)
def test_mutated_valid_frames(base, mutations, cut, extra, fix):
    frame = bytearray(base)
    for position, value in mutations:
        if position < len(frame):
            frame[position] = value
    frame = bytes(frame)
    if cut is not None:
        frame = frame[:cut]
    frame += extra
    if fix:
        frame = _refix_checksum(frame)
    _check_outcome(frame)


@FAST
@given(
    target=st.binary(min_size=16, max_size=16).filter(lambda a: a[0] != 0xFF),
    destination=st.binary(min_size=16, max_size=16).filter(lambda a: a[0] != 0xFF),
    router_mac=st.binary(min_size=6, max_size=6),
    solicited=st.booleans(),
)
def test_na_builder_parse_round_trip(target, destination, router_mac, solicited):
    frame = build_neighbor_advertisement(
        router_mac=router_mac,
        target=target,
        destination=destination,
        destination_mac=MN_MAC,
        solicited=solicited,
    )
    message = parse_nd_frame(frame)
    assert message.icmp_type == icmpv6.NEIGHBOR_ADVERTISEMENT
    assert message.source == target and message.target == target
    assert message.destination == destination
    assert message.target_link_layer == router_mac
    assert message.na_flags == (0xE0 if solicited else 0xA0)
    assert message.eth_source == router_mac
