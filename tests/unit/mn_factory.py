"""Test-only mobile node: builds the signalling a FAMA MN sends to its HDAR.

Packets are encoded with ``fama_ryu.mh.build_packet`` and authenticated with
``fama_ryu.auth`` exactly as the profile describes:

* first CGA Binding Update: CGA Parameters + Signature (P6), plus Nonce
  Indices and authorization data keyed by SHA1(care-of token) in return
  routability mode (P13);
* later Binding Updates: Binding Authorization Data keyed by Kbm = SHA1(PHKT)
  or SHA1(PHKT | care-of token) over CoA | A_d | MH data (P9, P13);
* deregistrations: lifetime 0 or CoA == HoA, the HoA standing in for the CoA
  in the authenticator (P9, P11).

RSA keys and CGAs are made once per process (``functools.cache``) because
key generation and Sec 1 modifier searches are the slow part of the tests.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from fama_ryu import auth, cga, mh

Rng = Callable[[int], bytes]


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def prefix(text: str) -> bytes:
    return addr(text)[:8]


# DAR "a" anchors two prefixes; the MN visits DAR "b"; DAR "c" is another HDAR.
PREFIX_HOME = prefix("2001:db8:a::")
PREFIX_HOME_2 = prefix("2001:db8:a2::")
PREFIX_VISITED = prefix("2001:db8:b::")
PREFIX_FOREIGN = prefix("2001:db8:c::")
ANCHOR = addr("2001:db8:a::1")  # A_d, in the first access prefix (P1)
COA_1 = addr("2001:db8:b::100")
COA_2 = addr("2001:db8:b::200")
COA_3 = addr("2001:db8:b::300")
ATTACKER = addr("2001:db8:e::666")
KDAR = bytes(range(20))

DEFAULT_LIFETIME_UNITS = 100  # 400 s, below the default 3600 s maximum


def seeded_rng(seed: int) -> Rng:
    return random.Random(seed).randbytes


@functools.cache
def rsa_key(bits: int = 1024) -> rsa.RSAPrivateKey:
    return cga.generate_rsa_key(bits)


@functools.cache
def cga_address(
    subnet_prefix: bytes, sec: int = 0, seed: int = 1, bits: int = 1024
) -> tuple[bytes, cga.CgaParameters]:
    """A CGA (RFC 3972 §4) for ``rsa_key(bits)``; deterministic given ``seed``."""
    return cga.generate_cga(cga.public_key_der(rsa_key(bits)), subnet_prefix, sec, seeded_rng(seed))


def kbm(phkt: bytes | None, care_of_token: bytes | None = None) -> bytes:
    return auth.binding_management_key(phkt, care_of_token)


def parse(packet: bytes) -> mh.MobilityPacket:
    return mh.parse_ipv6_packet(packet)


def resend(
    packet: bytes,
    *,
    source: bytes,
    home_address: bytes | None = None,
    destination: bytes | None = None,
) -> bytes:
    """Re-wrap a captured packet's Mobility Header under other IPv6 addresses.

    The options (signature, authenticator) are copied byte for byte; only the
    checksum changes, which an attacker can always recompute.
    """
    parsed = parse(packet)
    return mh.build_packet(
        parsed.message,
        source=source,
        destination=destination if destination is not None else parsed.destination,
        home_address=home_address if home_address is not None else parsed.home_address,
    )


def ba_authenticator_ok(packet: bytes, key: bytes, first: bytes, anchor: bytes = ANCHOR) -> bool:
    """RFC 6275 §6.2.7 / P12: the BA's Binding Authorization Data is keyed by ``key``."""
    parsed = parse(packet)
    received = parsed.message.options.authenticator
    if received is None:
        return False
    expected = auth.binding_authenticator(key, first, anchor, parsed.mh.authorized_data())
    return expected == received


def coti_packet(coa: bytes, cookie: bytes = b"cookie!!", anchor: bytes = ANCHOR) -> bytes:
    """A Care-of Test Init from ``coa`` to the DAR (P13)."""
    return mh.build_packet(mh.CareOfTestInit(cookie), source=coa, destination=anchor)


@dataclass
class MobileNode:
    """One CGA home address and its key, plus the PHKT learnt from the HDAR."""

    key: rsa.RSAPrivateKey
    hoa: bytes
    params: cga.CgaParameters
    anchor: bytes = ANCHOR
    phkt: bytes | None = None

    @classmethod
    def create(
        cls,
        subnet_prefix: bytes = PREFIX_HOME,
        *,
        sec: int = 0,
        seed: int = 1,
        bits: int = 1024,
        anchor: bytes = ANCHOR,
    ) -> MobileNode:
        hoa, params = cga_address(subnet_prefix, sec, seed, bits)
        return cls(rsa_key(bits), hoa, params, anchor)

    # ------------------------------------------------------------ generic

    def binding_update(
        self,
        sequence: int,
        *,
        source: bytes,
        lifetime_units: int = DEFAULT_LIFETIME_UNITS,
        with_cga: bool = False,
        params: cga.CgaParameters | None = None,
        signed_coa: bytes | None = None,
        auth_key: bytes | None = None,
        auth_first: bytes | None = None,
        nonce_indices: tuple[int, int] | None = None,
        alternate_coa: bytes | None = None,
        ack: bool = True,
        home_registration: bool = True,
        destination: bytes | None = None,
        with_home_address: bool = True,
    ) -> bytes:
        """Build a BU packet (P4) from ``source`` to the anchor.

        ``with_cga`` adds CGA Parameters (``params`` or the MN's own) and a
        Signature over ``signed_coa`` (default: the CoA) (P6).  ``auth_key``
        adds Binding Authorization Data over ``auth_first`` (default: the
        CoA, or the HoA for a deregistration) (P9).
        """
        coa = alternate_coa if alternate_coa is not None else source
        deregistration = lifetime_units == 0 or coa == self.hoa
        if auth_first is None:
            auth_first = self.hoa if deregistration else coa
        options = mh.MobilityOptions(
            alternate_coa=alternate_coa,
            nonce_indices=nonce_indices,
            cga_parameters=(params or self.params).encode() if with_cga else None,
        )
        bu = mh.BindingUpdate(
            sequence,
            lifetime_units,
            ack=ack,
            home_registration=home_registration,
            options=options,
        )
        anchor = self.anchor
        signer = None
        signature_len = 0
        if with_cga:
            signing_coa = signed_coa if signed_coa is not None else coa
            key = self.key

            def signer(data: bytes) -> bytes:
                return auth.sign_binding_update(key, signing_coa, anchor, data)

            signature_len = (key.key_size + 7) // 8
        authenticator = None
        if auth_key is not None:
            first = auth_first
            kbm_value = auth_key

            def authenticator(data: bytes) -> bytes:
                return auth.binding_authenticator(kbm_value, first, anchor, data)

        return mh.build_packet(
            bu,
            source=source,
            destination=destination if destination is not None else anchor,
            home_address=self.hoa if with_home_address else None,
            signer=signer,
            signature_len=signature_len,
            authenticator=authenticator,
        )

    # ------------------------------------------------------------ profile messages

    def first_bu(
        self,
        sequence: int,
        coa: bytes,
        lifetime_units: int = DEFAULT_LIFETIME_UNITS,
        *,
        care_of_token: bytes | None = None,
        nonce_index: int | None = None,
        **kwargs: Any,
    ) -> bytes:
        """A CGA BU (P6); with a care-of token also authorization data (P13)."""
        if care_of_token is not None:
            assert nonce_index is not None
            kwargs.setdefault("auth_key", kbm(None, care_of_token))
            kwargs.setdefault("nonce_indices", (0, nonce_index))
        return self.binding_update(
            sequence, source=coa, lifetime_units=lifetime_units, with_cga=True, **kwargs
        )

    def phkt_bu(
        self,
        sequence: int,
        coa: bytes,
        lifetime_units: int = DEFAULT_LIFETIME_UNITS,
        *,
        phkt: bytes | None = None,
        care_of_token: bytes | None = None,
        nonce_index: int | None = None,
        **kwargs: Any,
    ) -> bytes:
        """A later BU authenticated with Kbm = SHA1(PHKT [| care-of token]) (P9, P13)."""
        token = phkt if phkt is not None else self.phkt
        assert token is not None, "the MN holds no PHKT yet"
        if nonce_index is not None:
            kwargs.setdefault("nonce_indices", (0, nonce_index))
        kwargs.setdefault("auth_key", kbm(token, care_of_token))
        return self.binding_update(sequence, source=coa, lifetime_units=lifetime_units, **kwargs)

    def deregistration(
        self,
        sequence: int,
        coa: bytes | None = None,
        *,
        lifetime_units: int = 0,
        phkt: bytes | None = None,
        **kwargs: Any,
    ) -> bytes:
        """P11: lifetime 0 from ``coa``; or, without ``coa``, a BU sent from
        the HoA itself without a Home Address option (RFC 6275 §10.3.2)."""
        if coa is None:
            kwargs.setdefault("with_home_address", False)
            coa = self.hoa
        return self.phkt_bu(sequence, coa, lifetime_units, phkt=phkt, **kwargs)

    def learn_phkt(self, ba_packet: bytes, first: bytes) -> bytes:
        """Decrypt the PHKT of a BA (P12) and check the BA authenticator with it."""
        parsed = parse(ba_packet)
        encrypted = parsed.message.options.permanent_home_keygen_token
        assert encrypted is not None, "BA carries no Permanent Home Keygen Token option"
        phkt = auth.decrypt_phkt(self.key, encrypted)
        assert phkt is not None and len(phkt) == auth.PHKT_LEN
        assert ba_authenticator_ok(ba_packet, hashlib.sha1(phkt).digest(), first, self.anchor)
        self.phkt = phkt
        return phkt
