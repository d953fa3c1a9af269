"""A configured, connected DAR driven with Ethernet frames, as the Ryu shim drives it.

Works are executed in the shim's order (a work with changes is committed),
and each packet's RSA work is read from the process-wide counter of
``fama_ryu.auth``.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass

from fama_ryu import auth, mh
from fama_ryu.config import parse_domain
from fama_ryu.dar import Dar, PacketOut, Work

ACCESS_1, ACCESS_2, CORE, GRE = 1, 2, 10, 20
ROUTER_MAC = bytes.fromhex("020000000a01")
CORE_MAC = bytes.fromhex("02000000ffff")
ANCHOR_TEXT = "2001:db8:a::1"  # mn_factory.ANCHOR
T0 = 1_000_000.0


def domain_dict(**overrides: object) -> dict[str, object]:
    dar: dict[str, object] = {
        "name": "dara",
        "dpid": 0xA,
        "access_ports": [ACCESS_1, ACCESS_2],
        "core_port": CORE,
        "gre_port": GRE,
        "router_mac": "02:00:00:00:0a:01",
        "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
        "anchor_address": ANCHOR_TEXT,
        "link_local": "fe80::a:1",
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": "02:00:00:00:ff:ff"},
    }
    dar.update(overrides)
    return {"dars": [dar]}


def from_core(ipv6_packet: bytes) -> bytes:
    return mh.build_ethernet_frame(CORE_MAC, ROUTER_MAC, ipv6_packet)


@dataclass
class Sent:
    """What one packet cost and produced."""

    work: Work
    rsa: dict[str, int]  # RSA operations by kind (sign, verify, encrypt, decrypt)

    @property
    def rsa_operations(self) -> int:
        return sum(self.rsa.values())

    @property
    def replies(self) -> list[PacketOut]:
        return self.work.packet_outs + self.work.after_flows

    def only_reply(self) -> bytes:
        """The one frame sent back, checked to leave by the core port to the next hop."""
        [out] = self.replies
        assert out.port == CORE and out.frame[:6] == CORE_MAC and out.frame[6:12] == ROUTER_MAC
        return out.frame

    def binding_ack(self) -> mh.BindingAck:
        message = mh.parse_ethernet_frame(self.only_reply()).message
        assert isinstance(message, mh.BindingAck), message
        return message


class Rig:
    def __init__(self, seed: int = 1, **overrides: object) -> None:
        domain = parse_domain(domain_dict(**overrides), "hardening")
        self.dar = Dar(domain.dars[0], domain, random.Random(seed).randbytes)
        self.now = T0
        self.dar.connect({}, 1, T0)

    def send_frame(self, frame: bytes, port: int = CORE, now: float | None = None) -> Sent:
        before = auth.RSA_OPERATIONS.snapshot()
        work = self.dar.packet_in(port, frame, self.now if now is None else now)
        if work.changes:
            self.dar.committed(work.changes)
        after = auth.RSA_OPERATIONS.snapshot()
        return Sent(work, {kind: after[kind] - before[kind] for kind in after})

    def send(self, ipv6_packet: bytes, now: float | None = None) -> Sent:
        return self.send_frame(from_core(ipv6_packet), now=now)

    def assert_dropped(self, ipv6_packet: bytes, counter: str) -> None:
        """Silent drop: nothing sent, nothing changed, no RSA work, one count."""
        before = self.dar.counters[counter]
        sent = self.send(ipv6_packet)
        assert sent.work == Work(), sent.work
        assert sent.rsa_operations == 0
        assert self.dar.counters[counter] == before + 1, dict(self.dar.counters)

    def bound(self, hoa: bytes) -> bool:
        return any(binding.hoa == hoa for binding in self.dar.bindings())


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def icmpv6_of(frame: bytes) -> tuple[bytes, bytes, int, int, int, bytes]:
    """(source, destination, type, code, pointer, invoking packet) of an ICMPv6 error frame,
    after checking its IPv6 framing and its checksum."""
    packet = frame[14:]
    assert frame[12:14] == b"\x86\xdd" and packet[0] >> 4 == 6
    payload_length, next_header = struct.unpack_from("!HB", packet, 4)
    assert next_header == mh.IPPROTO_ICMPV6 and len(packet) == 40 + payload_length
    source, destination, message = packet[8:24], packet[24:40], packet[40:]
    assert mh.upper_layer_checksum(source, destination, mh.IPPROTO_ICMPV6, message) == 0
    icmp_type, code, _, pointer = struct.unpack_from("!BBHI", message)
    return source, destination, icmp_type, code, pointer, message[8:]
