"""OpenFlow 1.3 wire encoding of the flow model, with :mod:`struct` only.

The controller's hot path (a Binding Update costs three flow-mods, a
barrier and a packet-out) spends most of its time in a general-purpose
OpenFlow library building and serialising message objects.  This small
strict encoder covers exactly the messages and fields of ``model``; its
output is checked byte for byte against Ryu's serialiser in the tests, so
the shim can hand the bytes straight to the switch connection.

Layouts follow OpenFlow 1.3.5 §7 (``ofp_flow_mod``, ``ofp_match`` with
OXM TLVs, instructions, actions, ``ofp_meter_mod`` with drop bands,
``ofp_packet_out``); the tunnel fields
are Open vSwitch's NXM_1 class (``NXM_NX_TUN_IPV6_SRC/DST``) in OXM form.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from openflow_pipelines.model import (
    Action,
    Barrier,
    DecNwTtl,
    FlowMod,
    FlowStep,
    Match,
    MatchValue,
    MeterMod,
    Output,
    SetField,
)

OFP_VERSION = 4
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_BARRIER_REQUEST = 20
OFPT_METER_MOD = 29
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = 0xFFFFFFFF
OFPP_CONTROLLER = 0xFFFFFFFD
OFPG_ANY = 0xFFFFFFFF
OFPMT_OXM = 1
OFPIT_GOTO_TABLE = 1
OFPIT_APPLY_ACTIONS = 4
OFPIT_METER = 6
OFPMBT_DROP = 1
OFPAT_OUTPUT = 0
OFPAT_DEC_NW_TTL = 24
OFPAT_SET_FIELD = 25
MAX_XID = 0xFFFFFFFF

_HEADER = struct.Struct("!BBHI")
_FLOW_MOD_BODY = struct.Struct("!QQBBHHHIIIH2x")
_PACKET_OUT_BODY = struct.Struct("!IIH6x")
_OUTPUT = struct.Struct("!HHIH6x")
_METER_INSTRUCTION = struct.Struct("!HHI")
_METER_MOD_BODY = struct.Struct("!HHI")
_DROP_BAND = struct.Struct("!HHII4x")
_DEC_NW_TTL = struct.pack("!HH4x", OFPAT_DEC_NW_TTL, 8)
_OXM_BASIC = 0x8000  # OFPXMC_OPENFLOW_BASIC
_NXM_1 = 0x0001  # Open vSwitch's NXM_1 class, used in OXM form

# name -> (class, field number, value length); OpenFlow 1.3 §7.2.3.7, nicira_ext.
_OXM: dict[str, tuple[int, int, int]] = {
    "in_port": (_OXM_BASIC, 0, 4),
    "eth_dst": (_OXM_BASIC, 3, 6),
    "eth_src": (_OXM_BASIC, 4, 6),
    "eth_type": (_OXM_BASIC, 5, 2),
    "ip_proto": (_OXM_BASIC, 10, 1),
    "ipv6_src": (_OXM_BASIC, 26, 16),
    "ipv6_dst": (_OXM_BASIC, 27, 16),
    "icmpv6_type": (_OXM_BASIC, 29, 1),
    "ipv6_nd_target": (_OXM_BASIC, 31, 16),
    "tun_ipv6_src": (_NXM_1, 109, 16),
    "tun_ipv6_dst": (_NXM_1, 110, 16),
}


def _oxm_sort_key(name: str) -> int:
    # The order Ryu emits (by class and field number): prerequisites such as
    # eth_type come before the fields that need them, as OpenFlow requires.
    oxm_class, number, _ = _OXM[name]
    return (oxm_class << 7) | number


# Precomputed TLV headers: (exact, masked) per field.
_OXM_HEADERS = {
    name: (
        struct.pack("!HBB", oxm_class, number << 1, length),
        struct.pack("!HBB", oxm_class, number << 1 | 1, 2 * length),
    )
    for name, (oxm_class, number, length) in _OXM.items()
}
_FIELD_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _wire_order(names: tuple[str, ...]) -> tuple[str, ...]:
    order = _FIELD_ORDERS.get(names)
    if order is None:
        order = _FIELD_ORDERS[names] = tuple(sorted(names, key=_oxm_sort_key))
    return order


def _value_bytes(name: str, value: int | str) -> bytes:
    length = _OXM[name][2]
    if isinstance(value, int):
        return value.to_bytes(length, "big")
    if length == 16:
        return socket.inet_pton(socket.AF_INET6, value)
    return bytes.fromhex(value.replace(":", ""))


def _oxm(name: str, value: MatchValue) -> bytes:
    exact, masked = _OXM_HEADERS[name]
    if isinstance(value, tuple):
        return masked + _value_bytes(name, value[0]) + _value_bytes(name, value[1])
    return exact + _value_bytes(name, value)


def _pad8(length: int) -> int:
    return (length + 7) // 8 * 8 - length


def encode_match(match: Match) -> bytes:
    """``ofp_match`` of type OXM, padded to a multiple of 8 bytes."""
    fields = b"".join(_oxm(name, match[name]) for name in _wire_order(tuple(match)))
    length = 4 + len(fields)
    return struct.pack("!HH", OFPMT_OXM, length) + fields + bytes(_pad8(length))


def encode_action(action: Action) -> bytes:
    if isinstance(action, Output):
        return _OUTPUT.pack(OFPAT_OUTPUT, 16, action.port, action.max_len or 0)
    if isinstance(action, DecNwTtl):
        return _DEC_NW_TTL
    if isinstance(action, SetField):
        field = _oxm(action.field, action.value)
        length = 4 + len(field)
        length += _pad8(length)
        return struct.pack("!HH", OFPAT_SET_FIELD, length) + field + bytes(length - 4 - len(field))
    raise TypeError(f"unknown action {action!r}")


def _instructions(flow: FlowMod) -> bytes:
    parts = []
    if flow.meter_id is not None:
        # First, as OpenFlow 1.3 §5.9 orders instructions: a dropped packet runs no actions.
        parts.append(_METER_INSTRUCTION.pack(OFPIT_METER, _METER_INSTRUCTION.size, flow.meter_id))
    if flow.actions:
        actions = b"".join(encode_action(action) for action in flow.actions)
        parts.append(struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions)
    if flow.goto_table is not None:
        parts.append(struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, flow.goto_table))
    return b"".join(parts)


# A FlowMod may carry its own encoding (xid 0) under this attribute: set by
# FlowModTemplate.fill for flows filled from a template, read back here.
_ENCODED = "_wire_encoding"
_HARD_TIMEOUT_OFFSET = 8 + 8 + 8 + 1 + 1 + 2  # header, cookie, mask, table, command, idle


def encode_flow_mod(flow: FlowMod, xid: int) -> bytes:
    """One OFPT_FLOW_MOD (no buffer; deletes use out_port/out_group ANY)."""
    encoded = flow.__dict__.get(_ENCODED)
    if encoded is not None:
        return encoded[:4] + xid.to_bytes(4, "big") + encoded[8:]
    body = (
        _FLOW_MOD_BODY.pack(
            flow.cookie,
            flow.cookie_mask,
            flow.table_id,
            int(flow.command),
            flow.idle_timeout,
            flow.hard_timeout,
            flow.priority,
            OFP_NO_BUFFER,
            OFPP_ANY,
            OFPG_ANY,
            int(flow.flags),
        )
        + encode_match(flow.match)
        + _instructions(flow)
    )
    return _HEADER.pack(OFP_VERSION, OFPT_FLOW_MOD, 8 + len(body), xid) + body


def encode_meter_mod(meter: MeterMod, xid: int) -> bytes:
    """One OFPT_METER_MOD with its drop bands."""
    bands = b"".join(
        _DROP_BAND.pack(OFPMBT_DROP, _DROP_BAND.size, band.rate, band.burst_size)
        for band in meter.bands
    )
    body = _METER_MOD_BODY.pack(int(meter.command), int(meter.flags), meter.meter_id) + bands
    return _HEADER.pack(OFP_VERSION, OFPT_METER_MOD, 8 + len(body), xid) + body


class FlowModTemplate:
    """The encoding of a checked flow-mod whose IPv6 addresses and hard timeout vary.

    The template is encoded once; a filled copy gets its encoding by
    patching the placeholder addresses (every place they occur: match
    fields, set-field actions) and the hard timeout into those bytes, the
    same bytes :func:`encode_flow_mod` would compute (checked in the tests).
    """

    def __init__(self, flow: FlowMod, placeholders: Iterable[str]) -> None:
        self.encoded = encode_flow_mod(flow, 0)
        self.offsets: dict[bytes, list[int]] = {}
        for text in placeholders:
            packed = socket.inet_pton(socket.AF_INET6, text)
            expected = sum(value == text for value in flow.match.values()) + sum(
                isinstance(action, SetField) and action.value == text for action in flow.actions
            )
            found = [i for i in range(len(self.encoded)) if self.encoded.startswith(packed, i)]
            if len(found) != expected:
                raise ValueError(f"placeholder {text} is not unique in the template's encoding")
            self.offsets[packed] = found

    def fill(self, flow: FlowMod, addresses: dict[bytes, bytes]) -> FlowMod:
        """Attach to ``flow`` (a copy of the template with ``addresses`` swapped in,
        placeholder -> address, packed) its encoding."""
        data = bytearray(self.encoded)
        for placeholder, address in addresses.items():
            for offset in self.offsets.get(placeholder, ()):
                data[offset : offset + 16] = address
        data[_HARD_TIMEOUT_OFFSET : _HARD_TIMEOUT_OFFSET + 2] = flow.hard_timeout.to_bytes(2, "big")
        flow.__dict__[_ENCODED] = bytes(data)
        return flow


def encode_message(message: FlowMod | MeterMod, xid: int) -> bytes:
    """A flow-mod or a meter-mod, as one phase of :func:`split_phases` holds them."""
    if isinstance(message, MeterMod):
        return encode_meter_mod(message, xid)
    return encode_flow_mod(message, xid)


def encode_barrier_request(xid: int) -> bytes:
    return _HEADER.pack(OFP_VERSION, OFPT_BARRIER_REQUEST, 8, xid)


def encode_packet_out(port: int, frame: bytes, xid: int) -> bytes:
    """Send ``frame`` out ``port`` as the controller (no buffer, no table lookup)."""
    action = _OUTPUT.pack(OFPAT_OUTPUT, 16, port, 0)
    body = _PACKET_OUT_BODY.pack(OFP_NO_BUFFER, OFPP_CONTROLLER, len(action)) + action + frame
    return _HEADER.pack(OFP_VERSION, OFPT_PACKET_OUT, 8 + len(body), xid) + body


Message = FlowMod | MeterMod


def split_phases(steps: Iterable[FlowStep]) -> list[list[Message]]:
    """Flow- and meter-mods between barriers: phase *i* must take effect before phase *i+1*."""
    phases: list[list[Message]] = [[]]
    for step in steps:
        if isinstance(step, Barrier):
            if phases[-1]:
                phases.append([])
        else:
            phases[-1].append(step)
    if not phases[-1]:
        phases.pop()
    return phases


def merge_phases(step_lists: Iterable[Iterable[FlowStep]]) -> list[list[Message]]:
    """Interleave independent changes phase by phase, so a batch needs as few barriers
    as its longest change (each change keeps its own order)."""
    merged: list[list[Message]] = []
    for steps in step_lists:
        for index, phase in enumerate(split_phases(steps)):
            if index == len(merged):
                merged.append([])
            merged[index].extend(phase)
    return merged
