"""Where packets go through a DAR's tables (P14, P15, P16), checked on the simulated switch."""

from __future__ import annotations

import pytest
from pipeline_fixtures import (
    ACCESS_PORT_1,
    ACCESS_PORT_2,
    ANCHOR,
    ATTACHED_MN,
    COA,
    CORE_NEXT_HOP_MAC,
    CORE_PORT,
    CORRESPONDENT,
    DAR,
    GENERATION,
    GRE_PORT,
    HOA,
    LINK_LOCAL,
    MN_MAC,
    OTHER_ANCHOR,
    OTHER_COA,
    OTHER_HOA,
    OTHER_MN_MAC,
    ROUTER_MAC,
    SUBNET_ROUTER_ANYCAST,
    UNKNOWN_HOST,
    UNKNOWN_PORT,
    binding_update,
    from_tunnel,
    gre,
    ipv6,
    neighbor_advertisement,
    neighbor_solicitation,
    populated_switch,
    router_solicitation,
)

from openflow_pipelines.dar_flows import delete_host, install_host
from openflow_pipelines.fake_table import Emission, FakeSwitch, PacketFate
from openflow_pipelines.model import CONTROLLER_PORT, LOCAL_PORT, NO_BUFFER


@pytest.fixture
def switch() -> FakeSwitch:
    return populated_switch()


def punt_of(fate: PacketFate) -> Emission:
    emission = fate.single()
    assert emission.port == CONTROLLER_PORT, fate
    assert emission.max_len == NO_BUFFER
    return emission


def assert_tunnelled(fate: PacketFate, coa: str, hop_limit: int) -> None:
    emission = fate.single()
    assert emission.port == GRE_PORT, fate
    assert emission.packet["tun_ipv6_dst"] == coa
    assert emission.packet["hop_limit"] == hop_limit


def assert_routed_to_core(fate: PacketFate, hop_limit: int) -> None:
    emission = fate.single()
    assert emission.port == CORE_PORT, fate
    assert emission.packet["eth_src"] == ROUTER_MAC
    assert emission.packet["eth_dst"] == CORE_NEXT_HOP_MAC
    assert emission.packet["hop_limit"] == hop_limit


# --- downlink: packets for a bound home address are tunnelled to the CoA (P15)


def test_packet_to_hoa_from_core_leaves_gre_port_to_coa(switch: FakeSwitch) -> None:
    fate = switch.process(ipv6(CORE_PORT, CORRESPONDENT, HOA, hop_limit=64))
    assert_tunnelled(fate, COA, hop_limit=63)


def test_packet_to_hoa_from_access_port_leaves_gre_port_to_coa(switch: FakeSwitch) -> None:
    fate = switch.process(ipv6(ACCESS_PORT_2, ATTACHED_MN, HOA))
    assert_tunnelled(fate, COA, hop_limit=63)


def test_each_binding_tunnels_to_its_own_coa(switch: FakeSwitch) -> None:
    assert_tunnelled(switch.process(ipv6(CORE_PORT, CORRESPONDENT, OTHER_HOA)), OTHER_COA, 63)


def test_packet_to_hoa_with_hop_limit_one_is_dropped_not_punted(switch: FakeSwitch) -> None:
    fate = switch.process(ipv6(CORE_PORT, CORRESPONDENT, HOA, hop_limit=1))
    assert fate.dropped and fate.hop_limit_exceeded


# --- uplink: decapsulated packets pass only for the bound (CoA, HoA) (P15)


def test_tunnel_termination_packets_go_to_local_unchanged(switch: FakeSwitch) -> None:
    # OVS pops the GRE header only when the packet is output to LOCAL.
    packet = gre(CORE_PORT, COA, ANCHOR)
    emission = switch.process(packet).single()
    assert emission.port == LOCAL_PORT
    assert emission.packet["hop_limit"] == packet["hop_limit"]


def test_decapsulated_packet_from_bound_coa_is_routed_to_core(switch: FakeSwitch) -> None:
    fate = switch.process(from_tunnel(COA, HOA, CORRESPONDENT, hop_limit=40))
    assert_routed_to_core(fate, hop_limit=39)  # the inner hop limit, decremented once


def test_decapsulated_packet_to_attached_mn_is_delivered(switch: FakeSwitch) -> None:
    emission = switch.process(from_tunnel(COA, HOA, ATTACHED_MN, hop_limit=9)).single()
    assert emission.port == ACCESS_PORT_1
    assert (emission.packet["eth_src"], emission.packet["eth_dst"]) == (ROUTER_MAC, MN_MAC)
    assert emission.packet["hop_limit"] == 8


def test_decapsulated_packet_to_another_bound_hoa_goes_back_into_the_tunnel(
    switch: FakeSwitch,
) -> None:
    # Two mobile nodes away from this DAR still talking on their home addresses.
    fate = switch.process(from_tunnel(COA, HOA, OTHER_HOA, hop_limit=9))
    assert_tunnelled(fate, OTHER_COA, hop_limit=8)


@pytest.mark.parametrize(
    ("outer_src", "inner_src"),
    [
        (OTHER_COA, HOA),  # right HoA, wrong tunnel
        (COA, OTHER_HOA),  # bound HoA, but bound to another CoA
        (COA, ATTACHED_MN),  # an address that is not bound at all
        (CORRESPONDENT, CORRESPONDENT),
    ],
)
def test_decapsulated_packet_not_matching_a_binding_is_dropped(
    switch: FakeSwitch, outer_src: str, inner_src: str
) -> None:
    fate = switch.process(from_tunnel(outer_src, inner_src, CORRESPONDENT))
    assert fate.dropped


def test_decapsulated_packet_with_hop_limit_one_is_dropped(switch: FakeSwitch) -> None:
    fate = switch.process(from_tunnel(COA, HOA, CORRESPONDENT, hop_limit=1))
    assert fate.dropped and fate.hop_limit_exceeded


# --- traffic that involves no binding (P16)


def test_attached_mn_traffic_is_routed_to_core_without_tunnel(switch: FakeSwitch) -> None:
    assert_routed_to_core(switch.process(ipv6(ACCESS_PORT_1, ATTACHED_MN, CORRESPONDENT)), 63)


def test_core_traffic_to_attached_mn_is_delivered(switch: FakeSwitch) -> None:
    emission = switch.process(ipv6(CORE_PORT, CORRESPONDENT, ATTACHED_MN)).single()
    assert emission.port == ACCESS_PORT_1
    assert emission.packet["eth_dst"] == MN_MAC


def test_reverse_tunnel_of_a_visiting_mn_passes_to_its_home_dar(switch: FakeSwitch) -> None:
    # An MN attached here, anchored elsewhere: its GRE and BUs are ordinary traffic.
    assert_routed_to_core(switch.process(gre(ACCESS_PORT_1, ATTACHED_MN, OTHER_ANCHOR)), 63)
    bu_elsewhere = binding_update(ACCESS_PORT_1, ATTACHED_MN, dst=OTHER_ANCHOR)
    assert_routed_to_core(switch.process(bu_elsewhere), 63)


def test_tunnel_from_remote_dar_to_attached_mn_is_delivered(switch: FakeSwitch) -> None:
    assert switch.process(gre(CORE_PORT, OTHER_ANCHOR, ATTACHED_MN)).ports == (ACCESS_PORT_1,)


def test_packet_from_local_goes_out_the_core_port_unchanged_hop_limit(switch: FakeSwitch) -> None:
    # The outer packet of our own tunnel, re-entering the bridge after tnl_push.
    outer = gre(LOCAL_PORT, ANCHOR, COA)  # hop limit 64
    assert_routed_to_core(switch.process(outer), hop_limit=64)


def test_access_source_outside_access_prefixes_is_dropped(switch: FakeSwitch) -> None:
    assert switch.process(ipv6(ACCESS_PORT_1, CORRESPONDENT, HOA)).dropped
    assert switch.process(ipv6(ACCESS_PORT_1, "fe80::aa", CORRESPONDENT)).dropped


def test_link_local_source_from_core_is_not_routed(switch: FakeSwitch) -> None:
    assert switch.process(ipv6(CORE_PORT, "fe80::fe", HOA)).dropped


def test_packet_from_core_to_elsewhere_is_not_sent_back_to_core(switch: FakeSwitch) -> None:
    assert switch.process(ipv6(CORE_PORT, CORRESPONDENT, "2001:db8:98::1")).dropped


# --- control traffic reaches the controller whole, and nothing else does


@pytest.mark.parametrize("in_port", [ACCESS_PORT_1, CORE_PORT])
def test_binding_update_to_anchor_is_punted_whole(switch: FakeSwitch, in_port: int) -> None:
    packet = binding_update(in_port, COA)
    emission = punt_of(switch.process(packet))
    assert emission.packet["hop_limit"] == packet["hop_limit"]


def test_binding_update_to_another_address_is_not_punted(switch: FakeSwitch) -> None:
    for destination in (LINK_LOCAL, ATTACHED_MN, SUBNET_ROUTER_ANYCAST, OTHER_ANCHOR):
        assert not switch.process(binding_update(CORE_PORT, COA, dst=destination)).punted


@pytest.mark.parametrize("in_port", [ACCESS_PORT_1, ACCESS_PORT_2])
def test_router_solicitation_from_access_reaches_controller(
    switch: FakeSwitch, in_port: int
) -> None:
    punt_of(switch.process(router_solicitation(in_port)))


def test_router_solicitation_from_core_is_dropped(switch: FakeSwitch) -> None:
    assert switch.process(router_solicitation(CORE_PORT)).dropped


@pytest.mark.parametrize("target", [ANCHOR, LINK_LOCAL])
@pytest.mark.parametrize("in_port", [ACCESS_PORT_1, ACCESS_PORT_2, CORE_PORT])
def test_neighbor_solicitation_for_own_address_reaches_controller(
    switch: FakeSwitch, in_port: int, target: str
) -> None:
    punt_of(switch.process(neighbor_solicitation(in_port, target)))


@pytest.mark.parametrize("target", [ATTACHED_MN, HOA, UNKNOWN_HOST, "fe80::bb"])
def test_neighbor_solicitation_for_other_target_is_not_punted(
    switch: FakeSwitch, target: str
) -> None:
    for in_port in (ACCESS_PORT_1, CORE_PORT):
        assert switch.process(neighbor_solicitation(in_port, target)).dropped


def test_neighbor_advertisement_from_access_reaches_controller(switch: FakeSwitch) -> None:
    punt_of(switch.process(neighbor_advertisement(ACCESS_PORT_2, UNKNOWN_HOST)))


def test_neighbor_advertisement_from_core_goes_to_local_for_ovs_snooping(
    switch: FakeSwitch,
) -> None:
    assert switch.process(neighbor_advertisement(CORE_PORT, "fe80::fe")).ports == (LOCAL_PORT,)


def test_unknown_host_in_access_prefix_is_punted_for_resolution(switch: FakeSwitch) -> None:
    punt_of(switch.process(ipv6(CORE_PORT, CORRESPONDENT, UNKNOWN_HOST)))


def test_host_entry_replaces_resolution_and_its_delete_restores_it(switch: FakeSwitch) -> None:
    packet = ipv6(CORE_PORT, CORRESPONDENT, UNKNOWN_HOST)
    switch.apply_all(install_host(DAR, UNKNOWN_HOST, OTHER_MN_MAC, ACCESS_PORT_2, GENERATION))
    emission = switch.process(packet).single()
    assert (emission.port, emission.packet["eth_dst"]) == (ACCESS_PORT_2, OTHER_MN_MAC)
    switch.apply_all(delete_host(DAR, UNKNOWN_HOST))
    punt_of(switch.process(packet))


@pytest.mark.parametrize(
    "destination",
    [
        ANCHOR,
        LINK_LOCAL,
        SUBNET_ROUTER_ANYCAST,
        "2001:db8:11::",
        "ff02::1",
        "fe80::aa",
        "::1",
        "::",
    ],
)
def test_packets_to_own_or_unroutable_addresses_are_dropped(
    switch: FakeSwitch, destination: str
) -> None:
    for packet in (
        ipv6(CORE_PORT, CORRESPONDENT, destination),
        ipv6(ACCESS_PORT_1, ATTACHED_MN, destination),
        from_tunnel(COA, HOA, destination),
    ):
        assert switch.process(packet).dropped, packet


@pytest.mark.parametrize("eth_type", [0x0800, 0x0806, 0x88CC])
def test_non_ipv6_is_dropped(switch: FakeSwitch, eth_type: int) -> None:
    for in_port in (ACCESS_PORT_1, CORE_PORT, GRE_PORT, LOCAL_PORT):
        assert switch.process({"in_port": in_port, "eth_type": eth_type}).dropped


def test_unknown_port_is_dropped(switch: FakeSwitch) -> None:
    assert switch.process(ipv6(UNKNOWN_PORT, ATTACHED_MN, HOA)).dropped
    assert switch.process(router_solicitation(UNKNOWN_PORT)).dropped
