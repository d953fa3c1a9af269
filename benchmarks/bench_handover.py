"""Handover latency in the lab: link up at the new DAR -> RA, BA, first tunnelled packet.

One command brings up a ``fama-lab`` lab of its own (3 DARs, one CN, one MN
running the real agent ``fama-mn``, keep policy ``all``).  The MN attaches to
dar1; a CN sends a UDP flow (one datagram every ``--interval-ms``) to that
dar1 address, the kept flow.  Then the MN moves ``--handovers`` times between
dar2 and dar3 (``fama-lab move``: carrier down 200 ms, then up on the new
DAR's access link), after ``--warmup`` moves that are not counted.

Each handover is timed from ``moved_at`` (the wall-clock time ``move``
brought the link up) to what a capture on the MN's interface (tcpdump,
kernel timestamps, same clock) shows:

(a) the new DAR's Router Advertisement received;
(b) the Binding Ack from dar1 (the kept flow's HDAR) received;
(c) the first packet of the kept flow received through the tunnel (GRE from
    dar1's anchor, inner destination the dar1 address).

Also from the capture, the steps in between: link up -> Router Solicitation
sent (the agent's link detection), RS -> RA, RA -> BU sent, BU -> BA,
BA -> first packet.  Prints p50/p95/p99, writes JSON and a CDF plot::

    .venv/bin/python benchmarks/bench_handover.py [--handovers 50] [--lab-id bench-ho]
    .venv/bin/python benchmarks/bench_handover.py --smoke    # 3 handovers
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import signal
import socket
import statistics
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_common import (  # noqa: E402
    RESULTS,
    machine,
    percentiles_ms,
    run_and_report,
    running_lab,
)

from fama_ryu import mh  # noqa: E402
from fama_ryu.lab_demo import DemoLab  # noqa: E402
from fama_ryu.pcap import CapturedPacket, read_capture  # noqa: E402

DEFAULT_LAB_ID = "bench-ho"
FLOW_PORT = 9999
GOAL_FIRST_PACKET_P99_MS = 100.0
ICMPV6, GRE, UDP = 58, 47, 17
RS, RA = 133, 134
STEPS = ("ra", "ba", "first_packet")
BREAKDOWN = ("detect_rs", "rs_to_ra", "ra_to_bu", "bu_to_ba", "ba_to_first_packet")


# =========================================================================== the kept flow


def udp_sender(destination: str, interval_s: float, log: Path) -> int:
    """Role in the CN: a datagram with a sequence number every ``interval_s`` until SIGTERM."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    start = time.monotonic()
    seq = 0
    while not stopping:
        delay = start + seq * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with contextlib.suppress(OSError):
            sock.sendto(struct.pack("!Id", seq, time.time()), (destination, FLOW_PORT))
        seq += 1
    log.write_text(json.dumps({"sent": seq}) + "\n")
    return 0


# =========================================================================== analysis


@dataclass(frozen=True)
class Addresses:
    mn_mac: bytes
    hdar_anchor: bytes  # dar1: the kept address's DAR
    kept: bytes  # the MN's dar1 address
    router_macs: dict[str, bytes]  # DAR name -> router MAC
    prefixes: dict[str, bytes]  # DAR name -> its /64 (8 bytes): care-of addresses there


def _mobility(frame: bytes) -> mh.MobilityPacket | None:
    if frame[20] not in (mh.IPPROTO_DSTOPTS, mh.IPPROTO_ROUTING, mh.IPPROTO_MH):
        return None
    try:
        return mh.parse_ethernet_frame(frame)
    except mh.MobilityParseError:
        return None


def _is_kept_flow_through_tunnel(frame: bytes, addresses: Addresses, prefix: bytes) -> bool:
    """GRE-in-IPv6 from the HDAR's anchor to a CoA in ``prefix``, carrying the kept flow."""
    if frame[20] != GRE or frame[22:38] != addresses.hdar_anchor or len(frame) < 58 + 44:
        return False
    if frame[38:46] != prefix:
        return False  # still on its way to the previous care-of address
    inner = frame[58:]  # GRE header without C/K/S: 4 bytes (P14)
    return inner[24:40] == addresses.kept and inner[6] == UDP and inner[42:44] == b"\x27\x0f"


def handover_times(
    packets: list[CapturedPacket],
    window: tuple[float, float],
    moved_at: float,
    dar: str,
    addresses: Addresses,
) -> dict[str, float | None]:
    """Timestamps (seconds since ``moved_at``) of the handover's events in the capture.

    ``window`` runs from the link going down to the next move: nothing of
    the new attachment can come earlier.  ``moved_at`` is read after ``ip
    link set up`` returned, so a fast agent's RS and RA may precede it by a
    few milliseconds (negative times).
    """
    events: dict[str, float | None] = {k: None for k in ("rs", "ra", "bu", "ba", "first_packet")}
    router_mac, prefix = addresses.router_macs[dar], addresses.prefixes[dar]
    for packet in packets:
        if not window[0] <= packet.timestamp < window[1]:
            continue
        frame = packet.data
        if len(frame) < 55 or frame[12:14] != b"\x86\xdd":
            continue
        t = packet.timestamp - moved_at
        outgoing = frame[6:12] == addresses.mn_mac
        if frame[20] == ICMPV6:
            if outgoing and frame[54] == RS and events["rs"] is None:
                events["rs"] = t
            elif frame[54] == RA and frame[6:12] == router_mac and events["ra"] is None:
                events["ra"] = t
            continue
        if _is_kept_flow_through_tunnel(frame, addresses, prefix):
            if events["first_packet"] is None:
                events["first_packet"] = t
            continue
        mobility = _mobility(frame)
        if mobility is None:
            continue
        message = mobility.message
        if mobility.source[:8] != prefix and mobility.destination[:8] != prefix:
            continue  # signalling of the previous attachment
        is_bu = outgoing and isinstance(message, mh.BindingUpdate)
        if is_bu and mobility.destination == addresses.hdar_anchor and events["bu"] is None:
            events["bu"] = t
        is_ba = isinstance(message, mh.BindingAck) and message.status < 128
        if is_ba and mobility.source == addresses.hdar_anchor and events["ba"] is None:
            events["ba"] = t
    return events


def breakdown(events: dict[str, float | None]) -> dict[str, float | None]:
    def diff(a: str | None, b: str) -> float | None:
        start = 0.0 if a is None else events[a]
        end = events[b]
        return None if start is None or end is None else end - start

    return {
        "detect_rs": diff(None, "rs"),
        "rs_to_ra": diff("rs", "ra"),
        "ra_to_bu": diff("ra", "bu"),
        "bu_to_ba": diff("bu", "ba"),
        "ba_to_first_packet": diff("ba", "first_packet"),
    }


def summarise(handovers: list[dict[str, Any]]) -> dict[str, Any]:
    counted = [h for h in handovers if not h["warmup"]]
    out: dict[str, Any] = {}
    for step in STEPS:
        values = [h["events_s"][step] for h in counted if h["events_s"][step] is not None]
        out[step] = percentiles_ms(values) | {"missing": len(counted) - len(values)}
    out["breakdown"] = {}
    for part in BREAKDOWN:
        values = [h["breakdown_s"][part] for h in counted if h["breakdown_s"][part] is not None]
        entry = percentiles_ms(values)
        entry["mean_ms"] = round(statistics.fmean(values) * 1e3, 3) if values else None
        out["breakdown"][part] = entry
    p99 = out["first_packet"]["p99_ms"]
    out["goal_first_packet_p99_ms<=100"] = {
        "target": GOAL_FIRST_PACKET_P99_MS,
        "measured": p99,
        "met": p99 is not None
        and p99 <= GOAL_FIRST_PACKET_P99_MS
        and out["first_packet"]["missing"] == 0,
    }
    return out


# =========================================================================== run


def run(args: argparse.Namespace, demo_lab: DemoLab, out_dir: Path) -> dict[str, Any]:
    """Attach at dar1, start the kept flow and the capture, move; then read the capture."""
    kept = demo_lab.wait_attached("mn1", "dar1")
    mn = demo_lab.nodes["mn1"]
    addresses = Addresses(
        mn_mac=bytes.fromhex(mn["mac"].replace(":", "")),
        hdar_anchor=ipaddress.IPv6Address(demo_lab.nodes["dar1"]["anchor"]).packed,
        kept=ipaddress.IPv6Address(kept).packed,
        router_macs={
            name: bytes.fromhex(demo_lab.nodes[name]["router_mac"].replace(":", ""))
            for name in demo_lab.dars
        },
        prefixes={
            name: ipaddress.IPv6Network(demo_lab.nodes[name]["prefix"]).network_address.packed[:8]
            for name in demo_lab.dars
        },
    )
    pcap = out_dir / "handover-mn1.pcap"
    flow_log = out_dir / "flow.json"
    handovers: list[dict[str, Any]] = []
    capture = demo_lab.ns("mn1").capture(mn["interface"], "ip6", pcap)
    flow = demo_lab.ns("cn1").popen(
        [sys.executable, str(Path(__file__).resolve()), "_flow", kept, str(args.interval_ms / 1e3)]
        + [str(flow_log)],
        description="kept flow",
        start_new_session=True,
    )
    try:
        time.sleep(0.5)
        total = args.warmup + args.handovers
        for n in range(total):
            target = "dar2" if n % 2 == 0 else "dar3"
            moved = demo_lab.move("mn1", target)
            demo_lab.wait_attached("mn1", target)
            time.sleep(args.dwell_s)
            handovers.append(
                {
                    "n": n,
                    "to": target,
                    "warmup": n < args.warmup,
                    "moved_at": moved["moved_at"],
                    "down_at": moved["down_at"],
                }
            )
            print(f"handover {n + 1}/{total} -> {target}", file=sys.stderr, flush=True)
    finally:
        demo_lab.ns("cn1").stop(flow)
        capture.stop()
    with pcap.open("rb") as stream:
        packets = list(read_capture(stream))
    for index, handover in enumerate(handovers):
        until = handovers[index + 1]["down_at"] if index + 1 < len(handovers) else float("inf")
        window = (handover["down_at"], until)
        events = handover_times(packets, window, handover["moved_at"], handover["to"], addresses)
        handover["events_s"] = events
        handover["breakdown_s"] = breakdown(events)
    return {"kept_address": kept, "handovers": handovers, "captured_packets": len(packets)}


def report(data: dict[str, Any]) -> str:
    summary = data["summary"]
    counted = data["config"]["handovers"]
    lines = [
        f"{counted} handovers (dar2 <-> dar3, kept flow to the dar1 address every"
        f" {data['config']['interval_ms']:g} ms); from link up at the new DAR:",
        f"{'event':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>8}",
    ]
    names = {
        "ra": "(a) RA received",
        "ba": "(b) BA from the HDAR received",
        "first_packet": "(c) first kept-flow packet (GRE)",
    }
    for step, name in names.items():
        entry = summary[step]
        lines.append(
            f"{name:<34} {entry['p50_ms'] or 0:>8.1f} {entry['p95_ms'] or 0:>8.1f}"
            f" {entry['p99_ms'] or 0:>8.1f} {entry['max_ms'] or 0:>8.1f} {entry['missing']:>8}"
        )
    lines.append("steps (mean / p99 ms):")
    for part, entry in summary["breakdown"].items():
        lines.append(f"  {part:<22} {entry['mean_ms'] or 0:>8.1f} {entry['p99_ms'] or 0:>8.1f}")
    goal = summary["goal_first_packet_p99_ms<=100"]
    lines.append(
        f"goal (c) p99 <= 100 ms: measured {goal['measured']} ms ->"
        f" {'met' if goal['met'] else 'NOT met'}"
    )
    return "\n".join(lines)


def write_plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    labels = {"ra": "(a) RA", "ba": "(b) BA", "first_packet": "(c) first tunnelled packet"}
    counted = [h for h in data["raw"]["handovers"] if not h["warmup"]]
    for step, label in labels.items():
        values = sorted(
            1e3 * h["events_s"][step] for h in counted if h["events_s"][step] is not None
        )
        if values:
            ax.step(
                values,
                [(i + 1) / len(values) for i in range(len(values))],
                where="post",
                label=label,
            )
    ax.axvline(GOAL_FIRST_PACKET_P99_MS, color="grey", linestyle=":", label="goal (c) p99")
    ax.set_xlabel("time after link up at the new DAR (ms)")
    ax.set_ylabel("CDF over handovers")
    ax.set_title(f"FAMA handover latency, {len(counted)} handovers (fama-lab)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = args.json.parent / args.json.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    with running_lab(args.lab_id, dars=3, mns=1, cns=1, agent=True) as demo_lab:
        raw = run(args, demo_lab, out_dir)
        agent_log = Path(demo_lab.nodes["mn1"]["agent"]["log"]).read_text(errors="replace")
    (out_dir / "mn1-agent.log").write_text(agent_log)
    return {
        "machine": machine(),
        "config": {
            key: getattr(args, key)
            for key in (
                "lab_id",
                "handovers",
                "warmup",
                "interval_ms",
                "dwell_s",
                "smoke",
            )
        },
        "method": "times from moved_at (fama-lab move: link up on the new access link) to"
        " packets in a tcpdump capture on mn1's eth0 (kernel timestamps, same wall clock)",
        "summary": summarise(raw["handovers"]),
        "raw": raw,
        "capture": str(out_dir / "handover-mn1.pcap"),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_flow"]:
        return udp_sender(argv[1], float(argv[2]), Path(argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument("--handovers", type=int, default=50, help="counted handovers")
    parser.add_argument("--warmup", type=int, default=2, help="handovers before, not counted")
    parser.add_argument("--interval-ms", type=float, default=2.0, help="kept flow: ms per packet")
    parser.add_argument("--dwell-s", type=float, default=1.0, help="time on a DAR after settling")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_handover.json")
    parser.add_argument("--plot", type=Path, default=None, help="default: JSON path, .png")
    parser.add_argument("--smoke", action="store_true", help="3 handovers, 1 warm-up")
    args = parser.parse_args(argv)
    if args.smoke:
        args.handovers, args.warmup, args.dwell_s = 3, 1, 0.3
    plot = (write_plot, args.plot or args.json.with_suffix(".png"))
    return run_and_report("bench_handover", lambda: bench(args), args.json, report, plot)


if __name__ == "__main__":
    sys.exit(main())
