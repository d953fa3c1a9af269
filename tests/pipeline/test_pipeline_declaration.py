"""The declaration rejects flowmods that step outside it, and rejects inconsistent declarations."""

from __future__ import annotations

import pytest
from pipeline_fixtures import ACCESS_PORT_1, CORE_PORT, DAR, GRE_PORT, HOA

from openflow_pipelines.dar_flows import base_flows, install_binding, install_host
from openflow_pipelines.dar_pipeline import CLASSIFY, DAR_PIPELINE, DECAP, ENCAP, ROUTE
from openflow_pipelines.model import (
    ALL_TABLES,
    CONTROLLER_PORT,
    IN_PORT,
    LOCAL_PORT,
    OUTPUT_TO_CONTROLLER,
    Command,
    DecNwTtl,
    FlowMod,
    Match,
    Output,
    SetField,
)
from openflow_pipelines.pipeline import (
    TABLE_MISS,
    Miss,
    PipelineSpec,
    PipelineViolation,
    PortRole,
    PriorityBand,
    TableSpec,
)

IPV6 = 0x86DD


def check(flow_mod: FlowMod) -> FlowMod:
    return DAR_PIPELINE.check(flow_mod, DAR.port_role)


def add(table: TableSpec, match: Match, priority: int = 1000, **fields: object) -> FlowMod:
    return FlowMod(table.table_id, Command.ADD, match, priority, **fields)  # type: ignore[arg-type]


def test_every_built_flow_passes_the_declaration() -> None:
    steps = [
        *base_flows(DAR, 1),
        *install_binding(DAR, HOA, "2001:db8:2::a", 1, 60),
        *install_host(DAR, "2001:db8:1::100", "02:00:00:00:aa:01", ACCESS_PORT_1, 1),
    ]
    for step in steps:
        if isinstance(step, FlowMod):
            assert check(step) is step


@pytest.mark.parametrize(
    ("flow_mod", "complaint"),
    [
        (add(ENCAP, Match(tun_ipv6_src="2001:db8:2::a")), "match field tun_ipv6_src"),
        (add(DECAP, Match(eth_type=IPV6, ipv6_dst=HOA)), "match field ipv6_dst"),
        (
            add(ENCAP, Match(eth_type=IPV6, ipv6_dst=("2001:db8::", "ffff:ffff::"))),
            "may not be masked",
        ),
        (add(CLASSIFY, Match(in_port=CORE_PORT), goto_table=ROUTE.table_id), "goto 3"),
        (add(DECAP, Match(eth_type=IPV6, ipv6_src=HOA), goto_table=ROUTE.table_id), "goto 3"),
        (add(ENCAP, Match(eth_type=IPV6, ipv6_dst=HOA), 1234), "no declared band"),
        (add(CLASSIFY, Match(in_port=CORE_PORT), 0), "reserved for the table-miss"),
        (add(ENCAP, Match(), 0), "table-miss flow must goto route"),
        (add(ROUTE, Match(), 0, goto_table=None, actions=(OUTPUT_TO_CONTROLLER,)), "must drop"),
        (add(CLASSIFY, Match(eth_type=IPV6), actions=(DecNwTtl(),)), "hop limit"),
        (
            add(DECAP, Match(), 0, actions=(SetField("eth_dst", "02:00:00:00:00:01"),)),
            "may not set",
        ),
        (add(ENCAP, Match(eth_type=IPV6), actions=(Output(ACCESS_PORT_1),)), "may not output"),
        (add(ENCAP, Match(eth_type=IPV6), actions=(OUTPUT_TO_CONTROLLER,)), "may not output"),
        (add(ROUTE, Match(eth_type=IPV6), actions=(Output(GRE_PORT),)), "may not output"),
        (add(ROUTE, Match(eth_type=IPV6), actions=(Output(IN_PORT),)), "may not output"),
        (add(ROUTE, Match(eth_type=IPV6), actions=(Output(LOCAL_PORT),)), "may not output"),
        (add(ROUTE, Match(eth_type=IPV6), actions=(Output(77),)), "may not output"),
        (add(ROUTE, Match(eth_type=IPV6), actions=(Output(CONTROLLER_PORT, 128),)), "whole packet"),
        (FlowMod(9, Command.ADD, Match()), "not declared"),
        (FlowMod(ALL_TABLES, Command.DELETE, Match(in_port=1)), "all tables"),
    ],
)
def test_flowmods_outside_the_declaration_are_rejected(flow_mod: FlowMod, complaint: str) -> None:
    with pytest.raises(PipelineViolation, match=complaint):
        check(flow_mod)


def test_non_strict_delete_may_use_any_priority_but_only_declared_fields() -> None:
    check(FlowMod(ENCAP.table_id, Command.DELETE, Match(eth_type=IPV6), priority=1234))
    with pytest.raises(PipelineViolation):
        check(FlowMod(ENCAP.table_id, Command.DELETE, Match(tun_ipv6_src=HOA)))
    with pytest.raises(PipelineViolation):
        check(FlowMod(ENCAP.table_id, Command.DELETE_STRICT, Match(eth_type=IPV6), priority=1234))


def toy_table(**overrides: object) -> TableSpec:
    fields: dict[str, object] = {
        "name": "only",
        "table_id": 0,
        "purpose": "test",
        "match_fields": frozenset({"in_port"}),
        "maskable_fields": frozenset(),
        "next_tables": (),
        "miss": Miss.controller(),
        "priority_bands": (TABLE_MISS,),
        "output_roles": frozenset({PortRole.CONTROLLER}),
    }
    fields.update(overrides)
    return TableSpec(**fields)  # type: ignore[arg-type]


def test_controller_miss_builds_a_whole_packet_punt() -> None:
    pipeline = PipelineSpec([toy_table()])
    miss = pipeline.table_miss_flow(pipeline.table("only"), cookie=5)
    assert miss.actions == (OUTPUT_TO_CONTROLLER,) and miss.goto_table is None
    assert pipeline.check(miss, lambda port: None) is miss


@pytest.mark.parametrize(
    "overrides",
    [
        {"match_fields": frozenset({"vlan_vid"})},
        {"maskable_fields": frozenset({"ipv6_dst"})},
        {"match_fields": frozenset({"in_port"}), "maskable_fields": frozenset({"in_port"})},
        {"set_fields": frozenset({"in_port"})},
        {"next_tables": ("missing",)},
        {"miss": Miss.goto("missing")},
        {"output_roles": frozenset()},
        {"priority_bands": ()},
        {"priority_bands": (TABLE_MISS, PriorityBand("again", 0, "clash"))},
    ],
)
def test_inconsistent_declarations_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PipelineSpec([toy_table(**overrides)])


def test_tables_may_only_go_forward_and_names_are_unique() -> None:
    later = toy_table(name="later", table_id=1, miss=Miss.drop())
    earlier = toy_table(next_tables=("later",))
    PipelineSpec([earlier, later])
    with pytest.raises(ValueError):
        PipelineSpec([toy_table(table_id=2, next_tables=("later",)), later])
    with pytest.raises(ValueError):
        PipelineSpec([toy_table(), toy_table(table_id=1)])


def test_miss_goto_names_its_table_exactly_when_it_is_a_goto() -> None:
    with pytest.raises(ValueError):
        Miss(Miss.drop().kind, "route")
