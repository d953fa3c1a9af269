"""Home-agent decisions of one Distributed Anchor Router (pure logic).

Given a decoded Mobility Header packet, the DAR's configuration and its
binding cache, decide what the DAR does: the Binding Acknowledgement (or
Care-of Test) to send, the binding change to make, or a silent drop with
a named reason.  Nothing here touches a switch, a socket, a database or the
clock: ``now`` and ``rng`` are passed in, and the caller persists
:attr:`Decision.change`, applies it to the cache and the switch, and only
then sends :attr:`Decision.reply` (P12).

Checks run cheapest first (addresses, flags, prefixes, sequence numbers,
table size, hashes), so RSA work is spent only on Binding Updates that
could be accepted; every check is cited to RFC 6275 and FAMA-PROFILE.md.
What RSA work remains is rationed by a :class:`VerificationBudget` (a
token bucket per source /64 and one for the DAR), so a flood of forged
CGA Binding Updates costs a bounded amount of CPU; see docs/security.md.

Time: ``now`` is the wall clock (it is persisted with bindings).  Callers
that can also pass ``monotonic`` (any clock that never steps) let the
binding cache tell a clock step from elapsed time in both directions;
without it only backward steps are recognised (see
:meth:`BindingCache.follow_clock`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import NamedTuple

from fama_ryu import auth, cga, mh
from fama_ryu.binding_cache import (
    BindingCache,
    BindingChange,
    RemovalCause,
    registered_binding,
    sequence_is_newer,
)
from fama_ryu.records import frozen_record

MAX_CGA_BINDING_LIFETIME_S = 86400  # RFC 4866 §7, P12
LIFETIME_UNIT_S = 4
# RSA signature verifications per second: for the whole DAR, and per
# source /64 (the unit an attacker on one link controls).  Each costs
# 15-40 us (1024-2040-bit keys), plus one PHKT encryption when accepted.
DEFAULT_RSA_VERIFICATIONS_PER_S = 1000
DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S = 100
# Source buckets kept before idle ones are forgotten (bounded memory
# under spoofed sources).
MAX_BUDGET_SOURCES = 65536

Rng = Callable[[int], bytes]
CARE_OF_TEST_REASON = "care_of_test"  # a CoTI answered: no Binding Update


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # answered with a non-zero BA status
    DROPPED = "dropped"  # silently discarded, counted by reason


class DropReason(enum.Enum):
    """Why a well-formed packet was silently discarded (metric label values)."""

    NOT_ADDRESSED_TO_ANCHOR = "not_addressed_to_anchor"
    SOURCE_NOT_UNICAST = "source_not_unicast"
    HOME_ADDRESS_NOT_UNICAST = "home_address_not_unicast"
    CARE_OF_ADDRESS_INVALID = "care_of_address_invalid"
    CARE_OF_ADDRESS_IS_OWN = "care_of_address_is_own"
    CARE_OF_ADDRESS_ON_LOCAL_LINK = "care_of_address_on_local_link"
    CARE_OF_ADDRESS_IS_HOME_ADDRESS = "care_of_address_is_home_address"
    MISSING_AUTHORIZATION_DATA = "missing_authorization_data"
    BAD_AUTHENTICATOR = "bad_authenticator"
    MISSING_NONCE_INDICES = "missing_nonce_indices"
    RETURN_ROUTABILITY_DISABLED = "return_routability_disabled"
    UNEXPECTED_MESSAGE = "unexpected_message"
    # No BA when over budget: a flooder gets nothing back to amplify or to
    # learn from, and an honest MN simply retransmits (RFC 6275 §11.8).
    RSA_BUDGET_SOURCE = "rsa_budget_source"
    RSA_BUDGET_GLOBAL = "rsa_budget_global"


@dataclass(frozen=True)
class HomeAgentConfig:
    """What a DAR needs to know to act as home agent (P1, P8, P12, P13).

    ``home_prefixes`` are the /64 prefixes (8 bytes each) this DAR anchors;
    in the legacy fallback (draft A.5) one DAR lists every prefix of the
    domain.  ``own_addresses`` are all addresses of the DAR itself, which
    can never be a care-of address.
    """

    name: str
    anchor_address: bytes
    home_prefixes: tuple[bytes, ...]
    own_addresses: frozenset[bytes] = frozenset()
    max_lifetime_s: int = 3600
    binding_limit: int = 100_000
    min_key_bits: int = cga.MIN_KEY_BITS
    max_key_bits: int = cga.MAX_KEY_BITS
    return_routability: bool = False
    # The /64s of this DAR's own access links: a CoA there would tunnel
    # traffic back onto the DAR's own link.  Empty: no such check.
    local_prefixes: tuple[bytes, ...] = ()
    rsa_verifications_per_s: int = DEFAULT_RSA_VERIFICATIONS_PER_S
    rsa_verifications_per_source_per_s: int = DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S

    def __post_init__(self) -> None:
        if len(self.anchor_address) != 16:
            raise ValueError("anchor address must be 16 bytes")
        if not self.home_prefixes or any(len(p) != 8 for p in self.home_prefixes):
            raise ValueError("home prefixes must be one or more 8-byte /64 prefixes")
        if self.anchor_address[:8] != self.home_prefixes[0]:
            raise ValueError("the anchor address lies in the first access prefix (P1)")
        if not LIFETIME_UNIT_S <= self.max_lifetime_s <= MAX_CGA_BINDING_LIFETIME_S:
            raise ValueError(
                f"max lifetime must be {LIFETIME_UNIT_S}..{MAX_CGA_BINDING_LIFETIME_S} s"
            )
        if self.binding_limit < 1:
            raise ValueError("binding limit must be at least 1")
        if self.rsa_verifications_per_s < 1 or self.rsa_verifications_per_source_per_s < 1:
            raise ValueError("RSA verification budgets must be at least 1 per second")
        if not cga.MIN_KEY_BITS <= self.min_key_bits <= self.max_key_bits <= cga.MAX_KEY_BITS:
            raise ValueError(
                f"key sizes must satisfy {cga.MIN_KEY_BITS} <= min <= max"
                f" <= {cga.MAX_KEY_BITS} (P8)"
            )
        object.__setattr__(
            self, "own_addresses", frozenset(self.own_addresses) | {self.anchor_address}
        )


class _TokenBucket:
    """Tokens refill at ``rate_per_s`` up to ``burst``; time is passed in."""

    __slots__ = ("rate_per_s", "burst", "tokens", "updated_at")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.updated_at = now

    def refill(self, now: float) -> float:
        # A clock that went backwards refills nothing (and takes nothing).
        elapsed = max(now - self.updated_at, 0.0)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        self.updated_at = now
        return self.tokens


class VerificationBudget:
    """Rations RSA signature verifications: per source /64, then per DAR.

    Fairness rule: a source's own bucket is checked first and a refusal
    there takes nothing from the DAR-wide bucket, so one flooding /64 can
    use at most its own rate and leaves the rest of the DAR's budget to
    everyone else.  Many spoofed /64s together meet the DAR-wide bucket,
    which caps the CPU spent; honest first registrations then compete for
    what is left and retransmit.  PHKT-authenticated BUs (refreshes,
    handovers, deregistrations of bound MNs) need no RSA and never meet
    the budget.  Each bucket holds one second's worth of tokens.
    """

    def __init__(
        self, per_s: int, per_source_per_s: int, *, max_sources: int = MAX_BUDGET_SOURCES
    ) -> None:
        self.per_s = per_s
        self.per_source_per_s = per_source_per_s
        self.max_sources = max_sources
        self._dar: _TokenBucket | None = None
        self._sources: dict[bytes, _TokenBucket] = {}

    @property
    def tracked_sources(self) -> int:
        """How many source /64s have a bucket now (bounded by ``max_sources``)."""
        return len(self._sources)

    def take(self, source: bytes, now: float) -> DropReason | None:
        """Spend one verification for ``source``; the drop reason if over budget."""
        dar = self._dar
        if dar is None:
            dar = self._dar = _TokenBucket(self.per_s, self.per_s, now)
        bucket = self._sources.get(source[:8])
        if bucket is None:
            self._make_room(now)
            bucket = _TokenBucket(self.per_source_per_s, self.per_source_per_s, now)
            self._sources[source[:8]] = bucket
        if bucket.refill(now) < 1.0:
            return DropReason.RSA_BUDGET_SOURCE
        if dar.refill(now) < 1.0:
            return DropReason.RSA_BUDGET_GLOBAL
        bucket.tokens -= 1.0
        dar.tokens -= 1.0
        return None

    def _make_room(self, now: float) -> None:
        """Forget refilled buckets (a new one is the same); if none, the least recent half."""
        if len(self._sources) < self.max_sources:
            return
        self._sources = {
            key: bucket
            for key, bucket in self._sources.items()
            if bucket.refill(now) < bucket.burst
        }
        if len(self._sources) >= self.max_sources:
            recent = sorted(self._sources.items(), key=lambda item: item[1].updated_at)
            self._sources = dict(recent[len(recent) // 2 :])


@dataclass(frozen=True)
class Reply:
    """A signalling packet the DAR sends, decoded and encoded."""

    message: mh.MobilityMessage
    source: bytes
    destination: bytes
    routing_address: bytes | None
    packet: bytes


@dataclass(frozen=True)
class Decision:
    """The outcome of one received packet.

    ``reason`` is a short label for metrics: "accepted", "status_135",
    or a :class:`DropReason` value.  ``rsa_operations`` counts the RSA
    work the decision cost, so tests and metrics can see that cheap
    rejections stay cheap.
    """

    verdict: Verdict
    reason: str
    status: int | None = None
    reply: Reply | None = None
    change: BindingChange | None = None
    phkt_issued: bool = False
    rsa_operations: int = 0


def is_unicast_routable(address: bytes) -> bool:
    """True for addresses that may be a HoA or CoA (RFC 6275 §9.3.1, §9.5.1).

    Excludes unspecified, loopback, multicast (ff00::/8), link-local
    (fe80::/10) and IPv4-mapped (::ffff:0:0/96) addresses.
    """
    if len(address) != 16:
        return False
    first = address[0]
    if first == 0xFF:
        return False
    if first == 0xFE and address[1] & 0xC0 == 0x80:
        return False
    if first:
        return True  # what is left to exclude lies in ::/8
    # ::, ::1, IPv4-compatible and IPv4-mapped
    return not (address[:10] == bytes(10) and address[10:12] in (b"\x00\x00", b"\xff\xff"))


def public_key_hash(public_key_der: bytes) -> bytes:
    """A short identifier of a CGA public key, kept with bindings and tombstones."""
    return hashlib.sha256(public_key_der).digest()[:16]


class _Authenticated(NamedTuple):
    """Result of authenticating a BU: the keys the BA needs."""

    ba_key: auth.BindingKey
    phkt: bytes | None = None
    encrypted_phkt: bytes | None = None
    key_hash: bytes | None = None


class _Rejection(Exception):
    """Internal: a BU rejected with a BA status."""

    def __init__(
        self,
        status: mh.BAStatus,
        sequence: int | None = None,
        key: auth.BindingKey | None = None,
    ) -> None:
        super().__init__(status.name)
        self.status = status
        self.sequence = sequence
        self.key = key  # set when the BU was authenticated: the BA carries BAD


class _Drop(Exception):
    """Internal: a packet discarded silently."""

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class HomeAgent:
    """Decides Binding Updates (and Care-of Test Inits) for one DAR."""

    config: HomeAgentConfig
    rng: Rng
    cache: BindingCache = field(default_factory=BindingCache)
    token_issuer: auth.CareOfTokenIssuer | None = None
    budget: VerificationBudget = field(init=False)

    def __post_init__(self) -> None:
        if self.config.return_routability and self.token_issuer is None:
            raise ValueError("return-routability mode (P13) needs a care-of token issuer")
        self.budget = VerificationBudget(
            self.config.rsa_verifications_per_s, self.config.rsa_verifications_per_source_per_s
        )

    def handle(
        self, packet: mh.MobilityPacket, now: float, monotonic: float | None = None
    ) -> Decision:
        """Decide what to do with a decoded Mobility Header packet."""
        self.cache.follow_clock(now, monotonic)
        rsa_before = auth.RSA_OPERATIONS.total()
        message = packet.message
        try:
            if packet.destination != self.config.anchor_address:
                raise _Drop(DropReason.NOT_ADDRESSED_TO_ANCHOR)
            if isinstance(message, mh.BindingUpdate):
                budget_now = now if monotonic is None else monotonic
                decision = self._binding_update(packet, message, now, budget_now)
            elif isinstance(message, mh.CareOfTestInit):
                decision = self._care_of_test_init(packet, message, now)
            else:
                raise _Drop(DropReason.UNEXPECTED_MESSAGE)
        except _Drop as drop:
            decision = Decision(Verdict.DROPPED, drop.reason.value)
        cost = auth.RSA_OPERATIONS.total() - rsa_before
        if cost:
            decision = replace(decision, rsa_operations=cost)
        return decision

    def rejection_packet(self, packet: mh.MobilityPacket, status: mh.BAStatus) -> bytes:
        """A BA refusing ``packet`` with ``status`` (e.g. 130 when the store fails)."""
        bu = packet.message
        assert isinstance(bu, mh.BindingUpdate)
        ba = mh.BindingAck(status, bu.sequence, 0)
        return self._binding_ack(packet, packet.pseudo_source, ba, key=None, first=b"").packet

    def apply(self, change: BindingChange) -> None:
        """Make a decided change take effect in the cache (after persisting it)."""
        self.cache.apply(change)

    def expirations(self, now: float, monotonic: float | None = None) -> list[BindingChange]:
        """Removals for bindings whose lifetime ran out (RFC 6275 §10.3.1)."""
        self.cache.follow_clock(now, monotonic)
        return self.cache.expirations(now)

    def clock_rebase(self) -> list[BindingChange]:
        """Bindings whose times moved with a clock step, to persist (no flow change)."""
        return self.cache.rebased_changes()

    def revocation(
        self, hoa: bytes, now: float, monotonic: float | None = None
    ) -> BindingChange | None:
        """Administrative removal of ``hoa``'s binding, or None if unbound."""
        self.cache.follow_clock(now, monotonic)
        if self.cache.get(hoa) is None:
            return None
        return self.cache.removal(hoa, now, RemovalCause.REVOKED)

    # ------------------------------------------------------------ BU

    def _binding_update(
        self, packet: mh.MobilityPacket, bu: mh.BindingUpdate, now: float, budget_now: float
    ) -> Decision:
        config = self.config
        if not is_unicast_routable(packet.source):
            # RFC 6275 §9.5.4: no BA to a non-unicast source; discard silently.
            raise _Drop(DropReason.SOURCE_NOT_UNICAST)
        hoa = packet.pseudo_source
        if not is_unicast_routable(hoa):
            raise _Drop(DropReason.HOME_ADDRESS_NOT_UNICAST)  # RFC 6275 §9.3.1
        options = bu.options
        coa = options.alternate_coa if options.alternate_coa is not None else packet.source
        deregistration = bu.lifetime_units == 0 or coa == hoa  # P11
        if not deregistration:
            self._check_care_of_address(coa, hoa)
        first_address = hoa if deregistration else coa  # P9
        try:
            auth_result = self._decide_binding_update(
                packet, bu, hoa, coa, deregistration, now, budget_now
            )
        except _Rejection as rejection:
            sequence = rejection.sequence if rejection.sequence is not None else bu.sequence
            rejection_reply = self._binding_ack(
                packet,
                hoa,
                mh.BindingAck(rejection.status, sequence, 0),
                key=rejection.key,
                first=first_address,
            )
            return Decision(
                Verdict.REJECTED,
                f"status_{int(rejection.status)}",
                rejection.status,
                rejection_reply,
            )
        if deregistration:
            change = self.cache.removal(hoa, now, RemovalCause.DEREGISTERED, bu.sequence)
            granted_units = 0
        else:
            granted_s = min(bu.lifetime_s, config.max_lifetime_s, MAX_CGA_BINDING_LIFETIME_S)
            granted_units = granted_s // LIFETIME_UNIT_S
            previous = self.cache.get(hoa)
            phkt = auth_result.phkt
            key_hash = auth_result.key_hash
            if phkt is None or key_hash is None:
                assert previous is not None  # PHKT BUs are only accepted with a binding
                phkt = previous.phkt
                key_hash = previous.key_hash
            binding = registered_binding(
                hoa, coa, bu.sequence, granted_units * LIFETIME_UNIT_S, now, key_hash, phkt
            )
            change = self.cache.registration(binding)
        # RFC 6275 §10.3.1/§10.3.2: a home agent acknowledges every home
        # registration whatever the A flag says (the BA carries the PHKT).
        encrypted_phkt = auth_result.encrypted_phkt
        ba_options = (
            mh.NO_OPTIONS
            if encrypted_phkt is None
            else mh.MobilityOptions(permanent_home_keygen_token=encrypted_phkt)
        )
        accepted = mh.BAStatus.ACCEPTED
        ba = frozen_record(
            mh.BindingAck,
            {
                "status": accepted,
                "sequence": bu.sequence,
                "lifetime_units": granted_units,
                "key_management": False,
                "options": ba_options,
            },
        )
        reply = self._binding_ack(packet, hoa, ba, key=auth_result.ba_key, first=first_address)
        return frozen_record(
            Decision,
            {
                "verdict": Verdict.ACCEPTED,
                "reason": "accepted",
                "status": accepted,
                "reply": reply,
                "change": change,
                "phkt_issued": encrypted_phkt is not None,
                "rsa_operations": 0,
            },
        )

    def _check_care_of_address(self, coa: bytes, hoa: bytes) -> None:
        if not is_unicast_routable(coa):
            raise _Drop(DropReason.CARE_OF_ADDRESS_INVALID)
        if coa in self.config.own_addresses:
            raise _Drop(DropReason.CARE_OF_ADDRESS_IS_OWN)
        if coa[:8] in self.config.local_prefixes:
            raise _Drop(DropReason.CARE_OF_ADDRESS_ON_LOCAL_LINK)
        if self.cache.is_bound_home_address(coa):
            # A CoA that is another MN's bound HoA would loop or hijack traffic.
            raise _Drop(DropReason.CARE_OF_ADDRESS_IS_HOME_ADDRESS)

    def _decide_binding_update(
        self,
        packet: mh.MobilityPacket,
        bu: mh.BindingUpdate,
        hoa: bytes,
        coa: bytes,
        deregistration: bool,
        now: float,
        budget_now: float,
    ) -> _Authenticated:
        """Run the checks of RFC 6275 §10.3.1/§10.3.2 and P5-P13, cheapest first.

        A PHKT-authenticated BU is authenticated before its sequence number
        is judged (an HMAC is cheap), so its rejections carry authorization
        data the MN can verify and forgers learn nothing.  A CGA BU is
        judged on everything cheap first and reaches RSA work last.
        """
        config = self.config
        existing = self.cache.get(hoa)
        if not bu.home_registration:
            # The DAR is no correspondent node: a home registration must
            # not turn into a correspondent one (RFC 6275 §9.5.1).
            if existing is not None:
                raise _Rejection(mh.BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED)
            raise _Rejection(mh.BAStatus.ADMINISTRATIVELY_PROHIBITED)
        if hoa[:8] not in config.home_prefixes:
            raise _Rejection(mh.BAStatus.NOT_HOME_SUBNET)  # P7 (b)
        if deregistration and existing is None:
            raise _Rejection(mh.BAStatus.NOT_HOME_AGENT)  # RFC 6275 §10.3.2
        care_of_token = self._care_of_keygen_token(bu, coa, deregistration, now)
        uses_cga = bu.options.cga_parameters is not None
        key: auth.BindingKey | None = None
        if not uses_cga:
            if existing is None:
                # A replay after deregistration or expiry meets the tombstone
                # (135); otherwise there is no PHKT to check against (P9).
                self._check_sequence(bu, hoa, now, key=None)
                raise _Rejection(mh.BAStatus.PHKT_UNAVAILABLE)
            key = auth.BindingKey(auth.binding_management_key(existing.phkt, care_of_token))
            self._check_authenticator(packet, key, hoa if deregistration else coa)
        self._check_sequence(bu, hoa, now, key)
        if not deregistration and existing is None and len(self.cache) >= config.binding_limit:
            raise _Rejection(mh.BAStatus.INSUFFICIENT_RESOURCES)
        if key is not None:
            return _Authenticated(key)
        return self._authenticate_cga(
            packet, bu, hoa, coa, deregistration, care_of_token, budget_now
        )

    def _check_sequence(
        self, bu: mh.BindingUpdate, hoa: bytes, now: float, key: auth.BindingKey | None
    ) -> None:
        """P5: the number must be newer than the last accepted one, modulo 2^16."""
        last = self.cache.last_sequence(hoa, now)
        if last is not None and not sequence_is_newer(bu.sequence, last):
            raise _Rejection(mh.BAStatus.SEQUENCE_OUT_OF_WINDOW, sequence=last, key=key)

    def _care_of_keygen_token(
        self, bu: mh.BindingUpdate, coa: bytes, deregistration: bool, now: float
    ) -> bytes | None:
        """P13: in return-routability mode the CoA must have passed a care-of test.

        A deregistration needs none (RFC 6275 §5.2.5: only the home
        keygen token is used when deregistering).
        """
        if self.token_issuer is None or not self.config.return_routability or deregistration:
            return None
        if bu.options.nonce_indices is None:
            raise _Drop(DropReason.MISSING_NONCE_INDICES)
        token = self.token_issuer.token_for(coa, bu.options.nonce_indices[1], now)
        if token is None:
            raise _Rejection(mh.BAStatus.EXPIRED_CARE_OF_NONCE_INDEX)
        return token

    def _check_authenticator(
        self, packet: mh.MobilityPacket, key: auth.BindingKey, first: bytes
    ) -> None:
        received = packet.message.options.authenticator
        if received is None:
            raise _Drop(DropReason.MISSING_AUTHORIZATION_DATA)
        expected = key.authenticator(first, self.config.anchor_address, packet.mh.authorized_data())
        if not auth.authenticator_matches(expected, received):
            raise _Drop(DropReason.BAD_AUTHENTICATOR)  # RFC 6275 §9.5.1, P9

    def _authenticate_cga(
        self,
        packet: mh.MobilityPacket,
        bu: mh.BindingUpdate,
        hoa: bytes,
        coa: bytes,
        deregistration: bool,
        care_of_token: bytes | None,
        budget_now: float,
    ) -> _Authenticated:
        """P7: CGA verification, then the signature; P10/P12: a new PHKT.

        The verification budget is spent only by a BU that passed every
        other check, just before the RSA work it pays for.
        """
        config = self.config
        options = bu.options
        assert options.cga_parameters is not None and options.signature is not None
        try:
            params = cga.CgaParameters.decode(options.cga_parameters)
        except cga.CgaDecodeError:
            raise _Rejection(mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED) from None
        if params.subnet_prefix != hoa[:8]:
            raise _Rejection(mh.BAStatus.NOT_HOME_SUBNET)  # P7 (b)
        # Hashes first, then the key's size and exponent: both before any RSA work.
        verification = cga.verify_cga(hoa, params, check_key=False)
        if not verification.ok:
            raise _Rejection(mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED)  # P7 (a), (c)
        try:
            public_key = cga.load_public_key(
                params.public_key_der,
                min_bits=config.min_key_bits,
                max_bits=config.max_key_bits,
            )
        except cga.CgaKeyError:
            raise _Rejection(mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED) from None
        if care_of_token is not None:
            # P13: a first CGA BU in return-routability mode also carries
            # authorization data keyed by the care-of keygen token alone.
            token_key = auth.BindingKey(auth.binding_management_key(None, care_of_token))
            self._check_authenticator(packet, token_key, coa)
        if len(options.signature) != (public_key.key_size + 7) // 8:
            raise _Rejection(mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED)  # no RSA needed
        over_budget = self.budget.take(packet.source, budget_now)
        if over_budget is not None:
            raise _Drop(over_budget)
        if not auth.verify_binding_update_signature(
            public_key, options.signature, coa, config.anchor_address, packet.mh.signed_data()
        ):
            raise _Rejection(mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED)  # P7 (d)
        phkt = auth.generate_phkt(self.rng)
        encrypted = auth.encrypt_phkt(public_key, phkt)
        # P12: the BA after a CGA BU is keyed by the new PHKT.  After a
        # deregistration the token is forgotten at once (P11), but the MN
        # still needs it to authenticate this BA.
        return _Authenticated(
            ba_key=auth.BindingKey(auth.binding_management_key(phkt, None)),
            phkt=None if deregistration else phkt,
            encrypted_phkt=encrypted,
            key_hash=public_key_hash(params.public_key_der),
        )

    # ------------------------------------------------------------ CoTI

    def _care_of_test_init(
        self, packet: mh.MobilityPacket, coti: mh.CareOfTestInit, now: float
    ) -> Decision:
        """P13: answer a Care-of Test Init with a care-of keygen token."""
        if self.token_issuer is None or not self.config.return_routability:
            raise _Drop(DropReason.RETURN_ROUTABILITY_DISABLED)
        coa = packet.source
        if not is_unicast_routable(coa):
            raise _Drop(DropReason.CARE_OF_ADDRESS_INVALID)
        nonce_index, token = self.token_issuer.issue(coa, now)
        cot = mh.CareOfTest(nonce_index, coti.cookie, token)
        packet_bytes = mh.build_packet(cot, source=self.config.anchor_address, destination=coa)
        reply = Reply(cot, self.config.anchor_address, coa, None, packet_bytes)
        return Decision(Verdict.ACCEPTED, CARE_OF_TEST_REASON, reply=reply)

    # ------------------------------------------------------------ BA

    def _binding_ack(
        self,
        packet: mh.MobilityPacket,
        hoa: bytes,
        ba: mh.BindingAck,
        *,
        key: auth.BindingKey | None,
        first: bytes,
    ) -> Reply:
        """P12: from A_d to the BU's source, type 2 Routing Header = HoA."""
        anchor = self.config.anchor_address
        destination = packet.source
        routing_address = hoa if destination != hoa else None
        packet_bytes = mh.build_packet(
            ba,
            source=anchor,
            destination=destination,
            routing_address=routing_address,
            authenticator=None if key is None else partial(key.authenticator, first, anchor),
        )
        return frozen_record(
            Reply,
            {
                "message": ba,
                "source": anchor,
                "destination": destination,
                "routing_address": routing_address,
                "packet": packet_bytes,
            },
        )
