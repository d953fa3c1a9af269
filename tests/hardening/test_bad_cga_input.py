"""Forged and malformed CGA Binding Updates through the whole frame path (P6-P8).

Each BU arrives as an Ethernet frame at a configured DAR; the test asserts
the Binding Acknowledgement status (148, or 132 for the subnet prefix),
that no binding appears, and how much RSA work the rejection cost: none
for everything a hash or a DER parse can refuse (collision count, prefix,
Sec, Hash1, Hash2, key size, exponent, algorithm, signature length), one
verification for what only the signature can refuse.  Never an encryption:
a PHKT is issued only to an accepted BU.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from dar_rig import T0, Rig
from mn_factory import ANCHOR, COA_1, COA_2, PREFIX_HOME, PREFIX_HOME_2, MobileNode, addr
from test_mh_rejections import fix_checksum

from fama_ryu import auth, cga, mh

NOT_VERIFIED = mh.BAStatus.CGA_SIGNATURE_VERIFICATION_FAILED
NO_RSA = {"sign": 0, "verify": 0, "encrypt": 0, "decrypt": 0}
ONE_VERIFY = {"sign": 0, "verify": 1, "encrypt": 0, "decrypt": 0}
MH_OFFSET = 40 + 24  # IPv6 header, destination options with the HAO


@pytest.fixture
def rig() -> Rig:
    return Rig()


def address_for(params: cga.CgaParameters, sec: int = 0) -> bytes:
    """The address RFC 3972 §4 step 6-7 derives from ``params`` with ``sec`` (no Hash2 search)."""
    hash1 = int.from_bytes(hashlib.sha1(params.encode()).digest()[:8], "big")
    interface_id = (hash1 & 0x1CFFFFFFFFFFFFFF) | (sec << 61)
    return params.subnet_prefix + interface_id.to_bytes(8, "big")


def unsigned_bu(hoa: bytes, params: bytes, signature: bytes, coa: bytes = COA_1) -> bytes:
    """A first BU carrying ``params`` and a ``signature`` nobody computed over it."""
    options = mh.MobilityOptions(cga_parameters=params, signature=signature)
    return mh.build_packet(
        mh.BindingUpdate(1, 100, options=options), source=coa, destination=ANCHOR, home_address=hoa
    )


def forged_key_bu(public_key_der: bytes, signature_len: int) -> tuple[bytes, bytes]:
    """(HoA, BU) for a key the sender cannot sign with: a valid CGA of that key, any signature."""
    hoa, params = cga.generate_cga(public_key_der, PREFIX_HOME, 0, random.Random(5).randbytes)
    return hoa, unsigned_bu(hoa, params.encode(), bytes(signature_len))


def fake_rsa_der(bits: int, exponent: int = cga.RSA_PUBLIC_EXPONENT) -> bytes:
    """The DER of an RSA public key with a ``bits``-bit odd modulus (no private half needed)."""
    modulus = random.Random(bits).getrandbits(bits) | (1 << (bits - 1)) | 1
    return cga.public_key_der(rsa.RSAPublicNumbers(exponent, modulus).public_key())


def assert_refused(
    rig: Rig, bu: bytes, hoa: bytes, status: mh.BAStatus, rsa: dict[str, int]
) -> None:
    sent = rig.send(bu)
    ack = sent.binding_ack()
    assert (ack.status, ack.lifetime_units) == (status, 0)
    assert ack.options.permanent_home_keygen_token is None
    assert sent.rsa == rsa
    assert sent.work.changes == [] and not rig.bound(hoa)
    assert rig.dar.counters[f"ba_status:{int(status)}"] >= 1


# ---------------------------------------------------------------- CGA checks (hash only)


def test_collision_count_above_2_is_148_without_rsa(rig: Rig) -> None:
    mn = MobileNode.create()
    for count in (3, 4, 255):
        params = cga.CgaParameters(mn.params.modifier, PREFIX_HOME, count, mn.params.public_key_der)
        hoa = address_for(params)  # Hash1 holds: only the count is wrong
        bu = mn.first_bu(1, COA_1, params=params)
        assert_refused(rig, resend_for(bu, hoa), hoa, NOT_VERIFIED, NO_RSA)


def resend_for(bu: bytes, hoa: bytes) -> bytes:
    """``bu`` with another Home Address option value (checksum recomputed)."""
    packet = bytearray(bu)
    packet[48:64] = hoa  # the HAO's address: dest opts at 40, PadN(4) and option header
    return fix_checksum(bytes(packet))


@pytest.mark.parametrize(
    "params_prefix",
    [PREFIX_HOME_2, addr("2001:db8:99::")[:8]],
    ids=["other-home-prefix", "foreign-prefix"],
)
def test_subnet_prefix_other_than_the_hoa_64_is_132_without_rsa(
    rig: Rig, params_prefix: bytes
) -> None:
    """P7 (b): the CGA's subnet prefix must be the HoA's /64, even another of the DAR's."""
    mn = MobileNode.create()
    params = cga.CgaParameters(mn.params.modifier, params_prefix, 0, mn.params.public_key_der)
    hoa = PREFIX_HOME + address_for(params)[8:]
    bu = resend_for(mn.first_bu(1, COA_1, params=params), hoa)
    assert_refused(rig, bu, hoa, mh.BAStatus.NOT_HOME_SUBNET, NO_RSA)


@pytest.mark.parametrize("sec", [1, 2, 7])
def test_sec_bits_claiming_more_than_the_modifier_gives_are_148_without_rsa(
    rig: Rig, sec: int
) -> None:
    """The Sec bits are outside Hash1 (RFC 3972 §2), so only Hash2 can refuse them."""
    mn = MobileNode.create()
    hoa = bytearray(mn.hoa)
    hoa[8] = (hoa[8] & 0x1F) | (sec << 5)
    bu = resend_for(mn.first_bu(1, COA_1), bytes(hoa))
    assert_refused(rig, bu, bytes(hoa), NOT_VERIFIED, NO_RSA)


@pytest.mark.parametrize("byte", range(8, 16))
def test_any_interface_identifier_change_fails_hash1_without_rsa(rig: Rig, byte: int) -> None:
    mn = MobileNode.create()
    hoa = bytearray(mn.hoa)
    hoa[byte] ^= 0x10 if byte == 8 else 0x01  # never a Sec, u or g bit
    bu = resend_for(mn.first_bu(1, COA_1), bytes(hoa))
    assert_refused(rig, bu, bytes(hoa), NOT_VERIFIED, NO_RSA)


def test_hash2_failure_is_148_without_rsa(rig: Rig) -> None:
    """Sec 1 claimed by an address whose modifier was never searched (Hash2 not zero)."""
    mn = MobileNode.create()
    params = cga.CgaParameters(bytes(16), PREFIX_HOME, 0, mn.params.public_key_der)
    hash2 = hashlib.sha1(bytes(16) + bytes(9) + mn.params.public_key_der).digest()
    assert hash2[:2] != b"\x00\x00"
    hoa = address_for(params, sec=1)
    assert_refused(
        rig, resend_for(mn.first_bu(1, COA_1, params=params), hoa), hoa, NOT_VERIFIED, NO_RSA
    )


# ---------------------------------------------------------------- key policy (P8), before RSA


RFC_EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "rfc3972_appendix_a.json").read_text()
)


@pytest.mark.parametrize(
    ("public_key_der", "signature_len"),
    [
        (bytes.fromhex(RFC_EXAMPLE["public_key_der"]), 64),
        (fake_rsa_der(1016), 127),
        (fake_rsa_der(2048), 255),
        (fake_rsa_der(4096), 255),
        (fake_rsa_der(1024, exponent=3), 128),
        (fake_rsa_der(1024, exponent=17), 128),
        (fake_rsa_der(1024, exponent=(1 << 64) + 1), 128),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            64,
        ),
    ],
    ids=[
        "512-bit-rfc-example",
        "1016-bit",
        "2048-bit",
        "4096-bit",
        "exponent-3",
        "exponent-17",
        "exponent-2^64+1",
        "ec-p256",
    ],
)
def test_key_outside_the_policy_is_148_without_rsa(
    rig: Rig, public_key_der: bytes, signature_len: int
) -> None:
    hoa, bu = forged_key_bu(public_key_der, signature_len)
    assert_refused(rig, bu, hoa, NOT_VERIFIED, NO_RSA)


def test_key_below_a_raised_minimum_is_148_without_rsa() -> None:
    rig = Rig(min_key_bits=2040)
    mn = MobileNode.create()
    assert_refused(rig, mn.first_bu(1, COA_1), mn.hoa, NOT_VERIFIED, NO_RSA)


def unknown_algorithm_der() -> bytes:
    """A 1024-bit RSA key DER whose algorithm OID cryptography does not know."""
    rsa_oid = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
    der = cga.public_key_der(MobileNode.create().key)
    assert der.count(rsa_oid) == 1
    return der.replace(rsa_oid, bytes.fromhex("2a864886f70d01017f"))


def test_unknown_key_algorithm_is_148_without_rsa(rig: Rig) -> None:
    """Regression (found by fuzz/fuzz_cga.py): cryptography raised UnsupportedAlgorithm,
    which escaped ``load_public_key`` and then ``Dar.packet_in``."""
    hoa, bu = forged_key_bu(unknown_algorithm_der(), 128)
    assert_refused(rig, bu, hoa, NOT_VERIFIED, NO_RSA)


def test_unknown_key_algorithm_is_a_key_policy_failure() -> None:
    der = unknown_algorithm_der()
    with pytest.raises(cga.CgaKeyError, match="unsupported algorithm"):
        cga.load_public_key(der)
    hoa, params = cga.generate_cga(der, PREFIX_HOME, 0, random.Random(1).randbytes)
    result = cga.verify_cga(hoa, params)
    assert (result.ok, result.failed_step) == (False, cga.CgaStep.PUBLIC_KEY)


@pytest.mark.parametrize("length", [0, 1, 127, 129, 255])
def test_signature_of_the_wrong_length_is_148_without_rsa(rig: Rig, length: int) -> None:
    mn = MobileNode.create()
    bu = unsigned_bu(mn.hoa, mn.params.encode(), b"\x5a" * length)
    assert_refused(rig, bu, mn.hoa, NOT_VERIFIED, NO_RSA)


def test_undecodable_cga_parameters_are_148_without_rsa(rig: Rig) -> None:
    mn = MobileNode.create()
    broken = mn.params.encode()[:25] + b"\x30\x80" + mn.params.encode()[27:]
    assert_refused(rig, unsigned_bu(mn.hoa, broken, bytes(128)), mn.hoa, NOT_VERIFIED, NO_RSA)


# ---------------------------------------------------------------- the signature (one RSA verify)


def signed_with(mn: MobileNode, tag: bytes, coa: bytes, hdar: bytes) -> bytes:
    """A first BU whose signature covers ``tag | coa | hdar | MH data`` (P6 with substitutes)."""

    def signer(mh_data: bytes) -> bytes:
        return mn.key.sign(tag + coa + hdar + mh_data, padding.PKCS1v15(), hashes.SHA1())

    options = mh.MobilityOptions(cga_parameters=mn.params.encode())
    return mh.build_packet(
        mh.BindingUpdate(1, 100, options=options),
        source=COA_1,
        destination=ANCHOR,
        home_address=mn.hoa,
        signer=signer,
        signature_len=128,
    )


@pytest.mark.parametrize(
    ("tag", "coa", "hdar"),
    [
        (bytes(16), COA_1, ANCHOR),
        (auth.CGA_MESSAGE_TYPE_TAG[::-1], COA_1, ANCHOR),
        (bytes.fromhex("086fca5e10b200c99c8cce001527277c"), COA_1, ANCHOR),  # SEND's tag (RFC 3971)
        (auth.CGA_MESSAGE_TYPE_TAG, COA_2, ANCHOR),
        (auth.CGA_MESSAGE_TYPE_TAG, COA_1, addr("2001:db8:b::1")),
    ],
    ids=["zero-tag", "reversed-tag", "send-tag", "other-coa", "other-hdar"],
)
def test_signature_over_other_framing_is_148_after_one_verification(
    rig: Rig, tag: bytes, coa: bytes, hdar: bytes
) -> None:
    mn = MobileNode.create()
    assert_refused(rig, signed_with(mn, tag, coa, hdar), mn.hoa, NOT_VERIFIED, ONE_VERIFY)


def test_the_same_framing_is_accepted(rig: Rig) -> None:
    """Control for the test above: the helper's signature is right when nothing is substituted."""
    mn = MobileNode.create()
    sent = rig.send(signed_with(mn, auth.CGA_MESSAGE_TYPE_TAG, COA_1, ANCHOR))
    assert sent.binding_ack().status == mh.BAStatus.ACCEPTED


def test_a_flipped_byte_anywhere_in_the_signed_bu_never_binds(rig: Rig) -> None:
    """Every octet of the signed Mobility Header data and of the Signature option, checksum
    aside, flipped in turn and re-checksummed (as an attacker can): never accepted, never
    a PHKT, never more than one verification; a flip in the CGA Parameters costs no RSA."""
    mn = MobileNode.create()
    good = mn.first_bu(1, COA_1)
    parsed = mh.parse_ipv6_packet(good)
    signed_end = parsed.mh.signed_end
    assert signed_end is not None
    params_start = signed_end - len(mn.params.encode())
    outcomes: dict[str, int] = {}
    signature_end = MH_OFFSET + signed_end + 2 + 128
    # After the Signature comes only padding, which no signature covers (RFC 4866 §4.5).
    for offset in range(MH_OFFSET, signature_end):
        if offset in (MH_OFFSET + 4, MH_OFFSET + 5):
            continue  # the checksum itself
        packet = bytearray(good)
        packet[offset] ^= 0x01
        rig.now += 1.0  # one BU a second: within the RSA verification budget
        sent = rig.send(fix_checksum(bytes(packet)))
        assert not rig.bound(mn.hoa), offset
        assert sent.rsa["encrypt"] == 0 and sent.rsa["verify"] <= 1, offset
        mh_offset = offset - MH_OFFSET
        if params_start <= mh_offset < signed_end:
            assert sent.rsa_operations == 0, offset  # Hash1 or the DER parse refuses it
        for out in sent.replies:
            outcomes[reply_kind(out.frame)] = outcomes.get(reply_kind(out.frame), 0) + 1
        if not sent.replies:
            outcomes["dropped"] = outcomes.get("dropped", 0) + 1
    assert set(outcomes) <= {"ba_148", "ba_132", "icmpv6", "binding_error", "dropped"}, outcomes
    assert outcomes["ba_148"] > 100  # most flips reach the CGA or signature checks
    rig.now += 1.0
    assert rig.send(good).binding_ack().status == mh.BAStatus.ACCEPTED  # the original still binds


def reply_kind(frame: bytes) -> str:
    """What the DAR answered: an ICMPv6 error, a Binding Error or a BA with its status."""
    if frame[14 + 6] == mh.IPPROTO_ICMPV6:
        return "icmpv6"
    message = mh.parse_ethernet_frame(frame).message
    if isinstance(message, mh.BindingError):
        return "binding_error"
    assert isinstance(message, mh.BindingAck), message
    return f"ba_{message.status}"


# ---------------------------------------------------------------- no reflector


def test_refusals_of_forged_bus_share_the_error_reply_budget(rig: Rig) -> None:
    """Forged CGA BUs (a bad signature, so 148 after one verification) from spoofed
    sources: at most 10 refusals per destination and 100 in all each second, so the
    DAR cannot be turned into a reflector at a victim or at many."""
    mn = MobileNode.create()
    good = mn.first_bu(1, COA_1)
    forged = fix_checksum(good[:-8] + bytes(8))  # the signature's last bytes
    answered = sum(len(rig.send(forged, now=T0 + n / 1000).replies) for n in range(50))
    assert answered == 10
    assert rig.dar.counters["error_reply_suppressed"] == 40
    assert rig.dar.counters["ba_status:148"] == 50  # every one was judged and counted
    sources = [addr(f"2001:db8:{n + 0x100:x}::7") for n in range(150)]
    spoofed = 0
    for n, source in enumerate(sources):
        bu = bytearray(forged)
        bu[8:24] = source  # the IPv6 source: the BA's destination
        spoofed += len(rig.send(fix_checksum(bytes(bu)), now=T0 + 0.1 + n / 10_000).replies)
    # The shared bucket: 100 at once plus 100/s over the 0.115 s of the test, minus
    # the 10 the first destination took; not 150 (one per spoofed source).
    assert 80 <= spoofed <= 100 + 12 - 10


def test_a_legitimate_bu_after_the_flood_is_still_accepted(rig: Rig) -> None:
    mn = MobileNode.create()
    forged = fix_checksum(mn.first_bu(1, COA_1)[:-8] + bytes(8))
    for n in range(30):
        rig.send(forged, now=T0 + n / 1000)
    ack = rig.send(mn.first_bu(2, COA_1), now=T0 + 0.05).binding_ack()
    assert ack.status == 0  # acceptances are never rationed by the error budget
