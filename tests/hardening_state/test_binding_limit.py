"""The binding table limit of a DAR (``binding_limit``): BA 130 beyond it.

RFC 6275 §10.3.1 lets a home agent refuse a registration for lack of
resources (status 130).  Only a BU that would add a binding counts against
the limit: refreshes, moves and deregistrations of bound MNs still work,
tombstones do not count, and the refusal costs no RSA work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mn_factory import COA_1, COA_2, COA_3, MobileNode
from state_rig import StoreRig, text

from fama_ryu import auth
from fama_ryu.config import ConfigError, parse_domain
from fama_ryu.home_agent import HomeAgentConfig

LIMIT = 2


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[StoreRig]:
    rig = StoreRig(tmp_path / "bindings.sqlite", binding_limit=LIMIT)
    yield rig
    rig.close()


def register(rig: StoreRig, node: MobileNode, sequence: int, coa: bytes) -> None:
    sent = rig.bu(node.first_bu(sequence, coa))
    assert sent.status() == 0
    node.learn_phkt(sent.frames[0].frame[14:], coa)


def test_a_new_binding_beyond_the_limit_gets_130(rig: StoreRig) -> None:
    first, second, third = (MobileNode.create(seed=seed) for seed in (1, 2, 3))
    register(rig, first, 1, COA_1)
    register(rig, second, 1, COA_2)
    before = rig.store.load(rig.now)
    packet = third.first_bu(7, COA_3)  # signed here: the MN's RSA work is not counted
    rsa_before = auth.RSA_OPERATIONS.total()
    sent = rig.bu(packet)
    assert sent.status() == 130 and sent.bas()[0].sequence == 7
    assert sent.bas()[0].options.permanent_home_keygen_token is None
    assert auth.RSA_OPERATIONS.total() == rsa_before  # refused before the signature
    assert sent.flow_steps == 0 and rig.tunnelled_to(third.hoa) is None
    assert rig.store.load(rig.now) == before
    assert rig.dar.counters["ba_status:130"] == 1


def test_bound_mns_refresh_move_and_deregister_at_the_limit(rig: StoreRig) -> None:
    first, second, third = (MobileNode.create(seed=seed) for seed in (1, 2, 3))
    register(rig, first, 1, COA_1)
    register(rig, second, 1, COA_2)
    assert rig.bu(first.phkt_bu(2, COA_1)).status() == 0  # refresh
    assert rig.bu(first.phkt_bu(3, COA_3)).status() == 0  # move
    assert rig.tunnelled_to(first.hoa) == text(COA_3)
    assert rig.bu(first.first_bu(4, COA_3)).status() == 0  # CGA BU renewing the PHKT (P10)
    sent = rig.bu(second.deregistration(2, COA_2))
    assert sent.status() == 0
    # The freed slot takes a new MN; the deregistered HoA's tombstone does not count.
    register(rig, third, 1, COA_2)
    assert len(rig.dar.bindings()) == LIMIT
    assert rig.bu(MobileNode.create(seed=4).first_bu(1, COA_1)).status() == 130


def test_limit_holds_after_a_restart(rig: StoreRig) -> None:
    for seed, coa in ((1, COA_1), (2, COA_2)):
        register(rig, MobileNode.create(seed=seed), 1, coa)
    rig.restart()
    assert rig.bu(MobileNode.create(seed=3).first_bu(1, COA_3)).status() == 130


def test_the_limit_is_a_validated_per_dar_setting() -> None:
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
    assert domain.dars[0].home_agent_config(domain).binding_limit == 100_000
    for bad in (0, -1, "10", 1.5):
        with pytest.raises(ConfigError, match=r"dars\[0\]\.binding_limit"):
            parse_domain({"dars": [{**base, "binding_limit": bad}]}, "test")
    with pytest.raises(ValueError, match="binding limit"):
        HomeAgentConfig(
            name="d",
            anchor_address=bytes.fromhex("20010db8000100000000000000000001"),
            home_prefixes=(bytes.fromhex("20010db800010000"),),
            binding_limit=0,
        )
