"""A fake Ryu datapath for the app tests, and OpenFlow events built by hand.

The app encodes its messages itself (``openflow_pipelines.wire``) and
writes them with ``Datapath.send``; :class:`FakeDatapath` decodes every
write back into Ryu message objects, so assertions read Ryu's message
classes.  Ryu 4.34 has no parser for packet-outs, meter-mods or barrier
requests (a switch never sends them), so those are decoded here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser
from ryu.ofproto import ofproto_v1_3_parser as parser

_HEADER = struct.Struct("!BBHI")
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_BARRIER_REQUEST = 20
OFPT_METER_MOD = 29


def decode_messages(datapath: Any, data: bytes) -> list[Any]:
    """Every OpenFlow 1.3 message in ``data`` (one write may carry several)."""
    messages = []
    offset = 0
    while offset < len(data):
        version, msg_type, length, xid = _HEADER.unpack_from(data, offset)
        assert version == 4 and length >= 8 and offset + length <= len(data), data.hex()
        buf = data[offset : offset + length]
        if msg_type == OFPT_FLOW_MOD:
            message = parser.OFPFlowMod.parser(datapath, version, msg_type, length, xid, buf)
        elif msg_type == OFPT_PACKET_OUT:
            buffer_id, in_port, actions_len = struct.unpack_from("!IIH", buf, 8)
            actions = []
            position = 24
            while position < 24 + actions_len:
                action = parser.OFPAction.parser(buf, position)
                actions.append(action)
                position += action.len
            message = parser.OFPPacketOut(
                datapath, buffer_id, in_port, actions, data=buf[24 + actions_len :]
            )
        elif msg_type == OFPT_METER_MOD:
            command, flags, meter_id = struct.unpack_from("!HHI", buf, 8)
            bands = []
            position = 16
            while position < length:
                band = parser.OFPMeterBandHeader.parser(buf, position)
                bands.append(band)
                position += band.len
            message = parser.OFPMeterMod(datapath, command, flags, meter_id, bands)
        elif msg_type == OFPT_BARRIER_REQUEST:
            assert length == 8
            message = parser.OFPBarrierRequest(datapath)
        else:
            raise AssertionError(f"unexpected message type {msg_type} from the app")
        message.xid = xid
        messages.append(message)
        offset += length
    return messages


class FakeDatapath:
    """What the app uses of ``ryu.controller.controller.Datapath``; keeps what it is sent."""

    def __init__(self, dpid: int, on_send: Callable[[Any], None] | None = None) -> None:
        self.id = dpid
        self.ofproto = ofproto_v1_3
        self.ofproto_parser = ofproto_v1_3_parser
        self.sent: list[Any] = []
        self.xid = 0x1000
        self.on_send = on_send

    def set_xid(self, message: Any) -> int:
        self.xid += 1
        message.set_xid(self.xid)
        return self.xid

    def send(self, data: bytes) -> bool:
        """The app's raw writes, decoded for the assertions."""
        for message in decode_messages(self, data):
            self.send_msg(message)
        return True

    def send_msg(self, message: Any) -> None:
        if message.xid is None:
            self.set_xid(message)
        message.serialize()  # every message must encode
        if self.on_send is not None:
            self.on_send(message)
        self.sent.append(message)

    def take(self) -> list[Any]:
        sent, self.sent = self.sent, []
        return sent


def event(datapath: FakeDatapath, **fields: Any) -> SimpleNamespace:
    """An OpenFlow event as the app's handlers read it (``event.msg``)."""
    return SimpleNamespace(msg=SimpleNamespace(datapath=datapath, **fields))
