"""Minimal capture-file reading and writing for the ``fama`` tools.

Writes classic pcap (Ethernet link type) and reads both classic pcap and
pcapng, which is what tcpdump and tshark produce by default.  Only what the
tools need: packets and their timestamps, strict about truncation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_PCAP_MAGIC_USEC = 0xA1B2C3D4
_PCAP_MAGIC_NSEC = 0xA1B23C4D
_PCAPNG_SECTION_HEADER = 0x0A0D0D0A
_PCAPNG_INTERFACE_DESCRIPTION = 0x00000001
_PCAPNG_ENHANCED_PACKET = 0x00000006
_PCAPNG_SIMPLE_PACKET = 0x00000003
_PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D


class CaptureFormatError(ValueError):
    """The file is not a capture this module can read."""


@dataclass(frozen=True)
class CapturedPacket:
    timestamp: float
    linktype: int
    data: bytes


def write_pcap(stream: BinaryIO, packets: Iterable[tuple[float, bytes]]) -> int:
    """Write Ethernet frames as a classic pcap file; return the packet count."""
    stream.write(struct.pack("<IHHiIII", _PCAP_MAGIC_USEC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    count = 0
    for timestamp, frame in packets:
        seconds, micros = divmod(round(timestamp * 1_000_000), 1_000_000)
        stream.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
        stream.write(frame)
        count += 1
    return count


def read_capture(stream: BinaryIO) -> Iterator[CapturedPacket]:
    """Yield the packets of a pcap or pcapng file."""
    head = stream.read(4)
    if len(head) < 4:
        raise CaptureFormatError("file too short for a capture header")
    magic_le = struct.unpack("<I", head)[0]
    if magic_le == _PCAPNG_SECTION_HEADER:
        yield from _read_pcapng(stream, head)
        return
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", head)[0]
        if magic in (_PCAP_MAGIC_USEC, _PCAP_MAGIC_NSEC):
            yield from _read_pcap(stream, order, magic == _PCAP_MAGIC_NSEC)
            return
    raise CaptureFormatError(f"unknown capture magic {head.hex()}")


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CaptureFormatError(f"truncated {what}: wanted {size} bytes, got {len(data)}")
    return data


def _read_pcap(stream: BinaryIO, order: str, nanoseconds: bool) -> Iterator[CapturedPacket]:
    header = _read_exact(stream, 20, "pcap header")
    linktype = struct.unpack(order + "HHiIII", header)[5] & 0x0FFFFFFF
    divisor = 1e9 if nanoseconds else 1e6
    while True:
        record = stream.read(16)
        if not record:
            return
        if len(record) != 16:
            raise CaptureFormatError("truncated pcap record header")
        seconds, fraction, captured, _ = struct.unpack(order + "IIII", record)
        data = _read_exact(stream, captured, "pcap record")
        yield CapturedPacket(seconds + fraction / divisor, linktype, data)


def _read_pcapng(stream: BinaryIO, head: bytes) -> Iterator[CapturedPacket]:
    linktypes: list[int] = []
    resolutions: list[float] = []
    order = "<"
    block_head = head
    while True:
        if not block_head:
            return
        if len(block_head) != 4:
            raise CaptureFormatError("truncated pcapng block")
        length_bytes = _read_exact(stream, 4, "pcapng block length")
        if struct.unpack("<I", block_head)[0] == _PCAPNG_SECTION_HEADER:
            magic = _read_exact(stream, 4, "pcapng byte-order magic")
            order = "<" if struct.unpack("<I", magic)[0] == _PCAPNG_BYTE_ORDER_MAGIC else ">"
            total = struct.unpack(order + "I", length_bytes)[0]
            if total < 28 or total % 4:
                raise CaptureFormatError(f"bad section header length {total}")
            _read_exact(stream, total - 12, "pcapng section header")
            linktypes, resolutions = [], []
        else:
            block_type = struct.unpack(order + "I", block_head)[0]
            total = struct.unpack(order + "I", length_bytes)[0]
            if total < 12 or total % 4:
                raise CaptureFormatError(f"bad pcapng block length {total}")
            body = _read_exact(stream, total - 8, "pcapng block")[:-4]
            if block_type == _PCAPNG_INTERFACE_DESCRIPTION:
                _require_body(body, 8, "interface description")
                linktypes.append(struct.unpack_from(order + "H", body, 0)[0])
                resolutions.append(_interface_resolution(body[8:], order))
            elif block_type == _PCAPNG_ENHANCED_PACKET:
                _require_body(body, 20, "enhanced packet")
                interface, high, low, captured, _ = struct.unpack_from(order + "IIIII", body, 0)
                if interface >= len(linktypes) or 20 + captured > len(body):
                    raise CaptureFormatError("enhanced packet block out of bounds")
                ticks = (high << 32) | low
                yield CapturedPacket(
                    ticks * resolutions[interface], linktypes[interface], body[20 : 20 + captured]
                )
            elif block_type == _PCAPNG_SIMPLE_PACKET:
                _require_body(body, 4, "simple packet")
                if not linktypes:
                    raise CaptureFormatError("simple packet block before interface")
                original_length = struct.unpack_from(order + "I", body, 0)[0]
                yield CapturedPacket(0.0, linktypes[0], body[4 : 4 + original_length])
        block_head = stream.read(4)


def _require_body(body: bytes, minimum: int, what: str) -> None:
    if len(body) < minimum:
        raise CaptureFormatError(f"{what} block body of {len(body)} bytes")


def _interface_resolution(options: bytes, order: str) -> float:
    """Seconds per timestamp tick from the if_tsresol option (default 1 us)."""
    position = 0
    while position + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, position)
        if code == 0:
            break
        if position + 4 + length > len(options):
            raise CaptureFormatError("interface option overruns its block")
        if code == 9 and length >= 1:
            value = options[position + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        position += 4 + length + (-length % 4)
    return 1e-6
