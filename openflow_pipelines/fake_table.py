"""A simulated OpenFlow 1.3 multi-table switch, for testing flow logic by behaviour.

``FakeSwitch.apply`` takes the same ``FlowMod``s the shim sends;
``FakeSwitch.process`` takes a packet as a dict of header fields (match
field names plus ``hop_limit``) and tells where it goes.  Semantics follow
OpenFlow 1.3 as Open vSwitch implements it:

* ADD replaces a flow with an identical match and priority (instructions,
  cookie and timeouts); MODIFY_STRICT replaces only the instructions of that
  flow and does nothing if there is none; DELETE removes every flow whose
  match is at least as specific as the request's, at any priority, and may
  name ``ALL_TABLES``; DELETE_STRICT removes the identical flow.  Modifies
  and deletes only touch flows whose cookie passes ``cookie``/``cookie_mask``.
* The highest-priority matching flow wins.  Two overlapping flows of equal
  priority and different instructions raise ``AmbiguousLookup`` (OpenFlow
  leaves the choice undefined).  No matching flow means drop.
* Apply-actions run in order, then goto-table.  ``set_field`` changes what
  later actions and tables see; ``dec_nw_ttl`` on a hop limit of 0 or 1
  drops the packet and ends processing (no invalid-TTL packet-in: OVS's
  default for OpenFlow 1.3 connections).  Output to the input port is
  skipped unless sent to ``IN_PORT``.

* Meters: with ``meters_required`` a flow may only point to a meter the
  switch holds (``MeterError`` otherwise, as Open vSwitch answers
  OFPMMFC_UNKNOWN_METER; without it such a flow is taken as if the meter
  were there, for tests that install ``base_flows`` alone); adding an
  existing meter or modifying a missing one fails the same way; deleting a
  meter deletes the flows using it.  A packet's fate records the meters it
  passed (``PacketFate.meters``); rates are not enforced.

Not modelled: timeouts, counters, groups, meter rates, and tunnel push/pop:
an output to the GRE port shows ``tun_ipv6_dst``; a decapsulated packet is
injected at the GRE port with ``tun_ipv6_src``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from openflow_pipelines.model import (
    ALL_TABLES,
    CONTROLLER_PORT,
    FIELDS,
    IN_PORT,
    Barrier,
    Command,
    DecNwTtl,
    FieldSpec,
    FlowMod,
    FlowStep,
    Match,
    MatchValue,
    MeterCommand,
    MeterMod,
    Output,
    ScalarValue,
    SetField,
    describe_flow_mod,
    describe_meter_mod,
    prerequisites_met,
)

HOP_LIMIT = "hop_limit"

Packet = Mapping[str, ScalarValue]


class AmbiguousLookup(AssertionError):
    """Two overlapping flows of one priority would handle a packet differently."""


class MeterError(AssertionError):
    """A meter-mod or flow-mod the switch would refuse for a meter it does (not) hold."""


@dataclass(frozen=True)
class Emission:
    """A copy of the packet leaving ``port`` with its header fields as rewritten."""

    port: int
    packet: Packet
    max_len: int | None = None


@dataclass(frozen=True)
class PacketFate:
    """Where a packet went: its emissions in order, and the flows it hit on the way."""

    emissions: tuple[Emission, ...]
    flows_hit: tuple[FlowMod, ...]
    hop_limit_exceeded: bool = False

    @property
    def meters(self) -> tuple[int, ...]:
        """Ids of the meters the packet passed, in order."""
        return tuple(flow.meter_id for flow in self.flows_hit if flow.meter_id is not None)

    def __repr__(self) -> str:
        emitted = ", ".join(f"port {out.port:#x}: {dict(out.packet)}" for out in self.emissions)
        path = "; ".join(describe_flow_mod(flow) for flow in self.flows_hit)
        expired = " (hop limit exceeded)" if self.hop_limit_exceeded else ""
        return f"PacketFate(emitted [{emitted or 'nothing'}]{expired} via [{path}])"

    @property
    def dropped(self) -> bool:
        return not self.emissions

    @property
    def punted(self) -> bool:
        return any(emission.port == CONTROLLER_PORT for emission in self.emissions)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(emission.port for emission in self.emissions)

    def single(self) -> Emission:
        """The one emission of a packet that went exactly one way."""
        if len(self.emissions) != 1:
            raise AssertionError(f"expected exactly one emission, got {self.emissions}")
        return self.emissions[0]


def _value_and_mask(spec: FieldSpec, value: MatchValue) -> tuple[int, int]:
    if isinstance(value, tuple):
        return spec.to_int(value[0]), spec.to_int(value[1])
    return spec.to_int(value), (1 << spec.bits) - 1


def _packet_matches(match: Match, packet: Packet) -> bool:
    for name, value in match.items():
        if name not in packet:
            return False
        spec = FIELDS[name]
        wanted, mask = _value_and_mask(spec, value)
        if spec.to_int(packet[name]) & mask != wanted:
            return False
    return True


def _at_least_as_specific(flow: Match, request: Match) -> bool:
    """True if every packet ``flow`` matches is also matched by ``request``."""
    for name, value in request.items():
        if name not in flow:
            return False
        spec = FIELDS[name]
        request_value, request_mask = _value_and_mask(spec, value)
        flow_value, flow_mask = _value_and_mask(spec, flow[name])
        if request_mask & ~flow_mask or flow_value & request_mask != request_value:
            return False
    return True


def normalise_packet(packet: Mapping[str, object]) -> dict[str, ScalarValue]:
    """Check a test packet's fields and put them in canonical form."""
    fields: dict[str, ScalarValue] = {}
    for name, value in packet.items():
        if name == HOP_LIMIT:
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise ValueError(f"hop_limit {value!r} out of range")
            fields[name] = value
        else:
            if name not in FIELDS:
                raise ValueError(f"unknown packet field {name!r}")
            fields[name] = FIELDS[name].normalise(value)
    if "in_port" not in fields:
        raise ValueError("a packet needs in_port")
    for name in fields.keys() - {HOP_LIMIT}:
        if not prerequisites_met(FIELDS[name], fields):
            raise ValueError(f"packet field {name} without its prerequisites: {fields}")
    return fields


class FakeSwitch:
    """Flow tables of one simulated switch."""

    def __init__(self, *, meters_required: bool = False) -> None:
        self._tables: dict[int, list[FlowMod]] = {}
        self.meters: dict[int, MeterMod] = {}
        self.meters_required = meters_required

    def apply(self, step: FlowStep) -> None:
        if isinstance(step, Barrier):
            return  # this switch already applies everything in order
        if isinstance(step, MeterMod):
            self._meter_mod(step)
            return
        if self.meters_required and step.meter_id not in (None, *self.meters):
            raise MeterError(f"flow points to meter {step.meter_id}, which the switch lacks")
        if step.command is Command.ADD:
            self._add(step)
        elif step.command is Command.MODIFY_STRICT:
            self._modify_strict(step)
        else:
            self._delete(step)

    def apply_all(self, steps: Iterable[FlowStep]) -> None:
        for step in steps:
            self.apply(step)

    def _meter_mod(self, request: MeterMod) -> None:
        exists = request.meter_id in self.meters
        if request.command is MeterCommand.DELETE:
            self.meters.pop(request.meter_id, None)
            for table_id, table in self._tables.items():
                self._tables[table_id] = [
                    flow for flow in table if flow.meter_id != request.meter_id
                ]
        elif exists != (request.command is MeterCommand.MODIFY):
            state = "exists" if exists else "is unknown"
            raise MeterError(f"meter {request.meter_id} {state}: {request.command.name} refused")
        else:
            self.meters[request.meter_id] = request

    def _add(self, flow_mod: FlowMod) -> None:
        table = self._tables.setdefault(flow_mod.table_id, [])
        table[:] = [flow for flow in table if not _same_slot(flow, flow_mod)]
        table.append(flow_mod)

    def _modify_strict(self, request: FlowMod) -> None:
        table = self._tables.get(request.table_id, [])
        for index, flow in enumerate(table):
            if _same_slot(flow, request) and _cookie_passes(flow, request):
                table[index] = replace(
                    flow,
                    actions=request.actions,
                    goto_table=request.goto_table,
                    meter_id=request.meter_id,
                )

    def _delete(self, request: FlowMod) -> None:
        table_ids = list(self._tables) if request.table_id == ALL_TABLES else [request.table_id]
        for table_id in table_ids:
            self._tables[table_id] = [
                flow for flow in self._tables.get(table_id, []) if not _deleted_by(flow, request)
            ]

    def flows(self, table_id: int | None = None) -> list[FlowMod]:
        """Installed flows (as the ADDs that made them), by table then falling priority."""
        selected = [
            flow
            for tid, table in self._tables.items()
            if table_id is None or tid == table_id
            for flow in table
        ]
        return sorted(selected, key=lambda flow: (flow.table_id, -flow.priority, repr(flow.match)))

    def dump(self) -> str:
        meters = [describe_meter_mod(meter) for _, meter in sorted(self.meters.items())]
        return "\n".join([*meters, *(describe_flow_mod(flow) for flow in self.flows())])

    def process(self, packet: Mapping[str, object]) -> PacketFate:
        fields = normalise_packet(packet)
        in_port = fields["in_port"]
        emissions: list[Emission] = []
        flows_hit: list[FlowMod] = []
        table_id: int | None = 0
        while table_id is not None:
            flow = self._lookup(table_id, fields)
            if flow is None:
                break
            flows_hit.append(flow)
            for action in flow.actions:
                if isinstance(action, SetField):
                    fields[action.field] = action.value
                elif isinstance(action, DecNwTtl):
                    hop_limit = fields[HOP_LIMIT]
                    assert isinstance(hop_limit, int)
                    if hop_limit <= 1:
                        return PacketFate(
                            tuple(emissions), tuple(flows_hit), hop_limit_exceeded=True
                        )
                    fields[HOP_LIMIT] = hop_limit - 1
                elif isinstance(action, Output):
                    emission = _emit(action, in_port, fields)
                    if emission is not None:
                        emissions.append(emission)
            table_id = flow.goto_table
        return PacketFate(tuple(emissions), tuple(flows_hit))

    def _lookup(self, table_id: int, fields: Packet) -> FlowMod | None:
        candidates = [
            flow for flow in self._tables.get(table_id, []) if _packet_matches(flow.match, fields)
        ]
        if not candidates:
            return None
        best = max(flow.priority for flow in candidates)
        winners = [flow for flow in candidates if flow.priority == best]
        if len({(flow.actions, flow.goto_table, flow.meter_id) for flow in winners}) > 1:
            described = "\n".join(describe_flow_mod(flow) for flow in winners)
            raise AmbiguousLookup(f"packet {dict(fields)} matches, at one priority:\n{described}")
        return winners[0]


def _emit(action: Output, in_port: ScalarValue, fields: Packet) -> Emission | None:
    if action.port == IN_PORT:
        assert isinstance(in_port, int)
        return Emission(in_port, dict(fields))
    if action.port == in_port:
        return None  # OpenFlow never outputs to the input port unless told IN_PORT
    return Emission(action.port, dict(fields), action.max_len)


def _same_slot(flow: FlowMod, request: FlowMod) -> bool:
    return flow.priority == request.priority and flow.match == request.match


def _cookie_passes(flow: FlowMod, request: FlowMod) -> bool:
    return flow.cookie & request.cookie_mask == request.cookie & request.cookie_mask


def _deleted_by(flow: FlowMod, request: FlowMod) -> bool:
    if not _cookie_passes(flow, request):
        return False
    if request.command is Command.DELETE_STRICT:
        return _same_slot(flow, request)
    return _at_least_as_specific(flow.match, request.match)
