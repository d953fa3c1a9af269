"""Malformed Mobility Header packets through the whole frame path (``Dar.packet_in``).

tests/unit/test_mh_rejections.py pins the codec's RejectReason and pointer
for each malformation; here the same kinds of packet arrive as Ethernet
frames at a configured DAR and the test asserts what leaves it (RFC 6275
§9.2): nothing at all for a silent drop (one counter, no RSA work, no
state change), an ICMPv6 Parameter Problem whose pointer names the
offending field, or a Binding Error with status 2, both rate-limited to
10 per second per destination.  Unknown mobility options are skipped and
the message still accepted (RFC 6275 §6.2.1).
"""

from __future__ import annotations

import struct

import pytest
from dar_rig import ANCHOR_TEXT, T0, Rig, from_core, icmpv6_of, text
from mn_factory import ANCHOR, COA_1, COA_2, MobileNode, addr, kbm
from test_mh_rejections import ext_header, fix_checksum, ipv6, option, padn

from fama_ryu import auth, icmpv6, mh

HOA = addr("2001:db8:a::100")
BU_FIXED = struct.pack("!HHH", 7, 0xC000, 100)  # sequence, A|H, lifetime (P4)
AUTH = bytes(12)


def hao_header(next_header: int = mh.IPPROTO_MH, home_address: bytes = HOA) -> bytes:
    """Destination options with the Home Address option at 8n+6 (RFC 6275 §6.3)."""
    return ext_header(next_header, padn(4) + option(mh.HOME_ADDRESS_OPTION_TYPE, home_address))


def raw_mh(mh_type: int, body: bytes, *, proto: int = 59, header_len: int | None = None) -> bytes:
    """A Mobility Header padded to 8n octets (checksum zero; ``packet`` fills it)."""
    raw = bytes([proto, 0, mh_type, 0, 0, 0]) + body
    raw += bytes((-len(raw)) % 8)
    length = len(raw) // 8 - 1 if header_len is None else header_len
    return raw[:1] + bytes([length]) + raw[2:]


def bu(options: bytes) -> bytes:
    """A BU Mobility Header carrying ``options``, PadN-padded to 8n."""
    return raw_mh(5, BU_FIXED + options + padn((-(12 + len(options))) % 8))


def packet(
    mh_bytes: bytes, *, hao: bool = True, fragment: bytes | None = None, source: bytes = COA_1
) -> bytes:
    """IPv6 from ``source`` to the anchor: [HAO] [fragment header] MH, checksum right."""
    chain, first = mh_bytes, mh.IPPROTO_MH
    if fragment is not None:
        chain, first = fragment + chain, mh.IPPROTO_FRAGMENT
    if hao:
        chain, first = hao_header(first) + chain, mh.IPPROTO_DSTOPTS
    return fix_checksum(ipv6(first, chain, source, ANCHOR))


def fragment_header(offset_units: int = 0, more: bool = True) -> bytes:
    return struct.pack("!BBHI", mh.IPPROTO_MH, 0, offset_units << 3 | int(more), 0x1234)


@pytest.fixture
def rig() -> Rig:
    return Rig()


# ---------------------------------------------------------------- silent drops


def _bu_checksum_with_coa_instead_of_hoa() -> bytes:
    """A correctly signed first BU whose checksum used the CoA, not the HoA, as source."""
    mn = MobileNode.create()
    good = bytearray(mn.first_bu(1, COA_1))
    mh_start = 40 + 24
    good[mh_start + 4 : mh_start + 6] = b"\x00\x00"
    checksum = mh.mobility_checksum(COA_1, ANCHOR, bytes(good[mh_start:]))
    good[mh_start + 4 : mh_start + 6] = checksum.to_bytes(2, "big")
    return bytes(good)


def _flipped_after_checksum() -> bytes:
    bad = bytearray(MobileNode.create().first_bu(1, COA_1))
    bad[-1] ^= 0x01  # the last signature octet, after the checksum was computed
    return bytes(bad)


def _truncated_after_checksum() -> bytes:
    whole = MobileNode.create().first_bu(1, COA_1)
    return whole[:4] + struct.pack("!H", len(whole) - 40 - 9) + whole[6:-9]


SILENT_DROPS = {
    # Truncations and lengths past the end.
    "payload-length-past-end": (
        lambda: ipv6(60, hao_header() + bu(b""), COA_1, ANCHOR)[:-1],
        "payload_length_past_end",
    ),
    "dest-opts-length-past-payload": (
        lambda: ipv6(60, b"\x87\x02" + padn(6), COA_1, ANCHOR),
        "extension_header_truncated",
    ),
    "mh-5-octets": (lambda: ipv6(135, bytes([59, 1, 5, 0, 0]), COA_1, ANCHOR), "mh_truncated"),
    "header-len-past-end": (
        lambda: packet(raw_mh(5, BU_FIXED, header_len=3)),
        "header_len_past_end",
    ),
    "option-length-past-end": (
        lambda: packet(raw_mh(5, BU_FIXED + b"\x1e\x09")),
        "option_truncated",
    ),
    "option-type-is-last-octet": (
        lambda: packet(raw_mh(5, BU_FIXED + padn(3) + b"\x1e")),
        "option_truncated",
    ),
    "signed-bu-cut-short": (
        lambda: fix_checksum(_truncated_after_checksum()),
        "header_len_past_end",
    ),
    # Padding.
    "mh-padn-not-zero": (lambda: packet(bu(b"\x01\x02\x00\x01")), "padding_not_zero"),
    "dest-opts-padn-not-zero": (
        lambda: fix_checksum(
            ipv6(
                60,
                ext_header(135, b"\x01\x02\x00\x80" + option(0xC9, HOA)) + bu(b""),
                COA_1,
                ANCHOR,
            )
        ),
        "padding_not_zero",
    ),
    # Authorization data must be last; the Signature directly follows CGA Parameters.
    "bad-then-pad1": (
        lambda: packet(raw_mh(5, BU_FIXED + padn(6) + option(5, AUTH) + bytes(8))),
        "authorization_data_not_last",
    ),
    "bad-then-unknown-option": (
        lambda: packet(raw_mh(5, BU_FIXED + padn(6) + option(5, AUTH) + option(0x20, bytes(6)))),
        "authorization_data_not_last",
    ),
    "two-bad": (
        lambda: packet(raw_mh(5, BU_FIXED + padn(6) + option(5, AUTH) + padn(2) + option(5, AUTH))),
        "authorization_data_not_last",
    ),
    "signature-alone": (
        lambda: packet(bu(option(13, bytes(128)))),
        "signature_not_after_cga_parameters",
    ),
    "signature-before-cga": (
        lambda: packet(bu(option(13, bytes(16)) + option(12, bytes(10)) + option(13, bytes(16)))),
        "signature_not_after_cga_parameters",
    ),
    "padn-between-cga-and-signature": (
        lambda: packet(bu(option(12, bytes(10)) + padn(2) + option(13, bytes(16)))),
        "cga_parameters_without_signature",
    ),
    "cga-without-signature": (
        lambda: packet(bu(option(12, bytes(10)))),
        "cga_parameters_without_signature",
    ),
    # CGA Parameters fragments.
    "cga-first-fragment-254": (
        lambda: packet(bu(option(12, bytes(254)) + option(12, bytes(10)) + option(13, bytes(16)))),
        "cga_parameters_fragment_size",
    ),
    "cga-not-contiguous": (
        lambda: packet(
            bu(
                option(12, bytes(255))
                + option(13, bytes(8))
                + option(12, bytes(9))
                + option(13, bytes(8))
            )
        ),
        "cga_parameters_not_contiguous",
    ),
    # Oversized option areas (P8 caps).
    "mh-over-1024-octets": (lambda: packet(bu(padn(257) * 4)), "oversized"),
    "cga-parameters-over-765-octets": (
        lambda: packet(bu(option(12, bytes(255)) * 3 + option(12, b"x") + option(13, bytes(8)))),
        "cga_parameters_too_long",
    ),
    # Fragmented Mobility Headers (never reassembled by the DAR).
    "first-fragment": (lambda: packet(bu(b""), fragment=fragment_header()), "fragmented"),
    "atomic-fragment": (
        lambda: packet(bu(b""), fragment=fragment_header(more=False)),
        "fragmented",
    ),
    "fragment-without-hao": (
        lambda: packet(bu(b""), hao=False, fragment=fragment_header(offset_units=3)),
        "fragmented",
    ),
    # Checksums (checked before anything else, RFC 6275 §9.2).
    "bu-checksum-over-coa-not-hoa": (_bu_checksum_with_coa_instead_of_hoa, "bad_checksum"),
    "signed-bu-flipped-after-checksum": (_flipped_after_checksum, "bad_checksum"),
    "unknown-type-bad-checksum": (
        lambda: ipv6(60, hao_header() + raw_mh(42, bytes(10)), COA_1, ANCHOR),
        "bad_checksum",
    ),
    "payload-proto-bad-checksum": (
        lambda: ipv6(60, hao_header() + raw_mh(5, BU_FIXED, proto=6), COA_1, ANCHOR),
        "bad_checksum",
    ),
}


@pytest.mark.parametrize("name", sorted(SILENT_DROPS))
def test_silent_drop_sends_nothing_costs_no_rsa_and_counts(rig: Rig, name: str) -> None:
    build, reason = SILENT_DROPS[name]
    rig.assert_dropped(build(), f"drop:{reason}")
    assert rig.dar.bindings() == []
    assert rig.dar.counters["error_reply_suppressed"] == 0


# Every option RFC 6275/4866 allows once, but BAD (a second BAD is "not last")
# and the Signature (a second one is "not after CGA Parameters" first).
SINGLE_OPTIONS = {
    mh.OptionType.BINDING_REFRESH_ADVICE: bytes(2),
    mh.OptionType.ALTERNATE_COA: COA_2,
    mh.OptionType.NONCE_INDICES: bytes(4),
    mh.OptionType.CGA_PARAMETERS_REQUEST: b"",
    mh.OptionType.PERMANENT_HOME_KEYGEN_TOKEN: bytes(8),
    mh.OptionType.CARE_OF_TEST_INIT: b"",
    mh.OptionType.CARE_OF_TEST: bytes(8),
}


@pytest.mark.parametrize("option_type", list(SINGLE_OPTIONS), ids=lambda t: t.name)
def test_duplicated_single_option_is_dropped(rig: Rig, option_type: mh.OptionType) -> None:
    twice = option(option_type, SINGLE_OPTIONS[option_type]) * 2
    rig.assert_dropped(packet(bu(twice)), "drop:duplicate_option")


# ---------------------------------------------------------------- ICMPv6 Parameter Problem


def _payload_proto(proto: int, *, hao: bool = True) -> tuple[bytes, int]:
    return packet(raw_mh(5, BU_FIXED, proto=proto), hao=hao), 40 + (24 if hao else 0)


PARAMETER_PROBLEMS = {
    **{f"payload-proto-{proto}": _payload_proto(proto) for proto in (0, 6, 17, 58, 135, 255)},
    "payload-proto-6-no-hao": _payload_proto(6, hao=False),
    # Header Len below the type's minimum (RFC 6275 §9.2): pointer at Header Len.
    **{
        f"header-len-{length}-{mh_type.name}": (
            packet(raw_mh(mh_type, bytes(8 * length + 2), header_len=length)),
            40 + 24 + 1,
        )
        for mh_type, minimum in (
            (mh.MHType.HOME_TEST_INIT, 1),
            (mh.MHType.CARE_OF_TEST_INIT, 1),
            (mh.MHType.HOME_TEST, 2),
            (mh.MHType.CARE_OF_TEST, 2),
            (mh.MHType.BINDING_UPDATE, 1),
            (mh.MHType.BINDING_ACK, 1),
            (mh.MHType.BINDING_ERROR, 2),
        )
        for length in range(minimum)
    },
}


@pytest.mark.parametrize("name", sorted(PARAMETER_PROBLEMS))
def test_parameter_problem_points_at_the_offending_field(rig: Rig, name: str) -> None:
    invoking, pointer = PARAMETER_PROBLEMS[name]
    sent = rig.send(invoking)
    assert sent.work.changes == [] and sent.work.flow_steps == [] and sent.rsa_operations == 0
    source, destination, icmp_type, code, got_pointer, quoted = icmpv6_of(sent.only_reply())
    assert (text(source), destination) == (ANCHOR_TEXT, COA_1)
    assert (icmp_type, code) == (icmpv6.PARAMETER_PROBLEM, 0)  # erroneous header field
    assert got_pointer == pointer
    assert quoted == invoking
    assert rig.dar.counters["icmpv6_parameter_problem"] == 1


def test_parameter_problem_quotes_at_most_what_fits_the_minimum_mtu(rig: Rig) -> None:
    """RFC 4443 §2.4 (c): the error, invoking packet included, fits 1280 octets."""
    mh_bytes = raw_mh(5, BU_FIXED, proto=6)
    trailer = bytes(1400)  # after the Mobility Header: inside the payload, ignored by the MH
    invoking = fix_checksum(ipv6(60, hao_header() + mh_bytes + trailer, COA_1, ANCHOR))
    frame = rig.send(invoking).only_reply()
    *_, pointer, quoted = icmpv6_of(frame)
    assert len(frame) - 14 == icmpv6.MINIMUM_MTU
    assert pointer == 64 and invoking.startswith(quoted)


# ---------------------------------------------------------------- Binding Error status 2


@pytest.mark.parametrize("mh_type", [8, 9, 16, 100, 254, 255])
@pytest.mark.parametrize("with_hao", [True, False], ids=["hao", "no-hao"])
def test_unknown_mh_type_gets_binding_error_2(rig: Rig, mh_type: int, with_hao: bool) -> None:
    sent = rig.send(packet(raw_mh(mh_type, bytes(10)), hao=with_hao))
    assert sent.work.changes == [] and sent.rsa_operations == 0
    reply = mh.parse_ethernet_frame(sent.only_reply())  # checksum verified by the codec
    assert (text(reply.source), reply.destination) == (ANCHOR_TEXT, COA_1)
    assert reply.message == mh.BindingError(
        mh.BEStatus.UNRECOGNIZED_MH_TYPE, HOA if with_hao else bytes(16)
    )
    assert rig.dar.counters["binding_error_2"] == 1
    assert rig.dar.counters["drop:unknown_mh_type"] == 1


# ---------------------------------------------------------------- rate limit


def _error_replies(rig: Rig, packets: list[bytes], now: float) -> int:
    return sum(len(rig.send(invoking, now).replies) for invoking in packets)


def test_parameter_problems_and_binding_errors_share_one_budget_per_destination(
    rig: Rig,
) -> None:
    problem, _ = _payload_proto(6)
    unknown = packet(raw_mh(42, bytes(10)))
    burst = [problem, unknown] * 25
    replies = _error_replies(rig, burst, T0)
    assert replies == 10  # the bucket holds 10 (ERROR_REPLIES_PER_S)
    assert rig.dar.counters["error_reply_suppressed"] == 40
    assert rig.dar.counters["drop:payload_proto_not_none"] == 25
    assert rig.dar.counters["drop:unknown_mh_type"] == 25


def test_sustained_flood_gets_at_most_10_replies_per_second(rig: Rig) -> None:
    """100 bad packets per second for 20 s: at most 10 per second plus the initial burst."""
    unknown = packet(raw_mh(42, bytes(10)))
    replies = sum(_error_replies(rig, [unknown], T0 + step / 100) for step in range(20 * 100))
    assert replies <= 10 * 20 + 10
    assert replies >= 10 * 19  # the budget refills: the sender still learns of its error


def test_each_destination_has_its_own_budget_and_drops_spend_none(rig: Rig) -> None:
    sources = [addr(f"2001:db8:c::{n:x}") for n in range(1, 21)]
    for source in sources:
        assert _error_replies(rig, [packet(bu(b"\x01\x02\x00\x01"), source=source)] * 5, T0) == 0
    per_source = [
        _error_replies(rig, [packet(raw_mh(42, bytes(10)), source=source)] * 15, T0)
        for source in sources
    ]
    # Each destination gets its own 10; all together share 100 (ERROR_REPLIES_TOTAL_PER_S).
    assert per_source == [10] * 10 + [0] * 10


def test_a_spoofed_source_flood_keeps_the_error_limiter_bounded(rig: Rig) -> None:
    for n in range(6000):
        source = addr("2001:db8:c::")[:8] + n.to_bytes(8, "big")
        rig.send(packet(raw_mh(42, bytes(10)), source=source), T0 + n / 10_000)
    assert len(rig.dar._error_limiter._buckets) <= 4096
    # Spoofed sources share one budget: at most 100 error replies a second in total.
    assert rig.dar.counters["binding_error_2"] <= 100 + 0.6 * 100 + 1


# ---------------------------------------------------------------- unknown options are skipped


def signed_bu(mn: MobileNode, coa: bytes, *, before: bytes = b"", after: bytes = b"") -> bytes:
    """A first CGA BU (P6) with extra option bytes before the CGA Parameters and after the
    Signature, signed over exactly what is sent."""
    params = mn.params.encode()
    cga_options = b"".join(option(12, params[i : i + 255]) for i in range(0, len(params), 255))
    head = bytearray([59, 0, 5, 0, 0, 0]) + struct.pack("!HHH", 1, 0xC000, 100) + before
    head += cga_options
    signature_len = (mn.key.key_size + 7) // 8
    tail_len = 2 + signature_len + len(after)
    padding = padn((-(len(head) + tail_len)) % 8)
    head[1] = (len(head) + tail_len + len(padding)) // 8 - 1
    signature = auth.sign_binding_update(mn.key, coa, ANCHOR, bytes(head))
    mh_bytes = bytes(head) + option(13, signature) + after + padding
    return fix_checksum(mh.build_ipv6_packet(coa, ANCHOR, mh_bytes, home_address=mn.hoa))


def authorized_bu(mn: MobileNode, sequence: int, coa: bytes, *, before: bytes = b"") -> bytes:
    """A PHKT BU (P9) with extra option bytes before its Binding Authorization Data."""
    assert mn.phkt is not None
    head = bytearray([59, 0, 5, 0, 0, 0]) + struct.pack("!HHH", sequence, 0xC000, 100) + before
    head += padn((2 - len(head)) % 8)  # the option at 8n+2 (RFC 6275 §6.2.7), nothing after
    head[1] = (len(head) + 2 + 12) // 8 - 1
    head += bytes([5, 12])
    authenticator = auth.binding_authenticator(kbm(mn.phkt), coa, ANCHOR, bytes(head))
    mh_bytes = bytes(head) + authenticator
    return fix_checksum(mh.build_ipv6_packet(coa, ANCHOR, mh_bytes, home_address=mn.hoa))


UNKNOWN_OPTIONS = option(0x20, b"") + option(0x7F, bytes(5)) + option(0xFF, b"\xaa" * 30)


@pytest.mark.parametrize(
    ("before", "after"),
    [(UNKNOWN_OPTIONS, b""), (b"", UNKNOWN_OPTIONS), (option(17, bytes(3)), option(200, b"x"))],
    ids=["before-cga", "after-signature", "both"],
)
def test_unknown_options_are_skipped_and_the_bu_accepted(
    rig: Rig, before: bytes, after: bytes
) -> None:
    mn = MobileNode.create()
    sent = rig.send(signed_bu(mn, COA_1, before=before, after=after))
    assert sent.binding_ack().status == mh.BAStatus.ACCEPTED
    assert rig.bound(mn.hoa)
    assert sent.rsa == {"sign": 0, "verify": 1, "encrypt": 1, "decrypt": 0}


def test_unknown_option_before_the_authorization_data_is_skipped(rig: Rig) -> None:
    mn = MobileNode.create()
    mn.learn_phkt(rig.send(mn.first_bu(1, COA_1)).only_reply()[14:], COA_1)
    sent = rig.send(authorized_bu(mn, 2, COA_2, before=option(0x30, bytes(4))))
    assert sent.binding_ack().status == mh.BAStatus.ACCEPTED
    assert sent.rsa_operations == 0
    assert [binding.coa for binding in rig.dar.bindings()] == [COA_2]


def test_the_dar_still_serves_after_every_bad_packet(rig: Rig) -> None:
    for build, _ in SILENT_DROPS.values():
        rig.send(build())
    for invoking, _ in PARAMETER_PROBLEMS.values():
        rig.send(invoking)
    mn = MobileNode.create(seed=3)
    assert rig.send(mn.first_bu(1, COA_1)).binding_ack().status == mh.BAStatus.ACCEPTED
    assert rig.bound(mn.hoa)


def test_frames_too_short_for_ipv6_are_counted_not_parsed(rig: Rig) -> None:
    whole = from_core(MobileNode.create().first_bu(1, COA_1))
    for length in (0, 13, 14, 14 + 39):
        sent = rig.send_frame(whole[:length])
        assert sent.work.packet_outs == [] and sent.work.changes == []
    assert rig.dar.counters["drop:punt_not_ipv6"] == 4
    assert rig.dar.counters["packet_in"] == 4
