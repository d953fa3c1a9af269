"""Cost of the pure protocol core per Binding Update, against raw primitives.

Measures, in one process, the per-call cost of: parsing a first (CGA) and a
later (PHKT) BU; the CGA verification and signature check of a first BU, and
the DER public-key load inside it; the PHKT authentication of a later BU; the
whole home-agent decision for a CGA BU, a PHKT BU and a deregistration; the
same PHKT decision with 100k other bindings in the cache; the expiry scan the
controller runs every tick; Sec 1 CGA generation.  The baselines are
measured in the same run: a raw ``cryptography`` RSA-1024 PKCS#1 v1.5
verify and a raw HMAC-SHA1.

Each repeat takes the median per-call time over ``--rounds`` samples (each
sample times ``inner`` calls); every figure is the median over ``--repeats``
repeats and every ratio the median of the per-repeat ratios.  Also reports the
Python heap of one binding in a :class:`BindingCache` (``tracemalloc``).
Prints a table, writes JSON and a PNG plot::

    .venv/bin/python benchmarks/bench_micro.py [--repeats 5] [--rounds 200]
    .venv/bin/python benchmarks/bench_micro.py --smoke      # about a second
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import ipaddress
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from fama_ryu import auth, cga, mh
from fama_ryu.binding_cache import Binding, BindingCache
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig, Verdict

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ipaddress.IPv6Address("2001:db8:1::1").packed
COA = ipaddress.IPv6Address("2001:db8:2::99").packed
LIFETIME_UNITS = 100
UNBUDGETED = 1_000_000  # RSA verifications per second: cost is measured, not the DoS guard
# One clock for every decision: a time going backwards would be taken for a
# wall-clock step, which moves every binding (BindingCache.follow_clock).
NOW = 1_000_000.0

Case = Callable[[], object]


@dataclass
class Fixture:
    """One MN registered at one home agent, and everything the cases need."""

    first_bu: bytes
    later_bu: Callable[[], bytes]
    deregistration: Callable[[], bytes]
    verify_cga_and_signature: Case
    check_phkt: Case
    raw_rsa_verify: Case
    raw_hmac: Case
    config: HomeAgentConfig
    agent: HomeAgent
    kbm: bytes
    hoa: bytes
    public_key_der: bytes


def home_agent_config() -> HomeAgentConfig:
    return HomeAgentConfig(
        "dar1",
        ANCHOR,
        (ANCHOR[:8],),
        binding_limit=1 << 30,
        rsa_verifications_per_s=UNBUDGETED,
        rsa_verifications_per_source_per_s=UNBUDGETED,
    )


def fixture(seed: int = 7) -> Fixture:
    """An RSA-1024 CGA, its first BU accepted, its PHKT learnt from the BA."""
    rng = random.Random(seed).randbytes
    key = cga.generate_rsa_key(1024)
    der = cga.public_key_der(key)
    hoa, params = cga.generate_cga(der, ANCHOR[:8], 1, rng)
    first_bu = mh.build_packet(
        mh.BindingUpdate(
            1, LIFETIME_UNITS, options=mh.MobilityOptions(cga_parameters=params.encode())
        ),
        source=COA,
        destination=ANCHOR,
        home_address=hoa,
        signer=lambda data: auth.sign_binding_update(key, COA, ANCHOR, data),
        signature_len=key.key_size // 8,
    )
    config = home_agent_config()
    agent = HomeAgent(config, rng, BindingCache())
    first = agent.handle(mh.parse_ipv6_packet(first_bu), NOW)
    assert first.change is not None and first.reply is not None, first.reason
    agent.apply(first.change)
    encrypted = mh.parse_ipv6_packet(first.reply.packet).message.options.permanent_home_keygen_token
    assert encrypted is not None
    phkt = auth.decrypt_phkt(key, encrypted)
    assert phkt is not None
    kbm = auth.binding_management_key(phkt, None)
    sequence = iter(range(2, 1 << 62))

    def authenticated(lifetime_units: int, first_address: bytes) -> bytes:
        return mh.build_packet(
            mh.BindingUpdate(next(sequence) % 65536, lifetime_units),
            source=COA,
            destination=ANCHOR,
            home_address=hoa,
            authenticator=lambda data: auth.binding_authenticator(kbm, first_address, ANCHOR, data),
        )

    parsed_first = mh.parse_ipv6_packet(first_bu)
    parsed_later = mh.parse_ipv6_packet(authenticated(LIFETIME_UNITS, COA))
    signed = parsed_first.mh.signed_data()
    signature = parsed_first.message.options.signature
    authenticator = parsed_later.message.options.authenticator
    assert signature is not None and authenticator is not None
    encoded_params = params.encode()
    public_key = key.public_key()
    raw_message = auth.signature_input(COA, ANCHOR, signed)
    authorized = parsed_later.mh.authorized_data()

    def verify_cga_and_signature() -> None:
        decoded = cga.CgaParameters.decode(encoded_params)
        assert cga.verify_cga(hoa, decoded, check_key=False).ok
        loaded = cga.load_public_key(decoded.public_key_der)
        assert auth.verify_binding_update_signature(loaded, signature, COA, ANCHOR, signed)

    def check_phkt() -> None:
        expected = auth.binding_authenticator(kbm, COA, ANCHOR, authorized)
        assert auth.authenticator_matches(expected, authenticator)

    def raw_rsa_verify() -> None:
        public_key.verify(signature, raw_message, padding.PKCS1v15(), hashes.SHA1())

    def raw_hmac() -> None:
        digest = hmac.new(kbm, COA + ANCHOR + authorized, hashlib.sha1).digest()[:12]
        assert hmac.compare_digest(digest, authenticator)

    return Fixture(
        first_bu=first_bu,
        later_bu=lambda: authenticated(LIFETIME_UNITS, COA),
        deregistration=lambda: authenticated(0, hoa),
        verify_cga_and_signature=verify_cga_and_signature,
        check_phkt=check_phkt,
        raw_rsa_verify=raw_rsa_verify,
        raw_hmac=raw_hmac,
        config=config,
        agent=agent,
        kbm=kbm,
        hoa=hoa,
        public_key_der=der,
    )


def synthetic_binding(index: int, rng: Callable[[int], bytes]) -> Binding:
    """A binding as the controller holds it: distinct HoA, CoA, key hash and PHKT objects."""
    return Binding(
        hoa=ANCHOR[:8] + (index + 2).to_bytes(8, "big"),
        coa=b"\x20\x01\x0d\xb8\xff" + rng(11),
        sequence=index % 65536,
        lifetime_s=3600,
        registered_at=NOW,
        expires_at=NOW + 3600,
        key_hash=rng(16),
        phkt=rng(16),
    )


def fill(cache: BindingCache, count: int, rng: Callable[[int], bytes]) -> None:
    for index in range(count):
        cache.apply(cache.registration(synthetic_binding(index, rng)))


def cache_bytes_per_binding(count: int) -> float:
    """Python heap one binding takes in a BindingCache (tracemalloc, ``count`` bindings)."""
    rng = random.Random(3).randbytes
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    cache = BindingCache()
    fill(cache, count, rng)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(cache) == count
    return (after - before) / count


@dataclass
class Bench:
    """What one figure times: ``run(made)`` per call, ``made`` prepared untimed by ``make``."""

    run: Callable[[Any], object]
    inner: int = 1  # calls per sample
    make: Callable[[], Any] = lambda: None


def cases(f: Fixture, scale: int) -> tuple[dict[str, Bench], dict[str, Bench]]:
    """The per-BU cases; apart, those on a cache of ``scale`` bindings.

    Measured apart: scanning that cache evicts the CPU caches that the
    per-BU cases would otherwise find warm, as in the controller's loop.
    """
    fresh = HomeAgent(f.config, random.Random(9).randbytes, BindingCache())
    agent = f.agent
    later_bu = f.later_bu()

    def cga_decision(_: None) -> None:
        # Decided, never applied: every call is a first registration.
        decision = fresh.handle(mh.parse_ipv6_packet(f.first_bu), NOW + 1)
        assert decision.verdict is Verdict.ACCEPTED, decision.reason

    def phkt_decision(on: HomeAgent) -> Callable[[bytes], None]:
        def decide(packet: bytes) -> None:
            decision = on.handle(mh.parse_ipv6_packet(packet), NOW + 1)
            assert decision.change is not None, decision.reason
            on.apply(decision.change)

        return decide

    def deregistration_decision(packet: bytes) -> None:
        # Decided, never applied: the binding stays for the next call.
        decision = agent.handle(mh.parse_ipv6_packet(packet), NOW + 1)
        assert decision.verdict is Verdict.ACCEPTED, decision.reason

    crowded = HomeAgent(f.config, random.Random(11).randbytes, BindingCache())
    fill(crowded.cache, scale, random.Random(5).randbytes)
    registered = agent.cache.get(f.hoa)
    assert registered is not None
    crowded.apply(crowded.cache.registration(registered))
    return {
        "parse_first_bu": Bench(lambda _: mh.parse_ipv6_packet(f.first_bu), 20),
        "parse_later_bu": Bench(lambda _: mh.parse_ipv6_packet(later_bu), 20),
        "cga_verify_and_signature": Bench(lambda _: f.verify_cga_and_signature(), 5),
        "cga_public_key_load": Bench(lambda _: cga.load_public_key(f.public_key_der), 20),
        "raw_rsa1024_verify": Bench(lambda _: f.raw_rsa_verify(), 5),
        "phkt_authentication": Bench(lambda _: f.check_phkt(), 20),
        "raw_hmac_sha1": Bench(lambda _: f.raw_hmac(), 20),
        "decision_cga_bu": Bench(cga_decision, 5),
        "decision_phkt_bu": Bench(phkt_decision(agent), 5, f.later_bu),
        "decision_deregistration": Bench(deregistration_decision, 5, f.deregistration),
    }, {
        f"decision_phkt_bu_{scale}_bindings": Bench(phkt_decision(crowded), 5, f.later_bu),
        f"expiry_scan_{scale}_bindings": Bench(lambda _: crowded.expirations(NOW + 1)),
    }


def sample_us(case: Bench) -> float:
    made = [case.make() for _ in range(case.inner)]
    run = case.run
    start = time.perf_counter()
    for argument in made:
        run(argument)
    return (time.perf_counter() - start) / case.inner * 1e6


def measure(named: dict[str, Bench], repeats: int, rounds: int) -> dict[str, list[float]]:
    """Per repeat and case, the median µs per call; cases interleaved so drift hits all."""
    per_repeat: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(repeats):
        samples: dict[str, list[float]] = {name: [] for name in named}
        for _ in range(rounds):
            for name, case in named.items():
                samples[name].append(sample_us(case))
        for name, values in samples.items():
            per_repeat[name].append(statistics.median(values))
    return per_repeat


RATIOS = {
    "cga_check_vs_raw_rsa_verify": ("cga_verify_and_signature", "raw_rsa1024_verify"),
    "decision_cga_bu_vs_raw_rsa_verify": ("decision_cga_bu", "raw_rsa1024_verify"),
    "phkt_check_vs_raw_hmac": ("phkt_authentication", "raw_hmac_sha1"),
    "decision_phkt_bu_vs_raw_hmac": ("decision_phkt_bu", "raw_hmac_sha1"),
    "parse_later_bu_vs_raw_hmac": ("parse_later_bu", "raw_hmac_sha1"),
}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    f = fixture()
    named = cases(f, args.scale)
    scaled = f"decision_phkt_bu_{args.scale}_bindings"
    ratios_of = RATIOS | {f"decision_phkt_bu_{args.scale}_vs_empty": (scaled, "decision_phkt_bu")}
    per_bu, crowded = named
    per_repeat = measure(per_bu, args.repeats, args.rounds)
    per_repeat |= measure(crowded, args.repeats, args.rounds)
    sec1_ms = []
    der = cga.public_key_der(cga.generate_rsa_key(1024))
    for run in range(args.sec1_runs):
        start = time.perf_counter()
        cga.generate_cga(der, ANCHOR[:8], 1, random.Random(run).randbytes)
        sec1_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "config": {
            key: getattr(args, key) for key in ("repeats", "rounds", "scale", "sec1_runs", "smoke")
        },
        "figures_us": {
            name: {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "repeats": [round(v, 3) for v in values],
            }
            for name, values in per_repeat.items()
        },
        "ratios": {
            name: statistics.median(
                a / b for a, b in zip(per_repeat[top], per_repeat[bottom], strict=True)
            )
            for name, (top, bottom) in ratios_of.items()
        },
        "sec1_generation_ms": statistics.median(sec1_ms) if sec1_ms else None,
        "cache_bytes_per_binding": cache_bytes_per_binding(args.cache_bindings),
    }


def report(data: dict[str, Any]) -> str:
    lines = [f"{'figure':<40} {'median µs':>10} {'min':>9} {'max':>9}"]
    for name, figure in data["figures_us"].items():
        lines.append(
            f"{name:<40} {figure['median']:>10.2f} {figure['min']:>9.2f} {figure['max']:>9.2f}"
        )
    lines.append("")
    for name, value in data["ratios"].items():
        lines.append(f"{name:<40} {value:>10.2f}")
    if data["sec1_generation_ms"] is not None:
        lines.append(f"{'sec1_generation_ms (median)':<40} {data['sec1_generation_ms']:>10.1f}")
    lines.append(f"{'cache_bytes_per_binding':<40} {data['cache_bytes_per_binding']:>10.0f}")
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data["figures_us"])
    medians = [data["figures_us"][n]["median"] for n in names]
    lows = [m - data["figures_us"][n]["min"] for n, m in zip(names, medians, strict=True)]
    highs = [data["figures_us"][n]["max"] - m for n, m in zip(names, medians, strict=True)]
    colors = ["tab:gray" if n.startswith("raw_") else "tab:blue" for n in names]
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    axis.barh(names, medians, xerr=[lows, highs], color=colors)
    axis.invert_yaxis()
    axis.set(xscale="log", xlabel="µs per call (median over repeats; bars: min..max)")
    axis.set_title("Per-BU core costs (blue) and raw primitives (grey), one process")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats (medians reported)")
    parser.add_argument("--rounds", type=int, default=200, help="samples per repeat and case")
    parser.add_argument("--scale", type=int, default=100_000, help="bindings of the crowded cache")
    parser.add_argument("--cache-bindings", type=int, default=10_000, help="for bytes/binding")
    parser.add_argument("--sec1-runs", type=int, default=10, help="Sec 1 CGA generations")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_micro.json")
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG path (default: the JSON path with .png)"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run of about a second")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.rounds, args.scale = 2, 3, 1000
        args.cache_bindings, args.sec1_runs = 200, 1
    data = bench(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    plot_path = args.plot or args.json.with_suffix(".png")
    plot(data, plot_path)
    print(report(data))
    print(f"\nJSON: {args.json}\nplot: {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
