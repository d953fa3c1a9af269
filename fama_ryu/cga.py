"""Cryptographically Generated Addresses (RFC 3972) for FAMA home addresses.

The mobile node configures a CGA in every prefix it attaches to (P3) and the
HDAR verifies it before accepting a first Binding Update (P7).  This module is
the pure, side-effect-free part of that work:

* the CGA Parameters data structure (RFC 3972 §3) with a strict decoder,
  including the RFC 4581 TLV format of the extension fields;
* CGA verification (RFC 3972 §5), which only hashes: it never performs an RSA
  operation, so a forged CGA BU is rejected cheaply;
* CGA generation (RFC 3972 §4), with randomness passed in by the caller;
* RSA key helpers enforcing the profile's key policy (P8: 1024..2040 bits,
  public exponent 65537).

Addresses are 16-byte ``bytes`` in network order; subnet prefixes are the
8 leading bytes of an address.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RandomBytes = Callable[[int], bytes]
"""Source of random bytes, ``rng(n)`` returns exactly ``n`` bytes (e.g. os.urandom)."""

ADDRESS_LEN = 16
MODIFIER_LEN = 16
SUBNET_PREFIX_LEN = 8
# Modifier, subnet prefix and collision count precede the public key (§3).
FIXED_PARAMETERS_LEN = MODIFIER_LEN + SUBNET_PREFIX_LEN + 1
MAX_COLLISION_COUNT = 2
MAX_SEC = 7

# P8: a Signature and an encrypted PHKT must each fit one 255-byte option.
MIN_KEY_BITS = 1024
MAX_KEY_BITS = 2040
RSA_PUBLIC_EXPONENT = 65537

# RFC 3972 §2: Hash1 is compared with the interface identifier ignoring the
# Sec bits (0-2) and the u/g bits (6-7).
_MASK1 = 0x1CFFFFFFFFFFFFFF
_SEC_SHIFT = 61
_MODIFIER_SPACE = 1 << (8 * MODIFIER_LEN)

_DER_SEQUENCE_TAG = 0x30
_EXTENSION_HEADER_LEN = 4  # RFC 4581: 16-bit type, 16-bit data length


class CgaDecodeError(ValueError):
    """A CGA Parameters data structure (or one of its parts) is malformed."""


class CgaKeyError(ValueError):
    """A public or private key is unusable under the profile's key policy (P8)."""


class CgaGenerationError(RuntimeError):
    """The modifier search ended without finding a modifier for the requested Sec."""


def _der_sequence_length(data: bytes, offset: int) -> int:
    """Return the total length (header + content) of the DER SEQUENCE at ``offset``.

    The public key field has no length of its own: RFC 3972 §3 says its end
    is given by the ASN.1 encoding, so only the outer SEQUENCE header is read.
    """
    available = len(data) - offset
    if available < 2:
        raise CgaDecodeError(
            f"truncated: public key needs a 2-byte DER header, {available} byte(s) left"
        )
    if data[offset] != _DER_SEQUENCE_TAG:
        raise CgaDecodeError(
            f"public key does not start with a DER SEQUENCE tag 0x30 (got 0x{data[offset]:02x})"
        )
    first_length_byte = data[offset + 1]
    if first_length_byte < 0x80:
        header_len, content_len = 2, first_length_byte
    elif first_length_byte in (0x81, 0x82):
        length_octets = first_length_byte & 0x7F
        header_len = 2 + length_octets
        if available < header_len:
            raise CgaDecodeError("truncated: public key DER length octets are cut off")
        content_len = int.from_bytes(data[offset + 2 : offset + header_len], "big")
        # DER requires the shortest length form; anything else is not DER.
        smallest_needing_this_form = 0x80 if length_octets == 1 else 0x100
        if content_len < smallest_needing_this_form:
            raise CgaDecodeError("public key DER length is not minimally encoded")
    elif first_length_byte == 0x80:
        raise CgaDecodeError("public key uses an indefinite length, which DER forbids")
    else:
        # More than 2 length octets means a key over 64 KiB: not a CGA key.
        raise CgaDecodeError("public key DER length is implausibly large")
    total_len = header_len + content_len
    if total_len > available:
        raise CgaDecodeError(
            f"truncated: public key needs {total_len} bytes, {available} byte(s) left"
        )
    return total_len


def _check_extension_fields(extension_fields: bytes) -> None:
    """Reject extension fields that are not a sequence of RFC 4581 TLVs."""
    offset = 0
    while offset < len(extension_fields):
        remaining = len(extension_fields) - offset
        if remaining < _EXTENSION_HEADER_LEN:
            raise CgaDecodeError(
                f"malformed extension field at offset {offset}: "
                f"{remaining} byte(s) left, a TLV header needs {_EXTENSION_HEADER_LEN}"
            )
        data_len = int.from_bytes(extension_fields[offset + 2 : offset + 4], "big")
        if data_len > remaining - _EXTENSION_HEADER_LEN:
            raise CgaDecodeError(
                f"malformed extension field at offset {offset}: declares {data_len} "
                f"data byte(s), only {remaining - _EXTENSION_HEADER_LEN} present"
            )
        offset += _EXTENSION_HEADER_LEN + data_len


def encode_extension_fields(fields: Iterable[tuple[int, bytes]]) -> bytes:
    """Encode ``(extension type, extension data)`` pairs as RFC 4581 TLVs."""
    encoded = bytearray()
    for extension_type, data in fields:
        if not 0 <= extension_type <= 0xFFFF:
            raise ValueError(f"extension type {extension_type} does not fit 16 bits")
        if len(data) > 0xFFFF:
            raise ValueError(f"extension data of {len(data)} bytes does not fit 16 bits")
        encoded += extension_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    return bytes(encoded)


@dataclass(frozen=True)
class CgaParameters:
    """The CGA Parameters data structure of RFC 3972 §3.

    Construction validates field sizes (ValueError) and the structure of the
    public key DER header and extension fields (CgaDecodeError), so that
    ``CgaParameters.decode(p.encode()) == p`` holds for every instance.  The
    key itself is only checked against the key policy by ``verify_cga``.
    """

    modifier: bytes
    subnet_prefix: bytes
    collision_count: int
    public_key_der: bytes
    extension_fields: bytes = b""

    def __post_init__(self) -> None:
        if len(self.modifier) != MODIFIER_LEN:
            raise ValueError(f"modifier must be {MODIFIER_LEN} bytes, got {len(self.modifier)}")
        if len(self.subnet_prefix) != SUBNET_PREFIX_LEN:
            raise ValueError(
                f"subnet prefix must be {SUBNET_PREFIX_LEN} bytes, got {len(self.subnet_prefix)}"
            )
        # Any 8-bit value is representable; verification rejects values > 2.
        if not 0 <= self.collision_count <= 0xFF:
            raise ValueError(f"collision count {self.collision_count} does not fit 8 bits")
        if _der_sequence_length(self.public_key_der, 0) != len(self.public_key_der):
            raise CgaDecodeError("public key has bytes after its DER SEQUENCE")
        _check_extension_fields(self.extension_fields)

    def encode(self) -> bytes:
        """Serialize as modifier | prefix | collision count | key | extensions."""
        return b"".join(
            (
                self.modifier,
                self.subnet_prefix,
                bytes((self.collision_count,)),
                self.public_key_der,
                self.extension_fields,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> CgaParameters:
        """Parse a (reassembled, P6) CGA Parameters data structure.

        Raises CgaDecodeError for truncated data, a public key that is not a
        DER SEQUENCE, or extension fields that are not RFC 4581 TLVs.
        """
        if len(data) < FIXED_PARAMETERS_LEN:
            raise CgaDecodeError(
                f"truncated: CGA Parameters need at least {FIXED_PARAMETERS_LEN} bytes "
                f"before the public key, got {len(data)}"
            )
        key_end = FIXED_PARAMETERS_LEN + _der_sequence_length(data, FIXED_PARAMETERS_LEN)
        return cls(
            modifier=data[:MODIFIER_LEN],
            subnet_prefix=data[MODIFIER_LEN : MODIFIER_LEN + SUBNET_PREFIX_LEN],
            collision_count=data[MODIFIER_LEN + SUBNET_PREFIX_LEN],
            public_key_der=data[FIXED_PARAMETERS_LEN:key_end],
            extension_fields=data[key_end:],
        )


class CgaStep(IntEnum):
    """Where a CGA verification failed.

    Values are the RFC 3972 §5 step numbers at which a check can fail (steps
    3, 5 and 6 only compute values and cannot fail); PUBLIC_KEY is the
    profile's key policy (P8), checked after step 7.
    """

    COLLISION_COUNT = 1  # collision count must be 0, 1 or 2
    SUBNET_PREFIX = 2  # parameters' subnet prefix must equal the address /64
    HASH1 = 4  # Hash1 must equal the interface identifier (masked)
    HASH2 = 7  # the 16*Sec leftmost bits of Hash2 must be zero
    PUBLIC_KEY = 8  # RSA, 65537, size within the configured bounds (P8)


@dataclass(frozen=True)
class CgaVerification:
    """Outcome of ``verify_cga``; ``sec`` is read from the address (§5 step 5)."""

    ok: bool
    failed_step: CgaStep | None
    reason: str
    sec: int


def address_sec(address: bytes) -> int:
    """Return the Sec value encoded in bits 0-2 of the interface identifier."""
    return address[SUBNET_PREFIX_LEN] >> 5


def _hash1(encoded_parameters: bytes) -> int:
    return int.from_bytes(hashlib.sha1(encoded_parameters).digest()[:8], "big")


def _hash2_input_suffix(public_key_der: bytes, extension_fields: bytes) -> bytes:
    # Hash2 input = modifier | 9 zero octets (prefix and collision count) | key | ext.
    return bytes(SUBNET_PREFIX_LEN + 1) + public_key_der + extension_fields


def _interface_identifier(hash1: int, sec: int) -> bytes:
    return ((hash1 & _MASK1) | (sec << _SEC_SHIFT)).to_bytes(8, "big")


def verify_cga(
    address: bytes,
    params: CgaParameters,
    *,
    min_key_bits: int = MIN_KEY_BITS,
    max_key_bits: int = MAX_KEY_BITS,
    check_key: bool = True,
) -> CgaVerification:
    """Verify that ``address`` is a CGA for ``params`` (RFC 3972 §5; P7 (a)-(c)).

    Only SHA-1 is computed and the public key DER is parsed; no RSA operation
    is performed, so a caller can run this before the signature check.  With
    ``check_key`` the key must also pass ``load_public_key`` (P8).  A
    SUBNET_PREFIX failure is P7 (b) (status 132); every other failure is
    status 148.  Whether the prefix is one of the DAR's is the caller's check.
    """
    if len(address) != ADDRESS_LEN:
        raise ValueError(f"address must be {ADDRESS_LEN} bytes, got {len(address)}")
    sec = address_sec(address)

    def failure(step: CgaStep, reason: str) -> CgaVerification:
        return CgaVerification(ok=False, failed_step=step, reason=reason, sec=sec)

    if params.collision_count > MAX_COLLISION_COUNT:
        return failure(
            CgaStep.COLLISION_COUNT,
            f"collision count {params.collision_count} is above 2",
        )
    if params.subnet_prefix != address[:SUBNET_PREFIX_LEN]:
        return failure(
            CgaStep.SUBNET_PREFIX,
            f"CGA subnet prefix {params.subnet_prefix.hex()} differs from the "
            f"address prefix {address[:SUBNET_PREFIX_LEN].hex()}",
        )
    interface_id = int.from_bytes(address[SUBNET_PREFIX_LEN:], "big")
    if _hash1(params.encode()) & _MASK1 != interface_id & _MASK1:
        return failure(CgaStep.HASH1, "Hash1 does not match the interface identifier")
    if sec > 0:  # §5: with Sec=0 step 7 cannot fail, so Hash2 is skipped
        hash2_input = params.modifier + _hash2_input_suffix(
            params.public_key_der, params.extension_fields
        )
        if any(hashlib.sha1(hash2_input).digest()[: 2 * sec]):
            return failure(CgaStep.HASH2, f"the leftmost {16 * sec} bits of Hash2 are not all zero")
    if check_key:
        try:
            load_public_key(params.public_key_der, min_bits=min_key_bits, max_bits=max_key_bits)
        except CgaKeyError as error:
            return failure(CgaStep.PUBLIC_KEY, str(error))
    return CgaVerification(ok=True, failed_step=None, reason="CGA verified", sec=sec)


def generate_cga(
    public_key_der: bytes,
    subnet_prefix: bytes,
    sec: int,
    rng: RandomBytes,
    *,
    collision_count: int = 0,
    extension_fields: bytes = b"",
    max_modifier_iterations: int | None = None,
) -> tuple[bytes, CgaParameters]:
    """Generate a CGA in ``subnet_prefix`` (RFC 3972 §4, P3); return (address, params).

    The modifier starts at ``rng(16)`` and is incremented as a 128-bit integer
    until the 16*Sec leftmost bits of Hash2 are zero; expected work is
    2^(16*Sec) SHA-1 computations, so Sec 0 and 1 are cheap (Sec 1: ~0.1 s)
    and Sec 2 takes over an hour in Python.  ``collision_count`` is the RFC's step 8 input (0-2),
    used after duplicate address detection found a collision.  Raises
    CgaGenerationError if ``max_modifier_iterations`` hashes were not enough.
    """
    if not 0 <= sec <= MAX_SEC:
        raise ValueError(f"Sec must be 0..{MAX_SEC}, got {sec}")
    if not 0 <= collision_count <= MAX_COLLISION_COUNT:
        raise ValueError(f"collision count must be 0..{MAX_COLLISION_COUNT}, got {collision_count}")
    initial_modifier = rng(MODIFIER_LEN)
    if len(initial_modifier) != MODIFIER_LEN:
        raise ValueError(f"rng returned {len(initial_modifier)} bytes, expected {MODIFIER_LEN}")
    # Validates the key DER header and the extension TLVs before the search.
    CgaParameters(
        initial_modifier,
        subnet_prefix,
        collision_count,
        public_key_der,
        extension_fields,
    )

    modifier = initial_modifier
    if sec > 0:
        # The modifier leads the hash input, so only the constant tail can be
        # prepared once; the loop is kept minimal because it runs ~2^16 times.
        suffix = _hash2_input_suffix(public_key_der, extension_fields)
        required_zero_prefix = bytes(2 * sec)
        sha1 = hashlib.sha1
        candidate = int.from_bytes(initial_modifier, "big")
        attempts = (
            itertools.count() if max_modifier_iterations is None else range(max_modifier_iterations)
        )
        for _ in attempts:
            modifier = candidate.to_bytes(MODIFIER_LEN, "big")
            if sha1(modifier + suffix).digest().startswith(required_zero_prefix):
                break
            candidate = (candidate + 1) % _MODIFIER_SPACE
        else:
            raise CgaGenerationError(
                f"no modifier for Sec={sec} within {max_modifier_iterations} iterations"
            )

    params = CgaParameters(
        modifier, subnet_prefix, collision_count, public_key_der, extension_fields
    )
    address = subnet_prefix + _interface_identifier(_hash1(params.encode()), sec)
    return address, params


def generate_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """Generate an RSA key with public exponent 65537 (P8); ``bits`` >= 1024."""
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits)


def public_key_der(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """Return the DER SubjectPublicKeyInfo of ``key``, the CGA public key field."""
    public_key = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(
    der: bytes, *, min_bits: int = MIN_KEY_BITS, max_bits: int = MAX_KEY_BITS
) -> rsa.RSAPublicKey:
    """Parse a DER SubjectPublicKeyInfo and enforce the key policy (P8).

    Raises CgaKeyError unless it is an RSA key of ``min_bits``..``max_bits``
    bits with public exponent 65537.  Parsing is not an RSA operation, so
    this is a cheap check to run before any signature verification.
    """
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as error:
        raise CgaKeyError(f"public key is not a valid SubjectPublicKeyInfo: {error}") from error
    except UnsupportedAlgorithm as error:
        # An algorithm OID cryptography does not know: not ValueError (found by fuzz/fuzz_cga.py).
        raise CgaKeyError(f"public key of an unsupported algorithm: {error}") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise CgaKeyError(f"public key is {type(key).__name__}, not RSA")
    if not min_bits <= key.key_size <= max_bits:
        raise CgaKeyError(f"RSA key has {key.key_size} bits, allowed {min_bits}..{max_bits}")
    exponent = key.public_numbers().e
    if exponent != RSA_PUBLIC_EXPONENT:
        raise CgaKeyError(f"RSA public exponent is {exponent}, only 65537 is accepted")
    return key


def load_private_key_pem(data: bytes) -> rsa.RSAPrivateKey:
    """Load an unencrypted PEM private key; raises CgaKeyError unless it is RSA."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise CgaKeyError(f"cannot load private key PEM: {error}") from error
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CgaKeyError(f"private key is {type(key).__name__}, not RSA")
    return key


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """Serialize ``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
