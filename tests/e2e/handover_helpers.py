"""Helpers of ``tests/e2e/test_handover.py``: the lab's CLI, tshark's JSON, raw frames.

Test-side code only, independent of what it checks: frames are parsed
here byte by byte, tshark's dissection is read from its ``-T json`` output.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fama_ryu.netlab import LabError, check_prerequisites, run_command

FAMA_LAB = Path(sys.executable).parent / "fama-lab"
FAMA_CONTROLLER = Path(sys.executable).parent / "fama-controller"
FAMA_MN = Path(sys.executable).parent / "fama-mn"
GRE_PROTO = 47
GRE_IPV6 = b"\x00\x00\x86\xdd"  # GRE without C/K/S, protocol 0x86DD (P14)
ICMPV6_PROTO = 58
ND_TYPES = range(133, 138)  # RS, RA, NS, NA, Redirect


# ----------------------------------------------------------------- environment


def require_prerequisites() -> None:
    """Root, Open vSwitch, tcpdump, tshark, curl and the project's programs, or a clear failure."""
    try:
        check_prerequisites(need_ovs=True)
        missing = [tool for tool in ("tcpdump", "tshark", "curl", "ss") if not shutil.which(tool)]
        if missing:
            raise LabError(f"missing programs: {', '.join(missing)} (`make system-deps`)")
        for program in (FAMA_LAB, FAMA_CONTROLLER, FAMA_MN):
            if not program.exists():
                raise LabError(f"{program} not found: `make venv`")
    except LabError as exc:
        pytest.fail(
            f"the e2e handover tests need root, Open vSwitch and the project: {exc}",
            pytrace=False,
        )


def fama_lab(lab_id: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``fama-lab --lab-id LAB_ID ARGS``; with ``check`` a failure fails the test."""
    result = subprocess.run(
        [str(FAMA_LAB), "--lab-id", lab_id, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"fama-lab {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def lab_namespaces(lab_id: str) -> list[str]:
    listed = run_command(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"{lab_id}-")]


# ----------------------------------------------------------------- tshark -T json


class Node(list[Any]):
    """A JSON object as an ordered list of (key, value): tshark repeats keys."""


def _pairs(pairs: list[tuple[str, Any]]) -> Node:
    return Node(pairs)


def tshark_packets(pcap: Path, display_filter: str) -> list[Node]:
    """The ``layers`` of each packet matching ``display_filter``, from ``tshark -T json``."""
    result = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    packets = json.loads(result.stdout or "[]", object_pairs_hook=_pairs)
    return [one(child(packet, "_source"), "layers") for packet in packets]


def walk(node: Node) -> Iterator[tuple[str, Any]]:
    for key, value in node:
        yield key, value
        if isinstance(value, Node):
            yield from walk(value)


def values(node: Node, key: str) -> list[Any]:
    return [v for k, v in walk(node) if k == key]


def one(node: Node | None, key: str) -> Any:
    assert node is not None
    found = values(node, key)
    assert len(found) == 1, f"{key}: {found!r}"
    return found[0]


def child(node: Node, key: str) -> Node | None:
    found = [v for k, v in node if k == key]
    return found[0] if found else None


def keys(node: Node) -> set[str]:
    return {k for k, _ in walk(node)}


# ----------------------------------------------------------------- frames


@dataclass(frozen=True)
class Packet6:
    src: str
    dst: str
    next_header: int
    payload: bytes


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def ipv6_of(data: bytes) -> Packet6 | None:
    """An IPv6 packet (no Ethernet header) or None."""
    if len(data) < 40 or data[0] >> 4 != 6:
        return None
    length = int.from_bytes(data[4:6], "big")
    return Packet6(text(data[8:24]), text(data[24:40]), data[6], data[40 : 40 + length])


def frame_packets(frame: bytes) -> list[Packet6]:
    """The IPv6 packet of an Ethernet frame and, for P14 GRE, the packet inside it."""
    if len(frame) < 14 or frame[12:14] != b"\x86\xdd":
        return []
    outer = ipv6_of(frame[14:])
    if outer is None:
        return []
    packets = [outer]
    if outer.next_header == GRE_PROTO and outer.payload[:4] == GRE_IPV6:
        inner = ipv6_of(outer.payload[4:])
        if inner is not None:
            packets.append(inner)
    return packets


def is_neighbour_discovery(packet: Packet6) -> bool:
    return (
        packet.next_header == ICMPV6_PROTO
        and packet.payload[:1] != b""
        and (packet.payload[0] in ND_TYPES)
    )
