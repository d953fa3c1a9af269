"""Wall-clock steps of +-1 h neither mass-expire nor immortalise bindings.

Binding times are wall-clock (they are persisted), and the home agent is
told ``now``.  With a ``monotonic`` reading beside it, the binding cache
sees any step as a change of ``now - monotonic`` and moves every binding
and tombstone by it, so each keeps its remaining lifetime in elapsed time.
Without one (the shim today passes only ``time.time()``) backward steps are
still recognised; forward ones cannot be told from elapsed time, which is
why the shim should pass ``time.monotonic()`` too (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mn_factory import ANCHOR, COA_1, COA_2, PREFIX_HOME, MobileNode, parse, seeded_rng
from state_rig import T0, StoreRig

from fama_ryu.binding_cache import BindingCache
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig, Verdict

HOUR = 3600.0
LIFETIME_S = 400.0  # the test MN asks for 100 units
MONO0 = 50.0
TICK_S = 0.25  # how often the shim ticks


def make_agent() -> HomeAgent:
    config = HomeAgentConfig(name="dar-a", anchor_address=ANCHOR, home_prefixes=(PREFIX_HOME,))
    return HomeAgent(config, seeded_rng(5), BindingCache(tombstone_ttl_s=1000.0))


def bind(agent: HomeAgent, node: MobileNode, now: float, monotonic: float | None) -> None:
    decision = agent.handle(parse(node.first_bu(10, COA_1)), now, monotonic)
    assert decision.verdict is Verdict.ACCEPTED and decision.change is not None
    agent.apply(decision.change)
    assert decision.reply is not None
    node.learn_phkt(decision.reply.packet, COA_1)


def expired(agent: HomeAgent, elapsed: float, step: float, monotonic: bool) -> int:
    """Expirations after ``elapsed`` real seconds, the wall clock stepped by ``step``."""
    now = T0 + step + elapsed
    changes = agent.expirations(now, MONO0 + elapsed if monotonic else None)
    for change in changes:
        agent.apply(change)
    return len(changes)


@pytest.mark.parametrize("step", [HOUR, -HOUR], ids=["forward", "backward"])
def test_a_step_keeps_every_remaining_lifetime(step: float) -> None:
    agent = make_agent()
    nodes = [MobileNode.create(seed=seed) for seed in (1, 2, 3)]
    for node in nodes:
        bind(agent, node, T0, MONO0)
    assert expired(agent, 10.0, 0.0, monotonic=True) == 0
    assert expired(agent, 20.0, step, monotonic=True) == 0  # the step is seen here
    assert expired(agent, LIFETIME_S - 1, step, monotonic=True) == 0
    assert expired(agent, LIFETIME_S, step, monotonic=True) == len(nodes)
    assert len(agent.cache) == 0


def test_backward_step_is_recognised_without_a_monotonic_clock() -> None:
    """The time between the last reading and the step is lost (the shim reads the
    clock every TICK_S), so a lifetime may grow by that much, never by the step."""
    agent = make_agent()
    bind(agent, MobileNode.create(seed=1), T0, None)
    assert expired(agent, 10.0, 0.0, monotonic=False) == 0
    assert expired(agent, 10.0 + TICK_S, -HOUR, monotonic=False) == 0
    assert expired(agent, LIFETIME_S - 1, -HOUR, monotonic=False) == 0
    assert expired(agent, LIFETIME_S + TICK_S, -HOUR, monotonic=False) == 1


@pytest.mark.parametrize("step", [HOUR, -HOUR], ids=["forward", "backward"])
def test_replays_stay_refused_across_a_step(step: float) -> None:
    """Tombstones move with the clock too: the last number is still remembered."""
    agent = make_agent()
    node = MobileNode.create(seed=1)
    first = parse(node.first_bu(10, COA_1))
    bind(agent, node, T0, MONO0)
    decision = agent.handle(parse(node.deregistration(11, COA_1)), T0 + 1, MONO0 + 1)
    assert decision.change is not None
    agent.apply(decision.change)
    replay = agent.handle(first, T0 + step + 900, MONO0 + 900)  # tombstone TTL is 1000 s
    assert replay.status == 135
    later = agent.handle(first, T0 + step + 1002, MONO0 + 1002)
    assert later.verdict is Verdict.ACCEPTED


def test_moved_bindings_are_persisted_so_a_restart_keeps_them(tmp_path: Path) -> None:
    """After a forward step the store must hold the moved times, or a restart would
    expire every binding at load."""
    rig = StoreRig(tmp_path / "b.sqlite")
    try:
        node = MobileNode.create(seed=1)
        assert rig.bu(node.first_bu(10, COA_1)).status() == 0
        agent = rig.dar.home_agent
        assert agent.expirations(T0 + 10, MONO0 + 10) == []
        assert agent.expirations(T0 + HOUR + 20, MONO0 + 20) == []
        rebase = agent.clock_rebase()
        assert [change.hoa for change in rebase] == [node.hoa]
        rig.store.commit([(rig.dar.name, change) for change in rebase])
        rig.dar.committed(rebase)
        assert agent.clock_rebase() == []  # reported once
        rig.restart(T0 + HOUR + 30)
        assert [b.hoa for b in rig.dar.bindings()] == [node.hoa]
        assert rig.dar.bindings()[0].expires_at == pytest.approx(T0 + HOUR + LIFETIME_S)
    finally:
        rig.close()


def test_dar_without_monotonic_clock_survives_a_backward_step(tmp_path: Path) -> None:
    """Through Dar.tick as the shim drives it today (wall clock only)."""
    rig = StoreRig(tmp_path / "b.sqlite")
    try:
        node = MobileNode.create(seed=1)
        assert rig.bu(node.first_bu(10, COA_1)).status() == 0
        rig.tick(T0 + 10)
        rig.tick(T0 - HOUR + 10 + TICK_S)
        assert len(rig.dar.bindings()) == 1
        rig.tick(T0 - HOUR + LIFETIME_S - 1)
        assert len(rig.dar.bindings()) == 1
        rig.tick(T0 - HOUR + LIFETIME_S + TICK_S)
        assert rig.dar.bindings() == [] and rig.tunnelled_to(node.hoa) is None
        node_2 = MobileNode.create(seed=2)
        assert rig.bu(node_2.first_bu(1, COA_2), now=T0 - HOUR + LIFETIME_S + 1).status() == 0
    finally:
        rig.close()


def test_dar_forward_step_does_not_mass_expire(tmp_path: Path) -> None:
    rig = StoreRig(tmp_path / "b.sqlite")
    try:
        assert rig.bu(MobileNode.create(seed=1).first_bu(10, COA_1)).status() == 0
        rig.tick(T0 + 10, MONO0 + 10)
        rig.tick(T0 + HOUR + 20, MONO0 + 20)  # the wall clock jumped an hour in 10 s
        assert len(rig.dar.bindings()) == 1
        assert rig.dar.bindings()[0].expires_at == pytest.approx(T0 + HOUR + LIFETIME_S)
    finally:
        rig.close()


def test_dar_neighbor_solicitations_resume_after_a_backward_step(tmp_path: Path) -> None:
    rig = StoreRig(tmp_path / "b.sqlite")
    try:
        limiter = rig.dar._solicit_limiter
        target = bytes.fromhex("20010db8000a00000000000000000055")
        assert limiter.allow(target, T0)
        assert limiter.allow(target, T0 - HOUR + 2)
    finally:
        rig.close()
