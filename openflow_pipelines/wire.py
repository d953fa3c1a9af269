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

import operator
import socket
import struct
from collections.abc import Callable, Iterable, Mapping

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
    ipv6_text,
    with_addresses,
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
_XID = struct.Struct("!I")
_TIMEOUT = struct.Struct("!H")
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


# A flow filled from a FlowModTemplate carries (template, addresses) under this
# attribute: its bytes are formatted when sent, not when built.
_FILLED_FROM = "_wire_filled_from"
_XID_OFFSET = 4
_HARD_TIMEOUT_OFFSET = 8 + 8 + 8 + 1 + 1 + 2  # header, cookie, mask, table, command, idle


def encode_flow_mod(flow: FlowMod, xid: int) -> bytes:
    """One OFPT_FLOW_MOD (no buffer; deletes use out_port/out_group ANY)."""
    filled_from = flow.__dict__.get(_FILLED_FROM)
    if filled_from is not None:
        template, addresses = filled_from
        return template.encode(addresses, flow.hard_timeout, xid)
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
    """A checked flow-mod whose IPv6 addresses and hard timeout vary, encoded once.

    The template's encoding is kept as a bytes %-format with a ``%b`` where
    the xid, the hard timeout and each placeholder address (every place it
    occurs: match fields, set-field actions) go, so a filled flow's encoding
    is one formatting: the same bytes :func:`encode_flow_mod` computes for
    an equal flow (checked in the tests).
    """

    def __init__(self, flow: FlowMod, placeholders: Iterable[bytes]) -> None:
        self.flow = flow
        encoded = encode_flow_mod(flow, 0)
        # (offset, length, placeholder); the xid and the hard timeout come first,
        # as an address found before the match would have been refused as not unique.
        spans: list[tuple[int, int, bytes | None]] = [
            (_XID_OFFSET, 4, None),
            (_HARD_TIMEOUT_OFFSET, 2, None),
        ]
        for packed in placeholders:
            text = ipv6_text(packed)
            expected = sum(value == text for value in flow.match.values()) + sum(
                isinstance(action, SetField) and action.value == text for action in flow.actions
            )
            found = [i for i in range(len(encoded)) if encoded.startswith(packed, i)]
            if len(found) != expected:
                raise ValueError(f"placeholder {text} is not unique in the template's encoding")
            spans += ((offset, len(packed), packed) for offset in found)
        spans.sort(key=lambda span: span[0])
        pieces = []
        position = 0
        for offset, length, _ in spans:
            if offset < position:
                raise ValueError("placeholders overlap in the template's encoding")
            pieces.append(encoded[position:offset])
            position = offset + length
        pieces.append(encoded[position:])
        self._format = b"%b".join(piece.replace(b"%", b"%%") for piece in pieces)
        in_order = tuple(packed for _, _, packed in spans if packed is not None)
        self._addresses_in_order = _values_getter(in_order)

    def filled(self, addresses: Mapping[bytes, bytes], hard_timeout: int) -> FlowMod:
        """The flow with ``addresses`` swapped in (``model.with_addresses``: placeholder ->
        address, packed, one for every placeholder), encoded by :func:`encode_flow_mod`
        from this template."""
        flow = with_addresses(self.flow, addresses, hard_timeout)
        flow.__dict__[_FILLED_FROM] = (self, addresses)
        return flow

    def encode(self, addresses: Mapping[bytes, bytes], hard_timeout: int, xid: int) -> bytes:
        """The bytes of the flow :meth:`filled` gives for ``addresses`` and ``hard_timeout``."""
        head = (_XID.pack(xid), _TIMEOUT.pack(hard_timeout))
        return self._format % (head + self._addresses_in_order(addresses))


def _values_getter(keys: tuple[bytes, ...]) -> Callable[[Mapping[bytes, bytes]], tuple[bytes, ...]]:
    """``mapping -> (mapping[key] for key in keys)`` as a tuple, in one call when it can."""
    if len(keys) > 1:
        return operator.itemgetter(*keys)  # only returns a tuple for two keys or more
    if keys:
        (key,) = keys
        return lambda mapping: (mapping[key],)
    return lambda mapping: ()


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
