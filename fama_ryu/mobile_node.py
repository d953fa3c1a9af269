"""Mobile-node side of FAMA binding management: the Binding Update List.

A FAMA mobile node keeps an address configured at an earlier DAR reachable by
registering its current care-of address (CoA) with that DAR, the address's
HDAR (draft-bernardos-dmm-cmip-06 §3).  This module holds the protocol logic
of that: it builds every Binding Update (BU), checks every Binding
Acknowledgement (BA) and runs the timers, but does no I/O.  The caller passes
``now`` (a monotonic clock reading, in seconds) and ``rng`` in, and sends the
IPv6 packets the methods return.

Rules applied here, beyond the FAMA profile (P-numbers) and RFC 6275:

* Authentication.  The first BU for a HoA at an HDAR is CGA-signed (P6); the
  BA accepting it delivers a Permanent Home Keygen Token (PHKT, P12) and
  every later BU carries a Binding Authorization Data option keyed with
  Kbm = SHA1(PHKT) (P9).  The CoA in the authenticator formula is replaced
  by the HoA in a deregistration and in the BA answering it (P9, P12).
  Before the sequence number space (2^16) can wrap under one PHKT, the next
  BU is CGA-signed again to renew the PHKT (RFC 4866 §4.9, P10): that
  happens once a BU's sequence number is 2^15 or more past the one that
  obtained the PHKT.
* Which BAs are believed (RFC 6275 §11.7.3).  A BA is matched by
  (HoA from its type 2 Routing Header or destination, source = A_HDAR).  Apart
  from status 135, it must echo the sequence number of the latest
  transmission: each retransmission carries a new number, and a BA for an
  earlier CGA-signed transmission may deliver a PHKT the HDAR has already
  replaced.  An acceptance must carry a verifying authenticator (plus, after
  a CGA-signed BU, the PHKT it is keyed with).  Rejections may come without
  one (the HDAR may hold no key; this project's HDAR authenticates none), so
  they are believed on the sequence match, but an authenticator they carry
  must verify when a PHKT is held.  Status 135 carries the HDAR's last
  accepted number rather than ours, so it cannot be matched at all: it is
  believed (RFC 6275 §11.7.3 would ignore it unauthenticated, leaving an MN
  whose number fell behind a tombstone stuck) and answered by a new BU at
  once, unless the outstanding BU was itself sent in answer to a 135; the
  new BU keeps the back-off timeout.  Forged 135s can thus at most double
  the BU rate and cannot keep an entry from failing.  147 to a
  PHKT-authenticated BU drops the PHKT and sends a CGA-signed BU at once;
  any other rejection (147 to a CGA-signed BU included) fails the entry.  A
  BA that fails these checks is ignored and the BU stays outstanding.
* Signature input.  A CGA-signed BU is signed over its IPv6 source, the CoA
  (P6), also when it is a deregistration: RFC 4866 §4.5 has no exception
  there, unlike the authenticator (P9).
* Retransmission (RFC 6275 §11.8).  The first timeout is
  InitialBindackTimeoutFirstReg (1.5 s, configurable) when the MN knows of no
  unexpired binding at the HDAR, else INITIAL_BINDACK_TIMEOUT (1 s); it
  doubles with each retransmission up to MAX_BINDACK_TIMEOUT (32 s).  When a
  32 s timeout runs out unanswered the entry is FAILED (RFC 6275 §11.7.1
  would allow retrying forever; the caller decides whether to register again).
* Lifetime.  Requested lifetimes are whole seconds from 4 to 262140, rounded
  down to 4-second units so the MN never asks for more than it was told.  The
  granted lifetime counts down from when the acknowledged BU was sent
  (RFC 6275 §11.7.3).  A binding is refreshed when the remaining lifetime
  falls to max(20 % of the granted lifetime, 10 s), but not before half of it
  has elapsed: at 80 % of the lifetime for long ones, 10 s before expiry for
  medium ones, half way for lifetimes under 20 s.  A Binding Refresh Advice in
  the BA can only bring the refresh forward.

Return routability mode (P13) is not implemented; a care-of keygen token
would enter the Kbm derivation in ``_binding_management_key``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import partial

from cryptography.hazmat.primitives.asymmetric import rsa

from fama_ryu import auth, cga, mh

INITIAL_BINDACK_TIMEOUT_S = 1.0  # RFC 6275 §12
INITIAL_BINDACK_TIMEOUT_FIRST_REG_S = 1.5  # RFC 6275 §13 default
MAX_BINDACK_TIMEOUT_S = 32.0  # RFC 6275 §12

LIFETIME_UNIT_S = 4  # BU/BA Lifetime field unit (RFC 6275 §6.1.7)
MIN_LIFETIME_S = LIFETIME_UNIT_S  # a registration lifetime must be non-zero (§11.7.1)
MAX_LIFETIME_S = 0xFFFF * LIFETIME_UNIT_S
# Short enough that tunnels of a vanished MN are torn down within minutes,
# long enough that refreshes cost next to nothing.
DEFAULT_LIFETIME_S = 600

REFRESH_REMAINING_FRACTION = 0.2
REFRESH_MIN_MARGIN_S = 10.0

SEQUENCE_SPACE = 1 << 16
# Half the sequence space: renewing there keeps every number used with one
# PHKT distinct, even if a 135 moved the sequence backwards (RFC 4866 §4.9).
PHKT_RENEWAL_DISTANCE = 1 << 15

_FIRST_REJECTION_STATUS = 128  # RFC 6275 §6.1.8: status < 128 means accepted


class BindingState(enum.Enum):
    """State of one Binding Update List entry."""

    PENDING = "pending"  # a registration BU (first, new CoA or refresh) awaits its BA
    REGISTERED = "registered"  # the last BU was accepted, nothing outstanding
    DEREGISTERING = "deregistering"  # a deregistration BU awaits its BA
    FAILED = "failed"  # rejected, or unanswered after MAX_BINDACK_TIMEOUT


class AckResult(enum.Enum):
    """What ``handle_binding_ack`` did with a Binding Acknowledgement."""

    REGISTERED = "registered"  # binding accepted, lifetime recorded
    DEREGISTERED = "deregistered"  # deregistration accepted, entry removed
    RESYNCHRONIZED = "resynchronized"  # status 135: sequence number taken from the BA
    PHKT_UNAVAILABLE = "phkt_unavailable"  # status 147: PHKT dropped, CGA-signed BU sent
    FAILED = "failed"  # the entry is FAILED, ``status`` says why
    IGNORED = "ignored"  # the BA was not believed, ``ignore_reason`` says why


class IgnoreReason(enum.Enum):
    """Why a Binding Acknowledgement was ignored (RFC 6275 §11.7.3)."""

    NOT_A_BINDING_ACK = "not_a_binding_ack"
    UNKNOWN_BINDING = "unknown_binding"  # no entry for (HoA, source)
    NOTHING_OUTSTANDING = "nothing_outstanding"
    SEQUENCE_MISMATCH = "sequence_mismatch"
    MISSING_PHKT = "missing_phkt"  # acceptance of a CGA-signed BU without a PHKT (P12)
    PHKT_UNDECRYPTABLE = "phkt_undecryptable"
    MISSING_AUTHENTICATOR = "missing_authenticator"
    BAD_AUTHENTICATOR = "bad_authenticator"


@dataclass(frozen=True)
class AckOutcome:
    """Result of handling one BA; ``packet`` is a BU to send now, if any."""

    result: AckResult
    hoa: bytes
    hdar: bytes
    status: int | None = None
    ignore_reason: IgnoreReason | None = None
    packet: bytes | None = None


@dataclass(frozen=True)
class BindingStatus:
    """Read-only view of a Binding Update List entry (the PHKT is never shown)."""

    hoa: bytes
    hdar: bytes
    coa: bytes
    state: BindingState
    last_sequence: int
    phkt_held: bool
    requested_lifetime_s: int
    granted_lifetime_s: int | None
    expires_at: float | None
    next_event_at: float | None  # next retransmission or refresh
    failure_status: int | None  # BA status that failed the entry; None on timeout


class MobileNodeIdentity:
    """The mobile node's RSA key pair, checked against the key policy (P8)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self.public_key_der = cga.public_key_der(private_key)
        # Raises CgaKeyError: a key no HDAR accepts is better refused up front.
        cga.load_public_key(self.public_key_der)
        self.private_key = private_key

    @classmethod
    def generate(cls, bits: int = cga.MIN_KEY_BITS) -> MobileNodeIdentity:
        return cls(cga.generate_rsa_key(bits))

    @classmethod
    def from_pem(cls, pem: bytes) -> MobileNodeIdentity:
        return cls(cga.load_private_key_pem(pem))

    def to_pem(self) -> bytes:
        return cga.private_key_pem(self.private_key)

    @property
    def signature_len(self) -> int:
        """Length of an RSASSA-PKCS1-v1_5 signature: the modulus length."""
        return (self.private_key.key_size + 7) // 8


@dataclass(frozen=True)
class CgaAddress:
    """A configured CGA and the parameters that prove it (RFC 3972 §4)."""

    address: bytes
    params: cga.CgaParameters


def configure_address(
    identity: MobileNodeIdentity,
    prefix: bytes,
    sec: int,
    rng: cga.RandomBytes,
    *,
    collision_count: int = 0,
) -> CgaAddress:
    """Configure a CGA in the /64 ``prefix`` (8 bytes) for this MN (P3).

    ``collision_count`` is raised (up to 2) after duplicate address detection
    found the previous address taken (RFC 3972 §4 step 8).
    """
    address, params = cga.generate_cga(
        identity.public_key_der, prefix, sec, rng, collision_count=collision_count
    )
    return CgaAddress(address, params)


@dataclass
class _Transmission:
    """The latest transmission of the BU awaiting its BA."""

    sequence: int
    # PHKT that authenticated the BU; None when it was CGA-signed.
    phkt: bytes | None = field(repr=False)
    first_address: bytes  # CoA, or HoA for a deregistration (P9)
    lifetime_units: int
    sent_at: float
    timeout_s: float
    prompted_by_135: bool  # sent at once in answer to a status 135

    @property
    def retransmit_at(self) -> float:
        return self.sent_at + self.timeout_s


@dataclass
class _Entry:
    hoa: bytes
    hdar: bytes
    cga_params: cga.CgaParameters
    coa: bytes
    requested_lifetime_s: int
    last_sequence: int
    state: BindingState
    phkt: bytes | None = field(default=None, repr=False)
    phkt_first_sequence: int = 0  # sequence number of the BU that obtained the PHKT
    granted_lifetime_s: int | None = None
    expires_at: float | None = None
    refresh_at: float | None = None
    failure_status: int | None = None
    outstanding: _Transmission | None = None


def _binding_management_key(phkt: bytes) -> bytes:
    # Basic mode (P9).  Return routability mode (P13) would pass the care-of
    # keygen token obtained for the current CoA as the second argument.
    return auth.binding_management_key(phkt, None)


def _authenticator_problem(
    packet: mh.MobilityPacket, hdar: bytes, first_address: bytes, phkt: bytes
) -> IgnoreReason | None:
    """Check a BA's Binding Authorization Data against Kbm = SHA1(phkt) (P12)."""
    received = packet.message.options.authenticator
    if received is None:
        return IgnoreReason.MISSING_AUTHENTICATOR
    expected = auth.binding_authenticator(
        _binding_management_key(phkt), first_address, hdar, packet.mh.authorized_data()
    )
    if auth.authenticator_matches(expected, received):
        return None
    return IgnoreReason.BAD_AUTHENTICATOR


def _carried_authenticator_problem(
    entry: _Entry, sent: _Transmission, packet: mh.MobilityPacket
) -> IgnoreReason | None:
    """A BA that may come unauthenticated (a rejection) must not carry a wrong authenticator."""
    if entry.phkt is None or packet.message.options.authenticator is None:
        return None
    return _authenticator_problem(packet, entry.hdar, sent.first_address, entry.phkt)


def _check_address(name: str, address: bytes) -> None:
    if len(address) != cga.ADDRESS_LEN:
        raise ValueError(f"{name} must be a {cga.ADDRESS_LEN}-byte IPv6 address")


def _refresh_margin_s(granted_lifetime_s: int) -> float:
    """Remaining lifetime at which a binding is refreshed (module docstring)."""
    margin = max(REFRESH_REMAINING_FRACTION * granted_lifetime_s, REFRESH_MIN_MARGIN_S)
    return min(margin, granted_lifetime_s / 2)


class BindingUpdateList:
    """The mobile node's Binding Update List (RFC 6275 §11.1).

    One entry per (HoA, HDAR address).  ``rng`` draws the first sequence
    number of each entry (RFC 6275 §11.7.1: any value may start).
    """

    def __init__(
        self,
        identity: MobileNodeIdentity,
        rng: cga.RandomBytes,
        *,
        initial_bindack_timeout_first_reg_s: float = INITIAL_BINDACK_TIMEOUT_FIRST_REG_S,
    ) -> None:
        self._identity = identity
        self._rng = rng
        self._first_registration_timeout_s = initial_bindack_timeout_first_reg_s
        self._entries: dict[tuple[bytes, bytes], _Entry] = {}

    # ------------------------------------------------------------ sending

    def register(
        self,
        hoa: bytes,
        cga_params: cga.CgaParameters,
        hdar: bytes,
        coa: bytes,
        now: float,
        lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> bytes:
        """Register ``coa`` for ``hoa`` at ``hdar``; return the BU packet to send.

        Creates the entry or supersedes whatever BU it had outstanding.
        """
        for name, address in (("HoA", hoa), ("HDAR address", hdar), ("CoA", coa)):
            _check_address(name, address)
        if coa == hoa:
            raise ValueError("a CoA equal to the HoA is a deregistration (P11): use deregister()")
        if not MIN_LIFETIME_S <= lifetime_s <= MAX_LIFETIME_S:
            raise ValueError(
                f"lifetime must be {MIN_LIFETIME_S}..{MAX_LIFETIME_S} s, got {lifetime_s}"
            )
        if cga_params.public_key_der != self._identity.public_key_der:
            raise ValueError("CGA parameters carry another public key than this mobile node's")
        verification = cga.verify_cga(hoa, cga_params, check_key=False)
        if not verification.ok:
            raise ValueError(f"HoA is not a CGA for these parameters: {verification.reason}")
        entry = self._entries.get((hoa, hdar))
        if entry is None:
            entry = self._entries[(hoa, hdar)] = _Entry(
                hoa=hoa,
                hdar=hdar,
                cga_params=cga_params,
                coa=coa,
                requested_lifetime_s=lifetime_s,
                # One below the drawn value, so that the first BU carries it.
                last_sequence=(self._draw_sequence() - 1) % SEQUENCE_SPACE,
                state=BindingState.PENDING,
            )
        else:
            entry.cga_params, entry.coa = cga_params, coa
            entry.requested_lifetime_s = lifetime_s
            entry.state = BindingState.PENDING
            entry.failure_status = None
        return self._transmit(entry, now, self._initial_timeout_s(entry, now))

    def deregister(self, hoa: bytes, hdar: bytes, coa: bytes, now: float) -> bytes | None:
        """Remove the binding of ``hoa`` at ``hdar`` (P11); None if there is no entry.

        ``coa`` is where the MN is now; ``coa == hoa`` means it is back on the
        HDAR's link, and the BU is then sent from the HoA without a Home
        Address option (RFC 6275 §11.5.5, §9.5.4).
        """
        _check_address("CoA", coa)
        entry = self._entries.get((hoa, hdar))
        if entry is None:
            return None
        entry.coa = coa
        entry.state = BindingState.DEREGISTERING
        entry.failure_status = None
        return self._transmit(entry, now, self._initial_timeout_s(entry, now))

    def due(self, now: float) -> list[bytes]:
        """Return the BUs to send at ``now``: retransmissions and refreshes."""
        packets = []
        for entry in self._entries.values():
            event_at = self._next_event_at(entry)
            if event_at is None or now < event_at:
                continue
            sent = entry.outstanding
            if sent is None:  # refresh of a registered binding
                entry.state = BindingState.PENDING
                packets.append(self._transmit(entry, now, self._initial_timeout_s(entry, now)))
            elif sent.timeout_s >= MAX_BINDACK_TIMEOUT_S:
                entry.state = BindingState.FAILED
                entry.outstanding = None
            else:
                timeout_s = min(2 * sent.timeout_s, MAX_BINDACK_TIMEOUT_S)
                packets.append(self._transmit(entry, now, timeout_s))
        return packets

    def next_deadline(self) -> float | None:
        """When ``due`` next has something to do; None if never."""
        deadlines = [
            event_at
            for entry in self._entries.values()
            if (event_at := self._next_event_at(entry)) is not None
        ]
        return min(deadlines, default=None)

    # ------------------------------------------------------------ receiving

    def handle_binding_ack(self, packet: mh.MobilityPacket, now: float) -> AckOutcome:
        """Process a BA from an HDAR (P12, RFC 6275 §11.7.3)."""
        # Without a type 2 Routing Header the BA went straight to the HoA
        # (deregistration from home): pseudo_destination covers both cases.
        hoa, hdar = packet.pseudo_destination, packet.source
        ba = packet.message
        if not isinstance(ba, mh.BindingAck):
            return AckOutcome(AckResult.IGNORED, hoa, hdar, None, IgnoreReason.NOT_A_BINDING_ACK)
        outcome = self._process_ack(self._entries.get((hoa, hdar)), packet, ba, now)
        if isinstance(outcome, IgnoreReason):
            return AckOutcome(AckResult.IGNORED, hoa, hdar, ba.status, outcome)
        return outcome

    def _process_ack(
        self, entry: _Entry | None, packet: mh.MobilityPacket, ba: mh.BindingAck, now: float
    ) -> AckOutcome | IgnoreReason:
        if entry is None:
            return IgnoreReason.UNKNOWN_BINDING
        sent = entry.outstanding
        if sent is None:
            return IgnoreReason.NOTHING_OUTSTANDING
        if ba.status == mh.BAStatus.SEQUENCE_OUT_OF_WINDOW:
            return self._resynchronize(entry, sent, packet, ba, now)
        if ba.sequence != sent.sequence:
            return IgnoreReason.SEQUENCE_MISMATCH
        if ba.status < _FIRST_REJECTION_STATUS:
            return self._accept(entry, sent, packet, ba)
        if ba.status == mh.BAStatus.PHKT_UNAVAILABLE and sent.phkt is not None:
            # The HDAR lost the PHKT (and with it the binding): start over signed.
            entry.phkt = None
            entry.granted_lifetime_s = entry.expires_at = entry.refresh_at = None
            bu = self._transmit(entry, now, self._initial_timeout_s(entry, now))
            return AckOutcome(
                AckResult.PHKT_UNAVAILABLE, entry.hoa, entry.hdar, ba.status, packet=bu
            )
        problem = _carried_authenticator_problem(entry, sent, packet)
        if problem is not None:
            return problem
        return self._fail(entry, ba.status)

    def _accept(
        self, entry: _Entry, sent: _Transmission, packet: mh.MobilityPacket, ba: mh.BindingAck
    ) -> AckOutcome | IgnoreReason:
        ciphertext = ba.options.permanent_home_keygen_token
        if sent.phkt is None:  # after a CGA-signed BU the BA is keyed with a new PHKT (P12)
            if ciphertext is None:
                return IgnoreReason.MISSING_PHKT
            key_phkt = auth.decrypt_phkt(self._identity.private_key, ciphertext)
            if key_phkt is None:
                return IgnoreReason.PHKT_UNDECRYPTABLE
        else:
            key_phkt = sent.phkt
        # Only now is a decrypted PHKT trustworthy (see auth.decrypt_phkt).
        problem = _authenticator_problem(packet, entry.hdar, sent.first_address, key_phkt)
        if problem is not None:
            return problem
        if sent.phkt is None:
            entry.phkt, entry.phkt_first_sequence = key_phkt, sent.sequence
        elif ciphertext is not None:
            # The HDAR renewed the PHKT (P10).  If it cannot be decrypted the
            # HDAR holds a token we lack: dropping ours makes the next BU signed.
            entry.phkt = auth.decrypt_phkt(self._identity.private_key, ciphertext)
            entry.phkt_first_sequence = sent.sequence
        entry.outstanding = None
        if entry.state is BindingState.DEREGISTERING:
            del self._entries[(entry.hoa, entry.hdar)]
            return AckOutcome(AckResult.DEREGISTERED, entry.hoa, entry.hdar, ba.status)
        granted_s = min(ba.lifetime_s, sent.lifetime_units * LIFETIME_UNIT_S)
        if granted_s == 0:
            # Accepted with no lifetime means no binding; refreshing it would
            # loop at the round-trip rate.
            return self._fail(entry, ba.status)
        entry.state = BindingState.REGISTERED
        entry.granted_lifetime_s = granted_s
        entry.expires_at = sent.sent_at + granted_s  # RFC 6275 §11.7.3 countdown
        entry.refresh_at = entry.expires_at - _refresh_margin_s(granted_s)
        advice_units = ba.options.binding_refresh_interval_units
        if advice_units:
            entry.refresh_at = min(entry.refresh_at, sent.sent_at + advice_units * LIFETIME_UNIT_S)
        return AckOutcome(AckResult.REGISTERED, entry.hoa, entry.hdar, ba.status)

    def _resynchronize(
        self,
        entry: _Entry,
        sent: _Transmission,
        packet: mh.MobilityPacket,
        ba: mh.BindingAck,
        now: float,
    ) -> AckOutcome | IgnoreReason:
        """Status 135: the BA carries the HDAR's last accepted sequence number.

        The HDAR authenticates a PHKT BU before judging its number, so the
        135 answering one carries authorization data: without it, it is
        forged.  A 135 answering a CGA BU cannot be authenticated (no PHKT
        yet) and is believed, bounded by the retransmission back-off.
        """
        if sent.phkt is not None and packet.message.options.authenticator is None:
            return IgnoreReason.MISSING_AUTHENTICATOR
        problem = _carried_authenticator_problem(entry, sent, packet)
        if problem is not None:
            return problem
        entry.last_sequence = ba.sequence
        if sent.prompted_by_135:
            # Only the next scheduled retransmission uses the new number.
            return AckOutcome(AckResult.RESYNCHRONIZED, entry.hoa, entry.hdar, ba.status)
        bu = self._transmit(entry, now, sent.timeout_s, prompted_by_135=True)
        return AckOutcome(AckResult.RESYNCHRONIZED, entry.hoa, entry.hdar, ba.status, packet=bu)

    def _fail(self, entry: _Entry, status: int) -> AckOutcome:
        entry.state = BindingState.FAILED
        entry.failure_status = status
        entry.outstanding = None
        return AckOutcome(AckResult.FAILED, entry.hoa, entry.hdar, status)

    # ------------------------------------------------------------ status

    def entries(self) -> list[BindingStatus]:
        return [
            BindingStatus(
                hoa=entry.hoa,
                hdar=entry.hdar,
                coa=entry.coa,
                state=entry.state,
                last_sequence=entry.last_sequence,
                phkt_held=entry.phkt is not None,
                requested_lifetime_s=entry.requested_lifetime_s,
                granted_lifetime_s=entry.granted_lifetime_s,
                expires_at=entry.expires_at,
                next_event_at=self._next_event_at(entry),
                failure_status=entry.failure_status,
            )
            for entry in self._entries.values()
        ]

    def forget(self, hoa: bytes, hdar: bytes) -> bool:
        """Drop an entry without telling the HDAR; return whether it existed."""
        return self._entries.pop((hoa, hdar), None) is not None

    # ------------------------------------------------------------ internals

    def _draw_sequence(self) -> int:
        drawn = self._rng(2)
        if len(drawn) != 2:
            raise ValueError(f"rng returned {len(drawn)} bytes, expected 2")
        return int.from_bytes(drawn, "big")

    def _initial_timeout_s(self, entry: _Entry, now: float) -> float:
        # RFC 6275 §11.8: the longer first timeout leaves the HDAR time for
        # DAD when it has no binding for the HoA yet.
        if entry.expires_at is not None and now < entry.expires_at:
            return INITIAL_BINDACK_TIMEOUT_S
        return self._first_registration_timeout_s

    @staticmethod
    def _next_event_at(entry: _Entry) -> float | None:
        if entry.outstanding is not None:
            return entry.outstanding.retransmit_at
        if entry.state is BindingState.REGISTERED:
            return entry.refresh_at
        return None

    def _transmit(
        self, entry: _Entry, now: float, timeout_s: float, *, prompted_by_135: bool = False
    ) -> bytes:
        """Build the entry's next BU with a fresh sequence number and record it."""
        sequence = (entry.last_sequence + 1) % SEQUENCE_SPACE
        deregistering = entry.state is BindingState.DEREGISTERING
        lifetime_units = 0 if deregistering else entry.requested_lifetime_s // LIFETIME_UNIT_S
        first_address = entry.hoa if deregistering else entry.coa
        phkt = entry.phkt
        if (
            phkt is not None
            and (sequence - entry.phkt_first_sequence) % SEQUENCE_SPACE >= PHKT_RENEWAL_DISTANCE
        ):
            phkt = None  # renew before the sequence space wraps under this PHKT
        signer: mh.Signer | None = None
        authenticator: mh.Authenticator | None = None
        options = mh.NO_OPTIONS
        if phkt is None:
            options = mh.MobilityOptions(cga_parameters=entry.cga_params.encode())
            # P6: signed over the CoA as sent, also in a deregistration.
            signer = partial(
                auth.sign_binding_update, self._identity.private_key, entry.coa, entry.hdar
            )
        else:
            authenticator = partial(
                auth.binding_authenticator,
                _binding_management_key(phkt),
                first_address,
                entry.hdar,
            )
        bu = mh.BindingUpdate(
            sequence=sequence,
            lifetime_units=lifetime_units,
            ack=True,
            home_registration=True,
            link_local_compat=False,
            key_management=False,
            options=options,
        )
        packet = mh.build_packet(
            bu,
            source=entry.coa,
            destination=entry.hdar,
            # Back at the HDAR (CoA == HoA) the BU is sent from the HoA itself.
            home_address=None if entry.coa == entry.hoa else entry.hoa,
            signer=signer,
            signature_len=self._identity.signature_len,
            authenticator=authenticator,
        )
        entry.last_sequence = sequence
        entry.outstanding = _Transmission(
            sequence=sequence,
            phkt=phkt,
            first_address=first_address,
            lifetime_units=lifetime_units,
            sent_at=now,
            timeout_s=timeout_s,
            prompted_by_135=prompted_by_135,
        )
        return packet
