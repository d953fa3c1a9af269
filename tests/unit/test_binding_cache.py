"""Unit tests for fama_ryu.binding_cache: bindings, CoA index, tombstones (P5, P11, P15)."""

from __future__ import annotations

import ipaddress
import pickle
from dataclasses import astuple, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fama_ryu.binding_cache import (
    DEFAULT_TOMBSTONE_TTL_S,
    Binding,
    BindingCache,
    BindingChange,
    ChangeKind,
    RemovalCause,
    Tombstone,
    registered_binding,
)


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


HOA_1 = addr("2001:db8:a::11")
HOA_2 = addr("2001:db8:a::22")
HOA_3 = addr("2001:db8:a::33")
COA_1 = addr("2001:db8:b::100")
COA_2 = addr("2001:db8:b::200")
PHKT = bytes.fromhex("0123456789abcdef")
KEY_HASH = bytes(range(16))


def binding(
    hoa: bytes = HOA_1,
    coa: bytes = COA_1,
    *,
    sequence: int = 7,
    now: float = 100.0,
    lifetime_s: int = 400,
    phkt: bytes = PHKT,
) -> Binding:
    return Binding(
        hoa=hoa,
        coa=coa,
        sequence=sequence,
        lifetime_s=lifetime_s,
        registered_at=now,
        expires_at=now + lifetime_s,
        key_hash=KEY_HASH,
        phkt=phkt,
    )


def add(cache: BindingCache, new: Binding) -> BindingChange:
    change = cache.registration(new)
    cache.apply(change)
    return change


# --- apply / get / iteration ---------------------------------------------------------


def test_empty_cache() -> None:
    cache = BindingCache()
    assert len(cache) == 0
    assert list(cache) == []
    assert cache.get(HOA_1) is None
    assert cache.last_sequence(HOA_1, 0.0) is None
    assert cache.tombstones() == []
    assert cache.next_expiry() is None
    assert cache.expirations(1e12) == []
    assert cache.hoas_for_coa(COA_1) == frozenset()
    assert cache.tombstone_ttl_s == DEFAULT_TOMBSTONE_TTL_S == 86400.0


def test_registration_describes_add_then_update_without_applying() -> None:
    cache = BindingCache()
    first = binding()
    change = cache.registration(first)
    assert change == BindingChange(ChangeKind.ADD, HOA_1, binding=first, previous=None)
    assert len(cache) == 0  # only described, not applied
    cache.apply(change)
    assert cache.get(HOA_1) == first
    assert len(cache) == 1
    assert cache.is_bound_home_address(HOA_1)
    assert not cache.is_bound_home_address(COA_1)
    assert cache.last_sequence(HOA_1, 0.0) == 7

    moved = binding(coa=COA_2, sequence=8)
    update = cache.registration(moved)
    assert update.kind is ChangeKind.UPDATE
    assert update.previous == first and update.binding == moved
    assert cache.get(HOA_1) == first  # still not applied
    cache.apply(update)
    assert cache.get(HOA_1) == moved
    assert len(cache) == 1


def test_iteration_is_a_snapshot() -> None:
    cache = BindingCache()
    one, two = binding(HOA_1), binding(HOA_2, COA_2)
    add(cache, one)
    add(cache, two)
    assert sorted(b.hoa for b in cache) == sorted([HOA_1, HOA_2])
    # Removing while iterating is safe: __iter__ copies the values.
    for entry in cache:
        cache.apply(cache.removal(entry.hoa, 200.0, RemovalCause.REVOKED))
    assert len(cache) == 0


# --- CoA index (P15: uplink decapsulation needs HoAs bound to a CoA) -------------------


def test_coa_index_follows_add_update_delete() -> None:
    cache = BindingCache()
    add(cache, binding(HOA_1, COA_1))
    add(cache, binding(HOA_2, COA_1))
    assert cache.hoas_for_coa(COA_1) == {HOA_1, HOA_2}
    assert cache.hoas_for_coa(COA_2) == frozenset()

    add(cache, binding(HOA_1, COA_2, sequence=8))  # HOA_1 moves
    assert cache.hoas_for_coa(COA_1) == {HOA_2}
    assert cache.hoas_for_coa(COA_2) == {HOA_1}

    cache.apply(cache.removal(HOA_2, 150.0, RemovalCause.DEREGISTERED, 9))
    assert cache.hoas_for_coa(COA_1) == frozenset()
    assert COA_1 not in cache._coa_to_hoas  # empty sets are not kept
    assert cache.hoas_for_coa(COA_2) == {HOA_1}

    add(cache, binding(HOA_1, COA_2, sequence=9))  # refresh on the same CoA
    assert cache.hoas_for_coa(COA_2) == {HOA_1}


def test_hoas_for_coa_returns_an_immutable_copy() -> None:
    cache = BindingCache()
    add(cache, binding(HOA_1, COA_1))
    result = cache.hoas_for_coa(COA_1)
    assert isinstance(result, frozenset)
    add(cache, binding(HOA_2, COA_1))
    assert result == {HOA_1}


# --- removal and tombstones (P5, P11, RFC 6275 §10.3.2) --------------------------------


def test_removal_leaves_tombstone_with_deregistration_sequence() -> None:
    cache = BindingCache(tombstone_ttl_s=60.0)
    current = binding(sequence=7)
    add(cache, current)
    change = cache.removal(HOA_1, 200.0, RemovalCause.DEREGISTERED, sequence=8)
    assert change.kind is ChangeKind.DELETE
    assert change.previous == current and change.binding is None
    assert change.cause is RemovalCause.DEREGISTERED
    assert change.tombstone == Tombstone(HOA_1, 8, KEY_HASH, removed_at=200.0, forget_at=260.0)
    assert cache.get(HOA_1) == current  # described only
    cache.apply(change)
    assert cache.get(HOA_1) is None
    assert not cache.is_bound_home_address(HOA_1)
    assert cache.hoas_for_coa(COA_1) == frozenset()
    assert cache.tombstones() == [change.tombstone]
    # The last accepted sequence number survives the binding (P5).
    assert cache.last_sequence(HOA_1, 259.9) == 8


def test_removal_without_sequence_keeps_binding_sequence() -> None:
    cache = BindingCache()
    add(cache, binding(sequence=42))
    change = cache.removal(HOA_1, 500.0, RemovalCause.EXPIRED)
    assert change.tombstone is not None and change.tombstone.sequence == 42
    assert change.cause is RemovalCause.EXPIRED


def test_tombstone_ttl_hides_then_forget_deletes() -> None:
    cache = BindingCache(tombstone_ttl_s=10.0)
    add(cache, binding())
    cache.apply(cache.removal(HOA_1, 100.0, RemovalCause.DEREGISTERED, 8))
    assert cache.tombstone(HOA_1, 109.999) is not None
    assert cache.last_sequence(HOA_1, 109.999) == 8
    # forget_at is inclusive: at now == forget_at the tombstone is gone.
    assert cache.last_sequence(HOA_1, 110.0) is None
    # Reading never mutates (decisions stay pure); forgetting is explicit.
    assert len(cache.tombstones()) == 1
    assert cache.forget_old_tombstones(110.0) == 1
    assert cache.tombstones() == []


def test_registration_clears_tombstone() -> None:
    cache = BindingCache()
    add(cache, binding(sequence=1))
    cache.apply(cache.removal(HOA_1, 200.0, RemovalCause.DEREGISTERED, 2))
    add(cache, binding(sequence=3, now=300.0))
    assert cache.tombstones() == []
    assert cache.last_sequence(HOA_1, 300.0) == 3


def test_delete_without_tombstone() -> None:
    cache = BindingCache()
    add(cache, binding())
    cache.apply(BindingChange(ChangeKind.DELETE, HOA_1, previous=cache.get(HOA_1)))
    assert cache.get(HOA_1) is None and cache.tombstones() == []
    assert cache.last_sequence(HOA_1, 0.0) is None


def test_removal_of_unknown_hoa_raises() -> None:
    with pytest.raises(KeyError):
        BindingCache().removal(HOA_1, 0.0, RemovalCause.REVOKED)


def test_forget_old_tombstones() -> None:
    cache = BindingCache(tombstone_ttl_s=100.0)
    for index, hoa in enumerate((HOA_1, HOA_2, HOA_3)):
        add(cache, binding(hoa))
        cache.apply(cache.removal(hoa, 10.0 * index, RemovalCause.EXPIRED))
    # forget_at = 100, 110, 120
    assert cache.forget_old_tombstones(99.0) == 0
    assert cache.forget_old_tombstones(110.0) == 2
    assert [stone.hoa for stone in cache.tombstones()] == [HOA_3]
    assert cache.forget_old_tombstones(110.0) == 0
    assert cache.forget_old_tombstones(1000.0) == 1
    assert cache.tombstones() == []


# --- expiry (RFC 6275 §10.3.1) ----------------------------------------------------------


def test_expirations_and_next_expiry() -> None:
    cache = BindingCache()
    early = binding(HOA_1, now=0.0, lifetime_s=100)
    late = binding(HOA_2, COA_2, now=0.0, lifetime_s=400)
    add(cache, late)
    add(cache, early)
    assert cache.next_expiry() == 100.0
    assert cache.expirations(99.999) == []
    due = cache.expirations(100.0)  # expires_at <= now
    assert [(c.kind, c.hoa, c.cause) for c in due] == [
        (ChangeKind.DELETE, HOA_1, RemovalCause.EXPIRED)
    ]
    assert due[0].previous == early
    assert len(cache) == 2  # described only
    for change in due:
        cache.apply(change)
    assert cache.next_expiry() == 400.0
    assert cache.last_sequence(HOA_1, 100.0) == early.sequence
    assert {c.hoa for c in cache.expirations(1000.0)} == {HOA_2}


# --- restore (controller restart) -------------------------------------------------------


def test_restore_rebuilds_bindings_index_and_tombstones() -> None:
    source = BindingCache(tombstone_ttl_s=50.0)
    add(source, binding(HOA_1, COA_1, sequence=3))
    add(source, binding(HOA_2, COA_1, sequence=4))
    add(source, binding(HOA_3, COA_2, sequence=5))
    source.apply(source.removal(HOA_3, 120.0, RemovalCause.DEREGISTERED, 6))

    restored = BindingCache(tombstone_ttl_s=50.0)
    restored.restore(list(source), source.tombstones())
    assert sorted(restored, key=lambda b: b.hoa) == sorted(source, key=lambda b: b.hoa)
    assert restored.hoas_for_coa(COA_1) == {HOA_1, HOA_2}
    assert restored.hoas_for_coa(COA_2) == frozenset()
    assert restored.tombstones() == source.tombstones()
    assert restored.last_sequence(HOA_3, 130.0) == 6


def test_restore_ignores_tombstone_of_bound_hoa() -> None:
    stale = Tombstone(HOA_1, 1, KEY_HASH, removed_at=0.0, forget_at=1e9)
    cache = BindingCache()
    cache.restore([binding(HOA_1, sequence=9)], [stale])
    assert cache.tombstones() == []
    assert cache.last_sequence(HOA_1, 0.0) == 9


# --- secrets -----------------------------------------------------------------------------


def test_binding_repr_never_shows_the_phkt() -> None:
    """P12: the PHKT is secret material; logs and tracebacks must not leak it."""
    secret = bytes.fromhex("feedfacecafebeef")
    entry = binding(phkt=secret)
    change = BindingChange(ChangeKind.UPDATE, HOA_1, binding=entry, previous=entry)
    for text in (repr(entry), str(entry), repr(change), repr([entry]), f"{entry!r}"):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert "phkt" not in text.lower()
    assert HOA_1.hex() in repr(entry)


def test_binding_is_frozen() -> None:
    entry = binding()
    with pytest.raises(AttributeError):
        entry.coa = COA_2  # type: ignore[misc]
    assert replace(entry, coa=COA_2).coa == COA_2


@given(
    hoa=st.binary(min_size=16, max_size=16),
    coa=st.binary(min_size=16, max_size=16),
    sequence=st.integers(0, 0xFFFF),
    lifetime_s=st.integers(0, 86400),
    now=st.floats(0, 2e9, allow_nan=False),
    key_hash=st.binary(min_size=16, max_size=16),
    phkt=st.binary(min_size=8, max_size=8),
)
def test_registered_binding_equals_the_constructed_one(
    hoa: bytes,
    coa: bytes,
    sequence: int,
    lifetime_s: int,
    now: float,
    key_hash: bytes,
    phkt: bytes,
) -> None:
    """The slot-setting builder of the decision path gives the constructor's value."""
    built = registered_binding(hoa, coa, sequence, lifetime_s, now, key_hash, phkt)
    expected = Binding(hoa, coa, sequence, lifetime_s, now, now + lifetime_s, key_hash, phkt)
    assert type(built) is Binding
    assert built == expected and hash(built) == hash(expected)
    assert astuple(built) == astuple(expected)
    assert pickle.loads(pickle.dumps(built)) == expected
    with pytest.raises(AttributeError):
        built.sequence = 1  # type: ignore[misc]


# --- deadline heaps agree with a scan of the whole table --------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["register", "remove", "expire", "forget", "advance", "step"]),
        st.integers(min_value=0, max_value=7),  # which HoA
        st.integers(min_value=1, max_value=50),  # lifetime or time advance
    ),
    max_size=120,
)


@given(OPERATIONS)
def test_expirations_next_expiry_and_forgetting_match_a_full_scan(
    operations: list[tuple[str, int, int]],
) -> None:
    cache = BindingCache(tombstone_ttl_s=30.0)
    hoas = [addr(f"2001:db8:a::{n + 1:x}") for n in range(8)]
    now = 100.0
    for operation, index, amount in operations:
        hoa = hoas[index]
        if operation == "register":
            add(cache, binding(hoa, now=now, lifetime_s=amount))
        elif operation == "remove" and cache.get(hoa) is not None:
            cache.apply(cache.removal(hoa, now, RemovalCause.DEREGISTERED))
        elif operation == "expire":
            due = cache.expirations(now)
            expected = sorted(b.hoa for b in cache if b.expires_at <= now)
            assert sorted(change.hoa for change in due) == expected
            assert cache.expirations(now) == due  # nothing changed until applied
            for change in due[: amount % 3]:
                cache.apply(change)
        elif operation == "forget":
            live_before = {stone.hoa for stone in cache.tombstones()}
            stale = {s.hoa for s in cache.tombstones() if s.forget_at <= now}
            assert cache.forget_old_tombstones(now) == len(stale)
            assert {stone.hoa for stone in cache.tombstones()} == live_before - stale
        elif operation == "advance":
            now += amount
        elif operation == "step":
            cache.follow_clock(now, 0.0)
            cache.follow_clock(now + 3600, 1.0)  # a wall-clock step forward: times move
            now += 3600
        assert cache.next_expiry() == min((b.expires_at for b in cache), default=None)


def test_refreshes_do_not_grow_the_heap_without_bound() -> None:
    cache = BindingCache()
    for n in range(20_000):
        add(cache, binding(HOA_1, sequence=n % 60_000, now=100.0 + n, lifetime_s=400))
    assert len(cache._expiry_heap) <= 2 * len(cache) + 1024
    assert cache.next_expiry() == 100.0 + 19_999 + 400
