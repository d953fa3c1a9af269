"""Strict codec for Mobile IPv6 signalling packets (RFC 6275, RFC 4866).

Decodes and encodes the IPv6 packets a Distributed Anchor Router exchanges
with mobile nodes: Binding Update, Binding Acknowledgement, Binding Error,
Care-of Test Init and Care-of Test, with the Home Address destination option
and the type 2 Routing Header around them.  This module is on the
controller's hot path, so it is plain ``struct`` code with no third-party
dependency (scapy is kept out of the controller process: see PLATFORM notes).

Every rejection raises :class:`MobilityParseError` carrying a
:class:`RejectReason`; each reason knows how the receiver must react
(silent drop, ICMPv6 Parameter Problem with a pointer, or Binding Error
status 2), per RFC 6275 §9.2.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from fama_ryu.records import frozen_record

IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MH = 135

ETH_TYPE_IPV6 = 0x86DD
IPV6_HEADER_LEN = 40
ROUTING_TYPE_2 = 2
HOME_ADDRESS_OPTION_TYPE = 0xC9

# Size caps (P8): a 2040-bit key gives 318 bytes of CGA Parameters (two
# options) and a 255-byte signature; anything beyond these caps is abuse.
MAX_MOBILITY_HEADER_LEN = 1024
MAX_CGA_PARAMETERS_LEN = 3 * 255
MAX_EXTENSION_HEADERS = 6
CGA_PARAMETERS_FRAGMENT_LEN = 255
AUTHENTICATOR_LEN = 12


class MHType(enum.IntEnum):
    """Mobility Header message types (RFC 6275 §6.1)."""

    BINDING_REFRESH_REQUEST = 0
    HOME_TEST_INIT = 1
    CARE_OF_TEST_INIT = 2
    HOME_TEST = 3
    CARE_OF_TEST = 4
    BINDING_UPDATE = 5
    BINDING_ACK = 6
    BINDING_ERROR = 7


class OptionType(enum.IntEnum):
    """Mobility options (RFC 6275 §6.2, RFC 4866 §5)."""

    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_COA = 3
    NONCE_INDICES = 4
    BINDING_AUTHORIZATION_DATA = 5
    CGA_PARAMETERS_REQUEST = 11
    CGA_PARAMETERS = 12
    SIGNATURE = 13
    PERMANENT_HOME_KEYGEN_TOKEN = 14
    CARE_OF_TEST_INIT = 15
    CARE_OF_TEST = 16


class BAStatus(enum.IntEnum):
    """Binding Acknowledgement status codes used by the profile."""

    ACCEPTED = 0
    UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT = 133
    SEQUENCE_OUT_OF_WINDOW = 135
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    PHKT_UNAVAILABLE = 147
    CGA_SIGNATURE_VERIFICATION_FAILED = 148


class BEStatus(enum.IntEnum):
    """Binding Error status codes (RFC 6275 §6.1.9)."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS = 1
    UNRECOGNIZED_MH_TYPE = 2


class Reaction(enum.Enum):
    """What a receiver does with a rejected packet (RFC 6275 §9.2)."""

    SILENT_DROP = "silent_drop"
    PARAMETER_PROBLEM = "icmpv6_parameter_problem"
    BINDING_ERROR_UNRECOGNIZED_TYPE = "binding_error_2"


class RejectReason(enum.Enum):
    """Every way a packet can fail decoding; the value names it in metrics."""

    TRUNCATED_IPV6_HEADER = "truncated_ipv6_header"
    NOT_IPV6 = "not_ipv6"
    PAYLOAD_LENGTH_PAST_END = "payload_length_past_end"
    EXTENSION_HEADER_TRUNCATED = "extension_header_truncated"
    TOO_MANY_EXTENSION_HEADERS = "too_many_extension_headers"
    HOP_BY_HOP_NOT_FIRST = "hop_by_hop_not_first"
    DESTINATION_OPTION_MALFORMED = "destination_option_malformed"
    UNKNOWN_DESTINATION_OPTION = "unknown_destination_option"
    DUPLICATE_HOME_ADDRESS_OPTION = "duplicate_home_address_option"
    ROUTING_HEADER_UNSUPPORTED = "routing_header_unsupported"
    ROUTING_HEADER_MALFORMED = "routing_header_malformed"
    FRAGMENTED = "fragmented"
    NOT_MOBILITY_HEADER = "not_mobility_header"
    MH_TRUNCATED = "mh_truncated"
    HEADER_LEN_PAST_END = "header_len_past_end"
    OVERSIZED = "oversized"
    BAD_CHECKSUM = "bad_checksum"
    UNKNOWN_MH_TYPE = "unknown_mh_type"
    PAYLOAD_PROTO_NOT_NONE = "payload_proto_not_none"
    HEADER_LEN_TOO_SHORT = "header_len_too_short"
    OPTION_TRUNCATED = "option_truncated"
    OPTION_LENGTH_INVALID = "option_length_invalid"
    PADDING_NOT_ZERO = "padding_not_zero"
    DUPLICATE_OPTION = "duplicate_option"
    AUTHORIZATION_DATA_NOT_LAST = "authorization_data_not_last"
    CGA_PARAMETERS_NOT_CONTIGUOUS = "cga_parameters_not_contiguous"
    CGA_PARAMETERS_FRAGMENT_SIZE = "cga_parameters_fragment_size"
    CGA_PARAMETERS_TOO_LONG = "cga_parameters_too_long"
    SIGNATURE_NOT_AFTER_CGA_PARAMETERS = "signature_not_after_cga_parameters"
    CGA_PARAMETERS_WITHOUT_SIGNATURE = "cga_parameters_without_signature"

    @property
    def reaction(self) -> Reaction:
        if self is RejectReason.UNKNOWN_MH_TYPE:
            return Reaction.BINDING_ERROR_UNRECOGNIZED_TYPE
        if self in (RejectReason.PAYLOAD_PROTO_NOT_NONE, RejectReason.HEADER_LEN_TOO_SHORT):
            return Reaction.PARAMETER_PROBLEM
        return Reaction.SILENT_DROP


class MobilityParseError(ValueError):
    """A packet rejected by the codec.

    ``pointer`` is the offset, from the start of the IPv6 header, of the
    offending field: the ICMPv6 Parameter Problem pointer (RFC 4443 §3.4).
    """

    def __init__(self, reason: RejectReason, detail: str, pointer: int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.pointer = pointer
        # The Home Address option's address, when the error arose after it
        # was read: a Binding Error reports it (RFC 6275 §9.3.3).
        self.home_address: bytes | None = None


# Minimum message length, Header Len excluded, per type (RFC 6275 §6.1):
# the fixed part rounded up to 8 octets, expressed as a Header Len value.
_MIN_HEADER_LEN = {
    MHType.BINDING_REFRESH_REQUEST: 0,
    MHType.HOME_TEST_INIT: 1,
    MHType.CARE_OF_TEST_INIT: 1,
    MHType.HOME_TEST: 2,
    MHType.CARE_OF_TEST: 2,
    MHType.BINDING_UPDATE: 1,
    MHType.BINDING_ACK: 1,
    MHType.BINDING_ERROR: 2,
}
# Where mobility options start, per type (offset in the Mobility Header).
_OPTIONS_OFFSET = {
    MHType.BINDING_REFRESH_REQUEST: 8,
    MHType.HOME_TEST_INIT: 16,
    MHType.CARE_OF_TEST_INIT: 16,
    MHType.HOME_TEST: 24,
    MHType.CARE_OF_TEST: 24,
    MHType.BINDING_UPDATE: 12,
    MHType.BINDING_ACK: 12,
    MHType.BINDING_ERROR: 24,
}
# Types this codec decodes into messages; the others are "known" to
# RFC 6275 (no Binding Error) but are not used by a DAR.
DECODED_TYPES = frozenset(
    {
        MHType.CARE_OF_TEST_INIT,
        MHType.CARE_OF_TEST,
        MHType.BINDING_UPDATE,
        MHType.BINDING_ACK,
        MHType.BINDING_ERROR,
    }
)

# Options that may appear at most once; CGA Parameters repeats by design.
_SINGLE_OPTIONS = frozenset(OptionType) - {
    OptionType.PAD1,
    OptionType.PADN,
    OptionType.CGA_PARAMETERS,
}
# Options with a fixed data length.
_FIXED_OPTION_LEN = {
    OptionType.BINDING_REFRESH_ADVICE: 2,
    OptionType.ALTERNATE_COA: 16,
    OptionType.NONCE_INDICES: 4,
    OptionType.BINDING_AUTHORIZATION_DATA: AUTHENTICATOR_LEN,
    OptionType.CGA_PARAMETERS_REQUEST: 0,
    OptionType.CARE_OF_TEST_INIT: 0,
    OptionType.CARE_OF_TEST: 8,
}
# Alignment requirements (x, y) meaning "xn + y" (RFC 6275 §6.2, RFC 8200 §4.2).
_ALIGNMENT = {
    OptionType.BINDING_REFRESH_ADVICE: (2, 0),
    OptionType.ALTERNATE_COA: (8, 6),
    OptionType.NONCE_INDICES: (2, 0),
    OptionType.BINDING_AUTHORIZATION_DATA: (8, 2),
}


@dataclass(frozen=True)
class MobilityOptions:
    """The mobility options of one message, decoded.

    ``cga_parameters`` is the reassembly of all CGA Parameters options
    (RFC 4866 §5.1); ``skipped_types`` lists unknown option types that were
    ignored as RFC 6275 §6.2.1 requires.
    """

    binding_refresh_interval_units: int | None = None
    alternate_coa: bytes | None = None
    nonce_indices: tuple[int, int] | None = None
    authenticator: bytes | None = None
    cga_parameters_request: bool = False
    cga_parameters: bytes | None = None
    signature: bytes | None = None
    permanent_home_keygen_token: bytes | None = None
    care_of_test_init: bool = False
    care_of_keygen_token: bytes | None = None
    skipped_types: tuple[int, ...] = ()


NO_OPTIONS = MobilityOptions()
_NO_OPTION_FIELDS = {field.name: getattr(NO_OPTIONS, field.name) for field in fields(NO_OPTIONS)}


@dataclass(frozen=True)
class BindingUpdate:
    """RFC 6275 §6.1.7. ``lifetime_units`` counts 4-second units."""

    sequence: int
    lifetime_units: int
    ack: bool = True
    home_registration: bool = True
    link_local_compat: bool = False
    key_management: bool = False
    options: MobilityOptions = NO_OPTIONS

    @property
    def lifetime_s(self) -> int:
        return self.lifetime_units * 4


@dataclass(frozen=True)
class BindingAck:
    """RFC 6275 §6.1.8."""

    status: int
    sequence: int
    lifetime_units: int
    key_management: bool = False
    options: MobilityOptions = NO_OPTIONS

    @property
    def lifetime_s(self) -> int:
        return self.lifetime_units * 4


@dataclass(frozen=True)
class BindingError:
    """RFC 6275 §6.1.9."""

    status: int
    home_address: bytes
    options: MobilityOptions = NO_OPTIONS


@dataclass(frozen=True)
class CareOfTestInit:
    """RFC 6275 §6.1.4 (P13)."""

    cookie: bytes
    options: MobilityOptions = NO_OPTIONS


@dataclass(frozen=True)
class CareOfTest:
    """RFC 6275 §6.1.6 (P13)."""

    nonce_index: int
    cookie: bytes
    keygen_token: bytes
    options: MobilityOptions = NO_OPTIONS


MobilityMessage = BindingUpdate | BindingAck | BindingError | CareOfTestInit | CareOfTest

_TYPE_OF_MESSAGE: dict[type, MHType] = {
    BindingUpdate: MHType.BINDING_UPDATE,
    BindingAck: MHType.BINDING_ACK,
    BindingError: MHType.BINDING_ERROR,
    CareOfTestInit: MHType.CARE_OF_TEST_INIT,
    CareOfTest: MHType.CARE_OF_TEST,
}


def message_type(message: MobilityMessage) -> MHType:
    return _TYPE_OF_MESSAGE[type(message)]


@dataclass(frozen=True)
class MobilityHeader:
    """A decoded Mobility Header and the byte ranges authentication covers.

    ``signed_end`` is the offset just past the last CGA Parameters option
    (the end of "MH data" for the signature, RFC 4866 §4.5, P6);
    ``authenticator_offset`` is where the Binding Authorization Data
    Authenticator starts (the end of "MH data" for it, RFC 6275 §6.2.7, P9).
    """

    mh_type: MHType
    message: MobilityMessage
    raw: bytes
    signed_end: int | None = None
    authenticator_offset: int | None = None

    def signed_data(self) -> bytes:
        """MH data covered by the Signature option, checksum taken as zero."""
        if self.signed_end is None:
            raise ValueError("message carries no CGA Parameters")
        return _zero_checksum(self.raw[: self.signed_end])

    def authorized_data(self) -> bytes:
        """MH data covered by the Authenticator, checksum taken as zero."""
        if self.authenticator_offset is None:
            raise ValueError("message carries no Binding Authorization Data")
        return _zero_checksum(self.raw[: self.authenticator_offset])


@dataclass(frozen=True)
class MobilityPacket:
    """An IPv6 packet carrying a Mobility Header.

    ``home_address`` comes from the Home Address destination option and
    ``routing_address`` from the type 2 Routing Header; they stand in for
    the source and destination in the checksum pseudo-header.
    """

    source: bytes
    destination: bytes
    hop_limit: int
    mh: MobilityHeader
    home_address: bytes | None = None
    routing_address: bytes | None = None

    @property
    def message(self) -> MobilityMessage:
        return self.mh.message

    @property
    def pseudo_source(self) -> bytes:
        return self.home_address if self.home_address is not None else self.source

    @property
    def pseudo_destination(self) -> bytes:
        return self.routing_address if self.routing_address is not None else self.destination


# ---------------------------------------------------------------- checksum


def upper_layer_checksum(source: bytes, destination: bytes, next_header: int, data: bytes) -> int:
    """The RFC 8200 §8.1 checksum of an upper-layer packet (MH, ICMPv6).

    The RFC 1071 one's complement sum of 16-bit words is the number the
    words spell taken modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), with 0xFFFF
    standing for a non-zero multiple.  So the addresses and the data (padded
    to whole words) are read as one integer, the pseudo-header's length and
    next header added, and the sum folded by one modulo: no per-word loop.
    """
    words = source + destination + data
    if len(data) & 1:
        words += b"\x00"
    total = int.from_bytes(words, "big") + len(data) + next_header
    folded = total % 0xFFFF
    if folded == 0 and total:
        return 0  # the sum is 0xFFFF, whose complement is 0
    return 0xFFFF - folded


def mobility_checksum(source: bytes, destination: bytes, mh_bytes: bytes) -> int:
    """RFC 6275 §6.1.1 checksum over the RFC 8200 §8.1 pseudo-header.

    ``source`` is the home address when a Home Address option is present,
    ``destination`` the type 2 Routing Header address when one is present.
    """
    return upper_layer_checksum(source, destination, IPPROTO_MH, mh_bytes)


def _zero_checksum(mh_prefix: bytes) -> bytes:
    return mh_prefix[:4] + b"\x00\x00" + mh_prefix[6:]


# ---------------------------------------------------------------- decoding


def parse_ethernet_frame(frame: bytes) -> MobilityPacket:
    """Decode an Ethernet II frame holding an IPv6 Mobility Header packet."""
    if len(frame) < 14 or int.from_bytes(frame[12:14], "big") != ETH_TYPE_IPV6:
        raise MobilityParseError(RejectReason.NOT_IPV6, "not an Ethernet IPv6 frame")
    authorized = _parse_authorized_binding_update(frame, 14)
    if authorized is not None:
        return authorized
    return _parse_any_ipv6_packet(frame[14:])


def parse_ipv6_packet(packet: bytes) -> MobilityPacket:
    """Decode and validate an IPv6 packet carrying a Mobility Header.

    Validation follows RFC 6275 §9.2 (checksum, MH type, Payload Proto,
    Header Len, in that order) and §6.2 (options).  Raises
    :class:`MobilityParseError` on any failure.
    """
    authorized = _parse_authorized_binding_update(packet, 0)
    if authorized is not None:
        return authorized
    return _parse_any_ipv6_packet(packet)


# The Binding Update of every refresh, handover and deregistration of a bound
# MN away from home (P4, P9): the IPv6 header, a destination options header
# holding PadN(2) and the Home Address option, and a 32-byte Mobility Header
# whose only option is the Binding Authorization Data, after PadN(4).  It is
# recognised by its constant bytes and decoded with one struct; any other
# packet, and any rejection (a bad checksum included), is the general path's.
_AUTHORIZED_BU = struct.Struct("!B3xHBB16s16s8s16s3s3xHHH8s12s")
_AUTHORIZED_BU_PAYLOAD_LEN = _AUTHORIZED_BU.size - IPV6_HEADER_LEN
_AUTHORIZED_BU_MH_OFFSET = IPV6_HEADER_LEN + 24
# A Home Address destination options header as the encoder writes it, from
# its Hdr Ext Len on: 2 (24 octets), PadN(2) putting the option at offset 6
# (8n+6, RFC 6275 §6.3), the option's type and length; the address follows.
_HOME_ADDRESS_HEADER_HEAD = bytes((2, OptionType.PADN, 2, 0, 0, HOME_ADDRESS_OPTION_TYPE, 16))
_AUTHORIZED_BU_HOME_ADDRESS_HEAD = bytes((IPPROTO_MH,)) + _HOME_ADDRESS_HEADER_HEAD
_AUTHORIZED_BU_MH_HEAD = bytes((IPPROTO_NONE, 3, MHType.BINDING_UPDATE))
# Options of a BU or BA (12-octet fixed part) whose only option is the
# Binding Authorization Data: PadN(4) aligns it at 8n+2, then its type and length.
_AUTHORIZATION_DATA_HEAD = bytes(
    (OptionType.PADN, 4, 0, 0, 0, 0, OptionType.BINDING_AUTHORIZATION_DATA, AUTHENTICATOR_LEN)
)
_AUTHORIZED_BU_AUTHENTICATOR_OFFSET = 12 + len(_AUTHORIZATION_DATA_HEAD)  # in the MH


def _parse_authorized_binding_update(packet: bytes, start: int) -> MobilityPacket | None:
    """The decoded packet at ``packet[start:]`` if it has the layout above, else None.

    The result equals what the general path decodes from the same bytes.
    """
    if len(packet) - start < _AUTHORIZED_BU.size:
        return None
    (
        version,
        payload_length,
        next_header,
        hop_limit,
        source,
        destination,
        home_address_head,
        home_address,
        mh_head,
        sequence,
        flags,
        lifetime,
        options_head,
        authenticator,
    ) = _AUTHORIZED_BU.unpack_from(packet, start)
    if (
        version >> 4 != 6
        or payload_length != _AUTHORIZED_BU_PAYLOAD_LEN
        or next_header != IPPROTO_DSTOPTS
        or home_address_head != _AUTHORIZED_BU_HOME_ADDRESS_HEAD
        or mh_head != _AUTHORIZED_BU_MH_HEAD
        or options_head != _AUTHORIZATION_DATA_HEAD
    ):
        return None
    raw = bytes(packet[start + _AUTHORIZED_BU_MH_OFFSET : start + _AUTHORIZED_BU.size])
    if mobility_checksum(home_address, destination, raw) != 0:
        return None
    options = frozen_record(MobilityOptions, {**_NO_OPTION_FIELDS, "authenticator": authenticator})
    message = frozen_record(
        BindingUpdate,
        {
            "sequence": sequence,
            "lifetime_units": lifetime,
            "ack": bool(flags & 0x8000),
            "home_registration": bool(flags & 0x4000),
            "link_local_compat": bool(flags & 0x2000),
            "key_management": bool(flags & 0x1000),
            "options": options,
        },
    )
    mh = frozen_record(
        MobilityHeader,
        {
            "mh_type": MHType.BINDING_UPDATE,
            "message": message,
            "raw": raw,
            "signed_end": None,
            "authenticator_offset": _AUTHORIZED_BU_AUTHENTICATOR_OFFSET,
        },
    )
    return frozen_record(
        MobilityPacket,
        {
            "source": source,
            "destination": destination,
            "hop_limit": hop_limit,
            "mh": mh,
            "home_address": home_address,
            "routing_address": None,
        },
    )


def _parse_any_ipv6_packet(packet: bytes) -> MobilityPacket:
    """The general decoder of :func:`parse_ipv6_packet`, for any layout."""
    if len(packet) < IPV6_HEADER_LEN:
        raise MobilityParseError(RejectReason.TRUNCATED_IPV6_HEADER, f"{len(packet)} bytes")
    if packet[0] >> 4 != 6:
        raise MobilityParseError(RejectReason.NOT_IPV6, f"version {packet[0] >> 4}")
    payload_length, next_header, hop_limit = struct.unpack_from("!HBB", packet, 4)
    end = IPV6_HEADER_LEN + payload_length
    if end > len(packet):
        raise MobilityParseError(
            RejectReason.PAYLOAD_LENGTH_PAST_END,
            f"payload length {payload_length}, {len(packet) - IPV6_HEADER_LEN} bytes present",
        )
    source = packet[8:24]
    destination = packet[24:40]
    home_address: bytes | None = None
    routing_address: bytes | None = None
    offset = IPV6_HEADER_LEN
    headers_seen = 0
    while next_header != IPPROTO_MH:
        if next_header == IPPROTO_FRAGMENT:
            raise MobilityParseError(RejectReason.FRAGMENTED, "fragment header", offset)
        if next_header not in (IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING):
            raise MobilityParseError(
                RejectReason.NOT_MOBILITY_HEADER, f"next header {next_header}", offset
            )
        if next_header == IPPROTO_HOPOPTS and offset != IPV6_HEADER_LEN:
            raise MobilityParseError(RejectReason.HOP_BY_HOP_NOT_FIRST, "hop-by-hop", offset)
        headers_seen += 1
        if headers_seen > MAX_EXTENSION_HEADERS:
            raise MobilityParseError(RejectReason.TOO_MANY_EXTENSION_HEADERS, "chain", offset)
        if offset + 8 > end:
            raise MobilityParseError(RejectReason.EXTENSION_HEADER_TRUNCATED, "header", offset)
        header_len = (packet[offset + 1] + 1) * 8
        if offset + header_len > end:
            raise MobilityParseError(
                RejectReason.EXTENSION_HEADER_TRUNCATED, f"length {header_len}", offset + 1
            )
        if next_header == IPPROTO_ROUTING:
            if routing_address is not None:
                raise MobilityParseError(
                    RejectReason.ROUTING_HEADER_UNSUPPORTED, "second routing header", offset
                )
            routing_address = _parse_routing_header(packet, offset, header_len)
        else:
            found = _parse_options_header(packet, offset, header_len)
            if found is not None:
                if next_header != IPPROTO_DSTOPTS or home_address is not None:
                    raise MobilityParseError(
                        RejectReason.DUPLICATE_HOME_ADDRESS_OPTION, "home address option", offset
                    )
                home_address = found
        next_header = packet[offset]
        offset += header_len
    try:
        mh = parse_mobility_header(
            packet[offset:end],
            pseudo_source=home_address if home_address is not None else source,
            pseudo_destination=routing_address if routing_address is not None else destination,
            pointer_base=offset,
        )
    except MobilityParseError as error:
        error.home_address = home_address
        raise
    return MobilityPacket(
        source=source,
        destination=destination,
        hop_limit=hop_limit,
        mh=mh,
        home_address=home_address,
        routing_address=routing_address,
    )


def _parse_routing_header(packet: bytes, offset: int, header_len: int) -> bytes | None:
    routing_type, segments_left = packet[offset + 2], packet[offset + 3]
    if routing_type != ROUTING_TYPE_2:
        if segments_left == 0:
            return None  # RFC 8200 §4.4: ignore an unrecognised type with nothing left
        raise MobilityParseError(
            RejectReason.ROUTING_HEADER_UNSUPPORTED, f"routing type {routing_type}", offset + 2
        )
    # RFC 6275 §6.4: Hdr Ext Len 2 and Segments Left 1, exactly.
    if header_len != 24 or segments_left != 1:
        raise MobilityParseError(
            RejectReason.ROUTING_HEADER_MALFORMED,
            f"length {header_len}, segments left {segments_left}",
            offset + 1,
        )
    return bytes(packet[offset + 8 : offset + 24])


def _parse_options_header(packet: bytes, offset: int, header_len: int) -> bytes | None:
    """Walk a hop-by-hop or destination options header; return the HoA if any."""
    home_address: bytes | None = None
    position = offset + 2
    end = offset + header_len
    while position < end:
        option_type = packet[position]
        if option_type == 0:  # Pad1
            position += 1
            continue
        if position + 2 > end or position + 2 + packet[position + 1] > end:
            raise MobilityParseError(
                RejectReason.DESTINATION_OPTION_MALFORMED, "option overruns header", position
            )
        option_len = packet[position + 1]
        data = packet[position + 2 : position + 2 + option_len]
        if option_type == 1:
            if any(data):
                raise MobilityParseError(RejectReason.PADDING_NOT_ZERO, "PadN", position)
        elif option_type == HOME_ADDRESS_OPTION_TYPE:
            if option_len != 16:
                raise MobilityParseError(
                    RejectReason.DESTINATION_OPTION_MALFORMED,
                    f"home address option length {option_len}",
                    position + 1,
                )
            if home_address is not None:
                raise MobilityParseError(
                    RejectReason.DUPLICATE_HOME_ADDRESS_OPTION, "home address option", position
                )
            home_address = bytes(data)
        elif option_type >> 6:
            # RFC 8200 §4.2: the two high bits ask for discard on an unknown option.
            raise MobilityParseError(
                RejectReason.UNKNOWN_DESTINATION_OPTION, f"option {option_type}", position
            )
        position += 2 + option_len
    return home_address


def parse_mobility_header(
    mh_bytes: bytes,
    *,
    pseudo_source: bytes,
    pseudo_destination: bytes,
    pointer_base: int = 0,
    verify_checksum: bool = True,
) -> MobilityHeader:
    """Decode one Mobility Header (the bytes from its Payload Proto field on).

    Trailing bytes past Header Len are ignored, as RFC 8200 §4.7 asks for
    data after a "No Next Header".
    """
    if len(mh_bytes) < 6:
        raise MobilityParseError(RejectReason.MH_TRUNCATED, f"{len(mh_bytes)} bytes", pointer_base)
    payload_proto, header_len_field, raw_type = mh_bytes[0], mh_bytes[1], mh_bytes[2]
    mh_len = (header_len_field + 1) * 8
    if mh_len > len(mh_bytes):
        raise MobilityParseError(
            RejectReason.HEADER_LEN_PAST_END,
            f"header says {mh_len} bytes, {len(mh_bytes)} present",
            pointer_base + 1,
        )
    if mh_len > MAX_MOBILITY_HEADER_LEN:
        raise MobilityParseError(RejectReason.OVERSIZED, f"{mh_len} bytes", pointer_base + 1)
    raw = bytes(mh_bytes[:mh_len])
    if verify_checksum and mobility_checksum(pseudo_source, pseudo_destination, raw) != 0:
        raise MobilityParseError(RejectReason.BAD_CHECKSUM, "checksum", pointer_base + 4)
    if raw_type not in _MIN_HEADER_LEN:
        raise MobilityParseError(
            RejectReason.UNKNOWN_MH_TYPE, f"MH type {raw_type}", pointer_base + 2
        )
    mh_type = MHType(raw_type)
    if payload_proto != IPPROTO_NONE:
        raise MobilityParseError(
            RejectReason.PAYLOAD_PROTO_NOT_NONE, f"payload proto {payload_proto}", pointer_base
        )
    if header_len_field < _MIN_HEADER_LEN[mh_type]:
        raise MobilityParseError(
            RejectReason.HEADER_LEN_TOO_SHORT,
            f"header len {header_len_field} for {mh_type.name}",
            pointer_base + 1,
        )
    if mh_type not in DECODED_TYPES:
        # Known to RFC 6275 but never sent to a DAR: the caller drops it.
        raise MobilityParseError(
            RejectReason.NOT_MOBILITY_HEADER, f"{mh_type.name} not handled", pointer_base + 2
        )
    options_start = _OPTIONS_OFFSET[mh_type]
    options, signed_end, authenticator_offset = _parse_options(raw, options_start, pointer_base)
    message = _decode_body(mh_type, raw, options)
    return MobilityHeader(mh_type, message, raw, signed_end, authenticator_offset)


def _decode_body(mh_type: MHType, raw: bytes, options: MobilityOptions) -> MobilityMessage:
    if mh_type is MHType.BINDING_UPDATE:
        sequence, flags, lifetime = struct.unpack_from("!HHH", raw, 6)
        return BindingUpdate(
            sequence=sequence,
            lifetime_units=lifetime,
            ack=bool(flags & 0x8000),
            home_registration=bool(flags & 0x4000),
            link_local_compat=bool(flags & 0x2000),
            key_management=bool(flags & 0x1000),
            options=options,
        )
    if mh_type is MHType.BINDING_ACK:
        status, flags, sequence, lifetime = struct.unpack_from("!BBHH", raw, 6)
        return BindingAck(status, sequence, lifetime, bool(flags & 0x80), options)
    if mh_type is MHType.BINDING_ERROR:
        return BindingError(raw[6], raw[8:24], options)
    if mh_type is MHType.CARE_OF_TEST_INIT:
        return CareOfTestInit(raw[8:16], options)
    nonce_index = struct.unpack_from("!H", raw, 6)[0]
    return CareOfTest(nonce_index, raw[8:16], raw[16:24], options)


# Plain ints for the option loop: enum attribute lookups cost more than the parsing.
_ALTERNATE_COA = int(OptionType.ALTERNATE_COA)
_BINDING_AUTHORIZATION_DATA = int(OptionType.BINDING_AUTHORIZATION_DATA)
_BINDING_REFRESH_ADVICE = int(OptionType.BINDING_REFRESH_ADVICE)
_CARE_OF_TEST = int(OptionType.CARE_OF_TEST)
_CARE_OF_TEST_INIT = int(OptionType.CARE_OF_TEST_INIT)
_CGA_PARAMETERS = int(OptionType.CGA_PARAMETERS)
_CGA_PARAMETERS_REQUEST = int(OptionType.CGA_PARAMETERS_REQUEST)
_NONCE_INDICES = int(OptionType.NONCE_INDICES)
_PAD1 = int(OptionType.PAD1)
_PADN = int(OptionType.PADN)
_PERMANENT_HOME_KEYGEN_TOKEN = int(OptionType.PERMANENT_HOME_KEYGEN_TOKEN)
_SIGNATURE = int(OptionType.SIGNATURE)


def _parse_options(
    raw: bytes, start: int, pointer_base: int
) -> tuple[MobilityOptions, int | None, int | None]:
    values: dict[str, object] = {}
    seen: set[int] = set()
    skipped: list[int] = []
    cga_fragments: list[bytes] = []
    cga_run_closed = False
    signed_end: int | None = None
    authenticator_offset: int | None = None
    previous_type: int | None = None
    position = start
    end = len(raw)
    while position < end:
        option_type = raw[position]
        if authenticator_offset is not None:
            # RFC 6275 §6.2.7: the authorization data is the last option;
            # its alignment leaves no room for trailing padding either.
            raise MobilityParseError(
                RejectReason.AUTHORIZATION_DATA_NOT_LAST,
                f"option {option_type} after authorization data",
                pointer_base + position,
            )
        if option_type == _PAD1:
            if previous_type == _CGA_PARAMETERS:
                raise MobilityParseError(
                    RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
                    "Pad1 follows CGA Parameters",
                    pointer_base + position,
                )
            position += 1
            previous_type = option_type
            continue
        if position + 2 > end:
            raise MobilityParseError(
                RejectReason.OPTION_TRUNCATED, "option header", pointer_base + position
            )
        option_len = raw[position + 1]
        data_start = position + 2
        data_end = data_start + option_len
        if data_end > end:
            raise MobilityParseError(
                RejectReason.OPTION_TRUNCATED,
                f"option {option_type} length {option_len}",
                pointer_base + position + 1,
            )
        data = raw[data_start:data_end]
        if previous_type == _CGA_PARAMETERS and option_type not in (
            _CGA_PARAMETERS,
            _SIGNATURE,
        ):
            raise MobilityParseError(
                RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
                f"option {option_type} follows CGA Parameters",
                pointer_base + position,
            )
        expected_len = _FIXED_OPTION_LEN.get(option_type)  # type: ignore[call-overload]
        if expected_len is not None and option_len != expected_len:
            raise MobilityParseError(
                RejectReason.OPTION_LENGTH_INVALID,
                f"option {option_type} length {option_len}",
                pointer_base + position + 1,
            )
        if option_type in _SINGLE_OPTIONS:
            if option_type in seen:
                raise MobilityParseError(
                    RejectReason.DUPLICATE_OPTION, f"option {option_type}", pointer_base + position
                )
            seen.add(option_type)
        if option_type == _PADN:
            if any(data):
                raise MobilityParseError(
                    RejectReason.PADDING_NOT_ZERO, "PadN", pointer_base + position
                )
        elif option_type == _CGA_PARAMETERS:
            if cga_run_closed:
                raise MobilityParseError(
                    RejectReason.CGA_PARAMETERS_NOT_CONTIGUOUS,
                    "second run of CGA Parameters",
                    pointer_base + position,
                )
            if cga_fragments and len(cga_fragments[-1]) != CGA_PARAMETERS_FRAGMENT_LEN:
                raise MobilityParseError(
                    RejectReason.CGA_PARAMETERS_FRAGMENT_SIZE,
                    f"non-last fragment of {len(cga_fragments[-1])} bytes",
                    pointer_base + position,
                )
            cga_fragments.append(data)
            if sum(map(len, cga_fragments)) > MAX_CGA_PARAMETERS_LEN:
                raise MobilityParseError(
                    RejectReason.CGA_PARAMETERS_TOO_LONG, "CGA Parameters", pointer_base + position
                )
            signed_end = data_end
        elif option_type == _SIGNATURE:
            if previous_type != _CGA_PARAMETERS:
                raise MobilityParseError(
                    RejectReason.SIGNATURE_NOT_AFTER_CGA_PARAMETERS,
                    "signature not directly after CGA Parameters",
                    pointer_base + position,
                )
            values["signature"] = data
        elif option_type == _BINDING_REFRESH_ADVICE:
            values["binding_refresh_interval_units"] = int.from_bytes(data, "big")
        elif option_type == _ALTERNATE_COA:
            values["alternate_coa"] = data
        elif option_type == _NONCE_INDICES:
            values["nonce_indices"] = struct.unpack("!HH", data)
        elif option_type == _BINDING_AUTHORIZATION_DATA:
            values["authenticator"] = data
            authenticator_offset = data_start
        elif option_type == _CGA_PARAMETERS_REQUEST:
            values["cga_parameters_request"] = True
        elif option_type == _PERMANENT_HOME_KEYGEN_TOKEN:
            if option_len == 0:
                raise MobilityParseError(
                    RejectReason.OPTION_LENGTH_INVALID, "empty PHKT", pointer_base + position + 1
                )
            values["permanent_home_keygen_token"] = data
        elif option_type == _CARE_OF_TEST_INIT:
            values["care_of_test_init"] = True
        elif option_type == _CARE_OF_TEST:
            values["care_of_keygen_token"] = data
        else:
            skipped.append(option_type)  # RFC 6275 §6.2.1: skip unknown options
        if cga_fragments and option_type != _CGA_PARAMETERS:
            cga_run_closed = True
        previous_type = option_type
        position = data_end
    if previous_type == _CGA_PARAMETERS:
        raise MobilityParseError(
            RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
            "CGA Parameters end the message",
            pointer_base + end,
        )
    if cga_fragments:
        values["cga_parameters"] = b"".join(cga_fragments)
    options = MobilityOptions(skipped_types=tuple(skipped), **values)  # type: ignore[arg-type]
    return options, signed_end, authenticator_offset


# ---------------------------------------------------------------- encoding


Signer = Callable[[bytes], bytes]
Authenticator = Callable[[bytes], bytes]


@dataclass
class _OptionWriter:
    """Lays out options after a fixed message part, honouring alignment."""

    buffer: bytearray
    signed_end: int | None = None
    authenticator_offset: int | None = None

    def align(self, multiple: int, offset: int) -> None:
        gap = (offset - len(self.buffer)) % multiple
        self.pad(gap)

    def pad(self, gap: int) -> None:
        if gap == 1:
            self.buffer.append(OptionType.PAD1)
        elif gap > 1:
            self.buffer += bytes((OptionType.PADN, gap - 2)) + bytes(gap - 2)

    def option(self, option_type: OptionType, data: bytes) -> None:
        if len(data) > 255:
            raise ValueError(f"option {option_type.name} data of {len(data)} bytes")
        alignment = _ALIGNMENT.get(option_type)
        if alignment is not None:
            self.align(*alignment)
        self.buffer += bytes((option_type, len(data))) + data


def encode_mobility_header(
    message: MobilityMessage,
    *,
    pseudo_source: bytes,
    pseudo_destination: bytes,
    signer: Signer | None = None,
    signature_len: int = 0,
    authenticator: Authenticator | None = None,
) -> bytes:
    """Encode ``message`` into Mobility Header bytes with a valid checksum.

    Options are laid out in one canonical order (CGA Parameters Request,
    Care-of Test Init, Alternate CoA, Binding Refresh Advice, Care-of Test,
    PHKT, CGA Parameters + Signature, Nonce Indices, Binding Authorization
    Data), with the RFC 6275 alignment.  ``signer`` receives the MH data
    up to the last CGA Parameters option (checksum zero, P6) and must return
    ``signature_len`` bytes; ``authenticator`` receives the MH data up to the
    Authenticator (checksum zero, P9) and returns 12 bytes.  An explicit
    ``options.signature`` / ``options.authenticator`` is written as given;
    option values the decoder would reject raise ValueError.
    """
    encoded = _encode_bare_ack(message, pseudo_source, pseudo_destination, authenticator)
    if encoded is not None:
        return encoded
    return _encode_any_mobility_header(
        message,
        pseudo_source=pseudo_source,
        pseudo_destination=pseudo_destination,
        signer=signer,
        signature_len=signature_len,
        authenticator=authenticator,
    )


# A Binding Acknowledgement whose only option, if any, is the Binding
# Authorization Data: every BA but the one carrying a new PHKT.  The layout
# the general encoder gives it is fixed, so it is packed in one go: the
# fixed part, checksum included, then PadN(2) to 8 octets, or PadN(4) to
# align the authorization data at 8n+2 and its type and length.
_BARE_ACK = struct.Struct("!BBBxHBBHH4s")
_BARE_ACK_PADDING = bytes((OptionType.PADN, 2, 0, 0))
_AUTHORIZED_ACK = struct.Struct("!BBBxHBBHH8s")  # the Authenticator follows
_BINDING_ACK = int(MHType.BINDING_ACK)


def _encode_bare_ack(
    message: MobilityMessage,
    pseudo_source: bytes,
    pseudo_destination: bytes,
    authenticator: Authenticator | None,
) -> bytes | None:
    """``message`` as the general encoder writes it if it is a BA with no
    options, else None; None too if a field does not fit, so that the general
    encoder refuses it with its message."""
    if type(message) is not BindingAck or message.options is not NO_OPTIONS:
        return None
    status, sequence, lifetime = message.status, message.sequence, message.lifetime_units
    if not (0 <= status <= 0xFF and 0 <= sequence <= 0xFFFF and 0 <= lifetime <= 0xFFFF):
        return None
    flags = 0x80 if message.key_management else 0
    if authenticator is None:
        layout, header_len, options = _BARE_ACK, 1, _BARE_ACK_PADDING
    else:
        layout, header_len, options = _AUTHORIZED_ACK, 3, _AUTHORIZATION_DATA_HEAD
    head = layout.pack(
        IPPROTO_NONE, header_len, _BINDING_ACK, 0, status, flags, sequence, lifetime, options
    )
    value = b""
    if authenticator is not None:
        value = authenticator(head)  # MH data up to the Authenticator, checksum zero
        if len(value) != AUTHENTICATOR_LEN:
            raise ValueError(f"authenticator of {len(value)} bytes")
    checksum = mobility_checksum(pseudo_source, pseudo_destination, head + value)
    return (
        layout.pack(
            IPPROTO_NONE,
            header_len,
            _BINDING_ACK,
            checksum,
            status,
            flags,
            sequence,
            lifetime,
            options,
        )
        + value
    )


def _encode_any_mobility_header(
    message: MobilityMessage,
    *,
    pseudo_source: bytes,
    pseudo_destination: bytes,
    signer: Signer | None,
    signature_len: int,
    authenticator: Authenticator | None,
) -> bytes:
    """The general encoder of :func:`encode_mobility_header`, for any message."""
    mh_type = message_type(message)
    options = message.options
    _check_encodable(options)
    buffer = bytearray(struct.pack("!BBBBH", IPPROTO_NONE, 0, mh_type, 0, 0))
    buffer += _encode_body(message)
    writer = _OptionWriter(buffer)
    if options.cga_parameters_request:
        writer.option(OptionType.CGA_PARAMETERS_REQUEST, b"")
    if options.care_of_test_init:
        writer.option(OptionType.CARE_OF_TEST_INIT, b"")
    if options.alternate_coa is not None:
        writer.option(OptionType.ALTERNATE_COA, options.alternate_coa)
    if options.binding_refresh_interval_units is not None:
        writer.option(
            OptionType.BINDING_REFRESH_ADVICE,
            struct.pack("!H", options.binding_refresh_interval_units),
        )
    if options.care_of_keygen_token is not None:
        writer.option(OptionType.CARE_OF_TEST, options.care_of_keygen_token)
    if options.permanent_home_keygen_token is not None:
        writer.option(OptionType.PERMANENT_HOME_KEYGEN_TOKEN, options.permanent_home_keygen_token)
    signature_at: int | None = None
    if options.cga_parameters is not None:
        params = options.cga_parameters
        for start in range(0, len(params), CGA_PARAMETERS_FRAGMENT_LEN):
            writer.option(
                OptionType.CGA_PARAMETERS, params[start : start + CGA_PARAMETERS_FRAGMENT_LEN]
            )
        writer.signed_end = len(buffer)
        if options.signature is not None:
            writer.option(OptionType.SIGNATURE, options.signature)
        elif signer is not None:
            signature_at = len(buffer) + 2
            writer.option(OptionType.SIGNATURE, bytes(signature_len))
        else:
            raise ValueError("CGA Parameters need a signature or a signer")
    if options.nonce_indices is not None:
        writer.option(OptionType.NONCE_INDICES, struct.pack("!HH", *options.nonce_indices))
    if options.authenticator is not None or authenticator is not None:
        writer.option(OptionType.BINDING_AUTHORIZATION_DATA, bytes(AUTHENTICATOR_LEN))
        writer.authenticator_offset = len(buffer) - AUTHENTICATOR_LEN
    writer.align(8, 0)
    buffer[1] = len(buffer) // 8 - 1
    if signature_at is not None:
        assert signer is not None and writer.signed_end is not None
        signature = signer(_zero_checksum(bytes(buffer[: writer.signed_end])))
        if len(signature) != signature_len:
            raise ValueError(f"signer returned {len(signature)} bytes, not {signature_len}")
        buffer[signature_at : signature_at + signature_len] = signature
    if writer.authenticator_offset is not None:
        offset = writer.authenticator_offset
        if options.authenticator is not None:
            value = options.authenticator
        else:
            assert authenticator is not None
            value = authenticator(bytes(buffer[:offset]))
        if len(value) != AUTHENTICATOR_LEN:
            raise ValueError(f"authenticator of {len(value)} bytes")
        buffer[offset : offset + AUTHENTICATOR_LEN] = value
    checksum = mobility_checksum(pseudo_source, pseudo_destination, bytes(buffer))
    struct.pack_into("!H", buffer, 4, checksum)
    return bytes(buffer)


def _check_encodable(options: MobilityOptions) -> None:
    """Refuse option values the decoder would reject: never emit a bad packet."""
    if options.alternate_coa is not None:
        _address(options.alternate_coa)
    if options.care_of_keygen_token is not None:
        _fixed(options.care_of_keygen_token, 8, "care-of keygen token")
    if options.permanent_home_keygen_token is not None and not options.permanent_home_keygen_token:
        raise ValueError("an empty PHKT option is invalid (RFC 4866 §5.3)")
    if options.cga_parameters is not None and not options.cga_parameters:
        raise ValueError("CGA Parameters must not be empty")
    if options.signature is not None and options.cga_parameters is None:
        raise ValueError("a Signature option follows CGA Parameters (RFC 4866 §4.5)")
    if options.nonce_indices is not None:
        for index in options.nonce_indices:
            _uint(index, 16, "nonce index")
    if options.binding_refresh_interval_units is not None:
        _uint(options.binding_refresh_interval_units, 16, "binding refresh interval")


def _uint(value: int, bits: int, name: str) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value} does not fit {bits} bits")
    return value


def _encode_body(message: MobilityMessage) -> bytes:
    if isinstance(message, BindingUpdate):
        flags = (
            (0x8000 if message.ack else 0)
            | (0x4000 if message.home_registration else 0)
            | (0x2000 if message.link_local_compat else 0)
            | (0x1000 if message.key_management else 0)
        )
        return struct.pack(
            "!HHH",
            _uint(message.sequence, 16, "sequence number"),
            flags,
            _uint(message.lifetime_units, 16, "lifetime"),
        )
    if isinstance(message, BindingAck):
        flags = 0x80 if message.key_management else 0
        return struct.pack(
            "!BBHH",
            _uint(message.status, 8, "status"),
            flags,
            _uint(message.sequence, 16, "sequence number"),
            _uint(message.lifetime_units, 16, "lifetime"),
        )
    if isinstance(message, BindingError):
        return struct.pack("!BB", _uint(message.status, 8, "status"), 0) + _address(
            message.home_address
        )
    if isinstance(message, CareOfTestInit):
        return b"\x00\x00" + _fixed(message.cookie, 8, "cookie")
    return (
        struct.pack("!H", _uint(message.nonce_index, 16, "nonce index"))
        + _fixed(message.cookie, 8, "cookie")
        + _fixed(message.keygen_token, 8, "keygen token")
    )


def _fixed(value: bytes, length: int, name: str) -> bytes:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def _address(value: bytes) -> bytes:
    if len(value) != 16:
        raise ValueError(f"IPv6 address must be 16 bytes, got {len(value)}")
    return value


_IPV6_HEADER = struct.Struct("!IHBB16s16s")
# Next Header, Hdr Ext Len 2, Routing Type 2, Segments Left 1 (RFC 6275 §6.4).
_ROUTING_HEADER = struct.Struct("!BBBB4x16s")
_HOME_ADDRESS_HEADER = struct.Struct("!B7s16s")  # Next Header, the head above, the HoA


def build_ipv6_packet(
    source: bytes,
    destination: bytes,
    mh_bytes: bytes,
    *,
    home_address: bytes | None = None,
    routing_address: bytes | None = None,
    hop_limit: int = 64,
) -> bytes:
    """Wrap Mobility Header bytes in IPv6, with a type 2 Routing Header
    (``routing_address``) and/or a Home Address option (``home_address``),
    ordered as RFC 6275 §6.3 and RFC 8200 §4.1 require."""
    if len(source) != 16 or len(destination) != 16:
        _address(source)
        _address(destination)
    payload = mh_bytes
    next_header = IPPROTO_MH
    if home_address is not None:
        payload = (
            _HOME_ADDRESS_HEADER.pack(
                next_header, _HOME_ADDRESS_HEADER_HEAD, _address(home_address)
            )
            + payload
        )
        next_header = IPPROTO_DSTOPTS
    if routing_address is not None:
        payload = (
            _ROUTING_HEADER.pack(next_header, 2, ROUTING_TYPE_2, 1, _address(routing_address))
            + payload
        )
        next_header = IPPROTO_ROUTING
    return (
        _IPV6_HEADER.pack(
            6 << 28,
            len(payload),
            next_header,
            hop_limit,
            source,
            destination,
        )
        + payload
    )


def build_packet(
    message: MobilityMessage,
    *,
    source: bytes,
    destination: bytes,
    home_address: bytes | None = None,
    routing_address: bytes | None = None,
    hop_limit: int = 64,
    signer: Signer | None = None,
    signature_len: int = 0,
    authenticator: Authenticator | None = None,
) -> bytes:
    """Encode ``message`` and wrap it in an IPv6 packet (checksum included)."""
    pseudo_source = home_address if home_address is not None else source
    pseudo_destination = routing_address if routing_address is not None else destination
    mh_bytes = encode_mobility_header(
        message,
        pseudo_source=pseudo_source,
        pseudo_destination=pseudo_destination,
        signer=signer,
        signature_len=signature_len,
        authenticator=authenticator,
    )
    return build_ipv6_packet(
        source,
        destination,
        mh_bytes,
        home_address=home_address,
        routing_address=routing_address,
        hop_limit=hop_limit,
    )


def build_ethernet_frame(source_mac: bytes, destination_mac: bytes, ipv6_packet: bytes) -> bytes:
    return destination_mac + source_mac + struct.pack("!H", ETH_TYPE_IPV6) + ipv6_packet


def with_options(message: MobilityMessage, **changes: object) -> MobilityMessage:
    """Return ``message`` with some of its options replaced."""
    return replace(message, options=replace(message.options, **changes))  # type: ignore[arg-type]
