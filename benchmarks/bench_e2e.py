"""Binding Updates end to end through Open vSwitch: BU -> BA latency and the highest rate.

One command brings up a ``fama-lab`` lab of its own (2 DARs, Open vSwitch
userspace datapath, the real controller, the Linux core router), then runs an
injector inside the MN namespace on dar1's access link.  The injector emulates
``--mns`` mobile nodes: each has a CGA home address of dar2's prefix (dar2 is
its HDAR) and a care-of address in dar1's prefix, so every BU takes the real
path: dar1's access port -> dar1 -> core -> dar2, punted to the controller,
flows installed on dar2, BA packet-out -> core -> dar1 -> the access link.
Frames are sent on a raw AF_PACKET socket and BAs are received on it with
kernel timestamps (SO_TIMESTAMPNS).

Measured, ``--repeats`` rounds, medians reported:

* latency at ``--rate`` (100) per second: CGA BUs (RSA-1024 signature), then
  PHKT BUs (P9), ``--samples`` each; p50/p95/p99 BU -> BA;
* the baseline at the same rate on the same link and packet-in path: a
  Neighbor Solicitation from a care-of address for dar1's anchor, answered by
  the controller with a Neighbor Advertisement (punted by the same OVS,
  handled by the same controller, no flows, no store, one hop shorter);
* the rate ramp: PHKT BUs at ``--rates`` for ``--step-s`` each; the highest
  rate with >= 99 % answered within 1 s (the MN's first retransmission
  timeout, RFC 6275 §12); the same ramp for the baseline NS.

Usage (root)::

    .venv/bin/python benchmarks/bench_e2e.py [--lab-id bench-e2e] [--repeats 3]
    .venv/bin/python benchmarks/bench_e2e.py --smoke    # about 20 s
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import random
import socket
import statistics
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_common import (  # noqa: E402
    RESULTS,
    counter_delta,
    dar_counters,
    machine,
    percentiles_ms,
    ratio,
    run_and_report,
    run_in_node,
    running_lab,
)
from ofload import ba_keys, ba_status  # noqa: E402

from fama_ryu import auth, cga, icmpv6, mh  # noqa: E402

DEFAULT_LAB_ID = "bench-e2e"
LIFETIME_UNITS = 100  # 400 s: no binding expires during a run
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANSWERED_TARGET = 0.99
# An answer counts if it arrives within the MN's first retransmission timeout
# (INITIAL_BINDACK_TIMEOUT, RFC 6275 §12): later, the MN has sent the BU again.
ANSWER_TIMEOUT_S = 1.0


# =========================================================================== injector
# Runs inside the MN namespace (``bench_e2e.py _inject SPEC``); JSON on stdout.


@dataclass
class EmulatedMn:
    """One emulated mobile node: a CGA HoA of the HDAR's prefix, a CoA on the access link."""

    hoa: bytes
    params: cga.CgaParameters
    coa: bytes
    key: rsa.RSAPrivateKey
    hdar: bytes
    sequence: int = 0
    phkt: bytes | None = None

    def _packet(self, bu: mh.BindingUpdate, **kwargs: Any) -> bytes:
        return mh.build_packet(
            bu, source=self.coa, destination=self.hdar, home_address=self.hoa, **kwargs
        )

    def cga_bu(self) -> tuple[bytes, int]:
        """A CGA-signed BU (P6) and its sequence number."""
        self.sequence = (self.sequence + 1) & 0xFFFF
        key, coa, hdar = self.key, self.coa, self.hdar
        options = mh.MobilityOptions(cga_parameters=self.params.encode())
        packet = self._packet(
            mh.BindingUpdate(self.sequence, LIFETIME_UNITS, options=options),
            signer=lambda data: auth.sign_binding_update(key, coa, hdar, data),
            signature_len=key.key_size // 8,
        )
        return packet, self.sequence

    def phkt_bu(self) -> tuple[bytes, int]:
        """A BU authenticated with Kbm = SHA1(PHKT) (P9)."""
        assert self.phkt is not None, "no PHKT learnt yet"
        self.sequence = (self.sequence + 1) & 0xFFFF
        kbm = auth.binding_management_key(self.phkt, None)
        coa, hdar = self.coa, self.hdar
        packet = self._packet(
            mh.BindingUpdate(self.sequence, LIFETIME_UNITS),
            authenticator=lambda data: auth.binding_authenticator(kbm, coa, hdar, data),
        )
        return packet, self.sequence


@dataclass
class Request:
    frame: bytes
    key: tuple[bytes, int] | bytes  # (HoA, sequence) of a BU; the CoA of an NS
    sent_at: float = 0.0
    answered_at: float | None = None
    status: int | None = None


@dataclass
class Injector:
    """Sends paced frames on the access link; a thread matches answers by kernel timestamp."""

    interface: str
    sock: socket.socket = field(init=False)
    pending_bu: dict[tuple[bytes, int], Request] = field(default_factory=dict)
    pending_ns: dict[bytes, collections.deque[Request]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    ba_frames: list[bytes] = field(default_factory=list)
    keep_ba_frames: bool = False
    unmatched: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((self.interface, ETH_P_IPV6))
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            frame, ancillary, _flags, address = self.sock.recvmsg(4096, 64)
            if address[2] == PACKET_OUTGOING:
                continue
            received_at = time.time()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("=qq", data[:16])
                    received_at = seconds + nanoseconds * 1e-9
            self._match(frame, received_at)

    def _match(self, frame: bytes, received_at: float) -> None:
        if len(frame) > 62 and frame[20] == mh.IPPROTO_ICMPV6:
            if frame[54] == icmpv6.NEIGHBOR_ADVERTISEMENT:
                queue = self.pending_ns.get(frame[38:54])
                if queue:
                    queue.popleft().answered_at = received_at
                    return
            self.unmatched += 1
            return
        for address, sequence in ba_keys(frame):
            request = self.pending_bu.pop((address, sequence), None)
            if request is not None:
                request.answered_at = received_at
                request.status = ba_status(frame)
                if self.keep_ba_frames:
                    self.ba_frames.append(frame)
                return
        self.unmatched += 1

    def run(self, requests: list[Request], rate: float) -> dict[str, Any]:
        """Send ``requests`` at ``rate`` per second; answers count within ANSWER_TIMEOUT_S."""
        interval = 1.0 / rate
        start = time.monotonic()
        for n, request in enumerate(requests):
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if isinstance(request.key, tuple):
                self.pending_bu[request.key] = request
            else:
                self.pending_ns[request.key].append(request)
            request.sent_at = time.time()
            self.sock.send(request.frame)
        elapsed = time.monotonic() - start
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline and any(r.answered_at is None for r in requests):
            time.sleep(0.02)
        self.pending_bu.clear()
        self.pending_ns.clear()
        latencies = [
            r.answered_at - r.sent_at
            for r in requests
            if r.answered_at is not None and r.answered_at - r.sent_at <= ANSWER_TIMEOUT_S
        ]
        statuses = collections.Counter(str(r.status) for r in requests if r.status is not None)
        answered = len(latencies)
        # Answers per second however late: at overload, what the path sustains.
        answer_times = [r.answered_at for r in requests if r.answered_at is not None]
        service_s = max(answer_times, default=0.0) - requests[0].sent_at if requests else 0.0
        return {
            "answered_any": len(answer_times),
            "service_rate_per_s": round(len(answer_times) / service_s, 1)
            if service_s > 0
            else None,
            "offered_per_s": round(rate, 1),
            "sent_per_s": round(len(requests) / elapsed, 1) if elapsed > 0 else None,
            "sent": len(requests),
            "answered": answered,
            "answered_share": round(answered / len(requests), 4) if requests else None,
            "ba_status": dict(statuses),
            "latencies_ms": [round(v * 1e3, 3) for v in latencies],
            **percentiles_ms(latencies),
        }


def make_mns(spec: dict[str, Any]) -> list[EmulatedMn]:
    """``spec['mns']`` MNs sharing one RSA-1024 key (their CGAs, Sec 0, differ by modifier)."""
    rng = random.Random(spec["seed"]).randbytes
    key = cga.generate_rsa_key(1024)
    der = cga.public_key_der(key)
    hdar = ipaddress.IPv6Address(spec["hdar_anchor"]).packed
    home_prefix = ipaddress.IPv6Network(spec["hdar_prefix"]).network_address.packed[:8]
    visited = ipaddress.IPv6Network(spec["serving_prefix"])
    mns = []
    for k in range(spec["mns"]):
        hoa, params = cga.generate_cga(der, home_prefix, 0, rng)
        coa = visited[0xA0000 + k + 1].packed
        mns.append(EmulatedMn(hoa, params, coa, key, hdar))
    return mns


def inject(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole measurement, inside the namespace: resolve, latency rounds, ramps."""
    mac = bytes.fromhex(spec["mac"].replace(":", ""))
    router_mac = bytes.fromhex(spec["router_mac"].replace(":", ""))
    anchor = ipaddress.IPv6Address(spec["serving_anchor"]).packed
    mns = make_mns(spec)
    injector = Injector(spec["interface"])

    def progress(message: str) -> None:
        print(f"[inject] {message}", file=sys.stderr, flush=True)

    def ns_requests(count: int, first: int = 0) -> list[Request]:
        return [
            Request(
                icmpv6.build_neighbor_solicitation(router_mac=mac, source=mn.coa, target=anchor),
                mn.coa,
            )
            for n in range(first, first + count)
            for mn in [mns[n % len(mns)]]
        ]

    def bu_request(packet: bytes, hoa: bytes, sequence: int) -> Request:
        return Request(mh.build_ethernet_frame(mac, router_mac, packet), (hoa, sequence))

    def _cga(mn: EmulatedMn) -> tuple[bytes, bytes, int]:
        packet, sequence = mn.cga_bu()
        return packet, mn.hoa, sequence

    def phkt_requests(count: int) -> list[Request]:
        requests = []
        for n in range(count):
            mn = mns[n % len(mns)]
            packet, sequence = mn.phkt_bu()
            requests.append(bu_request(packet, mn.hoa, sequence))
        return requests

    def learn_phkts() -> int:
        by_coa = {mn.coa: mn for mn in mns}
        learnt = 0
        for frame in injector.ba_frames:
            parsed = mh.parse_ethernet_frame(frame)
            mn = by_coa.get(parsed.destination)
            encrypted = parsed.message.options.permanent_home_keygen_token
            if mn is not None and encrypted is not None:
                mn.phkt = auth.decrypt_phkt(mn.key, encrypted)
                learnt += 1
        injector.ba_frames.clear()
        return learnt

    # Every CoA announces itself to dar1 (its NS for the anchor teaches dar1
    # the host route), so no BA waits for neighbour resolution.
    resolved = injector.run(ns_requests(len(mns)), spec["rate"])
    progress(f"{resolved['answered']}/{resolved['sent']} care-of addresses resolved at dar1")
    rounds: dict[str, list[dict[str, Any]]] = {"baseline_ns": [], "cga_bu": [], "phkt_bu": []}
    for round_no in range(spec["repeats"]):
        samples, rate = spec["samples"], spec["rate"]
        rounds["baseline_ns"].append(injector.run(ns_requests(samples), rate))
        # CGA BUs: built (signed) before the run; each BA carries a new PHKT.
        cga_batch = [_cga(mns[n % len(mns)]) for n in range(min(samples, len(mns)))]
        injector.keep_ba_frames = True
        rounds["cga_bu"].append(injector.run([bu_request(*c) for c in cga_batch], rate))
        injector.keep_ba_frames = False
        learnt = learn_phkts()
        if learnt < len(mns):
            raise RuntimeError(f"only {learnt} of {len(mns)} PHKTs learnt from CGA BAs")
        rounds["phkt_bu"].append(injector.run(phkt_requests(samples), rate))
        p50 = {kind: runs[-1]["p50_ms"] for kind, runs in rounds.items()}
        progress(f"round {round_no + 1}: p50 ms {p50}")
    ramps: dict[str, list[dict[str, Any]]] = {"baseline_ns": [], "phkt_bu": []}
    for kind in ramps:
        for rate in spec["rates"]:
            count = max(1, int(rate * spec["step_s"]))
            requests = ns_requests(count) if kind == "baseline_ns" else phkt_requests(count)
            step = injector.run(requests, rate)
            del step["latencies_ms"]
            ramps[kind].append(step)
            progress(
                f"ramp {kind} {rate}/s: {step['answered_share']:.1%} answered, "
                f"p50 {step['p50_ms']} ms"
            )
            if step["answered_share"] < ANSWERED_TARGET:
                break
            time.sleep(0.5)  # let the controller drain before the next step
    return {
        "resolve": {k: v for k, v in resolved.items() if k != "latencies_ms"},
        "rounds": rounds,
        "ramps": ramps,
        "unmatched_frames": injector.unmatched,
    }


# =========================================================================== orchestration


def highest_rate(steps: list[dict[str, Any]]) -> float | None:
    """Highest offered rate of the ramp with >= 99 % answered (the ramp stops at the first miss)."""
    good = [s["offered_per_s"] for s in steps if s["answered_share"] >= ANSWERED_TARGET]
    return max(good) if good else None


def saturation(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the ramp found a limit, and the answer rate at its last step."""
    last = steps[-1] if steps else {}
    return {
        "limit_found": bool(steps) and last["answered_share"] < ANSWERED_TARGET,
        "last_offered_per_s": last.get("offered_per_s"),
        "service_rate_at_last_step_per_s": last.get("service_rate_per_s"),
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    latency: dict[str, Any] = {}
    for kind, runs in result["rounds"].items():
        pooled = [v / 1e3 for run in runs for v in run["latencies_ms"]]
        latency[kind] = {
            "per_round": [
                {k: run[k] for k in ("p50_ms", "p95_ms", "p99_ms", "sent", "answered")}
                for run in runs
            ],
            "median_of_rounds": {
                key: statistics.median(run[key] for run in runs if run[key] is not None)
                for key in ("p50_ms", "p95_ms", "p99_ms")
                if any(run[key] is not None for run in runs)
            },
            "pooled": percentiles_ms(pooled),
            "sent": sum(run["sent"] for run in runs),
            "answered": sum(run["answered"] for run in runs),
            "ba_status": dict(
                sum((collections.Counter(run["ba_status"]) for run in runs), collections.Counter())
            ),
        }
    highest = {kind: highest_rate(steps) for kind, steps in result["ramps"].items()}
    limits = {kind: saturation(steps) for kind, steps in result["ramps"].items()}
    return {"latency": latency, "highest_rate_99": highest, "ramp_end": limits}


def ratios(summary: dict[str, Any]) -> dict[str, float | None]:
    lat = summary["latency"]
    base = lat["baseline_ns"]["median_of_rounds"]
    out: dict[str, float | None] = {}
    for kind in ("cga_bu", "phkt_bu"):
        for key in ("p50_ms", "p99_ms"):
            out[f"{kind}_{key}_vs_ns"] = ratio(
                lat[kind]["median_of_rounds"].get(key), base.get(key)
            )
    rates = summary["highest_rate_99"]
    out["phkt_highest_rate_vs_ns"] = ratio(rates["phkt_bu"], rates["baseline_ns"])
    return out


def report(data: dict[str, Any]) -> str:
    lat = data["summary"]["latency"]
    rate = data["config"]["rate"]
    lines = [
        f"BU -> BA through OVS at {rate:g}/s (median of {data['config']['repeats']} rounds)",
        f"{'kind':<26} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'x NS p50':>9} {'answered':>10}",
    ]
    names = {
        "cga_bu": "CGA BU (RSA-1024)",
        "phkt_bu": "PHKT BU",
        "baseline_ns": "baseline NS -> NA",
    }
    base_p50 = lat["baseline_ns"]["median_of_rounds"].get("p50_ms")
    for kind, name in names.items():
        med = lat[kind]["median_of_rounds"]
        lines.append(
            f"{name:<26} {med.get('p50_ms') or 0:>8.2f} {med.get('p95_ms') or 0:>8.2f}"
            f" {med.get('p99_ms') or 0:>8.2f} {ratio(med.get('p50_ms'), base_p50) or 0:>9.2f}"
            f" {lat[kind]['answered']:>5}/{lat[kind]['sent']:<5}"
        )
    highest, ends = data["summary"]["highest_rate_99"], data["summary"]["ramp_end"]

    def shown(kind: str) -> str:
        prefix = "" if ends[kind]["limit_found"] else ">= "
        return f"{prefix}{highest[kind]}/s"

    lines.append("")
    lines.append(
        f"highest rate with >= 99 % answered within 1 s: PHKT BU {shown('phkt_bu')},"
        f" baseline NS {shown('baseline_ns')}"
        f" (x {data['ratios']['phkt_highest_rate_vs_ns'] or 0:.2f});"
        f" PHKT answers/s at the first failing step:"
        f" {ends['phkt_bu']['service_rate_at_last_step_per_s']}"
    )
    return "\n".join(lines)


def write_plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, label in (
        ("baseline_ns", "NS -> NA (baseline)"),
        ("phkt_bu", "PHKT BU -> BA"),
        ("cga_bu", "CGA BU -> BA"),
    ):
        values = sorted(v for run in data["raw"]["rounds"][kind] for v in run["latencies_ms"])
        if values:
            left.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
    left.set_xscale("log")
    left.set_xlabel(f"latency at {data['config']['rate']:g}/s (ms, log)")
    left.set_ylabel("CDF")
    left.grid(True, alpha=0.3)
    left.legend()
    for kind, label in (("baseline_ns", "NS -> NA"), ("phkt_bu", "PHKT BU -> BA")):
        steps = data["raw"]["ramps"][kind]
        right.plot(
            [s["offered_per_s"] for s in steps],
            [100 * s["answered_share"] for s in steps],
            marker="o",
            label=label,
        )
    right.axhline(100 * ANSWERED_TARGET, color="grey", linestyle=":")
    right.set_xlabel("offered rate (/s)")
    right.set_ylabel("answered (%)")
    right.grid(True, alpha=0.3)
    right.legend()
    fig.suptitle("FAMA end to end through Open vSwitch (fama-lab)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with running_lab(args.lab_id, dars=2, mns=1, cns=1, agent=False) as demo_lab:
        mn1, dar1, dar2 = (demo_lab.nodes[n] for n in ("mn1", "dar1", "dar2"))
        spec = {
            "interface": mn1["interface"],
            "mac": mn1["mac"],
            "router_mac": dar1["router_mac"],
            "serving_anchor": dar1["anchor"],
            "serving_prefix": dar1["prefix"],
            "hdar_anchor": dar2["anchor"],
            "hdar_prefix": dar2["prefix"],
            "mns": args.mns,
            "samples": args.samples,
            "rate": args.rate,
            "rates": args.rates,
            "step_s": args.step_s,
            "repeats": args.repeats,
            "seed": 5,
        }
        before = dar_counters(demo_lab)
        completed = run_in_node(
            demo_lab,
            "mn1",
            [sys.executable, str(Path(__file__).resolve()), "_inject", json.dumps(spec)],
            timeout_s=args.timeout,
        )
        after = dar_counters(demo_lab)
        bindings = len(demo_lab.bindings())
    raw = json.loads(completed.stdout)
    summary = summarise(raw)
    return {
        "machine": machine(),
        "config": {
            key: getattr(args, key)
            for key in ("lab_id", "mns", "samples", "rate", "rates", "step_s", "repeats", "smoke")
        },
        "path": "mn1 (dar1 access link) -> dar1 -> core -> dar2 (HDAR, controller) -> core"
        " -> dar1 -> mn1; baseline NS -> NA at dar1",
        "summary": summary,
        "ratios": ratios(summary),
        "controller_counters_delta": counter_delta(before, after),
        "bindings_at_end": bindings,
        "raw": raw,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_inject"]:
        print(json.dumps(inject(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument("--mns", type=int, default=200, help="emulated mobile nodes")
    parser.add_argument("--samples", type=int, default=300, help="requests per latency run")
    parser.add_argument("--rate", type=float, default=100.0, help="per second in latency runs")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000, 3000],
        help="ramp steps per second, comma-separated",
    )
    parser.add_argument("--step-s", type=float, default=3.0, help="seconds per ramp step")
    parser.add_argument("--repeats", type=int, default=3, help="latency rounds (medians)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the injector")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_e2e.json")
    parser.add_argument("--plot", type=Path, default=None, help="default: JSON path, .png")
    parser.add_argument("--smoke", action="store_true", help="a tiny run of a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.mns, args.samples, args.repeats, args.step_s = 10, 20, 1, 0.5
        args.rates = [100.0, 200.0]
    plot = (write_plot, args.plot or args.json.with_suffix(".png"))
    return run_and_report("bench_e2e", lambda: bench(args), args.json, report, plot)


if __name__ == "__main__":
    sys.exit(main())
