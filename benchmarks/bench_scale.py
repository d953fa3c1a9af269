"""Binding scale: what 1k, 10k and 100k bindings cost one controller.

For every size N a fresh ``fama-controller fama_ryu.app`` (free loopback
ports, temporary domain file and SQLite store, see :mod:`bench_controller`)
gets S emulated switches (:mod:`ofload`) that *keep* the flows they are sent
in a flow table, as Open vSwitch does, and answer flow-stats requests from
it.  Then:

1. **Fill**: N emulated MNs send one CGA BU each (RSA-1024, windowed), in
   chunks; each chunk's BU/s and controller CPU per BU is recorded.
2. **Memory**: controller RSS (``/proc/<pid>/status``) at N bindings minus
   its RSS with the switches connected and no binding, divided by N.
3. **Flows per DAR**: flows each switch holds and flow-mods it received.
4. **Per-BU cost at N**: a fixed probe set of MNs sends PHKT BUs: windowed
   (BU/s, controller CPU ms per BU from ``/proc/<pid>/stat``) and paced at
   ``--rate`` (BU->BA p50/p99), medians over R rounds.
5. **Restart**: the controller is killed (SIGKILL), a few bindings per DAR
   are removed from the store meanwhile (as if they had ended while it was
   down: their flows must go), and the controller is started again on the
   same store.  Reconciled is when every switch holds the flow set it held
   before, minus the removed bindings' flows, all with the new cookie
   generation, and no flow of an older generation.

Prints a table, writes JSON and a PNG plot::

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,100000]
    .venv/bin/python benchmarks/bench_scale.py --smoke     # seconds
    .venv/bin/python benchmarks/bench_scale.py --sizes 100000 --profile build/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_controller import (  # noqa: E402
    HOST,
    Mn,
    Recorder,
    controller,
    make_mns,
    measure,
    port_names,
    summary,
)
from ofload import (  # noqa: E402
    OFPMP_FLOW,
    OFPT_FLOW_MOD,
    OFPT_MULTIPART_REPLY,
    OFPT_MULTIPART_REQUEST,
    EmulatedSwitch,
    Request,
    connect,
    message,
    run_paced,
    run_window,
)

from fama_ryu import mh  # noqa: E402
from fama_ryu.binding_cache import BindingCache, RemovalCause  # noqa: E402
from fama_ryu.store import SqliteBindingStore  # noqa: E402
from openflow_pipelines.cookies import decode_cookie  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A 100k fill takes minutes: bindings must outlive the whole run (3600 s, the
# domain's default maximum), not bench_controller's 400 s.
LIFETIME_UNITS = 900

OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT = range(5)
OFPTT_ALL = 0xFF
OFPMPF_REPLY_MORE = 1
EMPTY_MATCH_LEN = 4  # ofp_match header only
FLOW_MOD_FIELDS = struct.Struct("!QQBBHHHIIIH2x")  # after the OpenFlow header
FLOW_MOD_MATCH_AT = 8 + FLOW_MOD_FIELDS.size
FLOW_STATS_REQUEST = struct.Struct("!HH4xB3xII4xQQ")  # multipart header + flow request
FLOW_STATS_ENTRY = struct.Struct("!HBxIIHHHH4xQQQ")
MULTIPART_HEADER = struct.Struct("!HH4x")
MULTIPART_KIND = struct.Struct("!H")
MAX_MESSAGE = 0xFFFF
NOT_FAMA = -1  # generation key of flows whose cookie this project did not write

FlowKey = tuple[int, int, bytes]  # table, priority, match (an ADD of the same key replaces)


# ---------------------------------------------------------------- switches that keep flows


@dataclass
class Flow:
    cookie: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    instructions: bytes


@dataclass
class FlowTable:
    """The flows one switch holds; it outlives the controller's connections, as in OVS."""

    flows: dict[FlowKey, Flow] = field(default_factory=dict)
    # Few distinct cookies (kind x generation): masked deletes check each once.
    by_cookie: dict[int, set[FlowKey]] = field(default_factory=dict)
    generations: Counter[int] = field(default_factory=Counter)  # flows held per generation
    unsupported: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def generation(cookie: int) -> int:
        fields = decode_cookie(cookie)
        return fields.generation if fields is not None else NOT_FAMA

    def _remove(self, key: FlowKey) -> None:
        flow = self.flows.pop(key)
        keys = self.by_cookie[flow.cookie]
        keys.discard(key)
        if not keys:
            del self.by_cookie[flow.cookie]
        self.generations[self.generation(flow.cookie)] -= 1

    def apply(self, data: bytes) -> None:
        """Apply one OFPT_FLOW_MOD message (ADD, DELETE, DELETE_STRICT)."""
        cookie, cookie_mask, table_id, command, idle, hard, priority, *_, flags = (
            FLOW_MOD_FIELDS.unpack_from(data, 8)
        )
        (match_len,) = struct.unpack_from("!H", data, FLOW_MOD_MATCH_AT + 2)
        match_end = FLOW_MOD_MATCH_AT + (match_len + 7) // 8 * 8
        match = data[FLOW_MOD_MATCH_AT:match_end]
        key = (table_id, priority, match)
        if command == OFPFC_ADD:
            if key in self.flows:
                self._remove(key)
            self.flows[key] = Flow(cookie, idle, hard, flags, data[match_end:])
            self.by_cookie.setdefault(cookie, set()).add(key)
            self.generations[self.generation(cookie)] += 1
        elif command == OFPFC_DELETE_STRICT:
            flow = self.flows.get(key)
            if flow is not None and flow.cookie & cookie_mask == cookie & cookie_mask:
                self._remove(key)
        elif command == OFPFC_DELETE and match_len == EMPTY_MATCH_LEN:
            for stale in self.matching(table_id, cookie, cookie_mask):
                self._remove(stale)
        else:  # not sent by the FAMA pipeline: counted so that a change shows
            self.unsupported[f"command_{command}_match_len_{match_len}"] += 1

    def matching(self, table_id: int, cookie: int, cookie_mask: int) -> list[FlowKey]:
        return [
            key
            for held, keys in self.by_cookie.items()
            if held & cookie_mask == cookie & cookie_mask
            for key in keys
            if table_id == OFPTT_ALL or key[0] == table_id
        ]

    def stats_replies(self, xid: int, table_id: int, cookie: int, cookie_mask: int) -> list[bytes]:
        """OFPMP_FLOW replies (as many as 64 KiB messages need) for the matching flows."""
        entries = []
        for key in self.matching(table_id, cookie, cookie_mask):
            flow = self.flows[key]
            table, priority, match = key
            length = FLOW_STATS_ENTRY.size + len(match) + len(flow.instructions)
            entries.append(
                FLOW_STATS_ENTRY.pack(
                    length,
                    table,
                    0,
                    0,
                    priority,
                    flow.idle_timeout,
                    flow.hard_timeout,
                    flow.flags,
                    flow.cookie,
                    0,
                    0,
                )
                + match
                + flow.instructions
            )
        parts: list[list[bytes]] = [[]]
        room = MAX_MESSAGE - 8 - MULTIPART_HEADER.size
        used = 0
        for entry in entries:
            if used + len(entry) > room:
                parts.append([])
                used = 0
            parts[-1].append(entry)
            used += len(entry)
        return [
            message(
                OFPT_MULTIPART_REPLY,
                xid,
                MULTIPART_HEADER.pack(OFPMP_FLOW, OFPMPF_REPLY_MORE if n < len(parts) - 1 else 0)
                + b"".join(part),
            )
            for n, part in enumerate(parts)
        ]


@dataclass
class FlowTableSwitch(EmulatedSwitch):
    """An :class:`EmulatedSwitch` that keeps its flows in ``table`` and reports them."""

    table: FlowTable = field(default_factory=FlowTable)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.connected_at: float | None = None
        self.first_flow_mod_at: float | None = None
        self.sweep_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_at = time.perf_counter()
        super().connection_made(transport)

    def _handle(self, msg_type: int, xid: int, buffer: bytes, offset: int, length: int) -> None:
        if msg_type == OFPT_FLOW_MOD:
            self.counts["flow_mod"] += 1
            if self.first_flow_mod_at is None:
                self.first_flow_mod_at = time.perf_counter()
            self.table.apply(buffer[offset : offset + length])
            table_id, command = buffer[offset + 24], buffer[offset + 25]
            if table_id == OFPTT_ALL and command == OFPFC_DELETE:
                # The deletes of other generations end the controller's setup.
                if self.sweep_at is None:
                    self.sweep_at = time.perf_counter()
                self.ready.set()
            return
        if (
            msg_type == OFPT_MULTIPART_REQUEST
            and MULTIPART_KIND.unpack_from(buffer, offset + 8)[0] == OFPMP_FLOW
        ):
            _, _, table_id, _, _, cookie, cookie_mask = FLOW_STATS_REQUEST.unpack_from(
                buffer, offset + 8
            )
            self.counts["flow_stats_request"] += 1
            for reply in self.table.stats_replies(xid, table_id, cookie, cookie_mask):
                self._send(reply)
            return
        super()._handle(msg_type, xid, buffer, offset, length)


def make_switches(tables: dict[int, FlowTable], recorder: Recorder) -> dict[int, FlowTableSwitch]:
    return {
        dpid: FlowTableSwitch(dpid, port_names(dpid), recorder, table=table)
        for dpid, table in tables.items()
    }


def close(switches: dict[int, FlowTableSwitch]) -> None:
    for switch in switches.values():
        switch.close()


# ---------------------------------------------------------------- controller process


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for pid {pid}")


async def settled_rss(pid: int, settle_s: float) -> int:
    """RSS once the controller has had ``settle_s`` to finish what it was doing."""
    await asyncio.sleep(settle_s)
    return rss_bytes(pid)


def stop_gracefully(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGINT until the controller exits (so that cProfile writes its statistics).

    A SIGINT that lands while one of the app's own greenlets runs (the busy
    tick, at 100k bindings) is swallowed by ryu.lib.hub; the next one stops it.
    """
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    if process.poll() is None:
        process.kill()
        process.wait()


def store_bytes(store_dir: Path) -> int:
    return sum(path.stat().st_size for path in store_dir.glob("bindings.sqlite*"))


def remove_from_store(store_path: Path, mns: dict[int, list[Mn]], per_dar: int) -> int:
    """End ``per_dar`` bindings per DAR in the store, as if while the controller was down.

    Uses the store's own API: the controller, on restart, neither restores
    them nor reinstalls their flows, so their old-generation flows must be
    found and deleted by the reconciliation.
    """
    now = time.time()
    removed = 0
    with SqliteBindingStore(store_path) as store:
        state = store.load(now)
        changes = []
        for dpid, group in mns.items():
            bindings, tombstones = state[f"dar{dpid}"]
            cache = BindingCache()
            cache.restore(bindings, tombstones)
            for mn in group[len(group) - per_dar :]:
                changes.append((f"dar{dpid}", cache.removal(mn.hoa, now, RemovalCause.REVOKED)))
        store.commit(changes)
        removed = len(changes)
    return removed


# ---------------------------------------------------------------- one size


def learn_phkts(recorder: Recorder, mns: dict[int, list[Mn]]) -> int:
    """Decrypt the PHKTs the kept BAs carry (outside any timing); how many were learnt."""
    assert recorder.frames is not None
    by_key = {(mn.dpid, mn.coa): mn for group in mns.values() for mn in group}
    learnt = 0
    for frame in recorder.frames:
        dpid = frame[11]  # the DAR's router MAC ends with its index
        mn = by_key.get((dpid, mh.parse_ethernet_frame(frame).destination))
        if mn is not None:
            mn.learn(frame)
            learnt += mn.phkt is not None
    recorder.frames.clear()
    recorder.keep = False
    return learnt


async def fill(
    args: argparse.Namespace,
    switches: dict[int, EmulatedSwitch],
    groups: list[dict[int, list[Mn]]],
    pid: int,
    bound: int = 0,
) -> list[dict[str, Any]]:
    """One CGA BU per MN, group by group; BU/s and CPU per BU of every group.

    ``bound`` is how many bindings the controller already holds.
    """
    chunks = []
    for group in groups:
        work: dict[int, list[Request]] = {
            dpid: [mn.cga_bu() for mn in mns] for dpid, mns in group.items()
        }
        result, _ = await measure(
            switches, run_window(work, switches, args.window, timeout_s=args.timeout), pid
        )
        bound += result.answered
        chunks.append(
            {
                "bindings_after": bound,
                "sent": result.sent,
                "answered": result.answered,
                "rate_per_s": result.rate,
                "elapsed_s": result.elapsed_s,
                "controller_cpu_ms_per_bu": 1e3 * result.controller_cpu_s / max(1, result.answered),
            }
        )
    return chunks


def fill_groups(
    mns: dict[int, list[Mn]], probes_per_switch: int, chunk: int
) -> list[dict[int, list[Mn]]]:
    """The probe MNs first (their BAs are kept), then the rest in chunks of ``chunk`` BUs."""
    groups = [{dpid: group[:probes_per_switch] for dpid, group in mns.items()}]
    per_switch = max(1, chunk // len(mns))
    longest = max(len(group) for group in mns.values())
    for start in range(probes_per_switch, longest, per_switch):
        groups.append({dpid: group[start : start + per_switch] for dpid, group in mns.items()})
    return groups


async def probe(
    args: argparse.Namespace,
    switches: dict[int, EmulatedSwitch],
    probes: dict[int, list[Mn]],
    pid: int,
) -> dict[str, Any]:
    """PHKT BUs of the fixed probe set: windowed and paced, R rounds."""
    interleaved = [mn for row in zip(*probes.values(), strict=True) for mn in row]
    throughput, latency = [], []
    for _ in range(args.repeats):
        work = {
            dpid: [mn.phkt_bu() for _ in range(args.phkt_per_mn) for mn in group]
            for dpid, group in probes.items()
        }
        throughput.append(
            await measure(
                switches, run_window(work, switches, args.window, timeout_s=args.timeout), pid
            )
        )
        samples = [interleaved[n % len(interleaved)] for n in range(args.latency_samples)]
        requests = [(mn.dpid, mn.phkt_bu()) for mn in samples]
        latency.append(await measure(switches, run_paced(requests, switches, args.rate), pid))
    return {
        "throughput_phkt": summary([r for r, _ in throughput], [c for _, c in throughput]),
        "latency_phkt": summary([r for r, _ in latency], [c for _, c in latency]),
    }


async def restart(
    args: argparse.Namespace,
    workdir: Path,
    store_dir: Path,
    tables: dict[int, FlowTable],
    expected: dict[int, int],
    generation_before: dict[int, int],
    profile: Path | None,
) -> dict[str, Any]:
    """Start the controller on the store; time until every switch is reconciled."""

    def reconciled(dpid: int) -> bool:
        generations = +tables[dpid].generations  # drop zero counts
        return (
            len(generations) == 1
            and next(iter(generations)) > generation_before[dpid]
            and generations.most_common(1)[0][1] == expected[dpid]
        )

    recorder = Recorder(Counter())
    switches = make_switches(tables, recorder)
    reconciled_at: dict[int, float] = {}
    start = time.perf_counter()
    with controller("fama_ryu.app", workdir, len(tables), store_dir, profile) as (port, process):
        connecting = asyncio.create_task(
            connect(HOST, port, list(switches.values()), timeout_s=args.timeout)
        )
        deadline = start + args.timeout
        while len(reconciled_at) < len(tables) and time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"controller exited with {process.returncode} while reconciling")
            for dpid in tables:
                if dpid not in reconciled_at and reconciled(dpid):
                    reconciled_at[dpid] = time.perf_counter()
            await asyncio.sleep(0.02)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connecting, max(0.1, deadline - time.perf_counter()))
        rss = await settled_rss(process.pid, args.settle)
        close(switches)
        if profile is not None:
            stop_gracefully(process, args.timeout)

    def since_start(value: float | None) -> float | None:
        return value - start if value is not None else None

    done = len(reconciled_at) == len(tables)
    return {
        "reconciled": done,
        "restart_to_reconciled_s": max(reconciled_at.values()) - start if done else None,
        "rss_after_reconcile_bytes": rss,
        "per_dar": {
            str(dpid): {
                "connected_s": since_start(switch.connected_at),
                "first_flow_mod_s": since_start(switch.first_flow_mod_at),
                "sweep_sent_s": since_start(switch.sweep_at),
                "reconciled_s": since_start(reconciled_at.get(dpid)),
                "flow_mods_received": switch.counts["flow_mod"],
                "barriers_received": switch.counts["barrier"],
                "flows_held": len(tables[dpid].flows),
                "expected_flows": expected[dpid],
            }
            for dpid, switch in switches.items()
        },
    }


async def scale_run(args: argparse.Namespace, size: int, workdir: Path) -> dict[str, Any]:
    """Fill, measure, kill and restart one controller at ``size`` bindings."""
    switches_n = args.switches
    per_switch = size // switches_n
    mns = make_mns(switches_n, per_switch, lifetime_units=LIFETIME_UNITS)
    probes_per_switch = min(per_switch, max(1, args.probes // switches_n))
    probes = {dpid: group[:probes_per_switch] for dpid, group in mns.items()}
    removed_per_dar = min(args.removed_per_dar, per_switch - probes_per_switch)
    store_dir = workdir / "store"
    store_dir.mkdir(parents=True)
    (workdir / "filled").mkdir()
    (workdir / "restarted").mkdir()
    profile_dir = args.profile
    tables = {dpid: FlowTable() for dpid in mns}
    recorder = Recorder(Counter(), frames=[])
    switches = make_switches(tables, recorder)
    with controller(
        "fama_ryu.app",
        workdir / "filled",
        switches_n,
        store_dir,
        profile_dir / f"fill_{size}.prof" if profile_dir else None,
    ) as (port, process):
        pid = process.pid
        await connect(HOST, port, list(switches.values()), timeout_s=args.timeout)
        rss_empty = await settled_rss(pid, args.settle)
        base_flows = {dpid: len(table.flows) for dpid, table in tables.items()}
        load: dict[int, EmulatedSwitch] = dict(switches)  # ofload's functions take a dict
        recorder.keep = True
        groups = fill_groups(mns, probes_per_switch, args.chunk)
        started = time.perf_counter()
        chunks = await fill(args, load, groups[:1], pid)
        learnt = learn_phkts(recorder, probes)
        chunks += await fill(args, load, groups[1:], pid, chunks[0]["bindings_after"])
        fill_s = time.perf_counter() - started
        bound = chunks[-1]["bindings_after"]
        rss_full = await settled_rss(pid, args.settle)
        flow_mods_fill = {dpid: switch.counts["flow_mod"] for dpid, switch in switches.items()}
        per_bu = await probe(args, load, probes, pid)
        held = {dpid: len(table.flows) for dpid, table in tables.items()}
        generation_before = {dpid: max(+table.generations) for dpid, table in tables.items()}
        if profile_dir:
            close(switches)
            stop_gracefully(process, args.timeout)
        else:
            process.send_signal(signal.SIGKILL)
            process.wait(args.timeout)
        close(switches)
    await asyncio.sleep(0.2)  # the switches see their connections go
    store_size = store_bytes(store_dir)
    removed = remove_from_store(store_dir / "bindings.sqlite", mns, removed_per_dar)
    flows_per_binding = {
        dpid: (held[dpid] - base_flows[dpid]) / max(1, len(mns[dpid])) for dpid in mns
    }
    expected = {dpid: held[dpid] - round(flows_per_binding[dpid] * removed_per_dar) for dpid in mns}
    reconcile = await restart(
        args,
        workdir / "restarted",
        store_dir,
        tables,
        expected,
        generation_before,
        profile_dir / f"restart_{size}.prof" if profile_dir else None,
    )
    return {
        "size": size,
        "bindings": bound,
        "switches": switches_n,
        "probe_mns": probes_per_switch * switches_n,
        "phkts_learnt": learnt,
        "ba_status": {str(k): v for k, v in sorted(recorder.statuses.items())},
        "fill": {
            "elapsed_s": fill_s,
            "rate_per_s": bound / fill_s if fill_s > 0 else None,
            "chunks": chunks,
        },
        "memory": {
            "rss_empty_bytes": rss_empty,
            "rss_full_bytes": rss_full,
            "bytes_per_binding": (rss_full - rss_empty) / max(1, bound),
            "rss_after_restart_bytes": reconcile["rss_after_reconcile_bytes"],
            "bytes_per_binding_after_restart": (reconcile["rss_after_reconcile_bytes"] - rss_empty)
            / max(1, bound - removed),
            "store_bytes": store_size,
            "store_bytes_per_binding": store_size / max(1, bound),
        },
        "flows": {
            "base_flows_per_dar": statistics.median(base_flows.values()),
            "flows_per_dar": statistics.median(held.values()),
            "flows_per_binding": statistics.median(flows_per_binding.values()),
            "flow_mods_received_per_dar_fill": statistics.median(flow_mods_fill.values()),
            "unsupported_flow_mods": sum(
                (table.unsupported for table in tables.values()), Counter()
            ),
        },
        "per_bu": per_bu,
        "restart": reconcile | {"bindings_removed_while_down": removed},
    }


# ---------------------------------------------------------------- report


def goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    small, large = runs[0], runs[-1]

    def cpu(run: dict[str, Any]) -> float:
        value: float = run["per_bu"]["throughput_phkt"]["controller_cpu_ms_per_request"]
        return value

    def entry(measured: float | None, target: float) -> dict[str, Any]:
        return {
            "target": target,
            "measured": measured,
            "met": measured is not None and measured <= target,
        }

    return {
        "phkt_cpu_per_bu_largest_vs_smallest<=1.25": entry(
            cpu(large) / cpu(small) if cpu(small) else None, 1.25
        ),
        "bytes_per_binding_largest<=2048": entry(large["memory"]["bytes_per_binding"], 2048.0),
        "restart_to_reconciled_s_largest<=30": entry(
            large["restart"]["restart_to_reconciled_s"], 30.0
        ),
    }


def report(data: dict[str, Any]) -> str:
    lines = [
        f"{'bindings':>9} {'fill/s':>7} {'PHKT/s':>7} {'ms CPU/BU':>9} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'B/bind':>7} {'flows/DAR':>9} {'flows/bind':>10} {'restart s':>9}",
    ]
    for run in data["runs"]:
        tput, lat = run["per_bu"]["throughput_phkt"], run["per_bu"]["latency_phkt"]
        restart_s = run["restart"]["restart_to_reconciled_s"]
        lines.append(
            f"{run['bindings']:>9} {run['fill']['rate_per_s'] or 0:>7.0f}"
            f" {tput['rate_per_s']:>7.0f} {tput['controller_cpu_ms_per_request']:>9.3f}"
            f" {lat['p50_ms'] or 0:>7.2f} {lat['p99_ms'] or 0:>7.2f}"
            f" {run['memory']['bytes_per_binding']:>7.0f} {run['flows']['flows_per_dar']:>9.0f}"
            f" {run['flows']['flows_per_binding']:>10.2f}"
            f" {restart_s if restart_s is not None else float('nan'):>9.2f}"
        )
    lines.append("")
    for goal, entry in data["goals"].items():
        measured = entry["measured"]
        lines.append(
            f"goal {goal}: measured {measured:.2f} -> {'met' if entry['met'] else 'NOT met'}"
            if measured is not None
            else f"goal {goal}: not measured"
        )
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data["runs"]
    sizes = [run["bindings"] for run in runs]
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    cost, memory, restart_axis, fill_axis = axes.flat
    cost.plot(
        sizes,
        [r["per_bu"]["throughput_phkt"]["controller_cpu_ms_per_request"] for r in runs],
        "o-",
        label="controller CPU ms / PHKT BU",
    )
    cost.plot(sizes, [r["per_bu"]["latency_phkt"]["p50_ms"] for r in runs], "s-", label="p50 ms")
    cost.plot(sizes, [r["per_bu"]["latency_phkt"]["p99_ms"] for r in runs], "^-", label="p99 ms")
    cost.set(xscale="log", xlabel="bindings", ylabel="ms", title="Per-BU cost (PHKT)")
    cost.legend()
    memory.plot(sizes, [r["memory"]["bytes_per_binding"] for r in runs], "o-", label="filled")
    memory.plot(
        sizes,
        [r["memory"]["bytes_per_binding_after_restart"] for r in runs],
        "s-",
        label="after restart",
    )
    memory.axhline(2048, color="red", linestyle="--", label="goal 2 KB")
    memory.set(xscale="log", xlabel="bindings", ylabel="RSS bytes / binding", title="Memory")
    memory.legend()
    restart_axis.plot(
        sizes,
        [r["restart"]["restart_to_reconciled_s"] or float("nan") for r in runs],
        "o-",
    )
    restart_axis.axhline(30, color="red", linestyle="--", label="goal 30 s")
    restart_axis.set(
        xscale="log", yscale="log", xlabel="bindings", ylabel="s", title="Restart to reconciled"
    )
    restart_axis.legend()
    for run in runs:
        chunks = run["fill"]["chunks"]
        fill_axis.plot(
            [c["bindings_after"] for c in chunks],
            [c["rate_per_s"] for c in chunks],
            ".-",
            label=f"{run['bindings']} bindings",
        )
    fill_axis.set(
        xscale="log", xlabel="bindings held", ylabel="CGA BU/s", title="Fill rate (CGA BUs)"
    )
    fill_axis.legend()
    figure.suptitle(f"Binding scale, {data['config']['switches']} DARs on one controller")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the controller's code differed from it.

    ``None`` for both outside a git checkout (e.g. a ``git archive`` snapshot).
    """

    def git(*arguments: str) -> str | None:
        completed = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--", "fama_ryu", "openflow_pipelines")
    return {
        "commit": commit,
        "controller_code_uncommitted": bool(changed) if commit is not None else None,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every size in turn; the JSON is rewritten after each, so a long run keeps its results."""
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    data = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "code": code_version(),
        "config": {
            key: getattr(args, key)
            for key in (
                "sizes",
                "switches",
                "probes",
                "phkt_per_mn",
                "window",
                "rate",
                "latency_samples",
                "repeats",
                "chunk",
                "removed_per_dar",
                "smoke",
            )
        }
        | {"lifetime_s": LIFETIME_UNITS * 4},
        "runs": runs,
    }
    with tempfile.TemporaryDirectory(prefix="fama-scale-") as directory:
        for size in args.sizes:
            print(f"size {size}: filling ...", file=sys.stderr, flush=True)
            try:
                runs.append(await scale_run(args, size, Path(directory) / str(size)))
            except BaseException:
                for log in sorted(Path(directory, str(size)).glob("*/app.log")):
                    print(f"--- {log.parent.name}: {log.read_text()[-3000:]}", file=sys.stderr)
                raise
            data["goals"] = goals(runs)
            write_json(args.json, data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1000, 10000, 100000],
        help="binding counts, comma-separated (one fresh controller each)",
    )
    parser.add_argument("--switches", type=int, default=4, help="emulated switches (DARs)")
    parser.add_argument("--probes", type=int, default=1000, help="MNs of the PHKT probe set")
    parser.add_argument("--phkt-per-mn", type=int, default=2, help="PHKT BUs per probe MN")
    parser.add_argument("--window", type=int, default=16, help="outstanding BUs per switch")
    parser.add_argument("--rate", type=float, default=100.0, help="BU/s in latency mode")
    parser.add_argument("--latency-samples", type=int, default=300, help="per round")
    parser.add_argument("--repeats", type=int, default=3, help="probe rounds (medians)")
    parser.add_argument("--chunk", type=int, default=10000, help="CGA BUs per fill chunk")
    parser.add_argument(
        "--removed-per-dar",
        type=int,
        default=10,
        help="bindings ended while the controller is down",
    )
    parser.add_argument("--settle", type=float, default=1.0, help="s before reading RSS")
    parser.add_argument("--timeout", type=float, default=900.0, help="s per load run or restart")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_scale.json")
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG path (default: the JSON path with .png)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the controllers under cProfile (DIR/fill_N.prof, DIR/restart_N.prof);"
        " the first one is then stopped with SIGINT, not SIGKILL",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.switches, args.probes, args.phkt_per_mn = [8, 32], 2, 4, 2
        args.latency_samples, args.repeats, args.rate, args.chunk = 6, 1, 200.0, 12
        args.removed_per_dar, args.settle, args.timeout = 2, 0.3, 60.0
    if any(size < args.switches or size // args.switches > 0xFFFF for size in args.sizes):
        parser.error(f"each size must be {args.switches}..{0xFFFF * args.switches} (MNs per DAR)")
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a shell: SIGINT is ignored, and the
        # controllers would inherit that and never stop gracefully.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    data = asyncio.run(bench(args))
    plot_path = args.plot or args.json.with_suffix(".png")
    plot(data, plot_path)
    print(report(data))
    print(f"\nJSON: {args.json}\nplot: {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
