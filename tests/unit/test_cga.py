"""Unit tests for fama_ryu.cga: RFC 3972 parameters, verification, generation, keys."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from fama_ryu.cga import (
    CgaDecodeError,
    CgaGenerationError,
    CgaKeyError,
    CgaParameters,
    CgaStep,
    encode_extension_fields,
    generate_cga,
    generate_rsa_key,
    load_private_key_pem,
    load_public_key,
    private_key_pem,
    public_key_der,
    verify_cga,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PREFIX = ipaddress.IPv6Address("2001:db8:1::").packed[:8]
OTHER_PREFIX = ipaddress.IPv6Address("2001:db8:2::").packed[:8]


def fixed_rng(value: bytes) -> Callable[[int], bytes]:
    """An rng that returns ``value``, checking that exactly its length is asked for."""

    def rng(n: int) -> bytes:
        assert n == len(value)
        return value

    return rng


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def rsa_public_key_with(bits: int, exponent: int = 65537) -> rsa.RSAPublicKey:
    """A public key with an exact modulus size, without generating a key pair.

    Only the key policy is under test, so the modulus need not be a product
    of two primes; this also reaches sizes cryptography refuses to generate.
    """
    modulus = random.Random(bits).getrandbits(bits) | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def flip_bit(data: bytes, bit_index: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit_index // 8] ^= 0x80 >> (bit_index % 8)
    return bytes(flipped)


@pytest.fixture(scope="module")
def rfc_example() -> dict[str, Any]:
    with (FIXTURES / "rfc3972_appendix_a.json").open() as fixture:
        data: dict[str, Any] = json.load(fixture)
    return data


@pytest.fixture(scope="module")
def rfc_address(rfc_example: dict[str, Any]) -> bytes:
    return ipaddress.IPv6Address(rfc_example["address"]).packed


@pytest.fixture(scope="module")
def rfc_params(rfc_example: dict[str, Any]) -> CgaParameters:
    return CgaParameters.decode(bytes.fromhex(rfc_example["cga_parameters"]))


@pytest.fixture(scope="module")
def key1024() -> rsa.RSAPrivateKey:
    return generate_rsa_key(1024)


@pytest.fixture(scope="module")
def key1024_der(key1024: rsa.RSAPrivateKey) -> bytes:
    return public_key_der(key1024)


@pytest.fixture(scope="module")
def sec1_cga(key1024_der: bytes) -> tuple[bytes, CgaParameters]:
    return generate_cga(key1024_der, PREFIX, 1, seeded_rng(1))


# --- RFC 3972 Appendix A ---------------------------------------------------


def test_rfc_example_decodes_into_its_fields(
    rfc_example: dict[str, Any], rfc_params: CgaParameters
) -> None:
    assert rfc_params.modifier == bytes.fromhex(rfc_example["modifier"])
    assert rfc_params.subnet_prefix == bytes.fromhex(rfc_example["subnet_prefix"])
    assert rfc_params.collision_count == 0
    assert rfc_params.public_key_der == bytes.fromhex(rfc_example["public_key_der"])
    assert rfc_params.extension_fields == b""


def test_rfc_example_encode_round_trip(
    rfc_example: dict[str, Any], rfc_params: CgaParameters
) -> None:
    assert rfc_params.encode() == bytes.fromhex(rfc_example["cga_parameters"])


def test_rfc_example_verifies_with_sec_1_when_key_policy_is_off(
    rfc_address: bytes, rfc_params: CgaParameters
) -> None:
    result = verify_cga(rfc_address, rfc_params, check_key=False)
    assert result.ok
    assert result.failed_step is None
    assert result.sec == 1


def test_rfc_example_512_bit_key_fails_profile_key_policy(
    rfc_example: dict[str, Any], rfc_address: bytes, rfc_params: CgaParameters
) -> None:
    assert rfc_example["public_key_bits"] == 512
    result = verify_cga(rfc_address, rfc_params)
    assert not result.ok
    assert result.failed_step is CgaStep.PUBLIC_KEY
    assert "512" in result.reason


def test_rfc_example_verifies_with_lowered_minimum_key_size(
    rfc_address: bytes, rfc_params: CgaParameters
) -> None:
    assert verify_cga(rfc_address, rfc_params, min_key_bits=512).ok


def test_generation_reproduces_rfc_example(rfc_example: dict[str, Any], rfc_address: bytes) -> None:
    # The RFC's initial modifier fails Hash2 once, then modifier + 1 succeeds.
    address, params = generate_cga(
        bytes.fromhex(rfc_example["public_key_der"]),
        bytes.fromhex(rfc_example["subnet_prefix"]),
        rfc_example["sec"],
        fixed_rng(bytes.fromhex(rfc_example["initial_modifier"])),
    )
    assert address == rfc_address
    assert params.encode() == bytes.fromhex(rfc_example["cga_parameters"])


def test_modifier_search_limit(rfc_example: dict[str, Any]) -> None:
    def generate(limit: int) -> tuple[bytes, CgaParameters]:
        return generate_cga(
            bytes.fromhex(rfc_example["public_key_der"]),
            bytes.fromhex(rfc_example["subnet_prefix"]),
            1,
            fixed_rng(bytes.fromhex(rfc_example["initial_modifier"])),
            max_modifier_iterations=limit,
        )

    with pytest.raises(CgaGenerationError):
        generate(1)
    assert generate(2)[1].modifier == bytes.fromhex(rfc_example["modifier"])


# --- verification steps ------------------------------------------------------


def test_generated_sec1_cga_verifies(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    result = verify_cga(address, params)
    assert result.ok
    assert result.sec == 1
    assert result.failed_step is None


def test_collision_count_3_fails_step_1(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    result = verify_cga(address, replace(params, collision_count=3))
    assert not result.ok
    assert result.failed_step is CgaStep.COLLISION_COUNT


def test_collision_count_is_checked_before_prefix(
    sec1_cga: tuple[bytes, CgaParameters],
) -> None:
    address, params = sec1_cga
    bad = replace(params, collision_count=255, subnet_prefix=OTHER_PREFIX)
    assert verify_cga(address, bad).failed_step is CgaStep.COLLISION_COUNT


def test_wrong_subnet_prefix_fails_step_2(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    moved_address = OTHER_PREFIX + address[8:]
    result = verify_cga(moved_address, params)
    assert result.failed_step is CgaStep.SUBNET_PREFIX
    result = verify_cga(address, replace(params, subnet_prefix=OTHER_PREFIX))
    assert result.failed_step is CgaStep.SUBNET_PREFIX


@pytest.mark.parametrize("bit", [3, 4, 5, *range(8, 64)])
def test_flipping_a_checked_interface_id_bit_fails_hash1(
    sec1_cga: tuple[bytes, CgaParameters], bit: int
) -> None:
    address, params = sec1_cga
    result = verify_cga(flip_bit(address, 64 + bit), params)
    assert not result.ok
    assert result.failed_step is CgaStep.HASH1


@pytest.mark.parametrize("bit", [6, 7])
def test_u_and_g_bits_are_ignored(sec1_cga: tuple[bytes, CgaParameters], bit: int) -> None:
    address, params = sec1_cga
    assert verify_cga(flip_bit(address, 64 + bit), params).ok


def test_changed_parameters_fail_hash1(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    other_modifier = flip_bit(params.modifier, 127)
    assert verify_cga(address, replace(params, modifier=other_modifier)).failed_step is (
        CgaStep.HASH1
    )
    assert verify_cga(address, replace(params, collision_count=1)).failed_step is (CgaStep.HASH1)
    # Unrecognized extension fields are hashed too (RFC 3972 §5).
    with_extension = replace(params, extension_fields=encode_extension_fields([(1, b"x")]))
    assert verify_cga(address, with_extension).failed_step is CgaStep.HASH1


def test_claiming_higher_sec_fails_hash2(rfc_address: bytes, rfc_params: CgaParameters) -> None:
    # Sec bits are excluded from Hash1, so only Hash2 catches an inflated Sec.
    # The RFC's Hash2 (0000 01ca ...) has 16 leading zero bits, not 32.
    claimed_sec2 = rfc_address[:8] + bytes((rfc_address[8] & 0x1F | 2 << 5,)) + rfc_address[9:]
    result = verify_cga(claimed_sec2, rfc_params, check_key=False)
    assert result.failed_step is CgaStep.HASH2
    assert result.sec == 2


def test_claiming_lower_sec_still_verifies(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    claimed_sec0 = address[:8] + bytes((address[8] & 0x1F,)) + address[9:]
    result = verify_cga(claimed_sec0, params)
    assert result.ok
    assert result.sec == 0


def test_hash2_failure_with_rfc_initial_modifier(rfc_example: dict[str, Any]) -> None:
    # RFC Appendix A: Hash2 for the initial modifier starts 436b, so Sec 1 fails.
    address, params = generate_cga(
        bytes.fromhex(rfc_example["public_key_der"]),
        bytes.fromhex(rfc_example["subnet_prefix"]),
        0,
        fixed_rng(bytes.fromhex(rfc_example["initial_modifier"])),
    )
    assert verify_cga(address, params, check_key=False).ok
    as_sec1 = address[:8] + bytes((address[8] | 1 << 5,)) + address[9:]
    result = verify_cga(as_sec1, params, check_key=False)
    assert result.failed_step is CgaStep.HASH2
    assert result.sec == 1


def test_verify_rejects_malformed_address(sec1_cga: tuple[bytes, CgaParameters]) -> None:
    address, params = sec1_cga
    with pytest.raises(ValueError, match="16 bytes"):
        verify_cga(address[:15], params)


# --- key policy (P8) ---------------------------------------------------------


def _cga_for(der: bytes) -> tuple[bytes, CgaParameters]:
    return generate_cga(der, PREFIX, 0, seeded_rng(7))


@pytest.mark.parametrize(
    ("public_key", "reason_part"),
    [
        (rsa_public_key_with(1024, exponent=3), "exponent is 3"),
        (rsa_public_key_with(1000), "1000 bits"),
        (rsa_public_key_with(2048), "2048 bits"),
    ],
    ids=["exponent-3", "1000-bits", "2048-bits"],
)
def test_key_policy_rejections(public_key: rsa.RSAPublicKey, reason_part: str) -> None:
    der = public_key_der(public_key)
    with pytest.raises(CgaKeyError, match=reason_part):
        load_public_key(der)
    address, params = _cga_for(der)
    result = verify_cga(address, params)
    assert result.failed_step is CgaStep.PUBLIC_KEY
    assert reason_part in result.reason
    assert verify_cga(address, params, check_key=False).ok


def test_generated_exponent_3_key_is_rejected() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=1024)
    with pytest.raises(CgaKeyError, match="exponent"):
        load_public_key(public_key_der(key))


def test_key_size_bounds_are_inclusive() -> None:
    for bits in (1024, 2040):
        key = load_public_key(public_key_der(rsa_public_key_with(bits)))
        assert key.key_size == bits
    address, params = _cga_for(public_key_der(rsa_public_key_with(2040)))
    assert verify_cga(address, params).ok


def test_minimum_key_size_is_configurable(key1024_der: bytes) -> None:
    address, params = _cga_for(key1024_der)
    result = verify_cga(address, params, min_key_bits=1536)
    assert result.failed_step is CgaStep.PUBLIC_KEY
    with pytest.raises(CgaKeyError):
        load_public_key(key1024_der, min_bits=1536)


def test_non_rsa_key_is_rejected() -> None:
    ec_der = public_key_der_of_ec()
    with pytest.raises(CgaKeyError, match="not RSA"):
        load_public_key(ec_der)
    address, params = _cga_for(ec_der)
    assert verify_cga(address, params).failed_step is CgaStep.PUBLIC_KEY


def public_key_der_of_ec() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_unparsable_key_is_rejected() -> None:
    # A well-formed SEQUENCE header around content that is not a key.
    with pytest.raises(CgaKeyError, match="SubjectPublicKeyInfo"):
        load_public_key(bytes.fromhex("3003020101"))


def test_public_key_der_sizes_match_profile(key1024: rsa.RSAPrivateKey) -> None:
    # P8: the DER key is 162 bytes at 1024 bits and 293 bytes at 2040 bits.
    assert len(public_key_der(key1024)) == 162
    assert public_key_der(key1024) == public_key_der(key1024.public_key())
    assert len(public_key_der(rsa_public_key_with(2040))) == 293


def test_generated_key_uses_exponent_65537(key1024: rsa.RSAPrivateKey) -> None:
    assert key1024.key_size == 1024
    assert key1024.public_key().public_numbers().e == 65537


def test_private_key_pem_round_trip(key1024: rsa.RSAPrivateKey) -> None:
    pem = private_key_pem(key1024)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key_pem(pem)
    assert loaded.private_numbers() == key1024.private_numbers()


def test_load_private_key_pem_rejects_garbage_and_non_rsa() -> None:
    with pytest.raises(CgaKeyError):
        load_private_key_pem(b"not a pem")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(CgaKeyError, match="not RSA"):
        load_private_key_pem(ec_pem)


# --- generation ----------------------------------------------------------------


@pytest.mark.parametrize("sec", [0, 1])
def test_generated_cga_verifies(key1024_der: bytes, sec: int) -> None:
    address, params = generate_cga(key1024_der, PREFIX, sec, seeded_rng(sec))
    assert address[:8] == PREFIX
    assert address[8] >> 5 == sec
    assert address[8] & 0x03 == 0  # u and g bits cleared
    assert params.subnet_prefix == PREFIX
    assert params.collision_count == 0
    assert params.public_key_der == key1024_der
    hash2 = hashlib.sha1(params.modifier + bytes(9) + key1024_der).digest()
    assert hash2[: 2 * sec] == bytes(2 * sec)
    result = verify_cga(address, params)
    assert result.ok
    assert result.sec == sec


def test_sec0_uses_the_random_modifier_unchanged(key1024_der: bytes) -> None:
    modifier = bytes(range(16))
    _, params = generate_cga(key1024_der, PREFIX, 0, fixed_rng(modifier))
    assert params.modifier == modifier


def test_collision_count_changes_address(key1024_der: bytes) -> None:
    modifier = bytes(range(16))
    first, _ = generate_cga(key1024_der, PREFIX, 0, fixed_rng(modifier))
    second, params = generate_cga(key1024_der, PREFIX, 0, fixed_rng(modifier), collision_count=1)
    assert first != second
    assert params.collision_count == 1
    assert verify_cga(second, params).ok


def test_generation_with_extension_fields(key1024_der: bytes) -> None:
    extensions = encode_extension_fields([(0xFFFD, b"experiment")])
    address, params = generate_cga(
        key1024_der, PREFIX, 1, seeded_rng(3), extension_fields=extensions
    )
    assert params.extension_fields == extensions
    assert verify_cga(address, params).ok


def test_modifier_increment_wraps_at_128_bits(key1024_der: bytes) -> None:
    _, params = generate_cga(key1024_der, PREFIX, 1, fixed_rng(b"\xff" * 16))
    found = int.from_bytes(params.modifier, "big")
    # Either the all-ones start was lucky, or the search wrapped to small values.
    assert found == (1 << 128) - 1 or found < 1 << 24


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sec": 8},
        {"sec": -1},
        {"collision_count": 3},
        {"subnet_prefix": bytes(7)},
        {"rng": lambda n: bytes(n - 1)},
    ],
    ids=["sec-8", "sec-negative", "collision-3", "short-prefix", "short-rng"],
)
def test_generation_rejects_bad_inputs(key1024_der: bytes, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "public_key_der": key1024_der,
        "subnet_prefix": PREFIX,
        "sec": 0,
        "rng": seeded_rng(0),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError):
        generate_cga(**arguments)


def test_generation_rejects_malformed_key_der() -> None:
    with pytest.raises(CgaDecodeError):
        generate_cga(b"\x31\x00", PREFIX, 0, seeded_rng(0))


# --- encoding and decoding ------------------------------------------------------------


def test_decode_splits_extension_fields(key1024_der: bytes) -> None:
    extensions = encode_extension_fields([(1, b"abc"), (0xFFFF, b"")])
    assert extensions == bytes.fromhex("0001 0003 616263 ffff 0000")
    params = CgaParameters(bytes(16), PREFIX, 2, key1024_der, extensions)
    decoded = CgaParameters.decode(params.encode())
    assert decoded == params
    assert len(params.encode()) == 25 + 162 + len(extensions)


FIXED_PART = bytes(16) + PREFIX + b"\x00"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (bytes(24), "truncated"),
        (FIXED_PART, "truncated"),
        (FIXED_PART + b"\x30", "truncated"),
        (FIXED_PART + b"\x04\x00", "SEQUENCE tag"),
        (FIXED_PART + b"\x30\x80\x00\x00", "indefinite"),
        (FIXED_PART + b"\x30\x81\x05" + bytes(5), "minimally"),
        (FIXED_PART + b"\x30\x82\x00\x90" + bytes(0x90), "minimally"),
        (FIXED_PART + b"\x30\x83\x01\x00\x00", "implausibly"),
        (FIXED_PART + b"\x30\x81", "truncated"),
        (FIXED_PART + b"\x30\x82\x01", "truncated"),
        (FIXED_PART + b"\x30\x05\x00\x00", "truncated"),
        (FIXED_PART + b"\x30\x81\x80" + bytes(0x7F), "truncated"),
        (FIXED_PART + b"\x30\x00" + b"\x00\x01\x00", "extension field at offset 0"),
        (FIXED_PART + b"\x30\x00" + b"\x00\x01\x00\x02\xaa", "extension field at offset 0"),
        (
            FIXED_PART + b"\x30\x00" + b"\x00\x01\x00\x00" + b"\x00\x02\x00\x01",
            "extension field at offset 4",
        ),
    ],
)
def test_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(CgaDecodeError, match=message):
        CgaParameters.decode(data)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(CgaDecodeError, ValueError)
    assert issubclass(CgaKeyError, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"modifier": bytes(15)},
        {"subnet_prefix": bytes(9)},
        {"collision_count": 256},
        {"collision_count": -1},
        {"public_key_der": b"\x30\x00\x00"},
        {"extension_fields": b"\x00"},
    ],
)
def test_constructor_rejects_unencodable_fields(key1024_der: bytes, kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "modifier": bytes(16),
        "subnet_prefix": PREFIX,
        "collision_count": 0,
        "public_key_der": key1024_der,
    }
    fields.update(kwargs)
    with pytest.raises(ValueError):
        CgaParameters(**fields)


def test_encode_extension_fields_rejects_oversized_values() -> None:
    with pytest.raises(ValueError):
        encode_extension_fields([(0x10000, b"")])
    with pytest.raises(ValueError):
        encode_extension_fields([(1, bytes(0x10000))])


extension_lists = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4)


@given(
    modifier=st.binary(min_size=16, max_size=16),
    prefix=st.binary(min_size=8, max_size=8),
    collision_count=st.integers(0, 255),
    extensions=extension_lists,
)
def test_decode_inverts_encode(
    key1024_der: bytes,
    modifier: bytes,
    prefix: bytes,
    collision_count: int,
    extensions: list[tuple[int, bytes]],
) -> None:
    params = CgaParameters(
        modifier, prefix, collision_count, key1024_der, encode_extension_fields(extensions)
    )
    assert CgaParameters.decode(params.encode()) == params


# Mostly inputs that reach the DER header, so the decoder's branches are explored.
near_valid_parameters = st.builds(
    lambda fixed, tail: fixed + b"\x30" + tail,
    st.binary(min_size=25, max_size=25),
    st.binary(max_size=300),
)


@given(data=st.one_of(st.binary(max_size=300), near_valid_parameters))
def test_decode_of_arbitrary_bytes_is_strict(data: bytes) -> None:
    # Anything that decodes must re-encode to exactly the same bytes.
    try:
        params = CgaParameters.decode(data)
    except CgaDecodeError:
        return
    assert params.encode() == data
