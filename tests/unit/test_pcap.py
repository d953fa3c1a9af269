"""Tests of the capture-file module (fama_ryu/pcap.py).

* ``write_pcap`` -> ``read_capture`` round trip: data intact, timestamps
  exact to the microsecond;
* classic pcap in both byte orders, with microsecond and nanosecond magic;
* pcapng written by tshark/editcap (microsecond and nanosecond
  ``if_tsresol``) and pcapng built here byte by byte (both byte orders,
  several interfaces and sections, options, unknown blocks);
* strictness: every truncation of a valid file, random bytes and malformed
  blocks raise ``CaptureFormatError`` and nothing else.

The tshark/editcap tests skip when the tools are missing (``make
system-deps`` installs them; tests/integration fails instead of skipping).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fama_ryu import pcap
from fama_ryu.pcap import CapturedPacket, CaptureFormatError, read_capture, write_pcap

TSHARK = shutil.which("tshark")
EDITCAP = shutil.which("editcap")

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
SPB_TYPE = 0x00000003
NRB_TYPE = 0x00000004
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9

# Frames with microsecond timestamps: (seconds, microseconds, data).
SAMPLE = [
    (1_795_738_057, 408_421, b"\x02\x00\x00\x00\xd0\x02" + bytes(range(60))),
    (1_795_738_057, 999_999, b""),
    (1_795_738_058, 0, b"\xff" * 1514),
    (0, 1, b"\x00"),
]


def _timestamp(seconds: int, micros: int) -> float:
    return seconds + micros / 1_000_000


def _micros(timestamp: float) -> tuple[int, int]:
    """Split a read-back timestamp into (seconds, microseconds)."""
    seconds = int(timestamp)
    return seconds, round((timestamp - seconds) * 1_000_000)


def _read_all(data: bytes) -> list[CapturedPacket]:
    return list(read_capture(io.BytesIO(data)))


def _written(frames: list[tuple[float, bytes]]) -> bytes:
    stream = io.BytesIO()
    write_pcap(stream, frames)
    return stream.getvalue()


def _sample_pcap() -> bytes:
    return _written([(_timestamp(s, us), data) for s, us, data in SAMPLE])


# ---------------------------------------------------------------- builders


def classic_pcap(order: str, nanoseconds: bool, linktype: int, records) -> bytes:
    """Classic pcap; ``records`` are (seconds, fraction, data)."""
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype))
    for seconds, fraction, data in records:
        out += struct.pack(order + "IIII", seconds, fraction, len(data), len(data)) + data
    return bytes(out)


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def ng_block(order: str, block_type: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def ng_option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


def ng_options(order: str, *options: tuple[int, bytes]) -> bytes:
    if not options:
        return b""
    return b"".join(ng_option(order, c, v) for c, v in options) + ng_option(order, OPT_END, b"")


def ng_shb(order: str, *options: tuple[int, bytes]) -> bytes:
    body = struct.pack(order + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + ng_options(order, *options)
    return ng_block(order, SHB_TYPE, body)


def ng_idb(order: str, linktype: int, tsresol: bytes | None = None, name: bytes | None = None):
    options = []
    if name is not None:
        options.append((IF_NAME, name))
    if tsresol is not None:
        options.append((IF_TSRESOL, tsresol))
    body = struct.pack(order + "HHI", linktype, 0, 65535) + ng_options(order, *options)
    return ng_block(order, IDB_TYPE, body)


def ng_epb(order: str, interface: int, ticks: int, data: bytes, comment: bytes | None = None):
    body = struct.pack(
        order + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    ) + _pad4(data)
    if comment is not None:
        body += ng_options(order, (OPT_COMMENT, comment))
    return ng_block(order, EPB_TYPE, body)


def ng_spb(order: str, data: bytes) -> bytes:
    return ng_block(order, SPB_TYPE, struct.pack(order + "I", len(data)) + _pad4(data))


def _sample_pcapng(order: str) -> tuple[bytes, list[int]]:
    """A pcapng of SAMPLE (microsecond ticks) and the offsets where blocks end."""
    blocks = [ng_shb(order), ng_idb(order, pcap.LINKTYPE_ETHERNET, name=b"eth0")]
    for seconds, micros, data in SAMPLE:
        blocks.append(ng_epb(order, 0, seconds * 1_000_000 + micros, data, comment=b"x"))
    ends, total = [], 0
    for block in blocks:
        total += len(block)
        ends.append(total)
    return b"".join(blocks), ends


def _assert_is_sample(packets: list[CapturedPacket], count: int = len(SAMPLE)) -> None:
    assert len(packets) == count
    for packet, (seconds, micros, data) in zip(packets, SAMPLE, strict=False):
        assert packet.linktype == pcap.LINKTYPE_ETHERNET
        assert packet.data == data
        assert _micros(packet.timestamp) == (seconds, micros)


# ---------------------------------------------------------------- writing + round trip


def test_write_pcap_writes_little_endian_microsecond_ethernet_header_and_counts_packets():
    stream = io.BytesIO()
    count = write_pcap(stream, [(1.5, b"abc"), (2.25, b"")])
    data = stream.getvalue()
    assert count == 2
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert snaplen == 65535
    assert linktype == pcap.LINKTYPE_ETHERNET
    assert struct.unpack_from("<IIII", data, 24) == (1, 500_000, 3, 3)
    assert data[40:43] == b"abc"
    assert struct.unpack_from("<IIII", data, 43) == (2, 250_000, 0, 0)
    assert len(data) == 24 + 16 + 3 + 16


def test_write_pcap_of_no_packets_is_a_header_that_reads_back_empty():
    data = _written([])
    assert len(data) == 24
    assert _read_all(data) == []


def test_write_then_read_round_trips_data_and_microsecond_timestamps():
    _assert_is_sample(_read_all(_sample_pcap()))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**31 - 1),  # float seconds keep microseconds exact up to 2038
            st.integers(0, 999_999),
            st.binary(max_size=300),
        ),
        max_size=6,
    )
)
def test_write_then_read_round_trip_property(records):
    packets = _read_all(_written([(_timestamp(s, us), data) for s, us, data in records]))
    assert [p.data for p in packets] == [data for _, _, data in records]
    assert [_micros(p.timestamp) for p in packets] == [(s, us) for s, us, _ in records]
    assert all(p.linktype == pcap.LINKTYPE_ETHERNET for p in packets)


def test_write_pcap_carries_rounded_microseconds_into_seconds():
    data = _written([(1.9999996, b"x")])
    seconds, micros = struct.unpack_from("<II", data, 24)
    assert micros < 1_000_000, "pcap ts_usec must be below one million"
    assert (seconds, micros) == (2, 0)


# ---------------------------------------------------------------- classic pcap variants


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nanoseconds", [False, True], ids=["usec", "nsec"])
def test_reads_classic_pcap_in_both_byte_orders_and_resolutions(order, nanoseconds):
    scale = 1000 if nanoseconds else 1
    records = [(s, us * scale, data) for s, us, data in SAMPLE]
    data = classic_pcap(order, nanoseconds, pcap.LINKTYPE_RAW, records)
    if order == ">":
        assert data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    packets = _read_all(data)
    assert [p.data for p in packets] == [d for _, _, d in SAMPLE]
    assert all(p.linktype == pcap.LINKTYPE_RAW for p in packets)
    assert [_micros(p.timestamp) for p in packets] == [(s, us) for s, us, _ in SAMPLE]


def test_reads_nanosecond_fraction_of_classic_pcap():
    data = classic_pcap("<", True, pcap.LINKTYPE_ETHERNET, [(10, 123_456_789, b"a")])
    (packet,) = _read_all(data)
    assert packet.timestamp == pytest.approx(10.123456789, abs=1e-9)


def test_classic_pcap_linktype_ignores_fcs_bits():
    # LinkType bits 28-31 carry the FCS length (draft-ietf-opsawg-pcap §4).
    data = classic_pcap("<", False, 0x20000000 | pcap.LINKTYPE_ETHERNET, [(1, 0, b"a")])
    assert _read_all(data)[0].linktype == pcap.LINKTYPE_ETHERNET


# ---------------------------------------------------------------- pcapng from tshark / editcap


def _tool(path: str | None, name: str) -> str:
    if path is None:
        pytest.skip(f"{name} not installed; run `make system-deps`")
    return path


def test_reads_pcapng_written_by_tshark(tmp_path: Path):
    tshark = _tool(TSHARK, "tshark")
    source, converted = tmp_path / "in.pcap", tmp_path / "out.pcapng"
    source.write_bytes(_sample_pcap())
    subprocess.run(
        [tshark, "-r", str(source), "-F", "pcapng", "-w", str(converted)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = converted.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a", "tshark did not write pcapng"
    with open(converted, "rb") as stream:
        _assert_is_sample(list(read_capture(stream)))


def test_reads_nanosecond_pcap_and_pcapng_written_by_editcap(tmp_path: Path):
    editcap = _tool(EDITCAP, "editcap")
    source, nsec, nsec_ng = tmp_path / "in.pcap", tmp_path / "ns.pcap", tmp_path / "ns.pcapng"
    source.write_bytes(_sample_pcap())
    for fmt, src, dst in (("nsecpcap", source, nsec), ("pcapng", nsec, nsec_ng)):
        subprocess.run(
            [editcap, "-F", fmt, str(src), str(dst)], check=True, capture_output=True, timeout=60
        )
    assert nsec.read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D), "not a nanosecond pcap"
    ng = nsec_ng.read_bytes()
    # editcap keeps the nanosecond resolution: if_tsresol = 9 in the IDB.
    assert ng_option("<", IF_TSRESOL, b"\x09") in ng
    _assert_is_sample(_read_all(nsec.read_bytes()))
    _assert_is_sample(_read_all(ng))


# ---------------------------------------------------------------- pcapng built by hand


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_reads_hand_built_pcapng_in_both_byte_orders(order):
    data, _ = _sample_pcapng(order)
    _assert_is_sample(_read_all(data))


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize(
    ("tsresol", "seconds_per_tick"),
    [(None, 1e-6), (b"\x06", 1e-6), (b"\x09", 1e-9), (b"\x03", 1e-3), (bytes([0x80 | 20]), 2**-20)],
    ids=["default-usec", "usec", "nsec", "msec", "2^-20"],
)
def test_pcapng_timestamp_uses_interface_if_tsresol(order, tsresol, seconds_per_tick):
    expected = 1_700_000_000.123456789
    ticks = round(expected / seconds_per_tick)
    data = ng_shb(order) + ng_idb(order, 1, tsresol, name=b"if0") + ng_epb(order, 0, ticks, b"p")
    (packet,) = _read_all(data)
    assert packet.data == b"p"
    # within one tick (1 ms for the msec case) and within float precision otherwise
    assert packet.timestamp == pytest.approx(expected, abs=max(seconds_per_tick, 1e-6))


def test_pcapng_nanosecond_ticks_keep_sub_microsecond_order():
    order = "<"
    base = 1_700_000_000 * 10**9
    data = ng_shb(order) + ng_idb(order, 1, b"\x09")
    data += ng_epb(order, 0, base + 999, b"a") + ng_epb(order, 0, base + 1_000_999, b"b")
    first, second = _read_all(data)
    assert second.timestamp - first.timestamp == pytest.approx(0.001, abs=1e-6)
    assert _micros(first.timestamp) == (1_700_000_000, 1)


def test_pcapng_interfaces_and_sections_keep_their_own_linktype_and_resolution():
    le, be = "<", ">"
    data = (
        ng_shb(le, (OPT_COMMENT, b"first section"))
        + ng_idb(le, pcap.LINKTYPE_ETHERNET)
        + ng_idb(le, pcap.LINKTYPE_RAW, b"\x09")
        + ng_epb(le, 1, 5 * 10**9, b"raw")
        + ng_block(le, NRB_TYPE, struct.pack("<HH", 0, 0))  # name resolution: skipped
        + ng_block(le, 0x00000BAD, b"custom")  # unknown block: skipped
        + ng_epb(le, 0, 7 * 10**6, b"eth")
        # a second section, other byte order: interface numbering restarts
        + ng_shb(be)
        + ng_idb(be, 113, b"\x03")
        + ng_epb(be, 0, 9_000, b"sll")
    )
    packets = _read_all(data)
    assert [(p.linktype, p.data) for p in packets] == [
        (pcap.LINKTYPE_RAW, b"raw"),
        (pcap.LINKTYPE_ETHERNET, b"eth"),
        (113, b"sll"),
    ]
    assert [p.timestamp for p in packets] == pytest.approx([5.0, 7.0, 9.0])


def test_pcapng_interface_of_a_previous_section_is_forgotten():
    data = ng_shb("<") + ng_idb("<", 1) + ng_shb("<") + ng_epb("<", 0, 1, b"x")
    with pytest.raises(CaptureFormatError):
        _read_all(data)


def test_pcapng_simple_packet_block_data_excludes_padding():
    data = ng_shb("<") + ng_idb("<", 1) + ng_spb("<", b"abcde")
    (packet,) = _read_all(data)
    assert packet.data == b"abcde"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(ng_shb("<") + ng_epb("<", 0, 1, b"x"), id="epb-before-any-idb"),
        pytest.param(ng_shb("<") + ng_idb("<", 1) + ng_epb("<", 1, 1, b"x"), id="epb-bad-iface"),
        pytest.param(ng_shb("<") + ng_spb("<", b"x"), id="spb-before-any-idb"),
        pytest.param(
            ng_shb("<")
            + ng_idb("<", 1)
            + ng_block("<", EPB_TYPE, struct.pack("<IIIII", 0, 0, 0, 99, 99) + b"short"),
            id="epb-captured-length-past-block",
        ),
        pytest.param(
            struct.pack("<III", SHB_TYPE, 24, BYTE_ORDER_MAGIC) + bytes(12), id="shb-too-short"
        ),
        pytest.param(
            struct.pack("<III", SHB_TYPE, 30, BYTE_ORDER_MAGIC) + bytes(18), id="shb-unaligned"
        ),
        pytest.param(ng_shb("<") + struct.pack("<II", IDB_TYPE, 14) + bytes(6), id="unaligned"),
        pytest.param(ng_shb("<") + struct.pack("<II", IDB_TYPE, 8), id="block-length-below-12"),
        pytest.param(ng_shb("<") + b"\x01\x00", id="trailing-partial-block-type"),
        pytest.param(b"", id="empty-file"),
        pytest.param(b"\xa1\xb2", id="two-bytes"),
        pytest.param(b"GIF89a" + bytes(40), id="unknown-magic"),
        pytest.param(b"\xd4\xc3\xb2\xa1" + bytes(10), id="classic-header-truncated"),
    ],
)
def test_malformed_captures_raise_capture_format_error(data):
    with pytest.raises(CaptureFormatError):
        _read_all(data)


# Reproducers of reader crashes: another exception than CaptureFormatError escapes.
_CRASH = "BUG: a short pcapng block body escapes as {} instead of CaptureFormatError"


def test_pcapng_interface_block_without_body_raises_capture_format_error():
    data = ng_shb("<") + ng_block("<", IDB_TYPE, b"")  # total length 12
    with pytest.raises(CaptureFormatError):
        _read_all(data)


def test_pcapng_enhanced_packet_block_shorter_than_fixed_part_raises_capture_format_error():
    data = ng_shb("<") + ng_idb("<", 1) + ng_block("<", EPB_TYPE, bytes(8))
    with pytest.raises(CaptureFormatError):
        _read_all(data)


def test_pcapng_if_tsresol_option_cut_off_raises_capture_format_error():
    # IDB options hold only the if_tsresol option header (length 1), no value byte.
    body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", IF_TSRESOL, 1)
    data = ng_shb("<") + ng_block("<", IDB_TYPE, body)
    with pytest.raises(CaptureFormatError):
        _read_all(data)


# ---------------------------------------------------------------- truncation / fuzzing


def _valid_files() -> dict[str, tuple[bytes, list[int]]]:
    """name -> (file, offsets at which a prefix holds whole packets only)."""
    classic = _sample_pcap()
    classic_ends, offset = [24], 24
    for _, _, data in SAMPLE:
        offset += 16 + len(data)
        classic_ends.append(offset)
    le, le_ends = _sample_pcapng("<")
    be, be_ends = _sample_pcapng(">")
    return {
        "classic": (classic, classic_ends),
        "pcapng-le": (le, le_ends),
        "pcapng-be": (be, be_ends),
    }


VALID_FILES = _valid_files()


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_every_truncation_yields_whole_packets_or_raises_capture_format_error(name):
    data, ends = VALID_FILES[name]
    packet_count_at_end = {
        end: max(0, index - (0 if name == "classic" else 1)) for index, end in enumerate(ends)
    }
    for cut in range(len(data)):
        prefix = data[:cut]
        if cut in packet_count_at_end:
            # a prefix ending between blocks/records is a shorter valid capture
            _assert_is_sample(_read_all(prefix), packet_count_at_end[cut])
        else:
            with pytest.raises(CaptureFormatError):
                _read_all(prefix)
    _assert_is_sample(_read_all(data))


def _consume_expecting_only_format_errors(data: bytes) -> None:
    try:
        for packet in read_capture(io.BytesIO(data)):
            assert isinstance(packet.data, bytes)
    except CaptureFormatError:
        pass


HEADERS = [
    _sample_pcap()[:24],
    classic_pcap(">", True, 1, []),
    ng_shb("<"),
    ng_shb(">"),
    ng_shb("<") + ng_idb("<", 1, b"\x09"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(st.sampled_from(HEADERS), st.binary(max_size=200)).map(b"".join),
        st.tuples(st.sampled_from(sorted(VALID_FILES)), st.integers(0, 2000)).map(
            lambda choice: VALID_FILES[choice[0]][0][: choice[1]]
        ),
    )
)
def test_random_bytes_and_prefixes_only_raise_capture_format_error(data):
    _consume_expecting_only_format_errors(data)


@st.composite
def pcapng_block_sequences(draw) -> bytes:
    """A well-framed pcapng whose IDB/EPB/SPB bodies are random (any length)."""
    order = draw(st.sampled_from(["<", ">"]))
    data = ng_shb(order)
    for _ in range(draw(st.integers(1, 5))):
        block_type = draw(st.sampled_from([IDB_TYPE, EPB_TYPE, SPB_TYPE, NRB_TYPE]))
        data += ng_block(order, block_type, draw(st.binary(max_size=40)))
    return data


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(pcapng_block_sequences())
def test_well_framed_pcapng_with_random_block_bodies_only_raises_capture_format_error(data):
    _consume_expecting_only_format_errors(data)
