"""Tunnel data plane in the lab: throughput to a kept address versus the native address.

One command brings up a ``fama-lab`` lab of its own (2 DARs, 2 MN namespaces
without agents).  mn2 moves to dar2's access link and becomes the sink: from
there it registers an emulated mobile node (a CGA home address of dar1's
prefix, a care-of address of dar2's prefix, one CGA-signed BU to dar1's
anchor), so dar1 holds a binding HoA -> CoA.  mn1 stays on dar1's access link
and is the generator (an address of dar1's prefix, default route via dar1).

Both flows take the same path, mn1 -> dar1 -> core -> dar2 -> mn2, from the
same generator (UDP, as fast as it can send, ``--duration`` seconds) with the
same payload sizes:

* kept: to the HoA: dar1 encapsulates (GRE-in-IPv6 to the CoA, P14);
* native: to the CoA itself: dar1 routes it.

The sink does not decapsulate (no user-space tunnel): its kernel drops what
arrives, and the interface counters of mn2's ``eth0`` (rx packets and bytes)
give what the path delivered.  Before the runs, a capture at the sink checks
that the kept flow arrives as GRE from dar1's anchor to the CoA.  The
controller's per-DAR ``packet_in`` counters (REST ``/fama/v1/stats``) are
read before and after all runs: data packets must cause none.

Usage (root)::

    .venv/bin/python benchmarks/bench_tunnel.py [--sizes 64,512,1200] [--repeats 3]
    .venv/bin/python benchmarks/bench_tunnel.py --smoke    # about 15 s
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import ETH_P_IPV6, PACKET_OUTGOING, EmulatedMn  # noqa: E402
from lab_common import (  # noqa: E402
    RESULTS,
    counter_delta,
    dar_counters,
    machine,
    ratio,
    run_and_report,
    run_in_node,
    running_lab,
)
from ofload import ba_keys, ba_status  # noqa: E402

from fama_ryu import cga, icmpv6, mh  # noqa: E402
from fama_ryu.lab_demo import DemoLab  # noqa: E402
from fama_ryu.pcap import read_capture  # noqa: E402

DEFAULT_LAB_ID = "bench-tun"
GOAL_RATIO = 0.85
FLOW_PORT = 9999
GRE = 47
GENERATOR_ADDRESS_HOST = 0x100  # mn1's address: <dar1 prefix>::100/128
COA_HOST = 0xB0001  # the emulated MN's care-of address in dar2's prefix


# =========================================================================== in the namespaces


def bind(spec: dict[str, Any]) -> dict[str, Any]:
    """In the sink: make dar2 know the CoA (NS) and register HoA -> CoA at dar1 (CGA BU)."""
    mac = bytes.fromhex(spec["mac"].replace(":", ""))
    router_mac = bytes.fromhex(spec["router_mac"].replace(":", ""))
    serving_anchor = ipaddress.IPv6Address(spec["serving_anchor"]).packed
    hdar = ipaddress.IPv6Address(spec["hdar_anchor"]).packed
    key = cga.generate_rsa_key(1024)
    home_prefix = ipaddress.IPv6Network(spec["hdar_prefix"]).network_address.packed[:8]
    hoa, params = cga.generate_cga(
        cga.public_key_der(key), home_prefix, 0, random.Random(7).randbytes
    )
    coa = ipaddress.IPv6Address(spec["coa"]).packed
    mn = EmulatedMn(hoa, params, coa, key, hdar)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    sock.bind((spec["interface"], ETH_P_IPV6))
    sock.settimeout(0.2)

    def exchange(frame: bytes, answered: Any) -> bytes:
        for _attempt in range(5):
            sock.send(frame)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    reply, address = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                if address[2] != PACKET_OUTGOING and answered(reply):
                    return reply
        raise RuntimeError("no answer after 5 attempts")

    solicitation = icmpv6.build_neighbor_solicitation(
        router_mac=mac, source=coa, target=serving_anchor
    )
    exchange(
        solicitation,
        lambda f: f[20] == mh.IPPROTO_ICMPV6 and f[54] == icmpv6.NEIGHBOR_ADVERTISEMENT,
    )
    packet, sequence = mn.cga_bu()
    reply = exchange(
        mh.build_ethernet_frame(mac, router_mac, packet),
        lambda f: (hoa, sequence) in ba_keys(f),
    )
    return {
        "hoa": str(ipaddress.IPv6Address(hoa)),
        "coa": spec["coa"],
        "ba_status": ba_status(reply),
    }


def blast(destination: str, size: int, duration_s: float) -> dict[str, Any]:
    """In the generator: UDP datagrams of ``size`` payload bytes, back to back, ``duration_s``."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.connect((destination, FLOW_PORT))
    payload = bytes(size)
    sent = errors = 0
    start = time.monotonic()
    end = start + duration_s
    send = sock.send
    while True:
        for _ in range(64):
            try:
                send(payload)
                sent += 1
            except OSError:
                errors += 1
        if time.monotonic() >= end:
            break
    return {"sent": sent, "errors": errors, "elapsed_s": time.monotonic() - start}


# =========================================================================== orchestration


def sink_counters(demo_lab: DemoLab, interface: str) -> tuple[int, int]:
    """rx packets and bytes of the sink's interface (the kernel's own counters)."""
    text = run_in_node(
        demo_lab,
        "mn2",
        ["cat", f"/sys/class/net/{interface}/statistics/rx_packets"]
        + [f"/sys/class/net/{interface}/statistics/rx_bytes"],
        timeout_s=10,
    ).stdout.split()
    return int(text[0]), int(text[1])


def one_run(
    demo_lab: DemoLab, destination: str, size: int, duration_s: float, interface: str
) -> dict[str, Any]:
    before = sink_counters(demo_lab, interface)
    generated = json.loads(
        run_in_node(
            demo_lab,
            "mn1",
            [sys.executable, str(Path(__file__).resolve()), "_blast", destination, str(size)]
            + [str(duration_s)],
            timeout_s=duration_s + 30,
        ).stdout
    )
    time.sleep(0.3)  # what is still queued in the path arrives
    after = sink_counters(demo_lab, interface)
    packets, octets = after[0] - before[0], after[1] - before[1]
    elapsed = generated["elapsed_s"]
    return {
        "sent": generated["sent"],
        "sent_pps": round(generated["sent"] / elapsed, 1),
        "received": packets,
        "received_pps": round(packets / elapsed, 1),
        "received_frame_bytes": octets,
        "delivered_share": round(packets / generated["sent"], 4) if generated["sent"] else None,
        "goodput_mbps": round(packets * size * 8 / elapsed / 1e6, 3),
    }


def check_encapsulation(
    demo_lab: DemoLab, hoa: str, coa: str, anchor: str, interface: str, out_dir: Path
) -> dict[str, Any]:
    """A few datagrams to the HoA, captured at the sink: GRE from dar1's anchor to the CoA?"""
    pcap = out_dir / "tunnel-sink.pcap"
    capture = demo_lab.ns("mn2").capture(interface, "ip6 proto 47", pcap)
    try:
        run_in_node(
            demo_lab,
            "mn1",
            [sys.executable, str(Path(__file__).resolve()), "_blast", hoa, "64", "0.05"],
            timeout_s=30,
        )
        time.sleep(0.3)
    finally:
        capture.stop()
    with pcap.open("rb") as stream:
        frames = [p.data for p in read_capture(stream)]
    outer = {(f[22:38], f[38:54]) for f in frames if len(f) > 58 and f[20] == GRE}
    expected = (ipaddress.IPv6Address(anchor).packed, ipaddress.IPv6Address(coa).packed)
    inner_ok = all(f[58 + 24 : 58 + 40] == ipaddress.IPv6Address(hoa).packed for f in frames)
    return {
        "gre_frames": len(frames),
        "outer_source_is_hdar_anchor_and_destination_coa": outer == {expected},
        "inner_destination_is_hoa": inner_ok and bool(frames),
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = args.json.parent / args.json.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    with running_lab(args.lab_id, dars=2, mns=2, cns=1, agent=False) as demo_lab:
        dar1, dar2, mn1, mn2 = (demo_lab.nodes[n] for n in ("dar1", "dar2", "mn1", "mn2"))
        demo_lab.move("mn2", "dar2")
        coa = str(ipaddress.IPv6Network(dar2["prefix"])[COA_HOST])
        spec = {
            "interface": mn2["interface"],
            "mac": mn2["mac"],
            "router_mac": dar2["router_mac"],
            "serving_anchor": dar2["anchor"],
            "hdar_anchor": dar1["anchor"],
            "hdar_prefix": dar1["prefix"],
            "coa": coa,
        }
        binding = json.loads(
            run_in_node(
                demo_lab,
                "mn2",
                [sys.executable, str(Path(__file__).resolve()), "_bind", json.dumps(spec)],
                timeout_s=60,
            ).stdout
        )
        if binding["ba_status"] != 0:
            raise RuntimeError(f"the binding was refused: {binding}")
        generator = str(ipaddress.IPv6Network(dar1["prefix"])[GENERATOR_ADDRESS_HOST])
        gateway = dar1["link_local"]
        for command in (
            ["ip", "-6", "addr", "add", f"{generator}/128", "dev", "eth0", "nodad"],
            ["ip", "-6", "neigh", "replace", gateway, "lladdr", dar1["router_mac"]]
            + ["dev", "eth0", "nud", "permanent"],
            ["ip", "-6", "route", "replace", "default", "via", gateway, "dev", "eth0"]
            + ["src", generator],
        ):
            run_in_node(demo_lab, "mn1", command, timeout_s=10)
        encapsulation = check_encapsulation(
            demo_lab, binding["hoa"], coa, dar1["anchor"], mn2["interface"], out_dir
        )
        counters_before = dar_counters(demo_lab)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for size in args.sizes:
            runs[str(size)] = {"native": [], "kept": []}
            for repeat in range(args.repeats):
                order = ("native", "kept") if repeat % 2 == 0 else ("kept", "native")
                for kind in order:
                    destination = coa if kind == "native" else binding["hoa"]
                    result = one_run(demo_lab, destination, size, args.duration, mn2["interface"])
                    runs[str(size)][kind].append(result)
                    print(
                        f"{size:>5} B {kind:<6}: {result['received_pps']:>9.0f} pps received,"
                        f" {result['sent_pps']:>9.0f} sent",
                        file=sys.stderr,
                        flush=True,
                    )
        counters_after = dar_counters(demo_lab)
        gre_ports = demo_lab.gre_counters()
    delta = counter_delta(counters_before, counters_after)
    packet_ins = {dar: changed.get("events.packet_in", 0) for dar, changed in delta.items()}
    summary: dict[str, Any] = {}
    for size, kinds in runs.items():
        entry: dict[str, Any] = {}
        for kind, results in kinds.items():
            entry[kind] = {
                "received_pps": statistics.median(r["received_pps"] for r in results),
                "sent_pps": statistics.median(r["sent_pps"] for r in results),
                "goodput_mbps": statistics.median(r["goodput_mbps"] for r in results),
                "delivered_share": statistics.median(r["delivered_share"] or 0 for r in results),
            }
        entry["kept_vs_native"] = ratio(
            entry["kept"]["received_pps"], entry["native"]["received_pps"]
        )
        summary[size] = entry
    worst = min(
        (e["kept_vs_native"] for e in summary.values() if e["kept_vs_native"] is not None),
        default=None,
    )
    return {
        "machine": machine(),
        "config": {
            key: getattr(args, key) for key in ("lab_id", "sizes", "duration", "repeats", "smoke")
        },
        "path": "mn1 -> dar1 (kept: GRE encapsulation to the CoA) -> core -> dar2 -> mn2 (sink)",
        "binding": binding,
        "encapsulation_check": encapsulation,
        "summary": summary,
        "goals": {
            "kept_vs_native>=0.85": {
                "target": GOAL_RATIO,
                "measured": worst,
                "met": worst is not None and worst >= GOAL_RATIO,
            },
            "data_packet_ins==0": {
                "target": 0,
                "measured": sum(packet_ins.values()),
                "met": sum(packet_ins.values()) == 0,
            },
        },
        "packet_ins_during_runs": packet_ins,
        "controller_counters_delta": delta,
        "gre_port_counters_at_end": gre_ports,
        "runs": runs,
    }


def report(data: dict[str, Any]) -> str:
    lines = [
        "UDP mn1 -> dar1 -> core -> dar2 -> mn2, received at the sink (median pps):",
        f"{'payload B':>9} {'native pps':>11} {'kept pps':>10} {'kept/native':>12}"
        f" {'native Mb/s':>12} {'kept Mb/s':>10} {'sent pps':>9}",
    ]
    for size, entry in data["summary"].items():
        native, kept = entry["native"], entry["kept"]
        lines.append(
            f"{size:>9} {native['received_pps']:>11.0f} {kept['received_pps']:>10.0f}"
            f" {entry['kept_vs_native'] or 0:>12.3f} {native['goodput_mbps']:>12.1f}"
            f" {kept['goodput_mbps']:>10.1f} {native['sent_pps']:>9.0f}"
        )
    lines.append("")
    for goal, entry in data["goals"].items():
        lines.append(
            f"goal {goal}: measured {entry['measured']} -> {'met' if entry['met'] else 'NOT met'}"
        )
    check = data["encapsulation_check"]
    lines.append(
        f"encapsulation check: {check['gre_frames']} GRE frames, outer dar1 anchor -> CoA:"
        f" {check['outer_source_is_hdar_anchor_and_destination_coa']}"
    )
    return "\n".join(lines)


def write_plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(data["summary"])
    native = [data["summary"][s]["native"]["received_pps"] / 1e3 for s in sizes]
    kept = [data["summary"][s]["kept"]["received_pps"] / 1e3 for s in sizes]
    positions = range(len(sizes))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.bar([p - 0.2 for p in positions], native, width=0.4, label="native address (routed)")
    ax.bar([p + 0.2 for p in positions], kept, width=0.4, label="kept address (GRE at dar1)")
    for p, size in zip(positions, sizes, strict=True):
        r = data["summary"][size]["kept_vs_native"]
        ax.annotate(f"{r:.2f}x" if r else "-", (p + 0.2, kept[p]), ha="center", va="bottom")
    ax.set_xticks(list(positions), [f"{s} B" for s in sizes])
    ax.set_xlabel("UDP payload")
    ax.set_ylabel("received at the sink (kpps)")
    ax.set_title("FAMA tunnel data plane (fama-lab, OVS userspace datapath)")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_bind"]:
        print(json.dumps(bind(json.loads(argv[1]))))
        return 0
    if argv[:1] == ["_blast"]:
        print(json.dumps(blast(argv[1], int(argv[2]), float(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[64, 512, 1200],
        help="UDP payload sizes, comma-separated (at most 1400: GRE adds 44 bytes)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size and kind")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_tunnel.json")
    parser.add_argument("--plot", type=Path, default=None, help="default: JSON path, .png")
    parser.add_argument("--smoke", action="store_true", help="one short run per kind")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.duration, args.repeats = [256], 0.5, 1
    if any(not 1 <= size <= 1400 for size in args.sizes):
        parser.error("--sizes: each payload must be 1..1400 bytes")
    plot = (write_plot, args.plot or args.json.with_suffix(".png"))
    return run_and_report("bench_tunnel", lambda: bench(args), args.json, report, plot)


if __name__ == "__main__":
    sys.exit(main())
