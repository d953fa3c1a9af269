"""Tests of the pure parts of fama_ryu/mn_agent.py: the decision core and its helpers.

The core is driven by events with a fake clock (plain floats) and a seeded
random source; its Binding Updates are answered by real
``fama_ryu.home_agent.HomeAgent`` instances, so every BA it sees carries a
real PHKT and authenticator.  RAs come from the DAR's own builder
(``fama_ryu.icmpv6.build_router_advertisement``) through the RA parser.

Spec references: FAMA-PROFILE P2, P3, P4, P6, P9, P11, P12, P16;
RFC 4861 §6.3.7 (solicitation), RFC 6275 §11.8 (retransmission).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mn_factory import rsa_key

from fama_ryu import cga, icmpv6, mh, mn_agent, ra
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig, Verdict
from fama_ryu.mn_agent import (
    AddHomeRule,
    ConfigureAddress,
    FlushNeighbours,
    KeepPolicy,
    KeepRule,
    MobileNodeCore,
    RemoveAddress,
    RemoveDefaultRoute,
    RemoveHomeRule,
    SetDefaultRoute,
    StartTunnel,
    StopTunnel,
    Transmit,
)
from fama_ryu.mn_tunnel import TunnelCounters, TunnelPeer
from fama_ryu.mobile_node import MobileNodeIdentity

MN_MAC = bytes.fromhex("02000000000a")
MN_LL = ipaddress.IPv6Address("fe80::ff:fe00:a").packed
IDENTITY = MobileNodeIdentity(rsa_key(1024))


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


@dataclass(frozen=True)
class Dar:
    mac: bytes
    link_local: bytes
    prefix: bytes  # 8 bytes
    anchor: bytes

    def advertisement(
        self, *, router_lifetime_s: int = 1800, r_flag: bool = True, length: int = 64
    ) -> ra.RouterAdvertisement:
        frame = icmpv6.build_router_advertisement(
            router_mac=self.mac,
            router_link_local=self.link_local,
            destination=icmpv6.ALL_NODES,
            destination_mac=icmpv6.multicast_mac(icmpv6.ALL_NODES),
            prefixes=[
                icmpv6.AdvertisedPrefix(
                    prefix=self.prefix + bytes(8),
                    length=length,
                    router_address=self.anchor if r_flag else None,
                )
            ],
            router_lifetime_s=router_lifetime_s,
        )
        return ra.parse_router_advertisement_frame(frame)

    def home_agent(self) -> HomeAgent:
        config = HomeAgentConfig(
            name=self.anchor.hex(),
            anchor_address=self.anchor,
            home_prefixes=(self.prefix,),
            local_prefixes=(self.prefix,),
        )
        return HomeAgent(config, rng=random.Random(7).randbytes)


def numbered_dar(n: int) -> Dar:
    """DAR n: router fe80::dn, MAC 02:00:00:00:00:dn, prefix 2001:db8:n::/64, A_d ::1 in it."""
    return Dar(
        bytes.fromhex(f"0200000000d{n}"),
        ip6(f"fe80::d{n}"),
        ip6(f"2001:db8:{n}::")[:8],
        ip6(f"2001:db8:{n}::1"),
    )


DAR1, DAR2, DAR3 = (numbered_dar(n) for n in (1, 2, 3))
NO_SOCKETS: frozenset[bytes] = frozenset()


def make_core(keep_rule: KeepRule | None = None, *, seed: int = 1) -> MobileNodeCore:
    return MobileNodeCore(
        IDENTITY,
        interface="eth0",
        interface_mac=MN_MAC,
        rng=random.Random(seed).randbytes,
        keep_rule=keep_rule,
        sec=0,  # no modifier search: fast and deterministic
        lifetime_s=400,
    )


def packets(actions: list[mn_agent.Action]) -> list[mh.MobilityPacket]:
    """The Binding Updates among ``actions``, decoded (Ethernet checked)."""
    found = []
    for action in actions:
        if isinstance(action, Transmit) and action.binding is not None:
            assert action.frame[6:12] == MN_MAC
            found.append(mh.parse_ethernet_frame(action.frame))
    return found


def answer(
    core: MobileNodeCore, home_agent: HomeAgent, bu: mh.MobilityPacket, now: float
) -> list[mn_agent.Action]:
    """The HDAR decides the BU; its BA goes back into the core."""
    decision = home_agent.handle(bu, now)
    if decision.change is not None:
        home_agent.apply(decision.change)
    assert decision.reply is not None, decision
    return core.mobility_packet(mh.parse_ipv6_packet(decision.reply.packet), now + 0.01)


def announcement(address: bytes) -> Transmit:
    """The unsolicited NA that announces a new current address (RFC 9131)."""
    return Transmit(ra.build_unsolicited_neighbor_advertisement(source_mac=MN_MAC, address=address))


def address_of(actions: list[mn_agent.Action]) -> bytes:
    """The address of the first ConfigureAddress on IF."""
    return next(a.address for a in actions if isinstance(a, ConfigureAddress) and not a.on_tunnel)


def attached(keep_rule: KeepRule | None = None) -> tuple[MobileNodeCore, bytes]:
    core = make_core(keep_rule)
    actions = core.router_advertisement(DAR1.advertisement(), 0.0, NO_SOCKETS)
    return core, address_of(actions)


def moved(keep_rule: KeepRule | None = None):
    """Attached at DAR1, then moved to DAR2 with the first address kept and registered."""
    core, hoa = attached(keep_rule)
    actions = core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    coa = address_of(actions)
    home_agent = DAR1.home_agent()
    (bu,) = packets(actions)
    assert answer(core, home_agent, bu, 10.0) == []
    return core, hoa, coa, home_agent


def status(core: MobileNodeCore, now: float = 20.0, wall: float = 1_000_000.0) -> dict:
    document = core.status(now, wall, TunnelCounters())
    return json.loads(json.dumps(document))  # must be plain JSON


def roles(core: MobileNodeCore) -> dict[bytes, str]:
    return {address.address: address.role.value for address in core.addresses()}


# ---------------------------------------------------------------- solicitation


def test_link_up_sends_up_to_three_solicitations_four_seconds_apart():
    core = make_core()
    (first,) = core.link_up(0.0, MN_LL)
    assert isinstance(first, Transmit)
    solicitation = icmpv6.parse_nd_frame(first.frame)
    assert solicitation.icmp_type == icmpv6.ROUTER_SOLICITATION
    assert solicitation.source == MN_LL and solicitation.sender_mac == MN_MAC
    assert core.next_deadline() == 4.0
    assert core.tick(3.9) == []
    assert len(core.tick(4.0)) == 1 and len(core.tick(8.0)) == 1
    assert core.next_deadline() is None and core.tick(100.0) == []


def test_solicitation_without_link_local_is_from_unspecified():
    (action,) = make_core().link_up(0.0, None)
    assert isinstance(action, Transmit)
    assert icmpv6.parse_nd_frame(action.frame).source == bytes(16)


def test_an_advertisement_stops_soliciting():
    core = make_core()
    core.link_up(0.0, MN_LL)
    core.router_advertisement(DAR1.advertisement(), 1.0, NO_SOCKETS)
    assert core.next_deadline() is None


# ---------------------------------------------------------------- attach


def test_attach_configures_a_cga_and_the_default_route():
    core = make_core()
    actions = core.router_advertisement(DAR1.advertisement(), 0.0, NO_SOCKETS)
    configure, route, flush, announce = actions
    assert flush == FlushNeighbours()
    assert isinstance(configure, ConfigureAddress)
    assert (configure.prefix_length, configure.on_tunnel, configure.preferred) == (64, False, True)
    assert configure.address[:8] == DAR1.prefix
    assert route == SetDefaultRoute(DAR1.link_local, configure.address)
    # The DAR learns the new address from it (it snoops NAs from access links).
    assert isinstance(announce, Transmit) and announce.binding is None
    advertisement = icmpv6.parse_nd_frame(announce.frame)
    assert advertisement.icmp_type == icmpv6.NEIGHBOR_ADVERTISEMENT
    assert (advertisement.target, advertisement.sender_mac) == (configure.address, MN_MAC)
    assert advertisement.source == configure.address and advertisement.na_flags == 0
    (address,) = core.addresses()
    assert cga.verify_cga(configure.address, address.params).ok  # P3
    assert address.anchor == DAR1.anchor and core.router is not None
    assert core.router.mac == DAR1.mac


def test_later_cgas_reuse_the_first_modifier():
    core = MobileNodeCore(
        IDENTITY, interface="eth0", interface_mac=MN_MAC, rng=random.Random(3).randbytes, sec=1
    )
    first = address_of(core.router_advertisement(DAR1.advertisement(), 0.0, NO_SOCKETS))
    second = address_of(core.router_advertisement(DAR2.advertisement(), 1.0, NO_SOCKETS))
    params = {address.address: address.params for address in core.addresses()}
    # RFC 3972 §4: same key, new prefix, the old modifier MAY be reused.
    assert params[first].modifier == params[second].modifier
    assert second[:8] == DAR2.prefix and second[8:] != first[8:]
    assert cga.verify_cga(second, params[second]).ok and cga.address_sec(second) == 1


def test_the_same_advertisement_again_changes_nothing():
    core, _ = attached()
    assert core.router_advertisement(DAR1.advertisement(), 5.0, NO_SOCKETS) == []


def test_a_new_router_mac_is_learnt_without_a_move():
    core, _ = attached()
    new_mac = bytes.fromhex("0200000000ee")
    advertisement = Dar(new_mac, DAR1.link_local, DAR1.prefix, DAR1.anchor).advertisement()
    assert core.router_advertisement(advertisement, 5.0, NO_SOCKETS) == []
    assert core.router is not None and core.router.mac == new_mac


@pytest.mark.parametrize(
    ("advertisement", "why"),
    [
        (DAR1.advertisement(r_flag=False), "no anchor address"),
        (DAR1.advertisement(router_lifetime_s=0), "not a default router"),
        (DAR1.advertisement(length=56), "no /64 for a CGA"),
    ],
)
def test_unusable_advertisements_are_ignored(advertisement, why):
    core = make_core()
    assert core.router_advertisement(advertisement, 0.0, NO_SOCKETS) == [], why
    assert core.router is None


# ---------------------------------------------------------------- move


def test_move_configures_a_new_cga_keeps_and_registers_the_old_one():
    core, hoa = attached()
    actions = core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    coa = address_of(actions)
    assert coa[:8] == DAR2.prefix
    assert actions[:-1] == [
        ConfigureAddress(coa, 64, on_tunnel=False, preferred=True),
        SetDefaultRoute(DAR2.link_local, coa),
        FlushNeighbours(),
        announcement(coa),
        # P16: deprecated, on the tunnel before it leaves IF.
        ConfigureAddress(hoa, 128, on_tunnel=True, preferred=False),
        RemoveAddress(hoa, 64, on_tunnel=False),
        AddHomeRule(hoa),
        StartTunnel(TunnelPeer(hoa, DAR1.anchor, coa)),
    ]
    (bu,) = packets(actions)
    assert actions[-1].frame[:6] == DAR2.mac  # type: ignore[union-attr]
    # P4: from the CoA to A_HDAR with the HoA in a Home Address option, A and H set.
    assert (bu.source, bu.destination, bu.home_address) == (coa, DAR1.anchor, hoa)
    message = bu.message
    assert isinstance(message, mh.BindingUpdate)
    assert message.ack and message.home_registration and message.lifetime_s == 400
    assert message.options.cga_parameters is not None and message.options.signature is not None
    assert roles(core) == {coa: "current", hoa: "kept"}


def test_ba_drives_the_binding_state():
    core, hoa = attached()
    actions = core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    (binding,) = status(core)["bindings"]
    assert binding["state"] == "pending" and binding["phkt_held"] is False
    (bu,) = packets(actions)
    answer(core, DAR1.home_agent(), bu, 10.0)
    (binding,) = status(core, now=20.0, wall=1_000_000.0)["bindings"]
    assert binding["state"] == "registered" and binding["phkt_held"] is True
    assert binding["granted_lifetime_s"] == 400
    # The lifetime counts from when the BU was sent (t=10), in wall-clock time.
    assert binding["expires_at"] == pytest.approx(1_000_000.0 + 10.0 + 400 - 20.0)


def test_unanswered_bu_is_retransmitted_then_the_address_released():
    core, hoa = attached()
    core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    sequences = []
    released: list[mn_agent.Action] = []
    now = 10.0
    while not released:
        deadline = core.next_deadline()
        assert deadline is not None
        now = deadline
        actions = core.tick(now)
        sequences += [p.message.sequence for p in packets(actions)]  # type: ignore[union-attr]
        released = [a for a in actions if isinstance(a, RemoveAddress)]
    assert len(sequences) == 5  # RFC 6275 §11.8: 1.5, 3, 6, 12, 24, then 32 s unanswered
    assert released == [RemoveAddress(hoa, 128, on_tunnel=True)]
    assert now == pytest.approx(10.0 + 1.5 + 3 + 6 + 12 + 24 + 32)
    assert roles(core)[hoa] == "released" and status(core)["bindings"] == []


def test_rejected_binding_releases_the_address():
    core, hoa = attached()
    actions = core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    (bu,) = packets(actions)
    rejection = DAR1.home_agent().rejection_packet(bu, mh.BAStatus.ADMINISTRATIVELY_PROHIBITED)
    outcome = core.mobility_packet(mh.parse_ipv6_packet(rejection), 10.1)
    assert outcome == [StopTunnel(hoa), RemoveHomeRule(hoa), RemoveAddress(hoa, 128, True)]
    assert roles(core)[hoa] == "released"


def test_second_move_reregisters_with_phkt_and_registers_the_second_address():
    core, hoa, coa, home_agent1 = moved()
    actions = core.router_advertisement(DAR3.advertisement(), 30.0, NO_SOCKETS)
    coa3 = address_of(actions)
    assert StartTunnel(TunnelPeer(hoa, DAR1.anchor, coa3)) in actions
    assert StartTunnel(TunnelPeer(coa, DAR2.anchor, coa3)) in actions
    by_hdar = {p.destination: p for p in packets(actions)}
    refresh, first = by_hdar[DAR1.anchor], by_hdar[DAR2.anchor]
    # P9: the later BU is PHKT-authenticated, the first one at DAR2 CGA-signed (P6).
    assert refresh.message.options.authenticator is not None  # type: ignore[union-attr]
    assert refresh.message.options.cga_parameters is None  # type: ignore[union-attr]
    assert first.message.options.cga_parameters is not None  # type: ignore[union-attr]
    answer(core, home_agent1, refresh, 30.0)
    answer(core, DAR2.home_agent(), first, 30.0)
    states = {(b["hoa"], b["coa"], b["state"]) for b in status(core, now=31.0)["bindings"]}
    text = ipaddress.IPv6Address
    assert states == {
        (str(text(hoa)), str(text(coa3)), "registered"),
        (str(text(coa)), str(text(coa3)), "registered"),
    }


def test_another_router_of_the_same_dar_only_changes_the_default_route():
    core, hoa, coa, _ = moved()
    other_router = Dar(bytes.fromhex("0200000000f2"), ip6("fe80::f2"), DAR2.prefix, DAR2.anchor)
    actions = core.router_advertisement(other_router.advertisement(), 20.0, NO_SOCKETS)
    assert actions == [
        SetDefaultRoute(other_router.link_local, coa),
        FlushNeighbours(),
        announcement(coa),
    ]


# ---------------------------------------------------------------- return home


def test_return_home_deregisters_with_coa_equal_to_hoa_and_untunnels():
    core, hoa, coa, home_agent1 = moved()
    actions = core.router_advertisement(DAR1.advertisement(), 40.0, NO_SOCKETS)
    assert actions[:4] == [
        StopTunnel(hoa),
        RemoveHomeRule(hoa),
        ConfigureAddress(hoa, 64, on_tunnel=False, preferred=True),
        RemoveAddress(hoa, 128, on_tunnel=True),
    ]
    assert actions[4:7] == [
        SetDefaultRoute(DAR1.link_local, hoa),
        FlushNeighbours(),
        announcement(hoa),
    ]
    assert not any(
        isinstance(a, ConfigureAddress) and a.address[:8] == DAR1.prefix and a.address != hoa
        for a in actions
    )  # no new CGA: the old address is current again
    deregistration, registration = packets(actions)
    # P11: CoA == HoA, sent from the HoA itself without a Home Address option.
    assert deregistration.source == hoa and deregistration.home_address is None
    assert deregistration.destination == DAR1.anchor
    assert deregistration.message.lifetime_units == 0  # type: ignore[union-attr]
    assert deregistration.message.options.authenticator is not None  # type: ignore[union-attr]
    decision = home_agent1.handle(deregistration, 40.0)
    assert decision.verdict is Verdict.ACCEPTED
    home_agent1.apply(decision.change)  # type: ignore[arg-type]
    assert decision.reply is not None
    assert core.mobility_packet(mh.parse_ipv6_packet(decision.reply.packet), 40.01) == []
    # The address of DAR2 is kept in turn, the HoA being its CoA now.
    assert (registration.source, registration.destination, registration.home_address) == (
        hoa,
        DAR2.anchor,
        coa,
    )
    answer(core, DAR2.home_agent(), registration, 40.0)
    document = status(core, now=41.0)
    assert [(b["hoa"], b["state"]) for b in document["bindings"]] == [
        (str(ipaddress.IPv6Address(coa)), "registered")
    ]
    assert {a["address"]: (a["role"], a["preferred"]) for a in document["addresses"]} == {
        str(ipaddress.IPv6Address(hoa)): ("current", True),
        str(ipaddress.IPv6Address(coa)): ("kept", False),
    }


# ---------------------------------------------------------------- keep policies


def test_policy_connections_releases_an_unused_address():
    core, hoa = attached(KeepRule(KeepPolicy.CONNECTIONS))
    actions = core.router_advertisement(DAR2.advertisement(), 100.0, NO_SOCKETS)
    coa = address_of(actions)
    assert actions == [
        ConfigureAddress(coa, 64, on_tunnel=False, preferred=True),
        SetDefaultRoute(DAR2.link_local, coa),
        FlushNeighbours(),
        announcement(coa),
        RemoveAddress(hoa, 64, on_tunnel=False),
    ]
    assert roles(core) == {coa: "current", hoa: "released"}
    assert status(core)["bindings"] == []


def test_policy_connections_keeps_an_address_in_use():
    core, hoa = attached(KeepRule(KeepPolicy.CONNECTIONS))
    actions = core.router_advertisement(DAR2.advertisement(), 100.0, frozenset({hoa}))
    assert AddHomeRule(hoa) in actions and len(packets(actions)) == 1


def test_policy_connections_keeps_recent_use_then_releases_with_deregistration():
    core, hoa = attached(KeepRule(KeepPolicy.CONNECTIONS))
    assert core.sockets_seen(frozenset({hoa}), 0.0) == []
    actions = core.router_advertisement(DAR2.advertisement(), 20.0, NO_SOCKETS)
    coa = address_of(actions)
    (bu,) = packets(actions)
    home_agent = DAR1.home_agent()
    answer(core, home_agent, bu, 20.0)
    assert core.sockets_seen(NO_SOCKETS, 25.0) == []  # used 25 s ago: within the grace
    released = core.sockets_seen(NO_SOCKETS, 31.0)
    assert released[:2] == [StopTunnel(hoa), RemoveHomeRule(hoa)]
    assert released[-1] == RemoveAddress(hoa, 128, on_tunnel=True)
    (deregistration,) = packets(released)
    # P11: lifetime 0 from the current CoA, authenticated over the HoA (P9).
    assert (deregistration.source, deregistration.home_address) == (coa, hoa)
    assert deregistration.message.lifetime_units == 0  # type: ignore[union-attr]
    assert answer(core, home_agent, deregistration, 31.0) == []
    assert status(core, now=32.0)["bindings"] == []


def test_policy_all_never_releases_on_socket_snapshots():
    core, hoa, _, _ = moved()
    assert core.sockets_seen(NO_SOCKETS, 1000.0) == []
    assert roles(core)[hoa] == "kept"


@pytest.mark.parametrize(
    ("network", "kept"),
    [("2001:db8:1::/64", True), ("2001:db8:9::/64", False)],
)
def test_policy_list_keeps_listed_networks(network, kept):
    core, hoa = attached(KeepRule(KeepPolicy.LIST, (ipaddress.IPv6Network(network),)))
    core.router_advertisement(DAR2.advertisement(), 10.0, NO_SOCKETS)
    assert roles(core)[hoa] == ("kept" if kept else "released")


def test_policy_list_takes_single_addresses():
    core, hoa = attached()
    rule = KeepRule(KeepPolicy.LIST, (ipaddress.IPv6Network(ipaddress.IPv6Address(hoa)),))
    address = next(iter(core.addresses()))
    assert rule.keeps(address, 0.0, NO_SOCKETS)


# ---------------------------------------------------------------- status, shutdown


def test_status_shape_and_no_phkt():
    core, hoa, coa, home_agent = moved()
    document = core.status(20.0, time.time(), TunnelCounters(1, 2, 3, 4, 5))
    assert set(document) == {"interface", "current_dar", "addresses", "bindings", "tunnel"}
    assert document["interface"] == "eth0"
    assert document["current_dar"] == {
        "prefix": "2001:db8:2::/64",
        "anchor": "2001:db8:2::1",
        "router": "fe80::d2",
    }
    for address in document["addresses"]:
        assert set(address) == {"address", "prefix", "anchor", "role", "preferred"}
    (binding,) = document["bindings"]
    assert set(binding) == {
        "hoa",
        "hdar",
        "coa",
        "state",
        "last_sequence",
        "phkt_held",
        "granted_lifetime_s",
        "expires_at",
    }
    assert document["tunnel"] == {
        "packets_out": 1,
        "packets_in": 2,
        "bytes_out": 3,
        "bytes_in": 4,
        "dropped": 5,
    }
    text = json.dumps(document)
    phkt = home_agent.cache.get(hoa).phkt  # type: ignore[union-attr]
    assert phkt.hex() not in text and phkt.hex(":") not in text
    assert [key for key in text.split('"') if "phkt" in key] == ["phkt_held"]


def test_status_before_attaching():
    document = status(make_core())
    assert document["current_dar"] is None and document["addresses"] == []


def test_shutdown_removes_rules_and_the_default_route_and_sends_nothing():
    core, hoa, _, _ = moved()
    assert core.shutdown() == [RemoveHomeRule(hoa), RemoveDefaultRoute(DAR2.link_local)]
    assert make_core().shutdown() == []


# ---------------------------------------------------------------- helpers of the I/O layer


def test_ip_commands():
    hoa, router = ip6("2001:db8:1::10"), ip6("fe80::d1")

    def command(action: mn_agent.Action) -> str | None:
        argv = mn_agent.ip_command(action, "eth0", "fama-tun")
        return None if argv is None else " ".join(argv)

    assert command(ConfigureAddress(hoa, 64, False, True)) == (
        "addr replace 2001:db8:1::10/64 dev eth0 nodad valid_lft forever preferred_lft forever"
    )
    assert command(ConfigureAddress(hoa, 128, True, False)) == (
        "addr replace 2001:db8:1::10/128 dev fama-tun nodad valid_lft forever preferred_lft 0"
    )
    assert command(RemoveAddress(hoa, 128, True)) == "addr del 2001:db8:1::10/128 dev fama-tun"
    assert command(SetDefaultRoute(router, hoa)) == (
        "route replace default via fe80::d1 dev eth0 src 2001:db8:1::10"
    )
    assert command(RemoveDefaultRoute(router)) == "route del default via fe80::d1 dev eth0"
    assert command(FlushNeighbours()) == "neigh flush dev eth0"
    assert command(AddHomeRule(hoa)) == "rule add from 2001:db8:1::10/128 lookup 64077 pref 1000"
    assert command(RemoveHomeRule(hoa)) == "rule del from 2001:db8:1::10/128 lookup 64077 pref 1000"
    assert command(Transmit(b"")) is None and command(StopTunnel(hoa)) is None
    assert mn_agent.tunnel_table_command("fama-tun") == (
        ["route", "replace", "default", "dev", "fama-tun", "table", "64077"]
    )


def test_failed_batch_commands():
    stderr = (
        "Error: Nexthop device is not up.\nCommand failed -:2\n"
        "RTNETLINK answers: No such file or directory\nCommand failed -:3\n"
    )
    assert mn_agent.failed_batch_commands(stderr) == {
        1: "Error: Nexthop device is not up.",
        2: "RTNETLINK answers: No such file or directory",
    }
    assert mn_agent.failed_batch_commands("") == {}


def proc_line(address: str, state: int) -> str:
    words = struct.unpack("=4I", ip6(address))
    hex_address = "".join(f"{word:08X}" for word in words)
    return f"   0: {hex_address}:1F90 {'0' * 32}:0000 {state:02X} 00000000:00000000 00:0 0 0"


def test_addresses_in_use_from_proc_net():
    header = "  sl  local_address remote_address st tx_queue rx_queue ...\n"
    tcp6 = header + "\n".join(
        [
            proc_line("2001:db8:1::10", 0x01),  # ESTABLISHED
            proc_line("2001:db8:1::11", 0x06),  # TIME_WAIT: no connection
            proc_line("2001:db8:1::12", 0x07),  # CLOSE
            proc_line("2001:db8:1::13", 0x0A),  # LISTEN on that address
            proc_line("::", 0x0A),  # LISTEN on any address: no particular one
        ]
    )
    udp6 = header + proc_line("2001:db8:2::20", 0x07) + "\nshort line\n"
    assert mn_agent.addresses_in_use(tcp6, udp6) == {
        ip6("2001:db8:1::10"),
        ip6("2001:db8:1::13"),
        ip6("2001:db8:2::20"),
    }


def test_addresses_in_use_reads_this_hosts_files():
    # Whatever runs here, the real files parse (IPv6 may be absent: empty then).
    paths = [Path(f"/proc/net/{name}") for name in ("tcp6", "udp6")]
    texts = [path.read_text() if path.exists() else "" for path in paths]
    assert all(len(address) == 16 for address in mn_agent.addresses_in_use(*texts))


def test_link_local_from_if_inet6():
    text = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "20010db8000100000000000000000010 02 40 00 80     eth0\n"
        "fe800000000000000000000000000001 02 40 20 c0     eth0\n"  # tentative
        "fe8000000000000000ff00fffe01000a 02 40 20 80     eth0\n"
        "fe800000000000000000000000000002 03 40 20 80     eth1\n"
    )
    assert mn_agent.link_local_of(text, "eth0") == ip6("fe80::ff:ff:fe01:a")
    assert mn_agent.link_local_of(text, "eth2") is None


# ---------------------------------------------------------------- command line


def test_status_without_state_exits_1(tmp_path, capsys):
    assert mn_agent.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "no agent state" in capsys.readouterr().err


def test_status_prints_fresh_state_and_refuses_stale(tmp_path, capsys):
    core, *_ = moved()
    state = tmp_path / mn_agent.STATE_FILE
    mn_agent.write_state(state, core.status(20.0, time.time(), TunnelCounters()))
    assert mn_agent.main(["status", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["interface"] == "eth0"
    os.utime(state, (time.time() - 60, time.time() - 60))
    assert mn_agent.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [mn_agent.STATE_FILE]  # no temp file left


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--keep-address", "2001:db8::1"], "--keep-address needs --keep list"),
        (["--keep", "list", "--keep-address", "nonsense"], "bad --keep-address"),
        (["--sec", "2"], "--sec must be 0 or 1"),
        (["--bits", "512"], "--bits must be"),
        (["--lifetime", "0"], "--lifetime must be"),
    ],
)
def test_run_rejects_bad_arguments(arguments, message, capsys):
    assert mn_agent.main(["run", "--interface", "eth0", *arguments]) == 2
    assert message in capsys.readouterr().err
