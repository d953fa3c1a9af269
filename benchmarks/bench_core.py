"""Cost of the pure protocol core per Binding Update, on this machine.

Prints median microseconds (and ratios against the raw primitives measured
in the same run) for: parsing a BU, CGA verification + signature check of a
first BU, PHKT authentication of a later BU, the whole home-agent decision
for each kind, and Sec 1 CGA generation.  Writes the figures as JSON.

    .venv/bin/python benchmarks/bench_core.py [--rounds N] [--json results/bench_core.json]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from fama_ryu import auth, cga, mh
from fama_ryu.binding_cache import BindingCache
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig


def _address(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def median_us(function: Callable[[], object], rounds: int, inner: int = 1) -> float:
    """Median over ``rounds`` of the per-call time of ``inner`` calls, in µs."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - start) / inner * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--sec1-runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("results/bench_core.json"))
    args = parser.parse_args()

    seeded = random.Random(7)
    rng = seeded.randbytes
    anchor = _address("2001:db8:1::1")
    coa = _address("2001:db8:2::99")
    key = cga.generate_rsa_key(1024)
    der = cga.public_key_der(key)
    hoa, params = cga.generate_cga(der, anchor[:8], 1, rng)
    signature_len = key.key_size // 8

    first_bu = mh.build_packet(
        mh.BindingUpdate(
            sequence=1,
            lifetime_units=100,
            options=mh.MobilityOptions(cga_parameters=params.encode()),
        ),
        source=coa,
        destination=anchor,
        home_address=hoa,
        signer=lambda data: auth.sign_binding_update(key, coa, anchor, data),
        signature_len=signature_len,
    )
    config = HomeAgentConfig("dar1", anchor, (anchor[:8],))
    agent = HomeAgent(config, rng, BindingCache())
    first = agent.handle(mh.parse_ipv6_packet(first_bu), 0.0)
    assert first.change is not None and first.reply is not None
    agent.apply(first.change)
    ba = mh.parse_ipv6_packet(first.reply.packet)
    encrypted = ba.message.options.permanent_home_keygen_token
    assert encrypted is not None
    phkt = auth.decrypt_phkt(key, encrypted)
    assert phkt is not None
    kbm = auth.binding_management_key(phkt, None)

    def phkt_bu(sequence: int) -> bytes:
        return mh.build_packet(
            mh.BindingUpdate(sequence=sequence, lifetime_units=100),
            source=coa,
            destination=anchor,
            home_address=hoa,
            authenticator=lambda data: auth.binding_authenticator(kbm, coa, anchor, data),
        )

    later_bu = phkt_bu(2)
    parsed_first = mh.parse_ipv6_packet(first_bu)
    parsed_later = mh.parse_ipv6_packet(later_bu)
    public_key = key.public_key()
    signed = parsed_first.mh.signed_data()
    signature = parsed_first.message.options.signature
    assert signature is not None

    def cga_and_signature() -> None:
        decoded = cga.CgaParameters.decode(params.encode())
        assert cga.verify_cga(hoa, decoded, check_key=False).ok
        loaded = cga.load_public_key(decoded.public_key_der)
        assert auth.verify_binding_update_signature(loaded, signature, coa, anchor, signed)

    def phkt_check() -> None:
        expected = auth.binding_authenticator(kbm, coa, anchor, parsed_later.mh.authorized_data())
        assert auth.authenticator_matches(
            expected, parsed_later.message.options.authenticator or b""
        )

    raw_message = auth.signature_input(coa, anchor, signed)

    def raw_rsa_verify() -> None:
        public_key.verify(signature, raw_message, padding.PKCS1v15(), hashes.SHA1())

    def raw_hmac() -> None:
        hmac.compare_digest(
            hmac.new(kbm, coa + anchor + parsed_later.mh.authorized_data(), hashlib.sha1).digest()[
                :12
            ],
            parsed_later.message.options.authenticator or b"",
        )

    # A fresh agent per CGA decision would measure setup; instead decide the
    # same first BU against a cache that has no binding for it (decide only).
    fresh_agent = HomeAgent(config, rng, BindingCache())
    sequence = iter(range(3, 1 << 30))

    def cga_decision() -> None:
        fresh_agent.handle(mh.parse_ipv6_packet(first_bu), 1.0)

    def phkt_decision() -> None:
        decision = agent.handle(mh.parse_ipv6_packet(phkt_bu(next(sequence) % 65536)), 1.0)
        assert decision.change is not None
        agent.apply(decision.change)

    rounds = args.rounds
    figures = {
        "parse_first_bu_us": median_us(lambda: mh.parse_ipv6_packet(first_bu), rounds, 20),
        "parse_later_bu_us": median_us(lambda: mh.parse_ipv6_packet(later_bu), rounds, 20),
        "cga_verify_and_signature_us": median_us(cga_and_signature, rounds),
        "raw_rsa1024_verify_us": median_us(raw_rsa_verify, rounds),
        "phkt_authentication_us": median_us(phkt_check, rounds, 20),
        "raw_hmac_sha1_us": median_us(raw_hmac, rounds, 20),
        "decision_first_cga_bu_us": median_us(cga_decision, rounds),
        "decision_phkt_bu_us": median_us(phkt_decision, rounds),
    }
    sec1 = []
    for run in range(args.sec1_runs):
        start = time.perf_counter()
        cga.generate_cga(der, anchor[:8], 1, random.Random(run).randbytes)
        sec1.append((time.perf_counter() - start) * 1e3)
    figures["sec1_generation_ms_median"] = statistics.median(sec1)
    figures["cga_check_vs_raw_rsa_verify"] = (
        figures["cga_verify_and_signature_us"] / figures["raw_rsa1024_verify_us"]
    )
    figures["phkt_check_vs_raw_hmac"] = (
        figures["phkt_authentication_us"] / figures["raw_hmac_sha1_us"]
    )

    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, rounds={rounds}"
    )
    for name, value in figures.items():
        print(f"  {name:34s} {value:10.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": platform.platform(), "figures": figures}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
