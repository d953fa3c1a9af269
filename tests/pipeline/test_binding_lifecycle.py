"""Binding install, refresh, CoA change, deletion and controller restarts (P11, P12, P15)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_fixtures import (
    ACCESS_PORT_1,
    ANCHOR,
    ATTACHED_MN,
    COA,
    CORE_PORT,
    CORRESPONDENT,
    DAR,
    GENERATION,
    GRE_PORT,
    HOA,
    LIFETIME_S,
    LINK_LOCAL,
    MN_MAC,
    NEW_COA,
    OTHER_COA,
    OTHER_HOA,
    PREFIX,
    from_tunnel,
    ipv6,
    populated_switch,
    switch_with,
)

from openflow_pipelines import wire
from openflow_pipelines.cookies import FlowKind, decode_cookie
from openflow_pipelines.dar_flows import (
    BINDING_HARD_TIMEOUT_MARGIN_S,
    base_flows,
    binding_hard_timeout,
    checked_delete_binding,
    checked_install_binding,
    delete_binding,
    delete_other_generations,
    install_binding,
    install_host,
    replace_binding,
)
from openflow_pipelines.fake_table import FakeSwitch
from openflow_pipelines.model import (
    CONTROLLER_PORT,
    MAX_TIMEOUT_S,
    Barrier,
    Command,
    FlowMod,
    FlowModFlag,
    FlowStep,
    with_addresses,
)


def tunnelled_to(switch: FakeSwitch, packet: dict[str, object]) -> list[str]:
    """The CoAs ``packet`` leaves the GRE port for."""
    fate = switch.process(packet)
    return [str(e.packet["tun_ipv6_dst"]) for e in fate.emissions if e.port == GRE_PORT]


def from_core(hoa: str = HOA) -> dict[str, object]:
    return ipv6(CORE_PORT, CORRESPONDENT, hoa)


def from_other_mn_away(hoa: str = HOA) -> dict[str, object]:
    """Sent by the MN bound to OTHER_COA: decapsulated, then tunnelled again (hairpin)."""
    return from_tunnel(OTHER_COA, OTHER_HOA, hoa)


def uplink_accepted(switch: FakeSwitch, coa: str, hoa: str = HOA) -> bool:
    return switch.process(from_tunnel(coa, hoa, CORRESPONDENT)).ports == (CORE_PORT,)


def flow_set(switch: FakeSwitch) -> set[FlowMod]:
    return set(switch.flows())


def test_install_binding_orders_decap_before_encap_with_a_barrier() -> None:
    steps = install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S)
    tables = ["barrier" if isinstance(step, Barrier) else step.table_id for step in steps]
    assert tables == [1, "barrier", 2, 2]


def test_binding_flows_carry_hard_timeout_flag_and_binding_cookie() -> None:
    for step in install_binding(DAR, HOA, COA, GENERATION, 100.2):
        if isinstance(step, FlowMod):
            assert step.hard_timeout == 101 + BINDING_HARD_TIMEOUT_MARGIN_S
            assert step.flags & FlowModFlag.SEND_FLOW_REM
            cookie = decode_cookie(step.cookie)
            assert cookie is not None and cookie.kind is FlowKind.BINDING
            assert cookie.generation == GENERATION


def test_hard_timeout_is_remaining_lifetime_plus_margin_or_none_beyond_16_bits() -> None:
    assert binding_hard_timeout(1) == 1 + BINDING_HARD_TIMEOUT_MARGIN_S
    assert binding_hard_timeout(0.1) == 1 + BINDING_HARD_TIMEOUT_MARGIN_S
    limit = MAX_TIMEOUT_S - BINDING_HARD_TIMEOUT_MARGIN_S
    assert binding_hard_timeout(limit) == MAX_TIMEOUT_S
    assert binding_hard_timeout(limit + 1) == 0  # 86400 s CGA bindings must not be cut short
    with pytest.raises(ValueError):
        binding_hard_timeout(0)


def test_refresh_replaces_the_flows_in_place_with_the_new_timeout() -> None:
    switch = populated_switch()
    before = len(switch.flows())
    switch.apply_all(install_binding(DAR, HOA, COA, GENERATION, 10))
    assert len(switch.flows()) == before
    binding_flows = [flow for flow in switch.flows() if HOA in flow.match.values()]
    assert len(binding_flows) == 3
    assert {flow.hard_timeout for flow in binding_flows} == {10 + BINDING_HARD_TIMEOUT_MARGIN_S}
    assert tunnelled_to(switch, from_core()) == [COA]


def test_replace_binding_moves_both_directions_to_the_new_coa() -> None:
    switch = populated_switch()
    switch.apply_all(replace_binding(DAR, HOA, COA, NEW_COA, GENERATION, LIFETIME_S))
    for packet in (from_core(), from_other_mn_away()):
        assert tunnelled_to(switch, packet) == [NEW_COA]
    assert uplink_accepted(switch, NEW_COA)
    assert not uplink_accepted(switch, COA)
    assert tunnelled_to(switch, from_core(OTHER_HOA)) == [OTHER_COA]  # the other binding stays


def assert_each_step_tunnels_to_exactly_one_coa(switch: FakeSwitch, steps: list[FlowStep]) -> None:
    for step in steps:
        switch.apply(step)
        accepts_old, accepts_new = uplink_accepted(switch, COA), uplink_accepted(switch, NEW_COA)
        assert accepts_old or accepts_new, step  # never a moment without uplink
        for packet in (from_core(), from_other_mn_away()):
            coas = tunnelled_to(switch, packet)
            assert switch.process(packet).ports == (GRE_PORT,), step
            assert coas in ([COA], [NEW_COA]), step
            # Downlink only moves once the new CoA's uplink is accepted, and the
            # old CoA's uplink only stops once downlink has moved.
            assert accepts_new or coas == [COA], step
            assert accepts_old or coas == [NEW_COA], step


def test_every_step_of_a_coa_change_tunnels_to_exactly_one_coa() -> None:
    switch = populated_switch()
    steps = replace_binding(DAR, HOA, COA, NEW_COA, GENERATION, LIFETIME_S)
    assert_each_step_tunnels_to_exactly_one_coa(switch, steps)
    assert tunnelled_to(switch, from_core()) == [NEW_COA]
    assert not uplink_accepted(switch, COA)


def test_the_step_check_catches_a_wrong_order() -> None:
    steps = replace_binding(DAR, HOA, COA, NEW_COA, GENERATION, LIFETIME_S)
    old_decap_first = [steps[-1], *steps[:-1]]
    with pytest.raises(AssertionError):
        assert_each_step_tunnels_to_exactly_one_coa(populated_switch(), old_decap_first)
    encap_before_decap = [steps[2], steps[0], *steps[3:]]
    with pytest.raises(AssertionError):
        assert_each_step_tunnels_to_exactly_one_coa(populated_switch(), encap_before_decap)


def test_replace_binding_removes_the_old_decap_only_after_a_barrier() -> None:
    steps = replace_binding(DAR, HOA, COA, NEW_COA, GENERATION, LIFETIME_S)
    assert isinstance(steps[-2], Barrier)
    old_decap = steps[-1]
    assert isinstance(old_decap, FlowMod) and old_decap.command is Command.DELETE_STRICT
    assert old_decap.match["tun_ipv6_src"] == COA


def test_replace_binding_with_the_same_coa_is_refused() -> None:
    with pytest.raises(ValueError, match="install_binding"):
        replace_binding(DAR, HOA, COA, "2001:db8:2:0::a", GENERATION, LIFETIME_S)


def test_delete_binding_removes_exactly_the_bindings_flows() -> None:
    without = switch_with(
        *install_binding(DAR, OTHER_HOA, OTHER_COA, GENERATION, LIFETIME_S),
        *install_host(DAR, ATTACHED_MN, MN_MAC, ACCESS_PORT_1, GENERATION),
    )
    switch = populated_switch()
    installed = flow_set(switch) - flow_set(without)
    assert len(installed) == 3
    switch.apply_all(delete_binding(DAR, HOA, COA))
    assert flow_set(switch) == flow_set(without)
    # The MN is home (or gone): its HoA is resolved on the access link, the tunnel is closed.
    assert switch.process(ipv6(CORE_PORT, CORRESPONDENT, HOA)).ports == (CONTROLLER_PORT,)
    assert not uplink_accepted(switch, COA)


def test_delete_binding_spares_an_identical_flow_of_another_owner() -> None:
    switch = populated_switch()
    (encap,) = [
        flow for flow in switch.flows(2) if flow.priority == 1000 and HOA in flow.match.values()
    ]
    foreign = FlowMod(
        encap.table_id, Command.ADD, encap.match, encap.priority, encap.actions, cookie=7
    )
    switch.apply(foreign)
    switch.apply_all(delete_binding(DAR, HOA, COA))
    assert foreign in switch.flows()


@pytest.mark.parametrize("old", [1, 2, 0x7FFF_FFFF, 0xFFFF_FFFE])
def test_delete_other_generations_leaves_only_the_new_one(old: int) -> None:
    new = old + 1
    switch = FakeSwitch()
    switch.apply_all(base_flows(DAR, old))
    switch.apply_all(install_binding(DAR, HOA, COA, old, LIFETIME_S))
    switch.apply_all(install_binding(DAR, OTHER_HOA, OTHER_COA, old, LIFETIME_S))
    switch.apply_all(install_host(DAR, ATTACHED_MN, MN_MAC, ACCESS_PORT_1, old))
    # Restart: reinstall what the store still holds with the new generation ...
    switch.apply_all(base_flows(DAR, new))
    switch.apply_all(install_binding(DAR, HOA, COA, new, LIFETIME_S))
    switch.apply_all(install_host(DAR, ATTACHED_MN, MN_MAC, ACCESS_PORT_1, new))
    # ... then sweep every other generation: OTHER_HOA's binding was not in the store.
    switch.apply_all(delete_other_generations(DAR, new))
    generations = {decode_cookie(flow.cookie) for flow in switch.flows()}
    assert {fields.generation for fields in generations if fields} == {new}
    assert None not in generations
    assert tunnelled_to(switch, from_core()) == [COA]
    assert tunnelled_to(switch, from_core(OTHER_HOA)) == []
    assert switch.process(ipv6(CORE_PORT, CORRESPONDENT, ATTACHED_MN)).ports == (ACCESS_PORT_1,)


def test_delete_other_generations_spares_other_owners_and_the_current_generation() -> None:
    switch = populated_switch()
    foreign = FlowMod(3, Command.ADD, populated_switch().flows(3)[0].match, 4000, cookie=GENERATION)
    switch.apply(foreign)
    before = switch.flows()
    switch.apply_all(delete_other_generations(DAR, GENERATION))
    assert switch.flows() == before
    switch.apply_all(delete_other_generations(DAR, GENERATION + 1))
    assert switch.flows() == [foreign]


@pytest.mark.parametrize(
    ("hoa", "coa"),
    [
        (CORRESPONDENT, COA),  # HoA outside the access prefixes (P7)
        (HOA, ATTACHED_MN),  # CoA inside them: the tunnel would loop into this DAR
        ("2001:db8:1::1", COA),  # the anchor address itself
        ("2001:db8:11::", COA),  # a subnet-router anycast address
        (HOA, LINK_LOCAL),
        (HOA, "ff02::1"),
        ("not-an-address", COA),
    ],
)
def test_binding_builders_refuse_impossible_bindings(hoa: str, coa: str) -> None:
    with pytest.raises(ValueError):
        install_binding(DAR, hoa, coa, GENERATION, LIFETIME_S)
    with pytest.raises(ValueError):
        delete_binding(DAR, hoa, coa)


def test_host_builder_refuses_non_access_ports_and_foreign_addresses() -> None:
    with pytest.raises(ValueError):
        install_host(DAR, ATTACHED_MN, MN_MAC, CORE_PORT, GENERATION)
    for address in (CORRESPONDENT, "2001:db8:1::", "2001:db8:1::1", "fe80::5"):
        with pytest.raises(ValueError):
            install_host(DAR, address, MN_MAC, ACCESS_PORT_1, GENERATION)
    with pytest.raises(ValueError):
        install_host(DAR, ATTACHED_MN, "01:00:5e:00:00:01x", ACCESS_PORT_1, GENERATION)


# ---------------------------------------------------------------- filled templates


@given(
    host=st.integers(min_value=2, max_value=(1 << 64) - 3),
    coa_network=st.integers(min_value=0x2001_0DB9_0000_0000, max_value=0x2001_0DB9_FFFF_FFFF),
    coa_host=st.integers(min_value=1, max_value=(1 << 64) - 1),
    generation=st.integers(min_value=1, max_value=0xFFFF),
    expires_in_s=st.floats(min_value=0.5, max_value=200_000),
)
def test_filled_binding_flows_equal_fully_checked_ones(
    host: int, coa_network: int, coa_host: int, generation: int, expires_in_s: float
) -> None:
    hoa = str(ipaddress.IPv6Address(PREFIX.split("/")[0]) + host)
    coa = str(ipaddress.IPv6Address((coa_network << 64) | coa_host))
    new_coa = str(ipaddress.IPv6Address((coa_network << 64) | (coa_host ^ 1)))
    checked_install = checked_install_binding(DAR, hoa, coa, generation, expires_in_s)
    checked_deletes = checked_delete_binding(DAR, hoa, coa)
    checked_replace = [
        *checked_install_binding(DAR, hoa, new_coa, generation, expires_in_s),
        Barrier(),
        checked_deletes[-1],
    ]
    pairs = [
        (install_binding(DAR, hoa, coa, generation, expires_in_s), checked_install),
        (delete_binding(DAR, hoa, coa), checked_deletes),
        (replace_binding(DAR, hoa, coa, new_coa, generation, expires_in_s), checked_replace),
    ]
    for filled, checked in pairs:
        assert filled == checked
        assert [hash(step) for step in filled] == [hash(step) for step in checked]
        # The bytes a filled flow is sent as are the fresh encoding of its checked twin.
        for step, twin in zip(filled, checked, strict=True):
            if isinstance(step, FlowMod):
                assert wire.encode_flow_mod(step, 77) == wire.encode_flow_mod(twin, 77)


def test_a_copy_of_a_filled_flow_is_encoded_afresh() -> None:
    filled = install_binding(DAR, HOA, COA, GENERATION, LIFETIME_S)[-1]
    assert isinstance(filled, FlowMod)
    refreshed = with_addresses(filled, {}, 5)
    changed = dataclasses.replace(filled, priority=filled.priority + 1)
    for copy in (refreshed, changed):
        twin = FlowMod(
            **{field.name: getattr(copy, field.name) for field in dataclasses.fields(copy)}
        )
        assert type(twin) is FlowMod and twin == copy
        assert wire.encode_flow_mod(copy, 1) == wire.encode_flow_mod(twin, 1)
    assert refreshed.hard_timeout == 5 and refreshed.match == filled.match
    assert changed.priority == filled.priority + 1 and changed.actions == filled.actions


def test_binding_templates_follow_their_config_object() -> None:
    # Templates are kept per config object and generation, a bounded number of
    # them: equal configs, and more generations than are kept, give the same flows.
    twin = dataclasses.replace(DAR)
    assert twin == DAR and twin is not DAR
    for generation in range(1, 80):
        for dar in (DAR, twin):
            assert install_binding(dar, HOA, COA, generation, LIFETIME_S) == (
                checked_install_binding(DAR, HOA, COA, generation, LIFETIME_S)
            )
            assert delete_binding(dar, HOA, COA) == checked_delete_binding(DAR, HOA, COA)


def test_filled_flows_refuse_what_the_checked_ones_refuse() -> None:
    for hoa, coa in [
        (ANCHOR, COA),  # the DAR's own address
        (CORRESPONDENT, COA),  # outside the access prefixes (P7)
        (HOA, "2001:db8:1::77"),  # CoA on the DAR's own link
        (HOA, "ff02::1"),
        (HOA, "fe80::1"),
        ("::1", COA),
        (HOA, "::"),
    ]:
        for build in (install_binding, checked_install_binding):
            with pytest.raises(ValueError):
                build(DAR, hoa, coa, GENERATION, LIFETIME_S)
