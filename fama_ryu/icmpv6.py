"""ICMPv6 a DAR speaks: Neighbor Discovery, Router Advertisements, errors.

Strict struct-based decoding of the Router Solicitations, Neighbor
Solicitations and Neighbor Advertisements punted to the controller
(validated as RFC 4861 §6.1.1 and §7.1.1 require), and encoding of the
Router Advertisements of P2 (H flag, Prefix Information with the R flag
carrying A_d, RFC 6275 §7.1-7.2), Neighbor Advertisements and
Solicitations, and ICMPv6 Parameter Problem messages (RFC 4443 §3.4) that
RFC 6275 §9.2 asks for.  Frames are Ethernet II; no third-party code.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from fama_ryu.mh import ETH_TYPE_IPV6, IPPROTO_ICMPV6, IPV6_HEADER_LEN, upper_layer_checksum

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
PARAMETER_PROBLEM = 4

OPTION_SOURCE_LINK_LAYER = 1
OPTION_TARGET_LINK_LAYER = 2
OPTION_PREFIX_INFORMATION = 3
OPTION_MTU = 5

ND_HOP_LIMIT = 255
ALL_NODES = ipaddress.IPv6Address("ff02::1").packed
UNSPECIFIED = bytes(16)
# RFC 4443 §2.4 (c): an error message must fit the minimum IPv6 MTU.
MINIMUM_MTU = 1280

_PIO_ON_LINK = 0x80
_PIO_AUTONOMOUS = 0x40
_PIO_ROUTER_ADDRESS = 0x20  # RFC 6275 §7.2
_RA_HOME_AGENT = 0x20  # RFC 6275 §7.1
_NA_ROUTER = 0x80
_NA_SOLICITED = 0x40
_NA_OVERRIDE = 0x20


class NdRejectReason(enum.Enum):
    """Why a punted ICMPv6 packet was ignored (metric label values)."""

    NOT_IPV6 = "not_ipv6"
    TRUNCATED = "truncated"
    NOT_ICMPV6 = "not_icmpv6"
    HOP_LIMIT_NOT_255 = "hop_limit_not_255"
    BAD_CHECKSUM = "bad_checksum"
    BAD_CODE = "bad_code"
    UNHANDLED_TYPE = "unhandled_type"
    BAD_OPTION = "bad_option"
    MULTICAST_TARGET = "multicast_target"
    SOLICITED_ADVERTISEMENT_TO_MULTICAST = "solicited_advertisement_to_multicast"
    UNSPECIFIED_SOURCE_WITH_LINK_LAYER = "unspecified_source_with_link_layer"
    UNSPECIFIED_SOURCE_NOT_TO_SOLICITED_NODE = "unspecified_source_not_to_solicited_node"


class NdParseError(ValueError):
    def __init__(self, reason: NdRejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class NdMessage:
    """A validated RS, NS or NA, with the link-layer addresses it carries."""

    icmp_type: int
    eth_source: bytes
    source: bytes
    destination: bytes
    target: bytes | None = None  # NS/NA
    source_link_layer: bytes | None = None
    target_link_layer: bytes | None = None
    na_flags: int = 0

    @property
    def sender_mac(self) -> bytes | None:
        """The sender's MAC as the message states it (option, else frame)."""
        if self.icmp_type == NEIGHBOR_ADVERTISEMENT:
            return self.target_link_layer or self.eth_source
        if self.source == UNSPECIFIED:
            return None  # a DAD probe says nothing about who owns the address
        return self.source_link_layer or self.eth_source


def icmpv6_checksum(source: bytes, destination: bytes, message: bytes) -> int:
    """RFC 4443 §2.3 checksum over the RFC 8200 §8.1 pseudo-header."""
    return upper_layer_checksum(source, destination, IPPROTO_ICMPV6, message)


def solicited_node_multicast(address: bytes) -> bytes:
    """ff02::1:ffXX:XXXX for ``address`` (RFC 4291 §2.7.1)."""
    return bytes.fromhex("ff0200000000000000000001ff") + address[13:]


def multicast_mac(address: bytes) -> bytes:
    """33:33 + low 32 bits of an IPv6 multicast address (RFC 2464 §7)."""
    return b"\x33\x33" + address[12:]


def link_local_from_mac(mac: bytes) -> bytes:
    """fe80::/64 with the modified EUI-64 interface identifier (RFC 4291 App. A)."""
    interface_id = bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return bytes.fromhex("fe80000000000000") + interface_id


def _is_multicast(address: bytes) -> bool:
    return address[0] == 0xFF


def parse_nd_frame(frame: bytes) -> NdMessage:
    """Decode and validate an RS, NS or NA in an Ethernet frame."""
    if len(frame) < 14 or int.from_bytes(frame[12:14], "big") != ETH_TYPE_IPV6:
        raise NdParseError(NdRejectReason.NOT_IPV6, "not an Ethernet IPv6 frame")
    if len(frame) < 14 + IPV6_HEADER_LEN:
        raise NdParseError(NdRejectReason.TRUNCATED, f"{len(frame)}-byte frame")
    packet = frame[14:]
    if packet[0] >> 4 != 6:
        raise NdParseError(NdRejectReason.NOT_IPV6, "IP version")
    payload_length, next_header, hop_limit = struct.unpack_from("!HBB", packet, 4)
    if next_header != IPPROTO_ICMPV6:
        raise NdParseError(NdRejectReason.NOT_ICMPV6, f"next header {next_header}")
    end = IPV6_HEADER_LEN + payload_length
    if end > len(packet) or payload_length < 8:
        raise NdParseError(NdRejectReason.TRUNCATED, f"payload length {payload_length}")
    source, destination = packet[8:24], packet[24:40]
    message = packet[IPV6_HEADER_LEN:end]
    icmp_type, code = message[0], message[1]
    if icmp_type not in (ROUTER_SOLICITATION, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
        raise NdParseError(NdRejectReason.UNHANDLED_TYPE, f"ICMPv6 type {icmp_type}")
    # RFC 4861 §6.1.1 / §7.1.1: off-link senders cannot forge ND.
    if hop_limit != ND_HOP_LIMIT:
        raise NdParseError(NdRejectReason.HOP_LIMIT_NOT_255, f"hop limit {hop_limit}")
    if icmpv6_checksum(source, destination, message) != 0:
        raise NdParseError(NdRejectReason.BAD_CHECKSUM, "checksum")
    if code != 0:
        raise NdParseError(NdRejectReason.BAD_CODE, f"code {code}")
    fixed = 8 if icmp_type == ROUTER_SOLICITATION else 24
    if len(message) < fixed:
        raise NdParseError(NdRejectReason.TRUNCATED, f"{len(message)} bytes")
    options = _parse_nd_options(message[fixed:])
    target = None if icmp_type == ROUTER_SOLICITATION else message[8:24]
    if target is not None and _is_multicast(target):
        raise NdParseError(NdRejectReason.MULTICAST_TARGET, "multicast target")
    if (
        icmp_type == NEIGHBOR_ADVERTISEMENT
        and _is_multicast(destination)
        and message[4] & _NA_SOLICITED
    ):
        # RFC 4861 §7.1.2: a solicited advertisement is never multicast.
        raise NdParseError(NdRejectReason.SOLICITED_ADVERTISEMENT_TO_MULTICAST, "S=1")
    source_link_layer = options.get(OPTION_SOURCE_LINK_LAYER)
    if source == UNSPECIFIED and icmp_type != NEIGHBOR_ADVERTISEMENT:
        if source_link_layer is not None:
            raise NdParseError(NdRejectReason.UNSPECIFIED_SOURCE_WITH_LINK_LAYER, "option")
        if icmp_type == NEIGHBOR_SOLICITATION and (
            target is None or destination != solicited_node_multicast(target)
        ):
            raise NdParseError(NdRejectReason.UNSPECIFIED_SOURCE_NOT_TO_SOLICITED_NODE, "DAD")
    return NdMessage(
        icmp_type=icmp_type,
        eth_source=frame[6:12],
        source=source,
        destination=destination,
        target=target,
        source_link_layer=source_link_layer,
        target_link_layer=options.get(OPTION_TARGET_LINK_LAYER),
        na_flags=message[4] if icmp_type == NEIGHBOR_ADVERTISEMENT else 0,
    )


def _parse_nd_options(data: bytes) -> dict[int, bytes]:
    """Link-layer address options by type; other options are skipped."""
    found: dict[int, bytes] = {}
    position = 0
    while position < len(data):
        if position + 2 > len(data):
            raise NdParseError(NdRejectReason.BAD_OPTION, "truncated option")
        option_type, length_units = data[position], data[position + 1]
        length = length_units * 8
        # RFC 4861 §4.6: a zero length is invalid and must end processing.
        if length == 0 or position + length > len(data):
            raise NdParseError(NdRejectReason.BAD_OPTION, f"option {option_type} length")
        if option_type in (OPTION_SOURCE_LINK_LAYER, OPTION_TARGET_LINK_LAYER):
            found.setdefault(option_type, data[position + 2 : position + 8])
        position += length
    return found


# ---------------------------------------------------------------- building


def icmpv6_packet(
    source: bytes, destination: bytes, message: bytearray, hop_limit: int = ND_HOP_LIMIT
) -> bytes:
    """``message`` (checksum field zero) with its checksum, in an IPv6 header."""
    struct.pack_into("!H", message, 2, icmpv6_checksum(source, destination, bytes(message)))
    header = struct.pack("!IHBB", 6 << 28, len(message), IPPROTO_ICMPV6, hop_limit)
    return header + source + destination + bytes(message)


def icmpv6_frame(
    eth_source: bytes,
    eth_destination: bytes,
    source: bytes,
    destination: bytes,
    message: bytearray,
    hop_limit: int = ND_HOP_LIMIT,
) -> bytes:
    """:func:`icmpv6_packet` in an Ethernet II frame."""
    packet = icmpv6_packet(source, destination, message, hop_limit)
    return eth_destination + eth_source + struct.pack("!H", ETH_TYPE_IPV6) + packet


@dataclass(frozen=True)
class AdvertisedPrefix:
    """One Prefix Information option (RFC 4861 §4.6.2, RFC 6275 §7.2).

    ``router_address`` set means the R flag, with that full address in
    the Prefix field (P2: A_d in its prefix).
    """

    prefix: bytes  # 16 bytes, the network address
    length: int = 64
    valid_lifetime_s: int = 2592000
    preferred_lifetime_s: int = 604800
    router_address: bytes | None = None


def build_router_advertisement(
    *,
    router_mac: bytes,
    router_link_local: bytes,
    destination: bytes,
    destination_mac: bytes,
    prefixes: list[AdvertisedPrefix],
    router_lifetime_s: int = 1800,
    home_agent: bool = True,
    cur_hop_limit: int = 64,
    mtu: int | None = None,
) -> bytes:
    """A Router Advertisement as P2 specifies (H flag, R-flagged A_d)."""
    flags = _RA_HOME_AGENT if home_agent else 0
    message = bytearray(
        struct.pack(
            "!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, cur_hop_limit, flags, router_lifetime_s, 0, 0
        )
    )
    message += struct.pack("!BB", OPTION_SOURCE_LINK_LAYER, 1) + router_mac
    if mtu is not None:
        message += struct.pack("!BBHI", OPTION_MTU, 1, 0, mtu)
    for advertised in prefixes:
        pio_flags = _PIO_ON_LINK | _PIO_AUTONOMOUS
        prefix_field = advertised.prefix
        if advertised.router_address is not None:
            pio_flags |= _PIO_ROUTER_ADDRESS
            prefix_field = advertised.router_address
        message += (
            struct.pack(
                "!BBBBIII",
                OPTION_PREFIX_INFORMATION,
                4,
                advertised.length,
                pio_flags,
                advertised.valid_lifetime_s,
                advertised.preferred_lifetime_s,
                0,
            )
            + prefix_field
        )
    return icmpv6_frame(router_mac, destination_mac, router_link_local, destination, message)


def build_neighbor_advertisement(
    *,
    router_mac: bytes,
    target: bytes,
    destination: bytes,
    destination_mac: bytes,
    solicited: bool,
) -> bytes:
    """An NA for one of the DAR's own addresses (RFC 4861 §7.2.4)."""
    flags = _NA_ROUTER | _NA_OVERRIDE | (_NA_SOLICITED if solicited else 0)
    message = bytearray(struct.pack("!BBHB3x", NEIGHBOR_ADVERTISEMENT, 0, 0, flags)) + target
    message += struct.pack("!BB", OPTION_TARGET_LINK_LAYER, 1) + router_mac
    return icmpv6_frame(router_mac, destination_mac, target, destination, message)


def build_neighbor_solicitation(*, router_mac: bytes, source: bytes, target: bytes) -> bytes:
    """A multicast NS resolving ``target``'s MAC (RFC 4861 §7.2.2)."""
    destination = solicited_node_multicast(target)
    message = bytearray(struct.pack("!BBH4x", NEIGHBOR_SOLICITATION, 0, 0)) + target
    message += struct.pack("!BB", OPTION_SOURCE_LINK_LAYER, 1) + router_mac
    return icmpv6_frame(router_mac, multicast_mac(destination), source, destination, message)


def parameter_problem_packet(
    *, source: bytes, invoking_packet: bytes, pointer: int, code: int = 0
) -> bytes:
    """ICMPv6 Parameter Problem (RFC 4443 §3.4) about ``invoking_packet``, as IPv6.

    ``invoking_packet`` is the offending IPv6 packet (no Ethernet header);
    it is truncated so the error fits the minimum MTU (RFC 4443 §2.4 (c)).
    The error goes to the offending packet's source.
    """
    destination = invoking_packet[8:24]
    room = MINIMUM_MTU - IPV6_HEADER_LEN - 8
    message = bytearray(struct.pack("!BBHI", PARAMETER_PROBLEM, code, 0, pointer))
    message += invoking_packet[:room]
    return icmpv6_packet(source, destination, message, hop_limit=64)


def build_parameter_problem(
    *,
    router_mac: bytes,
    source: bytes,
    destination_mac: bytes,
    invoking_packet: bytes,
    pointer: int,
    code: int = 0,
) -> bytes:
    """The Parameter Problem of :func:`parameter_problem_packet` in an Ethernet frame."""
    packet = parameter_problem_packet(
        source=source, invoking_packet=invoking_packet, pointer=pointer, code=code
    )
    return destination_mac + router_mac + struct.pack("!H", ETH_TYPE_IPV6) + packet
