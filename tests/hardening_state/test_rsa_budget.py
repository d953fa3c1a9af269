"""The RSA verification budget: a flood of forged CGA BUs costs bounded CPU.

A forged first Binding Update (valid CGA, wrong signature) passes every
cheap check and costs one RSA verification.  The home agent spends at most
``rsa_verifications_per_source_per_s`` of them per source /64 and
``rsa_verifications_per_s`` for the whole DAR (token buckets of one
second's worth, time passed in); beyond that the BU is dropped silently
and counted.  These tests assert the RSA counter under floods, and that
honest MNs still get through: PHKT BUs never need RSA, and a CGA BU from
another /64 still finds budget left when one /64 floods.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mn_factory import (
    ANCHOR,
    COA_1,
    COA_2,
    PREFIX_HOME,
    MobileNode,
    addr,
    parse,
    seeded_rng,
)
from state_rig import StoreRig

from fama_ryu import auth, mh
from fama_ryu.binding_cache import BindingCache
from fama_ryu.config import ConfigError, parse_domain
from fama_ryu.home_agent import (
    DEFAULT_RSA_VERIFICATIONS_PER_S,
    DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S,
    Decision,
    DropReason,
    HomeAgent,
    HomeAgentConfig,
    Verdict,
    VerificationBudget,
)

NOW = 5000.0
PER_S = 40
PER_SOURCE_PER_S = 8
FLOOD = 200


def make_agent(per_s: int = PER_S, per_source_per_s: int = PER_SOURCE_PER_S) -> HomeAgent:
    config = HomeAgentConfig(
        name="dar-a",
        anchor_address=ANCHOR,
        home_prefixes=(PREFIX_HOME,),
        rsa_verifications_per_s=per_s,
        rsa_verifications_per_source_per_s=per_source_per_s,
    )
    return HomeAgent(config, seeded_rng(3), BindingCache())


def attacker_source(index: int, *, same_prefix: bool) -> bytes:
    if same_prefix:
        return addr(f"2001:db8:e::{index + 1:x}")
    return addr(f"2001:db8:e:{index + 1:x}::1")


def forged_flood(count: int, *, same_prefix: bool) -> list[mh.MobilityPacket]:
    """Distinct valid CGAs (one key, different modifiers) with signatures over another CoA."""
    packets = []
    for index in range(count):
        node = MobileNode.create(seed=1000 + index)
        source = attacker_source(index, same_prefix=same_prefix)
        packets.append(parse(node.first_bu(1, source, signed_coa=COA_2)))
    return packets


@pytest.fixture(scope="module")
def single_prefix_flood() -> list[mh.MobilityPacket]:
    return forged_flood(FLOOD, same_prefix=True)


@pytest.fixture(scope="module")
def spoofed_flood() -> list[mh.MobilityPacket]:
    return forged_flood(FLOOD, same_prefix=False)


def verifications(run: list[tuple[mh.MobilityPacket, float]], agent: HomeAgent) -> list[Decision]:
    before = auth.RSA_OPERATIONS.snapshot()
    decisions = [agent.handle(packet, now) for packet, now in run]
    after = auth.RSA_OPERATIONS.snapshot()
    assert after["encrypt"] == before["encrypt"]  # no forged BU is ever accepted
    spent = after["verify"] - before["verify"]
    assert spent == sum(d.rsa_operations for d in decisions)
    return decisions


def by_reason(decisions: list[Decision]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision.reason] = counts.get(decision.reason, 0) + 1
    return counts


def honest_registration(agent: HomeAgent, node: MobileNode, coa: bytes, now: float) -> Decision:
    packet = parse(node.first_bu(1, coa))
    return agent.handle(packet, now)


def test_one_prefix_flooding_spends_only_its_own_budget(
    single_prefix_flood: list[mh.MobilityPacket],
) -> None:
    agent = make_agent()
    decisions = verifications([(p, NOW) for p in single_prefix_flood], agent)
    assert by_reason(decisions) == {
        "status_148": PER_SOURCE_PER_S,
        DropReason.RSA_BUDGET_SOURCE.value: FLOOD - PER_SOURCE_PER_S,
    }
    for decision in decisions:
        if decision.verdict is Verdict.DROPPED:
            assert decision.reply is None and decision.change is None
            assert decision.rsa_operations == 0
    # An honest MN on another /64 still registers at once, within the DAR's budget.
    honest = MobileNode.create(seed=1)
    decision = honest_registration(agent, honest, COA_1, NOW)
    assert decision.verdict is Verdict.ACCEPTED and decision.rsa_operations == 2


def test_spoofed_prefixes_meet_the_dar_wide_budget(
    spoofed_flood: list[mh.MobilityPacket],
) -> None:
    agent = make_agent()
    honest = MobileNode.create(seed=1)
    first = agent.handle(parse(honest.first_bu(1, COA_1)), NOW - 10)
    assert first.change is not None
    agent.apply(first.change)
    assert first.reply is not None
    honest.learn_phkt(first.reply.packet, COA_1)
    decisions = verifications([(p, NOW) for p in spoofed_flood], agent)
    assert by_reason(decisions) == {
        "status_148": PER_S,
        DropReason.RSA_BUDGET_GLOBAL.value: FLOOD - PER_S,
    }
    # A bound MN's PHKT BU needs no RSA: a handover goes through the flood.
    move = agent.handle(parse(honest.phkt_bu(2, COA_2)), NOW)
    assert move.verdict is Verdict.ACCEPTED and move.rsa_operations == 0
    # A new MN's first BU competes for the DAR-wide budget: dropped now (no BA),
    # accepted when it retransmits after the bucket refilled.
    newcomer = MobileNode.create(seed=2)
    packet = parse(newcomer.first_bu(1, COA_1))
    assert agent.handle(packet, NOW).reason == DropReason.RSA_BUDGET_GLOBAL.value
    assert agent.handle(packet, NOW + 1.0).verdict is Verdict.ACCEPTED


def test_a_sustained_flood_is_held_to_the_rate(
    single_prefix_flood: list[mh.MobilityPacket],
) -> None:
    """Over T seconds a /64 gets at most burst + rate x T verifications."""
    agent = make_agent()
    step_s = 0.01
    run = [(packet, NOW + index * step_s) for index, packet in enumerate(single_prefix_flood)]
    decisions = verifications(run, agent)
    duration_s = (len(run) - 1) * step_s
    spent = sum(d.rsa_operations for d in decisions)
    assert spent <= PER_SOURCE_PER_S + PER_SOURCE_PER_S * duration_s + 1e-9
    assert spent >= PER_SOURCE_PER_S * duration_s  # and the rate really is granted


def test_cheap_rejections_spend_no_budget() -> None:
    """Budget is taken just before RSA work: 148s found by hashing, key checks or
    the signature's length, and every other status, leave it untouched."""
    agent = make_agent(per_s=1, per_source_per_s=1)
    node = MobileNode.create(seed=1)
    other = MobileNode.create(seed=2)
    good = parse(node.first_bu(1, COA_1))
    bu = good.message
    assert isinstance(bu, mh.BindingUpdate) and bu.options.signature is not None
    short_signature = mh.with_options(bu, signature=bu.options.signature[:-1])
    cheap = [
        parse(node.first_bu(1, COA_1, params=other.params)),  # Hash1 mismatch
        parse(
            mh.build_packet(
                short_signature, source=COA_1, destination=ANCHOR, home_address=node.hoa
            )
        ),
        parse(node.first_bu(1, COA_1, home_registration=False)),  # 129
        parse(node.deregistration(1, COA_1, phkt=bytes(8))),  # 133
    ]
    for _ in range(5):
        for packet in cheap:
            decision = agent.handle(packet, NOW)
            assert decision.verdict is Verdict.REJECTED and decision.rsa_operations == 0
    assert agent.handle(good, NOW).verdict is Verdict.ACCEPTED


def test_budget_refusal_takes_nothing_from_the_dar_bucket() -> None:
    """Fairness: a source over its own budget does not drain the shared one."""
    budget = VerificationBudget(per_s=3, per_source_per_s=1)
    flooder, honest = addr("2001:db8:e::1"), addr("2001:db8:b::1")
    assert budget.take(flooder, 0.0) is None
    for _ in range(100):
        assert budget.take(flooder, 0.0) is DropReason.RSA_BUDGET_SOURCE
    assert budget.take(honest, 0.0) is None
    assert budget.take(addr("2001:db8:c::1"), 0.0) is None
    assert budget.take(addr("2001:db8:d::1"), 0.0) is DropReason.RSA_BUDGET_GLOBAL


def test_budget_survives_clock_steps() -> None:
    """A backward step refills nothing and never locks sources out; a forward one
    refills at most one burst."""
    budget = VerificationBudget(per_s=100, per_source_per_s=2)
    source = addr("2001:db8:e::1")
    assert budget.take(source, 1000.0) is None and budget.take(source, 1000.0) is None
    assert budget.take(source, 1000.0) is DropReason.RSA_BUDGET_SOURCE
    assert budget.take(source, 1000.0 - 3600) is DropReason.RSA_BUDGET_SOURCE
    assert budget.take(source, 1000.0 - 3600 + 0.5) is None  # the rate resumes at once
    grants = sum(budget.take(source, 1000.0 + 3600) is None for _ in range(10))
    assert grants == 2


def test_source_buckets_are_bounded() -> None:
    budget = VerificationBudget(per_s=10**6, per_source_per_s=1, max_sources=64)
    for index in range(10_000):
        budget.take(attacker_source(index, same_prefix=False), NOW)
        assert budget.tracked_sources <= 64


def test_dar_counts_budget_drops(tmp_path: Path) -> None:
    rig = StoreRig(tmp_path / "b.sqlite", rsa_verifications_per_source_per_s=1)
    try:
        forged = [
            MobileNode.create(seed=2000 + i).first_bu(
                1, attacker_source(i, same_prefix=True), signed_coa=COA_2
            )
            for i in range(5)
        ]
        statuses = [rig.bu(packet).status() for packet in forged]
        assert statuses == [148, None, None, None, None]
        assert rig.dar.counters["drop:rsa_budget_source"] == 4
        assert rig.dar.counters["rsa_operations"] == 1
    finally:
        rig.close()


def test_budget_keys_in_the_domain_file() -> None:
    base = {
        "name": "d",
        "dpid": 1,
        "access_ports": [1],
        "core_port": 2,
        "gre_port": 3,
        "router_mac": "02:00:00:00:00:01",
        "access_prefixes": ["2001:db8:1::/64"],
        "anchor_address": "2001:db8:1::1",
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": "02:00:00:00:ff:ff"},
    }
    domain = parse_domain({"dars": [base]}, "test")
    config = domain.dars[0].home_agent_config(domain)
    assert (config.rsa_verifications_per_s, config.rsa_verifications_per_source_per_s) == (
        DEFAULT_RSA_VERIFICATIONS_PER_S,
        DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S,
    )
    custom = {**base, "rsa_verifications_per_s": 7, "rsa_verifications_per_source_per_s": 3}
    domain = parse_domain({"dars": [custom]}, "test")
    config = domain.dars[0].home_agent_config(domain)
    assert (config.rsa_verifications_per_s, config.rsa_verifications_per_source_per_s) == (7, 3)
    for key in ("rsa_verifications_per_s", "rsa_verifications_per_source_per_s"):
        for bad, message in ((0, "below the minimum 1"), (10**7, "outside"), ("5", "integer")):
            with pytest.raises(ConfigError, match=rf"dars\[0\]\.{key}: .*{message}"):
                parse_domain({"dars": [{**base, key: bad}]}, "test")


def test_signature_length_mismatch_is_148_before_the_budget() -> None:
    """A 2040-bit key with a 128-byte signature: refused on length, no token, no RSA."""
    agent = make_agent(per_s=1, per_source_per_s=1)
    node = MobileNode.create(seed=9, bits=2040)
    packet = parse(node.first_bu(1, COA_1))
    bu = packet.message
    assert isinstance(bu, mh.BindingUpdate) and bu.options.signature is not None
    assert len(bu.options.signature) == 255
    truncated = mh.with_options(bu, signature=bu.options.signature[:128])
    forged = parse(
        mh.build_packet(truncated, source=COA_1, destination=ANCHOR, home_address=node.hoa)
    )
    decision = agent.handle(forged, NOW)
    assert decision.status == 148 and decision.rsa_operations == 0
    assert agent.handle(packet, NOW).verdict is Verdict.ACCEPTED
