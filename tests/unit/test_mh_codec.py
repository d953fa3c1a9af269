"""Golden-byte and layout tests for the Mobility Header codec (fama_ryu/mh.py).

Every expected packet below is written out by hand from the RFC layouts
(RFC 6275 §6.1, §6.2, §6.3, §6.4; RFC 4866 §5), field by field.  The only
computed field is the Mobility Header checksum, which is produced here by an
independent, deliberately naive RFC 1071 implementation over the RFC 8200
§8.1 pseudo-header (source = HoA from the Home Address option when present,
destination = the type 2 Routing Header address when present, RFC 6275
§6.1.1), never by the codec.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from fama_ryu import mh
from fama_ryu.mh import (
    BindingAck,
    BindingError,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    MHType,
    MobilityOptions,
    MobilityParseError,
    build_ethernet_frame,
    build_packet,
    parse_ethernet_frame,
    parse_ipv6_packet,
)

# ---------------------------------------------------------------- addresses
# P1: A_HDAR = Pref_HDAR::1; the MN's HoA is in Pref_HDAR, its CoA in the
# prefix of the DAR it is attached to now.
HA_HEX = "20010db8000100000000000000000001"  # 2001:db8:1::1   (A_HDAR)
HOA_HEX = "20010db8000100000000000000000100"  # 2001:db8:1::100 (HoA)
COA_HEX = "20010db8000200000000000000000100"  # 2001:db8:2::100 (CoA)
ALT_HEX = "20010db8000300000000000000000100"  # 2001:db8:3::100 (Alternate CoA)
HA = bytes.fromhex(HA_HEX)
HOA = bytes.fromhex(HOA_HEX)
COA = bytes.fromhex(COA_HEX)
ALT = bytes.fromhex(ALT_HEX)

MAC_MN = bytes.fromhex("020000000001")
MAC_DAR = bytes.fromhex("020000000002")


# ---------------------------------------------------------------- helpers


def hx(*parts: str) -> bytes:
    """Join hex fragments (spaces allowed) into bytes."""
    return bytes.fromhex("".join(parts).replace(" ", ""))


def rfc1071_checksum(source: bytes, destination: bytes, mh_bytes: bytes) -> int:
    """Straightforward RFC 1071 checksum of the RFC 8200 §8.1 pseudo-header
    (source, destination, 32-bit upper-layer length, 3 zero bytes, Next
    Header 135) followed by the Mobility Header with its checksum zeroed."""
    zeroed = mh_bytes[:4] + b"\x00\x00" + mh_bytes[6:]
    pseudo = source + destination + len(zeroed).to_bytes(4, "big") + b"\x00\x00\x00" + bytes([135])
    data = pseudo + zeroed
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def with_checksum(mh_bytes: bytes, source: bytes, destination: bytes) -> bytes:
    """Fill the checksum field (MH offset 4) of hand-written MH bytes."""
    checksum = rfc1071_checksum(source, destination, mh_bytes)
    return mh_bytes[:4] + checksum.to_bytes(2, "big") + mh_bytes[6:]


def walk_mobility_options(mh_bytes: bytes, start: int) -> list[tuple[int, int, int]]:
    """Independent TLV walk: (type, offset in the MH, data length) per option."""
    found = []
    position = start
    while position < len(mh_bytes):
        option_type = mh_bytes[position]
        if option_type == 0:
            found.append((0, position, 0))
            position += 1
            continue
        length = mh_bytes[position + 1]
        found.append((option_type, position, length))
        position += 2 + length
    assert position == len(mh_bytes), "options must end exactly at the MH end"
    return found


def mh_offset(packet: bytes) -> int:
    """Offset of the Mobility Header in a packet built from ext headers 43/60."""
    next_header, offset = packet[6], 40
    while next_header != 135:
        assert next_header in (43, 60)
        next_header, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
    return offset


# Fixed data blobs; P8 sizes: a 1024-bit key gives 187 bytes of CGA
# Parameters (25 + 162-byte DER key) and a 128-byte signature; a 2040-bit key
# gives 318 bytes (two options) and a 255-byte signature.
CGA_1024 = bytes((i * 7 + 1) % 256 for i in range(187))
SIG_1024 = bytes((0xA0 + i) % 256 for i in range(128))
CGA_2040 = bytes((i * 13 + 5) % 256 for i in range(318))
SIG_2040 = bytes((0x30 + i * 3) % 256 for i in range(255))
AUTH = hx("b0b1b2b3 b4b5b6b7 b8b9babb")  # 96-bit authenticator (§6.2.7)
PHKT = bytes((0x40 + i) % 256 for i in range(128))  # RSAES-PKCS1-v1_5 ciphertext size, 1024 bits
COOKIE = hx("c1c2c3c4 c5c6c7c8")
TOKEN = hx("d1d2d3d4 d5d6d7d8")

# IPv6 fixed header pieces (RFC 8200 §3): version 6, traffic class 0, flow 0.
VERSION_TC_FLOW = "60000000"
HOP_LIMIT_64 = "40"

# Destination Options header carrying the HAO (RFC 6275 §6.3), 24 octets:
#   Next Header 135 | Hdr Ext Len 2 | PadN(2 data bytes) -> HAO at offset 6 (8n+6)
#   | HAO type 0xC9 | length 16 | Home Address
DEST_OPTS_HAO = hx("87", "02", "01 02 0000", "c9 10", HOA_HEX)
# Type 2 Routing Header (RFC 6275 §6.4.1), 24 octets:
#   Next Header 135 | Hdr Ext Len 2 | Routing Type 2 | Segments Left 1 | Reserved | HoA
ROUTING_TYPE2 = hx("87", "02", "02", "01", "00000000", HOA_HEX)


def ipv6_header(payload_len: int, next_header: int, source_hex: str, destination_hex: str) -> bytes:
    return hx(
        VERSION_TC_FLOW,
        f"{payload_len:04x}",  # Payload Length
        f"{next_header:02x}",  # Next Header
        HOP_LIMIT_64,
        source_hex,
        destination_hex,
    )


# ---------------------------------------------------------------- golden cases
#
# Each case: message, build_packet kwargs, hand-written packet, expected
# signed_end / authenticator_offset (offsets in the MH).


def golden_bu_cga_one_fragment():
    """P6 first BU, 1024-bit key: one CGA Parameters option + Signature."""
    message = BindingUpdate(
        sequence=0x1234,
        lifetime_units=150,
        options=MobilityOptions(cga_parameters=CGA_1024, signature=SIG_1024),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59 (IPPROTO_NONE), §6.1.1
        "29",  # Header Len 41 -> (41 + 1) * 8 = 336 octets
        "05",  # MH Type 5 = Binding Update
        "00",  # Reserved
        "0000",  # Checksum (filled below)
        "1234",  # Sequence # (§6.1.7)
        "c000",  # A=1 H=1 L=0 K=0 + Reserved (P4)
        "0096",  # Lifetime 150 units = 600 s
        # offset 12: CGA Parameters option (type 12, no alignment), 187 bytes -> ends 201
        "0c",
        "bb",
        CGA_1024.hex(),
        # offset 201: Signature option (type 13), 128 bytes -> ends 331
        "0d",
        "80",
        SIG_1024.hex(),
        # offset 331: PadN with 3 zero bytes -> 336 = 42 * 8
        "01 03 000000",
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)  # HAO present: HoA in the pseudo-header
    packet = ipv6_header(24 + 336, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, 201, None


def golden_bu_cga_two_fragments():
    """P6/P8 first BU, 2040-bit key: CGA Parameters split 255 + 63, Signature 255."""
    message = BindingUpdate(
        sequence=0xFFFF,
        lifetime_units=0x1000,
        options=MobilityOptions(cga_parameters=CGA_2040, signature=SIG_2040),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "49",  # Header Len 73 -> 592 octets
        "05",  # Binding Update
        "00",  # Reserved
        "0000",  # Checksum
        "ffff",  # Sequence #
        "c000",  # A H
        "1000",  # Lifetime 4096 units
        # offset 12: CGA Parameters #1, exactly 255 bytes (RFC 4866 §5.1) -> ends 269
        "0c",
        "ff",
        CGA_2040[:255].hex(),
        # offset 269: CGA Parameters #2, the remaining 63 bytes -> ends 334
        "0c",
        "3f",
        CGA_2040[255:].hex(),
        # offset 334: Signature, 255 bytes -> ends 591
        "0d",
        "ff",
        SIG_2040.hex(),
        # offset 591: Pad1 -> 592 = 74 * 8
        "00",
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 592, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, 334, None


def golden_bu_nonce_indices_and_authorization_data():
    """P9/P13 later BU: Nonce Indices (2n) then Binding Authorization Data (8n+2), last."""
    message = BindingUpdate(
        sequence=0x1235,
        lifetime_units=150,
        options=MobilityOptions(nonce_indices=(0, 0x0102), authenticator=AUTH),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "03",  # Header Len 3 -> 32 octets
        "05",  # Binding Update
        "00",  # Reserved
        "0000",  # Checksum
        "1235",  # Sequence #
        "c000",  # A H
        "0096",  # Lifetime 150
        # offset 12 (2n): Nonce Indices, home index 0, care-of index 0x0102 -> ends 18
        "04 04",
        "0000",
        "0102",
        # offset 18 = 8*2 + 2: Binding Authorization Data needs no padding -> ends 32
        "05 0c",
        AUTH.hex(),
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 32, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, 20


def golden_bu_phkt_refresh():
    """P9 refresh of a bound MN: Binding Authorization Data only, after PadN(4)."""
    message = BindingUpdate(
        sequence=0x1236, lifetime_units=150, options=MobilityOptions(authenticator=AUTH)
    )
    mh_bytes = hx(
        "3b 03 05 00",  # Payload Proto 59, Header Len 3 (32 octets), BU, Reserved
        "0000",  # Checksum
        "1236",  # Sequence #
        "c000",  # A H
        "0096",  # Lifetime 150
        "01 04 00000000",  # offset 12: PadN(4) -> BAD at 18 = 8*2 + 2
        "05 0c",
        AUTH.hex(),  # offset 18: Binding Authorization Data -> ends 32
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 32, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, 20


def golden_bu_alternate_coa_nonce_indices_and_authorization_data():
    """Alternate CoA (8n+6), Nonce Indices (2n) and BAD (8n+2): every padding kind."""
    message = BindingUpdate(
        sequence=0x0001,
        lifetime_units=0x0002,
        options=MobilityOptions(alternate_coa=ALT, nonce_indices=(0, 0xFFFF), authenticator=AUTH),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "06",  # Header Len 6 -> 56 octets
        "05",  # Binding Update
        "00",  # Reserved
        "0000",  # Checksum
        "0001",  # Sequence #
        "c000",  # A H
        "0002",  # Lifetime
        "01 00",  # offset 12: PadN(0) -> Alternate CoA at 14 = 8*1 + 6
        "03 10",
        ALT_HEX,  # offset 14: Alternate Care-of Address -> ends 32
        "04 04 0000 ffff",  # offset 32 (2n): Nonce Indices -> ends 38
        "01 02 0000",  # offset 38: PadN(2) -> BAD at 42 = 8*5 + 2
        "05 0c",
        AUTH.hex(),  # offset 42: BAD -> ends 56 = 7 * 8
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 56, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, 44


def golden_bu_alternate_coa():
    """BU with an Alternate Care-of Address option (8n+6, §6.2.5), K and L flags set."""
    message = BindingUpdate(
        sequence=7,
        lifetime_units=1,
        ack=False,
        home_registration=True,
        link_local_compat=True,
        key_management=True,
        options=MobilityOptions(alternate_coa=ALT),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "03",  # Header Len 3 -> 32 octets
        "05",  # Binding Update
        "00",  # Reserved
        "0000",  # Checksum
        "0007",  # Sequence #
        "7000",  # A=0 H=1 L=1 K=1
        "0001",  # Lifetime 1 unit
        # offset 12: PadN with 0 data bytes -> Alternate CoA at 14 = 8*1 + 6
        "01 00",
        # offset 14: Alternate Care-of Address -> ends 32
        "03 10",
        ALT_HEX,
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 32, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, None


def golden_bu_cga_parameters_request():
    """BU with a CGA Parameters Request option (RFC 4866 §5.6, length 0)."""
    message = BindingUpdate(
        sequence=0x0100,
        lifetime_units=0x00FF,
        options=MobilityOptions(cga_parameters_request=True),
    )
    mh_bytes = hx(
        "3b 01 05 00",  # Payload Proto 59, Header Len 1 (16 octets), BU, Reserved
        "0000",  # Checksum
        "0100",  # Sequence #
        "c000",  # A H
        "00ff",  # Lifetime
        "0b 00",  # offset 12: CGA Parameters Request
        "01 00",  # offset 14: PadN(0) -> 16
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 16, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, None


def golden_bu_care_of_test_init_option():
    """BU with a Care-of Test Init option (RFC 4866 §5.4, length 0)."""
    message = BindingUpdate(
        sequence=2,
        lifetime_units=10,
        options=MobilityOptions(care_of_test_init=True),
    )
    mh_bytes = hx(
        "3b 01 05 00",  # Payload Proto 59, Header Len 1, BU, Reserved
        "0000",  # Checksum
        "0002",  # Sequence #
        "c000",  # A H
        "000a",  # Lifetime 10
        "0f 00",  # offset 12: Care-of Test Init option
        "01 00",  # offset 14: PadN(0)
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 16, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, None


def golden_bu_deregistration_no_options():
    """P11 deregistration, lifetime 0, no options: 4 octets of padding (§6.1.7)."""
    message = BindingUpdate(sequence=0x8000, lifetime_units=0)
    mh_bytes = hx(
        "3b 01 05 00",  # Payload Proto 59, Header Len 1, BU, Reserved
        "0000",  # Checksum
        "8000",  # Sequence #
        "c000",  # A H
        "0000",  # Lifetime 0
        "01 02 0000",  # PadN(2)
    )
    mh_bytes = with_checksum(mh_bytes, HOA, HA)
    packet = ipv6_header(24 + 16, 60, COA_HEX, HA_HEX) + DEST_OPTS_HAO + mh_bytes
    kwargs = dict(source=COA, destination=HA, home_address=HOA)
    return message, kwargs, packet, None, None


def golden_ba_accepted_phkt_and_authorization_data():
    """P12 BA after a CGA BU: status 0, PHKT, BAD last; RH2 carries the HoA."""
    message = BindingAck(
        status=0,
        sequence=0x1234,
        lifetime_units=150,
        options=MobilityOptions(permanent_home_keygen_token=PHKT, authenticator=AUTH),
    )
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "13",  # Header Len 19 -> 160 octets
        "06",  # MH Type 6 = Binding Acknowledgement
        "00",  # Reserved
        "0000",  # Checksum
        "00",  # Status 0 (accepted), §6.1.8
        "00",  # K=0 + Reserved
        "1234",  # Sequence # (echoed)
        "0096",  # Lifetime 150
        # offset 12: Permanent Home Keygen Token (type 14), 128 bytes -> ends 142
        "0e 80",
        PHKT.hex(),
        # offset 142: PadN(2) -> BAD at 146 = 8*18 + 2
        "01 02 0000",
        # offset 146: Binding Authorization Data -> ends 160
        "05 0c",
        AUTH.hex(),
    )
    mh_bytes = with_checksum(mh_bytes, HA, HOA)  # RH2 present: HoA is the final destination
    packet = ipv6_header(24 + 160, 43, HA_HEX, COA_HEX) + ROUTING_TYPE2 + mh_bytes
    kwargs = dict(source=HA, destination=COA, routing_address=HOA)
    return message, kwargs, packet, None, 148


def golden_ba_sequence_out_of_window():
    """P5 BA status 135 with the last accepted sequence number, no options."""
    message = BindingAck(status=135, sequence=0x1233, lifetime_units=0)
    mh_bytes = hx(
        "3b 01 06 00",  # Payload Proto 59, Header Len 1, BA, Reserved
        "0000",  # Checksum
        "87",  # Status 135
        "00",  # K=0
        "1233",  # Sequence #
        "0000",  # Lifetime
        "01 02 0000",  # PadN(2)
    )
    mh_bytes = with_checksum(mh_bytes, HA, HOA)
    packet = ipv6_header(24 + 16, 43, HA_HEX, COA_HEX) + ROUTING_TYPE2 + mh_bytes
    kwargs = dict(source=HA, destination=COA, routing_address=HOA)
    return message, kwargs, packet, None, None


def golden_ba_care_of_test_option():
    """BA with a Care-of Test option (RFC 4866 §5.5) and BAD, K flag set."""
    message = BindingAck(
        status=0,
        sequence=9,
        lifetime_units=300,
        key_management=True,
        options=MobilityOptions(care_of_keygen_token=TOKEN, authenticator=AUTH),
    )
    mh_bytes = hx(
        "3b 04 06 00",  # Payload Proto 59, Header Len 4 (40 octets), BA, Reserved
        "0000",  # Checksum
        "00",  # Status 0
        "80",  # K=1
        "0009",  # Sequence #
        "012c",  # Lifetime 300
        "10 08",
        TOKEN.hex(),  # offset 12: Care-of Test option -> ends 22
        "01 02 0000",  # offset 22: PadN(2) -> BAD at 26 = 8*3 + 2
        "05 0c",
        AUTH.hex(),  # offset 26: BAD -> ends 40
    )
    mh_bytes = with_checksum(mh_bytes, HA, HOA)
    packet = ipv6_header(24 + 40, 43, HA_HEX, COA_HEX) + ROUTING_TYPE2 + mh_bytes
    kwargs = dict(source=HA, destination=COA, routing_address=HOA)
    return message, kwargs, packet, None, 28


def golden_be_unrecognized_mh_type():
    """§6.1.9 Binding Error status 2 with the home address, no extension header."""
    message = BindingError(status=2, home_address=HOA)
    mh_bytes = hx(
        "3b",  # Payload Proto 59
        "02",  # Header Len 2 -> 24 octets
        "07",  # MH Type 7 = Binding Error
        "00",  # Reserved
        "0000",  # Checksum
        "02",  # Status 2: unrecognized MH Type value
        "00",  # Reserved
        HOA_HEX,  # Home Address
    )
    mh_bytes = with_checksum(mh_bytes, HA, COA)
    packet = ipv6_header(24, 135, HA_HEX, COA_HEX) + mh_bytes
    kwargs = dict(source=HA, destination=COA)
    return message, kwargs, packet, None, None


def golden_care_of_test_init():
    """P13 / §6.1.4 Care-of Test Init, CoA -> A_HDAR."""
    message = CareOfTestInit(cookie=COOKIE)
    mh_bytes = hx(
        "3b 01 02 00",  # Payload Proto 59, Header Len 1 (16 octets), CoTI, Reserved
        "0000",  # Checksum
        "0000",  # Reserved
        COOKIE.hex(),  # Care-of Init Cookie
    )
    mh_bytes = with_checksum(mh_bytes, COA, HA)
    packet = ipv6_header(16, 135, COA_HEX, HA_HEX) + mh_bytes
    kwargs = dict(source=COA, destination=HA)
    return message, kwargs, packet, None, None


def golden_care_of_test():
    """P13 / §6.1.6 Care-of Test, A_HDAR -> CoA."""
    message = CareOfTest(nonce_index=0x0007, cookie=COOKIE, keygen_token=TOKEN)
    mh_bytes = hx(
        "3b 02 04 00",  # Payload Proto 59, Header Len 2 (24 octets), CoT, Reserved
        "0000",  # Checksum
        "0007",  # Care-of Nonce Index
        COOKIE.hex(),  # Care-of Init Cookie
        TOKEN.hex(),  # Care-of Keygen Token
    )
    mh_bytes = with_checksum(mh_bytes, HA, COA)
    packet = ipv6_header(24, 135, HA_HEX, COA_HEX) + mh_bytes
    kwargs = dict(source=HA, destination=COA)
    return message, kwargs, packet, None, None


GOLDEN = {
    "bu-cga-1-fragment": golden_bu_cga_one_fragment,
    "bu-cga-2-fragments": golden_bu_cga_two_fragments,
    "bu-nonce-indices-bad": golden_bu_nonce_indices_and_authorization_data,
    "bu-phkt-refresh": golden_bu_phkt_refresh,
    "bu-alternate-coa": golden_bu_alternate_coa,
    "bu-alternate-coa-nonce-bad": golden_bu_alternate_coa_nonce_indices_and_authorization_data,
    "bu-cga-parameters-request": golden_bu_cga_parameters_request,
    "bu-care-of-test-init-option": golden_bu_care_of_test_init_option,
    "bu-deregistration": golden_bu_deregistration_no_options,
    "ba-0-phkt-bad": golden_ba_accepted_phkt_and_authorization_data,
    "ba-135-plain": golden_ba_sequence_out_of_window,
    "ba-care-of-test-option": golden_ba_care_of_test_option,
    "be-status-2": golden_be_unrecognized_mh_type,
    "coti": golden_care_of_test_init,
    "cot": golden_care_of_test,
}


@pytest.mark.parametrize("case", list(GOLDEN), ids=list(GOLDEN))
def test_build_packet_produces_the_hand_written_golden_bytes(case):
    message, kwargs, expected, _, _ = GOLDEN[case]()
    assert build_packet(message, **kwargs) == expected


@pytest.mark.parametrize("case", list(GOLDEN), ids=list(GOLDEN))
def test_parse_of_the_golden_bytes_gives_the_message_and_addresses(case):
    message, kwargs, packet, signed_end, authenticator_offset = GOLDEN[case]()
    parsed = parse_ipv6_packet(packet)
    assert parsed.message == message
    assert parsed.mh.mh_type is mh.message_type(message)
    assert parsed.source == kwargs["source"]
    assert parsed.destination == kwargs["destination"]
    assert parsed.hop_limit == 64
    assert parsed.home_address == kwargs.get("home_address")
    assert parsed.routing_address == kwargs.get("routing_address")
    # P4 / P12: the pseudo-header addresses are the HoA and the RH2 address.
    assert parsed.pseudo_source == kwargs.get("home_address", kwargs["source"])
    assert parsed.pseudo_destination == kwargs.get("routing_address", kwargs["destination"])
    assert parsed.mh.raw == packet[mh_offset(packet) :]
    assert parsed.mh.signed_end == signed_end
    assert parsed.mh.authenticator_offset == authenticator_offset


@pytest.mark.parametrize("case", list(GOLDEN), ids=list(GOLDEN))
def test_golden_checksum_matches_codec_mobility_checksum(case):
    """The codec's checksum (one integer, folded modulo 0xFFFF) agrees with RFC 1071."""
    _, kwargs, packet, _, _ = GOLDEN[case]()
    raw = packet[mh_offset(packet) :]
    source = kwargs.get("home_address", kwargs["source"])
    destination = kwargs.get("routing_address", kwargs["destination"])
    zeroed = raw[:4] + b"\x00\x00" + raw[6:]
    assert mh.mobility_checksum(source, destination, zeroed) == int.from_bytes(raw[4:6], "big")
    # A correct checksum makes the sum over the whole header zero.
    assert mh.mobility_checksum(source, destination, raw) == 0


def test_checksum_of_odd_length_data_pads_with_a_zero_byte():
    """RFC 1071: an odd trailing byte is summed as the high byte of a word."""
    for length in (7, 9, 39, 41):
        data = bytes(range(1, length + 1))
        zeroed = data[:4] + b"\x00\x00" + data[6:]
        assert mh.mobility_checksum(COA, HA, zeroed) == rfc1071_checksum(COA, HA, zeroed)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("cga_len", [1, 2, 3, 5, 8, 187, 254, 255, 256, 318, 509, 510, 511, 700])
@pytest.mark.parametrize("signature_len", [1, 4, 7, 128, 255])
def test_cga_parameters_are_split_in_255_byte_options_followed_by_signature(cga_len, signature_len):
    """RFC 4866 §5.1: every CGA Parameters option but the last holds exactly 255 bytes,
    contiguous, the Signature directly after (P6)."""
    cga = bytes((i * 31) % 256 for i in range(cga_len))
    signature = bytes((i * 17 + 3) % 256 for i in range(signature_len))
    message = BindingUpdate(1, 10, options=MobilityOptions(cga_parameters=cga, signature=signature))
    packet = build_packet(message, source=COA, destination=HA, home_address=HOA)
    raw = packet[mh_offset(packet) :]
    options = [o for o in walk_mobility_options(raw, 12) if o[0] not in (0, 1)]
    cga_options = [o for o in options if o[0] == 12]
    assert [o[2] for o in cga_options] == [255] * (len(cga_options) - 1) + [
        cga_len - 255 * (len(cga_options) - 1)
    ]
    assert len(cga_options) == -(-cga_len // 255)
    # contiguous: the CGA options are the first options and each starts where the previous ends
    assert [o[0] for o in options] == [12] * len(cga_options) + [13]
    for previous, following in zip(options, options[1:], strict=False):
        assert following[1] == previous[1] + 2 + previous[2]
    assert b"".join(raw[o[1] + 2 : o[1] + 2 + o[2]] for o in cga_options) == cga
    parsed = parse_ipv6_packet(packet)
    assert parsed.message.options.cga_parameters == cga
    assert parsed.message.options.signature == signature


def _all_alignment_messages():
    """Messages where the options before Alternate CoA / Nonce Indices / BAD have
    varying lengths, forcing every padding size."""
    messages = []
    for phkt_len in range(1, 17):
        for signature_len in (1, 2, 3, 5, 8):
            messages.append(
                BindingUpdate(
                    sequence=phkt_len,
                    lifetime_units=signature_len,
                    options=MobilityOptions(
                        cga_parameters_request=phkt_len % 2 == 0,
                        care_of_test_init=phkt_len % 3 == 0,
                        alternate_coa=ALT,
                        binding_refresh_interval_units=phkt_len,
                        permanent_home_keygen_token=bytes(range(phkt_len)),
                        cga_parameters=bytes(range(phkt_len + signature_len)),
                        signature=bytes(signature_len),
                        nonce_indices=(phkt_len, signature_len),
                        authenticator=AUTH,
                    ),
                )
            )
    for pre in range(0, 12):
        # Care-of Test option + PHKT of varying size before the BAD in a BA.
        messages.append(
            BindingAck(
                0,
                pre,
                pre,
                options=MobilityOptions(
                    care_of_keygen_token=TOKEN,
                    permanent_home_keygen_token=bytes(pre + 1),
                    authenticator=AUTH,
                ),
            )
        )
    return messages


def test_option_alignment_alternate_coa_8n6_bad_8n2_nonce_and_refresh_advice_2n():
    """§6.2.4 BRA 2n, §6.2.5 Alternate CoA 8n+6, §6.2.6 Nonce Indices 2n,
    §6.2.7 BAD 8n+2 and last with no trailing padding; MH a multiple of 8 (§6.1.1)."""
    seen_gaps = set()
    for message in _all_alignment_messages():
        packet = build_packet(message, source=COA, destination=HA, home_address=HOA)
        raw = packet[mh_offset(packet) :]
        assert len(raw) % 8 == 0
        assert raw[1] == len(raw) // 8 - 1
        options = walk_mobility_options(raw, 12)
        offsets = {option_type: offset for option_type, offset, _ in options}
        if 3 in offsets:
            assert offsets[3] % 8 == 6
        if 2 in offsets:
            assert offsets[2] % 2 == 0
        if 4 in offsets:
            assert offsets[4] % 2 == 0
        assert offsets[5] % 8 == 2
        assert options[-1][0] == 5 and options[-1][1] + 14 == len(raw)
        # padding options are well-formed and zero-filled
        for option_type, offset, length in options:
            if option_type == 1:
                assert raw[offset + 2 : offset + 2 + length] == bytes(length)
                seen_gaps.add(length + 2)
            elif option_type == 0:
                seen_gaps.add(1)
        assert parse_ipv6_packet(packet).message == message
    assert seen_gaps >= {1, 2, 3, 4, 5, 6, 7}, "the alignment cases exercise every pad size"


@pytest.mark.parametrize("case", list(GOLDEN), ids=list(GOLDEN))
def test_home_address_option_is_at_8n_plus_6_in_its_destination_options_header(case):
    """RFC 6275 §6.3: HAO alignment 8n+6; header a multiple of 8; after the RH2."""
    message, kwargs, _, _, _ = GOLDEN[case]()
    kwargs = dict(kwargs, home_address=HOA, routing_address=ALT)
    packet = build_packet(message, **kwargs)
    # RFC 8200 §4.1 / RFC 6275 §6.3: routing header first, then the dest opts with the HAO.
    assert packet[6] == 43
    assert packet[40] == 60 and packet[40 + 24] == 135
    dest_opts = packet[64 : 64 + (packet[65] + 1) * 8]
    assert len(dest_opts) % 8 == 0
    hao_at = dest_opts.index(bytes([0xC9, 16]))
    assert hao_at % 8 == 6
    assert dest_opts[hao_at + 2 : hao_at + 18] == HOA
    parsed = parse_ipv6_packet(packet)
    assert (parsed.home_address, parsed.routing_address) == (HOA, ALT)
    assert parsed.message == message


# ---------------------------------------------------------------- signed / authorized data


def test_signer_receives_mh_up_to_last_cga_parameters_option_with_zero_checksum():
    """P6 / RFC 4866 §4.5: MH data = from the MH's first byte through the last CGA
    Parameters option, checksum taken as zero; parse exposes the same bytes."""
    received = []

    def signer(data: bytes) -> bytes:
        received.append(data)
        return SIG_2040

    message = BindingUpdate(
        0x4242,
        100,
        options=MobilityOptions(
            cga_parameters_request=True,
            alternate_coa=ALT,
            cga_parameters=CGA_2040,
            nonce_indices=(0, 3),
        ),
    )
    packet = build_packet(
        message, source=COA, destination=HA, home_address=HOA, signer=signer, signature_len=255
    )
    assert len(received) == 1
    data = received[0]
    parsed = parse_ipv6_packet(packet)
    raw = parsed.mh.raw
    assert raw[4:6] != b"\x00\x00"  # the real checksum is non-zero here...
    assert data[4:6] == b"\x00\x00"  # ...but the signed data has it zeroed
    assert data[:4] == raw[:4] and data[6:] == raw[6 : len(data)]  # starts at Payload Proto
    # it ends right after the last CGA Parameters option: a Signature follows
    last_cga = [o for o in walk_mobility_options(raw, 12) if o[0] == 12][-1]
    assert len(data) == last_cga[1] + 2 + last_cga[2]
    assert raw[len(data)] == 13 and raw[len(data) + 1] == 255
    assert parsed.mh.signed_end == len(data)
    assert parsed.mh.signed_data() == data
    assert parsed.message.options.signature == SIG_2040
    assert parsed.message == with_signature(message, SIG_2040)


def with_signature(message, signature):
    return mh.with_options(message, signature=signature)


def test_signed_data_of_parsed_golden_bu_ends_after_last_cga_parameters():
    _, _, packet, signed_end, _ = golden_bu_cga_two_fragments()
    raw = packet[mh_offset(packet) :]
    signed = parse_ipv6_packet(packet).mh.signed_data()
    assert signed == raw[:4] + b"\x00\x00" + raw[6:334]
    assert signed_end == 334


def test_authenticator_receives_mh_up_to_authenticator_with_zero_checksum():
    """P9 / RFC 6275 §6.2.7: MH data excludes the Authenticator and has checksum zero;
    with P13's first CGA BU the signature is already in place when the
    authenticator is computed."""
    received = []

    def authenticator(data: bytes) -> bytes:
        received.append(data)
        return AUTH

    message = BindingUpdate(
        5, 75, options=MobilityOptions(cga_parameters=CGA_1024, nonce_indices=(0, 9))
    )
    packet = build_packet(
        message,
        source=COA,
        destination=HA,
        home_address=HOA,
        signer=lambda data: SIG_1024,
        signature_len=128,
        authenticator=authenticator,
    )
    assert len(received) == 1
    data = received[0]
    parsed = parse_ipv6_packet(packet)
    raw = parsed.mh.raw
    offset = parsed.mh.authenticator_offset
    assert offset == len(data)
    assert raw[offset - 2 : offset] == b"\x05\x0c"  # BAD type and length right before
    assert raw[offset:] == AUTH and len(raw) == offset + 12  # BAD is last, no trailing padding
    assert data[4:6] == b"\x00\x00" and raw[4:6] != b"\x00\x00"
    assert data[:4] == raw[:4] and data[6:] == raw[6:offset]
    assert SIG_1024 in data  # signature filled before the authenticator is computed
    assert parsed.mh.authorized_data() == data
    assert parsed.message.options.authenticator == AUTH
    assert parsed.message.options.signature == SIG_1024


def test_ba_answering_a_phkt_bu_is_authorized_by_callback_after_padn4():
    """P12: the BA of a PHKT refresh carries only the Binding Authorization
    Data, computed over the MH up to it with checksum zero."""
    received = []

    def authenticator(data: bytes) -> bytes:
        received.append(data)
        return AUTH

    packet = build_packet(
        BindingAck(status=0, sequence=0x1236, lifetime_units=150),
        source=HA,
        destination=COA,
        routing_address=HOA,
        authenticator=authenticator,
    )
    mh_bytes = hx(
        "3b 03 06 00",  # Payload Proto 59, Header Len 3 (32 octets), BA, Reserved
        "0000",  # Checksum
        "00",  # Status 0
        "00",  # K=0
        "1236",  # Sequence # (echoed)
        "0096",  # Lifetime 150
        "01 04 00000000",  # offset 12: PadN(4) -> BAD at 18 = 8*2 + 2
        "05 0c",
        AUTH.hex(),  # offset 18: Binding Authorization Data -> ends 32
    )
    assert received == [mh_bytes[:20]]
    mh_bytes = with_checksum(mh_bytes, HA, HOA)
    assert packet == ipv6_header(24 + 32, 43, HA_HEX, COA_HEX) + ROUTING_TYPE2 + mh_bytes


def test_explicit_authenticator_wins_over_callback():
    message = BindingUpdate(1, 1, options=MobilityOptions(authenticator=AUTH))
    packet = build_packet(
        message, source=COA, destination=HA, home_address=HOA, authenticator=lambda data: bytes(12)
    )
    assert parse_ipv6_packet(packet).message.options.authenticator == AUTH


def test_signed_and_authorized_data_raise_without_the_options():
    parsed = parse_ipv6_packet(golden_bu_alternate_coa()[2])
    with pytest.raises(ValueError):
        parsed.mh.signed_data()
    with pytest.raises(ValueError):
        parsed.mh.authorized_data()


def test_encoder_rejects_wrong_signer_and_authenticator_lengths():
    message = BindingUpdate(1, 1, options=MobilityOptions(cga_parameters=CGA_1024))
    with pytest.raises(ValueError):
        build_packet(
            message, source=COA, destination=HA, signer=lambda d: bytes(127), signature_len=128
        )
    with pytest.raises(ValueError):
        build_packet(message, source=COA, destination=HA)  # CGA Parameters without signature/signer
    with pytest.raises(ValueError):
        build_packet(
            BindingUpdate(1, 1), source=COA, destination=HA, authenticator=lambda d: bytes(11)
        )
    with pytest.raises(ValueError):
        build_packet(
            mh.with_options(BindingUpdate(1, 1), authenticator=bytes(16)),
            source=COA,
            destination=HA,
        )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(dict(alternate_coa=bytes(4)), id="alternate-coa-4-bytes"),
        pytest.param(dict(care_of_keygen_token=bytes(7)), id="care-of-keygen-token-7-bytes"),
        pytest.param(dict(permanent_home_keygen_token=b""), id="empty-phkt"),
        pytest.param(dict(cga_parameters=b"", signature=b"sig"), id="empty-cga-parameters"),
        pytest.param(dict(signature=b"sig"), id="signature-without-cga-parameters"),
    ],
)
def test_encoder_refuses_option_values_the_decoder_would_reject(changes):
    """The encoder validates cookies, addresses and the authenticator; option
    values must get the same treatment so that build -> parse cannot fail."""
    message = mh.with_options(BindingUpdate(1, 10), **changes)
    with pytest.raises(ValueError):
        build_packet(message, source=COA, destination=HA, home_address=HOA)


# ---------------------------------------------------------------- framing


def test_ethernet_frame_round_trip():
    message, kwargs, packet, _, _ = golden_bu_nonce_indices_and_authorization_data()
    frame = build_ethernet_frame(MAC_MN, MAC_DAR, packet)
    assert frame[:6] == MAC_DAR  # destination first (Ethernet II)
    assert frame[6:12] == MAC_MN
    assert frame[12:14] == b"\x86\xdd"
    assert frame[14:] == packet
    parsed = parse_ethernet_frame(frame)
    assert parsed == parse_ipv6_packet(packet)
    assert parsed.message == message


def test_ethernet_padding_beyond_ipv6_payload_length_is_ignored():
    """Frames are padded to 60 octets (plus FCS); IPv6 Payload Length bounds the packet."""
    message, _, packet, _, _ = golden_care_of_test_init()
    assert len(packet) == 56
    frame = build_ethernet_frame(MAC_MN, MAC_DAR, packet) + bytes(4) + b"\xde\xad\xbe\xef"
    parsed = parse_ethernet_frame(frame)
    assert parsed.message == message
    assert parsed.mh.raw == packet[40:]


def test_trailing_bytes_after_the_mh_within_the_payload_are_ignored():
    """RFC 8200 §4.7: data after a header with Next Header / Payload Proto 59 is ignored."""
    message, _, packet, _, _ = golden_be_unrecognized_mh_type()
    trailer = b"\xff" * 9
    longer = (
        packet[:4] + (len(packet) - 40 + len(trailer)).to_bytes(2, "big") + packet[6:] + trailer
    )
    parsed = parse_ipv6_packet(longer)
    assert parsed.message == message
    assert parsed.mh.raw == packet[40:]


def _bu_with_raw_options(options: bytes, mh_type: int = 5, fixed: bytes | None = None) -> bytes:
    if fixed is None:
        fixed = struct.pack("!HHH", 0x0101, 0xC000, 20)
    body = bytes([59, 0, mh_type, 0, 0, 0]) + fixed + options
    assert len(body) % 8 == 0
    body = body[:1] + bytes([len(body) // 8 - 1]) + body[2:]
    body = with_checksum(body, HOA, HA)
    return mh.build_ipv6_packet(COA, HA, body, home_address=HOA)


def test_unknown_mobility_options_are_skipped_and_reported():
    """§6.2.1: unrecognised option types are skipped; the known ones around them decode."""
    options = hx(
        "20 02 abcd",  # offset 12: unknown type 0x20, 2 data bytes
        "c8 00",  # offset 16: unknown type 200, empty
        "04 04 0000 0005",  # offset 18: Nonce Indices (0, 5)
        "09 05 0102030405",  # offset 24: type 9 (RFC 4285, not used here), 5 bytes -> 31
        "00",  # Pad1 -> 32
    )
    parsed = parse_ipv6_packet(_bu_with_raw_options(options))
    assert parsed.message.options.skipped_types == (0x20, 200, 9)
    assert parsed.message.options.nonce_indices == (0, 5)
    assert parsed.message.sequence == 0x0101


def test_unknown_options_are_skipped_in_a_binding_error_too():
    fixed = bytes([1, 0]) + HOA
    options = hx(
        "7f 04 00000000",  # offset 24: unknown type 0x7f -> 30
        "01 00",  # offset 30: PadN(0) -> 32
        "02 02 0005",  # offset 32 (2n): Binding Refresh Advice, 5 units -> 36
        "01 02 0000",  # offset 36: PadN(2) -> 40
    )
    packet = _bu_with_raw_options(options, mh_type=7, fixed=fixed)
    parsed = parse_ipv6_packet(packet)
    assert parsed.message == BindingError(
        1, HOA, MobilityOptions(skipped_types=(0x7F,), binding_refresh_interval_units=5)
    )


def test_unrecognised_routing_header_type_with_segments_left_zero_is_ignored():
    """RFC 8200 §4.4: an unknown routing type with Segments Left 0 is ignored;
    the pseudo-header then uses the IPv6 destination."""
    mh_bytes = with_checksum(hx("3b 01 02 00 0000 0000", COOKIE.hex()), COA, HA)
    routing = hx("87", "02", "00", "00", "00000000", ALT_HEX)  # type 0, segments left 0
    packet = ipv6_header(24 + 16, 43, COA_HEX, HA_HEX) + routing + mh_bytes
    parsed = parse_ipv6_packet(packet)
    assert parsed.routing_address is None
    assert parsed.message == CareOfTestInit(COOKIE)


def test_hop_by_hop_header_first_and_skippable_destination_option_are_accepted():
    """RFC 8200 §4.2: an unknown option whose two high bits are 00 is skipped."""
    mh_bytes = with_checksum(hx("3b 01 02 00 0000 0000", COOKIE.hex()), HOA, HA)
    hop_by_hop = hx("3c 00", "01 04 00000000")  # -> dest opts
    # Next Header 135, Hdr Ext Len 3 (32 octets), option 0x1e (00: skip), HAO at 6, PadN(6)
    dest_opts = hx("87 03", "1e 02 abcd", "c9 10", HOA_HEX, "01 06 000000000000")
    packet = ipv6_header(8 + 32 + 16, 0, COA_HEX, HA_HEX) + hop_by_hop + dest_opts + mh_bytes
    parsed = parse_ipv6_packet(packet)
    assert parsed.home_address == HOA
    assert parsed.message == CareOfTestInit(COOKIE)


def test_mobility_header_of_exactly_1024_octets_is_accepted():
    """The P8 size cap is MAX_MOBILITY_HEADER_LEN = 1024 octets, inclusive."""
    padding = hx("01 ff") + bytes(255)
    options = padding * 3 + hx("01 ef") + bytes(239)
    packet = _bu_with_raw_options(options)
    assert len(packet) - mh_offset(packet) == 1024
    assert parse_ipv6_packet(packet).message.sequence == 0x0101


def test_reserved_fields_are_ignored_by_the_receiver():
    """§6.1.1 / §6.1.7: Reserved fields MUST be ignored (MH reserved, BU reserved bits)."""
    mh_bytes = hx(
        "3b 01 05 7f 0000 0001 cfff 0010", "01 02 0000"
    )  # reserved MH byte and BU bits set
    packet = mh.build_ipv6_packet(COA, HA, with_checksum(mh_bytes, HOA, HA), home_address=HOA)
    message = parse_ipv6_packet(packet).message
    assert message == BindingUpdate(1, 0x10, ack=True, home_registration=True)


def test_lifetime_seconds_is_four_second_units():
    assert BindingUpdate(1, 150).lifetime_s == 600
    assert BindingAck(0, 1, 21600).lifetime_s == 86400


def test_parse_error_is_a_value_error_that_names_the_reason():
    with pytest.raises(MobilityParseError) as info:
        parse_ipv6_packet(b"\x60")
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("truncated_ipv6_header")
    assert info.value.reason is mh.RejectReason.TRUNCATED_IPV6_HEADER


def test_parse_mobility_header_can_skip_checksum_verification():
    _, _, packet, _, _ = golden_care_of_test()
    raw = bytearray(packet[40:])
    raw[4:6] = b"\x00\x00"
    header = mh.parse_mobility_header(
        bytes(raw), pseudo_source=HA, pseudo_destination=COA, verify_checksum=False
    )
    assert header.message == CareOfTest(7, COOKIE, TOKEN)
    assert header.mh_type is MHType.CARE_OF_TEST
    with pytest.raises(MobilityParseError):
        mh.parse_mobility_header(bytes(raw), pseudo_source=HA, pseudo_destination=COA)


def test_with_options_replaces_only_the_named_options():
    message = BindingUpdate(3, 4, options=MobilityOptions(nonce_indices=(1, 2)))
    changed = mh.with_options(message, authenticator=AUTH)
    assert changed.options == MobilityOptions(nonce_indices=(1, 2), authenticator=AUTH)
    assert replace(changed, options=mh.NO_OPTIONS) == BindingUpdate(3, 4)
