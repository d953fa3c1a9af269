"""The mobile node's Neighbor Discovery: RA parser, RS and unsolicited NA builders.

The mobile-node agent learns where it is from Router Advertisements: the
FAMA profile (P2) has every DAR advertise, from its link-local address, the
H flag and one Prefix Information option (PIO) per access prefix, the
R-flagged one carrying the DAR's anchor address ``A_d`` in full
(RFC 6275 §7.2).  :func:`parse_router_advertisement` decodes every field
the agent uses and validates the message as RFC 4861 §6.1.2 requires: hop
limit 255, link-local source, correct checksum, code 0, ICMP length of at
least 16 octets, and no option of length zero.  Options the agent relies on
must also be well formed (Source Link-Layer Address of one 8-octet unit,
Prefix Information of four, MTU of one, prefix length at most 128);
unknown options are skipped (RFC 4861 §4.6).

Every rejection raises :class:`RaParseError` with a :class:`RaRejectReason`;
nothing else escapes, whatever the input bytes.

:func:`build_router_solicitation` is the message that asks for an RA
(RFC 4861 §4.1, §6.3.7).  :func:`build_unsolicited_neighbor_advertisement`
announces a newly configured address to the routers (RFC 9131), so that a
DAR can deliver the first packet for it, such as the BA answering the first
BU from a new care-of address, without resolving it first.
Struct-based, no third-party code.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, replace

from fama_ryu.icmpv6 import (
    ND_HOP_LIMIT,
    NEIGHBOR_ADVERTISEMENT,
    OPTION_MTU,
    OPTION_PREFIX_INFORMATION,
    OPTION_SOURCE_LINK_LAYER,
    OPTION_TARGET_LINK_LAYER,
    ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
    UNSPECIFIED,
    icmpv6_checksum,
    icmpv6_frame,
    multicast_mac,
)
from fama_ryu.mh import ETH_TYPE_IPV6, IPPROTO_ICMPV6, IPV6_HEADER_LEN

ALL_ROUTERS = ipaddress.IPv6Address("ff02::2").packed
ETHERNET_HEADER_LEN = 14
RA_FIXED_LEN = 16  # RFC 4861 §4.2: type .. retrans timer
PIO_LEN = 32
INFINITE_LIFETIME = 0xFFFFFFFF  # RFC 4861 §4.6.2

_RA_MANAGED = 0x80
_RA_OTHER = 0x40
_RA_HOME_AGENT = 0x20  # RFC 6275 §7.1
_PIO_ON_LINK = 0x80
_PIO_AUTONOMOUS = 0x40
_PIO_ROUTER_ADDRESS = 0x20  # RFC 6275 §7.2


class RaRejectReason(enum.Enum):
    """Every way a frame can fail to be a valid Router Advertisement."""

    NOT_IPV6 = "not_ipv6"
    TRUNCATED = "truncated"
    NOT_ICMPV6 = "not_icmpv6"
    NOT_ROUTER_ADVERTISEMENT = "not_router_advertisement"
    HOP_LIMIT_NOT_255 = "hop_limit_not_255"
    SOURCE_NOT_LINK_LOCAL = "source_not_link_local"
    BAD_CHECKSUM = "bad_checksum"
    BAD_CODE = "bad_code"
    BAD_OPTION = "bad_option"


class RaParseError(ValueError):
    """A frame rejected by the parser; ``reason`` says which rule it broke."""

    def __init__(self, reason: RaRejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class PrefixInformation:
    """One Prefix Information option (RFC 4861 §4.6.2, RFC 6275 §7.2).

    ``prefix`` is the option's Prefix field as sent: with the R flag it is
    the router's complete address (A_d under P2), so host bits may be set.
    """

    prefix: bytes
    prefix_length: int
    on_link: bool
    autonomous: bool
    router_address: bool
    valid_lifetime_s: int
    preferred_lifetime_s: int

    @property
    def network(self) -> ipaddress.IPv6Network:
        """The advertised prefix with host bits cleared."""
        address = ipaddress.IPv6Address(self.prefix)
        return ipaddress.IPv6Network((address, self.prefix_length), strict=False)


@dataclass(frozen=True)
class RouterAdvertisement:
    """A validated Router Advertisement (RFC 4861 §4.2, RFC 6275 §7.1)."""

    source: bytes  # the router's link-local address
    destination: bytes
    cur_hop_limit: int
    managed: bool
    other_config: bool
    home_agent: bool
    router_lifetime_s: int
    reachable_time_ms: int
    retrans_timer_ms: int
    prefixes: tuple[PrefixInformation, ...]
    source_link_layer: bytes | None = None
    mtu: int | None = None
    eth_source: bytes | None = None  # set when parsed from an Ethernet frame

    @property
    def router_mac(self) -> bytes | None:
        """The router's MAC as the RA states it: the SLLA option, else the frame source."""
        return self.source_link_layer or self.eth_source

    def router_address_prefix(self) -> PrefixInformation | None:
        """The first R-flagged PIO: its Prefix field is the router's global address (P2)."""
        return next((pio for pio in self.prefixes if pio.router_address), None)


def _is_link_local(address: bytes) -> bool:
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80


def parse_router_advertisement_frame(frame: bytes) -> RouterAdvertisement:
    """Decode and validate a Router Advertisement in an Ethernet II frame."""
    if len(frame) < ETHERNET_HEADER_LEN or int.from_bytes(frame[12:14], "big") != ETH_TYPE_IPV6:
        raise RaParseError(RaRejectReason.NOT_IPV6, "not an Ethernet IPv6 frame")
    advertisement = parse_router_advertisement(frame[ETHERNET_HEADER_LEN:])
    return replace(advertisement, eth_source=frame[6:12])


def parse_router_advertisement(packet: bytes) -> RouterAdvertisement:
    """Decode and validate a Router Advertisement in an IPv6 packet (RFC 4861 §6.1.2).

    Bytes past the IPv6 payload length (Ethernet padding) are ignored.
    """
    if len(packet) < IPV6_HEADER_LEN:
        raise RaParseError(RaRejectReason.TRUNCATED, f"{len(packet)}-byte packet")
    if packet[0] >> 4 != 6:
        raise RaParseError(RaRejectReason.NOT_IPV6, f"IP version {packet[0] >> 4}")
    payload_length, next_header, hop_limit = struct.unpack_from("!HBB", packet, 4)
    if next_header != IPPROTO_ICMPV6:
        raise RaParseError(RaRejectReason.NOT_ICMPV6, f"next header {next_header}")
    end = IPV6_HEADER_LEN + payload_length
    if end > len(packet):
        raise RaParseError(
            RaRejectReason.TRUNCATED,
            f"payload length {payload_length}, {len(packet) - IPV6_HEADER_LEN} bytes present",
        )
    message = packet[IPV6_HEADER_LEN:end]
    if len(message) < 4:
        raise RaParseError(RaRejectReason.TRUNCATED, f"{len(message)}-byte ICMPv6 message")
    if message[0] != ROUTER_ADVERTISEMENT:
        raise RaParseError(RaRejectReason.NOT_ROUTER_ADVERTISEMENT, f"ICMPv6 type {message[0]}")
    source, destination = packet[8:24], packet[24:40]
    # RFC 4861 §6.1.2, in its order: only an on-link router can send these.
    if hop_limit != ND_HOP_LIMIT:
        raise RaParseError(RaRejectReason.HOP_LIMIT_NOT_255, f"hop limit {hop_limit}")
    if not _is_link_local(source):
        raise RaParseError(RaRejectReason.SOURCE_NOT_LINK_LOCAL, str(ipaddress.IPv6Address(source)))
    if icmpv6_checksum(source, destination, message) != 0:
        raise RaParseError(RaRejectReason.BAD_CHECKSUM, "checksum")
    if message[1] != 0:
        raise RaParseError(RaRejectReason.BAD_CODE, f"code {message[1]}")
    if len(message) < RA_FIXED_LEN:
        raise RaParseError(RaRejectReason.TRUNCATED, f"ICMP length {len(message)}")
    cur_hop_limit, flags, router_lifetime_s, reachable_ms, retrans_ms = struct.unpack_from(
        "!BBHII", message, 4
    )
    options = _parse_options(message[RA_FIXED_LEN:])
    return RouterAdvertisement(
        source=source,
        destination=destination,
        cur_hop_limit=cur_hop_limit,
        managed=bool(flags & _RA_MANAGED),
        other_config=bool(flags & _RA_OTHER),
        home_agent=bool(flags & _RA_HOME_AGENT),
        router_lifetime_s=router_lifetime_s,
        reachable_time_ms=reachable_ms,
        retrans_timer_ms=retrans_ms,
        prefixes=options.prefixes,
        source_link_layer=options.source_link_layer,
        mtu=options.mtu,
    )


@dataclass(frozen=True)
class _Options:
    prefixes: tuple[PrefixInformation, ...]
    source_link_layer: bytes | None
    mtu: int | None


def _parse_options(data: bytes) -> _Options:
    prefixes: list[PrefixInformation] = []
    source_link_layer: bytes | None = None
    mtu: int | None = None
    position = 0
    while position < len(data):
        if position + 2 > len(data):
            raise RaParseError(RaRejectReason.BAD_OPTION, "truncated option header")
        option_type, length_units = data[position], data[position + 1]
        length = 8 * length_units
        # RFC 4861 §4.6: a zero length is invalid and ends processing.
        if length == 0:
            raise RaParseError(RaRejectReason.BAD_OPTION, f"option {option_type} has length 0")
        if position + length > len(data):
            raise RaParseError(RaRejectReason.BAD_OPTION, f"option {option_type} past the end")
        body = data[position : position + length]
        if option_type == OPTION_SOURCE_LINK_LAYER:
            if length != 8:
                raise RaParseError(RaRejectReason.BAD_OPTION, f"{length}-byte link-layer option")
            if source_link_layer is None:
                source_link_layer = body[2:8]
        elif option_type == OPTION_MTU:
            if length != 8:
                raise RaParseError(RaRejectReason.BAD_OPTION, f"{length}-byte MTU option")
            mtu = int.from_bytes(body[4:8], "big")
        elif option_type == OPTION_PREFIX_INFORMATION:
            prefixes.append(_prefix_information(body))
        position += length
    return _Options(tuple(prefixes), source_link_layer, mtu)


def _prefix_information(body: bytes) -> PrefixInformation:
    if len(body) != PIO_LEN:
        raise RaParseError(RaRejectReason.BAD_OPTION, f"{len(body)}-byte Prefix Information")
    prefix_length, flags, valid_s, preferred_s = struct.unpack_from("!BBII", body, 2)
    if prefix_length > 128:
        raise RaParseError(RaRejectReason.BAD_OPTION, f"prefix length {prefix_length}")
    return PrefixInformation(
        prefix=body[16:32],
        prefix_length=prefix_length,
        on_link=bool(flags & _PIO_ON_LINK),
        autonomous=bool(flags & _PIO_AUTONOMOUS),
        router_address=bool(flags & _PIO_ROUTER_ADDRESS),
        valid_lifetime_s=valid_s,
        preferred_lifetime_s=preferred_s,
    )


def build_router_solicitation(*, source_mac: bytes, source: bytes = UNSPECIFIED) -> bytes:
    """A Router Solicitation to all routers, as an Ethernet frame (RFC 4861 §4.1).

    With a link-local ``source`` it carries a Source Link-Layer Address
    option, so the router can answer unicast; from the unspecified address
    it must not (RFC 4861 §4.1) and routers answer to all nodes.
    """
    message = bytearray(struct.pack("!BBH4x", ROUTER_SOLICITATION, 0, 0))
    if source != UNSPECIFIED:
        message += struct.pack("!BB", OPTION_SOURCE_LINK_LAYER, 1) + source_mac
    return _to_all_routers(source_mac, source, message)


def build_unsolicited_neighbor_advertisement(*, source_mac: bytes, address: bytes) -> bytes:
    """An unsolicited NA for ``address`` to all routers (RFC 9131 §4.2, RFC 4861 §7.2.6).

    Sent from the address itself with its Target Link-Layer Address; the
    Router, Solicited and Override flags are clear, so it creates a
    neighbour entry at a router without overriding one that exists.
    """
    message = bytearray(struct.pack("!BBH4x", NEIGHBOR_ADVERTISEMENT, 0, 0)) + address
    message += struct.pack("!BB", OPTION_TARGET_LINK_LAYER, 1) + source_mac
    return _to_all_routers(source_mac, address, message)


def _to_all_routers(source_mac: bytes, source: bytes, message: bytearray) -> bytes:
    """``message`` (checksum field zero) in IPv6 to ff02::2 with hop limit 255, in Ethernet."""
    return icmpv6_frame(source_mac, multicast_mac(ALL_ROUTERS), source, ALL_ROUTERS, message)
