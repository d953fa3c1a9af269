"""The Mobility Header codec's fast paths agree with its general ones (fama_ryu/mh.py).

* the checksum (addresses and data read as one integer, folded modulo
  0xFFFF) equals a word-by-word RFC 1071 sum, for any data length and the
  all-zero edge;
* a PHKT-authenticated Binding Update (the layout of every refresh) is
  decoded by the fast path into exactly what the general decoder gives;
  after any single-byte change, truncation or extension the fast path either
  declines or still agrees, and the public parsers give the general
  decoder's result or its exact rejection (reason, pointer, home address);
* a Binding Acknowledgement with no options, with or without authorization
  data, is encoded by the fast path into the general encoder's bytes, the
  authenticator sees the same MH data, and what the general encoder refuses
  is refused with the same message.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fama_ryu import mh
from fama_ryu.mh import (
    BindingAck,
    BindingUpdate,
    MobilityOptions,
    MobilityParseError,
    build_ethernet_frame,
    build_packet,
    parse_ethernet_frame,
    parse_ipv6_packet,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.binary(min_size=16, max_size=16)
authenticators = st.binary(min_size=12, max_size=12)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)


def rfc1071_checksum(source: bytes, destination: bytes, next_header: int, data: bytes) -> int:
    """Word-by-word RFC 1071 over the RFC 8200 §8.1 pseudo-header and the data."""
    pseudo = source + destination + len(data).to_bytes(4, "big") + bytes(3) + bytes([next_header])
    words = pseudo + data + bytes(len(data) % 2)
    total = 0
    for index in range(0, len(words), 2):
        total += (words[index] << 8) | words[index + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


# ---------------------------------------------------------------- checksum


@SETTINGS
@given(
    source=addresses | st.just(bytes(16)),
    destination=addresses | st.just(bytes(16)),
    next_header=u8,
    data=st.binary(max_size=300) | st.integers(0, 80).map(bytes) | st.just(b"\xff" * 40),
)
def test_checksum_equals_the_word_by_word_sum(
    source: bytes, destination: bytes, next_header: int, data: bytes
) -> None:
    expected = rfc1071_checksum(source, destination, next_header, data)
    assert mh.upper_layer_checksum(source, destination, next_header, data) == expected


def test_checksum_of_an_all_zero_input_is_all_ones() -> None:
    # The one's complement sum of nothing is 0 (not 0xFFFF): its complement is 0xFFFF.
    assert mh.upper_layer_checksum(bytes(16), bytes(16), 0, b"") == 0xFFFF
    assert rfc1071_checksum(bytes(16), bytes(16), 0, b"") == 0xFFFF


@SETTINGS
@given(source=addresses, destination=addresses, data=st.binary(min_size=6, max_size=64))
def test_data_carrying_its_checksum_sums_to_zero(
    source: bytes, destination: bytes, data: bytes
) -> None:
    zeroed = data[:4] + b"\x00\x00" + data[6:]
    checksum = mh.mobility_checksum(source, destination, zeroed)
    filled = zeroed[:4] + checksum.to_bytes(2, "big") + zeroed[6:]
    assert mh.mobility_checksum(source, destination, filled) == 0


# ---------------------------------------------------------------- authorized BU


@st.composite
def authorized_binding_updates(draw) -> bytes:
    """A BU as a bound MN sends it away from home: HAO, then only the authorization data."""
    message = BindingUpdate(
        sequence=draw(u16),
        lifetime_units=draw(u16),
        ack=draw(st.booleans()),
        home_registration=draw(st.booleans()),
        link_local_compat=draw(st.booleans()),
        key_management=draw(st.booleans()),
        options=MobilityOptions(authenticator=draw(authenticators)),
    )
    return build_packet(
        message,
        source=draw(addresses),
        destination=draw(addresses),
        home_address=draw(addresses),
        hop_limit=draw(u8),
    )


def general_outcome(packet: bytes) -> mh.MobilityPacket | tuple[object, ...]:
    try:
        return mh._parse_any_ipv6_packet(packet)
    except MobilityParseError as error:
        return error.reason, error.pointer, error.home_address, str(error)


def public_outcome(packet: bytes) -> mh.MobilityPacket | tuple[object, ...]:
    try:
        return parse_ipv6_packet(packet)
    except MobilityParseError as error:
        return error.reason, error.pointer, error.home_address, str(error)


@SETTINGS
@given(packet=authorized_binding_updates())
def test_fast_decoder_takes_every_authorized_bu_and_agrees(packet: bytes) -> None:
    fast = mh._parse_authorized_binding_update(packet, 0)
    assert fast is not None
    general = mh._parse_any_ipv6_packet(packet)
    assert fast == general
    assert vars(fast.mh.message.options) == vars(general.mh.message.options)
    assert fast.mh.authorized_data() == general.mh.authorized_data()
    assert all(
        type(value) is bytes
        for value in (fast.source, fast.destination, fast.home_address, fast.mh.raw)
    )
    frame = build_ethernet_frame(b"\x02" * 6, b"\x04" * 6, packet)
    assert mh._parse_authorized_binding_update(frame, 14) == general
    assert parse_ethernet_frame(frame) == general


@SETTINGS
@given(packet=authorized_binding_updates(), data=st.data())
def test_a_changed_authorized_bu_is_declined_or_decoded_alike(
    packet: bytes, data: st.DataObject
) -> None:
    change = data.draw(st.sampled_from(["byte", "truncate", "extend"]))
    if change == "byte":
        index = data.draw(st.integers(0, len(packet) - 1))
        changed = packet[:index] + bytes([data.draw(u8)]) + packet[index + 1 :]
    elif change == "truncate":
        changed = packet[: data.draw(st.integers(0, len(packet) - 1))]
    else:
        changed = packet + data.draw(st.binary(min_size=1, max_size=16))
    fast = mh._parse_authorized_binding_update(changed, 0)
    general = general_outcome(changed)
    if fast is not None:
        assert fast == general
    assert public_outcome(changed) == general


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (4 + 64, 0x00, mh.RejectReason.BAD_CHECKSUM),  # checksum byte
        (0, 0x40, mh.RejectReason.NOT_IPV6),  # version 4
        (5, 57, mh.RejectReason.PAYLOAD_LENGTH_PAST_END),  # payload length 57
    ],
)
def test_a_rejected_authorized_bu_gets_the_general_rejection(
    offset: int, value: int, reason: mh.RejectReason
) -> None:
    packet = build_packet(
        BindingUpdate(7, 100, options=MobilityOptions(authenticator=bytes(range(12)))),
        source=b"\x20" + bytes(15),
        destination=b"\x20" + bytes(14) + b"\x01",
        home_address=b"\x20" + bytes(14) + b"\x02",
    )
    if packet[offset] == value:
        value ^= 0xFF
    changed = packet[:offset] + bytes([value]) + packet[offset + 1 :]
    assert mh._parse_authorized_binding_update(changed, 0) is None
    with pytest.raises(MobilityParseError) as raised:
        parse_ipv6_packet(changed)
    assert raised.value.reason is reason


# ---------------------------------------------------------------- bare BA


def recording(value: bytes, seen: list[bytes]) -> mh.Authenticator:
    def authenticator(mh_data: bytes) -> bytes:
        seen.append(mh_data)
        return value

    return authenticator


@SETTINGS
@given(
    status=u8,
    sequence=u16,
    lifetime=u16,
    key_management=st.booleans(),
    pseudo_source=addresses,
    pseudo_destination=addresses,
    value=st.none() | authenticators,
)
def test_fast_ack_encoder_writes_the_general_encoders_bytes(
    status: int,
    sequence: int,
    lifetime: int,
    key_management: bool,
    pseudo_source: bytes,
    pseudo_destination: bytes,
    value: bytes | None,
) -> None:
    ack = BindingAck(status, sequence, lifetime, key_management)
    assert ack.options is mh.NO_OPTIONS
    seen_fast: list[bytes] = []
    seen_general: list[bytes] = []
    fast = mh._encode_bare_ack(
        ack,
        pseudo_source,
        pseudo_destination,
        None if value is None else recording(value, seen_fast),
    )
    general = mh._encode_any_mobility_header(
        ack,
        pseudo_source=pseudo_source,
        pseudo_destination=pseudo_destination,
        signer=None,
        signature_len=0,
        authenticator=None if value is None else recording(value, seen_general),
    )
    assert fast == general
    assert seen_fast == seen_general
    public = mh.encode_mobility_header(
        ack,
        pseudo_source=pseudo_source,
        pseudo_destination=pseudo_destination,
        authenticator=None if value is None else recording(value, []),
    )
    assert public == general


@SETTINGS
@given(
    status=u8,
    sequence=u16,
    source=addresses,
    destination=addresses,
    routing_address=st.none() | addresses,
    value=st.none() | authenticators,
)
def test_built_bare_ack_packet_equals_the_general_composition(
    status: int,
    sequence: int,
    source: bytes,
    destination: bytes,
    routing_address: bytes | None,
    value: bytes | None,
) -> None:
    ack = BindingAck(status, sequence, 0)
    authenticator = None if value is None else recording(value, [])
    general_mh = mh._encode_any_mobility_header(
        ack,
        pseudo_source=source,
        pseudo_destination=destination if routing_address is None else routing_address,
        signer=None,
        signature_len=0,
        authenticator=authenticator,
    )
    expected = mh.build_ipv6_packet(
        source, destination, general_mh, routing_address=routing_address
    )
    packet = build_packet(
        ack,
        source=source,
        destination=destination,
        routing_address=routing_address,
        authenticator=authenticator,
    )
    assert packet == expected
    parsed = parse_ipv6_packet(packet)
    assert parsed.message == BindingAck(
        status, sequence, 0, options=MobilityOptions(authenticator=value)
    )


def test_fast_ack_encoder_takes_only_bas_without_options() -> None:
    address = bytes(16)
    equal_options = MobilityOptions()  # equal to NO_OPTIONS, but another object
    for message in (
        BindingAck(0, 1, 1, options=equal_options),
        BindingAck(0, 1, 1, options=MobilityOptions(permanent_home_keygen_token=b"x")),
        BindingUpdate(1, 1),
    ):
        assert mh._encode_bare_ack(message, address, address, None) is None
        encoded = mh.encode_mobility_header(
            message, pseudo_source=address, pseudo_destination=address
        )
        general = mh._encode_any_mobility_header(
            message,
            pseudo_source=address,
            pseudo_destination=address,
            signer=None,
            signature_len=0,
            authenticator=None,
        )
        assert encoded == general


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((256, 1, 1), "status 256 does not fit 8 bits"),
        ((-1, 1, 1), "status -1 does not fit 8 bits"),
        ((0, 1 << 16, 1), "sequence number 65536 does not fit 16 bits"),
        ((0, 1, -1), "lifetime -1 does not fit 16 bits"),
    ],
)
def test_fast_ack_encoder_leaves_refusals_to_the_general_one(
    fields: tuple[int, int, int], message: str
) -> None:
    ack = BindingAck(*fields)
    address = bytes(16)
    assert mh._encode_bare_ack(ack, address, address, None) is None
    with pytest.raises(ValueError, match=message):
        mh.encode_mobility_header(ack, pseudo_source=address, pseudo_destination=address)


@pytest.mark.parametrize("length", [0, 11, 13, 20])
def test_fast_ack_encoder_refuses_a_wrong_authenticator_length(length: int) -> None:
    address = bytes(16)
    with pytest.raises(ValueError, match=f"authenticator of {length} bytes"):
        mh.encode_mobility_header(
            BindingAck(0, 1, 1),
            pseudo_source=address,
            pseudo_destination=address,
            authenticator=lambda _: bytes(length),
        )
