"""Punt meters: every packet the DAR punts passes the meter of its kind.

Behaviour on the simulated switch with ``meters_required`` (flows pointing
to a missing meter are refused, as Open vSwitch refuses them), the
declaration's checks, the meter model, the ``punt_pps`` domain-file keys,
and ``Dar.connect`` installing the meters before the flows that use them.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from pipeline_fixtures import (
    ACCESS_PORT_1,
    ANCHOR,
    CORE_PORT,
    DAR,
    GENERATION,
    HOA,
    UNKNOWN_HOST,
    binding_update,
    ipv6,
    neighbor_advertisement,
    neighbor_solicitation,
    router_solicitation,
)

from fama_ryu.config import ConfigError, parse_domain
from fama_ryu.dar import Dar
from openflow_pipelines.dar_config import PuntRates
from openflow_pipelines.dar_flows import base_flows, pipeline_setup, punt_meters
from openflow_pipelines.dar_pipeline import (
    CLASSIFY,
    DAR_PIPELINE,
    DOMAIN_MOBILITY_METER,
    MOBILITY_METER,
    NEIGHBOR_DISCOVERY_METER,
    RESOLVE_METER,
    ROUTE,
)
from openflow_pipelines.fake_table import FakeSwitch, MeterError
from openflow_pipelines.model import (
    CONTROLLER_PORT,
    OUTPUT_TO_CONTROLLER,
    Barrier,
    Command,
    DropBand,
    FlowMod,
    Match,
    MeterCommand,
    MeterFlag,
    MeterMod,
    Output,
)
from openflow_pipelines.pipeline import PipelineViolation

OTHER_DAR_PREFIX = "2001:db8:2::/64"
DOMAIN_DAR = dataclasses.replace(
    DAR, domain_prefixes=(OTHER_DAR_PREFIX,), punt_rates=PuntRates(300, 200, 50, 20)
)
VISITED_COA = "2001:db8:2::77"  # a CoA in another DAR's access prefix
OUTSIDE_SOURCE = "2001:db8:9999:1::5"  # outside every access prefix of the domain


def metered_switch() -> FakeSwitch:
    switch = FakeSwitch(meters_required=True)
    switch.apply_all(pipeline_setup(DOMAIN_DAR, GENERATION))
    return switch


def mobility_header(source: str, in_port: int = CORE_PORT) -> dict[str, object]:
    return binding_update(in_port, source)


@pytest.mark.parametrize(
    ("packet", "meter"),
    [
        (mobility_header(VISITED_COA), DOMAIN_MOBILITY_METER),
        (mobility_header(HOA, ACCESS_PORT_1), DOMAIN_MOBILITY_METER),  # returning home
        (mobility_header(OUTSIDE_SOURCE), MOBILITY_METER),
        (mobility_header("fe80::9", ACCESS_PORT_1), MOBILITY_METER),
        (router_solicitation(ACCESS_PORT_1), NEIGHBOR_DISCOVERY_METER),
        (neighbor_advertisement(ACCESS_PORT_1, HOA), NEIGHBOR_DISCOVERY_METER),
        (neighbor_solicitation(CORE_PORT, ANCHOR), NEIGHBOR_DISCOVERY_METER),
        (ipv6(CORE_PORT, "2001:db8:99::5", UNKNOWN_HOST), RESOLVE_METER),
    ],
    ids=[
        "bu-from-domain-coa",
        "bu-from-home",
        "bu-from-outside",
        "mh-link-local",
        "rs",
        "na",
        "ns-for-anchor",
        "unresolved-host",
    ],
)
def test_each_punt_passes_the_meter_of_its_kind(packet: dict[str, object], meter: object) -> None:
    fate = metered_switch().process(packet)
    assert fate.ports == (CONTROLLER_PORT,), fate
    assert fate.meters == (meter.meter_id,), fate


def test_every_punt_flow_is_metered_and_nothing_else_is() -> None:
    for flow in base_flows(DOMAIN_DAR, GENERATION):
        punts = OUTPUT_TO_CONTROLLER in flow.actions
        assert punts == (flow.meter_id is not None), flow


def test_meters_are_replaced_before_the_flows_that_use_them() -> None:
    steps = pipeline_setup(DOMAIN_DAR, GENERATION)
    ids = [meter.meter_id for meter in DAR_PIPELINE.meters]
    assert steps[: len(ids)] == [MeterMod(MeterCommand.DELETE, meter_id) for meter_id in ids]
    assert isinstance(steps[len(ids)], Barrier)
    adds = steps[len(ids) + 1 : 2 * len(ids) + 1]
    assert [add.meter_id for add in adds if isinstance(add, MeterMod)] == ids
    assert isinstance(steps[2 * len(ids) + 1], Barrier)
    assert steps[2 * len(ids) + 2 :] == base_flows(DOMAIN_DAR, GENERATION)


def test_configured_rates_reach_the_meters_with_a_tenth_of_a_second_burst() -> None:
    adds = {
        step.meter_id: step
        for step in punt_meters(DOMAIN_DAR)
        if isinstance(step, MeterMod) and step.command is MeterCommand.ADD
    }
    rates = {meter_id: (m.bands[0].rate, m.bands[0].burst_size) for meter_id, m in adds.items()}
    assert rates == {1: (300, 30), 2: (200, 20), 3: (50, 5), 4: (20, 2)}
    flags = MeterFlag.PKTPS | MeterFlag.BURST | MeterFlag.STATS
    assert all(meter.flags == flags for meter in adds.values())
    assert punt_meters(dataclasses.replace(DAR, punt_rates=PuntRates(1, 1, 1, 1)))[5] == MeterMod(
        MeterCommand.ADD, 1, flags, (DropBand(1, 1),)
    )


def test_reconnecting_replaces_meters_and_keeps_every_punt() -> None:
    switch = metered_switch()
    before = switch.flows()
    switch.apply_all(pipeline_setup(DOMAIN_DAR, GENERATION + 1))
    assert len(switch.flows()) == len(before)
    assert switch.process(mobility_header(VISITED_COA)).meters == (1,)


def test_deleting_a_meter_deletes_the_flows_using_it() -> None:
    switch = metered_switch()
    switch.apply(MeterMod(MeterCommand.DELETE, MOBILITY_METER.meter_id))
    assert switch.process(mobility_header(OUTSIDE_SOURCE)).dropped
    assert switch.process(mobility_header(VISITED_COA)).punted


def test_switch_refuses_what_open_vswitch_refuses() -> None:
    switch = FakeSwitch(meters_required=True)
    with pytest.raises(MeterError, match="lacks"):
        switch.apply_all(base_flows(DAR, GENERATION))
    flags = MeterFlag.PKTPS
    switch.apply(MeterMod(MeterCommand.ADD, 1, flags, (DropBand(10),)))
    with pytest.raises(MeterError, match="exists"):
        switch.apply(MeterMod(MeterCommand.ADD, 1, flags, (DropBand(10),)))
    with pytest.raises(MeterError, match="unknown"):
        switch.apply(MeterMod(MeterCommand.MODIFY, 2, flags, (DropBand(10),)))
    switch.apply(MeterMod(MeterCommand.DELETE, 2))  # deleting nothing is no error


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda: MeterMod(MeterCommand.ADD, 0, MeterFlag.PKTPS, (DropBand(1),)), "meter_id"),
        (lambda: MeterMod(MeterCommand.ADD, 1, MeterFlag.STATS, (DropBand(1),)), "one unit"),
        (
            lambda: MeterMod(MeterCommand.ADD, 1, MeterFlag.KBPS | MeterFlag.PKTPS, (DropBand(1),)),
            "one unit",
        ),
        (lambda: MeterMod(MeterCommand.ADD, 1, MeterFlag.PKTPS), "at least one band"),
        (lambda: MeterMod(MeterCommand.ADD, 1, MeterFlag.PKTPS, (DropBand(5, 1),)), "BURST"),
        (lambda: MeterMod(MeterCommand.DELETE, 1, MeterFlag.PKTPS), "no flags"),
        (lambda: DropBand(0), "rate"),
        (lambda: DropBand(1 << 32), "rate"),
        (lambda: FlowMod(0, Command.DELETE, Match(), meter_id=1), "no meter"),
        (lambda: FlowMod(0, Command.ADD, Match(), meter_id=0xFFFF0001), "meter_id"),
        (lambda: PuntRates(mobility_pps=0), "mobility_pps"),
    ],
)
def test_model_refuses_malformed_meters(build: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("flow_mod", "complaint"),
    [
        (
            FlowMod(
                CLASSIFY.table_id,
                Command.ADD,
                Match(in_port=CORE_PORT),
                3000,
                (OUTPUT_TO_CONTROLLER,),
            ),
            "punts go through one of its meters",
        ),
        (
            FlowMod(
                CLASSIFY.table_id,
                Command.ADD,
                Match(in_port=CORE_PORT),
                3000,
                (OUTPUT_TO_CONTROLLER,),
                meter_id=RESOLVE_METER.meter_id,
            ),
            "meter 4 is not one of",
        ),
        (
            FlowMod(ROUTE.table_id, Command.ADD, Match(), 1000, (Output(CORE_PORT),), meter_id=99),
            "meter 99",
        ),
    ],
)
def test_declaration_refuses_unmetered_or_foreign_meters(flow_mod: FlowMod, complaint: str) -> None:
    with pytest.raises(PipelineViolation, match=complaint):
        DAR_PIPELINE.check(flow_mod, DAR.port_role)


def _dar_entry(number: int, **extra: object) -> dict[str, object]:
    return {
        "name": f"dar{number}",
        "dpid": number,
        "access_ports": [1],
        "core_port": 2,
        "gre_port": 3,
        "router_mac": f"02:00:00:00:d0:{number:02x}",
        "access_prefixes": [f"2001:db8:{number}::/64"],
        "anchor_address": f"2001:db8:{number}::1",
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": "02:00:00:00:ff:ff"},
        **extra,
    }


def test_domain_file_sets_rates_and_every_dars_prefixes_count_as_the_domain() -> None:
    punt_pps = {"mobility": 50, "neighbor_discovery": 7}
    domain = parse_domain({"dars": [_dar_entry(1, punt_pps=punt_pps), _dar_entry(2)]}, "t.yaml")
    first, second = domain.dars
    assert first.punt_rates == PuntRates(mobility_pps=50, neighbor_discovery_pps=7)
    assert second.punt_rates == PuntRates()
    dar = Dar(first, domain, os.urandom)
    switch = FakeSwitch(meters_required=True)
    switch.apply_all(dar.connect({}, GENERATION, 0.0).flow_steps)
    from_second_dar = ipv6(2, "2001:db8:2::77", "2001:db8:1::1", ip_proto=135)
    from_outside = ipv6(2, OUTSIDE_SOURCE, "2001:db8:1::1", ip_proto=135)
    assert switch.process(from_second_dar).meters == (DOMAIN_MOBILITY_METER.meter_id,)
    assert switch.process(from_outside).meters == (MOBILITY_METER.meter_id,)
    assert switch.meters[MOBILITY_METER.meter_id].bands == (DropBand(50, 5),)


@pytest.mark.parametrize(
    ("punt_pps", "location", "fragment"),
    [
        ({"mobility": 0}, "dars[0].punt_pps.mobility", "below the minimum 1"),
        ({"resolve": 1_000_001}, "dars[0].punt_pps.resolve", "outside 1..1000000"),
        ({"mobility": "fast"}, "dars[0].punt_pps.mobility", "expected an integer"),
        ({"mobilty": 5}, "dars[0].punt_pps.mobilty", "unknown key"),
        ([5], "dars[0].punt_pps", "expected a mapping"),
    ],
)
def test_bad_punt_rates_are_located_errors(punt_pps: object, location: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_domain({"dars": [_dar_entry(1, punt_pps=punt_pps)]}, "t.yaml")
    assert any(
        error.startswith(f"{location}: ") and fragment in error for error in raised.value.errors
    ), raised.value.errors
