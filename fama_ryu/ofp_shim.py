"""The Ryu OpenFlow 1.3 pieces the app uses: the receive path, ids, requests.

One of the few modules that import ryu (with ``app`` and ``rest``): moving to
os-ken is a rename here.  Flow-mods, meter-mods, barriers and packet-outs are
encoded by ``openflow_pipelines.wire`` and written as bytes; packet-ins and
barrier replies are read here as bytes (:func:`take_over_receive`); what is
left as Ryu objects is the port-description request and the messages the
app rarely sees (features, port descriptions, errors, flow removals).
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ryu.base import app_manager  # noqa: F401  (ryu.controller imports cycle through it)

# isort: split
from ryu.controller import controller, ofp_event
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.lib import hub
from ryu.ofproto import ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser


def port_desc_request(datapath: Any) -> Any:
    return parser.OFPPortDescStatsRequest(datapath, 0)


def next_xid(datapath: Any) -> int:
    """A transaction id from the connection's sequence, as Ryu's own messages get."""
    datapath.xid = (datapath.xid + 1) & ofp.MAX_XID
    return int(datapath.xid)


# ---------------------------------------------------------------- receive path
#
# Ryu's Datapath._recv_loop reads a message in two recv calls (header, body),
# copies its buffer per message, parses every message into objects and hands
# each to the apps through an event queue: for a Binding Update that costs
# about as much as the controller's whole decision.  The loop below reads
# what the socket has, and offers packet-ins and barrier replies, as bytes,
# to handlers the app registers; they run in this connection's green thread.
# A handler returning False (or any other message) takes Ryu's own path:
# parsed into an object, to the ofp_event handlers and every observing app.

RECV_SIZE = 65536
_HEADER = struct.Struct("!BBHI")
_PACKET_IN_FIXED = struct.Struct("!IHBBQHH")  # buffer_id .. cookie, match type, match length
_OXM_IN_PORT = 0x8000_0004  # OFPXMC_OPENFLOW_BASIC, OFPXMT_OFB_IN_PORT, no mask, 4 bytes

PacketInHandler = Callable[[Any, int, bytes], bool]
BarrierReplyHandler = Callable[[Any, int], bool]
ReadDoneHandler = Callable[[], None]


@dataclass
class _FastHandlers:
    packet_in: PacketInHandler | None = None
    barrier_reply: BarrierReplyHandler | None = None
    read_done: ReadDoneHandler | None = None


_fast = _FastHandlers()


def packet_in_fields(message: bytes) -> tuple[int, bytes] | None:
    """``(in_port, data)`` of an OpenFlow 1.3 PACKET_IN, or None if it is not
    a well-formed one with an in_port (Ryu's parser then has its say)."""
    if len(message) < 8 + _PACKET_IN_FIXED.size:
        return None
    *_, match_type, match_length = _PACKET_IN_FIXED.unpack_from(message, 8)
    match_end = 8 + 16 + match_length
    data_start = 8 + 16 + (match_length + 7) // 8 * 8 + 2
    if match_type != ofp.OFPMT_OXM or match_length < 4 or data_start > len(message):
        return None
    offset, in_port = 8 + 16 + 4, None
    while offset + 4 <= match_end:
        header = int.from_bytes(message[offset : offset + 4], "big")
        length = header & 0xFF
        if offset + 4 + length > match_end:
            return None
        if header == _OXM_IN_PORT:
            in_port = int.from_bytes(message[offset + 4 : offset + 8], "big")
        offset += 4 + length
    if in_port is None or offset != match_end:
        return None
    return in_port, message[data_start:]


def _dispatch_to_ryu(
    datapath: Any, version: int, kind: int, length: int, xid: int, message: bytes
) -> None:
    parsed = ofproto_parser.msg(datapath, version, kind, length, xid, bytearray(message))
    if parsed is None:
        return
    event = ofp_event.ofp_msg_to_ev(parsed)
    brick = datapath.ofp_brick
    brick.send_event_to_observers(event, datapath.state)
    for handler in brick.get_handlers(event, datapath.state):
        handler(event)


def _offer(datapath: Any, version: int, kind: int, xid: int, message: bytes) -> bool:
    if version != ofp.OFP_VERSION or datapath.state != MAIN_DISPATCHER:
        return False
    if kind == ofp.OFPT_PACKET_IN and _fast.packet_in is not None:
        fields = packet_in_fields(message)
        return fields is not None and _fast.packet_in(datapath, *fields)
    if kind == ofp.OFPT_BARRIER_REPLY and _fast.barrier_reply is not None:
        return _fast.barrier_reply(datapath, xid)
    return False


def _receive_loop(datapath: Any) -> None:
    """Replaces ``Datapath._recv_loop`` (same ending: connection closed, socket closed)."""
    pending = b""
    while datapath.state != DEAD_DISPATCHER:
        try:
            data = datapath.socket.recv(RECV_SIZE)
        except (TimeoutError, ssl.SSLError):  # a read timeout: try again
            continue
        except (EOFError, OSError):
            break
        if not data:
            break
        buffer = pending + data if pending else data
        offset, end = 0, len(buffer)
        while end - offset >= _HEADER.size:
            version, kind, length, xid = _HEADER.unpack_from(buffer, offset)
            length = max(length, _HEADER.size)  # a bogus length still makes progress
            if end - offset < length:
                break
            message = buffer[offset : offset + length]
            offset += length
            if not _offer(datapath, version, kind, xid, message):
                _dispatch_to_ryu(datapath, version, kind, length, xid, message)
        pending = buffer[offset:]
        if _fast.read_done is not None:
            _fast.read_done()
        hub.sleep(0)  # the other switches' reads and the timers, between reads


def take_over_receive(
    packet_in: PacketInHandler, barrier_reply: BarrierReplyHandler, read_done: ReadDoneHandler
) -> None:
    """Route packet-ins and barrier replies of switches connecting from now on
    to ``packet_in(datapath, in_port, frame)`` and ``barrier_reply(datapath, xid)``;
    ``read_done()`` is called after the messages of each read."""
    _fast.packet_in, _fast.barrier_reply, _fast.read_done = packet_in, barrier_reply, read_done
    controller.Datapath._recv_loop = controller._deactivate(_receive_loop)
