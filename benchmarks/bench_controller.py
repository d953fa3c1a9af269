"""Binding Updates per second through the real controller, against a Ryu baseline.

One command starts ``fama-controller fama_ryu.app`` on 127.0.0.1 (free ports,
a temporary domain file for N emulated switches, a temporary SQLite store),
connects N emulated OpenFlow 1.3 switches (:mod:`ofload`, no Ryu in the
generator) and measures, for precomputed CGA BUs (RSA-1024), PHKT BUs and
deregistrations:

* throughput: W outstanding BUs per switch, BU -> Binding Ack (the BA is the
  packet-out the controller sends after our barrier reply);
* latency: one BU outstanding, paced at ``--rate`` BU/s, p50/p99 BU -> BA.

Then, with the same generator, ``fama-controller ryu.app.simple_switch_13``
answers the same number of packet-ins (each one answered by a packet-out; its
flow-mods and packet-outs per packet-in are counted).  Every figure is the
median over R rounds.  Prints a table and writes JSON::

    .venv/bin/python benchmarks/bench_controller.py [--switches 4] [--repeats 3]
    .venv/bin/python benchmarks/bench_controller.py --smoke   # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ofload import (  # noqa: E402
    EmulatedSwitch,
    Request,
    RunResult,
    ba_keys,
    ba_status,
    connect,
    run_paced,
    run_window,
)

from fama_ryu import auth, cga, mh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTROLLER = ROOT / ".venv" / "bin" / "fama-controller"
HOST = "127.0.0.1"
ACCESS_PORT, CORE_PORT, GRE_PORT = 1, 10, 20
CORE_MAC = bytes.fromhex("0200000000ff")
LIFETIME_UNITS = 100  # 400 s
KINDS = ("cga", "phkt", "dereg")


# ---------------------------------------------------------------- set-up


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def router_mac(index: int) -> bytes:
    return bytes([2, 0, 0, 0, 0xD0, index])


def anchor_of(index: int) -> bytes:
    return ipaddress.IPv6Address(f"2001:db8:{index:x}::1").packed


def port_names(index: int) -> dict[str, int]:
    return {f"s{index}-acc": ACCESS_PORT, f"s{index}-core": CORE_PORT, f"s{index}-gre": GRE_PORT}


def domain(switches: int) -> dict[str, Any]:
    """A domain file: DAR i on dpid i, home prefix 2001:db8:i::/64."""
    return {
        "dars": [
            {
                "name": f"dar{i}",
                "dpid": i,
                "access_ports": [f"s{i}-acc"],
                "core_port": f"s{i}-core",
                "gre_port": f"s{i}-gre",
                "router_mac": router_mac(i).hex(":"),
                "access_prefixes": [f"2001:db8:{i:x}::/64"],
                "anchor_address": str(ipaddress.IPv6Address(anchor_of(i))),
                "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC.hex(":")},
                # Capacity is measured, not the RSA budget that rations it under
                # floods (every emulated MN's CoA is in one /64: one "source").
                "rsa_verifications_per_s": 1_000_000,
                "rsa_verifications_per_source_per_s": 1_000_000,
            }
            for i in range(1, switches + 1)
        ]
    }


@contextlib.contextmanager
def controller(
    app: str,
    workdir: Path,
    switches: int,
    store_dir: Path | None = None,
    profile: Path | None = None,
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Run ``fama-controller APP`` on free loopback ports; stop it (by pid) on exit.

    The SQLite store goes to ``workdir`` unless ``store_dir`` is given; with
    ``profile`` the controller runs under cProfile and leaves its stats there.
    """
    store = (store_dir or workdir) / "bindings.sqlite"
    domain_file = workdir / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(domain(switches)))
    conf = workdir / "bench.conf"
    conf.write_text(
        "[DEFAULT]\nofp_listen_host = 127.0.0.1\nwsapi_host = 127.0.0.1\n\n"
        f"[fama]\ndomain_file = {domain_file}\nstore_path = {store}\n"
        "metrics_port = 0\n"
    )
    ofp_port, wsapi_port = free_port(), free_port()
    log = (workdir / f"{app.rsplit('.', 1)[-1]}.log").open("w")
    launcher = [str(CONTROLLER)]
    if profile is not None:
        python = str(CONTROLLER.parent / "python")
        launcher = [python, "-m", "cProfile", "-o", str(profile), "-m", "fama_ryu.launcher"]
    process = subprocess.Popen(
        [
            *launcher,
            app,
            "--config-file",
            str(conf),
            "--ofp-tcp-listen-port",
            str(ofp_port),
            "--wsapi-port",
            str(wsapi_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    try:
        yield ofp_port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


# ---------------------------------------------------------------- mobile nodes


@dataclass
class Mn:
    """An emulated mobile node: a CGA home address behind one DAR, its own CoA."""

    dpid: int
    hoa: bytes
    params: cga.CgaParameters
    coa: bytes
    key: rsa.RSAPrivateKey
    lifetime_units: int = LIFETIME_UNITS
    sequence: int = 0
    phkt: bytes | None = None

    @property
    def anchor(self) -> bytes:
        return anchor_of(self.dpid)

    def _frame(self, bu: mh.BindingUpdate, **kwargs: Any) -> Request:
        packet = mh.build_packet(
            bu, source=self.coa, destination=self.anchor, home_address=self.hoa, **kwargs
        )
        frame = mh.build_ethernet_frame(CORE_MAC, router_mac(self.dpid), packet)
        keys = [(self.dpid, self.hoa, bu.sequence), (self.dpid, self.coa, bu.sequence)]
        return Request(CORE_PORT, frame, keys)

    def cga_bu(self) -> Request:
        """A first BU: CGA Parameters and an RSA signature (P6)."""
        self.sequence += 1
        key, coa, anchor = self.key, self.coa, self.anchor
        options = mh.MobilityOptions(cga_parameters=self.params.encode())
        return self._frame(
            mh.BindingUpdate(self.sequence, self.lifetime_units, options=options),
            signer=lambda data: auth.sign_binding_update(key, coa, anchor, data),
            signature_len=key.key_size // 8,
        )

    def _authenticated(self, lifetime_units: int, first: bytes) -> Request:
        assert self.phkt is not None, "no PHKT learnt yet"
        self.sequence += 1
        kbm = auth.binding_management_key(self.phkt, None)
        anchor = self.anchor
        return self._frame(
            mh.BindingUpdate(self.sequence, lifetime_units),
            authenticator=lambda data: auth.binding_authenticator(kbm, first, anchor, data),
        )

    def phkt_bu(self) -> Request:
        """A later BU authenticated with Kbm = SHA1(PHKT) (P9)."""
        return self._authenticated(self.lifetime_units, self.coa)

    def deregistration(self) -> Request:
        """Lifetime 0 from the CoA; the HoA stands in for the CoA (P11)."""
        return self._authenticated(0, self.hoa)

    def learn(self, ba_frame: bytes) -> None:
        encrypted = mh.parse_ethernet_frame(ba_frame).message.options.permanent_home_keygen_token
        if encrypted is not None:
            self.phkt = auth.decrypt_phkt(self.key, encrypted)


def make_mns(
    switches: int, per_switch: int, seed: int = 5, lifetime_units: int = LIFETIME_UNITS
) -> dict[int, list[Mn]]:
    """``per_switch`` MNs per DAR sharing one RSA-1024 key (their CGAs differ by modifier);
    their BUs ask for ``lifetime_units`` (4 s each)."""
    rng = random.Random(seed).randbytes
    key = cga.generate_rsa_key(1024)
    der = cga.public_key_der(key)
    mns: dict[int, list[Mn]] = {}
    for dpid in range(1, switches + 1):
        mns[dpid] = []
        for k in range(per_switch):
            hoa, params = cga.generate_cga(der, anchor_of(dpid)[:8], 0, rng)
            coa = ipaddress.IPv6Address(f"2001:db8:f{dpid:03x}::{k + 1:x}").packed
            mns[dpid].append(Mn(dpid, hoa, params, coa, key, lifetime_units))
    return mns


# ---------------------------------------------------------------- measurement


@dataclass
class Recorder:
    """Reply matching for the FAMA run: BA keys, BA statuses, kept BAs."""

    statuses: Counter[int]
    keep: bool = False
    frames: list[bytes] | None = None

    def __call__(self, dpid: int, frame: bytes) -> list[tuple[int, bytes, int]]:
        keys = ba_keys(frame)
        if not keys:
            return []
        status = ba_status(frame)
        if status is not None:
            self.statuses[status] += 1
        if self.keep and self.frames is not None:
            self.frames.append(frame)
        return [(dpid, address, sequence) for address, sequence in keys]


def summary(results: list[RunResult], counts: list[Counter[str]]) -> dict[str, Any]:
    """Median rate and latency over rounds, plus what the controller sent per request."""
    latencies = [sorted(r.latencies_s) for r in results if r.latencies_s]

    def percentile(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1e3

    sent = sum(r.sent for r in results)
    total = Counter[str]()
    for count in counts:
        total.update(count)
    requests = max(1, total["packet_in"])
    return {
        "rate_per_s": statistics.median(r.rate for r in results),
        "rates_per_s": [round(r.rate, 1) for r in results],
        "controller_cpu_share": statistics.median(
            r.controller_cpu_s / r.elapsed_s for r in results
        ),
        "generator_cpu_share": statistics.median(r.generator_cpu_s / r.elapsed_s for r in results),
        "controller_cpu_ms_per_request": statistics.median(
            1e3 * r.controller_cpu_s / max(1, r.answered) for r in results
        ),
        "p50_ms": statistics.median(percentile(v, 0.50) for v in latencies) if latencies else None,
        "p99_ms": statistics.median(percentile(v, 0.99) for v in latencies) if latencies else None,
        "sent": sent,
        "answered": sum(r.answered for r in results),
        "latency_ms_samples": sorted(round(x * 1e3, 3) for v in latencies for x in v),
        "flow_mods_per_request": total["flow_mod"] / requests,
        "packet_outs_per_request": total["packet_out"] / requests,
        "barriers_per_request": total["barrier"] / requests,
    }


def snapshot(switches: dict[int, EmulatedSwitch]) -> Counter[str]:
    total = Counter[str]()
    for switch in switches.values():
        total.update(switch.counts)
    return total


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    switches: dict[int, EmulatedSwitch], run: Coroutine[Any, Any, RunResult], pid: int
) -> tuple[RunResult, Counter[str]]:
    """Await the load run ``run``; return its result and the messages it caused.

    The result also gets the CPU time this process (the generator) and the
    controller ``pid`` spent during the run.
    """
    before = snapshot(switches)
    generator_cpu, controller_cpu = time.process_time(), process_cpu_s(pid)
    result = await run
    result.generator_cpu_s = time.process_time() - generator_cpu
    result.controller_cpu_s = process_cpu_s(pid) - controller_cpu
    after = snapshot(switches)
    after.subtract(before)
    return result, after


async def fama_rounds(args: argparse.Namespace, ofp_port: int, pid: int) -> dict[str, Any]:
    """Throughput then latency for CGA, PHKT and deregistration BUs, R rounds."""
    recorder = Recorder(Counter(), frames=[])
    switches = {
        dpid: EmulatedSwitch(dpid, port_names(dpid), recorder, ready_on="sweep")
        for dpid in range(1, args.switches + 1)
    }
    await connect(HOST, ofp_port, list(switches.values()))
    await asyncio.sleep(0.3)
    mns = make_mns(args.switches, args.mns)
    everyone = [mn for dpid in switches for mn in mns[dpid]]
    by_key = {(mn.dpid, mn.coa): mn for mn in everyone}
    latency_mns = [mn for group in zip(*mns.values(), strict=True) for mn in group]
    latency_mns = latency_mns[: max(1, args.latency_samples)]
    results: dict[str, dict[str, list[Any]]] = {
        f"{mode}_{kind}": {"results": [], "counts": []}
        for mode in ("throughput", "latency")
        for kind in KINDS
    }

    def learn_phkts() -> None:
        assert recorder.frames is not None
        for frame in recorder.frames:
            parsed = mh.parse_ethernet_frame(frame)
            dpid = int.from_bytes(frame[6:12], "big") & 0xFF
            mn = by_key.get((dpid, parsed.destination))
            if mn is not None:
                mn.learn(frame)
        recorder.frames.clear()
        recorder.keep = False

    async def window(name: str, work: dict[int, list[Request]]) -> None:
        result, counts = await measure(
            switches, run_window(work, switches, args.window, timeout_s=args.timeout), pid
        )
        results[name]["results"].append(result)
        results[name]["counts"].append(counts)

    async def paced(name: str, requests: list[tuple[int, Request]]) -> None:
        result, counts = await measure(switches, run_paced(requests, switches, args.rate), pid)
        results[name]["results"].append(result)
        results[name]["counts"].append(counts)

    for _ in range(args.repeats):
        # Throughput: every MN registers (CGA), refreshes K times (PHKT), deregisters.
        work = {dpid: [mn.cga_bu() for mn in mns[dpid]] for dpid in switches}
        recorder.keep = True
        await window("throughput_cga", work)
        learn_phkts()
        work = {
            dpid: [mn.phkt_bu() for _ in range(args.phkt_per_mn) for mn in mns[dpid]]
            for dpid in switches
        }
        await window("throughput_phkt", work)
        work = {dpid: [mn.deregistration() for mn in mns[dpid]] for dpid in switches}
        await window("throughput_dereg", work)
        # Latency: one outstanding at --rate BU/s.
        requests = [(mn.dpid, mn.cga_bu()) for mn in latency_mns]
        recorder.keep = True
        await paced("latency_cga", requests)
        learn_phkts()
        await paced("latency_phkt", [(mn.dpid, mn.phkt_bu()) for mn in latency_mns])
        await paced("latency_dereg", [(mn.dpid, mn.deregistration()) for mn in latency_mns])
    for switch in switches.values():
        switch.close()
    out: dict[str, Any] = {n: summary(v["results"], v["counts"]) for n, v in results.items()}
    out["ba_status"] = {str(k): v for k, v in sorted(recorder.statuses.items())}
    out["packet_outs_not_ba"] = snapshot(switches)["packet_out_unmatched"]
    return out


def baseline_frames(
    dpid: int, count: int, length: int, hosts: int = 64, first: int = 0
) -> list[Request]:
    """Unique IPv6 frames between ``hosts`` learnt MACs; the answer is the frame itself."""
    requests = []
    for n in range(first, first + count):
        src = bytes([2, 0xBB, dpid, 0, 0, n % hosts])
        dst = bytes([2, 0xBB, dpid, 0, 0, (n + 1) % hosts])
        tag = f"{dpid}:{n}:{time.perf_counter_ns()}".encode()
        payload = (b"\x60" + bytes(53) + tag).ljust(length - 14, b"\x00")
        frame = dst + src + b"\x86\xdd" + payload
        requests.append(Request(ACCESS_PORT, frame, [(dpid, frame)]))
    return requests


async def baseline_rounds(
    args: argparse.Namespace, ofp_port: int, pid: int, frame_len: int
) -> dict[str, Any]:
    """simple_switch_13 answering the same number of packet-ins, R rounds."""
    switches = {
        dpid: EmulatedSwitch(
            dpid, port_names(dpid), lambda dpid, frame: [(dpid, frame)], ready_on="flow_mod"
        )
        for dpid in range(1, args.switches + 1)
    }
    await connect(HOST, ofp_port, list(switches.values()))
    await asyncio.sleep(0.5)  # the port-desc reply moves the datapath to MAIN
    # Warm-up: the switch learns every host MAC (floods, no flow-mods yet).
    warm = {dpid: baseline_frames(dpid, 128, frame_len) for dpid in switches}
    await run_window(warm, switches, args.window, timeout_s=args.timeout)
    per_switch = args.mns * args.phkt_per_mn
    throughput: list[tuple[RunResult, Counter[str]]] = []
    latency: list[tuple[RunResult, Counter[str]]] = []
    for _ in range(args.repeats):
        work = {dpid: baseline_frames(dpid, per_switch, frame_len) for dpid in switches}
        throughput.append(
            await measure(
                switches, run_window(work, switches, args.window, timeout_s=args.timeout), pid
            )
        )
        samples = max(1, args.latency_samples)
        requests = []
        for n in range(samples):
            dpid = 1 + n % args.switches
            requests.append((dpid, baseline_frames(dpid, 1, frame_len, first=n)[0]))
        latency.append(await measure(switches, run_paced(requests, switches, args.rate), pid))
    for switch in switches.values():
        switch.close()
    return {
        "throughput_packet_in": summary([r for r, _ in throughput], [c for _, c in throughput]),
        "latency_packet_in": summary([r for r, _ in latency], [c for _, c in latency]),
    }


# ---------------------------------------------------------------- report


def disk_sync_latency(directory: Path, samples: int) -> dict[str, float]:
    """What one durable commit costs at least on the store's disk: write 4 KiB, fdatasync.

    SQLite in WAL mode with synchronous=FULL syncs the WAL once per
    transaction, so this bounds a BU's latency from below on this machine.
    """
    path = directory / "sync-probe"
    timings = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for index in range(samples):
            os.pwrite(descriptor, os.urandom(4096), (index % 64) * 4096)
            started = time.perf_counter()
            os.fdatasync(descriptor)
            timings.append((time.perf_counter() - started) * 1e3)
    finally:
        os.close(descriptor)
        path.unlink()
    timings.sort()
    return {
        "samples": samples,
        "p50_ms": timings[len(timings) // 2],
        "p99_ms": timings[min(len(timings) - 1, int(0.99 * len(timings)))],
    }


def plot(data: dict[str, Any], path: Path) -> None:
    """Rates against the baseline, and the BU->BA latency CDFs at the paced rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fama, base = data["fama"], data["baseline"]
    kinds = [("CGA BU", "cga"), ("PHKT BU", "phkt"), ("dereg.", "dereg")]
    figure, (rates, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    names = [name for name, _ in kinds] + ["simple_switch_13\npacket-in"]
    values = [fama[f"throughput_{key}"]["rate_per_s"] for _, key in kinds]
    values.append(base["throughput_packet_in"]["rate_per_s"])
    rates.bar(names, values, color=["tab:blue"] * 3 + ["tab:gray"])
    rates.set_ylabel("answered per second (median of rounds)")
    rates.set_title("throughput, windowed")
    series = [(name, fama[f"latency_{key}"]) for name, key in kinds]
    series.append(("simple_switch_13", base["latency_packet_in"]))
    for name, run in series:
        samples = run["latency_ms_samples"]
        if samples:
            cdf.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))], label=name)
    sync = data.get("disk_sync")
    if sync:
        cdf.axvline(sync["p99_ms"], color="k", linestyle=":", label="fdatasync p99")
    cdf.set_xscale("log")
    cdf.set_xlabel(f"request -> answer latency, ms (one outstanding, {data['config']['rate']:g}/s)")
    cdf.set_ylabel("fraction")
    cdf.legend(fontsize=8)
    cdf.set_title("latency CDF")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def report(data: dict[str, Any]) -> str:
    fama, base = data["fama"], data["baseline"]
    rows = [
        ("CGA BU (RSA-1024)", fama["throughput_cga"], fama["latency_cga"]),
        ("PHKT BU", fama["throughput_phkt"], fama["latency_phkt"]),
        ("deregistration", fama["throughput_dereg"], fama["latency_dereg"]),
        ("baseline packet-in", base["throughput_packet_in"], base["latency_packet_in"]),
    ]
    base_rate = base["throughput_packet_in"]["rate_per_s"]
    lines = [
        f"{'kind':<20} {'rate/s':>8} {'x base':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'FM/req':>7} {'PO/req':>7} {'ctl CPU':>7} {'gen CPU':>7} {'ctl ms/req':>10}",
    ]
    for name, tput, lat in rows:
        r = ratio(tput["rate_per_s"], base_rate)
        lines.append(
            f"{name:<20} {tput['rate_per_s']:>8.0f} {r or 0:>7.2f} {lat['p50_ms'] or 0:>7.2f}"
            f" {lat['p99_ms'] or 0:>7.2f} {tput['flow_mods_per_request']:>7.2f}"
            f" {tput['packet_outs_per_request']:>7.2f} {tput['controller_cpu_share']:>7.0%}"
            f" {tput['generator_cpu_share']:>7.0%} {tput['controller_cpu_ms_per_request']:>10.3f}"
        )
    sync = data["disk_sync"]
    lines.append(
        f"\nstore disk: write 4 KiB + fdatasync p50 {sync['p50_ms']:.2f} ms,"
        f" p99 {sync['p99_ms']:.2f} ms (lower bound of a durable BU's latency)"
    )
    lines.append("")
    for goal, entry in data["goals"].items():
        lines.append(
            f"goal {goal}: target {entry['target']}, measured {entry['measured']:.2f}"
            f" -> {'met' if entry['met'] else 'NOT met'}"
            if entry["measured"] is not None
            else f"goal {goal}: not measured"
        )
    return "\n".join(lines)


def goals(fama: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    base_rate = base["throughput_packet_in"]["rate_per_s"]

    def entry(measured: float | None, target: float, at_least: bool) -> dict[str, Any]:
        met = measured is not None and (measured >= target if at_least else measured <= target)
        return {"target": target, "measured": measured, "met": met}

    return {
        "phkt_rate_vs_baseline>=1.5": entry(
            ratio(fama["throughput_phkt"]["rate_per_s"], base_rate), 1.5, True
        ),
        "cga_rate_vs_baseline>=1.0": entry(
            ratio(fama["throughput_cga"]["rate_per_s"], base_rate), 1.0, True
        ),
        "phkt_p99_ms<=5": entry(fama["latency_phkt"]["p99_ms"], 5.0, False),
        "cga_p99_ms<=10": entry(fama["latency_cga"]["p99_ms"], 10.0, False),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fama-bench-")))
        store_dir = None
        if args.store_dir is not None:
            store_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.store_dir)))
        (workdir / "fama").mkdir()
        (workdir / "base").mkdir()
        profile = args.profile / "fama_app.prof" if args.profile else None
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        disk_sync = disk_sync_latency(store_dir or workdir, 50 if args.smoke else 300)
        with controller("fama_ryu.app", workdir / "fama", args.switches, store_dir, profile) as (
            port,
            process,
        ):
            try:
                fama = await fama_rounds(args, port, process.pid)
            finally:
                if process.poll() is not None:
                    print((workdir / "fama" / "app.log").read_text()[-3000:], file=sys.stderr)
        sample = make_mns(1, 1)[1][0]
        sample.phkt = bytes(8)
        frame_len = len(sample.phkt_bu().frame)
        with controller("ryu.app.simple_switch_13", workdir / "base", args.switches) as (
            port,
            process,
        ):
            base = await baseline_rounds(args, port, process.pid, frame_len)
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "config": {
            key: getattr(args, key)
            for key in (
                "switches",
                "mns",
                "phkt_per_mn",
                "window",
                "rate",
                "latency_samples",
                "repeats",
                "smoke",
            )
        }
        | {"store_dir": str(args.store_dir) if args.store_dir else "tempdir (disk)"},
        "disk_sync": disk_sync,
        "fama": fama,
        "baseline": base,
        "ratios": {
            "phkt_vs_baseline": ratio(
                fama["throughput_phkt"]["rate_per_s"], base["throughput_packet_in"]["rate_per_s"]
            ),
            "cga_vs_baseline": ratio(
                fama["throughput_cga"]["rate_per_s"], base["throughput_packet_in"]["rate_per_s"]
            ),
            "dereg_vs_baseline": ratio(
                fama["throughput_dereg"]["rate_per_s"], base["throughput_packet_in"]["rate_per_s"]
            ),
        },
        "goals": goals(fama, base),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=4, help="emulated switches (DARs)")
    parser.add_argument("--mns", type=int, default=250, help="mobile nodes per switch")
    parser.add_argument("--phkt-per-mn", type=int, default=4, help="PHKT BUs per MN per round")
    parser.add_argument("--window", type=int, default=16, help="outstanding BUs per switch")
    parser.add_argument("--rate", type=float, default=100.0, help="BU/s in latency mode")
    parser.add_argument("--latency-samples", type=int, default=300, help="per kind per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per load run")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_controller.json")
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="parent directory of the temporary SQLite store (e.g. /dev/shm, to take the"
        " fsync out of the figures); default: the temporary work directory",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the FAMA controller under cProfile; stats go to DIR/fama_app.prof"
        " (figures are then slower than the unprofiled ones)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run of a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.switches, args.mns, args.phkt_per_mn, args.window = 2, 8, 2, 4
        args.latency_samples, args.repeats, args.rate, args.timeout = 6, 1, 200.0, 20.0
    data = asyncio.run(bench(args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    png = args.json.with_suffix(".png")
    plot(data, png)
    print(report(data))
    print(f"\nJSON: {args.json}\nplot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
