"""Tests of the mobile node's Binding Update List (fama_ryu.mobile_node).

Every packet the module produces is decoded with the codec and checked
against the FAMA profile (P4, P6, P9, P11); signatures and authenticators
are recomputed here with cryptography/hmac directly.  Binding
Acknowledgements come from a test-local fake HDAR that follows P12.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fama_ryu import auth, cga, mh
from fama_ryu.mobile_node import (
    DEFAULT_LIFETIME_S,
    AckResult,
    BindingState,
    BindingUpdateList,
    CgaAddress,
    IgnoreReason,
    MobileNodeIdentity,
    configure_address,
)

CGA_MESSAGE_TYPE_TAG = bytes.fromhex("5F2705868D6C4C56A2469EBB9B2A2E13")  # P6


def address(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


HDAR = address("2001:db8:a::1")
OTHER_DAR = address("2001:db8:f::1")
PREFIX_A = address("2001:db8:a::")[:8]
COA = address("2001:db8:b::1234")
COA2 = address("2001:db8:c::99")
FIRST_SEQUENCE = 0x1000
T0 = 100.0


# ---------------------------------------------------------------- helpers


def fixed_rng(value: int) -> cga.RandomBytes:
    def rng(count: int) -> bytes:
        assert count == 2, "the list only draws initial sequence numbers"
        return value.to_bytes(2, "big")

    return rng


def make_list(
    identity: MobileNodeIdentity, first_sequence: int = FIRST_SEQUENCE
) -> BindingUpdateList:
    return BindingUpdateList(identity, fixed_rng(first_sequence))


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def authenticator(kbm: bytes, first_address: bytes, hdar: bytes, mh_data: bytes) -> bytes:
    """P9, computed independently of fama_ryu.auth."""
    return hmac.new(kbm, first_address + hdar + mh_data, hashlib.sha1).digest()[:12]


def option_types(mh_raw: bytes) -> list[int]:
    """Mobility option types of a BU/BA in wire order, padding left out."""
    types = []
    position = 12  # BU and BA options start at offset 12 (RFC 6275 §6.1.7, §6.1.8)
    while position < len(mh_raw):
        option_type = mh_raw[position]
        if option_type == mh.OptionType.PAD1:
            position += 1
            continue
        if option_type != mh.OptionType.PADN:
            types.append(option_type)
        position += 2 + mh_raw[position + 1]
    return types


def parse_bu(raw: bytes) -> tuple[mh.MobilityPacket, mh.BindingUpdate]:
    packet = mh.parse_ipv6_packet(raw)
    assert isinstance(packet.message, mh.BindingUpdate)
    return packet, packet.message


def assert_signed_by(packet: mh.MobilityPacket, public_key: rsa.RSAPublicKey) -> None:
    """The Signature option verifies over tag | CoA | A_HDAR | MH data (P6)."""
    signature = packet.message.options.signature
    assert signature is not None
    message = CGA_MESSAGE_TYPE_TAG + packet.source + packet.destination + packet.mh.signed_data()
    public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA1())


class FakeHdar:
    """Answers BUs the way P12 asks; keyword arguments forge the answer."""

    def __init__(self, mn_public_key: rsa.RSAPublicKey, address: bytes = HDAR) -> None:
        self.address = address
        self.mn_public_key = mn_public_key
        self.phkt: bytes | None = None
        self._rng = random.Random(7)

    def answer(
        self,
        bu_raw: bytes,
        status: int = 0,
        *,
        sequence: int | None = None,
        lifetime_units: int | None = None,
        issue_phkt: bool | None = None,
        phkt_ciphertext: bytes | None = None,
        kbm: bytes | None = None,
        first_address: bytes | None = None,
        authenticate: bool = True,
        source: bytes | None = None,
        refresh_advice_units: int | None = None,
    ) -> mh.MobilityPacket:
        bu_packet, bu = parse_bu(bu_raw)
        hoa, coa = bu_packet.pseudo_source, bu_packet.source
        deregistration = bu.lifetime_units == 0 or coa == hoa
        if issue_phkt is None:
            issue_phkt = status == 0 and bu.options.cga_parameters is not None
        ciphertext = None
        if issue_phkt:
            self.phkt = self._rng.randbytes(8)
            ciphertext = phkt_ciphertext or auth.encrypt_phkt(self.mn_public_key, self.phkt)
        if kbm is None and self.phkt is not None:
            kbm = sha1(self.phkt)
        if first_address is None:
            first_address = hoa if deregistration else coa
        key = kbm
        ba = mh.BindingAck(
            status=status,
            sequence=bu.sequence if sequence is None else sequence,
            lifetime_units=bu.lifetime_units if lifetime_units is None else lifetime_units,
            options=mh.MobilityOptions(
                permanent_home_keygen_token=ciphertext,
                binding_refresh_interval_units=refresh_advice_units,
            ),
        )
        raw = mh.build_packet(
            ba,
            source=self.address if source is None else source,
            destination=coa,
            routing_address=None if coa == hoa else hoa,
            authenticator=(
                (lambda data: authenticator(key, first_address, self.address, data))
                if authenticate and key is not None
                else None
            ),
        )
        return mh.parse_ipv6_packet(raw)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def identity() -> MobileNodeIdentity:
    return MobileNodeIdentity.generate(1024)


@pytest.fixture(scope="module")
def stranger() -> MobileNodeIdentity:
    return MobileNodeIdentity.generate(1024)


@pytest.fixture(scope="module")
def home(identity: MobileNodeIdentity) -> CgaAddress:
    return configure_address(identity, PREFIX_A, 0, random.Random(1).randbytes)


@pytest.fixture
def hdar(identity: MobileNodeIdentity) -> FakeHdar:
    return FakeHdar(identity.private_key.public_key())


def registered(identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar) -> BindingUpdateList:
    """A list whose binding at HDAR was accepted (BU sent at T0)."""
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    assert bul.handle_binding_ack(hdar.answer(bu), T0 + 0.1).result is AckResult.REGISTERED
    return bul


# ---------------------------------------------------------------- identity and address


def test_configured_address_is_a_cga_of_the_identity(
    identity: MobileNodeIdentity, home: CgaAddress
) -> None:
    assert home.address[:8] == PREFIX_A
    assert home.params.public_key_der == identity.public_key_der
    assert cga.verify_cga(home.address, home.params).ok
    assert cga.address_sec(home.address) == 0


def test_identity_round_trips_through_pem(identity: MobileNodeIdentity) -> None:
    restored = MobileNodeIdentity.from_pem(identity.to_pem())
    assert restored.public_key_der == identity.public_key_der
    assert restored.signature_len == 128


def test_identity_refuses_keys_outside_the_profile() -> None:
    with pytest.raises(cga.CgaKeyError):
        MobileNodeIdentity.generate(2048)  # P8: at most 2040 bits


# ---------------------------------------------------------------- first BU (P4, P6)


def test_first_bu_is_cga_signed_with_p4_fields(
    identity: MobileNodeIdentity, home: CgaAddress
) -> None:
    bul = make_list(identity)
    packet, bu = parse_bu(bul.register(home.address, home.params, HDAR, COA, T0))

    assert (packet.source, packet.destination) == (COA, HDAR)
    assert packet.home_address == home.address
    assert packet.routing_address is None
    assert (bu.ack, bu.home_registration, bu.link_local_compat, bu.key_management) == (
        True,
        True,
        False,
        False,
    )
    assert bu.lifetime_units == DEFAULT_LIFETIME_S // 4
    assert bu.sequence == FIRST_SEQUENCE
    assert option_types(packet.mh.raw) == [mh.OptionType.CGA_PARAMETERS, mh.OptionType.SIGNATURE]
    assert bu.options.cga_parameters == home.params.encode()
    assert bu.options.authenticator is None
    assert_signed_by(packet, identity.private_key.public_key())


def test_large_key_splits_cga_parameters_over_two_options() -> None:
    big = MobileNodeIdentity.generate(2040)
    big_home = configure_address(big, PREFIX_A, 0, random.Random(2).randbytes)
    packet, _ = parse_bu(make_list(big).register(big_home.address, big_home.params, HDAR, COA, T0))
    assert option_types(packet.mh.raw) == [
        mh.OptionType.CGA_PARAMETERS,
        mh.OptionType.CGA_PARAMETERS,
        mh.OptionType.SIGNATURE,
    ]
    assert len(packet.message.options.signature or b"") == 255
    assert_signed_by(packet, big.private_key.public_key())


@pytest.mark.parametrize(("lifetime_s", "units"), [(4, 1), (7, 1), (601, 150), (262140, 0xFFFF)])
def test_lifetime_is_rounded_down_to_4_second_units(
    identity: MobileNodeIdentity, home: CgaAddress, lifetime_s: int, units: int
) -> None:
    raw = make_list(identity).register(home.address, home.params, HDAR, COA, T0, lifetime_s)
    assert parse_bu(raw)[1].lifetime_units == units


def test_register_refuses_bad_arguments(
    identity: MobileNodeIdentity, stranger: MobileNodeIdentity, home: CgaAddress
) -> None:
    bul = make_list(identity)
    with pytest.raises(ValueError, match="deregistration"):
        bul.register(home.address, home.params, HDAR, home.address, T0)
    for lifetime_s in (0, 3, 262141):
        with pytest.raises(ValueError, match="lifetime"):
            bul.register(home.address, home.params, HDAR, COA, T0, lifetime_s)
    foreign = configure_address(stranger, PREFIX_A, 0, random.Random(3).randbytes)
    with pytest.raises(ValueError, match="public key"):
        bul.register(foreign.address, foreign.params, HDAR, COA, T0)
    with pytest.raises(ValueError, match="not a CGA"):
        bul.register(COA, home.params, HDAR, COA2, T0)
    assert bul.entries() == []


# ---------------------------------------------------------------- sequence numbers and timers


def test_sequence_increments_per_transmission_and_wraps(
    identity: MobileNodeIdentity, home: CgaAddress
) -> None:
    bul = make_list(identity, first_sequence=0xFFFE)
    sent = [bul.register(home.address, home.params, HDAR, COA, T0)]
    for at in (101.5, 104.5, 110.5):
        sent += bul.due(at)
    assert [parse_bu(raw)[1].sequence for raw in sent] == [0xFFFE, 0xFFFF, 0x0000, 0x0001]
    assert bul.entries()[0].last_sequence == 0x0001


def test_first_registration_backs_off_from_1_5_s_to_32_s_then_fails(
    identity: MobileNodeIdentity, home: CgaAddress
) -> None:
    bul = make_list(identity)
    sent = [bul.register(home.address, home.params, HDAR, COA, T0)]
    # Timeouts 1.5, 3, 6, 12, 24 and then 32 (capped) after each transmission.
    for at in (101.5, 104.5, 110.5, 122.5, 146.5):
        assert bul.next_deadline() == at
        assert bul.due(at - 0.01) == []
        sent += bul.due(at)
    assert bul.next_deadline() == 178.5
    assert bul.due(178.49) == []
    assert bul.due(178.5) == []
    [status] = bul.entries()
    assert status.state is BindingState.FAILED
    assert status.failure_status is None
    assert bul.next_deadline() is None
    assert bul.due(1000.0) == []

    sequences = [parse_bu(raw)[1].sequence for raw in sent]
    assert sequences == list(range(FIRST_SEQUENCE, FIRST_SEQUENCE + 6))
    for raw in sent:  # every retransmission is signed afresh
        assert_signed_by(parse_bu(raw)[0], identity.private_key.public_key())


def test_retransmissions_start_at_1_s_while_a_binding_exists(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    refresh_at = T0 + 480.0
    assert bul.next_deadline() == refresh_at
    sent = bul.due(refresh_at)
    for at in (581.0, 583.0, 587.0, 595.0, 611.0):
        assert bul.next_deadline() == at
        sent += bul.due(at)
    assert bul.next_deadline() == 643.0
    assert bul.due(643.0) == []
    assert bul.entries()[0].state is BindingState.FAILED
    assert len(sent) == 6
    kbm = sha1(hdar.phkt or b"")
    for raw in sent:  # each one re-authenticated with its own sequence number
        packet, bu = parse_bu(raw)
        assert bu.options.cga_parameters is None
        assert bu.options.authenticator == authenticator(
            kbm, COA, HDAR, packet.mh.authorized_data()
        )


def test_first_registration_timeout_is_configurable(
    identity: MobileNodeIdentity, home: CgaAddress
) -> None:
    bul = BindingUpdateList(
        identity, fixed_rng(FIRST_SEQUENCE), initial_bindack_timeout_first_reg_s=3.0
    )
    bul.register(home.address, home.params, HDAR, COA, T0)
    assert bul.next_deadline() == T0 + 3.0


# ---------------------------------------------------------------- acceptance and refresh


def test_accepted_registration_records_lifetime_and_phkt(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    outcome = bul.handle_binding_ack(hdar.answer(bu), T0 + 0.3)

    assert outcome.result is AckResult.REGISTERED
    assert (outcome.hoa, outcome.hdar, outcome.status) == (home.address, HDAR, 0)
    assert outcome.packet is None
    [status] = bul.entries()
    assert status.state is BindingState.REGISTERED
    assert status.phkt_held
    assert status.granted_lifetime_s == DEFAULT_LIFETIME_S
    assert status.expires_at == T0 + DEFAULT_LIFETIME_S  # counted from when the BU left
    assert status.coa == COA
    assert not hasattr(status, "phkt")
    assert hdar.phkt is not None and repr(hdar.phkt) not in repr(bul.entries())


@pytest.mark.parametrize(
    ("granted_units", "advice_units", "refresh_after_s"),
    [
        (150, None, 480.0),  # 600 s: at 80 %
        (10, None, 30.0),  # 40 s: 10 s before expiry
        (3, None, 6.0),  # 12 s: half way
        (150, 25, 100.0),  # Binding Refresh Advice of 100 s brings it forward
        (1000, None, 480.0),  # more than requested: capped at the 600 s asked for
    ],
)
def test_refresh_timing(
    identity: MobileNodeIdentity,
    home: CgaAddress,
    hdar: FakeHdar,
    granted_units: int,
    advice_units: int | None,
    refresh_after_s: float,
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    ba = hdar.answer(bu, lifetime_units=granted_units, refresh_advice_units=advice_units)
    assert bul.handle_binding_ack(ba, T0 + 0.2).result is AckResult.REGISTERED
    assert bul.entries()[0].granted_lifetime_s == min(granted_units, 150) * 4

    refresh_at = T0 + refresh_after_s
    assert bul.next_deadline() == refresh_at
    assert bul.due(refresh_at - 0.01) == []
    [refresh] = bul.due(refresh_at)
    packet, bu_refresh = parse_bu(refresh)
    assert bu_refresh.sequence == FIRST_SEQUENCE + 1
    assert bu_refresh.lifetime_units == 150
    assert option_types(packet.mh.raw) == [mh.OptionType.BINDING_AUTHORIZATION_DATA]
    assert bul.entries()[0].state is BindingState.PENDING

    ba = hdar.answer(refresh, lifetime_units=granted_units)
    assert bul.handle_binding_ack(ba, refresh_at + 0.1).result is AckResult.REGISTERED
    assert bul.entries()[0].expires_at == refresh_at + min(granted_units, 150) * 4


def test_accepted_with_zero_lifetime_fails_instead_of_refreshing(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    outcome = bul.handle_binding_ack(hdar.answer(bu, lifetime_units=0), T0 + 0.1)
    assert outcome.result is AckResult.FAILED
    assert bul.next_deadline() is None


def test_later_bu_carries_only_binding_authorization_data(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    packet, bu = parse_bu(bul.register(home.address, home.params, HDAR, COA2, 200.0))

    assert (packet.source, packet.destination, packet.home_address) == (COA2, HDAR, home.address)
    assert bu.sequence == FIRST_SEQUENCE + 1
    assert (bu.ack, bu.home_registration, bu.link_local_compat, bu.key_management) == (
        True,
        True,
        False,
        False,
    )
    assert option_types(packet.mh.raw) == [mh.OptionType.BINDING_AUTHORIZATION_DATA]
    assert hdar.phkt is not None
    assert bu.options.authenticator == authenticator(
        sha1(hdar.phkt), COA2, HDAR, packet.mh.authorized_data()
    )
    assert bul.next_deadline() == 201.0  # a binding exists: INITIAL_BINDACK_TIMEOUT


def test_ack_of_phkt_bu_may_renew_the_phkt(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    old_kbm = sha1(hdar.phkt or b"")
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    # P10: a new PHKT inside a BA authenticated with the current Kbm.
    ba = hdar.answer(bu, issue_phkt=True, kbm=old_kbm)
    assert bul.handle_binding_ack(ba, 200.1).result is AckResult.REGISTERED

    packet, next_bu = parse_bu(bul.register(home.address, home.params, HDAR, COA, 300.0))
    assert next_bu.options.authenticator == authenticator(
        sha1(hdar.phkt or b""), COA, HDAR, packet.mh.authorized_data()
    )


def test_phkt_is_renewed_before_the_sequence_space_wraps(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)  # PHKT obtained by FIRST_SEQUENCE
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    ba = hdar.answer(bu, mh.BAStatus.SEQUENCE_OUT_OF_WINDOW, sequence=FIRST_SEQUENCE + 0x7FFF)
    outcome = bul.handle_binding_ack(ba, 200.1)
    assert outcome.packet is not None
    packet, renewal = parse_bu(outcome.packet)
    assert renewal.sequence == FIRST_SEQUENCE + 0x8000
    assert option_types(packet.mh.raw) == [mh.OptionType.CGA_PARAMETERS, mh.OptionType.SIGNATURE]
    assert_signed_by(packet, identity.private_key.public_key())

    assert bul.handle_binding_ack(hdar.answer(outcome.packet), 200.2).result is (
        AckResult.REGISTERED
    )
    packet, next_bu = parse_bu(bul.register(home.address, home.params, HDAR, COA, 300.0))
    assert next_bu.options.authenticator == authenticator(
        sha1(hdar.phkt or b""), COA, HDAR, packet.mh.authorized_data()
    )


# ---------------------------------------------------------------- status 135, 147 and rejections


def test_authenticated_135_resynchronises_and_resends_at_once(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    ba = hdar.answer(bu, mh.BAStatus.SEQUENCE_OUT_OF_WINDOW, sequence=0x2000)
    outcome = bul.handle_binding_ack(ba, 200.1)

    assert outcome.result is AckResult.RESYNCHRONIZED
    assert outcome.status == 135
    assert outcome.packet is not None
    packet, resent = parse_bu(outcome.packet)
    assert resent.sequence == 0x2001
    assert resent.options.authenticator == authenticator(
        sha1(hdar.phkt or b""), COA2, HDAR, packet.mh.authorized_data()
    )
    assert bul.handle_binding_ack(hdar.answer(outcome.packet), 200.2).result is (
        AckResult.REGISTERED
    )


def test_135_with_a_wrong_authenticator_is_ignored(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    forged = hdar.answer(bu, 135, sequence=0x2000, kbm=bytes(20))
    outcome = bul.handle_binding_ack(forged, 200.1)
    assert (outcome.result, outcome.ignore_reason) == (
        AckResult.IGNORED,
        IgnoreReason.BAD_AUTHENTICATOR,
    )
    assert outcome.packet is None
    assert bul.entries()[0].last_sequence == FIRST_SEQUENCE + 1


def test_unauthenticated_135_to_a_phkt_bu_is_ignored(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    """The HDAR authenticates a PHKT BU before judging its sequence number, so
    its 135 carries authorization data; one without it is forged."""
    bul = registered(identity, home, hdar)
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    forged = hdar.answer(bu, 135, sequence=0x2000, authenticate=False)
    assert forged.message.options.authenticator is None
    outcome = bul.handle_binding_ack(forged, 200.1)
    assert (outcome.result, outcome.ignore_reason) == (
        AckResult.IGNORED,
        IgnoreReason.MISSING_AUTHENTICATOR,
    )
    assert outcome.packet is None
    assert bul.entries()[0].last_sequence == FIRST_SEQUENCE + 1


def test_unauthenticated_135_to_a_cga_bu_resends_at_once(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    # The HDAR remembers a higher number from an earlier binding (a tombstone).
    ba = hdar.answer(bu, mh.BAStatus.SEQUENCE_OUT_OF_WINDOW, sequence=0x2000, issue_phkt=False)
    assert ba.message.options.authenticator is None
    outcome = bul.handle_binding_ack(ba, T0 + 0.1)

    assert outcome.result is AckResult.RESYNCHRONIZED
    assert outcome.packet is not None
    packet, resent = parse_bu(outcome.packet)
    assert resent.sequence == 0x2001
    assert_signed_by(packet, identity.private_key.public_key())
    assert bul.next_deadline() == pytest.approx(T0 + 0.1 + 1.5)  # back-off timeout kept
    assert bul.handle_binding_ack(hdar.answer(outcome.packet), T0 + 0.2).result is (
        AckResult.REGISTERED
    )


def test_a_135_answering_a_135_waits_for_the_scheduled_retransmission(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    first = bul.handle_binding_ack(hdar.answer(bu, 135, sequence=0x2000), T0 + 0.1)
    assert first.packet is not None
    second = bul.handle_binding_ack(hdar.answer(first.packet, 135, sequence=0x3000), T0 + 0.2)
    assert second.result is AckResult.RESYNCHRONIZED
    assert second.packet is None
    [retransmission] = bul.due(T0 + 0.1 + 1.5)
    assert parse_bu(retransmission)[1].sequence == 0x3001


def test_a_flood_of_135s_at_most_doubles_the_bu_rate_and_the_entry_still_fails(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    sent = [bul.register(home.address, home.params, HDAR, COA, T0)]
    now = T0
    while bul.entries()[0].state is BindingState.PENDING:
        for _ in range(5):  # forged 135s for whatever was sent last
            outcome = bul.handle_binding_ack(hdar.answer(sent[-1], 135, sequence=7), now)
            sent += [outcome.packet] if outcome.packet is not None else []
        deadline = bul.next_deadline()
        assert deadline is not None
        now = deadline
        sent += bul.due(now)
    assert bul.entries()[0].state is BindingState.FAILED
    assert len(sent) == 2 * 6  # 6 transmissions without the flood
    assert now == pytest.approx(T0 + 1.5 + 3 + 6 + 12 + 24 + 32)


def test_147_drops_the_phkt_and_falls_back_to_a_cga_bu(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    ba = hdar.answer(bu, mh.BAStatus.PHKT_UNAVAILABLE, authenticate=False)
    outcome = bul.handle_binding_ack(ba, 200.1)

    assert outcome.result is AckResult.PHKT_UNAVAILABLE
    assert outcome.packet is not None
    packet, resent = parse_bu(outcome.packet)
    assert resent.sequence == FIRST_SEQUENCE + 2
    assert option_types(packet.mh.raw) == [mh.OptionType.CGA_PARAMETERS, mh.OptionType.SIGNATURE]
    assert_signed_by(packet, identity.private_key.public_key())
    [status] = bul.entries()
    assert not status.phkt_held
    assert status.expires_at is None
    assert bul.next_deadline() == pytest.approx(200.1 + 1.5)  # no binding left at the HDAR

    assert bul.handle_binding_ack(hdar.answer(outcome.packet), 200.2).result is (
        AckResult.REGISTERED
    )
    assert bul.entries()[0].phkt_held


@pytest.mark.parametrize("status", [128, 129, 130, 132, 133, 137, 139, 147, 148])
def test_rejection_fails_the_entry(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar, status: int
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    outcome = bul.handle_binding_ack(hdar.answer(bu, status), T0 + 0.1)

    assert outcome.result is AckResult.FAILED
    assert outcome.status == status
    [entry] = bul.entries()
    assert (entry.state, entry.failure_status) == (BindingState.FAILED, status)
    assert bul.next_deadline() is None
    assert bul.due(T0 + 100) == []


def test_rejection_of_a_phkt_bu_must_carry_a_valid_authenticator_if_any(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    bu = bul.register(home.address, home.params, HDAR, COA2, 200.0)
    forged = hdar.answer(bu, mh.BAStatus.ADMINISTRATIVELY_PROHIBITED, kbm=bytes(20))
    outcome = bul.handle_binding_ack(forged, 200.1)
    assert (outcome.result, outcome.ignore_reason) == (
        AckResult.IGNORED,
        IgnoreReason.BAD_AUTHENTICATOR,
    )
    genuine = hdar.answer(bu, mh.BAStatus.ADMINISTRATIVELY_PROHIBITED)
    assert bul.handle_binding_ack(genuine, 200.2).result is AckResult.FAILED


# ---------------------------------------------------------------- forged or stale BAs


def test_forged_acks_are_ignored_and_the_bu_stays_outstanding(
    identity: MobileNodeIdentity,
    stranger: MobileNodeIdentity,
    home: CgaAddress,
    hdar: FakeHdar,
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    to_stranger = auth.encrypt_phkt(stranger.private_key.public_key(), bytes(8))
    cases = [
        (hdar.answer(bu, kbm=bytes(20)), {IgnoreReason.BAD_AUTHENTICATOR}),
        (hdar.answer(bu, authenticate=False), {IgnoreReason.MISSING_AUTHENTICATOR}),
        (hdar.answer(bu, issue_phkt=False), {IgnoreReason.MISSING_PHKT}),
        (hdar.answer(bu, phkt_ciphertext=bytes(100)), {IgnoreReason.PHKT_UNDECRYPTABLE}),
        # Implicit rejection may turn a foreign ciphertext into 8 random bytes.
        (
            hdar.answer(bu, phkt_ciphertext=to_stranger),
            {IgnoreReason.PHKT_UNDECRYPTABLE, IgnoreReason.BAD_AUTHENTICATOR},
        ),
        (hdar.answer(bu, sequence=FIRST_SEQUENCE - 1), {IgnoreReason.SEQUENCE_MISMATCH}),
        (hdar.answer(bu, source=OTHER_DAR), {IgnoreReason.UNKNOWN_BINDING}),
        (mh.parse_ipv6_packet(bu), {IgnoreReason.NOT_A_BINDING_ACK}),
    ]
    for forged, reasons in cases:
        outcome = bul.handle_binding_ack(forged, T0 + 0.1)
        assert outcome.result is AckResult.IGNORED
        assert outcome.ignore_reason in reasons
        assert outcome.packet is None
    [status] = bul.entries()
    assert (status.state, status.phkt_held) == (BindingState.PENDING, False)
    assert bul.next_deadline() == T0 + 1.5
    assert bul.handle_binding_ack(hdar.answer(bu), T0 + 0.2).result is AckResult.REGISTERED


def test_ack_of_an_earlier_transmission_is_ignored(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    first = bul.register(home.address, home.params, HDAR, COA, T0)
    [second] = bul.due(T0 + 1.5)
    late = bul.handle_binding_ack(hdar.answer(first), T0 + 1.6)
    assert late.ignore_reason is IgnoreReason.SEQUENCE_MISMATCH
    assert bul.handle_binding_ack(hdar.answer(second), T0 + 1.7).result is AckResult.REGISTERED
    duplicate = bul.handle_binding_ack(hdar.answer(second), T0 + 1.8)
    assert duplicate.ignore_reason is IgnoreReason.NOTHING_OUTSTANDING


# ---------------------------------------------------------------- deregistration (P11)


def test_deregistration_authenticator_uses_the_hoa(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    raw = bul.deregister(home.address, HDAR, COA2, 200.0)
    assert raw is not None
    packet, bu = parse_bu(raw)

    assert (packet.source, packet.destination, packet.home_address) == (COA2, HDAR, home.address)
    assert bu.lifetime_units == 0
    assert bu.sequence == FIRST_SEQUENCE + 1
    assert option_types(packet.mh.raw) == [mh.OptionType.BINDING_AUTHORIZATION_DATA]
    kbm = sha1(hdar.phkt or b"")
    data = packet.mh.authorized_data()
    assert bu.options.authenticator == authenticator(kbm, home.address, HDAR, data)
    assert bu.options.authenticator != authenticator(kbm, COA2, HDAR, data)
    assert bul.entries()[0].state is BindingState.DEREGISTERING
    assert bul.next_deadline() == 201.0

    over_coa = hdar.answer(raw, first_address=COA2)
    assert bul.handle_binding_ack(over_coa, 200.1).ignore_reason is IgnoreReason.BAD_AUTHENTICATOR
    outcome = bul.handle_binding_ack(hdar.answer(raw), 200.2)
    assert outcome.result is AckResult.DEREGISTERED
    assert bul.entries() == []
    assert bul.next_deadline() is None


def test_deregistration_from_home_is_sourced_from_the_hoa(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = registered(identity, home, hdar)
    raw = bul.deregister(home.address, HDAR, home.address, 200.0)
    assert raw is not None
    packet, bu = parse_bu(raw)

    assert (packet.source, packet.destination) == (home.address, HDAR)
    assert packet.home_address is None
    assert bu.lifetime_units == 0
    assert bu.options.authenticator == authenticator(
        sha1(hdar.phkt or b""), home.address, HDAR, packet.mh.authorized_data()
    )
    ba = hdar.answer(raw)
    assert (ba.destination, ba.routing_address) == (home.address, None)
    assert bul.handle_binding_ack(ba, 200.1).result is AckResult.DEREGISTERED


def test_deregistration_without_phkt_is_cga_signed(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bul.register(home.address, home.params, HDAR, COA, T0)
    raw = bul.deregister(home.address, HDAR, COA, T0 + 0.5)
    assert raw is not None
    packet, bu = parse_bu(raw)

    assert bu.lifetime_units == 0
    assert bu.sequence == FIRST_SEQUENCE + 1
    assert option_types(packet.mh.raw) == [mh.OptionType.CGA_PARAMETERS, mh.OptionType.SIGNATURE]
    assert_signed_by(packet, identity.private_key.public_key())
    assert bul.next_deadline() == T0 + 0.5 + 1.5  # no binding known at the HDAR
    outcome = bul.handle_binding_ack(hdar.answer(raw), T0 + 0.6)
    assert outcome.result is AckResult.DEREGISTERED


def test_deregistering_an_unknown_binding_sends_nothing(identity: MobileNodeIdentity) -> None:
    assert make_list(identity).deregister(COA, HDAR, COA2, T0) is None


# ---------------------------------------------------------------- forget


def test_forget_drops_the_entry(
    identity: MobileNodeIdentity, home: CgaAddress, hdar: FakeHdar
) -> None:
    bul = make_list(identity)
    bu = bul.register(home.address, home.params, HDAR, COA, T0)
    assert bul.forget(home.address, HDAR)
    assert not bul.forget(home.address, HDAR)
    assert bul.entries() == []
    assert bul.next_deadline() is None
    assert bul.handle_binding_ack(hdar.answer(bu), T0 + 0.1).ignore_reason is (
        IgnoreReason.UNKNOWN_BINDING
    )
