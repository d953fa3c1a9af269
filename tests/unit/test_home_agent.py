"""Unit tests for fama_ryu.home_agent: the DAR's Binding Update decisions.

Each test cites the rule it checks: RFC 6275 §9.5.1 (validation), §9.5.4
(sending BAs), §10.3.1 (registration), §10.3.2 (deregistration), and the
FAMA profile rules P1-P16 (FAMA-PROFILE.md).  Packets are
built by the test-only mobile node of ``mn_factory`` and always go through
``mh.parse_ipv6_packet`` before reaching the home agent.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mn_factory import (
    ANCHOR,
    ATTACKER,
    COA_1,
    COA_2,
    COA_3,
    DEFAULT_LIFETIME_UNITS,
    KDAR,
    PREFIX_FOREIGN,
    PREFIX_HOME,
    PREFIX_HOME_2,
    MobileNode,
    addr,
    ba_authenticator_ok,
    coti_packet,
    kbm,
    parse,
    resend,
    seeded_rng,
)

from fama_ryu import auth, mh
from fama_ryu.binding_cache import (
    SEQUENCE_MODULUS,
    BindingCache,
    BindingChange,
    ChangeKind,
    RemovalCause,
    sequence_is_newer,
)
from fama_ryu.home_agent import (
    MAX_CGA_BINDING_LIFETIME_S,
    Decision,
    DropReason,
    HomeAgent,
    HomeAgentConfig,
    Reply,
    Verdict,
    is_unicast_routable,
    public_key_hash,
)

S = mh.BAStatus
NOW = 1000.0
OWN_EXTRA = addr("2001:db8:a::2")  # another address of the DAR itself
TOMBSTONE_TTL = 3600.0


# ---------------------------------------------------------------- helpers


def make_config(**overrides: object) -> HomeAgentConfig:
    values: dict[str, object] = {
        "name": "dar-a",
        "anchor_address": ANCHOR,
        "home_prefixes": (PREFIX_HOME, PREFIX_HOME_2),
        "own_addresses": frozenset({OWN_EXTRA}),
    }
    values.update(overrides)
    return HomeAgentConfig(**values)  # type: ignore[arg-type]


def make_agent(*, tombstone_ttl_s: float = TOMBSTONE_TTL, **overrides: object) -> HomeAgent:
    token_issuer = overrides.pop("token_issuer", None)
    return HomeAgent(
        make_config(**overrides),
        seeded_rng(2024),
        cache=BindingCache(tombstone_ttl_s=tombstone_ttl_s),
        token_issuer=token_issuer,  # type: ignore[arg-type]
    )


def decide(agent: HomeAgent, packet: bytes, now: float = NOW) -> tuple[Decision, int]:
    """Handle ``packet``; return the decision and the RSA operations it cost.

    The packet is parsed first so the MN's own signing is not counted.
    """
    parsed = parse(packet)
    before = auth.RSA_OPERATIONS.total()
    decision = agent.handle(parsed, now)
    cost = auth.RSA_OPERATIONS.total() - before
    assert decision.rsa_operations == cost
    return decision, cost


def cache_state(cache: BindingCache) -> tuple[object, ...]:
    bindings = sorted(cache, key=lambda b: b.hoa)
    coas = {b.coa: cache.hoas_for_coa(b.coa) for b in bindings}
    return (bindings, sorted(cache.tombstones(), key=lambda t: t.hoa), coas, len(cache))


def accept(agent: HomeAgent, packet: bytes, now: float = NOW) -> Decision:
    decision, _ = decide(agent, packet, now)
    assert decision.verdict is Verdict.ACCEPTED, decision.reason
    assert decision.change is not None
    agent.apply(decision.change)
    return decision


def register(
    agent: HomeAgent, node: MobileNode, sequence: int = 10, coa: bytes = COA_1, now: float = NOW
) -> Decision:
    """First CGA BU accepted and applied; the MN learns its PHKT (P6, P7, P12)."""
    decision = accept(agent, node.first_bu(sequence, coa), now)
    assert decision.reply is not None
    node.learn_phkt(decision.reply.packet, coa)
    return decision


def assert_rejected(
    decision: Decision,
    status: mh.BAStatus,
    sequence: int,
    *,
    authorized_by: tuple[bytes, bytes] | None = None,
) -> None:
    """A non-zero BA (RFC 6275 §9.5.4) and no binding change.

    Without ``authorized_by`` the BA carries no Binding Authorization Data.
    With ``authorized_by=(kbm, first)`` (a PHKT-authenticated BU) it carries
    authorization data keyed by that Kbm over first | A_d | MH data (P9, P12),
    and by nothing else.
    """
    assert decision.verdict is Verdict.REJECTED
    assert decision.status == status
    assert decision.reason == f"status_{int(status)}"
    assert decision.change is None
    assert not decision.phkt_issued
    assert decision.reply is not None
    ba = decision.reply.message
    assert isinstance(ba, mh.BindingAck)
    assert ba.status == status and ba.sequence == sequence and ba.lifetime_units == 0
    assert ba.options.permanent_home_keygen_token is None
    # Reply.message is the BA as built; its authenticator is filled in at encoding.
    assert ba.options.authenticator is None
    parsed = parse(decision.reply.packet)
    assert parsed.source == ANCHOR
    if authorized_by is None:
        assert parsed.message == ba
        assert parsed.message.options.authenticator is None
    else:
        key, first = authorized_by
        assert parsed.message.options.authenticator is not None
        assert mh.with_options(parsed.message, authenticator=None) == ba
        assert ba_authenticator_ok(decision.reply.packet, key, first)
        assert first != ANCHOR  # never a CoA or HoA (P1)
        assert not ba_authenticator_ok(decision.reply.packet, key, ANCHOR)
        assert not ba_authenticator_ok(decision.reply.packet, kbm(bytes(8)), first)


def assert_dropped(decision: Decision, reason: DropReason) -> None:
    """RFC 6275 §9.5.1: silently discarded, nothing sent, nothing changed."""
    assert decision.verdict is Verdict.DROPPED
    assert decision.reason == reason.value
    assert decision.status is None
    assert decision.reply is None
    assert decision.change is None
    assert not decision.phkt_issued


@pytest.fixture(scope="module")
def sec1_node_template() -> MobileNode:
    # Sec 1 exercises the Hash2 check of RFC 3972 §5 step 7; made once.
    return MobileNode.create(sec=1, seed=11)


@pytest.fixture
def node(sec1_node_template: MobileNode) -> MobileNode:
    return replace(sec1_node_template, phkt=None)


@pytest.fixture
def other_node() -> MobileNode:
    return MobileNode.create(seed=22)


@pytest.fixture
def agent() -> HomeAgent:
    return make_agent()


# ================================================================ status 0


def test_first_cga_bu_accepted(agent: HomeAgent, node: MobileNode) -> None:
    """P6, P7, P12, RFC 6275 §10.3.1: binding added, BA with an encrypted PHKT."""
    decision, cost = decide(agent, node.first_bu(10, COA_1, 100))
    assert decision.verdict is Verdict.ACCEPTED and decision.reason == "accepted"
    assert decision.status == S.ACCEPTED
    assert decision.phkt_issued
    assert cost == 2  # verify + encrypt

    change = decision.change
    assert change is not None and change.kind is ChangeKind.ADD
    assert change.previous is None and change.hoa == node.hoa
    binding = change.binding
    assert binding is not None
    assert (binding.hoa, binding.coa, binding.sequence) == (node.hoa, COA_1, 10)
    assert binding.lifetime_s == 400 and binding.registered_at == NOW
    assert binding.expires_at == NOW + 400
    assert binding.key_hash == public_key_hash(node.params.public_key_der)

    reply = decision.reply
    assert reply is not None
    # P12: from A_d to the CoA, type 2 Routing Header carrying the HoA.
    assert (reply.source, reply.destination, reply.routing_address) == (ANCHOR, COA_1, node.hoa)
    ba_packet = parse(reply.packet)
    assert (ba_packet.source, ba_packet.destination) == (ANCHOR, COA_1)
    assert ba_packet.routing_address == node.hoa and ba_packet.home_address is None
    ba = ba_packet.message
    assert isinstance(ba, mh.BindingAck)
    # Reply.message is the BA as built; its authenticator is filled in at encoding.
    assert mh.with_options(ba, authenticator=None) == reply.message
    assert (ba.status, ba.sequence, ba.lifetime_units) == (0, 10, 100)

    # The PHKT option decrypts with the MN key to 8 bytes, which is the
    # token the binding holds; the BA authenticator uses Kbm = SHA1(PHKT)
    # over CoA | A_d | MH data (P9, P12).
    encrypted = ba.options.permanent_home_keygen_token
    assert encrypted is not None and len(encrypted) == 128
    phkt = auth.decrypt_phkt(node.key, encrypted)
    assert phkt is not None and len(phkt) == 8
    assert phkt == binding.phkt
    expected = auth.binding_authenticator(
        hashlib.sha1(phkt).digest(), COA_1, ANCHOR, ba_packet.mh.authorized_data()
    )
    assert ba.options.authenticator == expected
    assert not ba_authenticator_ok(reply.packet, hashlib.sha1(phkt).digest(), node.hoa)

    assert len(agent.cache) == 0  # nothing happens before apply() (P12)
    agent.apply(change)
    assert agent.cache.get(node.hoa) == binding
    assert agent.cache.hoas_for_coa(COA_1) == {node.hoa}


def test_phkt_bu_from_new_coa_updates_binding(agent: HomeAgent, node: MobileNode) -> None:
    """P9: a later BU authenticated by Kbm = SHA1(PHKT) moves the binding."""
    first = register(agent, node, 10, COA_1)
    assert first.change is not None and first.change.binding is not None
    decision, cost = decide(agent, node.phkt_bu(11, COA_2, 50), NOW + 5)
    assert decision.verdict is Verdict.ACCEPTED and cost == 0
    assert not decision.phkt_issued
    change = decision.change
    assert change is not None and change.kind is ChangeKind.UPDATE
    assert change.previous == first.change.binding and change.previous.coa == COA_1
    assert change.binding is not None
    assert (change.binding.coa, change.binding.sequence) == (COA_2, 11)
    assert change.binding.expires_at == NOW + 5 + 200
    assert change.binding.phkt == node.phkt  # the PHKT is kept
    assert change.binding.key_hash == first.change.binding.key_hash

    reply = decision.reply
    assert reply is not None
    assert (reply.destination, reply.routing_address) == (COA_2, node.hoa)
    ba = reply.message
    assert isinstance(ba, mh.BindingAck)
    assert (ba.status, ba.sequence, ba.lifetime_units) == (0, 11, 50)
    assert ba.options.permanent_home_keygen_token is None
    assert node.phkt is not None
    assert ba_authenticator_ok(reply.packet, kbm(node.phkt), COA_2)

    agent.apply(change)
    assert agent.cache.hoas_for_coa(COA_1) == frozenset()
    assert agent.cache.hoas_for_coa(COA_2) == {node.hoa}


def test_phkt_refresh_decision_equals_the_constructed_one(
    agent: HomeAgent, node: MobileNode
) -> None:
    """The accepted PHKT path builds its records with frozen_record and its BA
    with the codec's fast path: the decision equals one built with the
    constructors and the general encoder (P12 authenticator over CoA | A_d)."""
    first = register(agent, node, 10, COA_1)
    assert first.change is not None and first.change.binding is not None
    previous = first.change.binding
    assert node.phkt is not None
    decision, _ = decide(agent, node.phkt_bu(11, COA_1, 50), NOW + 5)
    ba = mh.BindingAck(mh.BAStatus.ACCEPTED, 11, 50)
    ba_mh = mh._encode_any_mobility_header(
        ba,
        pseudo_source=ANCHOR,
        pseudo_destination=node.hoa,
        signer=None,
        signature_len=0,
        authenticator=lambda data: auth.binding_authenticator(kbm(node.phkt), COA_1, ANCHOR, data),
    )
    ba_packet = mh.build_ipv6_packet(ANCHOR, COA_1, ba_mh, routing_address=node.hoa)
    binding = replace(
        previous, sequence=11, lifetime_s=200, registered_at=NOW + 5, expires_at=NOW + 205
    )
    expected = Decision(
        Verdict.ACCEPTED,
        "accepted",
        mh.BAStatus.ACCEPTED,
        Reply(ba, ANCHOR, COA_1, node.hoa, ba_packet),
        BindingChange(ChangeKind.UPDATE, node.hoa, binding=binding, previous=previous),
    )
    assert decision == expected
    assert vars(decision) == vars(expected)


def test_deregistration_lifetime_zero(agent: HomeAgent, node: MobileNode) -> None:
    """P11, RFC 6275 §10.3.2: DELETE + tombstone; BA lifetime 0 keyed over the HoA (P12)."""
    register(agent, node, 10, COA_1)
    decision, cost = decide(agent, node.deregistration(11, COA_2), NOW + 1)
    assert decision.verdict is Verdict.ACCEPTED and cost == 0
    change = decision.change
    assert change is not None and change.kind is ChangeKind.DELETE
    assert change.cause is RemovalCause.DEREGISTERED
    assert change.previous is not None and change.previous.coa == COA_1
    assert change.tombstone is not None
    assert change.tombstone.sequence == 11  # the deregistering BU's number
    assert change.tombstone.forget_at == NOW + 1 + TOMBSTONE_TTL

    reply = decision.reply
    assert reply is not None
    assert (reply.destination, reply.routing_address) == (COA_2, node.hoa)
    ba = reply.message
    assert isinstance(ba, mh.BindingAck)
    assert (ba.status, ba.sequence, ba.lifetime_units) == (0, 11, 0)
    assert node.phkt is not None
    assert ba_authenticator_ok(reply.packet, kbm(node.phkt), node.hoa)
    assert not ba_authenticator_ok(reply.packet, kbm(node.phkt), COA_2)

    agent.apply(change)
    assert agent.cache.get(node.hoa) is None
    assert agent.cache.hoas_for_coa(COA_1) == frozenset()
    assert agent.cache.last_sequence(node.hoa, NOW + 2) == 11


def test_deregistration_from_home_without_home_address_option(
    agent: HomeAgent, node: MobileNode
) -> None:
    """P11, RFC 6275 §10.3.2 / §9.5.4: CoA == HoA sent from the HoA, no HAO.

    The lifetime is not zero: CoA == HoA alone makes it a deregistration.
    The BA goes straight to the HoA, without a routing header.
    """
    register(agent, node, 10, COA_1)
    packet = node.deregistration(11, lifetime_units=DEFAULT_LIFETIME_UNITS)
    parsed = parse(packet)
    assert parsed.home_address is None and parsed.source == node.hoa
    decision, cost = decide(agent, packet)
    assert decision.verdict is Verdict.ACCEPTED and cost == 0
    assert decision.change is not None and decision.change.kind is ChangeKind.DELETE
    reply = decision.reply
    assert reply is not None
    assert (reply.destination, reply.routing_address) == (node.hoa, None)
    ba_packet = parse(reply.packet)
    assert ba_packet.routing_address is None and ba_packet.destination == node.hoa
    assert isinstance(ba_packet.message, mh.BindingAck)
    assert ba_packet.message.lifetime_units == 0
    assert node.phkt is not None
    assert ba_authenticator_ok(reply.packet, kbm(node.phkt), node.hoa)


def test_phkt_forgotten_after_deregistration(agent: HomeAgent, node: MobileNode) -> None:
    """P11: the PHKT is removed with the binding; a later PHKT BU gets 147."""
    register(agent, node, 10)
    accept(agent, node.deregistration(11, COA_1))
    decision, cost = decide(agent, node.phkt_bu(12, COA_1))
    assert_rejected(decision, S.PHKT_UNAVAILABLE, 12)
    assert cost == 0
    # A new CGA BU with a newer number starts again (P6).
    register(agent, node, 13)


def test_alternate_care_of_address_is_the_coa(agent: HomeAgent, node: MobileNode) -> None:
    """RFC 6275 §9.5.1: the Alternate CoA option names the CoA; it is signed (P6)."""
    decision, _ = decide(agent, node.first_bu(10, COA_1, alternate_coa=COA_3))
    assert decision.verdict is Verdict.ACCEPTED
    assert decision.change is not None and decision.change.binding is not None
    assert decision.change.binding.coa == COA_3
    assert decision.reply is not None and decision.reply.destination == COA_1  # §9.5.4


def test_accepted_cga_bu_with_2040_bit_key() -> None:
    """P8: a 2040-bit key needs two CGA Parameters options; still accepted."""
    node = MobileNode.create(seed=5, bits=2040)
    assert len(node.params.encode()) > 255
    agent = make_agent()
    packet = node.first_bu(1, COA_1)
    assert len(parse(packet).message.options.signature or b"") == 255
    decision, cost = decide(agent, packet)
    assert decision.verdict is Verdict.ACCEPTED and cost == 2
    assert decision.reply is not None
    node.learn_phkt(decision.reply.packet, COA_1)


def test_hoa_in_second_home_prefix_accepted() -> None:
    """P1: a DAR is home agent for every address of all its access prefixes."""
    node = MobileNode.create(PREFIX_HOME_2, seed=6)
    decision, _ = decide(make_agent(), node.first_bu(1, COA_1))
    assert decision.verdict is Verdict.ACCEPTED


# ================================================================ rejections 129-148


def test_129_home_registration_flag_clear_without_binding(
    agent: HomeAgent, node: MobileNode
) -> None:
    """RFC 6275 §9.5.1 / §10.3.1: a DAR is no correspondent node: H=0 -> 129."""
    decision, cost = decide(agent, node.first_bu(10, COA_1, home_registration=False))
    assert_rejected(decision, S.ADMINISTRATIVELY_PROHIBITED, 10)
    assert cost == 0
    assert decision.reply is not None
    assert (decision.reply.destination, decision.reply.routing_address) == (COA_1, node.hoa)
    assert len(agent.cache) == 0


def test_139_home_registration_flag_clear_with_binding(agent: HomeAgent, node: MobileNode) -> None:
    """RFC 6275 §9.5.1: H differs from the cached home registration -> 139."""
    register(agent, node, 10)
    before = cache_state(agent.cache)
    decision, cost = decide(agent, node.phkt_bu(11, COA_2, home_registration=False))
    assert_rejected(decision, S.REGISTRATION_TYPE_CHANGE_DISALLOWED, 11)
    assert cost == 0
    assert cache_state(agent.cache) == before


def test_130_binding_limit_reached(node: MobileNode, other_node: MobileNode) -> None:
    """RFC 6275 §10.3.1 (reject for insufficient resources): table full -> 130;
    an existing binding can still refresh."""
    agent = make_agent(binding_limit=1)
    register(agent, other_node, 1, COA_2)
    decision, cost = decide(agent, node.first_bu(10, COA_1))
    assert_rejected(decision, S.INSUFFICIENT_RESOURCES, 10)
    assert cost == 0
    refresh, _ = decide(agent, other_node.phkt_bu(2, COA_3))
    assert refresh.verdict is Verdict.ACCEPTED
    # A CGA BU renewing the existing binding is not a new entry either (P10).
    renew, _ = decide(agent, other_node.first_bu(2, COA_2))
    assert renew.verdict is Verdict.ACCEPTED


def test_132_home_address_outside_dar_prefixes() -> None:
    """P7 (b), RFC 6275 §10.3.1: HoA not on one of this DAR's prefixes -> 132."""
    foreign = MobileNode.create(PREFIX_FOREIGN, seed=7)
    agent = make_agent()
    decision, cost = decide(agent, foreign.first_bu(3, COA_1))
    assert_rejected(decision, S.NOT_HOME_SUBNET, 3)
    assert cost == 0


def test_132_cga_subnet_prefix_differs_from_hoa(agent: HomeAgent, node: MobileNode) -> None:
    """P7 (b): CGA Parameters' subnet prefix must equal the HoA's /64 -> else 132."""
    params = replace(node.params, subnet_prefix=PREFIX_HOME_2)
    decision, cost = decide(agent, node.first_bu(4, COA_1, params=params))
    assert_rejected(decision, S.NOT_HOME_SUBNET, 4)
    assert cost == 0


def test_133_deregistration_without_binding(agent: HomeAgent, node: MobileNode) -> None:
    """RFC 6275 §10.3.2: no home registration for the HoA -> 133."""
    phkt = bytes(8)
    for packet in (node.deregistration(5, COA_1, phkt=phkt), node.deregistration(5, phkt=phkt)):
        decision, cost = decide(agent, packet)
        assert_rejected(decision, S.NOT_HOME_AGENT, 5)
        assert cost == 0


def test_133_cga_deregistration_without_binding(agent: HomeAgent, node: MobileNode) -> None:
    """RFC 6275 §10.3.2: 133 comes before any signature work."""
    decision, cost = decide(agent, node.first_bu(5, COA_1, 0))
    assert_rejected(decision, S.NOT_HOME_AGENT, 5)
    assert cost == 0


def test_147_phkt_bu_without_binding(agent: HomeAgent, node: MobileNode) -> None:
    """P9: no CGA options while the HDAR holds no PHKT for the HoA -> 147."""
    decision, cost = decide(agent, node.phkt_bu(5, COA_1, phkt=bytes(8)))
    assert_rejected(decision, S.PHKT_UNAVAILABLE, 5)
    assert cost == 0


# ---------------------------------------------------------------- 135 (P5)


@pytest.mark.parametrize(
    ("last", "candidate"),
    [
        (10, 10),  # equal
        (10, 9),  # stale
        (10, 0),
        (10, (10 - 32768) % SEQUENCE_MODULUS),  # 32768 behind: still "not greater"
        (5, 65535),  # wrap-around: 65535 precedes 5
        (0, 32768),
        (65535, 65535),
        (65535, 32767),
    ],
)
def test_135_sequence_not_newer(
    agent: HomeAgent, node: MobileNode, last: int, candidate: int
) -> None:
    """P5, RFC 6275 §9.5.1: 135 carrying the last accepted number, no RSA work.

    A PHKT BU is authenticated first (an HMAC), so its 135 carries Binding
    Authorization Data keyed by the same Kbm over the CoA (the HoA for a
    deregistration) | A_d | MH data, which the MN can verify (P9, P12).  A
    CGA BU is judged on its number before any RSA work: its 135 carries none.
    """
    register(agent, node, last)
    assert node.phkt is not None
    key = kbm(node.phkt)
    before = cache_state(agent.cache)
    phkt_cases = [
        (node.phkt_bu(candidate, COA_2), COA_2, COA_2),
        (node.phkt_bu(candidate, COA_1, alternate_coa=COA_3), COA_3, COA_1),
        (node.deregistration(candidate, COA_2), node.hoa, COA_2),
        (node.deregistration(candidate), node.hoa, node.hoa),  # from home, no HAO
    ]
    for packet, first, destination in phkt_cases:
        decision, cost = decide(agent, packet)
        assert_rejected(decision, S.SEQUENCE_OUT_OF_WINDOW, last, authorized_by=(key, first))
        assert decision.reply is not None and decision.reply.destination == destination
        assert cost == 0
    decision, cost = decide(agent, node.first_bu(candidate, COA_2))
    assert_rejected(decision, S.SEQUENCE_OUT_OF_WINDOW, last)
    assert cost == 0
    assert cache_state(agent.cache) == before


@pytest.mark.parametrize(
    "make_packet",
    [
        lambda n, seq: n.phkt_bu(seq, COA_2, phkt=bytes(8)),  # wrong key
        lambda n, seq: n.phkt_bu(seq, COA_2, auth_first=COA_1),  # wrong first address
        lambda n, seq: n.deregistration(seq, COA_2, auth_first=COA_2),  # dereg keyed over CoA
        lambda n, seq: n.deregistration(seq, phkt=bytes(8)),  # from home, wrong key
    ],
    ids=["wrong-key", "wrong-first", "dereg-wrong-first", "dereg-home-wrong-key"],
)
@pytest.mark.parametrize("offset", [0, -1, -100], ids=["equal", "stale", "far-stale"])
def test_wrong_authenticator_with_stale_sequence_dropped(
    agent: HomeAgent,
    node: MobileNode,
    make_packet: Callable[[MobileNode, int], bytes],
    offset: int,
) -> None:
    """P9, RFC 6275 §9.5.1: a PHKT BU is authenticated before its number is
    judged, so a forger replaying an old number learns nothing: no 135, no BA,
    a silent drop (and no RSA work)."""
    register(agent, node, 500)
    before = cache_state(agent.cache)
    packet = make_packet(node, 500 + offset)
    decision, cost = decide(agent, packet)
    assert_dropped(decision, DropReason.BAD_AUTHENTICATOR)
    assert cost == 0
    assert cache_state(agent.cache) == before


def test_missing_authorization_data_with_stale_sequence_dropped(
    agent: HomeAgent, node: MobileNode
) -> None:
    """P9: without Binding Authorization Data a stale PHKT BU is discarded, not 135."""
    register(agent, node, 500)
    packet = node.binding_update(499, source=COA_2)
    assert parse(packet).message.options.authenticator is None
    decision, cost = decide(agent, packet)
    assert_dropped(decision, DropReason.MISSING_AUTHORIZATION_DATA)
    assert cost == 0


@pytest.mark.parametrize("removal", ["deregistration", "expiry"])
@pytest.mark.parametrize("key", [None, bytes(8)], ids=["old-phkt", "garbage-key"])
def test_phkt_bu_without_binding_judged_by_tombstone(
    agent: HomeAgent, node: MobileNode, removal: str, key: bytes | None
) -> None:
    """P5, P9, P11: once the binding (and its PHKT) is gone there is no key to
    authenticate with: a PHKT BU whose number is not newer than the tombstone's
    gets 135 without authorization data, a newer one 147."""
    register(agent, node, 10)
    if removal == "deregistration":
        accept(agent, node.deregistration(20, COA_1))
        last = 20
    else:
        for change in agent.expirations(NOW + 400):
            agent.apply(change)
        last = 10
    assert agent.cache.get(node.hoa) is None
    before = cache_state(agent.cache)
    for sequence in (last, last - 1, (last - 32768) % SEQUENCE_MODULUS):
        stale, cost = decide(agent, node.phkt_bu(sequence, COA_2, phkt=key), NOW + 401)
        assert_rejected(stale, S.SEQUENCE_OUT_OF_WINDOW, last)
        assert cost == 0
    for sequence in (last + 1, (last + 32767) % SEQUENCE_MODULUS):
        newer, cost = decide(agent, node.phkt_bu(sequence, COA_2, phkt=key), NOW + 401)
        assert_rejected(newer, S.PHKT_UNAVAILABLE, sequence)
        assert cost == 0
    assert cache_state(agent.cache) == before


@pytest.mark.parametrize(
    ("last", "candidate"),
    [(65535, 0), (65535, 32766), (10, 11), (10, (10 + 32767) % SEQUENCE_MODULUS), (40000, 3)],
)
def test_sequence_newer_modulo_2_16_accepted(
    agent: HomeAgent, node: MobileNode, last: int, candidate: int
) -> None:
    """P5: comparison modulo 2^16, including wrap-around."""
    register(agent, node, last)
    decision, _ = decide(agent, node.phkt_bu(candidate, COA_2))
    assert decision.verdict is Verdict.ACCEPTED


def test_first_bu_accepts_any_sequence_number(node: MobileNode) -> None:
    """P5, RFC 6275 §9.5.1: without a binding (or tombstone) any number is accepted."""
    for sequence in (0, 32768, 65535):
        decision, _ = decide(make_agent(), node.first_bu(sequence, COA_1))
        assert decision.verdict is Verdict.ACCEPTED


def test_135_replay_after_deregistration(agent: HomeAgent, node: MobileNode) -> None:
    """P5, RFC 6275 §10.3.2: the tombstone answers a replayed BU with 135."""
    first_bu = node.first_bu(10, COA_1)
    first = accept(agent, first_bu)
    assert first.reply is not None
    node.learn_phkt(first.reply.packet, COA_1)
    refresh = node.phkt_bu(11, COA_2)
    accept(agent, refresh)
    accept(agent, node.deregistration(12, COA_2))
    before = cache_state(agent.cache)
    for replay in (first_bu, refresh):
        decision, cost = decide(agent, replay, NOW + 60)
        assert_rejected(decision, S.SEQUENCE_OUT_OF_WINDOW, 12)
        assert cost == 0
    assert cache_state(agent.cache) == before
    assert agent.cache.get(node.hoa) is None


def test_135_replay_after_expiry(agent: HomeAgent, node: MobileNode) -> None:
    """P5, RFC 6275 §10.3.1: an expired binding leaves a tombstone too."""
    first_bu = node.first_bu(10, COA_1, 25)  # 100 s
    accept(agent, first_bu)
    for change in agent.expirations(NOW + 100):
        agent.apply(change)
    assert agent.cache.get(node.hoa) is None
    decision, cost = decide(agent, first_bu, NOW + 101)
    assert_rejected(decision, S.SEQUENCE_OUT_OF_WINDOW, 10)
    assert cost == 0


def test_tombstone_older_than_ttl_is_forgotten(node: MobileNode) -> None:
    """P5: once the tombstone TTL has passed, any number is accepted again."""
    agent = make_agent(tombstone_ttl_s=100.0)
    first_bu = node.first_bu(10, COA_1)
    first = accept(agent, first_bu)
    assert first.reply is not None
    node.learn_phkt(first.reply.packet, COA_1)
    accept(agent, node.deregistration(11, COA_1), NOW + 10)
    rejected, _ = decide(agent, first_bu, NOW + 109.9)
    assert rejected.status == S.SEQUENCE_OUT_OF_WINDOW
    # forget_at = NOW + 110: the replayed first BU (number 10 < 11) is accepted.
    decision, _ = decide(agent, first_bu, NOW + 110)
    assert decision.verdict is Verdict.ACCEPTED
    assert decision.change is not None and decision.change.kind is ChangeKind.ADD


# ---------------------------------------------------------------- 148 (P7)


def flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def with_signature(packet: bytes, signature: bytes, **changes: object) -> bytes:
    """Re-encode a captured CGA BU with ``signature`` and body ``changes``."""
    parsed = parse(packet)
    bu = parsed.message
    assert isinstance(bu, mh.BindingUpdate)
    forged = mh.with_options(replace(bu, **changes), signature=signature)  # type: ignore[arg-type]
    return mh.build_packet(
        forged,
        source=parsed.source,
        destination=parsed.destination,
        home_address=parsed.home_address,
    )


def test_148_flipped_signature_byte(agent: HomeAgent, node: MobileNode) -> None:
    """P7 (d): the signature must verify."""
    good = node.first_bu(10, COA_1)
    signature = parse(good).message.options.signature
    assert signature is not None
    decision, cost = decide(agent, with_signature(good, flip(signature, 60)))
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 1  # the verification itself, nothing more
    assert len(agent.cache) == 0


def test_148_flipped_byte_in_signed_mh_data(agent: HomeAgent, node: MobileNode) -> None:
    """P6: the signature covers the MH data (here: the Lifetime field's low bit)."""
    good = node.first_bu(10, COA_1, 100)
    signature = parse(good).message.options.signature
    assert signature is not None
    forged = with_signature(good, signature, lifetime_units=101)
    assert len(parse(forged).mh.raw) == len(parse(good).mh.raw)
    decision, cost = decide(agent, forged)
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 1


def test_148_signature_for_a_different_coa(agent: HomeAgent, node: MobileNode) -> None:
    """P6: CoA is part of the signed message."""
    decision, cost = decide(agent, node.first_bu(10, COA_1, signed_coa=COA_2))
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 1


def test_148_cga_parameters_of_another_address(
    agent: HomeAgent, node: MobileNode, other_node: MobileNode
) -> None:
    """P7 (a), RFC 3972 §5 step 4: Hash1 of the parameters must match the HoA."""
    assert other_node.params.subnet_prefix == node.hoa[:8]
    decision, cost = decide(agent, node.first_bu(10, COA_1, params=other_node.params))
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 0


def test_148_collision_count_above_two(agent: HomeAgent, node: MobileNode) -> None:
    """P7 (c), RFC 3972 §5 step 1: collision count 3 -> 148 without RSA work."""
    params = replace(node.params, collision_count=3)
    decision, cost = decide(agent, node.first_bu(10, COA_1, params=params))
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 0


def test_148_key_below_configured_minimum(node: MobileNode) -> None:
    """P8: the DAR's minimum key size is configurable; a smaller key -> 148, cheaply."""
    agent = make_agent(min_key_bits=1536)
    decision, cost = decide(agent, node.first_bu(10, COA_1))
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 0


def test_148_undecodable_cga_parameters(agent: HomeAgent, node: MobileNode) -> None:
    """P7: CGA Parameters that do not decode cannot verify -> 148."""
    good = node.first_bu(10, COA_1)
    parsed = parse(good)
    bu = mh.with_options(parsed.message, cga_parameters=b"\x00" * 40)
    packet = mh.build_packet(bu, source=COA_1, destination=ANCHOR, home_address=node.hoa)
    decision, cost = decide(agent, packet)
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 0


def test_signed_bu_replayed_from_attacker_coa_never_binds(
    agent: HomeAgent, node: MobileNode
) -> None:
    """P6: the signature covers the CoA, so a captured CGA BU resent from
    another source (checksum fixed) is 148, never a binding to the attacker."""
    captured = node.first_bu(10, COA_1)
    forged = resend(captured, source=ATTACKER)
    decision, cost = decide(agent, forged)
    assert_rejected(decision, S.CGA_SIGNATURE_VERIFICATION_FAILED, 10)
    assert cost == 1
    assert decision.reply is not None and decision.reply.destination == ATTACKER
    assert len(agent.cache) == 0
    # Also once the victim is bound: the replay (with a fresh number the
    # attacker cannot sign) is answered 135 or 148, and the CoA is unchanged.
    accept(agent, captured)
    for packet in (resend(captured, source=ATTACKER), forged):
        again, _ = decide(agent, packet)
        assert again.verdict is Verdict.REJECTED
        assert again.change is None
    binding = agent.cache.get(node.hoa)
    assert binding is not None and binding.coa == COA_1
    assert agent.cache.hoas_for_coa(ATTACKER) == frozenset()


def test_phkt_bu_replayed_from_attacker_coa_is_dropped(agent: HomeAgent, node: MobileNode) -> None:
    """P9, RFC 6275 §9.5.1: the authenticator covers the CoA -> silent drop."""
    register(agent, node, 10)
    captured = node.phkt_bu(11, COA_2)
    decision, _ = decide(agent, resend(captured, source=ATTACKER))
    assert_dropped(decision, DropReason.BAD_AUTHENTICATOR)
    binding = agent.cache.get(node.hoa)
    assert binding is not None and binding.coa == COA_1


# ---------------------------------------------------------------- 137 (P13)


@pytest.fixture
def rr_agent() -> HomeAgent:
    issuer = auth.CareOfTokenIssuer(KDAR, seeded_rng(77), 0.0)
    return make_agent(return_routability=True, token_issuer=issuer)


def care_of_test(agent: HomeAgent, coa: bytes, now: float) -> tuple[int, bytes]:
    decision, cost = decide(agent, coti_packet(coa, b"cookie42"), now)
    assert decision.verdict is Verdict.ACCEPTED and decision.reason == "care_of_test"
    assert cost == 0 and decision.change is None
    reply = decision.reply
    assert reply is not None
    cot = reply.message
    assert isinstance(cot, mh.CareOfTest)
    assert cot.cookie == b"cookie42"
    assert (reply.source, reply.destination, reply.routing_address) == (ANCHOR, coa, None)
    parsed = parse(reply.packet)
    assert parsed.message == cot
    return cot.nonce_index, cot.keygen_token


def test_137_care_of_test_reply(rr_agent: HomeAgent) -> None:
    """P13, RFC 6275 §5.2.5: token = First(64, HMAC_SHA1(Kdar, CoA | nonce | 0x01))."""
    index, token = care_of_test(rr_agent, COA_1, 10.0)
    assert index == 0
    nonce = random.Random(77).randbytes(8)  # the issuer's first nonce
    assert token == hmac.new(KDAR, COA_1 + nonce + b"\x01", hashlib.sha1).digest()[:8]
    assert rr_agent.token_issuer is not None
    assert token == rr_agent.token_issuer.token_for(COA_1, index, 10.0)


def test_137_return_routability_registration(rr_agent: HomeAgent, node: MobileNode) -> None:
    """P13: first CGA BU keyed by SHA1(token); later BUs by SHA1(PHKT | token)."""
    index, token = care_of_test(rr_agent, COA_1, 10.0)
    decision, cost = decide(
        rr_agent, node.first_bu(1, COA_1, care_of_token=token, nonce_index=index), 20.0
    )
    assert decision.verdict is Verdict.ACCEPTED and cost == 2
    assert decision.change is not None
    rr_agent.apply(decision.change)
    assert decision.reply is not None
    node.learn_phkt(decision.reply.packet, COA_1)  # BA keyed by SHA1(new PHKT) (P12)
    assert node.phkt is not None

    index2, token2 = care_of_test(rr_agent, COA_2, 30.0)
    # Kbm = SHA1(PHKT) alone is not enough in this mode.
    plain, _ = decide(rr_agent, node.phkt_bu(2, COA_2, nonce_index=index2), 40.0)
    assert_dropped(plain, DropReason.BAD_AUTHENTICATOR)
    moved, cost = decide(
        rr_agent, node.phkt_bu(2, COA_2, care_of_token=token2, nonce_index=index2), 40.0
    )
    assert moved.verdict is Verdict.ACCEPTED and cost == 0
    assert moved.reply is not None
    assert ba_authenticator_ok(moved.reply.packet, kbm(node.phkt, token2), COA_2)
    assert moved.change is not None
    rr_agent.apply(moved.change)

    # A replay is authenticated first; its 135 is keyed by the same
    # Kbm = SHA1(PHKT | care-of token), never by SHA1(PHKT) alone (P9, P13).
    replayed = node.phkt_bu(2, COA_2, care_of_token=token2, nonce_index=index2)
    again, cost = decide(rr_agent, replayed, 45.0)
    assert_rejected(
        again, S.SEQUENCE_OUT_OF_WINDOW, 2, authorized_by=(kbm(node.phkt, token2), COA_2)
    )
    assert cost == 0
    assert again.reply is not None
    assert not ba_authenticator_ok(again.reply.packet, kbm(node.phkt), COA_2)
    plain_replay, _ = decide(rr_agent, node.phkt_bu(2, COA_2, nonce_index=index2), 45.0)
    assert_dropped(plain_replay, DropReason.BAD_AUTHENTICATOR)

    # RFC 6275 §5.2.5, §9.5.1: a deregistration needs no care-of test.
    gone, _ = decide(rr_agent, node.deregistration(3, COA_3), 50.0)
    assert gone.verdict is Verdict.ACCEPTED
    assert gone.change is not None and gone.change.kind is ChangeKind.DELETE


def test_137_first_bu_without_authorization_data_dropped(
    rr_agent: HomeAgent, node: MobileNode
) -> None:
    """P13: the first CGA BU must also carry authorization data in this mode."""
    index, _ = care_of_test(rr_agent, COA_1, 10.0)
    decision, cost = decide(rr_agent, node.first_bu(1, COA_1, nonce_indices=(0, index)), 20.0)
    assert_dropped(decision, DropReason.MISSING_AUTHORIZATION_DATA)
    assert cost == 0


@pytest.mark.parametrize(
    ("bu_time", "nonce_index"),
    [
        (10.0 + auth.MAX_NONCE_LIFETIME, None),  # expired
        (20.0, 4242),  # unknown
    ],
)
def test_137_expired_or_unknown_nonce_index(
    rr_agent: HomeAgent, node: MobileNode, bu_time: float, nonce_index: int | None
) -> None:
    """P13, RFC 6275 §9.5.1: care-of nonce index not recognized -> 137."""
    index, token = care_of_test(rr_agent, COA_1, 0.0)
    used_index = index if nonce_index is None else nonce_index
    for packet in (
        node.first_bu(7, COA_1, care_of_token=token, nonce_index=used_index),
        node.phkt_bu(7, COA_1, phkt=bytes(8), care_of_token=token, nonce_index=used_index),
    ):
        decision, cost = decide(rr_agent, packet, bu_time)
        assert_rejected(decision, S.EXPIRED_CARE_OF_NONCE_INDEX, 7)
        assert cost == 0


def test_missing_nonce_indices_dropped(rr_agent: HomeAgent, node: MobileNode) -> None:
    """P13: a BU without Nonce Indices in return-routability mode is discarded."""
    _, token = care_of_test(rr_agent, COA_1, 0.0)
    packet = node.first_bu(7, COA_1, auth_key=kbm(None, token))
    decision, cost = decide(rr_agent, packet, 5.0)
    assert_dropped(decision, DropReason.MISSING_NONCE_INDICES)
    assert cost == 0


# ================================================================ silent drops


def test_wrong_authenticator_dropped_without_state_change(
    agent: HomeAgent, node: MobileNode
) -> None:
    """P9, RFC 6275 §9.5.1: a wrong authenticator is silently dropped."""
    register(agent, node, 10)
    before = cache_state(agent.cache)
    for packet in (
        node.phkt_bu(11, COA_2, phkt=bytes(8)),  # wrong key
        node.phkt_bu(11, COA_2, auth_first=COA_1),  # wrong first address
        node.deregistration(11, COA_2, auth_first=COA_2),  # dereg must use the HoA
    ):
        decision, cost = decide(agent, packet)
        assert_dropped(decision, DropReason.BAD_AUTHENTICATOR)
        assert cost == 0
    assert cache_state(agent.cache) == before
    # The sequence number of a dropped BU was not consumed.
    ok, _ = decide(agent, node.phkt_bu(11, COA_2))
    assert ok.verdict is Verdict.ACCEPTED


def test_missing_authorization_data_dropped(agent: HomeAgent, node: MobileNode) -> None:
    """P9, RFC 6275 §9.5.1: a later BU without Binding Authorization Data is discarded."""
    register(agent, node, 10)
    packet = node.binding_update(11, source=COA_2)
    assert parse(packet).message.options.authenticator is None
    decision, cost = decide(agent, packet)
    assert_dropped(decision, DropReason.MISSING_AUTHORIZATION_DATA)
    assert cost == 0


def test_bu_not_addressed_to_anchor_dropped(agent: HomeAgent, node: MobileNode) -> None:
    """P4: BUs go to A_HDAR; anything else is not for the home agent."""
    decision, cost = decide(agent, node.first_bu(10, COA_1, destination=OWN_EXTRA))
    assert_dropped(decision, DropReason.NOT_ADDRESSED_TO_ANCHOR)
    assert cost == 0


INVALID_COAS = {
    "multicast": addr("ff02::1"),
    "global multicast": addr("ff0e::1234"),
    "link-local": addr("fe80::1"),
    "link-local upper": addr("febf::1"),
    "unspecified": addr("::"),
    "loopback": addr("::1"),
    "ipv4-mapped": addr("::ffff:192.0.2.1"),
}


@pytest.mark.parametrize("coa", INVALID_COAS.values(), ids=INVALID_COAS.keys())
@pytest.mark.parametrize("via", ["source", "alternate_coa"])
def test_invalid_care_of_address_dropped(
    agent: HomeAgent, node: MobileNode, coa: bytes, via: str
) -> None:
    """RFC 6275 §9.5.1 / §9.3.1: the CoA must be a unicast routable address.

    As the IPv6 source it is refused first, for the source itself (§9.5.4:
    no BA to a non-unicast source); as an Alternate CoA it is an invalid CoA.
    """
    if via == "source":
        packet = node.first_bu(10, coa)
        expected = DropReason.SOURCE_NOT_UNICAST
    else:
        packet = node.first_bu(10, COA_1, alternate_coa=coa)
        expected = DropReason.CARE_OF_ADDRESS_INVALID
    decision, cost = decide(agent, packet)
    assert_dropped(decision, expected)
    assert cost == 0


@pytest.mark.parametrize("coa", [ANCHOR, OWN_EXTRA], ids=["anchor", "other own address"])
def test_own_address_as_coa_dropped(agent: HomeAgent, node: MobileNode, coa: bytes) -> None:
    """P1: an address of the DAR itself can never be a care-of address."""
    assert coa in agent.config.own_addresses
    decision, cost = decide(agent, node.first_bu(10, coa))
    assert_dropped(decision, DropReason.CARE_OF_ADDRESS_IS_OWN)
    assert cost == 0


def test_coa_that_is_another_bound_hoa_dropped(
    agent: HomeAgent, node: MobileNode, other_node: MobileNode
) -> None:
    """A CoA equal to another MN's bound HoA would loop or hijack its traffic."""
    register(agent, other_node, 1, COA_2)
    decision, cost = decide(agent, node.first_bu(10, other_node.hoa))
    assert_dropped(decision, DropReason.CARE_OF_ADDRESS_IS_HOME_ADDRESS)
    assert cost == 0
    # Also for a refresh of an existing binding.
    register(agent, node, 10)
    refresh, _ = decide(agent, node.phkt_bu(11, other_node.hoa))
    assert_dropped(refresh, DropReason.CARE_OF_ADDRESS_IS_HOME_ADDRESS)


@pytest.mark.parametrize(
    "hoa",
    [addr("ff02::1"), addr("fe80::1"), addr("::"), addr("::1"), addr("::ffff:10.0.0.1")],
    ids=["multicast", "link-local", "unspecified", "loopback", "ipv4-mapped"],
)
def test_home_address_not_unicast_dropped(agent: HomeAgent, hoa: bytes) -> None:
    """RFC 6275 §9.5.1: the HoA must be a unicast routable address."""
    node = replace(MobileNode.create(seed=33), hoa=hoa)
    decision, cost = decide(agent, node.phkt_bu(10, COA_1, phkt=bytes(8)))
    assert_dropped(decision, DropReason.HOME_ADDRESS_NOT_UNICAST)
    assert cost == 0


def test_care_of_test_init_without_return_routability_dropped(agent: HomeAgent) -> None:
    """P13: a DAR that requires no care-of test ignores Care-of Test Inits."""
    decision, cost = decide(agent, coti_packet(COA_1))
    assert_dropped(decision, DropReason.RETURN_ROUTABILITY_DISABLED)
    assert cost == 0


def test_care_of_test_init_from_invalid_address_dropped(rr_agent: HomeAgent) -> None:
    """P13: a care-of test is only run for a unicast routable CoA."""
    decision, _ = decide(rr_agent, coti_packet(addr("ff02::1")), 1.0)
    assert_dropped(decision, DropReason.CARE_OF_ADDRESS_INVALID)


@pytest.mark.parametrize(
    "message",
    [
        mh.BindingAck(0, 1, 10),
        mh.BindingError(1, addr("2001:db8:a::77")),
        mh.CareOfTest(0, b"cookie!!", b"token!!!"),
    ],
    ids=["BA", "BE", "CoT"],
)
def test_messages_a_dar_never_receives_are_dropped(
    agent: HomeAgent, message: mh.MobilityMessage
) -> None:
    """P12, P13: BA, BE and CoT flow from the DAR, never to it."""
    packet = mh.build_packet(message, source=COA_1, destination=ANCHOR)
    decision, cost = decide(agent, packet)
    assert_dropped(decision, DropReason.UNEXPECTED_MESSAGE)
    assert cost == 0


# ================================================================ RSA cost (P7, P8)


def test_cheap_rejections_cost_no_rsa_operation(node: MobileNode, other_node: MobileNode) -> None:
    """P7/P8 design: every check runs before the signature, so forged or
    unlucky BUs never cost RSA work (129, 130, 132, 133, 135, 139, 147, cheap 148, drops)."""
    foreign = MobileNode.create(PREFIX_FOREIGN, seed=7)
    full = make_agent(binding_limit=1)
    register(full, other_node, 1, COA_2)
    bound = make_agent()
    register(bound, node, 10)
    fresh = make_agent()
    cases: list[tuple[HomeAgent, bytes]] = [
        (fresh, node.first_bu(1, COA_1, home_registration=False)),  # 129
        (full, node.first_bu(1, COA_1)),  # 130
        (fresh, foreign.first_bu(1, COA_1)),  # 132
        (fresh, node.first_bu(1, COA_1, params=replace(node.params, subnet_prefix=PREFIX_HOME_2))),
        (fresh, node.deregistration(1, COA_1, phkt=bytes(8))),  # 133
        (bound, node.first_bu(10, COA_2)),  # 135
        (bound, node.first_bu(11, COA_2, home_registration=False)),  # 139
        (fresh, node.phkt_bu(1, COA_1, phkt=bytes(8))),  # 147
        (fresh, node.first_bu(1, COA_1, params=replace(node.params, collision_count=3))),
        (fresh, node.first_bu(1, COA_1, params=other_node.params)),  # 148 Hash1
        (make_agent(min_key_bits=1536), node.first_bu(1, COA_1)),  # 148 key size
        (bound, node.phkt_bu(11, COA_2, phkt=bytes(8))),  # drop: authenticator
        (bound, node.binding_update(11, source=COA_2)),  # drop: no authorization data
        (fresh, node.first_bu(1, COA_1, destination=OWN_EXTRA)),  # drop: not to anchor
        (fresh, node.first_bu(1, addr("ff02::1"))),  # drop: source not unicast
        (fresh, node.first_bu(1, COA_1, alternate_coa=addr("ff02::1"))),  # drop: CoA
        (fresh, node.first_bu(1, ANCHOR)),  # drop: own CoA
        (fresh, coti_packet(COA_1)),  # drop: RR disabled
    ]
    statuses = []
    for agent, packet in cases:
        decision, cost = decide(agent, packet)
        assert decision.verdict is not Verdict.ACCEPTED
        assert (decision.rsa_operations, cost) == (0, 0), decision.reason
        statuses.append(decision.status)
    assert set(statuses) >= {129, 130, 132, 133, 135, 139, 147, 148, None}


def test_accepted_cga_bu_costs_two_rsa_operations(agent: HomeAgent, node: MobileNode) -> None:
    """P7 (d) + P12: one signature verification, one PHKT encryption."""
    packet = parse(node.first_bu(10, COA_1))
    before = auth.RSA_OPERATIONS.snapshot()
    decision = agent.handle(packet, NOW)
    after = auth.RSA_OPERATIONS.snapshot()
    assert decision.rsa_operations == 2
    delta = {kind: after[kind] - before[kind] for kind in after}
    assert delta == {"sign": 0, "verify": 1, "encrypt": 1, "decrypt": 0}


# ================================================================ lifetime (P12, §10.3.1)


@pytest.mark.parametrize(
    ("max_lifetime_s", "requested_units", "granted_units"),
    [
        (3600, 100, 100),  # requested below the maximum
        (3600, 0xFFFF, 900),  # configured maximum
        (1000, 0xFFFF, 250),
        (1001, 0xFFFF, 250),  # floored to 4 s units
        (1003, 300, 250),
        (MAX_CGA_BINDING_LIFETIME_S, 0xFFFF, 21600),  # MAX_CGA_BINDING_LIFETIME
        (MAX_CGA_BINDING_LIFETIME_S, 21601, 21600),
        (MAX_CGA_BINDING_LIFETIME_S, 1, 1),
    ],
)
def test_lifetime_clamping(
    node: MobileNode, max_lifetime_s: int, requested_units: int, granted_units: int
) -> None:
    """P12, RFC 6275 §10.3.1: granted = min(requested, configured max, 86400) in 4 s units."""
    agent = make_agent(max_lifetime_s=max_lifetime_s)
    first = register(agent, node, 10, now=NOW)
    refresh, _ = decide(agent, node.phkt_bu(11, COA_2, requested_units), NOW + 7.5)
    cga_bu, _ = decide(
        make_agent(max_lifetime_s=max_lifetime_s), node.first_bu(1, COA_1, requested_units)
    )
    assert first.change is not None
    for decision, now in ((refresh, NOW + 7.5), (cga_bu, NOW)):
        assert decision.verdict is Verdict.ACCEPTED
        assert decision.change is not None and decision.change.binding is not None
        binding = decision.change.binding
        assert binding.lifetime_s == granted_units * 4
        assert binding.registered_at == now
        assert binding.expires_at == now + granted_units * 4
        assert decision.reply is not None
        ba = decision.reply.message
        assert isinstance(ba, mh.BindingAck) and ba.lifetime_units == granted_units


def test_expirations_only_for_bindings_past_expiry(
    agent: HomeAgent, node: MobileNode, other_node: MobileNode
) -> None:
    """RFC 6275 §10.3.1: an entry is deleted once its lifetime runs out."""
    register(agent, node, 10, COA_1, now=NOW)  # 400 s
    last_bu = other_node.first_bu(20, COA_2, 50)  # 200 s
    accept(agent, last_bu, NOW + 10)
    assert agent.cache.next_expiry() == NOW + 210
    assert agent.expirations(NOW + 209.9) == []
    due = agent.expirations(NOW + 210)
    assert [(c.kind, c.hoa, c.cause) for c in due] == [
        (ChangeKind.DELETE, other_node.hoa, RemovalCause.EXPIRED)
    ]
    assert len(agent.cache) == 2  # not applied yet
    for change in due:
        agent.apply(change)
    assert agent.cache.get(other_node.hoa) is None
    assert agent.cache.get(node.hoa) is not None
    # The tombstone keeps the last accepted number (P5).
    replay, cost = decide(agent, last_bu, NOW + 211)
    assert_rejected(replay, S.SEQUENCE_OUT_OF_WINDOW, 20)
    assert cost == 0
    assert {c.hoa for c in agent.expirations(NOW + 400)} == {node.hoa}


def test_revocation(agent: HomeAgent, node: MobileNode) -> None:
    """Administrative removal leaves a tombstone with cause REVOKED."""
    assert agent.revocation(node.hoa, NOW) is None
    register(agent, node, 10)
    change = agent.revocation(node.hoa, NOW + 1)
    assert change is not None and change.cause is RemovalCause.REVOKED
    assert agent.cache.get(node.hoa) is not None
    agent.apply(change)
    assert agent.cache.last_sequence(node.hoa, NOW + 2) == 10


# ================================================================ P10 PHKT renewal


def test_cga_bu_with_binding_renews_phkt(agent: HomeAgent, node: MobileNode) -> None:
    """P10, RFC 4866 §4.9: a CGA BU while a PHKT exists issues a new PHKT."""
    register(agent, node, 10, COA_1)
    old_phkt = node.phkt
    assert old_phkt is not None
    decision, cost = decide(agent, node.first_bu(11, COA_2))
    assert decision.verdict is Verdict.ACCEPTED and cost == 2
    assert decision.phkt_issued
    assert decision.change is not None and decision.change.kind is ChangeKind.UPDATE
    agent.apply(decision.change)
    assert decision.reply is not None
    new_phkt = node.learn_phkt(decision.reply.packet, COA_2)
    assert new_phkt != old_phkt
    binding = agent.cache.get(node.hoa)
    assert binding is not None and binding.phkt == new_phkt

    stale, _ = decide(agent, node.phkt_bu(12, COA_3, phkt=old_phkt))
    assert_dropped(stale, DropReason.BAD_AUTHENTICATOR)
    fresh, _ = decide(agent, node.phkt_bu(12, COA_3, phkt=new_phkt))
    assert fresh.verdict is Verdict.ACCEPTED


# ================================================================ purity (P12)


def test_decisions_do_not_mutate_the_cache(
    agent: HomeAgent, node: MobileNode, other_node: MobileNode
) -> None:
    """P12: the caller persists, then applies; deciding alone changes nothing.

    This includes reading an expired tombstone: it is ignored, not deleted
    (forgetting is explicit, via ``forget_old_tombstones``).
    """
    expired_node = MobileNode.create(seed=44)
    # A binding removed long ago: its tombstone is past forget_at at NOW + 1.
    old_time = NOW - TOMBSTONE_TTL - 100
    register(agent, expired_node, 30, COA_2, now=old_time)
    accept(agent, expired_node.deregistration(31, COA_2), old_time + 1)
    register(agent, node, 10)
    register(agent, other_node, 5, COA_3)
    accept(agent, other_node.deregistration(6, COA_3))  # leaves a live tombstone
    stones = {stone.hoa: stone for stone in agent.cache.tombstones()}
    assert set(stones) == {expired_node.hoa, other_node.hoa}
    assert stones[expired_node.hoa].forget_at < NOW + 1 < stones[other_node.hoa].forget_at
    before = cache_state(agent.cache)
    packets = [
        node.phkt_bu(11, COA_2),  # UPDATE
        node.deregistration(11, COA_2),  # DELETE
        node.phkt_bu(9, COA_2),  # 135 (authorized)
        other_node.phkt_bu(7, COA_1),  # 147
        other_node.phkt_bu(4, COA_1),  # 135 from the tombstone
        expired_node.phkt_bu(20, COA_1),  # 147: the expired tombstone is ignored
        expired_node.phkt_bu(32, COA_1),  # 147
        node.phkt_bu(11, COA_2, phkt=bytes(8)),  # drop
        node.phkt_bu(9, COA_2, phkt=bytes(8)),  # drop, stale number
    ]
    for packet in packets:
        first, _ = decide(agent, packet, NOW + 1)
        second, _ = decide(agent, packet, NOW + 1)
        assert first == second
        assert cache_state(agent.cache) == before
    # A CGA BU draws a fresh PHKT each time, but the described change is the same;
    # an older number than the expired tombstone's is accepted, which reads it.
    fresh_node = MobileNode.create(seed=55)
    for cga_packet in (fresh_node.first_bu(1, COA_1), expired_node.first_bu(1, COA_1)):
        one, _ = decide(agent, cga_packet, NOW + 1)
        two, _ = decide(agent, cga_packet, NOW + 1)
        assert one.verdict is two.verdict is Verdict.ACCEPTED
        assert one.change is not None and two.change is not None
        assert one.change.kind is ChangeKind.ADD
        assert replace(one.change.binding, phkt=b"") == replace(two.change.binding, phkt=b"")  # type: ignore[type-var]
        assert cache_state(agent.cache) == before
    # The expired tombstone is still there until it is explicitly forgotten.
    assert expired_node.hoa in {stone.hoa for stone in agent.cache.tombstones()}
    assert agent.cache.forget_old_tombstones(NOW + 1) == 1
    assert {stone.hoa for stone in agent.cache.tombstones()} == {other_node.hoa}


# ================================================================ configuration


def test_config_adds_anchor_to_own_addresses() -> None:
    """P1: the anchor address is always one of the DAR's own addresses."""
    config = HomeAgentConfig("d", ANCHOR, (PREFIX_HOME,))
    assert config.own_addresses == frozenset({ANCHOR})
    assert config.max_lifetime_s == 3600 and not config.return_routability


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"anchor_address": addr("2001:db8:a2::1")}, "first access prefix"),  # in 2nd prefix
        ({"anchor_address": addr("2001:db8:c::1")}, "first access prefix"),
        ({"anchor_address": ANCHOR[:15]}, "16 bytes"),
        ({"home_prefixes": ()}, "8-byte"),
        ({"home_prefixes": (ANCHOR[:7],)}, "8-byte"),
        ({"home_prefixes": (PREFIX_HOME, ANCHOR[:12])}, "8-byte"),
        ({"max_lifetime_s": 0}, "max lifetime"),
        ({"max_lifetime_s": -4}, "max lifetime"),
        ({"max_lifetime_s": 1}, "max lifetime"),  # below one 4 s unit
        ({"max_lifetime_s": 3}, "max lifetime"),
        ({"max_lifetime_s": MAX_CGA_BINDING_LIFETIME_S + 1}, "max lifetime"),
        ({"min_key_bits": 1023}, "key sizes"),  # P8: 1024..2040
        ({"max_key_bits": 2041}, "key sizes"),
        ({"min_key_bits": 2040, "max_key_bits": 1024}, "key sizes"),  # min > max
        ({"min_key_bits": 1537, "max_key_bits": 1536}, "key sizes"),
        ({"max_key_bits": 1023}, "key sizes"),  # below the default minimum
        ({"min_key_bits": 2048}, "key sizes"),  # above the default maximum
    ],
)
def test_config_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config(**changes)


@pytest.mark.parametrize("max_lifetime_s", [4, 5, MAX_CGA_BINDING_LIFETIME_S])
def test_config_max_lifetime_bounds_accepted(max_lifetime_s: int) -> None:
    """P12: from one 4 s lifetime unit up to MAX_CGA_BINDING_LIFETIME."""
    assert make_config(max_lifetime_s=max_lifetime_s).max_lifetime_s == max_lifetime_s


@pytest.mark.parametrize(
    ("min_key_bits", "max_key_bits"),
    [(1024, 2040), (1024, 1024), (2040, 2040), (1536, 1536), (1280, 1792)],
)
def test_config_key_size_bounds_accepted(min_key_bits: int, max_key_bits: int) -> None:
    """P8: any 1024 <= min <= max <= 2040 is a valid key-size policy."""
    config = make_config(min_key_bits=min_key_bits, max_key_bits=max_key_bits)
    assert (config.min_key_bits, config.max_key_bits) == (min_key_bits, max_key_bits)


def test_config_min_key_bits_above_max_rejected() -> None:
    """P8: a minimum above the maximum would refuse every key; it is refused instead."""
    make_config(min_key_bits=1536, max_key_bits=1536)
    with pytest.raises(ValueError, match="key sizes"):
        make_config(min_key_bits=1536, max_key_bits=1535)
    with pytest.raises(ValueError, match="key sizes"):
        HomeAgentConfig("d", ANCHOR, (PREFIX_HOME,), min_key_bits=2040, max_key_bits=1024)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001:db8::1", True),
        ("fd00::1", True),  # unique local
        ("fec0::1", True),  # deprecated site-local is not excluded
        ("fe7f:ffff::1", True),  # just below fe80::/10
        ("fec0::", True),  # just above fe80::/10
        ("::2:0:0:1", True),  # neither ::/96 nor ::ffff:0:0/96
        ("64:ff9b::192.0.2.1", True),
        ("::", False),  # unspecified
        ("::1", False),  # loopback
        ("::192.0.2.1", False),  # IPv4-compatible (deprecated)
        ("::ffff:192.0.2.1", False),  # IPv4-mapped
        ("fe80::1", False),  # link-local
        ("febf:ffff::1", False),  # top of fe80::/10
        ("ff02::1", False),  # multicast
        ("ff0e::101", False),
        ("ffff::", False),
    ],
)
def test_is_unicast_routable(text: str, expected: bool) -> None:
    """RFC 6275 §9.3.1 / §9.5.1: HoA and CoA must be unicast routable."""
    assert is_unicast_routable(addr(text)) is expected


@pytest.mark.parametrize("length", [0, 4, 15, 17])
def test_is_unicast_routable_wrong_length(length: int) -> None:
    assert not is_unicast_routable(bytes([0x20]) * length)


# ================================================================ properties (P5)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 65535))
def test_sequence_is_newer_trichotomy(a: int, b: int) -> None:
    """P5, RFC 6275 §9.5.1: exactly one of a>b, b>a, a==b, or a and b are 2^15 apart."""
    outcomes = [
        sequence_is_newer(a, b),
        sequence_is_newer(b, a),
        a == b,
        (a - b) % SEQUENCE_MODULUS == 32768,
    ]
    assert outcomes.count(True) == 1
    assert sequence_is_newer((a + 1) % SEQUENCE_MODULUS, a)
    assert not sequence_is_newer(a, a)


def test_sequence_is_newer_rfc_example() -> None:
    """RFC 6275 §9.5.1: after 15, numbers 0..15 and 32783..65535 are not greater."""
    not_greater = set(range(16)) | set(range(32783, 65536))
    for candidate in range(65536):
        assert sequence_is_newer(candidate, 15) is (candidate not in not_greater)


@pytest.fixture(scope="module")
def bound_template(sec1_node_template: MobileNode) -> tuple[MobileNode, object]:
    """One accepted CGA BU (RSA done once); property examples reuse its binding."""
    node = replace(sec1_node_template, phkt=None)
    agent = make_agent()
    decision = accept(agent, node.first_bu(0, COA_1))
    assert decision.reply is not None
    node.learn_phkt(decision.reply.packet, COA_1)
    assert decision.change is not None
    return node, decision.change.binding


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(0, 65535),
    steps=st.lists(st.integers(1, 8192), min_size=1, max_size=4),
    back=st.integers(0, 32768),
)
def test_increasing_sequence_accepted_and_replays_rejected(
    bound_template: tuple[MobileNode, object], start: int, steps: list[int], back: int
) -> None:
    """P5: strictly increasing numbers (mod 2^16) are accepted; every replay,
    and any number within 32768 behind the last, gets 135 with the last number.

    The steps add up to at most 32768, so every earlier BU is still in the
    window: a BU more than 2^15 numbers old looks newer again (RFC 6275
    §9.5.1 arithmetic), which no home agent can tell from a fresh one.
    """
    node, template = bound_template
    agent = make_agent()
    agent.apply(agent.cache.registration(replace(template, sequence=start)))  # type: ignore[type-var]
    assert node.phkt is not None
    key = kbm(node.phkt)
    sent: list[tuple[bytes, bytes]] = []
    sequence = start
    now = NOW
    for step in steps:
        sequence = (sequence + step) % SEQUENCE_MODULUS
        now += 1.0
        coa = COA_2 if len(sent) % 2 else COA_3
        packet = node.phkt_bu(sequence, coa)
        decision, _ = decide(agent, packet, now)
        assert decision.verdict is Verdict.ACCEPTED
        assert decision.change is not None
        agent.apply(decision.change)
        sent.append((packet, coa))
        for replay, replay_coa in sent:
            again, cost = decide(agent, replay, now)
            # Authenticated first, so the 135 is authorized over the replay's CoA (P9).
            assert_rejected(
                again, S.SEQUENCE_OUT_OF_WINDOW, sequence, authorized_by=(key, replay_coa)
            )
            assert cost == 0
    behind = (sequence - back) % SEQUENCE_MODULUS
    late, _ = decide(agent, node.phkt_bu(behind, COA_1), now)
    assert_rejected(late, S.SEQUENCE_OUT_OF_WINDOW, sequence, authorized_by=(key, COA_1))
    binding = agent.cache.get(node.hoa)
    assert binding is not None and binding.sequence == sequence


# ================================================================ regressions (fixed bugs)


def test_accepted_home_registration_always_acknowledged(agent: HomeAgent, node: MobileNode) -> None:
    """RFC 6275 §10.3.1: 'Regardless of the setting of the Acknowledge (A) bit
    in the Binding Update, the home agent MUST return a Binding Acknowledgement'
    (and §10.3.2 for deregistrations).  Without it the MN never learns the
    PHKT the binding now holds (P12)."""
    packet = node.first_bu(10, COA_1, ack=False)
    sent_bu = parse(packet).message
    assert isinstance(sent_bu, mh.BindingUpdate) and not sent_bu.ack
    decision, _ = decide(agent, packet)
    assert decision.verdict is Verdict.ACCEPTED and decision.phkt_issued
    assert decision.reply is not None
    ba = decision.reply.message
    assert isinstance(ba, mh.BindingAck)
    assert (ba.status, ba.sequence, ba.lifetime_units) == (0, 10, DEFAULT_LIFETIME_UNITS)
    assert ba.options.permanent_home_keygen_token is not None
    assert decision.change is not None
    agent.apply(decision.change)
    node.learn_phkt(decision.reply.packet, COA_1)  # the PHKT reaches the MN
    assert node.phkt is not None

    # A PHKT refresh and a deregistration with A=0 are acknowledged too.
    refresh, _ = decide(agent, node.phkt_bu(11, COA_2, ack=False))
    assert refresh.verdict is Verdict.ACCEPTED
    assert refresh.reply is not None and refresh.reply.destination == COA_2
    assert isinstance(refresh.reply.message, mh.BindingAck)
    assert refresh.reply.message.status == 0 and refresh.reply.message.sequence == 11
    assert ba_authenticator_ok(refresh.reply.packet, kbm(node.phkt), COA_2)
    assert refresh.change is not None
    agent.apply(refresh.change)
    gone, _ = decide(agent, node.deregistration(12, COA_2, ack=False))
    assert gone.verdict is Verdict.ACCEPTED
    assert gone.change is not None and gone.change.kind is ChangeKind.DELETE
    assert gone.reply is not None
    assert isinstance(gone.reply.message, mh.BindingAck)
    assert (gone.reply.message.status, gone.reply.message.lifetime_units) == (0, 0)
    assert ba_authenticator_ok(gone.reply.packet, kbm(node.phkt), node.hoa)


NON_UNICAST_SOURCES = {
    "multicast": addr("ff02::1"),
    "link-local": addr("fe80::1"),
    "unspecified": addr("::"),
    "loopback": addr("::1"),
    "ipv4-mapped": addr("::ffff:192.0.2.1"),
}


@pytest.mark.parametrize("source", NON_UNICAST_SOURCES.values(), ids=NON_UNICAST_SOURCES.keys())
@pytest.mark.parametrize(
    "kind", ["deregistration", "alternate_coa", "alternate_coa_own", "refresh", "first_bu"]
)
def test_bu_from_non_unicast_source_dropped(
    agent: HomeAgent, node: MobileNode, source: bytes, kind: str
) -> None:
    """RFC 6275 §9.5.4: 'If the Source Address field of the IPv6 header that
    carried the Binding Update does not contain a unicast address, the Binding
    Acknowledgement MUST NOT be sent and the Binding Update packet MUST be
    silently discarded.'  Deregistrations skip the CoA check and the Alternate
    CoA option replaces the source in it, so the source is checked on its own,
    before any CoA check, whatever the BU (even a correctly authenticated one)."""
    register(agent, node, 10)
    before = cache_state(agent.cache)
    if kind == "deregistration":
        packet = node.deregistration(11, source)
    elif kind == "alternate_coa":
        packet = node.phkt_bu(11, source, alternate_coa=COA_2)
    elif kind == "alternate_coa_own":  # an invalid CoA too, but the source comes first
        packet = node.phkt_bu(11, source, alternate_coa=ANCHOR)
    elif kind == "refresh":
        packet = node.phkt_bu(11, source)
    else:
        packet = node.first_bu(11, source)
    decision, cost = decide(agent, packet)
    assert_dropped(decision, DropReason.SOURCE_NOT_UNICAST)
    assert cost == 0
    assert cache_state(agent.cache) == before


@pytest.mark.parametrize("max_lifetime_s", [1, 2, 3])
def test_registration_never_granted_zero_lifetime(node: MobileNode, max_lifetime_s: int) -> None:
    """P12 / RFC 6275 §6.1.8: a BA with lifetime 0 answers a deregistration; an
    accepted registration must be granted at least one 4 s unit.  So the
    configuration refuses a maximum below 4 s, and the smallest allowed
    maximum grants exactly one unit."""
    with pytest.raises(ValueError, match="max lifetime must be 4..86400 s"):
        make_agent(max_lifetime_s=max_lifetime_s)
    agent = make_agent(max_lifetime_s=4)
    decision, _ = decide(agent, node.first_bu(10, COA_1, 100))
    assert decision.verdict is Verdict.ACCEPTED
    assert decision.change is not None and decision.change.binding is not None
    assert decision.change.binding.lifetime_s == 4
    assert decision.reply is not None
    assert isinstance(decision.reply.message, mh.BindingAck)
    assert decision.reply.message.lifetime_units == 1


def test_return_routability_without_issuer_refused_at_construction() -> None:
    """P13: return-routability mode needs a care-of token issuer, so
    HomeAgent(config with return_routability=True, token_issuer=None) is
    refused when built, never left to fail on the first BU."""
    with pytest.raises(ValueError, match="needs a care-of token issuer"):
        make_agent(return_routability=True)
    with pytest.raises(ValueError, match="needs a care-of token issuer"):
        HomeAgent(make_config(return_routability=True), seeded_rng(1))
    issuer = auth.CareOfTokenIssuer(KDAR, seeded_rng(77), 0.0)
    agent = make_agent(return_routability=True, token_issuer=issuer)
    assert agent.token_issuer is issuer


class RecordingTokenIssuer(auth.CareOfTokenIssuer):
    """A care-of token issuer that records every use."""

    def __init__(self) -> None:
        super().__init__(KDAR, seeded_rng(77), 0.0)
        self.calls: list[str] = []

    def issue(self, coa: bytes, now: float) -> tuple[int, bytes]:
        self.calls.append("issue")
        return super().issue(coa, now)

    def token_for(self, coa: bytes, nonce_index: int, now: float) -> bytes | None:
        self.calls.append("token_for")
        return super().token_for(coa, nonce_index, now)


def test_token_issuer_ignored_without_return_routability(node: MobileNode) -> None:
    """P13: a DAR configured without return routability requires no care-of
    test even when it was handed a token issuer: CoTIs are dropped, BUs need
    no Nonce Indices, and Kbm = SHA1(PHKT) with no care-of token mixed in."""
    issuer = RecordingTokenIssuer()
    agent = make_agent(token_issuer=issuer)
    assert not agent.config.return_routability

    coti, cost = decide(agent, coti_packet(COA_1), 10.0)
    assert_dropped(coti, DropReason.RETURN_ROUTABILITY_DISABLED)
    assert cost == 0

    first = node.first_bu(10, COA_1)
    assert parse(first).message.options.nonce_indices is None
    assert parse(first).message.options.authenticator is None
    registered = accept(agent, first, 20.0)
    assert registered.reply is not None
    node.learn_phkt(registered.reply.packet, COA_1)  # BA keyed by SHA1(PHKT) alone
    assert node.phkt is not None

    # A token the issuer could have handed out is not part of Kbm here.
    _, token = auth.CareOfTokenIssuer(KDAR, seeded_rng(77), 0.0).issue(COA_2, 30.0)
    with_token, _ = decide(agent, node.phkt_bu(11, COA_2, care_of_token=token, nonce_index=0), 40.0)
    assert_dropped(with_token, DropReason.BAD_AUTHENTICATOR)
    moved, cost = decide(agent, node.phkt_bu(11, COA_2), 40.0)
    assert moved.verdict is Verdict.ACCEPTED and cost == 0
    assert moved.reply is not None
    assert ba_authenticator_ok(moved.reply.packet, kbm(node.phkt), COA_2)
    assert issuer.calls == []
