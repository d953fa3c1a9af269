"""Cross-checks of fama_ryu/mh.py against scapy's Mobile IPv6 layers (both ways).

scapy is a test-only dependency: the controller never imports it (see the
codec docstring).  Traps (PLATFORM notes, scapy 2.8.0 source):
* ``MIP6MH_BU`` defaults to flags "KHA" and mhtime 3, ``MIP6MH_BA`` to flags
  "K", ``MIP6OptNonceIndices`` and ``MIP6OptBindingAuthData`` to olen 16:
  every field is set explicitly below.
* ``in6_pseudoheader`` takes the HoA from a destination options header only
  when its option list is exactly ``[HAO]``; a dissected header holds
  ``[PadN, HAO]``, so a checksum scapy recomputes there uses the CoA.
  Checksums are therefore always verified with the codec's parser /
  ``mobility_checksum``.
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptCareOfTest,
    MIP6OptCareOfTestInit,
    MIP6OptCGAParams,
    MIP6OptCGAParamsReq,
    MIP6OptHomeKeygenToken,
    MIP6OptNonceIndices,
    MIP6OptSignature,
    Pad1,
    PadN,
)
from scapy.packet import Padding, Raw

from fama_ryu import mh
from fama_ryu.mh import (
    BindingAck,
    BindingError,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    MobilityOptions,
    build_packet,
    mobility_checksum,
    parse_ipv6_packet,
)

# Literal addresses only (an invalid string would make scapy try DNS).
HA_S, HOA_S, COA_S, ALT_S = "2001:db8:1::1", "2001:db8:1::100", "2001:db8:2::100", "2001:db8:3::100"
HA, HOA, COA, ALT = (ipaddress.IPv6Address(a).packed for a in (HA_S, HOA_S, COA_S, ALT_S))

CGA_2040 = bytes((i * 13 + 5) % 256 for i in range(318))  # P8: two CGA Parameters options
SIG_255 = bytes((i * 3) % 256 for i in range(255))
CGA_1024 = bytes((i * 7 + 1) % 256 for i in range(187))
SIG_128 = bytes(range(128, 256))
AUTH = bytes(range(0xB0, 0xBC))
PHKT = bytes(range(128))
COOKIE = bytes.fromhex("c1c2c3c4c5c6c7c8")
TOKEN = bytes.fromhex("d1d2d3d4d5d6d7d8")


def auth_int(value: bytes) -> int:
    """scapy's MIP6OptBindingAuthData holds the authenticator as a 96-bit int."""
    return int.from_bytes(value, "big")


def non_padding(options) -> list:
    return [o for o in options if not isinstance(o, (Pad1, PadN))]


def assert_no_leftover_layers(packet) -> None:
    assert not packet.haslayer(Raw)
    assert not packet.haslayer(Padding)


# ---------------------------------------------------------------- scapy -> codec


def scapy_first_bu():
    """P6 + P13 first BU, options in the codec's canonical order."""
    return (
        IPv6(src=COA_S, dst=HA_S, hlim=64)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA_S)])
        / MIP6MH_BU(
            seq=0x1234,
            flags="AH",
            mhtime=150,
            options=[
                MIP6OptCGAParamsReq(),
                MIP6OptCareOfTestInit(),
                MIP6OptAltCoA(acoa=ALT_S),
                MIP6OptCGAParams(cgaparams=CGA_2040[:255]),
                MIP6OptCGAParams(cgaparams=CGA_2040[255:]),
                MIP6OptSignature(sig=SIG_255),
                MIP6OptNonceIndices(olen=4, hni=0, coni=7),
                MIP6OptBindingAuthData(olen=12, authenticator=auth_int(AUTH)),
            ],
        )
    )


FIRST_BU = BindingUpdate(
    sequence=0x1234,
    lifetime_units=150,
    options=MobilityOptions(
        cga_parameters_request=True,
        care_of_test_init=True,
        alternate_coa=ALT,
        cga_parameters=CGA_2040,
        signature=SIG_255,
        nonce_indices=(0, 7),
        authenticator=AUTH,
    ),
)


def test_scapy_first_bu_parses_to_the_same_fields():
    parsed = parse_ipv6_packet(bytes(scapy_first_bu()))  # scapy's checksum verified here
    assert parsed.message == FIRST_BU
    assert parsed.source == COA and parsed.destination == HA
    assert parsed.home_address == HOA and parsed.routing_address is None


def test_scapy_first_bu_is_byte_identical_to_the_codec_encoding():
    """Same canonical option order and RFC 6275 alignment padding -> same bytes."""
    ours = build_packet(FIRST_BU, source=COA, destination=HA, home_address=HOA)
    assert bytes(scapy_first_bu()) == ours


def test_scapy_bu_with_one_cga_fragment_and_flags_l_k():
    packet = (
        IPv6(src=COA_S, dst=HA_S)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA_S)])
        / MIP6MH_BU(
            seq=1,
            flags="HLK",
            mhtime=0,
            options=[MIP6OptCGAParams(cgaparams=CGA_1024), MIP6OptSignature(sig=SIG_128)],
        )
    )
    message = parse_ipv6_packet(bytes(packet)).message
    assert message == BindingUpdate(
        1,
        0,
        ack=False,
        home_registration=True,
        link_local_compat=True,
        key_management=True,
        options=MobilityOptions(cga_parameters=CGA_1024, signature=SIG_128),
    )


def test_scapy_bu_with_options_in_another_order_parses():
    """The parser does not require the encoder's order: BAD last is the only rule."""
    packet = (
        IPv6(src=COA_S, dst=HA_S)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA_S)])
        / MIP6MH_BU(
            seq=0xFFFF,
            flags="AH",
            mhtime=0xFFFF,
            options=[
                MIP6OptNonceIndices(olen=4, hni=3, coni=4),
                MIP6OptAltCoA(acoa=ALT_S),
                MIP6OptBindingAuthData(olen=12, authenticator=auth_int(AUTH)),
            ],
        )
    )
    assert parse_ipv6_packet(bytes(packet)).message == BindingUpdate(
        0xFFFF,
        0xFFFF,
        options=MobilityOptions(nonce_indices=(3, 4), alternate_coa=ALT, authenticator=AUTH),
    )


def test_scapy_bu_with_explicit_padn_before_hao_needs_checksum_recomputed():
    """With an explicit [PadN, HAO] list scapy's pseudo-header uses the CoA
    (in6_pseudoheader only honours a lone HAO), so its checksum is wrong for
    RFC 6275 §6.1.1; recompute it with mobility_checksum over HoA/A_HDAR."""
    packet = (
        IPv6(src=COA_S, dst=HA_S)
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00"), HAO(hoa=HOA_S)])
        / MIP6MH_BU(seq=9, flags="AH", mhtime=10, options=[])
    )
    data = bytearray(bytes(packet))
    mh_bytes = bytearray(data[64:])
    mh_bytes[4:6] = b"\x00\x00"
    data[68:70] = mobility_checksum(HOA, HA, bytes(mh_bytes)).to_bytes(2, "big")
    parsed = parse_ipv6_packet(bytes(data))
    assert parsed.message == BindingUpdate(9, 10)
    assert parsed.home_address == HOA
    # apart from the checksum, the explicit PadN gives the same bytes as autopad
    lone_hao = (
        IPv6(src=COA_S, dst=HA_S)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA_S)])
        / MIP6MH_BU(seq=9, flags="AH", mhtime=10, options=[])
    )
    assert bytes(data) == bytes(lone_hao)


def scapy_ba(options, status=0, flags=0, seq=0x1234, mhtime=150):
    return (
        IPv6(src=HA_S, dst=COA_S)
        / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA_S])
        / MIP6MH_BA(status=status, flags=flags, seq=seq, mhtime=mhtime, options=options)
    )


def test_scapy_ba_with_phkt_and_authorization_data_parses():
    """P12: BA with RH2 (checksum over A_HDAR / HoA), PHKT, BAD last."""
    packet = scapy_ba(
        [
            MIP6OptHomeKeygenToken(hkt=PHKT),
            MIP6OptBindingAuthData(olen=12, authenticator=auth_int(AUTH)),
        ]
    )
    parsed = parse_ipv6_packet(bytes(packet))
    expected = BindingAck(
        0,
        0x1234,
        150,
        options=MobilityOptions(permanent_home_keygen_token=PHKT, authenticator=AUTH),
    )
    assert parsed.message == expected
    assert parsed.routing_address == HOA and parsed.home_address is None
    assert bytes(packet) == build_packet(expected, source=HA, destination=COA, routing_address=HOA)


def test_scapy_ba_with_care_of_test_refresh_advice_and_k_flag_parses():
    packet = scapy_ba(
        [MIP6OptBRAdvice(rinter=30), MIP6OptCareOfTest(cokt=TOKEN)], status=137, flags="K", seq=3
    )
    assert parse_ipv6_packet(bytes(packet)).message == BindingAck(
        137,
        3,
        150,
        key_management=True,
        options=MobilityOptions(binding_refresh_interval_units=30, care_of_keygen_token=TOKEN),
    )


def test_scapy_ba_status_135_plain_parses():
    packet = scapy_ba([], status=135, seq=0x1233, mhtime=0)
    assert parse_ipv6_packet(bytes(packet)).message == BindingAck(135, 0x1233, 0)


def test_scapy_binding_error_parses():
    packet = IPv6(src=HA_S, dst=COA_S) / MIP6MH_BE(status=2, ha=HOA_S)
    parsed = parse_ipv6_packet(bytes(packet))
    assert parsed.message == BindingError(2, HOA)


def test_scapy_care_of_test_init_parses():
    packet = IPv6(src=COA_S, dst=HA_S) / MIP6MH_CoTI(cookie=COOKIE)
    assert parse_ipv6_packet(bytes(packet)).message == CareOfTestInit(COOKIE)


def test_scapy_care_of_test_parses():
    packet = IPv6(src=HA_S, dst=COA_S) / MIP6MH_CoT(index=0x0102, cookie=COOKIE, token=TOKEN)
    assert parse_ipv6_packet(bytes(packet)).message == CareOfTest(0x0102, COOKIE, TOKEN)


def test_scapy_default_bad_length_16_is_rejected():
    """scapy's MIP6OptBindingAuthData defaults to olen 16 with 12 data octets:
    a malformed option the codec must refuse (§6.2.7, 96-bit authenticator)."""
    packet = (
        IPv6(src=COA_S, dst=HA_S)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA_S)])
        / MIP6MH_BU(seq=1, flags="AH", mhtime=1, options=[MIP6OptBindingAuthData()])
    )
    with pytest.raises(mh.MobilityParseError) as info:
        parse_ipv6_packet(bytes(packet))
    # BAD at MH offset 18, claimed data end 18 + 2 + 16 = 36 > MH length 32
    assert info.value.reason is mh.RejectReason.OPTION_TRUNCATED
    assert info.value.pointer == 64 + 19


# ---------------------------------------------------------------- codec -> scapy


def rebuilt_with_scapy_checksum(dissected) -> bytes:
    """Have scapy recompute the MH checksum of a dissected packet.  A
    dissected HAO header is [PadN, HAO]: reset it to [HAO] so that scapy's
    pseudo-header takes the HoA (autopad re-inserts the same PadN)."""
    copy = dissected.copy()
    if copy.haslayer(IPv6ExtHdrDestOpt):
        options = copy[IPv6ExtHdrDestOpt].options
        copy[IPv6ExtHdrDestOpt].options = [o for o in options if isinstance(o, HAO)]
    layer = copy.lastlayer()
    layer.cksum = None
    return bytes(copy)


def test_codec_first_bu_dissects_in_scapy():
    ours = build_packet(FIRST_BU, source=COA, destination=HA, home_address=HOA, hop_limit=255)
    d = IPv6(ours)
    assert_no_leftover_layers(d)
    assert (d.src, d.dst, d.hlim, d.plen) == (COA_S, HA_S, 255, len(ours) - 40)
    assert [type(o) for o in d[IPv6ExtHdrDestOpt].options] == [PadN, HAO]
    assert d[HAO].hoa == HOA_S
    bu = d[MIP6MH_BU]
    assert (bu.nh, bu.mhtype, bu.seq, bu.mhtime, bu.len) == (
        59,
        5,
        0x1234,
        150,
        len(ours[64:]) // 8 - 1,
    )
    assert (bu.flags.A, bu.flags.H, bu.flags.L, bu.flags.K) == (True, True, False, False)
    options = non_padding(bu.options)
    assert [type(o) for o in options] == [
        MIP6OptCGAParamsReq,
        MIP6OptCareOfTestInit,
        MIP6OptAltCoA,
        MIP6OptCGAParams,
        MIP6OptCGAParams,
        MIP6OptSignature,
        MIP6OptNonceIndices,
        MIP6OptBindingAuthData,
    ]
    assert options[2].acoa == ALT_S
    assert [o.olen for o in options[3:5]] == [255, 63]
    assert options[3].cgaparams + options[4].cgaparams == CGA_2040
    assert options[5].sig == SIG_255
    assert (options[6].olen, options[6].hni, options[6].coni) == (4, 0, 7)
    assert options[7].olen == 12
    assert options[7].authenticator.to_bytes(12, "big") == AUTH
    assert rebuilt_with_scapy_checksum(d) == ours


def test_codec_ba_dissects_in_scapy_with_routing_header_type_2():
    message = BindingAck(
        0,
        0x4321,
        21600,
        key_management=True,
        options=MobilityOptions(
            binding_refresh_interval_units=100,
            care_of_keygen_token=TOKEN,
            permanent_home_keygen_token=PHKT,
            authenticator=AUTH,
        ),
    )
    ours = build_packet(message, source=HA, destination=COA, routing_address=HOA)
    d = IPv6(ours)
    assert_no_leftover_layers(d)
    routing = d[IPv6ExtHdrRouting]
    assert (routing.type, routing.segleft, routing.len, routing.addresses) == (2, 1, 2, [HOA_S])
    ba = d[MIP6MH_BA]
    assert (ba.mhtype, ba.status, ba.seq, ba.mhtime, bool(ba.flags.K)) == (
        6,
        0,
        0x4321,
        21600,
        True,
    )
    options = non_padding(ba.options)
    assert [type(o) for o in options] == [
        MIP6OptBRAdvice,
        MIP6OptCareOfTest,
        MIP6OptHomeKeygenToken,
        MIP6OptBindingAuthData,
    ]
    assert options[0].rinter == 100
    assert options[1].cokt == TOKEN
    assert options[2].hkt == PHKT
    assert options[3].authenticator.to_bytes(12, "big") == AUTH
    # scapy's pseudo-header takes the RH2 address: its checksum agrees with ours
    assert rebuilt_with_scapy_checksum(d) == ours


def test_codec_ba_status_135_dissects_in_scapy():
    ours = build_packet(BindingAck(135, 0x1233, 0), source=HA, destination=COA, routing_address=HOA)
    d = IPv6(ours)
    assert_no_leftover_layers(d)
    ba = d[MIP6MH_BA]
    assert (ba.status, ba.seq, ba.mhtime, int(ba.flags)) == (135, 0x1233, 0, 0)
    assert non_padding(ba.options) == []
    assert rebuilt_with_scapy_checksum(d) == ours


def test_codec_binding_error_dissects_in_scapy():
    ours = build_packet(BindingError(2, HOA), source=HA, destination=COA)
    d = IPv6(ours)
    assert_no_leftover_layers(d)
    be = d[MIP6MH_BE]
    assert (be.mhtype, be.len, be.status, be.ha) == (7, 2, 2, HOA_S)
    assert rebuilt_with_scapy_checksum(d) == ours


def test_codec_care_of_test_init_and_care_of_test_dissect_in_scapy():
    coti = build_packet(CareOfTestInit(COOKIE), source=COA, destination=HA)
    d = IPv6(coti)
    assert_no_leftover_layers(d)
    assert isinstance(d.payload, MIP6MH_CoTI)
    assert (d[MIP6MH_CoTI].mhtype, d[MIP6MH_CoTI].len, d[MIP6MH_CoTI].cookie) == (2, 1, COOKIE)
    assert rebuilt_with_scapy_checksum(d) == coti

    cot = build_packet(CareOfTest(0xBEEF, COOKIE, TOKEN), source=HA, destination=COA)
    d = IPv6(cot)
    assert_no_leftover_layers(d)
    assert isinstance(d.payload, MIP6MH_CoT)
    layer = d[MIP6MH_CoT]
    assert (layer.mhtype, layer.len, layer.index, layer.cookie, layer.token) == (
        4,
        2,
        0xBEEF,
        COOKIE,
        TOKEN,
    )
    assert rebuilt_with_scapy_checksum(d) == cot


@pytest.mark.parametrize("cga_len", [1, 7, 187, 255, 256, 318, 510, 511, 700])
def test_codec_cga_fragments_reassemble_in_scapy(cga_len):
    """RFC 4866 §5.1 split seen from scapy: 255-byte options then the rest, then the Signature."""
    cga = bytes((i * 5 + cga_len) % 256 for i in range(cga_len))
    message = BindingUpdate(
        2, 3, options=MobilityOptions(cga_parameters=cga, signature=b"\x01" * 40)
    )
    ours = build_packet(message, source=COA, destination=HA, home_address=HOA)
    d = IPv6(ours)
    assert_no_leftover_layers(d)
    options = non_padding(d[MIP6MH_BU].options)
    assert all(isinstance(o, MIP6OptCGAParams) for o in options[:-1])
    assert isinstance(options[-1], MIP6OptSignature) and options[-1].sig == b"\x01" * 40
    assert b"".join(o.cgaparams for o in options[:-1]) == cga
    assert [o.olen for o in options[:-2]] == [255] * (len(options) - 2)
    assert rebuilt_with_scapy_checksum(d) == ours
