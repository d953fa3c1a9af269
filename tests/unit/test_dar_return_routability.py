"""Return-routability mode (P13) of a whole DAR: ``Dar`` with ``return_routability: true``.

``test_home_agent.py`` covers the decisions of ``HomeAgent`` with an issuer
of its own; here the DAR is built from a domain file, so the Kdar and the
nonces are the DAR's (drawn from its rng), and the signalling travels as
the switch punts it: Ethernet frames from the core port in, ``Work`` out
(packet-outs towards the core next hop, binding changes, the rules a
``FakeSwitch`` applies, Binding Acks held in ``after_flows`` until the
rules are in place, P12).  Replies are decoded both with the project's
codec and, for the Care-of Test, with scapy as an independent decoder.

P13 (FAMA-PROFILE.md): a Care-of Test Init (MH type 2, source CoA, dest
A_d) is answered by a Care-of Test (MH type 4) with the cookie echoed, a
care-of nonce index and the keygen token First(64, HMAC_SHA1(Kdar, CoA |
nonce | 0x01)); BUs then carry Nonce Indices (home 0, care-of index);
Kbm = SHA1(token) on a first CGA BU, SHA1(PHKT | token) later; an
expired or unknown index gets status 137.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random

import pytest
from mn_factory import (
    ANCHOR,
    COA_1,
    COA_2,
    COA_3,
    MobileNode,
    ba_authenticator_ok,
    kbm,
)
from scapy.layers.inet6 import IPv6, IPv6ExtHdrRouting, MIP6MH_CoT
from scapy.layers.l2 import Ether

from fama_ryu import auth, mh
from fama_ryu.binding_cache import ChangeKind
from fama_ryu.config import parse_domain
from fama_ryu.dar import Dar, PacketOut, Work
from fama_ryu.home_agent import Verdict
from openflow_pipelines.fake_table import FakeSwitch

ACCESS_1, ACCESS_2, CORE, GRE = 1, 2, 10, 20
ROUTER_MAC = "02:00:00:00:0a:01"
CORE_MAC = "02:00:00:00:ff:ff"
CORRESPONDENT = "2001:db8:99::5"
SEED = 7
T0 = 1_000_000.0  # the DAR's clock (the shim passes time.time())
COOKIE = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def domain_dict(return_routability: bool) -> dict[str, object]:
    return {
        "dars": [
            {
                "name": "dara",
                "dpid": 0xA,
                "access_ports": [ACCESS_1, ACCESS_2],
                "core_port": CORE,
                "gre_port": GRE,
                "router_mac": ROUTER_MAC,
                "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
                "anchor_address": "2001:db8:a::1",
                "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
                "return_routability": return_routability,
            }
        ]
    }


def make_dar(return_routability: bool = True, seed: int = SEED) -> Dar:
    domain = parse_domain(domain_dict(return_routability), "test")
    return Dar(domain.dars[0], domain, random.Random(seed).randbytes)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def from_core(ipv6_packet: bytes) -> bytes:
    return mh.build_ethernet_frame(mac_bytes(CORE_MAC), mac_bytes(ROUTER_MAC), ipv6_packet)


def coti_frame(coa: bytes, cookie: bytes = COOKIE) -> bytes:
    """A Care-of Test Init from ``coa`` to A_d, as the core delivers it (P13)."""
    return from_core(mh.build_packet(mh.CareOfTestInit(cookie), source=coa, destination=ANCHOR))


class Rig:
    """A connected DAR, its simulated switch, and the shim's order of execution."""

    def __init__(self, dar: Dar) -> None:
        self.dar = dar
        self.switch = FakeSwitch()
        self.switch.apply_all(dar.connect({}, 1, T0).flow_steps)

    def send(self, frame: bytes, now: float = T0) -> Work:
        return self.dar.packet_in(CORE, frame, now)

    def execute(self, work: Work) -> Work:
        """What the shim does once the store took the changes: cache, then flows."""
        self.dar.committed(work.changes)
        self.switch.apply_all(work.flow_steps)
        return work

    def care_of_test(self, coa: bytes, now: float = T0) -> tuple[int, bytes]:
        """Run a CoTI/CoT exchange; return (care-of nonce index, keygen token)."""
        work = self.send(coti_frame(coa), now)
        [out] = work.packet_outs
        cot = mh.parse_ethernet_frame(out.frame).message
        assert isinstance(cot, mh.CareOfTest) and cot.cookie == COOKIE
        return cot.nonce_index, cot.keygen_token

    def tunnelled_to(self, hoa: bytes) -> str | None:
        """The CoA a downlink packet for ``hoa`` is tunnelled to (None: not tunnelled)."""
        fate = self.switch.process(
            {
                "in_port": CORE,
                "eth_type": 0x86DD,
                "eth_src": CORE_MAC,
                "eth_dst": ROUTER_MAC,
                "ipv6_src": CORRESPONDENT,
                "ipv6_dst": text(hoa),
                "ip_proto": 17,
                "hop_limit": 64,
            }
        )
        emission = fate.single()
        if emission.port != GRE:
            return None
        return str(ipaddress.IPv6Address(emission.packet["tun_ipv6_dst"]))


def ba_in(out: PacketOut) -> tuple[mh.MobilityPacket, mh.BindingAck]:
    assert out.port == CORE
    assert out.frame[:6] == mac_bytes(CORE_MAC) and out.frame[6:12] == mac_bytes(ROUTER_MAC)
    packet = mh.parse_ethernet_frame(out.frame)
    assert isinstance(packet.message, mh.BindingAck)
    return packet, packet.message


def silent(work: Work) -> bool:
    """Nothing sent, stored or installed (a silent drop)."""
    return (work.packet_outs, work.changes, work.flow_steps, work.after_flows) == ([], [], [], [])


@pytest.fixture
def rig() -> Rig:
    return Rig(make_dar())


@pytest.fixture
def bound(rig: Rig) -> tuple[Rig, MobileNode]:
    """``rig`` with a mobile node registered at COA_1 in return-routability mode."""
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    work = rig.execute(
        rig.send(from_core(mn.first_bu(1, COA_1, care_of_token=token, nonce_index=index)))
    )
    mn.learn_phkt(work.after_flows[0].frame[14:], COA_1)
    return rig, mn


# ---------------------------------------------------------------- Care-of Test Init -> Care-of Test


def test_the_pipeline_punts_a_care_of_test_init_to_the_controller(rig: Rig) -> None:
    fate = rig.switch.process(
        {
            "in_port": CORE,
            "eth_type": 0x86DD,
            "eth_src": CORE_MAC,
            "eth_dst": ROUTER_MAC,
            "ipv6_src": text(COA_1),
            "ipv6_dst": text(ANCHOR),
            "ip_proto": mh.IPPROTO_MH,
            "hop_limit": 64,
        }
    )
    assert fate.punted


def test_a_care_of_test_init_is_answered_with_a_care_of_test(rig: Rig) -> None:
    work = rig.send(coti_frame(COA_1))
    assert work.changes == [] and work.flow_steps == [] and work.after_flows == []
    [(_, decision)] = work.decisions
    assert decision.verdict is Verdict.ACCEPTED and decision.reason == "care_of_test"
    [out] = work.packet_outs
    # Towards the core next hop, from the router's MAC.
    assert out.port == CORE
    assert out.frame[:6] == mac_bytes(CORE_MAC) and out.frame[6:12] == mac_bytes(ROUTER_MAC)
    packet = mh.parse_ethernet_frame(out.frame)
    assert (packet.source, packet.destination) == (ANCHOR, COA_1)
    assert packet.routing_address is None and packet.home_address is None
    cot = packet.message
    assert isinstance(cot, mh.CareOfTest)
    assert cot.cookie == COOKIE
    assert len(cot.keygen_token) == auth.KEYGEN_TOKEN_LEN == 8
    # The same bytes through scapy: MH type 4, the cookie echoed, no Routing Header.
    frame = Ether(out.frame)
    assert frame[Ether].dst == CORE_MAC and frame[Ether].src == ROUTER_MAC
    assert frame[IPv6].src == text(ANCHOR) and frame[IPv6].dst == text(COA_1)
    assert IPv6ExtHdrRouting not in frame
    assert frame[MIP6MH_CoT].mhtype == 4
    assert frame[MIP6MH_CoT].cookie == COOKIE
    assert frame[MIP6MH_CoT].index == cot.nonce_index
    assert frame[MIP6MH_CoT].token == cot.keygen_token
    assert rig.dar.counters["drop:return_routability_disabled"] == 0


def test_the_keygen_token_is_the_rfc_6275_care_of_token_of_the_dars_kdar(rig: Rig) -> None:
    """P13, RFC 6275 §5.2.5: First(64, HMAC_SHA1(Kdar, CoA | nonce | 0x01)).

    The DAR draws Kdar (20 bytes) and then its first nonce from its rng when
    built; the first CoTI, long after the issuer's start, brings in the next
    nonce (index 1).
    """
    draws = random.Random(SEED)
    kdar = draws.randbytes(auth.NODE_KEY_LEN)
    draws.randbytes(auth.NONCE_LEN)  # nonce 0, introduced at the issuer's start
    nonce_1 = draws.randbytes(auth.NONCE_LEN)
    index, token = rig.care_of_test(COA_1)
    assert index == 1
    assert token == hmac.new(kdar, COA_1 + nonce_1 + b"\x01", hashlib.sha1).digest()[:8]
    # Another CoA, same nonce: another token; the same CoA again: the same token.
    index_2, token_2 = rig.care_of_test(COA_2, T0 + 1)
    assert index_2 == index and token_2 != token
    assert token_2 == hmac.new(kdar, COA_2 + nonce_1 + b"\x01", hashlib.sha1).digest()[:8]
    assert rig.care_of_test(COA_1, T0 + 2) == (index, token)


def test_two_dars_issue_different_tokens_for_one_care_of_address() -> None:
    first, second = Rig(make_dar(seed=1)), Rig(make_dar(seed=2))
    assert first.care_of_test(COA_1)[1] != second.care_of_test(COA_1)[1]


def test_nonces_rotate_and_an_older_token_stays_good_for_its_lifetime(rig: Rig) -> None:
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    later_index, later_token = rig.care_of_test(COA_1, T0 + 60)  # past the 30 s nonce interval
    assert later_index == (index + 1) % auth.NONCE_INDEX_SPACE and later_token != token
    # The MN kept the first token: 200 s after it was handed out it is still good.
    bu = mn.first_bu(1, COA_1, care_of_token=token, nonce_index=index)
    work = rig.send(from_core(bu), T0 + 200)
    assert [change.kind for change in work.changes] == [ChangeKind.ADD]


def test_a_dar_without_return_routability_drops_a_care_of_test_init() -> None:
    rig = Rig(make_dar(return_routability=False))
    work = rig.send(coti_frame(COA_1))
    assert silent(work)
    assert rig.dar.counters["drop:return_routability_disabled"] == 1
    assert rig.dar.counters["bu_result:accepted"] == 0


def test_a_care_of_test_init_from_a_multicast_source_is_dropped(rig: Rig) -> None:
    work = rig.send(coti_frame(ipaddress.IPv6Address("ff0e::1").packed))
    assert silent(work)
    assert rig.dar.counters["drop:care_of_address_invalid"] == 1


# ---------------------------------------------------------------- Binding Updates (P13)


def test_a_first_cga_bu_keyed_by_the_care_of_token_is_accepted(rig: Rig) -> None:
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    bu = mn.first_bu(1, COA_1, care_of_token=token, nonce_index=index)
    sent = mh.parse_ipv6_packet(bu).message
    assert sent.options.nonce_indices == (0, index)  # home index 0 (P13)
    assert sent.options.cga_parameters is not None and sent.options.authenticator is not None
    work = rig.send(from_core(bu))
    # Stored as a new binding; the BA waits for the rules (P12).
    [change] = work.changes
    assert change.kind is ChangeKind.ADD
    assert change.binding is not None
    assert (change.binding.hoa, change.binding.coa, change.binding.sequence) == (
        mn.hoa,
        COA_1,
        1,
    )
    assert work.packet_outs == [] and work.flow_steps
    [ba_out] = work.after_flows
    packet, ba = ba_in(ba_out)
    assert (ba.status, ba.sequence) == (mh.BAStatus.ACCEPTED, 1)
    assert (packet.source, packet.destination, packet.routing_address) == (ANCHOR, COA_1, mn.hoa)
    assert ba.options.permanent_home_keygen_token is not None
    # After a CGA BU the BA is keyed by SHA1(new PHKT) (P12), which the MN decrypts.
    mn.learn_phkt(ba_out.frame[14:], COA_1)
    counters = rig.dar.counters
    assert (counters["bu_result:accepted"], counters["ba_status:0"]) == (1, 1)
    assert counters["care_of_test_sent"] == 1  # the CoT is no Binding Update
    assert counters["rsa_operations"] == 2
    rig.execute(work)
    assert rig.tunnelled_to(mn.hoa) == text(COA_1)
    assert [b.hoa for b in rig.dar.bindings()] == [mn.hoa]


@pytest.mark.parametrize(
    "key",
    ["phkt_less_wrong_token", "no_authorization_data"],
)
def test_a_first_cga_bu_without_the_right_care_of_key_is_dropped_before_any_rsa(
    rig: Rig, key: str
) -> None:
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    if key == "phkt_less_wrong_token":
        bu = mn.first_bu(1, COA_1, care_of_token=bytes(8), nonce_index=index)
        reason = "drop:bad_authenticator"
    else:
        bu = mn.first_bu(1, COA_1, nonce_indices=(0, index))
        reason = "drop:missing_authorization_data"
    work = rig.send(from_core(bu))
    assert silent(work)
    assert rig.dar.counters[reason] == 1
    assert rig.dar.counters["rsa_operations"] == 0
    assert rig.dar.bindings() == []


def test_a_later_phkt_bu_keyed_by_phkt_and_care_of_token_is_accepted(
    bound: tuple[Rig, MobileNode],
) -> None:
    rig, mn = bound
    assert mn.phkt is not None
    index, token = rig.care_of_test(COA_2, T0 + 10)
    rsa_before = rig.dar.counters["rsa_operations"]
    work = rig.send(
        from_core(mn.phkt_bu(2, COA_2, care_of_token=token, nonce_index=index)), T0 + 11
    )
    [change] = work.changes
    assert change.kind is ChangeKind.UPDATE
    assert change.binding is not None and change.binding.coa == COA_2
    assert change.previous is not None and change.previous.coa == COA_1
    assert work.packet_outs == []
    [ba_out] = work.after_flows
    packet, ba = ba_in(ba_out)
    assert (ba.status, ba.sequence) == (mh.BAStatus.ACCEPTED, 2)
    assert ba.options.permanent_home_keygen_token is None  # no new PHKT without CGA
    assert packet.destination == COA_2
    # The BA is keyed like the BU: Kbm = SHA1(PHKT | care-of token) (P9, P13).
    assert ba_authenticator_ok(ba_out.frame[14:], kbm(mn.phkt, token), COA_2)
    assert not ba_authenticator_ok(ba_out.frame[14:], kbm(mn.phkt), COA_2)
    assert rig.dar.counters["rsa_operations"] == rsa_before  # HMAC only
    rig.execute(work)
    assert rig.tunnelled_to(mn.hoa) == text(COA_2)


def test_a_phkt_bu_keyed_by_the_phkt_alone_is_dropped(bound: tuple[Rig, MobileNode]) -> None:
    rig, mn = bound
    index, _ = rig.care_of_test(COA_2, T0 + 10)
    work = rig.send(from_core(mn.phkt_bu(2, COA_2, nonce_index=index)), T0 + 11)
    assert silent(work)
    assert rig.dar.counters["drop:bad_authenticator"] == 1
    assert rig.tunnelled_to(mn.hoa) == text(COA_1)


def test_a_token_of_another_care_of_address_is_dropped(bound: tuple[Rig, MobileNode]) -> None:
    """The token binds the CoA: COA_2's token does not move the binding to COA_3."""
    rig, mn = bound
    index, token_2 = rig.care_of_test(COA_2, T0 + 10)
    work = rig.send(
        from_core(mn.phkt_bu(2, COA_3, care_of_token=token_2, nonce_index=index)), T0 + 11
    )
    assert silent(work)
    assert rig.dar.counters["drop:bad_authenticator"] == 1


@pytest.mark.parametrize("unknown", [1000, 0xFFFF])
def test_an_unknown_care_of_nonce_index_is_answered_137(rig: Rig, unknown: int) -> None:
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    assert unknown != index
    work = rig.send(from_core(mn.first_bu(9, COA_1, care_of_token=token, nonce_index=unknown)))
    assert work.changes == [] and work.flow_steps == [] and work.after_flows == []
    [ba_out] = work.packet_outs  # answered at once: nothing to install first
    _, ba = ba_in(ba_out)
    assert (ba.status, ba.sequence) == (mh.BAStatus.EXPIRED_CARE_OF_NONCE_INDEX, 9)
    assert int(ba.status) == 137
    counters = rig.dar.counters
    assert (counters["ba_status:137"], counters["bu_result:rejected"]) == (1, 1)
    assert counters["rsa_operations"] == 0  # judged before any CGA work
    assert rig.dar.bindings() == []


def test_an_unknown_nonce_index_on_a_phkt_bu_is_answered_137(
    bound: tuple[Rig, MobileNode],
) -> None:
    rig, mn = bound
    _, token = rig.care_of_test(COA_2, T0 + 10)
    work = rig.send(from_core(mn.phkt_bu(2, COA_2, care_of_token=token, nonce_index=4242)), T0 + 11)
    [ba_out] = work.packet_outs
    assert ba_in(ba_out)[1].status == 137
    assert work.changes == [] and work.after_flows == []
    assert rig.tunnelled_to(mn.hoa) == text(COA_1)


@pytest.mark.parametrize(
    ("delay_s", "accepted"),
    [(auth.MAX_TOKEN_LIFETIME - 1, True), (auth.MAX_NONCE_LIFETIME, False)],
)
def test_an_expired_care_of_nonce_index_is_answered_137(
    rig: Rig, delay_s: float, accepted: bool
) -> None:
    """Inside the token lifetime the BU is accepted; past the nonce's life, 137 (P13)."""
    mn = MobileNode.create()
    index, token = rig.care_of_test(COA_1)
    bu = from_core(mn.first_bu(1, COA_1, care_of_token=token, nonce_index=index))
    work = rig.send(bu, T0 + delay_s)
    if accepted:
        assert [change.kind for change in work.changes] == [ChangeKind.ADD]
    else:
        [ba_out] = work.packet_outs
        assert ba_in(ba_out)[1].status == 137 and work.changes == []


@pytest.mark.parametrize("kind", ["first_cga_bu", "phkt_bu"])
def test_a_bu_without_nonce_indices_is_dropped(bound: tuple[Rig, MobileNode], kind: str) -> None:
    rig, mn = bound
    _, token = rig.care_of_test(COA_2, T0 + 10)
    if kind == "first_cga_bu":
        stranger = MobileNode.create(seed=2)
        bu = stranger.first_bu(1, COA_2, auth_key=kbm(None, token))
    else:
        bu = mn.phkt_bu(2, COA_2, care_of_token=token)
    assert mh.parse_ipv6_packet(bu).message.options.nonce_indices is None
    rsa_before = rig.dar.counters["rsa_operations"]
    work = rig.send(from_core(bu), T0 + 11)
    assert silent(work)
    assert rig.dar.counters["drop:missing_nonce_indices"] == 1
    assert rig.dar.counters["rsa_operations"] == rsa_before
    assert [b.coa for b in rig.dar.bindings()] == [COA_1]


def test_a_deregistration_needs_no_care_of_test(bound: tuple[Rig, MobileNode]) -> None:
    """RFC 6275 §5.2.5: only the home keygen token is used to deregister (Kbm = SHA1(PHKT))."""
    rig, mn = bound
    assert mn.phkt is not None
    work = rig.send(from_core(mn.deregistration(2, COA_3)), T0 + 10)
    [change] = work.changes
    assert change.kind is ChangeKind.DELETE
    [ba_out] = work.after_flows
    _, ba = ba_in(ba_out)
    assert (ba.status, ba.lifetime_units) == (0, 0)
    assert ba_authenticator_ok(ba_out.frame[14:], kbm(mn.phkt), mn.hoa)
    rig.execute(work)
    assert rig.tunnelled_to(mn.hoa) is None and rig.dar.bindings() == []


def test_return_routability_survives_a_backward_clock_step(rig: Rig) -> None:
    mn = MobileNode.create()
    rig.care_of_test(COA_1, T0)
    stepped_back = T0 - 3600.0  # e.g. the wall clock corrected by an hour
    # The MN runs the whole exchange after the step.
    index, token = rig.care_of_test(COA_1, stepped_back)
    work = rig.send(
        from_core(mn.first_bu(1, COA_1, care_of_token=token, nonce_index=index)),
        stepped_back + 1,
    )
    assert [change.kind for change in work.changes] == [ChangeKind.ADD]
