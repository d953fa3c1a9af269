"""Tests of fama_ryu/ra.py: the mobile node's RA parser and RS builder.

Oracles independent of the module under test: RAs are built by scapy
(``ICMPv6ND_RA`` + ``ICMPv6NDOptPrefixInfo`` with the R flag +
``ICMPv6NDOptSrcLLAddr``) and by the DAR's own builder
(``fama_ryu.icmpv6.build_router_advertisement``, itself checked against
scapy in test_icmpv6.py); malformed RAs get their checksum from scapy's
``in6_chksum`` so that each one breaks exactly one rule.  Router
Solicitations are dissected by scapy and parsed by the DAR's ND parser.

Spec references: RFC 4861 §4.1, §4.2, §4.6, §6.1.2; RFC 6275 §7.1, §7.2;
FAMA-PROFILE P2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    UDP,
    ICMPv6ND_NA,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import Ether

from fama_ryu import icmpv6
from fama_ryu.ra import (
    RaParseError,
    RaRejectReason,
    build_router_solicitation,
    build_unsolicited_neighbor_advertisement,
    parse_router_advertisement,
    parse_router_advertisement_frame,
)

# Literal addresses only (an invalid string would make scapy try DNS).
DAR_MAC_S = "02:00:00:00:d0:01"
DAR_LL_S = "fe80::ff:fe00:d001"
MN_MAC_S = "02:00:00:00:00:0a"
MN_LL_S = "fe80::ff:fe00:a"
A_D_S = "2001:db8:1::1"
PREFIX_S = "2001:db8:1::"
PREFIX2_S = "2001:db8:5::"
ALL_NODES_S = "ff02::1"

ICMP_OFFSET = 14 + 40

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def scapy_ra(
    *,
    src: str = DAR_LL_S,
    hlim: int = 255,
    code: int = 0,
    router_lifetime: int = 1800,
    home_agent: bool = True,
    extra_options: tuple = (),
) -> bytes:
    """A P2 RA built by scapy: SLLA, R-flagged PIO with A_d, a plain PIO, MTU, RDNSS."""
    ra = (
        IPv6(src=src, dst=ALL_NODES_S, hlim=hlim)
        / ICMPv6ND_RA(code=code, H=int(home_agent), routerlifetime=router_lifetime, chlim=64)
        / ICMPv6NDOptSrcLLAddr(lladdr=DAR_MAC_S)
        / ICMPv6NDOptPrefixInfo(
            prefixlen=64, L=1, A=1, R=1, validlifetime=7200, preferredlifetime=3600, prefix=A_D_S
        )
        / ICMPv6NDOptPrefixInfo(
            prefixlen=64, L=1, A=0, R=0, validlifetime=100, preferredlifetime=50, prefix=PREFIX2_S
        )
        / ICMPv6NDOptMTU(mtu=1500)
        # An option the parser does not know: skipped (RFC 4861 §4.6).
        / ICMPv6NDOptRDNSS(dns=["2001:db8::53"])
    )
    for option in extra_options:
        ra = ra / option
    return bytes(Ether(src=DAR_MAC_S, dst="33:33:00:00:00:01") / ra)


def with_icmp(frame: bytes, message: bytes, *, fix_checksum: bool = True) -> bytes:
    """``frame``'s Ethernet/IPv6 headers around ``message``, payload length and checksum fixed."""
    header = bytearray(frame[:ICMP_OFFSET])
    struct.pack_into("!H", header, 14 + 4, len(message))
    if fix_checksum and len(message) >= 4:
        source, destination = (
            str(ipaddress.IPv6Address(bytes(header[offset : offset + 16]))) for offset in (22, 38)
        )
        ip = IPv6(src=source, dst=destination)
        zeroed = message[:2] + b"\x00\x00" + message[4:]
        message = zeroed[:2] + struct.pack("!H", in6_chksum(58, ip, zeroed)) + zeroed[4:]
    return bytes(header) + message


def icmp_of(frame: bytes) -> bytes:
    return frame[ICMP_OFFSET:]


def rejection(frame: bytes) -> RaRejectReason:
    with pytest.raises(RaParseError) as caught:
        parse_router_advertisement_frame(frame)
    return caught.value.reason


# ---------------------------------------------------------------- accepted RAs


def test_parses_the_dars_own_builder():
    frame = icmpv6.build_router_advertisement(
        router_mac=mac(DAR_MAC_S),
        router_link_local=ip6(DAR_LL_S),
        destination=ip6(MN_LL_S),
        destination_mac=mac(MN_MAC_S),
        prefixes=[
            icmpv6.AdvertisedPrefix(prefix=ip6(PREFIX_S), router_address=ip6(A_D_S)),
            icmpv6.AdvertisedPrefix(
                prefix=ip6(PREFIX2_S), valid_lifetime_s=9, preferred_lifetime_s=8
            ),
        ],
        router_lifetime_s=1234,
        mtu=1480,
    )
    ra = parse_router_advertisement_frame(frame)
    assert ra.source == ip6(DAR_LL_S) and ra.destination == ip6(MN_LL_S)
    assert ra.home_agent and not ra.managed and not ra.other_config
    assert ra.router_lifetime_s == 1234 and ra.cur_hop_limit == 64
    assert ra.source_link_layer == mac(DAR_MAC_S) and ra.eth_source == mac(DAR_MAC_S)
    assert ra.router_mac == mac(DAR_MAC_S)
    assert ra.mtu == 1480
    first, second = ra.prefixes
    assert (first.on_link, first.autonomous, first.router_address) == (True, True, True)
    assert first.prefix == ip6(A_D_S)  # R flag: the full anchor address (RFC 6275 §7.2)
    assert first.network == ipaddress.IPv6Network("2001:db8:1::/64")
    assert (first.valid_lifetime_s, first.preferred_lifetime_s) == (2592000, 604800)
    assert not second.router_address and second.prefix == ip6(PREFIX2_S)
    assert (second.valid_lifetime_s, second.preferred_lifetime_s) == (9, 8)
    assert ra.router_address_prefix() == first


def test_parses_scapy_ra_with_r_flag():
    ra = parse_router_advertisement_frame(scapy_ra())
    assert ra.home_agent and ra.router_lifetime_s == 1800
    assert ra.source == ip6(DAR_LL_S)
    assert ra.source_link_layer == mac(DAR_MAC_S) and ra.mtu == 1500
    assert len(ra.prefixes) == 2  # the RDNSS option was skipped
    anchor_pio = ra.router_address_prefix()
    assert anchor_pio is not None
    assert anchor_pio.prefix == ip6(A_D_S) and anchor_pio.prefix_length == 64
    assert anchor_pio.valid_lifetime_s == 7200 and anchor_pio.preferred_lifetime_s == 3600
    plain = ra.prefixes[1]
    assert (plain.on_link, plain.autonomous, plain.router_address) == (True, False, False)


def test_ipv6_packet_without_ethernet_and_trailing_padding():
    packet = scapy_ra()[14:] + bytes(6)  # Ethernet padding past the payload length
    ra = parse_router_advertisement(packet)
    assert ra.eth_source is None and ra.router_mac == mac(DAR_MAC_S)


def test_home_agent_flag_clear_and_no_slla():
    frame = bytes(
        Ether(src=DAR_MAC_S)
        / IPv6(src=DAR_LL_S, dst=ALL_NODES_S, hlim=255)
        / ICMPv6ND_RA(H=0, M=1, O=1, routerlifetime=0)
    )
    ra = parse_router_advertisement_frame(frame)
    assert not ra.home_agent and ra.managed and ra.other_config
    assert ra.router_lifetime_s == 0 and ra.prefixes == ()
    assert ra.source_link_layer is None and ra.router_mac == mac(DAR_MAC_S)
    assert ra.router_address_prefix() is None


def test_first_slla_wins():
    ra = parse_router_advertisement_frame(
        scapy_ra(extra_options=(ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:ee:ee"),))
    )
    assert ra.source_link_layer == mac(DAR_MAC_S)


# ---------------------------------------------------------------- rejections (RFC 4861 §6.1.2)


def test_rejects_hop_limit_below_255():
    assert rejection(scapy_ra(hlim=254)) is RaRejectReason.HOP_LIMIT_NOT_255


def test_rejects_global_source():
    assert rejection(scapy_ra(src=A_D_S)) is RaRejectReason.SOURCE_NOT_LINK_LOCAL


def test_rejects_bad_checksum():
    frame = bytearray(scapy_ra())
    frame[ICMP_OFFSET + 2] ^= 0x01
    assert rejection(bytes(frame)) is RaRejectReason.BAD_CHECKSUM


def test_rejects_nonzero_code():
    assert rejection(scapy_ra(code=1)) is RaRejectReason.BAD_CODE


def test_rejects_icmp_length_below_16():
    frame = scapy_ra()
    assert rejection(with_icmp(frame, icmp_of(frame)[:12])) is RaRejectReason.TRUNCATED


def test_rejects_payload_length_past_the_end():
    assert rejection(scapy_ra()[:-8]) is RaRejectReason.TRUNCATED


def test_rejects_truncated_ipv6_header():
    assert rejection(scapy_ra()[:30]) is RaRejectReason.TRUNCATED


def test_rejects_zero_length_option():
    frame = scapy_ra()
    message = icmp_of(frame)[:16] + bytes([99, 0]) + bytes(6)
    assert rejection(with_icmp(frame, message)) is RaRejectReason.BAD_OPTION


def test_rejects_option_past_the_end():
    frame = scapy_ra()
    message = icmp_of(frame)[:16] + bytes([99, 2]) + bytes(6)
    assert rejection(with_icmp(frame, message)) is RaRejectReason.BAD_OPTION


def test_rejects_truncated_option_header():
    frame = scapy_ra()
    message = icmp_of(frame)[:16] + bytes([1])
    assert rejection(with_icmp(frame, message)) is RaRejectReason.BAD_OPTION


@pytest.mark.parametrize(
    ("option", "what"),
    [
        (bytes([icmpv6.OPTION_PREFIX_INFORMATION, 3]) + bytes(22), "PIO of 3 units"),
        (bytes([icmpv6.OPTION_SOURCE_LINK_LAYER, 2]) + bytes(14), "SLLA of 2 units"),
        (bytes([icmpv6.OPTION_MTU, 2]) + bytes(14), "MTU of 2 units"),
        (bytes([icmpv6.OPTION_PREFIX_INFORMATION, 4, 129, 0xE0]) + bytes(28), "/129"),
    ],
)
def test_rejects_malformed_known_options(option, what):
    frame = scapy_ra()
    message = icmp_of(frame)[:16] + option
    assert rejection(with_icmp(frame, message)) is RaRejectReason.BAD_OPTION, what


def test_rejects_other_icmpv6_types():
    frame = bytes(Ether() / IPv6(src=MN_LL_S, dst="ff02::2", hlim=255) / ICMPv6ND_RS())
    assert rejection(frame) is RaRejectReason.NOT_ROUTER_ADVERTISEMENT


def test_rejects_non_icmpv6():
    frame = bytes(Ether() / IPv6(src=DAR_LL_S, dst=ALL_NODES_S, hlim=255) / UDP())
    assert rejection(frame) is RaRejectReason.NOT_ICMPV6


def test_rejects_non_ipv6_frames():
    frame = bytearray(scapy_ra())
    assert rejection(bytes(frame[:12]) + b"\x08\x00" + bytes(frame[14:])) is RaRejectReason.NOT_IPV6
    frame[14] = 0x45
    assert rejection(bytes(frame)) is RaRejectReason.NOT_IPV6
    assert rejection(b"\x00" * 10) is RaRejectReason.NOT_IPV6


def test_rejection_reason_is_in_the_message():
    with pytest.raises(RaParseError, match="hop_limit_not_255: hop limit 64"):
        parse_router_advertisement_frame(scapy_ra(hlim=64))


# ---------------------------------------------------------------- robustness

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 400), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.integers(0, 255)),
)


@FAST
@given(mutations=st.lists(mutation, min_size=1, max_size=6), fix_checksum=st.booleans())
def test_mutations_raise_only_the_parsers_error(mutations, fix_checksum):
    frame = bytearray(scapy_ra())
    for kind, position, value in mutations:
        position = min(position, len(frame))
        if kind == "flip" and position < len(frame):
            frame[position] ^= value
        elif kind == "cut":
            del frame[position:]
        elif kind == "insert":
            frame[position:position] = bytes([value])
    candidate = bytes(frame)
    if fix_checksum and len(candidate) > ICMP_OFFSET + 4:
        candidate = with_icmp(candidate, candidate[ICMP_OFFSET:])
    try:
        ra = parse_router_advertisement_frame(candidate)
    except RaParseError:
        return
    # Link-local is fe80::/10 (RFC 4291 §2.5.6): fe81:: counts too.
    assert ra.source[0] == 0xFE and ra.source[1] & 0xC0 == 0x80
    assert all(pio.prefix_length <= 128 for pio in ra.prefixes)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_the_parsers_error(data):
    with contextlib.suppress(RaParseError):
        parse_router_advertisement(data)


# ---------------------------------------------------------------- Router Solicitation


def test_router_solicitation_from_link_local_carries_slla():
    frame = build_router_solicitation(source_mac=mac(MN_MAC_S), source=ip6(MN_LL_S))
    packet = Ether(frame)
    assert packet.dst == "33:33:00:00:00:02" and packet.src == MN_MAC_S
    assert packet[IPv6].src == MN_LL_S and packet[IPv6].dst == "ff02::2"
    assert packet[IPv6].hlim == 255 and packet[IPv6].plen == 16
    assert ICMPv6ND_RS in packet and packet[ICMPv6NDOptSrcLLAddr].lladdr == MN_MAC_S
    ip = packet[IPv6]
    assert in6_chksum(58, ip, frame[ICMP_OFFSET:]) == 0
    parsed = icmpv6.parse_nd_frame(frame)  # the DAR accepts it (RFC 4861 §6.1.1)
    assert parsed.icmp_type == icmpv6.ROUTER_SOLICITATION
    assert parsed.sender_mac == mac(MN_MAC_S)


def test_router_solicitation_from_unspecified_has_no_slla():
    frame = build_router_solicitation(source_mac=mac(MN_MAC_S))
    packet = Ether(frame)
    assert packet[IPv6].src == "::" and ICMPv6NDOptSrcLLAddr not in packet
    assert packet[IPv6].plen == 8
    parsed = icmpv6.parse_nd_frame(frame)
    assert parsed.source == bytes(16) and parsed.sender_mac is None


# ---------------------------------------------------------------- unsolicited NA (RFC 9131)


def test_unsolicited_neighbor_advertisement():
    frame = build_unsolicited_neighbor_advertisement(source_mac=mac(MN_MAC_S), address=ip6(A_D_S))
    packet = Ether(frame)
    assert packet.dst == "33:33:00:00:00:02" and packet.src == MN_MAC_S
    assert packet[IPv6].src == A_D_S and packet[IPv6].dst == "ff02::2"
    assert packet[IPv6].hlim == 255
    na = packet[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 0, A_D_S)
    assert packet[ICMPv6NDOptDstLLAddr].lladdr == MN_MAC_S  # Target Link-Layer Address
    assert in6_chksum(58, packet[IPv6], frame[ICMP_OFFSET:]) == 0
    parsed = icmpv6.parse_nd_frame(frame)  # what the DAR learns from (RFC 4861 §7.1.2)
    assert parsed.target == ip6(A_D_S) and parsed.sender_mac == mac(MN_MAC_S)
