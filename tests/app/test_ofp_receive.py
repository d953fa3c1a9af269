"""The shim's receive loop: packet-ins and barrier replies as bytes, the rest to Ryu.

``ofp_shim.packet_in_fields`` is checked against Ryu's own OFPPacketIn
parser on packet-ins with any match Ryu can serialise; the loop runs on a
real (green) socket pair fed in chunks of every size, and must hand each
message exactly once, in order, to the fast handler or to Ryu's path.
"""

from __future__ import annotations

import dataclasses
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
from eventlet.green import socket
from ryu.controller import ofp_event
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from fama_ryu import ofp_shim


def _packet_in(match: Any, data: bytes, xid: int = 7) -> bytes:
    """An OFPT_PACKET_IN as a switch writes it (Ryu has no serialiser for it)."""
    encoded_match = bytearray()
    match.serialize(encoded_match, 0)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), 0, 2, 0x1234)
    body += bytes(encoded_match) + bytes(2) + data
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), xid) + body


def _ryu_parsed(message: bytes) -> Any:
    version, kind, length, xid = struct.unpack_from("!BBHI", message)
    return parser.OFPPacketIn.parser(
        SimpleNamespace(), version, kind, length, xid, bytearray(message)
    )


_MATCHES = st.fixed_dictionaries(
    {"in_port": st.integers(1, ofp.OFPP_MAX)},
    optional={
        "in_phy_port": st.integers(1, ofp.OFPP_MAX),
        "metadata": st.integers(0, 2**64 - 1),
        "tunnel_id": st.integers(0, 2**64 - 1),
        "eth_type": st.just(0x86DD),
        "ipv6_dst": st.just("2001:db8::1"),
        "ip_proto": st.integers(0, 255),
    },
)


@settings(max_examples=300, deadline=None)
@given(fields=_MATCHES, data=st.binary(max_size=300))
def test_packet_in_fields_agree_with_ryus_parser(fields: dict[str, Any], data: bytes) -> None:
    message = _packet_in(parser.OFPMatch(**fields), data)
    ryu = _ryu_parsed(message)
    assert ofp_shim.packet_in_fields(message) == (ryu.match["in_port"], bytes(ryu.data))


@pytest.mark.parametrize(
    ("name", "mangle"),
    [
        ("no in_port", lambda m: _packet_in(parser.OFPMatch(metadata=1), b"x")),
        ("empty match", lambda m: _packet_in(parser.OFPMatch(), b"x")),
        ("standard match type", lambda m: m[:24] + b"\x00\x00" + m[26:]),
        ("match longer than the message", lambda m: m[:26] + b"\x0f\xf0" + m[28:]),
        ("OXM overrunning the match", lambda m: m[:31] + b"\x40" + m[32:]),
        ("truncated header", lambda m: m[:20]),
    ],
)
def test_packet_ins_the_fast_parser_cannot_read_go_to_ryu(name: str, mangle: Any) -> None:
    message = mangle(_packet_in(parser.OFPMatch(in_port=3), b"frame"))
    assert ofp_shim.packet_in_fields(message) is None, name


class _Brick:
    """Ryu's ofp_event brick as the loop uses it: observers and in-loop handlers."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def send_event_to_observers(self, event: Any, state: Any) -> None:
        self.events.append(event)

    def get_handlers(self, event: Any, state: Any) -> list[Any]:
        return []


def _barrier_reply(xid: int) -> bytes:
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_BARRIER_REPLY, 8, xid)


def _echo_request(xid: int, payload: bytes = b"ping") -> bytes:
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_ECHO_REQUEST, 8 + len(payload), xid) + (
        payload
    )


def _run_loop(stream: bytes, chunk: int, accept: Any) -> tuple[list[Any], _Brick]:
    """Feed ``stream`` to the receive loop ``chunk`` bytes at a time; what went where."""
    ours, theirs = socket.socketpair()
    brick = _Brick()
    datapath = SimpleNamespace(socket=ours, state=MAIN_DISPATCHER, ofp_brick=brick, id=1)
    fast: list[Any] = []

    def packet_in(dp: Any, in_port: int, frame: bytes) -> bool:
        assert dp is datapath
        fast.append(("packet_in", in_port, frame))
        return bool(accept(frame))

    def barrier_reply(dp: Any, xid: int) -> bool:
        fast.append(("barrier", xid))
        return True

    def read_done() -> None:
        fast.append("read done")

    saved = dataclasses.replace(ofp_shim._fast)
    ofp_shim._fast.packet_in, ofp_shim._fast.barrier_reply = packet_in, barrier_reply
    ofp_shim._fast.read_done = read_done
    try:
        loop = hub.spawn(ofp_shim._receive_loop, datapath)
        for start in range(0, len(stream), chunk):
            theirs.sendall(stream[start : start + chunk])
            hub.sleep(0)
        theirs.close()
        hub.joinall([loop])
    finally:
        ofp_shim._fast = saved
        ours.close()
    datapath.state = DEAD_DISPATCHER
    return fast, brick


@pytest.mark.parametrize("chunk", [1, 3, 8, 9, 100, 65536])
def test_the_loop_hands_each_message_once_in_order_whatever_the_reads(chunk: int) -> None:
    frames = [bytes([n]) * (20 + n) for n in range(6)]
    stream = b"".join(
        [
            _packet_in(parser.OFPMatch(in_port=1), frames[0]),
            _barrier_reply(41),
            _echo_request(5),
            _packet_in(parser.OFPMatch(in_port=2, metadata=9), frames[1]),
            _packet_in(parser.OFPMatch(in_port=3), frames[2]),  # declined: to Ryu
            _packet_in(parser.OFPMatch(metadata=3), frames[3]),  # no in_port: to Ryu
            _barrier_reply(42),
        ]
    )
    fast, brick = _run_loop(stream, chunk, accept=lambda frame: frame != frames[2])
    # After every read, and only after a read: a message is never handed on twice.
    assert fast[-1] == "read done"
    fast = [entry for entry in fast if entry != "read done"]
    assert fast == [
        ("packet_in", 1, frames[0]),
        ("barrier", 41),
        ("packet_in", 2, frames[1]),
        ("packet_in", 3, frames[2]),
        ("barrier", 42),
    ]
    kinds = [type(event) for event in brick.events]
    assert kinds == [
        ofp_event.EventOFPEchoRequest,
        ofp_event.EventOFPPacketIn,
        ofp_event.EventOFPPacketIn,
    ]
    assert bytes(brick.events[1].msg.data) == frames[2]
    assert brick.events[2].msg.match.get("metadata") == 3


def test_a_truncated_last_message_is_never_handed_on() -> None:
    whole = _packet_in(parser.OFPMatch(in_port=1), b"whole")
    fast, brick = _run_loop(whole + whole[:-3], 7, accept=lambda frame: True)
    assert [entry for entry in fast if entry != "read done"] == [("packet_in", 1, b"whole")]
    assert brick.events == []
