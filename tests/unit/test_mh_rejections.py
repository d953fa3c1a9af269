"""Every way fama_ryu/mh.py rejects a packet, with the RFC 6275 §9.2 reaction.

Each case in CASES builds one packet that trips exactly one RejectReason;
hand-mutated Mobility Headers are re-checksummed with ``fix_checksum`` so
that the mutation reaches the check under test instead of stopping at the
checksum.  A meta-test asserts every RejectReason member has a case.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fama_ryu import mh
from fama_ryu.mh import (
    BindingUpdate,
    MobilityOptions,
    MobilityParseError,
    Reaction,
    RejectReason,
    build_packet,
    mobility_checksum,
    parse_ethernet_frame,
    parse_ipv6_packet,
)

HA = bytes.fromhex("20010db8000100000000000000000001")  # A_HDAR (P1)
HOA = bytes.fromhex("20010db8000100000000000000000100")
COA = bytes.fromhex("20010db8000200000000000000000100")
ALT = bytes.fromhex("20010db8000300000000000000000100")
AUTH = bytes(range(0xB0, 0xBC))

PAD_ZERO = b"\x01\x00"  # PadN with no data: 2 octets


def padn(total: int) -> bytes:
    """Padding of ``total`` octets: Pad1 or PadN (RFC 6275 §6.2.2-6.2.3)."""
    if total == 0:
        return b""
    if total == 1:
        return b"\x00"
    return bytes([1, total - 2]) + bytes(total - 2)


def option(option_type: int, data: bytes) -> bytes:
    return bytes([option_type, len(data)]) + data


def ipv6(
    next_header: int,
    payload: bytes,
    source: bytes = COA,
    destination: bytes = HA,
    payload_length: int | None = None,
) -> bytes:
    length = len(payload) if payload_length is None else payload_length
    return struct.pack("!IHBB", 6 << 28, length, next_header, 64) + source + destination + payload


def ext_header(next_header: int, body: bytes) -> bytes:
    """Generic extension header (Next Header, Hdr Ext Len, body), 8n octets."""
    assert (len(body) + 2) % 8 == 0, len(body)
    return bytes([next_header, (len(body) + 2) // 8 - 1]) + body


HAO_BODY = padn(4) + option(0xC9, HOA)  # PadN(4) puts the HAO at 8n+6 (RFC 6275 §6.3)


def dest_opts_hao(next_header: int = 135) -> bytes:
    return ext_header(next_header, HAO_BODY)


def rh2(next_header: int = 135, address: bytes = HOA, segments_left: int = 1) -> bytes:
    return bytes([next_header, 2, 2, segments_left]) + bytes(4) + address


def mh_raw(
    mh_type: int,
    fixed: bytes,
    options: bytes = b"",
    *,
    proto: int = 59,
    header_len: int | None = None,
) -> bytes:
    """Mobility Header with a zero checksum (fix_checksum fills it)."""
    body = bytes([proto, 0, mh_type, 0, 0, 0]) + fixed + options
    if header_len is None:
        assert len(body) % 8 == 0, len(body)
        header_len = len(body) // 8 - 1
    return body[:1] + bytes([header_len]) + body[2:]


BU_FIXED = struct.pack("!HHH", 0x1234, 0xC000, 150)  # seq, A|H, lifetime (P4)


def bu_options(options: bytes) -> bytes:
    """A BU MH carrying ``options`` (padded to 8n)."""
    pad = (-(12 + len(options))) % 8
    return mh_raw(5, BU_FIXED, options + padn(pad))


def mobility_packet(mh_bytes: bytes, *, hao: bool = True, routing: bool = False) -> bytes:
    """IPv6 [RH2] [DestOpts(HAO)] MH, re-checksummed."""
    chain = b""
    first = 135
    if hao:
        chain = dest_opts_hao() + chain
        first = 60
    if routing:
        chain = rh2(first) + chain
        first = 43
    source, destination = (COA, HA) if not routing else (HA, COA)
    return fix_checksum(ipv6(first, chain + mh_bytes, source, destination))


def fix_checksum(packet: bytes) -> bytes:
    """Recompute the MH checksum of a hand-mutated packet with the codec's
    mobility_checksum, using the HoA from an HAO and the address of a type 2
    Routing Header as the pseudo-header addresses (RFC 6275 §6.1.1).  Packets
    whose chain cannot be walked are returned unchanged."""
    data = bytearray(packet)
    end = 40 + int.from_bytes(data[4:6], "big")
    source, destination = bytes(data[8:24]), bytes(data[24:40])
    next_header, offset = data[6], 40
    while next_header in (0, 43, 60):
        if offset + 2 > len(data):
            return packet
        length = (data[offset + 1] + 1) * 8
        if next_header == 43 and offset + 24 <= len(data) and data[offset + 2] == 2:
            destination = bytes(data[offset + 8 : offset + 24])
        elif next_header in (0, 60):
            position = offset + 2
            while position + 2 <= min(offset + length, len(data)):
                if data[position] == 0:
                    position += 1
                    continue
                if data[position] == 0xC9 and position + 18 <= len(data):
                    source = bytes(data[position + 2 : position + 18])
                position += 2 + data[position + 1]
        next_header, offset = data[offset], offset + length
    if next_header != 135 or offset + 6 > len(data):
        return packet
    mh_end = min(offset + (data[offset + 1] + 1) * 8, end, len(data))
    data[offset + 4 : offset + 6] = b"\x00\x00"
    checksum = mobility_checksum(source, destination, bytes(data[offset:mh_end]))
    data[offset + 4 : offset + 6] = checksum.to_bytes(2, "big")
    return bytes(data)


def valid_bu() -> bytes:
    """A P6+P13 first BU: HAO, CGA Parameters (2 options), Signature, Nonce Indices, BAD."""
    message = BindingUpdate(
        0x0102,
        150,
        options=MobilityOptions(
            alternate_coa=ALT,
            cga_parameters=bytes(range(256)) + bytes(40),
            signature=bytes(range(128)),
            nonce_indices=(0, 7),
            authenticator=AUTH,
        ),
    )
    return build_packet(message, source=COA, destination=HA, home_address=HOA)


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    reason: RejectReason
    pointer: int | None = None  # asserted when given (always for Parameter Problem)
    parse: Callable[[bytes], object] = parse_ipv6_packet


def _too_many_headers() -> bytes:
    filler = padn(6)
    headers = b"".join(ext_header(60, filler) for _ in range(6)) + ext_header(135, filler)
    return fix_checksum(ipv6(60, headers + bu_options(b"")))


def _oversized_bu() -> bytes:
    # 12 fixed octets + 1020 octets of PadN = 1032 > MAX_MOBILITY_HEADER_LEN (P8 cap)
    options = padn(257) * 3 + padn(249)
    return mobility_packet(mh_raw(5, BU_FIXED, options))


def _bu_checksum_with_coa_instead_of_hoa() -> bytes:
    raw = bytearray(bu_options(option(4, b"\x00\x00\x00\x07")))
    raw[4:6] = mobility_checksum(COA, HA, bytes(raw)).to_bytes(2, "big")
    return ipv6(60, dest_opts_hao() + bytes(raw))


def _ba_checksum_with_ipv6_destination_instead_of_rh2() -> bytes:
    raw = bytearray(mh_raw(6, struct.pack("!BBHH", 0, 0, 1, 1), padn(4)))
    raw[4:6] = mobility_checksum(HA, COA, bytes(raw)).to_bytes(2, "big")
    return ipv6(43, rh2() + bytes(raw), HA, COA)


def _bit_flip_after_checksum() -> bytes:
    packet = bytearray(mobility_packet(bu_options(b"")))
    packet[-5] ^= 0x01  # lifetime low bit (MH offset 11), after the checksum was set
    return bytes(packet)


CGA_255 = option(12, bytes(range(255)))
SIGNATURE = option(13, b"\x5a" * 16)

CASES: list[Case] = [
    # --- IPv6 header
    Case("empty", lambda: b"", RejectReason.TRUNCATED_IPV6_HEADER),
    Case("39-octets", lambda: valid_bu()[:39], RejectReason.TRUNCATED_IPV6_HEADER),
    Case("version-4", lambda: b"\x45" + valid_bu()[1:], RejectReason.NOT_IPV6),
    Case(
        "ethertype-ipv4",
        lambda: bytes(12) + b"\x08\x00" + valid_bu(),
        RejectReason.NOT_IPV6,
        parse=parse_ethernet_frame,
    ),
    Case(
        "frame-13-octets",
        lambda: bytes(12) + b"\x86",
        RejectReason.NOT_IPV6,
        parse=parse_ethernet_frame,
    ),
    Case(
        "payload-length-one-past-end", lambda: valid_bu()[:-1], RejectReason.PAYLOAD_LENGTH_PAST_END
    ),
    # --- extension header chain
    Case(
        "dest-opts-6-octets",
        lambda: ipv6(60, b"\x87\x00\x01\x04\x00\x00"),
        RejectReason.EXTENSION_HEADER_TRUNCATED,
        40,
    ),
    Case(
        "dest-opts-length-past-payload",
        lambda: ipv6(60, b"\x87\x02" + padn(6)),
        RejectReason.EXTENSION_HEADER_TRUNCATED,
        41,
    ),
    Case(
        "seven-extension-headers",
        _too_many_headers,
        RejectReason.TOO_MANY_EXTENSION_HEADERS,
        40 + 6 * 8,
    ),
    Case(
        "hop-by-hop-after-dest-opts",
        lambda: ipv6(60, ext_header(0, padn(6)) + ext_header(135, padn(6)) + bu_options(b"")),
        RejectReason.HOP_BY_HOP_NOT_FIRST,
        48,
    ),
    Case(
        "hao-length-15",
        lambda: ipv6(
            60, ext_header(135, padn(4) + bytes([0xC9, 15]) + HOA[:15] + b"\x00") + bu_options(b"")
        ),
        RejectReason.DESTINATION_OPTION_MALFORMED,
        47,
    ),
    Case(
        "padn-overruns-dest-opts",
        lambda: ipv6(60, b"\x87\x00\x01\x05" + bytes(4)),
        RejectReason.DESTINATION_OPTION_MALFORMED,
        42,
    ),
    Case(
        "unknown-dest-option-10",
        lambda: mobility_packet_with_dest_option(0x8A),
        RejectReason.UNKNOWN_DESTINATION_OPTION,
        42,
    ),
    Case(
        "unknown-dest-option-01",
        lambda: mobility_packet_with_dest_option(0x4A),
        RejectReason.UNKNOWN_DESTINATION_OPTION,
        42,
    ),
    Case(
        "unknown-dest-option-11",
        lambda: mobility_packet_with_dest_option(0xCA),
        RejectReason.UNKNOWN_DESTINATION_OPTION,
        42,
    ),
    Case(
        "two-hao-in-one-header",
        lambda: ipv6(60, ext_header(135, HAO_BODY + padn(6) + option(0xC9, HOA)) + bu_options(b"")),
        RejectReason.DUPLICATE_HOME_ADDRESS_OPTION,
    ),
    Case(
        "hao-in-two-dest-opts-headers",
        lambda: ipv6(60, dest_opts_hao(60) + dest_opts_hao(135) + bu_options(b"")),
        RejectReason.DUPLICATE_HOME_ADDRESS_OPTION,
    ),
    Case(
        "hao-in-hop-by-hop",
        lambda: ipv6(0, ext_header(135, HAO_BODY) + bu_options(b"")),
        RejectReason.DUPLICATE_HOME_ADDRESS_OPTION,
    ),
    Case(
        "routing-type-0-segments-left-1",
        lambda: ipv6(43, bytes([135, 2, 0, 1]) + bytes(4) + HOA + bu_options(b"")),
        RejectReason.ROUTING_HEADER_UNSUPPORTED,
        42,
    ),
    Case(
        "two-type-2-routing-headers",
        lambda: ipv6(43, rh2(43) + rh2(135) + bu_options(b""), HA, COA),
        RejectReason.ROUTING_HEADER_UNSUPPORTED,
        64,
    ),
    Case(
        "rh2-segments-left-0",
        lambda: ipv6(43, rh2(segments_left=0) + bu_options(b"")),
        RejectReason.ROUTING_HEADER_MALFORMED,
        41,
    ),
    Case(
        "rh2-two-addresses",
        lambda: ipv6(43, bytes([135, 4, 2, 1]) + bytes(4) + HOA + ALT + bu_options(b"")),
        RejectReason.ROUTING_HEADER_MALFORMED,
        41,
    ),
    Case(
        "fragment-header",
        lambda: ipv6(44, bytes([135, 0, 0, 1, 0, 0, 0, 42]) + bu_options(b"")),
        RejectReason.FRAGMENTED,
    ),
    Case(
        "fragment-after-hao",
        lambda: ipv6(60, dest_opts_hao(44) + bytes([135, 0, 0, 0, 0, 0, 0, 1]) + bu_options(b"")),
        RejectReason.FRAGMENTED,
    ),
    # --- not a (decoded) Mobility Header
    Case(
        "icmpv6",
        lambda: ipv6(58, bytes([128, 0, 0, 0, 0, 1, 0, 1])),
        RejectReason.NOT_MOBILITY_HEADER,
    ),
    Case("no-next-header", lambda: ipv6(59, b""), RejectReason.NOT_MOBILITY_HEADER),
    Case(
        "tcp-after-hao",
        lambda: ipv6(60, dest_opts_hao(6) + bytes(20)),
        RejectReason.NOT_MOBILITY_HEADER,
    ),
    # MH types 0, 1, 3 (BRR, HoTI, HoT) are known to RFC 6275 (no Binding
    # Error) but never decoded by a DAR.
    Case(
        "binding-refresh-request",
        lambda: mobility_packet(mh_raw(0, b"\x00\x00")),
        RejectReason.NOT_MOBILITY_HEADER,
        40 + 24 + 2,
    ),
    Case(
        "home-test-init",
        lambda: mobility_packet(mh_raw(1, bytes(10))),
        RejectReason.NOT_MOBILITY_HEADER,
    ),
    Case(
        "home-test", lambda: mobility_packet(mh_raw(3, bytes(18))), RejectReason.NOT_MOBILITY_HEADER
    ),
    # --- Mobility Header framing
    Case("mh-5-octets", lambda: ipv6(135, bytes([59, 1, 5, 0, 0])), RejectReason.MH_TRUNCATED, 40),
    Case("mh-empty-after-hao", lambda: ipv6(60, dest_opts_hao()), RejectReason.MH_TRUNCATED, 64),
    Case(
        "header-len-one-unit-too-many",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, padn(4), header_len=2)),
        RejectReason.HEADER_LEN_PAST_END,
        65,
    ),
    Case("mh-1032-octets", _oversized_bu, RejectReason.OVERSIZED, 65),
    # --- RFC 6275 §9.2 checks, in order
    Case(
        "bu-checksum-with-coa-not-hoa",
        _bu_checksum_with_coa_instead_of_hoa,
        RejectReason.BAD_CHECKSUM,
        68,
    ),
    Case(
        "ba-checksum-with-coa-not-rh2-hoa",
        _ba_checksum_with_ipv6_destination_instead_of_rh2,
        RejectReason.BAD_CHECKSUM,
        68,
    ),
    Case("bit-flip-after-checksum", _bit_flip_after_checksum, RejectReason.BAD_CHECKSUM, 68),
    Case(
        "mh-type-8", lambda: mobility_packet(mh_raw(8, bytes(10))), RejectReason.UNKNOWN_MH_TYPE, 66
    ),
    Case(
        "mh-type-255",
        lambda: mobility_packet(mh_raw(255, bytes(2)), hao=False),
        RejectReason.UNKNOWN_MH_TYPE,
        42,
    ),
    # Parameter Problem pointer = Payload Proto field, counted from the IPv6 header.
    Case(
        "bu-payload-proto-6-after-hao",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, padn(4), proto=6)),
        RejectReason.PAYLOAD_PROTO_NOT_NONE,
        64,
    ),
    Case(
        "be-payload-proto-58-no-ext-header",
        lambda: mobility_packet(mh_raw(7, b"\x01\x00" + HOA, proto=58), hao=False),
        RejectReason.PAYLOAD_PROTO_NOT_NONE,
        40,
    ),
    Case(
        "ba-payload-proto-0-after-rh2",
        lambda: mobility_packet(mh_raw(6, bytes(6), padn(4), proto=0), hao=False, routing=True),
        RejectReason.PAYLOAD_PROTO_NOT_NONE,
        64,
    ),
    Case(
        "payload-proto-17-after-rh2-and-hao",
        lambda: mobility_packet(mh_raw(4, bytes(18), proto=17), routing=True),
        RejectReason.PAYLOAD_PROTO_NOT_NONE,
        88,
    ),
    # Parameter Problem pointer = Header Len field.
    Case(
        "bu-header-len-0",
        lambda: mobility_packet(mh_raw(5, bytes(2))),
        RejectReason.HEADER_LEN_TOO_SHORT,
        65,
    ),
    Case(
        "ba-header-len-0",
        lambda: mobility_packet(mh_raw(6, bytes(2)), hao=False, routing=True),
        RejectReason.HEADER_LEN_TOO_SHORT,
        65,
    ),
    Case(
        "be-header-len-1",
        lambda: mobility_packet(mh_raw(7, bytes(10)), hao=False),
        RejectReason.HEADER_LEN_TOO_SHORT,
        41,
    ),
    Case(
        "coti-header-len-0",
        lambda: mobility_packet(mh_raw(2, bytes(2)), hao=False),
        RejectReason.HEADER_LEN_TOO_SHORT,
        41,
    ),
    Case(
        "cot-header-len-1",
        lambda: mobility_packet(mh_raw(4, bytes(10)), hao=False),
        RejectReason.HEADER_LEN_TOO_SHORT,
        41,
    ),
    Case(
        "hoti-header-len-0",
        lambda: mobility_packet(mh_raw(1, bytes(2))),
        RejectReason.HEADER_LEN_TOO_SHORT,
        65,
    ),
    Case(
        "hot-header-len-1",
        lambda: mobility_packet(mh_raw(3, bytes(10)), routing=True),
        RejectReason.HEADER_LEN_TOO_SHORT,
        89,
    ),
    # --- mobility options (§6.2, RFC 4866 §5)
    Case(
        "option-type-is-last-octet",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, padn(3) + b"\x1e")),
        RejectReason.OPTION_TRUNCATED,
        64 + 15,
    ),
    Case(
        "option-length-overruns-mh",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, b"\x1e\x05\x00\x00")),
        RejectReason.OPTION_TRUNCATED,
        64 + 13,
    ),
    Case(
        "nonce-indices-length-6",
        lambda: mobility_packet(bu_options(option(4, bytes(6)))),
        RejectReason.OPTION_LENGTH_INVALID,
        64 + 13,
    ),
    Case(
        "bad-length-16",  # scapy's MIP6OptBindingAuthData default olen is 16
        lambda: mobility_packet(bu_options(padn(6) + option(5, bytes(16)))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "alternate-coa-length-8",
        lambda: mobility_packet(bu_options(padn(2) + option(3, bytes(8)))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "cga-parameters-request-length-1",
        lambda: mobility_packet(bu_options(option(11, b"\x00"))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "care-of-test-init-length-2",
        lambda: mobility_packet(bu_options(option(15, b"\x00\x00"))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "care-of-test-length-7",
        lambda: mobility_packet(bu_options(option(16, bytes(7)))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "binding-refresh-advice-length-4",
        lambda: mobility_packet(bu_options(option(2, bytes(4)))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "empty-phkt",
        lambda: mobility_packet(bu_options(option(14, b""))),
        RejectReason.OPTION_LENGTH_INVALID,
    ),
    Case(
        "mh-padn-non-zero",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, b"\x01\x02\x00\x01")),
        RejectReason.PADDING_NOT_ZERO,
    ),
    Case(
        "dest-opts-padn-non-zero",
        lambda: ipv6(
            60, ext_header(135, b"\x01\x02\x00\x80" + option(0xC9, HOA)) + bu_options(b"")
        ),
        RejectReason.PADDING_NOT_ZERO,
    ),
    Case(
        "two-nonce-indices",
        lambda: mobility_packet(bu_options(option(4, bytes(4)) + option(4, bytes(4)))),
        RejectReason.DUPLICATE_OPTION,
        64 + 18,
    ),
    Case(
        "two-alternate-coa",
        lambda: mobility_packet(bu_options(padn(2) + option(3, ALT) + padn(6) + option(3, COA))),
        RejectReason.DUPLICATE_OPTION,
    ),
    Case(
        "two-cga-parameters-requests",
        lambda: mobility_packet(bu_options(option(11, b"") + option(11, b""))),
        RejectReason.DUPLICATE_OPTION,
    ),
    Case(
        "two-signatures",
        lambda: mobility_packet(bu_options(option(12, b"cga") + SIGNATURE + SIGNATURE)),
        RejectReason.DUPLICATE_OPTION,
    ),
    Case(
        "two-phkt",
        lambda: mobility_packet(bu_options(option(14, b"a") + option(14, b"b"))),
        RejectReason.DUPLICATE_OPTION,
    ),
    Case(
        "bad-then-padn",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, padn(6) + option(5, AUTH) + padn(8))),
        RejectReason.AUTHORIZATION_DATA_NOT_LAST,
        64 + 32,
    ),
    Case(
        "bad-then-pad1s",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, padn(6) + option(5, AUTH) + bytes(8))),
        RejectReason.AUTHORIZATION_DATA_NOT_LAST,
        64 + 32,
    ),
    Case(
        "bad-then-nonce-indices",
        lambda: mobility_packet(
            mh_raw(5, BU_FIXED, padn(6) + option(5, AUTH) + option(4, bytes(4)) + padn(2))
        ),
        RejectReason.AUTHORIZATION_DATA_NOT_LAST,
    ),
    Case(
        "cga-signature-cga",
        lambda: mobility_packet(bu_options(option(12, b"abc") + SIGNATURE + option(12, b"d"))),
        RejectReason.CGA_PARAMETERS_NOT_CONTIGUOUS,
    ),
    Case(
        "cga-200-then-cga",
        lambda: mobility_packet(
            bu_options(option(12, bytes(200)) + option(12, bytes(10)) + SIGNATURE)
        ),
        RejectReason.CGA_PARAMETERS_FRAGMENT_SIZE,
        64 + 12 + 202,
    ),
    Case(
        "cga-766-octets",
        lambda: mobility_packet(bu_options(CGA_255 * 3 + option(12, b"x") + SIGNATURE)),
        RejectReason.CGA_PARAMETERS_TOO_LONG,
    ),
    Case(
        "signature-without-cga",
        lambda: mobility_packet(bu_options(SIGNATURE)),
        RejectReason.SIGNATURE_NOT_AFTER_CGA_PARAMETERS,
        64 + 12,
    ),
    Case(
        "signature-after-nonce-indices",
        lambda: mobility_packet(bu_options(option(4, bytes(4)) + SIGNATURE)),
        RejectReason.SIGNATURE_NOT_AFTER_CGA_PARAMETERS,
    ),
    Case(
        "cga-padn-cga",
        lambda: mobility_packet(bu_options(CGA_255 + padn(2) + option(12, b"x") + SIGNATURE)),
        RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
        64 + 12 + 257,
    ),
    Case(
        "cga-nonce-signature",
        lambda: mobility_packet(bu_options(option(12, b"ab") + option(4, bytes(4)) + SIGNATURE)),
        RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
    ),
    Case(
        "cga-ends-the-message",
        lambda: mobility_packet(mh_raw(5, BU_FIXED, option(12, b"ab"))),
        RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE,
        64 + 16,
    ),
]


def mobility_packet_with_dest_option(option_type: int) -> bytes:
    """A BU whose dest opts header starts with option ``option_type`` (2 data
    octets), then the HAO at offset 6 (8n+6)."""
    body = option(option_type, bytes(2)) + option(0xC9, HOA)
    return fix_checksum(ipv6(60, ext_header(135, body) + bu_options(b"")))


def _ids(cases):
    return [case.name for case in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_rejection_reason_reaction_and_pointer(case: Case):
    packet = case.build()
    with pytest.raises(MobilityParseError) as info:
        case.parse(packet)
    error = info.value
    assert error.reason is case.reason, error.detail
    assert error.reason.reaction is EXPECTED_REACTION[case.reason]
    if case.reason.reaction is Reaction.PARAMETER_PROBLEM:
        assert case.pointer is not None, "a Parameter Problem case must pin its pointer"
    if case.pointer is not None:
        assert error.pointer == case.pointer


# RFC 6275 §9.2: bad checksum -> silent discard; unknown MH type -> Binding
# Error status 2; Payload Proto != 59 and short Header Len -> ICMPv6 Parameter
# Problem code 0.  Everything else the codec rejects is dropped silently.
EXPECTED_REACTION = {reason: Reaction.SILENT_DROP for reason in RejectReason}
EXPECTED_REACTION[RejectReason.UNKNOWN_MH_TYPE] = Reaction.BINDING_ERROR_UNRECOGNIZED_TYPE
EXPECTED_REACTION[RejectReason.PAYLOAD_PROTO_NOT_NONE] = Reaction.PARAMETER_PROBLEM
EXPECTED_REACTION[RejectReason.HEADER_LEN_TOO_SHORT] = Reaction.PARAMETER_PROBLEM


@pytest.mark.parametrize("reason", list(RejectReason), ids=[r.name for r in RejectReason])
def test_reaction_of_every_reason(reason: RejectReason):
    assert reason.reaction is EXPECTED_REACTION[reason]


def test_every_reject_reason_is_exercised_by_a_case():
    """Meta-test: CASES covers every RejectReason member (each case runs above)."""
    exercised = {case.reason for case in CASES}
    assert exercised == set(RejectReason), set(RejectReason) - exercised


def test_case_names_are_unique():
    assert len({case.name for case in CASES}) == len(CASES)


def test_fix_checksum_leaves_the_valid_packets_unchanged():
    """fix_checksum agrees with the encoder, so a fixed mutation is otherwise intact."""
    packet = valid_bu()
    assert fix_checksum(packet) == packet
    ba = build_packet(mh.BindingAck(0, 1, 2), source=HA, destination=COA, routing_address=HOA)
    assert fix_checksum(ba) == ba
    assert parse_ipv6_packet(mobility_packet(bu_options(b""))).message == BindingUpdate(0x1234, 150)


# ---------------------------------------------------------------- order of checks


def test_bad_checksum_wins_over_unknown_mh_type():
    """§9.2: the checksum is verified first; an unknown type with a bad checksum is dropped."""
    packet = bytearray(mobility_packet(mh_raw(8, bytes(10))))
    packet[64 + 4] ^= 0xFF
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(bytes(packet))
    assert info.value.reason is RejectReason.BAD_CHECKSUM
    assert info.value.reason.reaction is Reaction.SILENT_DROP


def test_unknown_mh_type_wins_over_payload_proto():
    """§9.2: the MH Type is checked before Payload Proto -> Binding Error, not ICMP."""
    packet = mobility_packet(mh_raw(9, bytes(10), proto=6))
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(packet)
    assert info.value.reason is RejectReason.UNKNOWN_MH_TYPE
    assert info.value.reason.reaction is Reaction.BINDING_ERROR_UNRECOGNIZED_TYPE


def test_payload_proto_wins_over_header_len():
    """§9.2: Payload Proto is checked before Header Len; the pointer names Payload Proto."""
    packet = mobility_packet(mh_raw(5, bytes(2), proto=6))
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(packet)
    assert info.value.reason is RejectReason.PAYLOAD_PROTO_NOT_NONE
    assert info.value.pointer == 64


def test_header_len_too_short_wins_over_known_but_undecoded_type():
    """A too-short HoTI gets the §9.2 Parameter Problem, not a silent NOT_MOBILITY_HEADER."""
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(mobility_packet(mh_raw(1, bytes(2)), hao=False))
    assert info.value.reason is RejectReason.HEADER_LEN_TOO_SHORT
    assert info.value.pointer == 41


def test_checksum_is_verified_before_options_are_parsed():
    raw = bytearray(bu_options(option(4, bytes(4)) + option(4, bytes(4))))
    raw[4:6] = b"\x12\x34"
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(ipv6(60, dest_opts_hao() + bytes(raw)))
    assert info.value.reason is RejectReason.BAD_CHECKSUM


def test_skippable_unknown_destination_option_is_accepted():
    """RFC 8200 §4.2: high bits 00 -> skip over the option (contrast with the cases above)."""
    parsed = parse_ipv6_packet(mobility_packet_with_dest_option(0x1E))
    assert parsed.home_address == HOA
    assert parsed.message == BindingUpdate(0x1234, 150)


# ---------------------------------------------------------------- CGA Pad1 corner (codec bug)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(option(12, bytes(9)) + b"\x00", id="cga-pad1-at-end-no-signature"),
        pytest.param(CGA_255 + b"\x00" + option(12, b"x") + SIGNATURE, id="cga-pad1-cga-signature"),
        pytest.param(option(12, b"abc") + b"\x00" + SIGNATURE, id="cga-pad1-signature"),
    ],
)
def test_pad1_after_cga_parameters_is_cga_parameters_without_signature(options):
    """RFC 4866 §5.1: no option of another type between CGA Parameters options;
    P6: the Signature follows directly.  Pad1 is a mobility option (§6.2.2),
    so it must be rejected exactly like PadN in 'cga-padn-cga'."""
    packet = mobility_packet(bu_options(options))
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(packet)
    assert info.value.reason is RejectReason.CGA_PARAMETERS_WITHOUT_SIGNATURE


# ---------------------------------------------------------------- truncations


def test_every_prefix_of_a_valid_bu_is_rejected_as_past_the_end():
    """Cutting the packet while keeping its Payload Length: always a clean rejection."""
    packet = valid_bu()
    assert parse_ipv6_packet(packet).message.options.authenticator == AUTH
    for length in range(len(packet)):
        with pytest.raises(MobilityParseError) as info:
            parse_ipv6_packet(packet[:length])
        expected = (
            RejectReason.TRUNCATED_IPV6_HEADER
            if length < 40
            else RejectReason.PAYLOAD_LENGTH_PAST_END
        )
        assert info.value.reason is expected, length


def test_every_prefix_with_a_consistent_payload_length_is_rejected_by_the_right_check():
    """Cutting the packet and shrinking Payload Length to match reaches the
    extension header and Mobility Header length checks."""
    packet = valid_bu()
    mh_start = 64  # IPv6 (40) + dest opts with the HAO (24)
    for length in range(40, len(packet)):
        cut = bytearray(packet[:length])
        cut[4:6] = (length - 40).to_bytes(2, "big")
        with pytest.raises(MobilityParseError) as info:
            parse_ipv6_packet(bytes(cut))
        if length < mh_start:
            expected = RejectReason.EXTENSION_HEADER_TRUNCATED
        elif length < mh_start + 6:
            expected = RejectReason.MH_TRUNCATED
        else:
            expected = RejectReason.HEADER_LEN_PAST_END
        assert info.value.reason is expected, length


def test_every_prefix_of_a_valid_ethernet_frame_raises_only_parse_errors():
    frame = mh.build_ethernet_frame(bytes(6), bytes(6), valid_bu())
    for length in range(len(frame)):
        with pytest.raises(MobilityParseError):
            parse_ethernet_frame(frame[:length])
    assert parse_ethernet_frame(frame).home_address == HOA
