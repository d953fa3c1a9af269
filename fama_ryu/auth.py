"""Binding Update authentication primitives (RFC 4866 and RFC 6275 §5.2).

The HDAR and the mobile node authenticate Binding Updates and Binding
Acknowledgements with:

* a CGA signature over the first BU for a home address (P6), checked after
  the hash-only CGA verification of ``fama_ryu.cga`` (P7);
* a Permanent Home Keygen Token, sent encrypted with the MN's public key in
  the BA that answers an accepted CGA BU (P10, P12);
* a binding management key Kbm derived from the PHKT and, in return
  routability mode, a care-of keygen token (P9, P13), which keys the
  Binding Authorization Data authenticator of later messages;
* the care-of keygen tokens themselves, issued by a DAR that requires a
  care-of test (P13).

Every RSA operation made here is counted in ``RSA_OPERATIONS`` so that tests
can prove that cheap rejections cost no public-key work.  Randomness and time
are always passed in by the caller.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fama_ryu.cga import ADDRESS_LEN, RandomBytes

# RFC 4866 §7: CGA Message Type tag of Enhanced Route Optimization (P6).
CGA_MESSAGE_TYPE_TAG = bytes.fromhex("5F2705868D6C4C56A2469EBB9B2A2E13")

PHKT_LEN = 8  # RFC 4866 §4.7: a 64-bit token (P12)
KBM_LEN = 20  # SHA-1 output
AUTHENTICATOR_LEN = 12  # First(96, ...) (RFC 6275 §6.2.7)
KEYGEN_TOKEN_LEN = 8  # First(64, ...) (RFC 6275 §5.2.5)
NODE_KEY_LEN = 20  # RFC 6275 §5.2.1: Kcn (here Kdar) is 20 random octets
NONCE_LEN = 8  # RFC 6275 §5.2.2 recommends 64-bit nonces
NONCE_INDEX_SPACE = 1 << 16  # Nonce Indices option carries 16-bit indices

# RFC 6275 §12 constants (seconds).
MAX_TOKEN_LIFETIME = 210.0
MAX_NONCE_LIFETIME = 240.0
# Backward clock steps up to this are jitter; longer ones are absorbed
# (CareOfTokenIssuer keeps nonce ages across them).
CLOCK_STEP_TOLERANCE_S = 0.5

_CARE_OF_TOKEN_DISCRIMINATOR = b"\x01"  # RFC 6275 §5.2.5: 0x01 marks care-of tokens

RsaOperationKind = Literal["sign", "verify", "encrypt", "decrypt"]


class RsaOperationCounter:
    """Counts RSA private/public-key operations by kind."""

    def __init__(self) -> None:
        self._counts: dict[RsaOperationKind, int] = dict.fromkeys(get_args(RsaOperationKind), 0)
        # Kept alongside the counts: every decision reads the total twice.
        self._total = 0

    def record(self, kind: RsaOperationKind) -> None:
        """Count one RSA operation of ``kind``."""
        self._counts[kind] += 1
        self._total += 1

    def snapshot(self) -> dict[str, int]:
        """Return a copy of the counts, every kind present (zero if unused)."""
        return {kind: count for kind, count in self._counts.items()}

    def total(self) -> int:
        """Return the number of RSA operations of all kinds."""
        return self._total

    def reset(self) -> None:
        """Set every count back to zero."""
        for kind in self._counts:
            self._counts[kind] = 0
        self._total = 0


RSA_OPERATIONS = RsaOperationCounter()
"""Process-wide count of the RSA operations made by this module."""


def _require_address(name: str, address: bytes) -> None:
    if len(address) != ADDRESS_LEN:
        raise ValueError(
            f"{name} must be a {ADDRESS_LEN}-byte IPv6 address, got {len(address)} bytes"
        )


def signature_input(coa: bytes, hdar: bytes, mh_data: bytes) -> bytes:
    """Return tag | CoA | A_HDAR | MH data, the message signed in a CGA BU (P6).

    ``mh_data`` runs from the first Mobility Header byte through the last CGA
    Parameters option, checksum zeroed (RFC 4866 §4.5); the caller builds it.
    """
    _require_address("CoA", coa)
    _require_address("HDAR address", hdar)
    return CGA_MESSAGE_TYPE_TAG + coa + hdar + mh_data


def sign_binding_update(
    private_key: rsa.RSAPrivateKey, coa: bytes, hdar: bytes, mh_data: bytes
) -> bytes:
    """Sign a CGA BU with RSASSA-PKCS1-v1_5 / SHA-1 (RFC 3972 §6, P6)."""
    message = signature_input(coa, hdar, mh_data)
    RSA_OPERATIONS.record("sign")
    return private_key.sign(message, padding.PKCS1v15(), hashes.SHA1())


def verify_binding_update_signature(
    public_key: rsa.RSAPublicKey,
    signature: bytes,
    coa: bytes,
    hdar: bytes,
    mh_data: bytes,
) -> bool:
    """Check the Signature option of a CGA BU (P7 (d)).

    Call only after ``verify_cga`` succeeded, with the key it validated.  A
    signature whose length is not the modulus length is rejected without an
    RSA operation.
    """
    message = signature_input(coa, hdar, mh_data)
    if len(signature) != _modulus_len(public_key):
        return False
    RSA_OPERATIONS.record("verify")
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def _modulus_len(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> int:
    return (key.key_size + 7) // 8


def generate_phkt(rng: RandomBytes) -> bytes:
    """Draw a fresh 8-byte Permanent Home Keygen Token (RFC 4866 §4.7, P12)."""
    phkt = rng(PHKT_LEN)
    if len(phkt) != PHKT_LEN:
        raise ValueError(f"rng returned {len(phkt)} bytes, expected {PHKT_LEN}")
    return phkt


def encrypt_phkt(public_key: rsa.RSAPublicKey, phkt: bytes) -> bytes:
    """Encrypt a PHKT for the MN with RSAES-PKCS1-v1_5 (P12).

    The ciphertext is as long as the modulus (128..255 bytes under P8).  The
    padding randomness comes from cryptography (the OS RNG), as the
    encryption scheme requires fresh random padding per message.
    """
    if len(phkt) != PHKT_LEN:
        raise ValueError(f"PHKT must be {PHKT_LEN} bytes, got {len(phkt)}")
    RSA_OPERATIONS.record("encrypt")
    return public_key.encrypt(phkt, padding.PKCS1v15())


def decrypt_phkt(private_key: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes | None:
    """Decrypt a Permanent Home Keygen Token option; never raises for bad input.

    Returns None for a ciphertext of the wrong length (without an RSA
    operation), a detected padding error, or a plaintext that is not 8 bytes.
    OpenSSL 3.2+ applies implicit rejection: a bad padding may decrypt to a
    pseudorandom plaintext instead of failing, occasionally 8 bytes long.  A
    non-None result is therefore only trustworthy once the BA authenticator,
    keyed with SHA1(PHKT), has verified (P12).
    """
    if len(ciphertext) != _modulus_len(private_key):
        return None
    RSA_OPERATIONS.record("decrypt")
    try:
        phkt = private_key.decrypt(ciphertext, padding.PKCS1v15())
    except ValueError:
        return None
    return phkt if len(phkt) == PHKT_LEN else None


def binding_management_key(phkt: bytes | None, care_of_keygen_token: bytes | None) -> bytes:
    """Derive Kbm (P9, P13).

    * PHKT only (basic mode): SHA1(PHKT)
    * PHKT and care-of keygen token (return routability mode): SHA1(PHKT | token)
    * token only (first CGA BU in return routability mode): SHA1(token)
    """
    if phkt is not None and len(phkt) != PHKT_LEN:
        raise ValueError(f"PHKT must be {PHKT_LEN} bytes, got {len(phkt)}")
    if care_of_keygen_token is not None and len(care_of_keygen_token) != KEYGEN_TOKEN_LEN:
        raise ValueError(
            f"care-of keygen token must be {KEYGEN_TOKEN_LEN} bytes, "
            f"got {len(care_of_keygen_token)}"
        )
    if phkt is None and care_of_keygen_token is None:
        raise ValueError("Kbm needs a PHKT, a care-of keygen token, or both")
    return hashlib.sha1((phkt or b"") + (care_of_keygen_token or b"")).digest()


_SHA1_BLOCK_LEN = 64
_HMAC_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_HMAC_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class BindingKey:
    """Kbm keyed into HMAC-SHA1 once, for the authenticators of P9 and P12.

    The inner and outer hashes of HMAC start from the key alone (RFC 2104
    §4), so they are hashed here once; each authenticator then copies them,
    about half the cost of a one-shot ``hmac.digest``, which sets the key
    up on every call.  A decision makes two authenticators with one Kbm:
    the BU's and its BA's.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, kbm: bytes) -> None:
        if len(kbm) != KBM_LEN:
            raise ValueError(f"Kbm must be {KBM_LEN} bytes, got {len(kbm)}")
        block = kbm.ljust(_SHA1_BLOCK_LEN, b"\x00")  # 20 bytes: no pre-hash (RFC 2104 §2)
        self._inner = hashlib.sha1(block.translate(_HMAC_INNER_PAD))
        self._outer = hashlib.sha1(block.translate(_HMAC_OUTER_PAD))

    def authenticator(self, first_address: bytes, hdar: bytes, mh_data: bytes) -> bytes:
        """Return First(96, HMAC_SHA1(Kbm, first_address | A_HDAR | MH data)) (P9, P12).

        ``first_address`` is the CoA, or the HoA for a deregistration and
        for the BA answering it (RFC 6275 §6.2.7); the caller picks.
        ``mh_data`` is the message without the Authenticator field,
        checksum zeroed.
        """
        if len(first_address) != ADDRESS_LEN or len(hdar) != ADDRESS_LEN:
            _require_address("first address", first_address)
            _require_address("HDAR address", hdar)
        inner = self._inner.copy()
        inner.update(first_address + hdar + mh_data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:AUTHENTICATOR_LEN]


def binding_authenticator(kbm: bytes, first_address: bytes, hdar: bytes, mh_data: bytes) -> bytes:
    """One authenticator keyed by ``kbm``: see :meth:`BindingKey.authenticator`."""
    return BindingKey(kbm).authenticator(first_address, hdar, mh_data)


def authenticator_matches(expected: bytes, received: bytes) -> bool:
    """Compare authenticators in constant time (no timing oracle on the MAC)."""
    return hmac.compare_digest(expected, received)


@dataclass(frozen=True)
class _Nonce:
    value: bytes
    introduced_at: float


class CareOfTokenIssuer:
    """Care-of keygen tokens of a DAR that requires a care-of test (P13).

    Nonces (RFC 6275 §5.2.2, §5.2.7) are drawn from ``rng``.  The current
    nonce is replaced by ``issue`` once it is ``nonce_interval_s`` old, so a
    nonce is only ever handed out during its first ``nonce_interval_s``
    seconds.  Indices count up from 0 and wrap modulo 2^16.

    Acceptance rule: a nonce index is valid while
    ``0 <= now - introduced_at < MAX_NONCE_LIFETIME`` (240 s), where
    ``introduced_at`` is the time the nonce became current.  Because
    ``nonce_interval_s <= MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME`` (30 s),
    every token stays valid for at least MAX_TOKEN_LIFETIME (210 s) after it
    was issued and never beyond 240 s after its nonce was first used, which
    are the two bounds of RFC 6275 §5.2.7.  The mobile node must therefore
    use a token within 210 s of receiving it.

    Expired nonces are dropped on every call, so at most
    ceil(MAX_NONCE_LIFETIME / nonce_interval_s) nonces are held (8 with the
    default interval).  A wall clock will do: when ``now`` steps backwards,
    every nonce's age is kept (their times move back with it), so a clock
    correction never invalidates live tokens nor freezes rotation; a forward
    step only ages them, which costs the MN a new care-of test at worst.
    """

    def __init__(
        self,
        kdar: bytes,
        rng: RandomBytes,
        now: float,
        *,
        nonce_interval_s: float = MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME,
    ) -> None:
        if len(kdar) != NODE_KEY_LEN:
            raise ValueError(f"Kdar must be {NODE_KEY_LEN} bytes, got {len(kdar)}")
        if not 0 < nonce_interval_s <= MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME:
            raise ValueError(
                "nonce interval must be in (0, MAX_NONCE_LIFETIME - "
                "MAX_TOKEN_LIFETIME] so every token lives at least "
                f"MAX_TOKEN_LIFETIME, got {nonce_interval_s}"
            )
        self._kdar = kdar
        self._rng = rng
        self._nonce_interval_s = nonce_interval_s
        self._nonces: dict[int, _Nonce] = {}
        self._current_index = 0
        self._last_now = now
        self._introduce_nonce(0, now)

    @property
    def live_nonce_count(self) -> int:
        """Number of nonces currently held (bounded, see class docstring)."""
        return len(self._nonces)

    def issue(self, coa: bytes, now: float) -> tuple[int, bytes]:
        """Answer a Care-of Test Init: return (care-of nonce index, keygen token)."""
        _require_address("CoA", coa)
        self._follow_clock(now)
        current = self._nonces[self._current_index]
        if now - current.introduced_at >= self._nonce_interval_s:
            self._introduce_nonce((self._current_index + 1) % NONCE_INDEX_SPACE, now)
        self._drop_expired(now)
        return self._current_index, self._token(coa, self._nonces[self._current_index].value)

    def token_for(self, coa: bytes, nonce_index: int, now: float) -> bytes | None:
        """Recompute the care-of keygen token for a BU's care-of nonce index.

        Returns None if the index is unknown or its nonce has expired (the
        caller answers status 137, P13).
        """
        _require_address("CoA", coa)
        self._follow_clock(now)
        self._drop_expired(now)
        nonce = self._nonces.get(nonce_index)
        # The current nonce is never dropped (issue() needs it), so its age
        # is checked here rather than relying on _drop_expired.
        if nonce is None:
            return None
        if not -CLOCK_STEP_TOLERANCE_S <= now - nonce.introduced_at < MAX_NONCE_LIFETIME:
            return None
        return self._token(coa, nonce.value)

    def _follow_clock(self, now: float) -> None:
        """Absorb a backward clock step by moving every nonce's time with it.

        Steps shorter than CLOCK_STEP_TOLERANCE_S are ordinary jitter
        between callers and are ignored.
        """
        if now < self._last_now - CLOCK_STEP_TOLERANCE_S:
            step = now - self._last_now
            self._nonces = {
                index: _Nonce(nonce.value, nonce.introduced_at + step)
                for index, nonce in self._nonces.items()
            }
            self._last_now = now
        else:
            self._last_now = max(self._last_now, now)

    def _introduce_nonce(self, index: int, now: float) -> None:
        value = self._rng(NONCE_LEN)
        if len(value) != NONCE_LEN:
            raise ValueError(f"rng returned {len(value)} bytes, expected {NONCE_LEN}")
        # After a wrap the index may still name a live nonce only if the
        # interval is below 240 s / 2^16; replacing it merely invalidates it.
        self._nonces[index] = _Nonce(value, now)
        self._current_index = index

    def _drop_expired(self, now: float) -> None:
        expired = [
            index
            for index, nonce in self._nonces.items()
            if now - nonce.introduced_at >= MAX_NONCE_LIFETIME and index != self._current_index
        ]
        for index in expired:
            del self._nonces[index]

    def _token(self, coa: bytes, nonce: bytes) -> bytes:
        # RFC 6275 §5.2.5: First(64, HMAC_SHA1(Kcn, CoA | nonce | 0x01)).
        mac = hmac.digest(self._kdar, coa + nonce + _CARE_OF_TOKEN_DISCRIMINATOR, "sha1")
        return mac[:KEYGEN_TOKEN_LEN]
