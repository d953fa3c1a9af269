"""Hypothesis properties of the Mobility Header codec (fama_ryu/mh.py).

* build -> parse is the identity on every message the encoder can represent
  (random types, fields, addresses, option subsets, CGA Parameters of 1..700
  bytes, explicit signatures and authenticators), the MH is a multiple of 8
  octets (RFC 6275 §6.1.1) and its checksum verifies;
* random corruption of valid packets, or random option TLVs, either parse or
  raise MobilityParseError, never any other exception.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fama_ryu import mh
from fama_ryu.mh import (
    BindingAck,
    BindingError,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    MobilityOptions,
    MobilityParseError,
    RejectReason,
    build_packet,
    mobility_checksum,
    parse_ipv6_packet,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.binary(min_size=16, max_size=16)
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)


def optional(strategy):
    return st.none() | strategy


@st.composite
def sized_binary(draw, lengths) -> bytes:
    size = draw(lengths)
    return draw(st.binary(min_size=size, max_size=size))


@st.composite
def mobility_options(draw) -> MobilityOptions:
    """A random subset of the options the encoder writes (skipped_types is
    parse-only).  A Signature only exists after CGA Parameters (P6)."""
    cga = signature = None
    if draw(st.booleans()):
        # lengths drawn explicitly so that multi-option CGA Parameters are common
        cga = draw(sized_binary(st.integers(1, 700)))
        signature = draw(sized_binary(st.integers(0, 255)))
    return MobilityOptions(
        binding_refresh_interval_units=draw(optional(u16)),
        alternate_coa=draw(optional(addresses)),
        nonce_indices=draw(optional(st.tuples(u16, u16))),
        authenticator=draw(optional(st.binary(min_size=12, max_size=12))),
        cga_parameters_request=draw(st.booleans()),
        cga_parameters=cga,
        signature=signature,
        permanent_home_keygen_token=draw(optional(sized_binary(st.integers(1, 255)))),
        care_of_test_init=draw(st.booleans()),
        care_of_keygen_token=draw(optional(st.binary(min_size=8, max_size=8))),
    )


def binding_updates(options):
    return st.builds(
        BindingUpdate,
        sequence=u16,
        lifetime_units=u16,
        ack=st.booleans(),
        home_registration=st.booleans(),
        link_local_compat=st.booleans(),
        key_management=st.booleans(),
        options=options,
    )


EIGHT = st.binary(min_size=8, max_size=8)
MESSAGES = {
    "BU": binding_updates(mobility_options()),
    "BA": st.builds(
        BindingAck,
        status=u8,
        sequence=u16,
        lifetime_units=u16,
        key_management=st.booleans(),
        options=mobility_options(),
    ),
    "BE": st.builds(BindingError, status=u8, home_address=addresses, options=mobility_options()),
    "CoTI": st.builds(CareOfTestInit, cookie=EIGHT, options=mobility_options()),
    "CoT": st.builds(
        CareOfTest, nonce_index=u16, cookie=EIGHT, keygen_token=EIGHT, options=mobility_options()
    ),
}


@st.composite
def framings(draw) -> dict:
    return dict(
        source=draw(addresses),
        destination=draw(addresses),
        home_address=draw(optional(addresses)),
        routing_address=draw(optional(addresses)),
        hop_limit=draw(u8),
    )


def mh_start(packet: bytes) -> int:
    next_header, offset = packet[6], 40
    while next_header != 135:
        next_header, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
    return offset


@pytest.mark.parametrize("kind", list(MESSAGES))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), framing=framings())
def test_build_then_parse_is_the_identity(kind, data, framing):
    message = data.draw(MESSAGES[kind], label="message")
    packet = build_packet(message, **framing)
    raw = packet[mh_start(packet) :]
    assert len(raw) % 8 == 0
    assert raw[1] == len(raw) // 8 - 1
    event(f"oversized={len(raw) > mh.MAX_MOBILITY_HEADER_LEN}")
    event(f"cga options={-(-len(message.options.cga_parameters or b'') // 255)}")
    if len(raw) > mh.MAX_MOBILITY_HEADER_LEN:
        # Over the P8 size cap: the encoder builds it, the parser refuses it.
        try:
            parse_ipv6_packet(packet)
        except MobilityParseError as error:
            assert error.reason is RejectReason.OVERSIZED
        else:
            raise AssertionError("oversized MH accepted")
        return
    parsed = parse_ipv6_packet(packet)
    assert parsed.message == message
    assert parsed.mh.raw == raw
    assert (parsed.source, parsed.destination, parsed.hop_limit) == (
        framing["source"],
        framing["destination"],
        framing["hop_limit"],
    )
    assert parsed.home_address == framing["home_address"]
    assert parsed.routing_address == framing["routing_address"]
    # RFC 6275 §6.1.1: pseudo-header with HoA / RH2 address; sum over the MH is 0
    assert mobility_checksum(parsed.pseudo_source, parsed.pseudo_destination, raw) == 0
    zeroed = raw[:4] + b"\x00\x00" + raw[6:]
    assert mobility_checksum(
        parsed.pseudo_source, parsed.pseudo_destination, zeroed
    ) == int.from_bytes(raw[4:6], "big")
    options = message.options
    if options.authenticator is not None:
        # §6.2.7: BAD is last, at 8n+2, no trailing padding
        assert parsed.mh.authenticator_offset == len(raw) - 12
        assert (parsed.mh.authenticator_offset - 2) % 8 == 2
        assert raw[-12:] == options.authenticator
    if options.cga_parameters is not None:
        # P6: the signed data ends where the Signature option starts
        assert raw[parsed.mh.signed_end] == mh.OptionType.SIGNATURE
        assert parsed.mh.signed_data()[4:6] == b"\x00\x00"


@settings(max_examples=60, deadline=None)
@given(
    sequence=u16,
    cga=st.binary(min_size=1, max_size=700),
    signature_len=st.integers(1, 255),
    nonce=optional(st.tuples(u16, u16)),
    framing=framings(),
)
def test_signer_and_authenticator_callbacks_round_trip(
    sequence, cga, signature_len, nonce, framing
):
    """P6/P9: the callbacks get exactly signed_data() / authorized_data() of the result."""
    seen = {}

    def signer(data: bytes) -> bytes:
        seen["signed"] = data
        return bytes([signature_len % 256]) * signature_len

    def authenticator(data: bytes) -> bytes:
        seen["authorized"] = data
        return (data[-12:] + bytes(12))[:12]

    message = BindingUpdate(
        sequence, 10, options=MobilityOptions(cga_parameters=cga, nonce_indices=nonce)
    )
    packet = build_packet(
        message, signer=signer, signature_len=signature_len, authenticator=authenticator, **framing
    )
    parsed = parse_ipv6_packet(packet)
    assert parsed.mh.signed_data() == seen["signed"]
    assert parsed.mh.authorized_data() == seen["authorized"]
    assert parsed.message.options.cga_parameters == cga
    assert parsed.message.options.signature == bytes([signature_len % 256]) * signature_len
    assert parsed.message.options.nonce_indices == nonce


# ---------------------------------------------------------------- robustness


def fix_checksum(packet: bytes) -> bytes:
    """Recompute the MH checksum after a mutation (see test_mh_rejections);
    a packet whose chain cannot be walked any more is returned unchanged."""
    data = bytearray(packet)
    if len(data) < 40:
        return packet
    end = min(40 + int.from_bytes(data[4:6], "big"), len(data))
    source, destination = bytes(data[8:24]), bytes(data[24:40])
    next_header, offset = data[6], 40
    while next_header in (0, 43, 60):
        if offset + 2 > end:
            return packet
        length = (data[offset + 1] + 1) * 8
        if next_header == 43 and offset + 24 <= end and data[offset + 2] == 2:
            destination = bytes(data[offset + 8 : offset + 24])
        elif next_header in (0, 60):
            position = offset + 2
            while position + 2 <= min(offset + length, end):
                if data[position] == 0:
                    position += 1
                    continue
                if data[position] == 0xC9 and position + 18 <= end:
                    source = bytes(data[position + 2 : position + 18])
                position += 2 + data[position + 1]
        next_header, offset = data[offset], offset + length
    if next_header != 135 or offset + 6 > end:
        return packet
    mh_end = min(offset + (data[offset + 1] + 1) * 8, end)
    data[offset + 4 : offset + 6] = b"\x00\x00"
    data[offset + 4 : offset + 6] = mobility_checksum(
        source, destination, bytes(data[offset:mh_end])
    ).to_bytes(2, "big")
    return bytes(data)


HA = bytes.fromhex("20010db8000100000000000000000001")
HOA = bytes.fromhex("20010db8000100000000000000000100")
COA = bytes.fromhex("20010db8000200000000000000000100")

SEED_PACKETS = [
    build_packet(
        BindingUpdate(
            7,
            150,
            options=MobilityOptions(
                alternate_coa=COA,
                cga_parameters=bytes(range(256)) * 1 + bytes(62),
                signature=bytes(range(128)),
                nonce_indices=(0, 3),
                authenticator=bytes(12),
            ),
        ),
        source=COA,
        destination=HA,
        home_address=HOA,
    ),
    build_packet(
        BindingAck(
            0,
            7,
            150,
            options=MobilityOptions(
                permanent_home_keygen_token=bytes(128), authenticator=bytes(12)
            ),
        ),
        source=HA,
        destination=COA,
        routing_address=HOA,
    ),
    build_packet(BindingError(2, HOA), source=HA, destination=COA),
    build_packet(CareOfTest(1, bytes(8), bytes(8)), source=HA, destination=COA),
    build_packet(
        CareOfTestInit(bytes(8)), source=COA, destination=HA, home_address=HOA, routing_address=HA
    ),
]


def parse_or_reject(packet: bytes) -> None:
    """The property: MobilityParseError or a consistent parse, nothing else."""
    try:
        parsed = parse_ipv6_packet(packet)
    except MobilityParseError as error:
        assert isinstance(error.reason, RejectReason)
        return
    raw = parsed.mh.raw
    assert len(raw) % 8 == 0 and len(raw) <= mh.MAX_MOBILITY_HEADER_LEN
    assert mobility_checksum(parsed.pseudo_source, parsed.pseudo_destination, raw) == 0
    if parsed.mh.authenticator_offset is not None:
        assert parsed.mh.authenticator_offset + 12 == len(raw)
        assert parsed.mh.authorized_data()[4:6] == b"\x00\x00"
    if parsed.mh.signed_end is not None:
        assert parsed.mh.signed_end <= len(raw)
        assert len(parsed.mh.signed_data()) == parsed.mh.signed_end


mutations = st.lists(st.tuples(st.integers(0, 10_000), u8), min_size=1, max_size=6)


@FAST
@given(seed=st.sampled_from(SEED_PACKETS), changes=mutations, recompute=st.booleans())
def test_random_byte_mutations_parse_or_raise_mobility_parse_error(seed, changes, recompute):
    data = bytearray(seed)
    for index, value in changes:
        data[index % len(data)] = value
    packet = bytes(data)
    if recompute:
        packet = fix_checksum(packet)  # let the mutation reach the checks after the checksum
    parse_or_reject(packet)


@FAST
@given(seed=st.sampled_from(SEED_PACKETS), cut=st.integers(0, 2000), extra=st.binary(max_size=16))
def test_truncated_or_extended_packets_parse_or_raise_mobility_parse_error(seed, cut, extra):
    parse_or_reject(seed[: cut % (len(seed) + 1)] + extra)


# Option TLVs biased toward the types the codec knows, with random lengths.
option_tlvs = st.lists(
    st.one_of(
        st.just(b"\x00"),
        st.builds(
            lambda option_type, data: bytes([option_type, len(data)]) + data,
            st.one_of(st.integers(0, 17), u8),
            st.binary(max_size=40),
        ),
    ),
    max_size=12,
).map(b"".join)


@FAST
@given(mh_type=st.integers(0, 9), options=option_tlvs, proto=st.sampled_from([59, 59, 59, 6]))
def test_random_option_sequences_parse_or_raise_mobility_parse_error(mh_type, options, proto):
    fixed_len = {0: 2, 1: 10, 2: 10, 3: 18, 4: 18, 5: 6, 6: 6, 7: 18}.get(mh_type, 2)
    body = bytes([proto, 0, mh_type, 0, 0, 0]) + bytes(fixed_len) + options
    body += bytes((-len(body)) % 8)  # Pad1s up to 8n
    body = body[:1] + bytes([len(body) // 8 - 1]) + body[2:]
    checksum = mobility_checksum(COA, HA, body)
    body = body[:4] + struct.pack("!H", checksum) + body[6:]
    packet = mh.build_ipv6_packet(COA, HA, body)
    parse_or_reject(packet)
