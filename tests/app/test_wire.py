"""The struct encoder of ``openflow_pipelines.wire`` agrees with Ryu byte for byte.

Ryu's OpenFlow 1.3 serialiser is the reference: every flow-mod the DAR
builders produce (pipeline, bindings, replacements, deletions, host
routes, generation cleanup, punt meters and the flows metered by them),
packet-outs and barriers are encoded both ways and compared.  The
encoder's own parse-back (lengths, padding) is checked by decoding the
bytes with Ryu's parser.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from openflow_pipelines import dar_flows, wire
from openflow_pipelines.dar_config import DarPipelineConfig, PuntRates
from openflow_pipelines.model import (
    Barrier,
    Command,
    DecNwTtl,
    DropBand,
    FlowMod,
    FlowModFlag,
    FlowStep,
    Match,
    MeterCommand,
    MeterFlag,
    MeterMod,
    Output,
    SetField,
    ipv6_packed,
)

ACCESS_PORT_1 = 1
HOA, OTHER_HOA = "2001:db8:1::a", "2001:db8:11::b"
COA, NEW_COA, OTHER_COA = "2001:db8:2::a", "2001:db8:3::a", "2001:db8:4::b"
MN_MAC = "02:00:00:00:aa:01"
GENERATION = 1
LIFETIME_S = 3600
DAR = DarPipelineConfig(
    dpid=0xD1,
    access_ports=(ACCESS_PORT_1, 2),
    core_port=10,
    gre_port=20,
    router_mac="02:00:00:00:01:01",
    core_next_hop_mac="02:00:00:00:00:fe",
    anchor_address="2001:db8:1::1",
    own_addresses=("fe80::1", "2001:db8:1::1"),
    access_prefixes=("2001:db8:1::/64", "2001:db8:11::/64"),
)


class _Datapath:
    """What Ryu's message classes need from a datapath to serialise."""

    ofproto = ofp
    ofproto_parser = parser


def _ryu_action(action: object) -> object:
    if isinstance(action, wire.Output):
        return parser.OFPActionOutput(action.port, action.max_len or 0)
    if isinstance(action, wire.SetField):
        return parser.OFPActionSetField(**{action.field: action.value})
    return parser.OFPActionDecNwTtl()


def _ryu_bytes(flow: FlowMod, xid: int) -> bytes:
    instructions = []
    if flow.meter_id is not None:
        instructions.append(parser.OFPInstructionMeter(flow.meter_id))
    if flow.actions:
        actions = [_ryu_action(action) for action in flow.actions]
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    if flow.goto_table is not None:
        instructions.append(parser.OFPInstructionGotoTable(flow.goto_table))
    message = parser.OFPFlowMod(
        datapath=_Datapath(),
        cookie=flow.cookie,
        cookie_mask=flow.cookie_mask,
        table_id=flow.table_id,
        command=int(flow.command),
        idle_timeout=flow.idle_timeout,
        hard_timeout=flow.hard_timeout,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        flags=int(flow.flags),
        match=parser.OFPMatch(**dict(flow.match)),
        instructions=instructions,
    )
    message.set_xid(xid)
    message.serialize()
    return bytes(message.buf)


def _flow_mods(steps: list[FlowStep]) -> list[FlowMod]:
    return [step for step in steps if isinstance(step, FlowMod)]


ALL_FLOWS = [
    *dar_flows.base_flows(DAR, GENERATION),
    *_flow_mods(dar_flows.install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S)),
    *_flow_mods(dar_flows.install_binding(DAR, OTHER_HOA, OTHER_COA, 7, 90_000)),
    *_flow_mods(dar_flows.replace_binding(DAR, HOA, COA, NEW_COA, GENERATION, 30)),
    *dar_flows.delete_binding(DAR, HOA, COA),
    *dar_flows.install_host(DAR, "2001:db8:1::100", MN_MAC, ACCESS_PORT_1, GENERATION),
    *dar_flows.delete_host(DAR, "2001:db8:1::100"),
    *dar_flows.delete_other_generations(DAR, GENERATION),
]


@pytest.mark.parametrize("index", range(len(ALL_FLOWS)))
def test_flow_mod_bytes_equal_ryus(index: int) -> None:
    flow = ALL_FLOWS[index]
    xid = 0x12345678 + index
    assert wire.encode_flow_mod(flow, xid).hex() == _ryu_bytes(flow, xid).hex()


def test_the_fixture_covers_every_field_and_action_kind() -> None:
    fields = {name for flow in ALL_FLOWS for name in flow.match}
    fields |= {
        action.field
        for flow in ALL_FLOWS
        for action in flow.actions
        if isinstance(action, wire.SetField)
    }
    masked = {name for flow in ALL_FLOWS for name in flow.match if flow.match.is_masked(name)}
    actions = {type(action) for flow in ALL_FLOWS for action in flow.actions}
    assert fields == set(wire._OXM)
    assert masked  # at least one masked field (prefixes)
    assert actions == {wire.Output, wire.SetField, wire.DecNwTtl}
    assert {int(flow.command) for flow in ALL_FLOWS} == {0, 3, 4}
    assert {flow.meter_id for flow in ALL_FLOWS} == {None, 1, 2, 3, 4}


def _ryu_meter_bytes(meter: MeterMod, xid: int) -> bytes:
    message = parser.OFPMeterMod(
        datapath=_Datapath(),
        command=int(meter.command),
        flags=int(meter.flags),
        meter_id=meter.meter_id,
        bands=[parser.OFPMeterBandDrop(band.rate, band.burst_size) for band in meter.bands],
    )
    message.set_xid(xid)
    message.serialize()
    return bytes(message.buf)


METER_DAR = dataclasses.replace(DAR, punt_rates=PuntRates(7, 123_456, 1, 1_000_000))
ALL_METERS = [
    *(step for step in dar_flows.punt_meters(DAR) if isinstance(step, MeterMod)),
    *(step for step in dar_flows.punt_meters(METER_DAR) if isinstance(step, MeterMod)),
    MeterMod(
        MeterCommand.MODIFY,
        0xFFFF0000,
        MeterFlag.KBPS | MeterFlag.STATS,
        (DropBand(10_000), DropBand(0xFFFFFFFF)),
    ),
]


@pytest.mark.parametrize("index", range(len(ALL_METERS)))
def test_meter_mod_bytes_equal_ryus(index: int) -> None:
    meter = ALL_METERS[index]
    xid = 0x0BADCAFE + index
    assert wire.encode_meter_mod(meter, xid).hex() == _ryu_meter_bytes(meter, xid).hex()
    assert wire.encode_message(meter, xid) == wire.encode_meter_mod(meter, xid)


def test_meter_fixture_covers_every_command_and_unit() -> None:
    assert {meter.command for meter in ALL_METERS} == set(MeterCommand)
    assert any(meter.flags & MeterFlag.KBPS for meter in ALL_METERS)
    assert any(meter.flags & MeterFlag.PKTPS for meter in ALL_METERS)


def test_metered_punt_parses_back_with_ryu() -> None:
    # Ryu's OFPMeterMod has no parser (switches never send it): bytes are compared above.
    punt = next(flow for flow in ALL_FLOWS if flow.meter_id is not None)
    data = wire.encode_flow_mod(punt, 6)
    parsed_flow = parser.OFPFlowMod.parser(_Datapath(), 4, 14, len(data), 6, data)
    meter_instruction, apply_actions = parsed_flow.instructions
    assert meter_instruction.type == ofp.OFPIT_METER == 6
    assert meter_instruction.meter_id == punt.meter_id
    assert apply_actions.actions[0].port == ofp.OFPP_CONTROLLER


def test_encoded_flow_mod_parses_back_with_ryu() -> None:
    flow = _flow_mods(dar_flows.install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S))[1]
    data = wire.encode_flow_mod(flow, 99)
    version, msg_type, length, xid = struct.unpack_from("!BBHI", data)
    assert (version, msg_type, length, xid) == (4, 14, len(data), 99)
    parsed = parser.OFPFlowMod.parser(_Datapath(), version, msg_type, length, xid, data)
    assert parsed.match["ipv6_dst"] == HOA
    assert parsed.hard_timeout == flow.hard_timeout
    actions = parsed.instructions[0].actions
    assert [type(action).__name__ for action in actions] == [
        "OFPActionDecNwTtl",
        "OFPActionSetField",
        "OFPActionOutput",
    ]
    assert actions[1].value == COA


def test_packet_out_and_barrier_bytes_equal_ryus() -> None:
    frame = bytes(range(90))
    message = parser.OFPPacketOut(
        datapath=_Datapath(),
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(3, 0)],
        data=frame,
    )
    message.set_xid(7)
    message.serialize()
    assert wire.encode_packet_out(3, frame, 7) == bytes(message.buf)
    barrier = parser.OFPBarrierRequest(_Datapath())
    barrier.set_xid(8)
    barrier.serialize()
    assert wire.encode_barrier_request(8) == bytes(barrier.buf)


def test_phases_split_at_barriers_and_merge_in_order() -> None:
    install = dar_flows.install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S)
    replace = dar_flows.replace_binding(DAR, OTHER_HOA, OTHER_COA, NEW_COA, GENERATION, 60)
    delete = list(dar_flows.delete_binding(DAR, HOA, COA))
    assert [len(phase) for phase in wire.split_phases(install)] == [1, 2]
    assert [len(phase) for phase in wire.split_phases(replace)] == [1, 2, 1]
    assert wire.split_phases([Barrier(), Barrier()]) == []
    merged = wire.merge_phases([install, replace, delete])
    assert [len(phase) for phase in merged] == [1 + 1 + 3, 2 + 2, 1]
    # Each change's own order survives the merge.
    for steps in (install, replace, delete):
        for earlier, later in zip(
            wire.split_phases(steps), wire.split_phases(steps)[1:], strict=False
        ):
            first = max(i for i, phase in enumerate(merged) if earlier[0] in phase)
            second = min(i for i, phase in enumerate(merged) if later[0] in phase)
            assert first < second


def test_the_encoder_refuses_an_unknown_action() -> None:
    with pytest.raises(TypeError, match="unknown action"):
        wire.encode_action(object())  # type: ignore[arg-type]


def _flow_with(hoa: str, coa: str, hard_timeout: int) -> FlowMod:
    # 0x25 is "%": the template keeps its encoding as a %-format.
    return FlowMod(
        0x25,
        Command.ADD,
        Match(eth_type=0x86DD, ipv6_dst=hoa, tun_ipv6_src=coa),
        0x2525,
        (DecNwTtl(), SetField("tun_ipv6_dst", coa), Output(0x25)),
        cookie=0x2525252525252525,
        hard_timeout=hard_timeout,
        flags=FlowModFlag.SEND_FLOW_REM,
    )


@pytest.mark.parametrize(
    "placeholders",
    [("2001:db8:1::a", "2001:db8:2::a"), ("2001:db8:2::a",), ("2001:db8:1::a",), ()],
)
def test_a_filled_template_encodes_as_ryu_encodes_the_flow(placeholders: tuple[str, ...]) -> None:
    template = wire.FlowModTemplate(
        _flow_with("2001:db8:1::a", "2001:db8:2::a", 30),
        [ipv6_packed(text) for text in placeholders],
    )
    swap = dict(zip(("2001:db8:1::a", "2001:db8:2::a"), ("2525::25", "2001:25::2525"), strict=True))
    addresses = {ipv6_packed(text): ipv6_packed(swap[text]) for text in placeholders}
    for hard_timeout, xid in [(0, 0), (0x2525, 0x25252525), (0xFFFF, 0xFFFFFFFF)]:
        filled = template.filled(addresses, hard_timeout)
        hoa, coa = (swap[text] if text in placeholders else text for text in swap)
        expected = _flow_with(hoa, coa, hard_timeout)
        assert filled == expected
        assert wire.encode_flow_mod(filled, xid).hex() == _ryu_bytes(expected, xid).hex()


def test_a_template_refuses_ambiguous_placeholders() -> None:
    flow = _flow_with("2001:db8:1::a", "2001:db8:2::a", 30)
    with pytest.raises(ValueError, match="overlap"):
        wire.FlowModTemplate(flow, [ipv6_packed("2001:db8:1::a")] * 2)
    # The cookie and its mask hold the same 16 bytes as the address matched.
    delete = FlowMod(
        1,
        Command.DELETE_STRICT,
        Match(eth_type=0x86DD, ipv6_dst="2001:db8:1::a"),
        cookie=0x20010DB800010000,
        cookie_mask=0xA,
    )
    with pytest.raises(ValueError, match="not unique"):
        wire.FlowModTemplate(delete, [ipv6_packed("2001:db8:1::a")])
