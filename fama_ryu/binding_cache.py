"""Per-DAR binding cache: who is bound where, until when, with which keys.

A DAR is the home agent of every address configured from its prefixes
(P1).  This module holds its bindings (HoA -> CoA) and the tombstones left
by deregistration and expiry, which remember the last accepted sequence
number so a replayed old Binding Update is answered 135 rather than
accepted again.  Pure data: the clock is passed in, and changes are
described as :class:`BindingChange` values so the caller can persist them
before they take effect.

Times are wall-clock seconds, because they are persisted and shown.  A
step of the wall clock (an operator or NTP setting it) must neither
expire every binding at once nor keep bindings alive longer than granted:
:meth:`BindingCache.follow_clock` moves every held time by the step, so
remaining lifetimes are kept in elapsed time.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, replace

from fama_ryu.records import frozen_record

SEQUENCE_MODULUS = 1 << 16
DEFAULT_TOMBSTONE_TTL_S = 24 * 3600.0
# Clock differences below this are scheduling jitter, not a step; NTP
# slews (at most 500 ppm) never come near it between two calls.
CLOCK_STEP_TOLERANCE_S = 1.0


def sequence_is_newer(candidate: int, last: int) -> bool:
    """RFC 6275 §9.5.1 comparison modulo 2^16 (P5).

    ``candidate`` is newer when it lies in the half of the number space
    that follows ``last``; equal numbers are not newer.
    """
    return 0 < (candidate - last) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


@dataclass(frozen=True, slots=True)
class Binding:
    """One accepted home registration (RFC 6275 §10.1 Binding Cache entry).

    ``key_hash`` identifies the CGA public key that proved ownership of the
    HoA; ``phkt`` is the Permanent Home Keygen Token the HDAR issued
    (P12), secret material that never leaves the controller.  Slots: a
    cache holds one per mobile node (a third smaller than with a dict).
    """

    hoa: bytes
    coa: bytes
    sequence: int
    lifetime_s: int
    registered_at: float
    expires_at: float
    key_hash: bytes
    phkt: bytes

    def __repr__(self) -> str:  # keep the PHKT out of logs and tracebacks
        return (
            f"Binding(hoa={self.hoa.hex()}, coa={self.coa.hex()}, sequence={self.sequence}, "
            f"expires_at={self.expires_at})"
        )


# The slot descriptors of Binding, for registered_binding: setting them
# directly costs half of what the generated __init__ pays per field
# (object.__setattr__, which a frozen class needs).
_SET_HOA = Binding.__dict__["hoa"].__set__
_SET_COA = Binding.__dict__["coa"].__set__
_SET_SEQUENCE = Binding.__dict__["sequence"].__set__
_SET_LIFETIME_S = Binding.__dict__["lifetime_s"].__set__
_SET_REGISTERED_AT = Binding.__dict__["registered_at"].__set__
_SET_EXPIRES_AT = Binding.__dict__["expires_at"].__set__
_SET_KEY_HASH = Binding.__dict__["key_hash"].__set__
_SET_PHKT = Binding.__dict__["phkt"].__set__


def registered_binding(
    hoa: bytes,
    coa: bytes,
    sequence: int,
    lifetime_s: int,
    now: float,
    key_hash: bytes,
    phkt: bytes,
) -> Binding:
    """The binding a registration accepted at ``now`` makes: equal to
    ``Binding(hoa, coa, sequence, lifetime_s, now, now + lifetime_s, key_hash,
    phkt)``, built at half the cost (once per Binding Update)."""
    binding = object.__new__(Binding)
    _SET_HOA(binding, hoa)
    _SET_COA(binding, coa)
    _SET_SEQUENCE(binding, sequence)
    _SET_LIFETIME_S(binding, lifetime_s)
    _SET_REGISTERED_AT(binding, now)
    _SET_EXPIRES_AT(binding, now + lifetime_s)
    _SET_KEY_HASH(binding, key_hash)
    _SET_PHKT(binding, phkt)
    return binding


@dataclass(frozen=True)
class Tombstone:
    """What is left of a binding after deregistration or expiry."""

    hoa: bytes
    sequence: int
    key_hash: bytes
    removed_at: float
    forget_at: float


class ChangeKind(enum.Enum):
    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"


class RemovalCause(enum.Enum):
    DEREGISTERED = "deregistered"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class BindingChange:
    """A change to apply to the cache, the store and the switch, in that order.

    ``previous`` is the binding being replaced or removed (its CoA tells the
    data plane which tunnel rules to take down); ``binding`` the new one.
    """

    kind: ChangeKind
    hoa: bytes
    binding: Binding | None = None
    previous: Binding | None = None
    tombstone: Tombstone | None = None
    cause: RemovalCause | None = None


class BindingCache:
    """Bindings and tombstones of one DAR, keyed by home address."""

    def __init__(self, tombstone_ttl_s: float = DEFAULT_TOMBSTONE_TTL_S) -> None:
        self.tombstone_ttl_s = tombstone_ttl_s
        self._bindings: dict[bytes, Binding] = {}
        self._tombstones: dict[bytes, Tombstone] = {}
        self._coa_to_hoas: dict[bytes, set[bytes]] = {}
        self._last_now: float | None = None
        self._clock_offset: float | None = None  # wall minus monotonic
        self._rebased: set[bytes] = set()
        # Deadlines in heaps, so the tick's work grows with what is due, not
        # with the table: (time, hoa) entries, checked against the live entry
        # when they come up (an entry superseded by a refresh is skipped).
        self._expiry_heap: list[tuple[float, bytes]] = []
        self._forget_heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._bindings)

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self._bindings.values()))

    def get(self, hoa: bytes) -> Binding | None:
        return self._bindings.get(hoa)

    def tombstone(self, hoa: bytes, now: float) -> Tombstone | None:
        """The live tombstone of ``hoa``; reading never changes the cache."""
        stone = self._tombstones.get(hoa)
        if stone is None or stone.forget_at <= now:
            return None
        return stone

    def tombstones(self) -> list[Tombstone]:
        return list(self._tombstones.values())

    def last_sequence(self, hoa: bytes, now: float) -> int | None:
        """The last accepted sequence number, from a binding or a tombstone."""
        binding = self._bindings.get(hoa)
        if binding is not None:
            return binding.sequence
        stone = self.tombstone(hoa, now)
        return stone.sequence if stone is not None else None

    def is_bound_home_address(self, address: bytes) -> bool:
        return address in self._bindings

    def hoas_for_coa(self, coa: bytes) -> frozenset[bytes]:
        return frozenset(self._coa_to_hoas.get(coa, ()))

    def removal(
        self, hoa: bytes, now: float, cause: RemovalCause, sequence: int | None = None
    ) -> BindingChange:
        """Describe removing ``hoa``'s binding and leaving a tombstone.

        ``sequence`` is the number of the deregistering BU, when there is
        one: the tombstone must remember it, not the binding's older one.
        """
        binding = self._bindings[hoa]
        stone = Tombstone(
            hoa=hoa,
            sequence=binding.sequence if sequence is None else sequence,
            key_hash=binding.key_hash,
            removed_at=now,
            forget_at=now + self.tombstone_ttl_s,
        )
        return BindingChange(ChangeKind.DELETE, hoa, previous=binding, tombstone=stone, cause=cause)

    def registration(self, binding: Binding) -> BindingChange:
        """Describe adding or updating ``binding``."""
        previous = self._bindings.get(binding.hoa)
        return frozen_record(
            BindingChange,
            {
                "kind": ChangeKind.ADD if previous is None else ChangeKind.UPDATE,
                "hoa": binding.hoa,
                "binding": binding,
                "previous": previous,
                "tombstone": None,
                "cause": None,
            },
        )

    def apply(self, change: BindingChange) -> None:
        """Make ``change`` take effect in memory (after it is persisted)."""
        previous = self._bindings.get(change.hoa)
        if change.kind is ChangeKind.DELETE:
            if previous is not None:
                self._unindex(previous)
            self._bindings.pop(change.hoa, None)
            if change.tombstone is not None:
                self._tombstones[change.hoa] = change.tombstone
                self._push(
                    self._forget_heap, change.tombstone.forget_at, change.hoa, len(self._tombstones)
                )
            return
        binding = change.binding
        assert binding is not None
        self._bindings[change.hoa] = binding
        self._tombstones.pop(change.hoa, None)
        if previous is None or previous.coa != binding.coa:  # a refresh keeps its index entry
            if previous is not None:
                self._unindex(previous)
            self._coa_to_hoas.setdefault(binding.coa, set()).add(change.hoa)
        if previous is None or previous.expires_at != binding.expires_at:
            self._push(self._expiry_heap, binding.expires_at, change.hoa, len(self._bindings))

    def expirations(self, now: float) -> list[BindingChange]:
        """Removals for every binding whose lifetime has run out.

        Nothing changes until they are applied: a removal that is not (the
        store refused it) is found again next time.
        """
        heap, due = self._expiry_heap, []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            binding = self._bindings.get(entry[1])
            if binding is not None and binding.expires_at == entry[0]:
                due.append(entry)
        for entry in due:
            heapq.heappush(heap, entry)  # still bound until the removal is applied
        return [self.removal(hoa, now, RemovalCause.EXPIRED) for _, hoa in sorted(due)]

    def next_expiry(self) -> float | None:
        heap = self._expiry_heap
        while heap:
            expires_at, hoa = heap[0]
            binding = self._bindings.get(hoa)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(heap)
        return None

    def forget_old_tombstones(self, now: float) -> int:
        heap, forgotten = self._forget_heap, 0
        while heap and heap[0][0] <= now:
            forget_at, hoa = heapq.heappop(heap)
            stone = self._tombstones.get(hoa)
            if stone is not None and stone.forget_at == forget_at:
                del self._tombstones[hoa]
                forgotten += 1
        return forgotten

    def _push(self, heap: list[tuple[float, bytes]], when: float, hoa: bytes, live: int) -> None:
        heapq.heappush(heap, (when, hoa))
        if len(heap) > 2 * live + 1024:
            self._rebuild_heaps()  # superseded entries outnumber live ones (many refreshes)

    def _rebuild_heaps(self) -> None:
        self._expiry_heap = [(b.expires_at, hoa) for hoa, b in self._bindings.items()]
        self._forget_heap = [(t.forget_at, hoa) for hoa, t in self._tombstones.items()]
        heapq.heapify(self._expiry_heap)
        heapq.heapify(self._forget_heap)

    def follow_clock(self, now: float, monotonic: float | None = None) -> float:
        """Absorb a wall-clock step; return it (0.0 when there was none).

        With ``monotonic`` (a clock that never steps) a step shows as a
        change of ``now - monotonic``, forwards or backwards.  Without it
        only a backward step can be told from elapsed time; a forward one
        then ages every binding (and may expire them together).  Every
        binding and tombstone time moves by the step, so what was left of
        each lifetime is left still; moved bindings are reported by
        :meth:`rebased_changes` so the store can follow.
        """
        step = 0.0
        if monotonic is not None:
            offset = now - monotonic
            if self._clock_offset is not None:
                drift = offset - self._clock_offset
                if abs(drift) > CLOCK_STEP_TOLERANCE_S:
                    step = drift
            self._clock_offset = offset
        elif self._last_now is not None and now < self._last_now - CLOCK_STEP_TOLERANCE_S:
            step = now - self._last_now
            if self._clock_offset is not None:
                self._clock_offset += step
        if self._last_now is None or step or now > self._last_now:
            self._last_now = now
        if step:
            self._shift(step)
        return step

    def rebased_changes(self) -> list[BindingChange]:
        """UPDATE changes for the bindings moved by clock steps since the last call."""
        changes = [
            BindingChange(ChangeKind.UPDATE, hoa, binding=binding, previous=binding)
            for hoa in sorted(self._rebased)
            if (binding := self._bindings.get(hoa)) is not None
        ]
        self._rebased.clear()
        return changes

    def _shift(self, step: float) -> None:
        self._bindings = {
            hoa: replace(
                binding,
                registered_at=binding.registered_at + step,
                expires_at=binding.expires_at + step,
            )
            for hoa, binding in self._bindings.items()
        }
        self._tombstones = {
            hoa: replace(
                stone, removed_at=stone.removed_at + step, forget_at=stone.forget_at + step
            )
            for hoa, stone in self._tombstones.items()
        }
        self._rebuild_heaps()
        self._rebased.update(self._bindings)

    def restore(self, bindings: list[Binding], tombstones: list[Tombstone]) -> None:
        """Load persisted state (controller restart)."""
        for binding in bindings:
            self.apply(BindingChange(ChangeKind.ADD, binding.hoa, binding=binding))
        for stone in tombstones:
            if stone.hoa not in self._bindings:
                self._tombstones[stone.hoa] = stone
        self._rebuild_heaps()

    def _unindex(self, binding: Binding) -> None:
        hoas = self._coa_to_hoas.get(binding.coa)
        if hoas is not None:
            hoas.discard(binding.hoa)
            if not hoas:
                del self._coa_to_hoas[binding.coa]
