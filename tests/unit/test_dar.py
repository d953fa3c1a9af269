"""Behaviour of the pure DAR core (``fama_ryu.dar.Dar``), switch simulated by ``FakeSwitch``.

Every test builds a DAR from a parsed domain dict (ports as numbers),
connects it, applies the returned flow steps to a ``FakeSwitch`` and then
drives frames through ``Dar.packet_in`` / ``Dar.tick``: replies are parsed
with scapy (an independent decoder) or with the project's MH codec when
scapy lacks the option (PHKT), and forwarding is judged by asking the
simulated switch where a packet goes.  No ryu, no network, no clock.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mn_factory import (
    ANCHOR,
    COA_1,
    COA_2,
    COA_3,
    MobileNode,
    addr,
    ba_authenticator_ok,
    coti_packet,
    kbm,
)
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BE,
    UDP,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
)
from scapy.layers.l2 import Ether
from scapy.packet import raw

from fama_ryu import icmpv6, mh
from fama_ryu.binding_cache import Binding, BindingCache, ChangeKind, RemovalCause
from fama_ryu.config import ConfigError, parse_domain
from fama_ryu.dar import Dar, PacketOut, Work, _RateLimiter
from openflow_pipelines import dar_flows
from openflow_pipelines.cookies import FlowKind, decode_cookie, encode_cookie
from openflow_pipelines.fake_table import FakeSwitch, PacketFate
from openflow_pipelines.model import Barrier, Command, FlowMod

ACCESS_1, ACCESS_2, CORE, GRE, UNKNOWN_PORT = 1, 2, 10, 20, 99
ACCESS_PORTS = (ACCESS_1, ACCESS_2)
ROUTER_MAC = "02:00:00:00:0a:01"
CORE_MAC = "02:00:00:00:ff:ff"
MN_MAC = "02:00:00:00:aa:01"
LINK_LOCAL = "fe80::a:1"
ANCHOR_TEXT = "2001:db8:a::1"
CORRESPONDENT = "2001:db8:99::5"
MN_LINK_LOCAL = "fe80::aa:1"
ON_LINK_HOST = "2001:db8:a::55"  # in the access prefix, never heard of
T0 = 1_000_000.0


def domain_dict(**overrides: object) -> dict[str, object]:
    dar: dict[str, object] = {
        "name": "dara",
        "dpid": 0xA,
        "access_ports": list(ACCESS_PORTS),
        "core_port": CORE,
        "gre_port": GRE,
        "router_mac": ROUTER_MAC,
        "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
        "anchor_address": ANCHOR_TEXT,
        "link_local": LINK_LOCAL,
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
        "ra_interval_s": [3, 4],
    }
    dar.update(overrides)
    return {"dars": [dar]}


def make_dar(seed: int = 1, cache: BindingCache | None = None, **overrides: object) -> Dar:
    domain = parse_domain(domain_dict(**overrides), "test")
    return Dar(domain.dars[0], domain, random.Random(seed).randbytes, cache=cache)


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Rig:
    """A connected DAR, its simulated switch, and the shim's order of execution."""

    def __init__(self, dar: Dar | None = None, generation: int = 1, now: float = T0) -> None:
        self.dar = dar if dar is not None else make_dar()
        self.switch = FakeSwitch()
        self.now = now
        self.connect_work = self.dar.connect({}, generation, now)
        self.switch.apply_all(self.connect_work.flow_steps)

    def send(self, port: int, frame: bytes, now: float | None = None) -> Work:
        return self.dar.packet_in(port, frame, self.now if now is None else now)

    def execute(self, work: Work) -> Work:
        """What the shim does after a successful store commit: cache, then flows."""
        self.dar.committed(work.changes)
        self.switch.apply_all(work.flow_steps)
        return work

    def send_and_execute(self, port: int, frame: bytes, now: float | None = None) -> Work:
        return self.execute(self.send(port, frame, now))

    def downlink(self, hoa: bytes | str, in_port: int = CORE) -> PacketFate:
        return self.switch.process(
            {
                "in_port": in_port,
                "eth_type": 0x86DD,
                "eth_src": CORE_MAC,
                "eth_dst": ROUTER_MAC,
                "ipv6_src": CORRESPONDENT,
                "ipv6_dst": hoa if isinstance(hoa, str) else text(hoa),
                "ip_proto": 17,
                "hop_limit": 64,
            }
        )

    def uplink(self, hoa: bytes, coa: bytes, destination: str = CORRESPONDENT) -> PacketFate:
        """A packet as OVS presents it after popping GRE (no Ethernet, tun_ipv6_src)."""
        return self.switch.process(
            {
                "in_port": GRE,
                "eth_type": 0x86DD,
                "ipv6_src": text(hoa),
                "ipv6_dst": destination,
                "ip_proto": 17,
                "tun_ipv6_src": text(coa),
                "hop_limit": 64,
            }
        )


def from_core(ipv6_packet: bytes) -> bytes:
    return mh.build_ethernet_frame(mac_bytes(CORE_MAC), mac_bytes(ROUTER_MAC), ipv6_packet)


def tunnelled_to(fate: PacketFate) -> str | None:
    """The CoA a downlink packet is tunnelled to (None: not tunnelled)."""
    emission = fate.single()
    if emission.port != GRE:
        return None
    return str(ipaddress.IPv6Address(emission.packet["tun_ipv6_dst"]))


def parse_reply(out: PacketOut) -> mh.MobilityPacket:
    return mh.parse_ethernet_frame(out.frame)


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def bound(rig: Rig) -> tuple[Rig, MobileNode]:
    """``rig`` with a mobile node bound to COA_1 and holding its PHKT."""
    mn = MobileNode.create()
    work = rig.send_and_execute(CORE, from_core(mn.first_bu(1, COA_1)))
    mn.learn_phkt(work.after_flows[0].frame[14:], COA_1)
    return rig, mn


# ---------------------------------------------------------------- connection


def test_connect_installs_the_pipeline_and_sends_unsolicited_ras(rig: Rig) -> None:
    """Connect installs flows only; the first tick after it sends the unsolicited RAs."""
    work = rig.connect_work
    assert rig.dar.connected and rig.dar.generation == 1
    assert not work.changes and not work.after_flows and not work.decisions
    assert work.packet_outs == []  # no RA in the connect work: the next tick sends them
    cookies = {decode_cookie(step.cookie) for step in work.flow_steps if isinstance(step, FlowMod)}
    assert {(c.kind, c.generation) for c in cookies if c} == {(FlowKind.PIPELINE, 1)}
    assert rig.dar.counters["router_advertisement"] == 0
    assert rig.dar.next_deadline() == T0  # the first RA is due at once
    tick = rig.dar.tick(T0)
    assert not tick.changes and not tick.flow_steps and not tick.after_flows
    assert sorted(out.port for out in tick.packet_outs) == list(ACCESS_PORTS)
    assert rig.dar.counters["router_advertisement"] == len(ACCESS_PORTS)
    for out in tick.packet_outs:
        ra = Ether(out.frame)
        assert ra[IPv6].dst == "ff02::1" and ra[Ether].dst == "33:33:00:00:00:01"
        assert ra[ICMPv6ND_RA].H == 1


def test_a_disconnected_dar_ignores_packets() -> None:
    dar = make_dar()
    assert not dar.connected
    assert dar.packet_in(ACCESS_1, rs_frame(), T0) == Work()


def test_unknown_port_name_is_a_lookup_error() -> None:
    dar = make_dar(access_ports=["acc0"])
    with pytest.raises(LookupError, match="no port named 'acc0'"):
        dar.connect({"other": 3}, 1, T0)
    assert not dar.connected and dar.next_deadline() is None
    work = dar.connect({"acc0": 7}, 1, T0)
    assert dar.pipeline is not None and dar.pipeline.access_ports == (7,)
    assert work.packet_outs == []  # the RA comes with the next tick, out the resolved port
    assert [out.port for out in dar.tick(T0).packet_outs] == [7]


def test_core_next_hop_mac_is_required_to_connect() -> None:
    """No DAR without its next hop's MAC: the domain file is refused before any connect."""
    with pytest.raises(ConfigError, match=r"dars\[0\]\.core_next_hop\.mac: required key"):
        make_dar(core_next_hop={"address": "2001:db8:ffff::ff"})


def test_rate_limiter_forgets_the_least_recently_used_key_beyond_its_capacity() -> None:
    limiter = _RateLimiter(1.0, 1.0, capacity=3)
    for key in (b"a", b"b", b"c"):
        assert limiter.allow(key, 0.0)
    assert not limiter.allow(b"a", 0.1)  # a is now the most recent
    assert limiter.allow(b"d", 0.2)  # b, the least recent, is forgotten
    assert list(limiter._buckets) == [b"c", b"a", b"d"]
    assert limiter.allow(b"b", 0.3)  # forgotten: starts with a full bucket again


def test_rate_limiter_total_bounds_all_keys_together() -> None:
    limiter = _RateLimiter(10.0, 10.0, total_per_s=5.0, capacity=2)
    allowed = sum(limiter.allow(n.to_bytes(4, "big"), n / 1000) for n in range(1000))
    assert 5 + 4 <= allowed <= 5 + 5  # the shared burst, then 5/s for (almost) a second


# ---------------------------------------------------------------- Router Solicitation / RA (P2)


def rs_frame(source: str = MN_LINK_LOCAL, slla: bool = True, mac: str = MN_MAC) -> bytes:
    packet = Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=source, dst="ff02::2", hlim=255)
    packet = packet / ICMPv6ND_RS()
    if slla:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    return raw(packet)


def prefix_options(ra: Ether) -> list[ICMPv6NDOptPrefixInfo]:
    options = []
    layer = ra[ICMPv6ND_RA].payload
    while layer:
        if isinstance(layer, ICMPv6NDOptPrefixInfo):
            options.append(layer)
        layer = layer.payload
    return options


def test_rs_is_answered_by_an_ra_with_h_flag_and_anchor_in_the_r_flagged_pio(rig: Rig) -> None:
    work = rig.send(ACCESS_2, rs_frame())
    assert [out.port for out in work.packet_outs] == [ACCESS_2]
    ra = Ether(work.packet_outs[0].frame)
    assert ra[Ether].src == ROUTER_MAC
    assert ra[IPv6].src == LINK_LOCAL and ra[IPv6].hlim == 255
    assert ra[ICMPv6ND_RA].H == 1
    pios = prefix_options(ra)
    assert [(p.L, p.A, p.R) for p in pios] == [(1, 1, 1), (1, 1, 0)]
    assert pios[0].prefix == ANCHOR_TEXT  # A_d in full (RFC 6275 §7.2)
    assert pios[1].prefix == "2001:db8:a2::"
    assert all(p.prefixlen == 64 for p in pios)
    assert ra[ICMPv6NDOptSrcLLAddr].lladdr == ROUTER_MAC
    assert rig.dar.counters["router_solicitation"] == 1


def test_ra_is_unicast_to_the_solicitor_mac_when_slla_present(rig: Rig) -> None:
    ra = Ether(rig.send(ACCESS_1, rs_frame()).packet_outs[0].frame)
    assert ra[Ether].dst == MN_MAC
    assert ra[IPv6].dst == MN_LINK_LOCAL


def test_rs_from_unspecified_source_gets_a_multicast_ra(rig: Rig) -> None:
    ra = Ether(rig.send(ACCESS_1, rs_frame(source="::", slla=False)).packet_outs[0].frame)
    assert ra[Ether].dst == "33:33:00:00:00:01" and ra[IPv6].dst == "ff02::1"


def test_rs_from_core_or_gre_is_not_answered(rig: Rig) -> None:
    assert rig.send(CORE, rs_frame()) == Work()
    assert rig.dar.counters["drop:nd_from_core"] == 1
    # The GRE port carries layer-3 punts: never ND, only routed by destination
    # (ff02::2 is no access host).
    assert rig.send(GRE, _behind_dummy_header(rs_frame())) == Work()
    assert rig.dar.counters["drop:unexpected_packet_in"] == 1
    assert rig.dar.counters["drop:nd_unexpected_port"] == 0
    # A port that is neither access, core nor GRE: ND from it is refused.
    assert rig.send(UNKNOWN_PORT, rs_frame()) == Work()
    assert rig.dar.counters["drop:nd_unexpected_port"] == 1
    assert rig.dar.counters["router_solicitation"] == 0
    assert rig.dar.counters["router_advertisement"] == 0
    assert rig.dar.neighbors == {}


def test_learning_a_global_address_installs_a_host_route(rig: Rig) -> None:
    mn_address = "2001:db8:a::77"
    before = rig.downlink(mn_address)
    assert before.punted  # unresolved: the switch asks the controller
    work = rig.send_and_execute(ACCESS_1, rs_frame(source=mn_address))
    assert work.packet_outs and work.flow_steps
    emission = rig.downlink(mn_address).single()
    assert emission.port == ACCESS_1
    assert emission.packet["eth_src"] == ROUTER_MAC
    assert emission.packet["eth_dst"] == MN_MAC
    assert emission.packet["hop_limit"] == 63
    assert rig.dar.counters["neighbor_learned"] == 1
    # The same neighbour again: nothing new to install.
    assert rig.send(ACCESS_1, rs_frame(source=mn_address)).flow_steps == []


def test_a_neighbour_moving_port_is_rerouted(rig: Rig) -> None:
    mn_address = "2001:db8:a::77"
    rig.send_and_execute(ACCESS_1, rs_frame(source=mn_address))
    rig.send_and_execute(ACCESS_2, rs_frame(source=mn_address))
    assert rig.downlink(mn_address).single().port == ACCESS_2


def test_rs_from_a_foreign_global_source_is_answered_but_not_learnt(rig: Rig) -> None:
    work = rig.send(ACCESS_1, rs_frame(source="2001:db8:77::1"))
    assert len(work.packet_outs) == 1 and work.flow_steps == []
    assert rig.dar.neighbors == {}


def test_link_local_neighbours_are_learnt_without_flows(rig: Rig) -> None:
    work = rig.send(ACCESS_1, rs_frame())
    assert work.flow_steps == []
    assert addr(MN_LINK_LOCAL) in rig.dar.neighbors


# ---------------------------------------------------------------- Neighbor Solicitation / NA


def ns_frame(
    target: str,
    source: str = MN_LINK_LOCAL,
    mac: str = MN_MAC,
    destination: str | None = None,
    slla: bool = True,
) -> bytes:
    if destination is None:
        destination = text(icmpv6.solicited_node_multicast(addr(target)))
    packet = Ether(src=mac, dst="33:33:ff:00:00:01") / IPv6(src=source, dst=destination, hlim=255)
    packet = packet / ICMPv6ND_NS(tgt=target)
    if slla:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    return raw(packet)


def na_frame(target: str, mac: str = MN_MAC, destination: str = LINK_LOCAL) -> bytes:
    packet = Ether(src=mac, dst=ROUTER_MAC) / IPv6(src=target, dst=destination, hlim=255)
    return raw(packet / ICMPv6ND_NA(tgt=target, S=1, O=1, R=0) / ICMPv6NDOptDstLLAddr(lladdr=mac))


@pytest.mark.parametrize("port", ACCESS_PORTS)
def test_ns_for_the_anchor_from_access_is_answered(rig: Rig, port: int) -> None:
    work = rig.send(port, ns_frame(ANCHOR_TEXT))
    assert [out.port for out in work.packet_outs] == [port]
    na = Ether(work.packet_outs[0].frame)
    assert na[Ether].src == ROUTER_MAC and na[Ether].dst == MN_MAC
    assert na[IPv6].src == ANCHOR_TEXT and na[IPv6].dst == MN_LINK_LOCAL and na[IPv6].hlim == 255
    assert na[ICMPv6ND_NA].tgt == ANCHOR_TEXT
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 1, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == ROUTER_MAC


def test_ns_for_the_link_local_address_is_answered(rig: Rig) -> None:
    na = Ether(rig.send(ACCESS_1, ns_frame(LINK_LOCAL)).packet_outs[0].frame)
    assert na[ICMPv6ND_NA].tgt == LINK_LOCAL


def test_ns_for_the_anchor_from_core_is_answered_out_the_core(rig: Rig) -> None:
    core_router = "2001:db8:ffff::ff"
    work = rig.send(CORE, ns_frame(ANCHOR_TEXT, source=core_router, mac=CORE_MAC))
    assert [out.port for out in work.packet_outs] == [CORE]
    na = Ether(work.packet_outs[0].frame)
    assert na[Ether].dst == CORE_MAC and na[IPv6].dst == core_router
    assert na[ICMPv6ND_NA].tgt == ANCHOR_TEXT
    assert work.flow_steps == []  # nothing is learnt from the core


def test_dad_probe_for_the_anchor_is_defended_to_all_nodes(rig: Rig) -> None:
    work = rig.send(ACCESS_1, ns_frame(ANCHOR_TEXT, source="::", slla=False))
    na = Ether(work.packet_outs[0].frame)
    assert na[IPv6].dst == "ff02::1" and na[ICMPv6ND_NA].S == 0


@pytest.mark.parametrize("port", [ACCESS_1, CORE])
def test_ns_for_another_target_gets_nothing(rig: Rig, port: int) -> None:
    work = rig.send(port, ns_frame("2001:db8:a::99"))
    assert work.packet_outs == [] and work.flow_steps == [] and work.changes == []


def _with_ethertype(frame: bytes, ethertype: bytes) -> bytes:
    return frame[:12] + ethertype + frame[14:]


def _behind_dummy_header(frame: bytes) -> bytes:
    """How OVS 3.1 hands a layer-3 tunnel packet to an OpenFlow 1.3 controller."""
    return bytes(12) + frame[12:]


@pytest.mark.parametrize(
    ("frame", "counter"),
    [
        # ND messages, bare or behind OVS's dummy header, are routed by their
        # destination (solicited-node multicast, the DAR's link-local), which
        # no access host holds.
        (_behind_dummy_header(ns_frame(ANCHOR_TEXT)), "drop:unexpected_packet_in"),
        (_behind_dummy_header(na_frame("2001:db8:a::77")), "drop:unexpected_packet_in"),
        (ns_frame(ANCHOR_TEXT)[14:], "drop:unexpected_packet_in"),
        (na_frame("2001:db8:a::77")[14:], "drop:unexpected_packet_in"),
        # A real Ethernet header (non-zero MACs) is not OVS's dummy one: the
        # bytes are taken as a layer-3 packet, which they are not.
        (ns_frame(ANCHOR_TEXT), "drop:punt_not_ipv6"),
        (_with_ethertype(ns_frame(ANCHOR_TEXT), b"\x08\x00"), "drop:punt_not_ipv6"),
    ],
    ids=["ns", "na", "ns_layer3", "na_layer3", "ns_ethernet", "ns_not_ipv6"],
)
def test_nd_from_the_gre_port_is_dropped_and_counted(rig: Rig, frame: bytes, counter: str) -> None:
    """Packets from the GRE port are layer-3 punts: never handled as ND."""
    work = rig.send(GRE, frame)
    assert work == Work()
    assert dict(rig.dar.counters) == {"packet_in": 1, counter: 1}
    assert rig.dar.neighbors == {}


def test_layer3_nd_from_the_gre_port_to_an_access_host_is_resolved_not_learnt(
    rig: Rig,
) -> None:
    """An NA arriving through the tunnel is just a packet for an unresolved access host."""
    packet = na_frame("2001:db8:a::77", destination=ON_LINK_HOST)[14:]
    work = rig.send(GRE, packet)
    assert_solicits(work, ON_LINK_HOST)
    assert work.flow_steps == [] and work.changes == []
    assert rig.dar.neighbors == {}
    assert rig.dar.counters["unresolved_host_packet"] == 1
    assert rig.dar.counters["neighbor_learned"] == 0


def test_na_from_core_is_not_learnt(rig: Rig) -> None:
    assert rig.send(CORE, na_frame("2001:db8:a::77")) == Work()
    assert rig.dar.counters["drop:nd_from_core"] == 1


def test_na_from_access_installs_a_host_route(rig: Rig) -> None:
    rig.send_and_execute(ACCESS_2, na_frame("2001:db8:a2::42"))
    assert rig.downlink("2001:db8:a2::42").single().port == ACCESS_2


def test_nd_with_bad_hop_limit_or_checksum_is_dropped(rig: Rig) -> None:
    frame = bytearray(ns_frame(ANCHOR_TEXT))
    frame[14 + 7] = 64  # hop limit
    assert rig.send(ACCESS_1, bytes(frame)) == Work()
    frame = bytearray(ns_frame(ANCHOR_TEXT))
    frame[14 + 40 + 2] ^= 0xFF  # checksum
    assert rig.send(ACCESS_1, bytes(frame)) == Work()
    assert rig.dar.counters["drop:nd_hop_limit_not_255"] == 1
    assert rig.dar.counters["drop:nd_bad_checksum"] == 1


def _anycast_claims() -> list[tuple[int, bytes]]:
    anycast = "2001:db8:a2::"  # Pref_d::, the Subnet-Router anycast address: the DAR's own
    bu = MobileNode.create().first_bu(1, addr(anycast))
    return [
        (ACCESS_1, na_frame(anycast)),
        (ACCESS_1, rs_frame(source=anycast)),
        (ACCESS_1, ns_frame(ANCHOR_TEXT, source=anycast)),
        (ACCESS_1, mh.build_ethernet_frame(mac_bytes(MN_MAC), mac_bytes(ROUTER_MAC), bu)),
    ]


@pytest.mark.parametrize("index", range(4), ids=["na", "rs", "ns", "bu"])
def test_neighbour_claiming_the_subnet_router_anycast_address_is_ignored(
    rig: Rig, index: int
) -> None:
    port, frame = _anycast_claims()[index]
    work = rig.send(port, frame)  # must not raise
    assert work.flow_steps == []
    assert addr("2001:db8:a2::") not in rig.dar.neighbors
    assert rig.dar.counters["neighbor_learned"] == 0
    # Nothing poisoned: a later reconnection installs the pipeline again.
    rig.dar.disconnect()
    work = rig.dar.connect({}, 2, T0 + 1)
    assert rig.dar.connected and rig.dar.generation == 2
    cookies = {decode_cookie(step.cookie) for step in work.flow_steps if isinstance(step, FlowMod)}
    assert {(c.kind, c.generation) for c in cookies if c} == {(FlowKind.PIPELINE, 2)}


def test_reconnect_after_an_rs_from_a_link_local_source(rig: Rig) -> None:
    """Link-local neighbours (learnt from every RS) get no host route, at reconnection too."""
    rig.send(ACCESS_1, rs_frame())  # the usual RS: source fe80::/10
    rig.send_and_execute(ACCESS_1, rs_frame(source="2001:db8:a::77"))
    rig.dar.disconnect()
    work = rig.dar.connect({}, 2, T0 + 1)
    rig.switch = FakeSwitch()
    rig.switch.apply_all(work.flow_steps)
    assert rig.downlink("2001:db8:a::77").single().port == ACCESS_1
    assert addr(MN_LINK_LOCAL) in rig.dar.neighbors  # still known, just not routed


# ---------------------------------------------------------------- Binding Updates (P6-P12)


def test_first_cga_bu_installs_the_tunnel_before_the_ba(rig: Rig) -> None:
    mn = MobileNode.create()
    assert rig.downlink(mn.hoa).punted
    work = rig.send(CORE, from_core(mn.first_bu(1, COA_1)))
    assert [change.kind for change in work.changes] == [ChangeKind.ADD]
    assert work.changes[0].hoa == mn.hoa and work.changes[0].binding.coa == COA_1
    assert work.packet_outs == []  # P12: the BA waits for the flows
    assert len(work.after_flows) == 1 and work.flow_steps
    # The cache follows the store: nothing changes before committed().
    assert rig.dar.bindings() == []
    rig.execute(work)
    assert [binding.hoa for binding in rig.dar.bindings()] == [mn.hoa]
    # Downlink: into the GRE port towards the CoA, hop limit decremented.
    emission = rig.downlink(mn.hoa).single()
    assert emission.port == GRE and emission.packet["tun_ipv6_dst"] == text(COA_1)
    assert emission.packet["hop_limit"] == 63
    # Uplink: decapsulated from the CoA with the HoA as source, routed to the core.
    uplink = rig.uplink(mn.hoa, COA_1).single()
    assert uplink.port == CORE and uplink.packet["eth_dst"] == CORE_MAC
    # No spoofing through the tunnel (P15): another CoA or source is dropped.
    assert rig.uplink(mn.hoa, COA_2).dropped
    assert rig.uplink(addr("2001:db8:a::66"), COA_1).dropped
    # The BA: out the core port to the core next hop, status 0, with a PHKT.
    ba_out = work.after_flows[0]
    assert ba_out.port == CORE
    frame = Ether(ba_out.frame)
    assert frame[Ether].dst == CORE_MAC and frame[Ether].src == ROUTER_MAC
    assert frame[IPv6].src == ANCHOR_TEXT and frame[IPv6].dst == text(COA_1)
    assert frame[IPv6ExtHdrRouting].type == 2
    assert frame[IPv6ExtHdrRouting].addresses == [text(mn.hoa)]
    assert frame[MIP6MH_BA].status == 0 and frame[MIP6MH_BA].seq == 1
    ba = parse_reply(ba_out)
    assert ba.message.status == 0 and ba.message.lifetime_units == 100
    assert ba.message.options.permanent_home_keygen_token is not None
    phkt = mn.learn_phkt(ba_out.frame[14:], COA_1)  # decrypts and checks the authenticator
    assert rig.dar.bindings()[0].phkt == phkt
    assert rig.dar.counters["ba_status:0"] == 1


def test_every_prefix_of_the_first_bu_steps_tunnels_or_punts(rig: Rig) -> None:
    mn = MobileNode.create()
    work = rig.send(CORE, from_core(mn.first_bu(1, COA_1)))
    decap_seen = False
    for step in work.flow_steps:
        rig.switch.apply(step)
        fate = rig.downlink(mn.hoa)
        assert fate.punted or tunnelled_to(fate) == text(COA_1)
        if not fate.punted:
            # Decap before encap: uplink works before downlink arrives.
            assert rig.uplink(mn.hoa, COA_1).single().port == CORE
        decap_seen = decap_seen or rig.uplink(mn.hoa, COA_1).ports == (CORE,)
    assert decap_seen and tunnelled_to(rig.downlink(mn.hoa)) == text(COA_1)


def test_phkt_bu_from_a_new_coa_moves_the_tunnel_atomically(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    work = rig.send(CORE, from_core(mn.phkt_bu(2, COA_2)))
    assert [change.kind for change in work.changes] == [ChangeKind.UPDATE]
    assert work.changes[0].previous.coa == COA_1 and work.changes[0].binding.coa == COA_2
    assert work.packet_outs == [] and len(work.after_flows) == 1
    assert any(isinstance(step, Barrier) for step in work.flow_steps)
    rig.dar.committed(work.changes)
    seen = []
    for step in work.flow_steps:
        rig.switch.apply(step)
        coa = tunnelled_to(rig.downlink(mn.hoa))  # exactly one emission, always tunnelled
        assert coa in (text(COA_1), text(COA_2))
        seen.append(coa)
        # Uplink from the new CoA is accepted before downlink moves to it.
        if coa == text(COA_2):
            assert rig.uplink(mn.hoa, COA_2).ports == (CORE,)
    assert seen[0] == text(COA_1) and seen[-1] == text(COA_2)
    assert rig.uplink(mn.hoa, COA_1).dropped  # the old CoA's decap rule is gone
    ba = parse_reply(work.after_flows[0])
    assert ba.message.status == 0 and ba.message.sequence == 2
    assert ba.message.options.permanent_home_keygen_token is None
    assert ba_authenticator_ok(work.after_flows[0].frame[14:], kbm(mn.phkt), COA_2)
    assert Ether(work.after_flows[0].frame)[IPv6].dst == text(COA_2)


def test_refresh_from_the_same_coa_reinstalls_in_place(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    work = rig.send_and_execute(CORE, from_core(mn.phkt_bu(2, COA_1)))
    assert [change.kind for change in work.changes] == [ChangeKind.UPDATE]
    assert not any(
        isinstance(step, FlowMod) and step.command is not Command.ADD for step in work.flow_steps
    )
    assert tunnelled_to(rig.downlink(mn.hoa)) == text(COA_1)


def test_deregistration_removes_the_tunnel(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    work = rig.send(CORE, from_core(mn.deregistration(2, COA_1)))
    assert [change.kind for change in work.changes] == [ChangeKind.DELETE]
    assert work.changes[0].cause is RemovalCause.DEREGISTERED
    assert work.flow_steps and all(
        step.command is Command.DELETE_STRICT for step in work.flow_steps
    )
    assert work.packet_outs == [] and len(work.after_flows) == 1
    rig.execute(work)
    assert rig.dar.bindings() == []
    assert rig.downlink(mn.hoa).punted
    assert rig.uplink(mn.hoa, COA_1).dropped
    ba = parse_reply(work.after_flows[0])
    assert ba.message.status == 0 and ba.message.lifetime_units == 0
    assert ba_authenticator_ok(work.after_flows[0].frame[14:], kbm(mn.phkt), mn.hoa)


def test_deregistration_from_the_home_link_is_acknowledged(
    bound: tuple[Rig, MobileNode],
) -> None:
    """P11, RFC 6275 §10.3.2: back home, the BA goes to the BU's link-layer source."""
    rig, mn = bound
    mn_frame = mh.build_ethernet_frame(
        mac_bytes(MN_MAC), mac_bytes(ROUTER_MAC), mn.deregistration(2)
    )
    work = rig.send(ACCESS_1, mn_frame)
    assert [change.kind for change in work.changes] == [ChangeKind.DELETE]
    assert work.packet_outs == []
    assert [out.port for out in work.after_flows] == [ACCESS_1]
    ba_frame = Ether(work.after_flows[0].frame)
    assert ba_frame[Ether].dst == MN_MAC and ba_frame[IPv6].dst == text(mn.hoa)
    assert ba_frame[MIP6MH_BA].status == 0
    rig.execute(work)
    # Downlink to the HoA now goes straight to the MN on its home link.
    emission = rig.downlink(mn.hoa).single()
    assert (emission.port, emission.packet["eth_dst"]) == (ACCESS_1, MN_MAC)


def test_ba_to_an_unresolved_home_address_triggers_a_solicitation(
    bound: tuple[Rig, MobileNode],
) -> None:
    """A BA with no route (BU from home relayed by the core) makes the DAR resolve the HoA."""
    rig, mn = bound
    work = rig.send(CORE, from_core(mn.deregistration(2)))
    assert [change.kind for change in work.changes] == [ChangeKind.DELETE]
    assert work.after_flows == []
    assert rig.dar.counters["reply_unroutable"] == 1
    assert_solicits(work, text(mn.hoa))


def test_bu_from_a_multicast_mac_teaches_nothing(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    frame = mh.build_ethernet_frame(
        b"\x33\x33\x00\x00\x00\x01", mac_bytes(ROUTER_MAC), mn.deregistration(2)
    )
    rig.send(ACCESS_1, frame)
    assert mn.hoa not in rig.dar.neighbors


def test_care_of_test_init_in_return_routability_mode(rig: Rig) -> None:
    rr = Rig(make_dar(return_routability=True))
    work = rr.send(CORE, from_core(coti_packet(COA_1)))
    assert work.changes == [] and work.flow_steps == []
    [out] = work.packet_outs
    cot = Ether(out.frame)
    assert out.port == CORE and cot[IPv6].dst == text(COA_1)
    assert cot[MIP6MH_CoT].cookie == b"cookie!!"
    assert rr.dar.counters["care_of_test_sent"] == 1
    assert rr.dar.counters["bu_result:accepted"] == 0  # a CoT answers no Binding Update
    # Without return routability the DAR ignores it.
    ignored = rig.send(CORE, from_core(coti_packet(COA_1)))
    assert ignored.packet_outs == [] and ignored.changes == [] and ignored.flow_steps == []
    assert rig.dar.counters["drop:return_routability_disabled"] == 1


def test_rejected_bu_is_answered_at_once_without_changes(rig: Rig) -> None:
    stranger = MobileNode.create(seed=2)
    work = rig.send(CORE, from_core(stranger.phkt_bu(5, COA_1, phkt=bytes(8))))
    assert work.changes == [] and work.flow_steps == [] and work.after_flows == []
    assert [out.port for out in work.packet_outs] == [CORE]
    frame = Ether(work.packet_outs[0].frame)
    assert frame[MIP6MH_BA].status == 147 and frame[MIP6MH_BA].seq == 5
    assert frame[IPv6].dst == text(COA_1)
    assert rig.dar.counters["ba_status:147"] == 1
    assert rig.dar.counters["bu_result:rejected"] == 1


def test_bu_with_a_wrong_authenticator_is_dropped_silently(
    bound: tuple[Rig, MobileNode],
) -> None:
    rig, mn = bound
    work = rig.send(CORE, from_core(mn.phkt_bu(2, COA_2, phkt=bytes(8))))
    assert work == Work(decisions=work.decisions)
    assert rig.dar.counters["drop:bad_authenticator"] == 1
    assert tunnelled_to(rig.downlink(mn.hoa)) == text(COA_1)


def test_mh_to_another_address_is_not_handled(rig: Rig) -> None:
    mn = MobileNode.create()
    bu = mn.first_bu(1, COA_1, destination=addr("2001:db8:99::1"))
    assert rig.send(CORE, from_core(bu)) == Work()
    assert rig.dar.counters["drop:unexpected_packet_in"] == 1


# ---------------------------------------------------------------- malformed MH (RFC 6275 §9.2)

MH_OFFSET = 40 + 24  # IPv6 header + destination options with the HAO


def reseal(packet: bytearray, home_address: bytes) -> bytes:
    """Recompute the MH checksum of a packet built with a HAO."""
    struct.pack_into("!H", packet, MH_OFFSET + 4, 0)
    checksum = mh.mobility_checksum(home_address, ANCHOR, bytes(packet[MH_OFFSET:]))
    struct.pack_into("!H", packet, MH_OFFSET + 4, checksum)
    return bytes(packet)


def unknown_type_packet(hoa: bytes, coa: bytes = COA_1, mh_type: int = 42) -> bytes:
    body = struct.pack("!BBBBH", mh.IPPROTO_NONE, 1, mh_type, 0, 0) + bytes(10)
    packet = mh.build_ipv6_packet(coa, ANCHOR, body, home_address=hoa)
    return reseal(bytearray(packet), hoa)


def test_bad_checksum_is_dropped_silently(rig: Rig) -> None:
    mn = MobileNode.create()
    packet = bytearray(mn.first_bu(1, COA_1))
    packet[MH_OFFSET + 4] ^= 0x5A
    assert rig.send(CORE, from_core(bytes(packet))) == Work()
    assert rig.dar.counters["drop:bad_checksum"] == 1
    assert rig.dar.bindings() == []


def test_payload_proto_not_59_gets_a_parameter_problem(rig: Rig) -> None:
    mn = MobileNode.create()
    packet = bytearray(mn.first_bu(1, COA_1))
    packet[MH_OFFSET] = 6
    work = rig.send(CORE, from_core(reseal(packet, mn.hoa)))
    assert work.changes == [] and work.flow_steps == [] and work.after_flows == []
    assert [out.port for out in work.packet_outs] == [CORE]
    reply = Ether(work.packet_outs[0].frame)
    assert reply[Ether].dst == CORE_MAC
    assert reply[IPv6].src == ANCHOR_TEXT and reply[IPv6].dst == text(COA_1)
    problem = reply[ICMPv6ParamProblem]
    assert problem.code == 0 and problem.ptr == MH_OFFSET
    assert rig.dar.counters["drop:payload_proto_not_none"] == 1
    assert rig.dar.counters["icmpv6_parameter_problem"] == 1


def test_header_len_too_short_gets_a_parameter_problem_at_header_len(rig: Rig) -> None:
    hoa = MobileNode.create().hoa
    body = struct.pack("!BBBBH", mh.IPPROTO_NONE, 0, mh.MHType.BINDING_UPDATE, 0, 0) + bytes(2)
    packet = mh.build_ipv6_packet(COA_1, ANCHOR, body, home_address=hoa)
    work = rig.send(CORE, from_core(reseal(bytearray(packet), hoa)))
    assert Ether(work.packet_outs[0].frame)[ICMPv6ParamProblem].ptr == MH_OFFSET + 1


def test_unknown_mh_type_gets_binding_error_2_with_the_hao(rig: Rig) -> None:
    hoa = MobileNode.create().hoa
    work = rig.send(CORE, from_core(unknown_type_packet(hoa)))
    assert [out.port for out in work.packet_outs] == [CORE]
    reply = Ether(work.packet_outs[0].frame)
    assert reply[IPv6].dst == text(COA_1) and reply[IPv6].src == ANCHOR_TEXT
    assert reply[MIP6MH_BE].status == 2
    assert reply[MIP6MH_BE].ha == text(hoa)
    decoded = parse_reply(work.packet_outs[0]).message
    assert isinstance(decoded, mh.BindingError) and decoded.home_address == hoa
    assert rig.dar.counters["binding_error_2"] == 1


def test_unknown_mh_type_without_hao_reports_the_unspecified_address(rig: Rig) -> None:
    body = struct.pack("!BBBBH", mh.IPPROTO_NONE, 1, 42, 0, 0) + bytes(10)
    packet = bytearray(mh.build_ipv6_packet(COA_1, ANCHOR, body))
    checksum = mh.mobility_checksum(COA_1, ANCHOR, bytes(packet[40:]))
    struct.pack_into("!H", packet, 44, checksum)
    work = rig.send(CORE, from_core(bytes(packet)))
    assert Ether(work.packet_outs[0].frame)[MIP6MH_BE].ha == "::"


def test_error_replies_are_rate_limited_per_destination(rig: Rig) -> None:
    hoa = MobileNode.create().hoa
    frame = from_core(unknown_type_packet(hoa))
    replies = sum(len(rig.send(CORE, frame, T0 + 0.5).packet_outs) for _ in range(50))
    assert 1 <= replies <= 10
    assert rig.dar.counters["error_reply_suppressed"] == 50 - replies
    # Another destination has its own budget.
    other = from_core(unknown_type_packet(hoa, coa=COA_2))
    assert len(rig.send(CORE, other, T0 + 0.5).packet_outs) == 1
    # Time passes: allowed again.
    assert len(rig.send(CORE, frame, T0 + 1.6).packet_outs) == 1


def test_errors_to_a_multicast_source_are_suppressed(rig: Rig) -> None:
    body = struct.pack("!BBBBH", mh.IPPROTO_NONE, 1, 42, 0, 0) + bytes(10)
    source = addr("ff02::1")
    packet = bytearray(mh.build_ipv6_packet(source, ANCHOR, body))
    struct.pack_into("!H", packet, 44, mh.mobility_checksum(source, ANCHOR, bytes(packet[40:])))
    assert rig.send(CORE, from_core(bytes(packet))).packet_outs == []
    assert rig.dar.counters["error_reply_suppressed"] == 1


# ---------------------------------------------------------------- unresolved hosts


def udp_frame(destination: str, source: str = CORRESPONDENT) -> bytes:
    packet = Ether(src=CORE_MAC, dst=ROUTER_MAC) / IPv6(src=source, dst=destination, hlim=63)
    return raw(packet / UDP(sport=1000, dport=2000))


def assert_solicits(work: Work, target: str) -> None:
    assert sorted(out.port for out in work.packet_outs) == list(ACCESS_PORTS)
    solicited_node = text(icmpv6.solicited_node_multicast(addr(target)))
    for out in work.packet_outs:
        ns = Ether(out.frame)
        assert ns[Ether].src == ROUTER_MAC
        assert mac_bytes(ns[Ether].dst) == icmpv6.multicast_mac(addr(solicited_node))
        assert ns[IPv6].dst == solicited_node and ns[IPv6].hlim == 255
        assert ns[ICMPv6ND_NS].tgt == target
        assert ns[ICMPv6NDOptSrcLLAddr].lladdr == ROUTER_MAC


def test_packet_to_unknown_access_host_triggers_a_solicitation(rig: Rig) -> None:
    assert rig.downlink(ON_LINK_HOST).punted
    work = rig.send(CORE, udp_frame(ON_LINK_HOST))
    assert_solicits(work, ON_LINK_HOST)
    assert work.flow_steps == [] and work.changes == []
    # Rate-limited per target...
    assert rig.send(CORE, udp_frame(ON_LINK_HOST), T0 + 0.2).packet_outs == []
    # ...not across targets...
    assert_solicits(rig.send(CORE, udp_frame("2001:db8:a2::56"), T0 + 0.2), "2001:db8:a2::56")
    # ...and again once the interval has passed.
    assert_solicits(rig.send(CORE, udp_frame(ON_LINK_HOST), T0 + 1.5), ON_LINK_HOST)
    assert rig.dar.counters["unresolved_host_packet"] == 4
    assert rig.dar.counters["neighbor_solicitation_sent"] == 3


def test_answer_to_the_solicitation_installs_the_route(rig: Rig) -> None:
    rig.send(CORE, udp_frame(ON_LINK_HOST))
    rig.send_and_execute(ACCESS_2, na_frame(ON_LINK_HOST, destination=ANCHOR_TEXT))
    assert rig.downlink(ON_LINK_HOST).single().port == ACCESS_2


def test_layer3_punt_from_the_tunnel_triggers_a_solicitation(rig: Rig) -> None:
    packet = raw(IPv6(src="2001:db8:a::5", dst=ON_LINK_HOST, hlim=63) / UDP())
    assert_solicits(rig.send(GRE, packet), ON_LINK_HOST)
    assert rig.send(GRE, packet, T0 + 0.1).packet_outs == []


def test_layer3_punt_behind_a_dummy_ethernet_header_triggers_a_solicitation(rig: Rig) -> None:
    """Open vSwitch hands tunnel packets to the controller behind a zeroed Ethernet header."""
    packet = raw(IPv6(src="2001:db8:a::5", dst=ON_LINK_HOST, hlim=63) / UDP())
    assert_solicits(rig.send(GRE, bytes(12) + b"\x86\xdd" + packet), ON_LINK_HOST)
    assert rig.dar.counters["unresolved_host_packet"] == 1


def test_layer3_punt_for_a_foreign_destination_is_dropped(rig: Rig) -> None:
    packet = raw(IPv6(src="2001:db8:a::5", dst=CORRESPONDENT, hlim=63) / UDP())
    assert rig.send(GRE, packet) == Work()
    assert rig.dar.counters["drop:unexpected_packet_in"] == 1


def test_ping_to_unknown_access_host_triggers_a_solicitation(rig: Rig) -> None:
    ping = Ether(src=CORE_MAC, dst=ROUTER_MAC) / IPv6(src=CORRESPONDENT, dst=ON_LINK_HOST)
    work = rig.send(CORE, raw(ping / ICMPv6EchoRequest(id=1, seq=1)))
    assert_solicits(work, ON_LINK_HOST)
    assert rig.dar.counters["unresolved_host_packet"] == 1


def test_non_nd_icmpv6_to_the_anchor_or_beyond_is_dropped(rig: Rig) -> None:
    for destination in (ANCHOR_TEXT, CORRESPONDENT):
        ping = Ether(src=CORE_MAC, dst=ROUTER_MAC) / IPv6(src="2001:db8:99::7", dst=destination)
        assert rig.send(CORE, raw(ping / ICMPv6EchoRequest())) == Work()
    assert rig.dar.counters["drop:unexpected_packet_in"] == 2
    assert rig.dar.counters["neighbor_solicitation_sent"] == 0


def test_layer3_punt_from_a_source_with_86dd_in_its_third_group() -> None:
    rig = Rig(make_dar(access_prefixes=["2001:db8:86dd::/64"], anchor_address="2001:db8:86dd::1"))
    packet = raw(IPv6(src="2001:db8:86dd::5", dst="2001:db8:86dd::55", hlim=63) / UDP())
    assert_solicits(rig.send(GRE, packet), "2001:db8:86dd::55")


def test_non_ipv6_and_unexpected_frames_are_counted(rig: Rig) -> None:
    assert rig.send(CORE, b"\x00" * 20) == Work()
    assert rig.dar.counters["drop:punt_not_ipv6"] == 1
    assert rig.send(CORE, udp_frame(CORRESPONDENT)) == Work()
    assert rig.dar.counters["drop:unexpected_packet_in"] == 1


# ---------------------------------------------------------------- tick()


def test_tick_expires_only_expired_bindings(rig: Rig) -> None:
    short, long = MobileNode.create(seed=1), MobileNode.create(seed=2)
    rig.send_and_execute(CORE, from_core(short.first_bu(1, COA_1, lifetime_units=10)))
    rig.send_and_execute(CORE, from_core(long.first_bu(1, COA_2, lifetime_units=100)))
    assert rig.dar.tick(T0 + 39).changes == []
    work = rig.dar.tick(T0 + 41)
    assert [(c.kind, c.hoa, c.cause) for c in work.changes] == [
        (ChangeKind.DELETE, short.hoa, RemovalCause.EXPIRED)
    ]
    assert work.flow_steps and all(
        isinstance(step, FlowMod) and step.command is Command.DELETE_STRICT
        for step in work.flow_steps
    )
    hoa_text = text(short.hoa)
    assert all(
        hoa_text in (step.match.get("ipv6_dst"), step.match.get("ipv6_src"))
        for step in work.flow_steps
    )
    rig.execute(work)
    assert rig.downlink(short.hoa).punted
    assert tunnelled_to(rig.downlink(long.hoa)) == text(COA_2)
    assert [b.hoa for b in rig.dar.bindings()] == [long.hoa]
    assert rig.dar.counters["binding_expired"] == 1
    assert rig.dar.tick(T0 + 42).changes == []


def test_unsolicited_ras_follow_the_configured_interval() -> None:
    twin = random.Random(5)  # the DAR draws 2 bytes per RA interval
    rig = Rig(make_dar(seed=5))
    assert rig.connect_work.packet_outs == []
    assert rig.dar.next_deadline() == T0
    assert rig.dar.tick(T0 - 0.01).packet_outs == []  # not due before connect's "now"
    first = rig.dar.tick(T0)  # the first tick after connect: RAs on every access port
    assert sorted(out.port for out in first.packet_outs) == list(ACCESS_PORTS)
    fraction = int.from_bytes(twin.randbytes(2), "big") / 0xFFFF
    next_ra = T0 + 3 + (4 - 3) * fraction
    assert rig.dar.next_deadline() == pytest.approx(next_ra)
    assert rig.dar.tick(next_ra - 0.01).packet_outs == []
    work = rig.dar.tick(next_ra)
    assert sorted(out.port for out in work.packet_outs) == list(ACCESS_PORTS)
    for out in work.packet_outs:
        ra = Ether(out.frame)
        assert ra[IPv6].dst == "ff02::1" and ra[ICMPv6ND_RA].H == 1
        assert prefix_options(ra)[0].prefix == ANCHOR_TEXT
    assert rig.dar.tick(next_ra + 0.5).packet_outs == []
    following = next_ra + 3 + int.from_bytes(twin.randbytes(2), "big") / 0xFFFF
    assert rig.dar.tick(following).packet_outs


def test_no_ras_while_disconnected_but_bindings_still_expire(
    bound: tuple[Rig, MobileNode],
) -> None:
    rig, mn = bound
    rig.dar.disconnect()
    assert not rig.dar.connected
    work = rig.dar.tick(T0 + 10_000)
    assert work.packet_outs == []
    assert [(c.kind, c.hoa) for c in work.changes] == [(ChangeKind.DELETE, mn.hoa)]
    assert work.flow_steps == []  # reconnection reconciles
    rig.dar.committed(work.changes)
    assert rig.dar.bindings() == []


# ---------------------------------------------------------------- store failures, revoke


def test_store_failure_turns_the_ba_into_status_130(rig: Rig) -> None:
    mn = MobileNode.create()
    work = rig.send(CORE, from_core(mn.first_bu(1, COA_1)))
    replies = rig.dar.store_failed(work, "disk_full")
    assert [out.port for out in replies] == [CORE]
    frame = Ether(replies[0].frame)
    assert frame[MIP6MH_BA].status == 130 and frame[MIP6MH_BA].seq == 1
    assert frame[IPv6].dst == text(COA_1)
    assert frame[IPv6ExtHdrRouting].addresses == [text(mn.hoa)]
    ba = parse_reply(replies[0]).message
    assert ba.status == 130 and ba.lifetime_units == 0
    assert ba.options.permanent_home_keygen_token is None  # no PHKT for a refused binding
    assert rig.dar.counters["store_error:disk_full"] == 1
    assert rig.dar.counters["ba_status:130"] == 1
    assert rig.dar.bindings() == [] and len(rig.dar.home_agent.cache) == 0
    assert rig.downlink(mn.hoa).punted


def test_store_failure_on_a_move_leaves_the_old_binding(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    before = rig.dar.bindings()
    work = rig.send(CORE, from_core(mn.phkt_bu(2, COA_2)))
    replies = rig.dar.store_failed(work, "locked")
    assert Ether(replies[0].frame)[MIP6MH_BA].status == 130
    assert rig.dar.bindings() == before
    assert tunnelled_to(rig.downlink(mn.hoa)) == text(COA_1)
    # The MN may retry with a newer number and succeed.
    work = rig.send_and_execute(CORE, from_core(mn.phkt_bu(3, COA_2)))
    assert parse_reply(work.after_flows[0]).message.status == 0


def test_store_failure_of_a_rejection_sends_nothing_more(rig: Rig) -> None:
    stranger = MobileNode.create(seed=2)
    work = rig.send(CORE, from_core(stranger.phkt_bu(5, COA_1, phkt=bytes(8))))
    assert rig.dar.store_failed(work, "io_error") == []


def test_revoke_removes_binding_and_flows(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    work = rig.dar.revoke(mn.hoa, T0 + 5)
    assert work is not None
    assert [(c.kind, c.cause) for c in work.changes] == [(ChangeKind.DELETE, RemovalCause.REVOKED)]
    assert work.packet_outs == [] and work.after_flows == []
    assert len(work.flow_steps) == 3
    rig.execute(work)
    assert rig.dar.bindings() == []
    assert rig.downlink(mn.hoa).punted and rig.uplink(mn.hoa, COA_1).dropped
    assert rig.dar.counters["binding_revoked"] == 1
    assert rig.dar.revoke(mn.hoa, T0 + 6) is None
    # A replay of an old BU meets the tombstone.
    replay = rig.send(CORE, from_core(mn.phkt_bu(1, COA_1)))
    assert replay.changes == []


def test_revoke_of_unknown_hoa_is_none(rig: Rig) -> None:
    assert rig.dar.revoke(addr("2001:db8:a::1234"), T0) is None


# ---------------------------------------------------------------- generations and reconnection


def test_connect_ends_by_deleting_every_other_generation() -> None:
    rig = Rig(generation=3)
    pipeline = rig.dar.pipeline
    assert pipeline is not None
    cleanup = dar_flows.delete_other_generations(pipeline, 3)
    steps = rig.connect_work.flow_steps
    assert steps[-len(cleanup) :] == cleanup and isinstance(steps[-len(cleanup) - 1], Barrier)
    # Behaviour: a switch holding generation 2 (with a binding the store no
    # longer has) holds generation 3 only once the connect work is applied.
    old = Rig(generation=2)
    mn = MobileNode.create()
    old.send_and_execute(CORE, from_core(mn.first_bu(1, COA_1)))
    switch = old.switch
    switch.apply_all(steps)
    generations = {decode_cookie(flow.cookie).generation for flow in switch.flows()}
    assert generations == {3}
    assert old.downlink(mn.hoa).punted


def test_connect_installs_bindings_phase_by_phase() -> None:
    cache = BindingCache()
    nodes = [MobileNode.create(seed=seed) for seed in (1, 2, 3)]
    cache.restore(
        [
            Binding(mn.hoa, COA_1, 7, 400, T0 - 100, T0 + 300, b"k" * 16, bytes(range(8)))
            for mn in nodes
        ],
        [],
    )
    rig = Rig(make_dar(cache=cache), generation=9)
    kinds = [
        "barrier"
        if isinstance(step, Barrier)
        else f"{decode_cookie(step.cookie).kind.name}:{step.table_id}"
        for step in rig.connect_work.flow_steps
        if isinstance(step, Barrier)
        or (
            isinstance(step, FlowMod)
            and step.command is Command.ADD
            and decode_cookie(step.cookie).kind is FlowKind.BINDING
        )
    ]
    # Every decap rule (table 1), one barrier, every encap rule (table 2): not a
    # barrier per binding.
    binding_part = "".join(k[0] if k != "barrier" else "|" for k in kinds).strip("|")
    assert kinds.count("BINDING:1") == 3 and kinds.count("BINDING:2") == 6
    assert binding_part.count("|") == 1, kinds


def test_connect_reinstalls_every_cached_binding_with_the_new_generation() -> None:
    cache = BindingCache()
    hoas = [MobileNode.create(seed=seed).hoa for seed in (1, 2)]
    coas = [COA_1, COA_3]
    cache.restore(
        [
            Binding(hoa, coa, 7, 400, T0 - 100, T0 + 300, b"k" * 16, bytes(range(8)))
            for hoa, coa in zip(hoas, coas, strict=True)
        ],
        [],
    )
    rig = Rig(make_dar(cache=cache), generation=9)
    binding_steps = [
        step
        for step in rig.connect_work.flow_steps
        if isinstance(step, FlowMod)
        and step.command is Command.ADD
        and decode_cookie(step.cookie).kind is FlowKind.BINDING
    ]
    assert binding_steps
    assert {step.cookie for step in binding_steps} == {encode_cookie(FlowKind.BINDING, 9)}
    for hoa, coa in zip(hoas, coas, strict=True):
        assert tunnelled_to(rig.downlink(hoa)) == text(coa)
        assert rig.uplink(hoa, coa).ports == (CORE,)
    assert rig.connect_work.changes == []


def test_connect_after_expiry_while_away_reinstalls_then_deletes(
    bound: tuple[Rig, MobileNode],
) -> None:
    rig, mn = bound
    rig.dar.disconnect()
    later = T0 + 10_000  # long after the binding's lifetime
    work = rig.dar.connect({}, 2, later)
    # Connect only reinstalls (pipeline and binding) and sweeps other generations:
    # no change to persist, no RA, no binding removed yet.
    assert work.changes == [] and work.packet_outs == [] and work.after_flows == []
    removals = [
        step
        for step in work.flow_steps
        if isinstance(step, FlowMod) and step.command is not Command.ADD
    ]
    assert removals == dar_flows.delete_other_generations(rig.dar.pipeline, 2)
    rig.switch = FakeSwitch()
    rig.switch.apply_all(work.flow_steps)
    assert tunnelled_to(rig.downlink(mn.hoa)) == text(COA_1)
    assert [b.hoa for b in rig.dar.bindings()] == [mn.hoa]
    # The following tick expires it: the DELETE change and the delete flows.
    tick = rig.dar.tick(later)
    assert [(c.kind, c.hoa, c.cause) for c in tick.changes] == [
        (ChangeKind.DELETE, mn.hoa, RemovalCause.EXPIRED)
    ]
    assert tick.flow_steps and all(
        isinstance(step, FlowMod) and step.command is Command.DELETE_STRICT
        for step in tick.flow_steps
    )
    assert sorted(out.port for out in tick.packet_outs) == list(ACCESS_PORTS)
    rig.execute(tick)
    assert rig.downlink(mn.hoa).punted and rig.uplink(mn.hoa, COA_1).dropped
    assert rig.dar.bindings() == []
    assert rig.dar.counters["binding_expired"] == 1


def test_reconnect_reinstalls_global_host_routes(rig: Rig) -> None:
    rig.send_and_execute(ACCESS_1, rs_frame(source="2001:db8:a::77"))
    rig.dar.disconnect()
    rig.switch = FakeSwitch()
    rig.switch.apply_all(rig.dar.connect({}, 2, T0 + 1).flow_steps)
    assert rig.downlink("2001:db8:a::77").single().port == ACCESS_1


# ---------------------------------------------------------------- robustness


def _valid_frames() -> list[bytes]:
    mn = MobileNode.create()
    return [
        rs_frame(),
        ns_frame(ANCHOR_TEXT),
        na_frame("2001:db8:a::77"),
        udp_frame(ON_LINK_HOST),
        from_core(mn.first_bu(1, COA_1)),
        from_core(unknown_type_packet(mn.hoa)),
        raw(IPv6(src="2001:db8:a::5", dst=ON_LINK_HOST) / UDP()),
    ]


_FUZZ: dict[str, object] = {}


def _fuzz_dar() -> tuple[Dar, list[bytes]]:
    if not _FUZZ:
        dar = make_dar(seed=9)
        dar.connect({}, 1, T0)
        _FUZZ["dar"], _FUZZ["frames"] = dar, _valid_frames()
    return _FUZZ["dar"], _FUZZ["frames"]  # type: ignore[return-value]


PORTS = st.sampled_from([ACCESS_1, ACCESS_2, CORE, GRE, UNKNOWN_PORT])


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(port=PORTS, data=st.binary(max_size=300))
def test_random_bytes_never_raise(port: int, data: bytes) -> None:
    dar, _ = _fuzz_dar()
    assert isinstance(dar.packet_in(port, data, T0), Work)
    assert isinstance(dar.packet_in(port, b"\x00" * 12 + b"\x86\xdd" + data, T0), Work)
    assert isinstance(dar.packet_in(port, b"\x60" + data, T0), Work)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(port=PORTS, index=st.integers(0, 6), cut=st.integers(0, 2000), flips=st.data())
def test_truncated_and_mutated_frames_never_raise(
    port: int, index: int, cut: int, flips: st.DataObject
) -> None:
    dar, frames = _fuzz_dar()
    frame = frames[index]
    assert isinstance(dar.packet_in(port, frame[: cut % (len(frame) + 1)], T0), Work)
    mutated = bytearray(frame)
    for _ in range(flips.draw(st.integers(1, 4))):
        position = flips.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = flips.draw(st.integers(0, 255))
    assert isinstance(dar.packet_in(port, bytes(mutated), T0), Work)
