"""Floods against a DAR through Open vSwitch: do legitimate Binding Updates still get through?

One command brings up a ``fama-lab`` lab of its own (2 DARs, Open vSwitch
userspace datapath, the real controller, the Linux core router, one MN
namespace on dar1's access link, one CN namespace behind the core) and runs,
for ``--duration-s`` seconds:

* the **flood**, from ``cn1`` (beyond the core) to dar2's anchor address,
  on a raw IPv6 socket with precomputed packets from spoofed sources in
  random /64s outside the domain: ``--forged-rate`` (2000) forged CGA BUs
  per second (a valid CGA home address of dar2's prefix and valid CGA
  Parameters, but a random signature: each passes every cheap check and
  meets the RSA budget) plus ``--malformed-rate`` (10000) malformed Mobility
  Headers per second (bad checksum, truncated, unknown MH type, Payload
  Proto != 59, Header Len too short, options past the end);
* the **legitimate** load, from ``mn1``: ``--legit-rate`` (20) BUs per
  second of emulated mobile nodes whose home address is in dar2's prefix
  and care-of address in dar1's (so each BU crosses dar1, the core and
  dar2): first CGA BUs (RSA-1024, P6), then PHKT BUs (P9) with the tokens
  those BAs delivered.  Sent and matched by ``bench_e2e``'s injector.

Measured: the share of legitimate BUs answered within 1 s (the MN's first
retransmission timeout) and their BU -> BA p50/p99, with and without the
flood in the same run (the baseline phase runs first, without flood); the
controller's RSS each second (``/proc``); whether dar2 stays connected
(REST ``/fama/v1/dars``) and whether the controller log shows a
disconnection; dar2's meter statistics (``ovs-ofctl meter-stats``); the
controller's drop counters.  Goals (issue 6): >= 99 % answered, p99 <
250 ms, connected throughout, RSS flat.

Usage (root)::

    .venv/bin/python benchmarks/flood_lab.py                 # 60 s flood
    .venv/bin/python benchmarks/flood_lab.py --duration-s 8  # what the CI test runs
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_e2e  # noqa: E402
from lab_common import (  # noqa: E402
    RESULTS,
    counter_delta,
    dar_counters,
    machine,
    percentiles_ms,
    ratio,
    run_and_report,
    running_lab,
)

from fama_ryu import auth, cga, icmpv6, lab, mh  # noqa: E402

DEFAULT_LAB_ID = "bench-flood"
ANSWERED_TARGET = 0.99
P99_TARGET_MS = 250.0
FORGED_FRAMES = 4000  # distinct precomputed forged BUs (distinct sources), cycled
MALFORMED_FRAMES = 4000
TICK_S = 0.005  # the flooder sends a tick's worth of packets, then sleeps
OUTSIDE_PREFIX = ipaddress.IPv6Network("fd66::/16")  # spoofed sources: random /64s in here
DISCONNECT_MARK = "disconnected"  # the shim's log line when a switch goes away


# =========================================================================== flooder
# Runs inside cn1 (``flood_lab.py _flood SPEC``); JSON on stdout.


def _spoofed_source(rng: random.Random) -> bytes:
    return OUTSIDE_PREFIX.network_address.packed[:2] + rng.randbytes(14)


def forged_cga_bus(spec: dict[str, Any], rng: random.Random) -> list[bytes]:
    """Valid-looking first BUs for CGAs of the target's prefix, signed with random bytes."""
    target = ipaddress.IPv6Address(spec["target_anchor"]).packed
    prefix = ipaddress.IPv6Network(spec["target_prefix"]).network_address.packed[:8]
    keys = [cga.generate_rsa_key(1024) for _ in range(2)]
    packets = []
    for n in range(FORGED_FRAMES):
        der = cga.public_key_der(keys[n % len(keys)])
        hoa, params = cga.generate_cga(der, prefix, 0, rng.randbytes)
        options = mh.MobilityOptions(cga_parameters=params.encode())
        bu = mh.BindingUpdate(rng.randrange(1, 0xFFFF), 100, options=options)
        packets.append(
            mh.build_packet(
                bu,
                source=_spoofed_source(rng),
                destination=target,
                home_address=hoa,
                signer=lambda _data: rng.randbytes(128),
                signature_len=128,
            )
        )
    return packets


def _with_checksum(packet: bytearray) -> bytes:
    """``packet`` (an IPv6 header and a bare Mobility Header) with its MH checksum recomputed."""
    packet[46:48] = b"\0\0"
    checksum = mh.mobility_checksum(bytes(packet[8:24]), bytes(packet[24:40]), bytes(packet[40:]))
    packet[46:48] = checksum.to_bytes(2, "big")
    return bytes(packet)


def malformed_mhs(spec: dict[str, Any], rng: random.Random) -> list[bytes]:
    """Mobility Headers the controller must reject (RFC 6275 §9.2), from spoofed sources."""
    target = ipaddress.IPv6Address(spec["target_anchor"]).packed
    prefix = ipaddress.IPv6Network(spec["target_prefix"]).network_address.packed[:8]

    def base() -> bytearray:
        # A bare BU (no Home Address option): MH at offset 40.
        bu = mh.BindingUpdate(rng.randrange(1, 0xFFFF), 100)
        packet = mh.build_packet(
            bu,
            source=_spoofed_source(rng),
            destination=target,
            home_address=prefix + rng.randbytes(8),
            authenticator=lambda _data: rng.randbytes(12),
        )
        # Drop the Destination Options header so the MH directly follows IPv6.
        first_len = (packet[41] + 1) * 8
        body = bytearray(packet[:40] + packet[40 + first_len :])
        body[6] = mh.IPPROTO_MH
        body[4:6] = (len(body) - 40).to_bytes(2, "big")
        return body

    def bad_checksum(p: bytearray) -> bytes:
        p[46] ^= 0xFF
        return bytes(p)

    def truncated(p: bytearray) -> bytes:
        cut = p[: 40 + rng.randrange(1, max(2, len(p) - 41))]
        cut[4:6] = (len(cut) - 40).to_bytes(2, "big")
        return bytes(cut)

    def unknown_type(p: bytearray) -> bytes:
        p[42] = rng.randrange(20, 256)
        return _with_checksum(p)

    def payload_proto(p: bytearray) -> bytes:
        p[40] = 6
        return _with_checksum(p)

    def header_len_short(p: bytearray) -> bytes:
        p[41] = 0
        return _with_checksum(p)

    def options_past_end(p: bytearray) -> bytes:
        p.extend(b"\x05\xff" + bytes(6))  # an option claiming 255 bytes in an 8-byte tail
        p[41] = (len(p) - 40) // 8 - 1
        p[4:6] = (len(p) - 40).to_bytes(2, "big")
        return _with_checksum(p)

    mutations = [
        bad_checksum,
        truncated,
        unknown_type,
        payload_proto,
        header_len_short,
        options_past_end,
    ]
    return [mutations[n % len(mutations)](base()) for n in range(MALFORMED_FRAMES)]


def flood(spec: dict[str, Any]) -> dict[str, Any]:
    """Send both floods, paced per tick, for ``duration_s``; counts on stdout."""
    rng = random.Random(spec["seed"])
    kinds = {
        "forged_cga_bu": (forged_cga_bus(spec, rng), spec["forged_rate"]),
        "malformed_mh": (malformed_mhs(spec, rng), spec["malformed_rate"]),
    }
    # IPPROTO_RAW: the packets carry their own (spoofed) IPv6 header.
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    destination = (spec["target_anchor"], 0)
    sent = dict.fromkeys(kinds, 0)
    errors = 0
    start = time.monotonic()
    print("[flood] started", file=sys.stderr, flush=True)
    while (elapsed := time.monotonic() - start) < spec["duration_s"]:
        # Interleave the kinds within a tick, so no kind always meets a full meter bucket.
        due = {kind: int(rate * elapsed) - sent[kind] for kind, (_, rate) in kinds.items()}
        order = sorted((n / count, kind) for kind, count in due.items() for n in range(count))
        for _, kind in order:
            packets = kinds[kind][0]
            try:
                sock.sendto(packets[sent[kind] % len(packets)], destination)
            except OSError:  # a full socket buffer: the packet is lost, as on a wire
                errors += 1
            sent[kind] += 1
        time.sleep(TICK_S)
    elapsed = time.monotonic() - start
    return {
        "duration_s": round(elapsed, 3),
        "sent": sent,
        "sent_per_s": {kind: round(count / elapsed, 1) for kind, count in sent.items()},
        "send_errors": errors,
    }


# =========================================================================== legitimate MNs
# Runs inside mn1 (``flood_lab.py _legit SPEC``); JSON on stdout.


def legit(spec: dict[str, Any]) -> dict[str, Any]:
    """Resolve, then CGA BUs (half the time), then PHKT BUs, each at ``rate``."""
    mac = bytes.fromhex(spec["mac"].replace(":", ""))
    router_mac = bytes.fromhex(spec["router_mac"].replace(":", ""))
    anchor = ipaddress.IPv6Address(spec["serving_anchor"]).packed
    mns = bench_e2e.make_mns(spec)
    injector = bench_e2e.Injector(spec["interface"])
    rate = spec["rate"]
    resolve = [
        bench_e2e.Request(
            icmpv6.build_neighbor_solicitation(router_mac=mac, source=mn.coa, target=anchor),
            mn.coa,
        )
        for mn in mns
    ]
    resolved = injector.run(resolve, 100.0)
    phases: dict[str, Any] = {}
    for phase in spec["phases"]:
        if phase["wait_for"]:
            # The orchestrator creates this file when the flood runs.
            deadline = time.monotonic() + 30
            while not Path(phase["wait_for"]).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        count = max(1, int(rate * phase["seconds"] / 2))
        cga_requests = []
        for n in range(count):
            mn = mns[(phase["first_mn"] + n) % len(mns)]
            mn.phkt = None
            packet, sequence = mn.cga_bu()
            frame = mh.build_ethernet_frame(mac, router_mac, packet)
            cga_requests.append(bench_e2e.Request(frame, (mn.hoa, sequence)))
        injector.keep_ba_frames = True
        cga_run = injector.run(cga_requests, rate)
        injector.keep_ba_frames = False
        by_coa = {mn.coa: mn for mn in mns}
        for frame in injector.ba_frames:
            parsed = mh.parse_ethernet_frame(frame)
            mn = by_coa.get(parsed.destination)
            token = parsed.message.options.permanent_home_keygen_token
            if mn is not None and token is not None:
                mn.phkt = auth.decrypt_phkt(mn.key, token)
        injector.ba_frames.clear()
        bound = [mn for mn in mns if mn.phkt is not None]
        phkt_requests = []
        for n in range(count if bound else 0):
            mn = bound[n % len(bound)]
            packet, sequence = mn.phkt_bu()
            frame = mh.build_ethernet_frame(mac, router_mac, packet)
            phkt_requests.append(bench_e2e.Request(frame, (mn.hoa, sequence)))
        phkt_run = injector.run(phkt_requests, rate) if phkt_requests else None
        phases[phase["name"]] = {"cga_bu": cga_run, "phkt_bu": phkt_run}
        print(f"[legit] {phase['name']} done", file=sys.stderr, flush=True)
    return {"resolved": resolved["answered"], "phases": phases}


# =========================================================================== orchestration


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _pooled(phase: dict[str, Any]) -> dict[str, Any]:
    runs = [run for run in phase.values() if run is not None]
    latencies = [v / 1e3 for run in runs for v in run["latencies_ms"]]
    sent = sum(run["sent"] for run in runs)
    answered = sum(run["answered"] for run in runs)
    return {
        "sent": sent,
        "answered": answered,
        "answered_share": round(answered / sent, 4) if sent else None,
        **percentiles_ms(latencies),
        "by_kind": {
            kind: {k: run[k] for k in ("sent", "answered", "p50_ms", "p99_ms", "ba_status")}
            for kind, run in phase.items()
            if run is not None
        },
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with running_lab(args.lab_id, dars=2, mns=1, cns=1, agent=False) as demo_lab:
        mn1 = demo_lab.nodes["mn1"]
        dar1, dar2 = demo_lab.nodes["dar1"], demo_lab.nodes["dar2"]
        ctl = demo_lab.nodes["ctl"]
        flood_started = demo_lab.workdir / "flood-started"
        legit_spec = {
            "interface": mn1["interface"],
            "mac": mn1["mac"],
            "router_mac": dar1["router_mac"],
            "serving_anchor": dar1["anchor"],
            "serving_prefix": dar1["prefix"],
            "hdar_anchor": dar2["anchor"],
            "hdar_prefix": dar2["prefix"],
            "mns": args.mns,
            "rate": args.legit_rate,
            "seed": 7,
            "phases": [
                {"name": "baseline", "seconds": args.baseline_s, "first_mn": 0, "wait_for": None},
                {
                    "name": "flood",
                    "seconds": args.duration_s,
                    "first_mn": args.mns // 2,
                    "wait_for": str(flood_started),
                },
            ],
        }
        flood_spec = {
            "target_anchor": dar2["anchor"],
            "target_prefix": dar2["prefix"],
            "forged_rate": args.forged_rate,
            "malformed_rate": args.malformed_rate,
            "duration_s": args.duration_s + 2.0,
            "seed": 11,
        }
        before = dar_counters(demo_lab)
        rss: list[tuple[float, int | None]] = []
        connected: list[bool] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                rss.append((time.time(), _rss_kib(ctl["pid"])))
                try:
                    dars = demo_lab.rest("/fama/v1/dars")
                    entries = dars.values() if isinstance(dars, dict) else dars
                    connected.append(all(entry["connected"] for entry in entries))
                except (lab.LabError, KeyError, TypeError):
                    connected.append(False)
                stop.wait(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        flood_process: subprocess.Popen[str] | None = None
        legit_run = subprocess.Popen(
            demo_lab.ns("mn1").command(
                [sys.executable, str(Path(__file__).resolve()), "_legit", json.dumps(legit_spec)]
            ),
            stdout=subprocess.PIPE,
            text=True,
            env=lab.exec_environment(demo_lab.meta, "mn1"),
        )
        try:
            watcher.start()
            # The baseline phase runs without flood; the flood starts after it.
            time.sleep(args.baseline_s + 3.0)
            flood_process = subprocess.Popen(
                demo_lab.ns("cn1").command(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "_flood",
                        json.dumps(flood_spec),
                    ]
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=lab.exec_environment(demo_lab.meta, "cn1"),
            )
            assert flood_process.stderr is not None
            flood_process.stderr.readline()  # "[flood] started": frames are built
            time.sleep(1.0)  # the flood reaches its rate first
            flood_started.touch()
            legit_out, _ = legit_run.communicate(timeout=args.duration_s + args.baseline_s + 120)
            flood_out, _ = flood_process.communicate(timeout=args.duration_s + 60)
        finally:
            stop.set()
            for process in (legit_run, flood_process):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        watcher.join()
        after = dar_counters(demo_lab)
        meter_stats = demo_lab.ofctl("meter-stats", "dar2")
        meters = demo_lab.ofctl("dump-meters", "dar2")
        log_text = Path(ctl["log"]).read_text(errors="replace")
    legit_result = json.loads(legit_out)
    flood_result = json.loads(flood_out)
    phases = {name: _pooled(phase) for name, phase in legit_result["phases"].items()}
    rss_values = [value for _, value in rss if value is not None]
    flooded = phases["flood"]
    return {
        "machine": machine(),
        "config": {
            key: getattr(args, key)
            for key in (
                "lab_id",
                "duration_s",
                "baseline_s",
                "forged_rate",
                "malformed_rate",
                "legit_rate",
                "mns",
            )
        },
        "summary": {
            "legit_answered_share_under_flood": flooded["answered_share"],
            "legit_p99_ms_under_flood": flooded["p99_ms"],
            "legit_p99_ms_baseline": phases["baseline"]["p99_ms"],
            "p99_vs_baseline": ratio(flooded["p99_ms"], phases["baseline"]["p99_ms"]),
            "switch_connected_throughout": bool(connected) and all(connected),
            "controller_log_disconnects": log_text.count(DISCONNECT_MARK),
            "controller_rss_kib": {
                "first": rss_values[0] if rss_values else None,
                "max": max(rss_values, default=None),
                "last": rss_values[-1] if rss_values else None,
            },
            "goals": {
                "answered": ANSWERED_TARGET,
                "p99_ms": P99_TARGET_MS,
            },
        },
        "legit": phases,
        "flood": flood_result,
        "meter_stats_dar2": meter_stats,
        "meters_dar2": meters,
        "controller_counters_delta": counter_delta(before, after),
        "rss_kib_per_s": [value for _, value in rss],
    }


def report(data: dict[str, Any]) -> str:
    s = data["summary"]
    flood = data["flood"]["sent_per_s"]
    lines = [
        f"flood at dar2's anchor: {flood} per s (spoofed sources outside the domain)",
        f"legitimate BUs at {data['config']['legit_rate']:g}/s via dar1 -> core -> dar2:",
    ]
    for name, phase in data["legit"].items():
        lines.append(
            f"  {name:<9} answered {phase['answered']}/{phase['sent']}"
            f" ({phase['answered_share']:.1%}), p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms"
        )
    rss = s["controller_rss_kib"]
    lines += [
        f"switch connected throughout: {s['switch_connected_throughout']};"
        f" 'disconnected' in controller log: {s['controller_log_disconnects']}",
        f"controller RSS KiB first/max/last: {rss['first']}/{rss['max']}/{rss['last']}",
        "dar2 meter stats:",
        data["meter_stats_dar2"].rstrip(),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_flood"]:
        print(json.dumps(flood(json.loads(argv[1]))))
        return 0
    if argv[:1] == ["_legit"]:
        print(json.dumps(legit(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument("--duration-s", type=float, default=60.0, help="seconds of flood")
    parser.add_argument("--baseline-s", type=float, default=5.0, help="seconds without flood")
    parser.add_argument("--forged-rate", type=float, default=2000.0, help="forged CGA BUs/s")
    parser.add_argument("--malformed-rate", type=float, default=10000.0, help="malformed MH/s")
    parser.add_argument("--legit-rate", type=float, default=20.0, help="legitimate BUs/s")
    parser.add_argument("--mns", type=int, default=200, help="emulated legitimate MNs")
    parser.add_argument("--json", type=Path, default=RESULTS / "flood_lab.json")
    args = parser.parse_args(argv)
    return run_and_report("flood_lab", lambda: bench(args), args.json, report)


if __name__ == "__main__":
    sys.exit(main())
