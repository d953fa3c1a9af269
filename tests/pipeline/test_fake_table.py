"""The simulated switch follows OpenFlow 1.3 (as Open vSwitch implements it)."""

from __future__ import annotations

import pytest

from openflow_pipelines.fake_table import AmbiguousLookup, FakeSwitch
from openflow_pipelines.model import (
    ALL_TABLES,
    CONTROLLER_PORT,
    IN_PORT,
    NO_BUFFER,
    Command,
    DecNwTtl,
    FlowMod,
    Match,
    Output,
    SetField,
    ipv6_prefix,
)

IPV6 = 0x86DD


def add(table_id: int, match: Match, priority: int, *actions: object, **fields: object) -> FlowMod:
    return FlowMod(table_id, Command.ADD, match, priority, tuple(actions), **fields)  # type: ignore[arg-type]


def packet(in_port: int = 1, dst: str = "2001:db8:1::5", hop_limit: int = 64) -> dict[str, object]:
    return {
        "in_port": in_port,
        "eth_type": IPV6,
        "ipv6_src": "2001:db8:9::1",
        "ipv6_dst": dst,
        "hop_limit": hop_limit,
    }


def test_no_flow_means_drop() -> None:
    assert FakeSwitch().process(packet()).dropped


def test_highest_priority_wins_and_masks_match_prefixes() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(eth_type=IPV6), 10, Output(2)))
    switch.apply(
        add(0, Match(eth_type=IPV6, ipv6_dst=ipv6_prefix("2001:db8:1::/64")), 20, Output(3))
    )
    switch.apply(add(0, Match(eth_type=IPV6, ipv6_dst="2001:db8:1::5"), 30, Output(4)))
    assert switch.process(packet(dst="2001:db8:1::5")).ports == (4,)
    assert switch.process(packet(dst="2001:db8:1::6")).ports == (3,)
    assert switch.process(packet(dst="2001:db8:2::6")).ports == (2,)


def test_missing_field_does_not_match() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(eth_type=IPV6, ip_proto=58), 10, Output(2)))
    assert switch.process(packet()).dropped


def test_overlapping_flows_of_one_priority_that_disagree_are_an_error() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(in_port=1), 10, Output(2)))
    switch.apply(add(0, Match(eth_type=IPV6), 10, Output(3)))
    with pytest.raises(AmbiguousLookup):
        switch.process(packet())


def test_actions_apply_in_order_then_goto() -> None:
    switch = FakeSwitch()
    switch.apply(
        add(
            0,
            Match(eth_type=IPV6),
            10,
            Output(2),
            SetField("eth_dst", "02:00:00:00:00:09"),
            goto_table=3,
        )
    )
    switch.apply(
        add(3, Match(eth_type=IPV6, eth_dst="02:00:00:00:00:09"), 10, DecNwTtl(), Output(4))
    )
    before, after = switch.process(packet()).emissions
    assert (before.port, "eth_dst" in before.packet, before.packet["hop_limit"]) == (2, False, 64)
    assert (after.port, after.packet["eth_dst"], after.packet["hop_limit"]) == (
        4,
        "02:00:00:00:00:09",
        63,
    )


@pytest.mark.parametrize("hop_limit", [0, 1])
def test_dec_nw_ttl_at_one_or_zero_drops_and_stops(hop_limit: int) -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(eth_type=IPV6), 10, DecNwTtl(), Output(2), goto_table=1))
    switch.apply(add(1, Match(), 0, Output(3)))
    fate = switch.process(packet(hop_limit=hop_limit))
    assert fate.dropped and fate.hop_limit_exceeded and not fate.punted


def test_output_to_the_input_port_needs_in_port() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(in_port=1), 10, Output(1)))
    switch.apply(add(0, Match(in_port=2), 10, Output(IN_PORT)))
    assert switch.process(packet(in_port=1)).dropped
    assert switch.process(packet(in_port=2)).ports == (2,)


def test_controller_output_keeps_max_len() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(), 0, Output(CONTROLLER_PORT, NO_BUFFER)))
    emission = switch.process(packet()).single()
    assert (emission.port, emission.max_len) == (CONTROLLER_PORT, NO_BUFFER)


def test_add_with_identical_match_and_priority_replaces_everything() -> None:
    switch = FakeSwitch()
    switch.apply(add(0, Match(in_port=1), 10, Output(2), cookie=1, hard_timeout=5))
    replacement = add(0, Match(in_port=1), 10, Output(3), cookie=2)
    switch.apply(replacement)
    switch.apply(add(0, Match(in_port=1), 11, Output(4)))  # another priority: another flow
    assert switch.flows() == [add(0, Match(in_port=1), 11, Output(4)), replacement]


def test_modify_strict_replaces_instructions_only_and_never_adds() -> None:
    switch = FakeSwitch()
    original = add(0, Match(in_port=1), 10, Output(2), cookie=0xAB, hard_timeout=5)
    switch.apply(original)
    modify = FlowMod(0, Command.MODIFY_STRICT, Match(in_port=1), 10, (Output(3),), cookie=0xCD)
    switch.apply(modify)
    (flow,) = switch.flows()
    assert flow.actions == (Output(3),)
    assert (flow.cookie, flow.hard_timeout) == (0xAB, 5)
    filtered = FlowMod(
        0, Command.MODIFY_STRICT, Match(in_port=1), 10, (Output(4),), cookie=0xCD, cookie_mask=0xFF
    )
    switch.apply(filtered)
    assert switch.flows()[0].actions == (Output(3),)  # cookie filter did not pass
    switch.apply(FlowMod(0, Command.MODIFY_STRICT, Match(in_port=2), 10, (Output(4),)))
    assert len(switch.flows()) == 1


def test_delete_removes_flows_at_least_as_specific_at_any_priority() -> None:
    switch = FakeSwitch()
    prefix = add(0, Match(eth_type=IPV6, ipv6_dst=ipv6_prefix("2001:db8:1::/64")), 20)
    host = add(0, Match(eth_type=IPV6, ipv6_dst="2001:db8:1::5"), 30)
    wider = add(0, Match(eth_type=IPV6, ipv6_dst=ipv6_prefix("2001:db8::/32")), 10)
    other = add(0, Match(eth_type=IPV6, ipv6_dst="2001:db8:2::5"), 30)
    no_dst = add(0, Match(eth_type=IPV6), 5)
    switch.apply_all([prefix, host, wider, other, no_dst])
    request = Match(eth_type=IPV6, ipv6_dst=ipv6_prefix("2001:db8:1::/64"))
    switch.apply(FlowMod(0, Command.DELETE, request))
    assert set(switch.flows()) == {wider, other, no_dst}


def test_delete_strict_needs_identical_match_and_priority_and_passing_cookie() -> None:
    switch = FakeSwitch()
    flow = add(0, Match(in_port=1), 10, cookie=0x1_02)
    switch.apply(flow)
    for request in (
        FlowMod(0, Command.DELETE_STRICT, Match(in_port=1), 11),
        FlowMod(0, Command.DELETE_STRICT, Match(in_port=1, eth_type=IPV6), 10),
        FlowMod(0, Command.DELETE_STRICT, Match(in_port=1), 10, cookie=0x1_03, cookie_mask=0xFF),
    ):
        switch.apply(request)
        assert switch.flows() == [flow]
    switch.apply(
        FlowMod(0, Command.DELETE_STRICT, Match(in_port=1), 10, cookie=0x2_02, cookie_mask=0xFF)
    )
    assert switch.flows() == []


def test_delete_across_all_tables_by_cookie() -> None:
    switch = FakeSwitch()
    keep = add(1, Match(in_port=1), 10, cookie=0x20)
    switch.apply_all(
        [add(0, Match(), 0, cookie=0x10), add(3, Match(in_port=2), 10, cookie=0x11), keep]
    )
    switch.apply(FlowMod(ALL_TABLES, Command.DELETE, Match(), cookie=0x10, cookie_mask=0xF0))
    assert switch.flows() == [keep]


@pytest.mark.parametrize(
    "bad_packet",
    [
        {"eth_type": IPV6},  # no in_port
        {"in_port": 1, "ipv6_dst": "2001:db8::1"},  # IPv6 field without eth_type
        {"in_port": 1, "eth_type": IPV6, "hop_limit": 256},
        {"in_port": 1, "colour": "blue"},
    ],
)
def test_malformed_test_packets_are_refused(bad_packet: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FakeSwitch().process(bad_packet)
