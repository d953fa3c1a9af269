"""kill -9 cycles of the real controller under Binding Update load: nothing acknowledged is lost.

One command runs ``fama-controller fama_ryu.app`` again and again on one
SQLite store (free loopback ports, temporary domain file, see
:mod:`bench_controller`), against S emulated OpenFlow 1.3 switches that keep
the flows they are sent (:class:`bench_scale.FlowTableSwitch`): their tables
outlive every controller, as an Open vSwitch bridge's do with
``fail_mode=secure``.  Each cycle:

1. starts the controller, armed through ``FAMA_CRASH_POINTS`` with the
   cycle's crash point (:mod:`fama_ryu.crash_points`), or unarmed for an
   external kill;
2. waits for every switch to be reconciled: the deletes of other flow
   generations came and every FAMA flow the switch holds carries one
   generation, newer than any it held before;
3. checks the invariants below against every Binding Ack received so far;
4. runs a BU load at ``--rate`` BU/s from M emulated mobile nodes: first CGA
   BUs (RSA-1024), PHKT BUs moving to a new CoA or refreshing the same one,
   PHKT deregistrations, and byte-for-byte replays of BUs acknowledged in
   any earlier cycle;
5. ends with the controller's death: the armed point fires (the process
   SIGKILLs itself) or this program sends SIGKILL at a random moment (every
   external cycle; an injected cycle whose point has not fired within
   ``--max-load-s``).

A last, unarmed start checks after the last kill.  Crash points:
``before_commit`` (decided, nothing persisted), ``after_commit`` (persisted,
no flow-mod sent, no BA), ``before_ba`` (flows acknowledged by the switch's
barrier, BA not sent), ``during_reconcile`` (a reconnected switch was sent the
new flow generation and the deletes of the others, nothing else yet).  "After the BA, before the
flow-mods" does not exist: the BA only leaves once the barrier after the
binding's flow-mods is answered (P12).

Invariants (an MN's *acknowledged* state is its BU with the highest
sequence number answered with BA status < 128):

* no acknowledged binding lost: the store holds the MN's binding with that
  BU's CoA or a later one the MN sent (sequence >= the acknowledged one), or
  a tombstone of a later deregistration the MN sent;
* no deletion resurrected: after an acknowledged deregistration the store
  holds no binding unless the MN sent a newer registration;
* no replay accepted: no (HoA, sequence) is ever acknowledged twice (each
  BU goes out once; only replays repeat a sequence number);
* every stored binding comes from a BU the MN sent (sequence and CoA);
* flows equal the store: each switch's FAMA flows are exactly the pipeline
  plus, per stored binding, its encap/decap flows (built with
  :mod:`openflow_pipelines.dar_flows` from the stored HoA and CoA), same
  table, priority, match, cookie, flags and instructions; hard timeouts
  (the remaining lifetime) are not compared.

Prints a table, writes JSON::

    .venv/bin/python benchmarks/kill9_cycles.py --cycles 100 --rate 50 --seed 1
    .venv/bin/python benchmarks/kill9_cycles.py --cycles 5 \\
        --points before_commit,after_commit,before_ba,during_reconcile,external

Exit status 1 when an invariant was violated (the work directory with every
controller log is then kept and named).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_controller import (  # noqa: E402
    CORE_PORT,
    HOST,
    Mn,
    controller,
    make_mns,
    port_names,
)
from bench_scale import LIFETIME_UNITS, Flow, FlowTable, FlowTableSwitch  # noqa: E402
from ofload import Request, ba_keys, ba_status  # noqa: E402

from fama_ryu import config  # noqa: E402
from fama_ryu.crash_points import POINTS  # noqa: E402
from fama_ryu.dar import Dar  # noqa: E402
from openflow_pipelines import dar_flows, wire  # noqa: E402
from openflow_pipelines.model import FlowMod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = "external"
KINDS = (*sorted(POINTS), EXTERNAL)
ACCEPTED_BELOW = 128  # BA status < 128: the BU was accepted (RFC 6275 §6.1.8)
ANSWER_TIMEOUT_S = 2.0
START_TIMEOUT_S = 30.0
RECONCILE_TIMEOUT_S = 15.0
POLL_S = 0.02


# ---------------------------------------------------------------- what was sent and answered


@dataclass
class SentBu:
    """One BU as sent; ``status`` is the BA's, None while (or if never) answered."""

    dpid: int
    hoa: bytes
    sequence: int
    kind: str  # cga, phkt_move, phkt_refresh, dereg, replay
    coa: bytes
    frame: bytes
    start: int
    status: int | None = None

    @property
    def registration(self) -> bool:
        return self.kind != "dereg"


@dataclass
class Node:
    """An emulated MN and what it believes about its binding."""

    mn: Mn
    index: int
    moves: int = 0
    waiting: SentBu | None = None
    waiting_since: float = 0.0


@dataclass
class Ledger:
    """Every BU sent and every Binding Ack received, over all controller starts."""

    sent: dict[bytes, list[SentBu]] = field(default_factory=dict)  # per HoA, replays excluded
    accepted: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    acknowledged: list[SentBu] = field(default_factory=list)  # candidates for replays
    statuses: Counter[int] = field(default_factory=Counter)
    kinds_sent: Counter[str] = field(default_factory=Counter)
    replay_outcomes: Counter[str] = field(default_factory=Counter)
    replays_accepted: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


# ---------------------------------------------------------------- the oracle


@dataclass
class StoreView:
    """The store's bindings and tombstones, read with plain SQL (read-only)."""

    bindings: dict[tuple[str, bytes], tuple[bytes, int]]  # (dar, hoa) -> (coa, sequence)
    tombstones: dict[tuple[str, bytes], int]  # (dar, hoa) -> sequence


def read_store(path: Path) -> StoreView:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bindings = {
            (dar, bytes(hoa)): (bytes(coa), sequence)
            for dar, hoa, coa, sequence in connection.execute(
                "SELECT dar, hoa, coa, sequence FROM bindings"
            )
        }
        tombstones = {
            (dar, bytes(hoa)): sequence
            for dar, hoa, sequence in connection.execute(
                "SELECT dar, hoa, sequence FROM tombstones"
            )
        }
    finally:
        connection.close()
    return StoreView(bindings, tombstones)


def binding_violations(ledger: Ledger, nodes: list[Node], store: StoreView) -> dict[str, list[str]]:
    """Lost acknowledged bindings, resurrected deletions, stored bindings nobody sent."""
    found: dict[str, list[str]] = {"lost": [], "resurrected": [], "not_sent": []}
    for node in nodes:
        mn = node.mn
        sent = ledger.sent.get(mn.hoa, [])
        acked = [bu for bu in sent if ledger.accepted[(mn.hoa, bu.sequence)]]
        last = max(acked, key=lambda bu: bu.sequence) if acked else None
        key = (f"dar{mn.dpid}", mn.hoa)
        stored = store.bindings.get(key)
        name = f"dar{mn.dpid} {text(mn.hoa)}"
        if stored is not None:
            coa, sequence = stored
            if not any(
                bu.registration and bu.sequence == sequence and bu.coa == coa for bu in sent
            ):
                found["not_sent"].append(f"{name}: stored seq {sequence} CoA {text(coa)}")
            if last is not None and sequence < last.sequence:
                label = "lost" if last.registration else "resurrected"
                found[label].append(
                    f"{name}: stored seq {sequence}, acknowledged {last.kind} seq {last.sequence}"
                )
            elif last is not None and sequence == last.sequence and not last.registration:
                found["resurrected"].append(f"{name}: binding seq {sequence} after its dereg")
        elif last is not None and last.registration:
            tombstone = store.tombstones.get(key)
            later_dereg = tombstone is not None and any(
                not bu.registration and bu.sequence == tombstone for bu in sent
            )
            if not (later_dereg and tombstone is not None and tombstone > last.sequence):
                found["lost"].append(
                    f"{name}: acknowledged {last.kind} seq {last.sequence} CoA {text(last.coa)},"
                    f" store has no binding (tombstone seq {tombstone})"
                )
    return found


def expected_table(
    pipeline: Any, generation: int, bindings: list[tuple[bytes, bytes]]
) -> FlowTable:
    """The flows a switch must hold: the pipeline plus every stored binding's."""
    table = FlowTable()
    steps: list[Any] = list(dar_flows.base_flows(pipeline, generation))
    for hoa, coa in bindings:
        steps += dar_flows.install_binding(pipeline, text(hoa), text(coa), generation, 3600.0)
    for step in steps:
        if isinstance(step, FlowMod):
            table.apply(wire.encode_flow_mod(step, 0))
    return table


def flow_differences(actual: FlowTable, expected: FlowTable) -> list[str]:
    """What differs between two tables (hard timeouts aside); [] when equal."""
    missing = expected.flows.keys() - actual.flows.keys()
    extra = actual.flows.keys() - expected.flows.keys()

    def compared(flow: Flow) -> tuple[int, int, bytes]:
        return flow.cookie, flow.flags, flow.instructions

    changed = [
        key
        for key in expected.flows.keys() & actual.flows.keys()
        if compared(actual.flows[key]) != compared(expected.flows[key])
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", extra), ("different", changed)):
        if keys:
            sample = sorted(keys)[:3]
            problems.append(
                f"{len(keys)} {label} flow(s), e.g. "
                + "; ".join(f"table {t} prio {p} match {m.hex()}" for t, p, m in sample)
            )
    return problems


# ---------------------------------------------------------------- the run


@contextlib.contextmanager
def crash_environment(points: dict[str, float], seed: int) -> Iterator[None]:
    """``FAMA_CRASH_POINTS``/``FAMA_CRASH_SEED`` for a child started in this block."""
    saved = {name: os.environ.get(name) for name in ("FAMA_CRASH_POINTS", "FAMA_CRASH_SEED")}
    os.environ["FAMA_CRASH_POINTS"] = ",".join(f"{k}:{v}" for k, v in points.items())
    os.environ["FAMA_CRASH_SEED"] = str(seed)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class CycleRecord:
    """One controller start and how it ended."""

    cycle: int
    kind: str
    armed: dict[str, float]
    reconciled: bool = False
    reconcile_s: float | None = None
    generations: dict[str, int] = field(default_factory=dict)
    checked: bool = False
    violations: dict[str, list[str]] = field(default_factory=dict)
    load_s: float = 0.0
    bus_sent: int = 0
    bas_received: int = 0
    ended_by: str = ""  # crash_point, external_kill, exit_<code>, stopped
    bindings_in_store: int = 0


class Run:
    """The controller starts of one run, their switches' flow tables and the ledger."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.store_dir = workdir / "store"
        self.store_dir.mkdir()
        self.store_path = self.store_dir / "bindings.sqlite"
        self.rng = random.Random(args.seed)
        self.dpids = list(range(1, args.switches + 1))
        self.tables = {dpid: FlowTable() for dpid in self.dpids}
        self.ledger = Ledger()
        mns = make_mns(args.switches, args.mns, seed=args.seed, lifetime_units=LIFETIME_UNITS)
        self.nodes = [Node(mn, index) for group in mns.values() for index, mn in enumerate(group)]
        self.by_hoa = {node.mn.hoa: node for node in self.nodes}
        self.start_index = 0
        self.bas_this_start = 0
        self.pipelines: dict[int, Any] = {}

    # ------------------------------------------------------------ BAs

    def on_packet_out(self, dpid: int, frame: bytes) -> list[Any]:
        """Every packet-out of every switch: record Binding Acks, update the MN."""
        keys = ba_keys(frame)
        status = ba_status(frame) if keys else None
        if status is None:
            return []
        hoa = next((address for address, _ in keys if address in self.by_hoa), None)
        if hoa is None:
            self.ledger.unexpected.append(f"BA to an unknown address on dpid {dpid}")
            return []
        sequence = keys[0][1]
        ledger = self.ledger
        ledger.statuses[status] += 1
        self.bas_this_start += 1
        node = self.by_hoa[hoa]
        waiting = node.waiting
        node.waiting = None
        if status < ACCEPTED_BELOW:
            ledger.accepted[(hoa, sequence)] += 1
            if ledger.accepted[(hoa, sequence)] > 1:
                ledger.replays_accepted.append(
                    f"dar{dpid} {text(hoa)} seq {sequence} acknowledged"
                    f" {ledger.accepted[(hoa, sequence)]} times (start {self.start_index})"
                )
        if waiting is None:
            return []
        if waiting.kind == "replay":
            outcome = "accepted" if status < ACCEPTED_BELOW else f"status_{status}"
            ledger.replay_outcomes[outcome] += 1
            return []
        waiting.status = status
        if status >= ACCEPTED_BELOW or sequence != waiting.sequence:
            ledger.unexpected.append(
                f"{text(hoa)} {waiting.kind} seq {waiting.sequence}: BA status {status}"
                f" seq {sequence}"
            )
            node.mn.phkt = None  # start over with a CGA BU
            return []
        ledger.acknowledged.append(waiting)
        if waiting.kind == "dereg":
            node.mn.phkt = None  # P11: the PHKT went with the binding
        elif waiting.kind == "cga":
            node.mn.learn(frame)
        return []

    # ------------------------------------------------------------ BUs

    def new_coa(self, node: Node) -> bytes:
        node.moves += 1
        group = node.moves % 0xFFFF
        address = f"2001:db8:f{node.mn.dpid:03x}:{group:x}::{node.index + 1:x}"
        return ipaddress.IPv6Address(address).packed

    def next_bu(self, node: Node) -> SentBu:
        """The MN's next BU: a CGA BU when it knows no PHKT, else a PHKT move/refresh/dereg."""
        mn = node.mn
        if mn.phkt is None:
            kind = "cga"
            mn.coa = self.new_coa(node)
            request = mn.cga_bu()
        else:
            draw = self.rng.random()
            if draw < 0.5:
                kind = "phkt_move"
                mn.coa = self.new_coa(node)
                request = mn.phkt_bu()
            elif draw < 0.75:
                kind = "phkt_refresh"
                request = mn.phkt_bu()
            else:
                kind = "dereg"
                request = mn.deregistration()
        return SentBu(mn.dpid, mn.hoa, mn.sequence, kind, mn.coa, request.frame, self.start_index)

    def replay(self) -> tuple[Node, SentBu] | None:
        """An acknowledged BU, byte for byte, of an MN with nothing outstanding."""
        acknowledged = self.ledger.acknowledged
        original = acknowledged[int(self.rng.random() * len(acknowledged))]
        node = self.by_hoa[original.hoa]
        if node.waiting is not None:
            return None
        return node, SentBu(
            original.dpid,
            original.hoa,
            original.sequence,
            "replay",
            original.coa,
            original.frame,
            self.start_index,
        )

    def pick(self) -> tuple[Node, SentBu] | None:
        if self.ledger.acknowledged and self.rng.random() < self.args.replay_share:
            chosen = self.replay()
            if chosen is not None:
                return chosen
        idle = [node for node in self.nodes if node.waiting is None]
        if not idle:
            return None
        node = idle[int(self.rng.random() * len(idle))]
        return node, self.next_bu(node)

    def give_up_waiting(self, now: float, everyone: bool = False) -> None:
        """BUs unanswered for too long (or whose controller died): the MN starts over."""
        for node in self.nodes:
            if node.waiting is not None and (
                everyone or now - node.waiting_since > ANSWER_TIMEOUT_S
            ):
                if node.waiting.kind == "replay":
                    self.ledger.replay_outcomes["no_answer"] += 1
                node.waiting = None
                node.mn.phkt = None

    async def load(
        self,
        switches: dict[int, FlowTableSwitch],
        process: subprocess.Popen[bytes],
        until: float,
        record: CycleRecord,
    ) -> None:
        """Paced BUs until ``until`` or the controller's death."""
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while time.monotonic() < until and process.poll() is None:
            now = time.monotonic()
            self.give_up_waiting(now)
            chosen = self.pick()
            if chosen is not None:
                node, bu = chosen
                if bu.kind != "replay":
                    self.ledger.sent.setdefault(bu.hoa, []).append(bu)
                self.ledger.kinds_sent[bu.kind] += 1
                node.waiting, node.waiting_since = bu, now
                switches[bu.dpid].send(Request(CORE_PORT, bu.frame, []))
                record.bus_sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # ------------------------------------------------------------ one start

    def pipeline(self, dpid: int, workdir: Path) -> Any:
        if dpid not in self.pipelines:
            domain = config.load_domain(workdir / "domain.yaml")
            dar_config = next(dar for dar in domain.dars if dar.dpid == dpid)
            dar = Dar(dar_config, domain, os.urandom)
            self.pipelines[dpid] = dar.resolve_ports(port_names(dpid))
        return self.pipelines[dpid]

    def check(self, workdir: Path, record: CycleRecord) -> None:
        store = read_store(self.store_path)
        record.bindings_in_store = len(store.bindings)
        violations = binding_violations(self.ledger, self.nodes, store)
        violations["flows_differ"] = []
        for dpid in self.dpids:
            dar = f"dar{dpid}"
            bound = [
                (hoa, coa)
                for (name, hoa), (coa, _) in sorted(store.bindings.items())
                if name == dar
            ]
            generation = record.generations[dar]
            expected = expected_table(self.pipeline(dpid, workdir), generation, bound)
            for problem in flow_differences(self.tables[dpid], expected):
                violations["flows_differ"].append(f"{dar}: {problem}")
        record.violations = {name: found for name, found in violations.items() if found}
        record.checked = True

    def reconciled_generation(self, dpid: int, before: int) -> int | None:
        generations = [g for g, count in self.tables[dpid].generations.items() if count > 0]
        if len(generations) == 1 and generations[0] > before:
            return generations[0]
        return None

    async def connect(
        self, port: int, process: subprocess.Popen[bytes], switches: dict[int, FlowTableSwitch]
    ) -> bool:
        """Connect every switch; False if the controller died first."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + START_TIMEOUT_S
        for switch in switches.values():
            while True:
                if process.poll() is not None:
                    return False
                try:
                    await loop.create_connection(functools.partial(lambda s: s, switch), HOST, port)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        return True

    async def reconcile(
        self,
        process: subprocess.Popen[bytes],
        switches: dict[int, FlowTableSwitch],
        before: dict[int, int],
        record: CycleRecord,
    ) -> bool:
        started = time.monotonic()
        while time.monotonic() - started < RECONCILE_TIMEOUT_S:
            if process.poll() is not None:
                return False
            done = {
                dpid: generation
                for dpid in self.dpids
                if switches[dpid].ready.is_set()
                and (generation := self.reconciled_generation(dpid, before[dpid])) is not None
            }
            if len(done) == len(self.dpids):
                record.reconciled = True
                record.reconcile_s = time.monotonic() - started
                record.generations = {f"dar{dpid}": g for dpid, g in done.items()}
                return True
            await asyncio.sleep(POLL_S)
        return False

    def ending(
        self, process: subprocess.Popen[bytes], killed_by_us: bool, kind: str, workdir: Path
    ) -> str:
        returncode = process.poll()
        if kind == "final":
            return "stopped"
        if returncode == -signal.SIGKILL:
            return "external_kill" if killed_by_us else "crash_point"
        log = workdir / "app.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.ledger.unexpected.append(f"start {self.start_index} ended {returncode}: {tail}")
        return f"exit_{returncode}"

    async def one_start(self, cycle: int, kind: str, armed: dict[str, float]) -> CycleRecord:
        record = CycleRecord(cycle, kind, armed)
        self.start_index += 1
        self.bas_this_start = 0
        workdir = self.workdir / f"start-{self.start_index:03d}"
        workdir.mkdir()
        before = {
            dpid: max((g for g, n in self.tables[dpid].generations.items() if n > 0), default=0)
            for dpid in self.dpids
        }
        switches = {
            dpid: FlowTableSwitch(
                dpid, port_names(dpid), self.on_packet_out, table=self.tables[dpid]
            )
            for dpid in self.dpids
        }
        killed_by_us = False
        with contextlib.ExitStack() as stack:
            with crash_environment(armed, self.args.seed * 1000 + self.start_index):
                port, process = stack.enter_context(
                    controller("fama_ryu.app", workdir, len(self.dpids), self.store_dir)
                )
            try:
                if await self.connect(port, process, switches) and await self.reconcile(
                    process, switches, before, record
                ):
                    self.check(workdir, record)
                    if kind != "final":
                        load_s = self.args.max_load_s
                        if kind == EXTERNAL:
                            load_s = self.rng.uniform(self.args.min_load_s, self.args.max_load_s)
                        started = time.monotonic()
                        await self.load(switches, process, started + load_s, record)
                        record.load_s = time.monotonic() - started
                if process.poll() is None and kind != "final":
                    os.kill(process.pid, signal.SIGKILL)
                    killed_by_us = True
                    process.wait(10)
            finally:
                for switch in switches.values():
                    switch.close()
                record.ended_by = self.ending(process, killed_by_us, kind, workdir)
        await asyncio.sleep(0.05)  # let the closed connections' callbacks run
        self.give_up_waiting(time.monotonic(), everyone=True)
        record.bas_received = self.bas_this_start
        return record


def arming(kind: str, args: argparse.Namespace) -> dict[str, float]:
    if kind == EXTERNAL or kind == "final":
        return {}
    if kind == "during_reconcile":
        return {kind: args.reconcile_probability}
    return {kind: args.crash_probability}


def cycle_kinds(points: list[str], cycles: int, rng: random.Random) -> list[str]:
    """Every kind equally often (shuffled in rounds), ``cycles`` in all."""
    kinds: list[str] = []
    while len(kinds) < cycles:
        round_ = list(points)
        rng.shuffle(round_)
        kinds += round_
    return kinds[:cycles]


async def run_cycles(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    run = Run(args, workdir)
    records = []
    started = time.monotonic()
    for cycle, kind in enumerate(cycle_kinds(args.points, args.cycles, run.rng), 1):
        record = await run.one_start(cycle, kind, arming(kind, args))
        records.append(record)
        if args.verbose:
            print(
                f"cycle {cycle:3d} {kind:<16} reconciled={record.reconciled}"
                f" checked={record.checked} sent={record.bus_sent} BAs={record.bas_received}"
                f" ended_by={record.ended_by}"
                f" violations={sum(map(len, record.violations.values()))}",
                flush=True,
            )
    records.append(await run.one_start(args.cycles + 1, "final", {}))
    elapsed = time.monotonic() - started
    ledger = run.ledger
    totals = {
        "cycles": args.cycles,
        "elapsed_s": elapsed,
        "checks": sum(r.checked for r in records),
        "final_check": records[-1].checked,
        "crash_points_fired": Counter(r.kind for r in records if r.ended_by == "crash_point"),
        "external_kills": Counter(r.kind for r in records if r.ended_by == "external_kill"),
        "other_endings": [
            f"{r.cycle}:{r.ended_by}"
            for r in records[:-1]
            if r.ended_by not in ("crash_point", "external_kill")
        ],
        "bus_sent": dict(ledger.kinds_sent),
        "ba_status": {str(k): v for k, v in sorted(ledger.statuses.items())},
        "acknowledged": len(ledger.acknowledged),
        "replays_sent": ledger.kinds_sent["replay"],
        "replay_outcomes": dict(ledger.replay_outcomes),
        "acknowledged_bindings_lost": sum(len(r.violations.get("lost", [])) for r in records),
        "deletions_resurrected": sum(len(r.violations.get("resurrected", [])) for r in records),
        "stored_bindings_not_sent": sum(len(r.violations.get("not_sent", [])) for r in records),
        "replays_accepted": len(ledger.replays_accepted),
        "flow_mismatches": sum(len(r.violations.get("flows_differ", [])) for r in records),
        "unexpected": ledger.unexpected[:20],
        "unexpected_count": len(ledger.unexpected),
        "replays_accepted_detail": ledger.replays_accepted[:20],
        "load_s": sum(r.load_s for r in records),
    }
    return {"totals": totals, "cycles": [asdict(r) for r in records]}


def violations_total(totals: dict[str, Any]) -> int:
    return (
        totals["acknowledged_bindings_lost"]
        + totals["deletions_resurrected"]
        + totals["stored_bindings_not_sent"]
        + totals["replays_accepted"]
        + totals["flow_mismatches"]
    )


def report(data: dict[str, Any]) -> str:
    totals = data["totals"]
    by_kind: dict[str, Counter[str]] = {}
    for record in data["cycles"]:
        row = by_kind.setdefault(record["kind"], Counter())
        row["cycles"] += 1
        row[record["ended_by"]] += 1
        row["checked"] += record["checked"]
        row["sent"] += record["bus_sent"]
        row["bas"] += record["bas_received"]
        row["violations"] += sum(len(v) for v in record["violations"].values())
    lines = [
        f"{'kind':<17} {'cycles':>6} {'point':>6} {'kill':>5} {'checks':>6}"
        f" {'BUs':>6} {'BAs':>6} {'viol.':>5}"
    ]
    for kind, row in sorted(by_kind.items()):
        lines.append(
            f"{kind:<17} {row['cycles']:>6} {row['crash_point']:>6} {row['external_kill']:>5}"
            f" {row['checked']:>6} {row['sent']:>6} {row['bas']:>6} {row['violations']:>5}"
        )
    lines += [
        "",
        f"BUs sent {totals['bus_sent']}, BA status {totals['ba_status']},"
        f" replays {totals['replays_sent']} -> {totals['replay_outcomes']}",
        f"acknowledged bindings lost {totals['acknowledged_bindings_lost']},"
        f" deletions resurrected {totals['deletions_resurrected']},"
        f" replays accepted {totals['replays_accepted']},"
        f" flow/store mismatches {totals['flow_mismatches']},"
        f" stored bindings nobody sent {totals['stored_bindings_not_sent']}",
        f"checks {totals['checks']} (final {'done' if totals['final_check'] else 'NOT done'}),"
        f" unexpected answers {totals['unexpected_count']}, {totals['elapsed_s']:.0f} s",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="BU/s during the load")
    parser.add_argument(
        "--points",
        default=",".join(KINDS),
        help=f"kill kinds to cycle through, comma-separated (of {', '.join(KINDS)})",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--switches", type=int, default=2, help="emulated switches (DARs)")
    parser.add_argument("--mns", type=int, default=100, help="mobile nodes per switch")
    parser.add_argument("--replay-share", type=float, default=0.1, help="share of replayed BUs")
    parser.add_argument(
        "--crash-probability",
        type=float,
        default=0.02,
        help="per passage of before_commit/after_commit/before_ba (one passage per batch)",
    )
    parser.add_argument(
        "--reconcile-probability",
        type=float,
        default=0.5,
        help="per switch connection, for during_reconcile",
    )
    parser.add_argument("--min-load-s", type=float, default=0.3, help="external kill: earliest")
    parser.add_argument("--max-load-s", type=float, default=4.0, help="load before a forced kill")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "kill9_cycles.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="one line per cycle")
    args = parser.parse_args(argv)
    args.points = [point.strip() for point in args.points.split(",") if point.strip()]
    unknown = set(args.points) - set(KINDS)
    if unknown or not args.points:
        parser.error(f"unknown kill kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="fama-kill9-"))
    data = asyncio.run(run_cycles(args, workdir))
    data["config"] = {
        key: value for key, value in vars(args).items() if key not in ("json", "keep", "verbose")
    }
    data["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    failed = violations_total(data["totals"]) > 0 or not data["totals"]["final_check"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(report(data))
    print(f"\nJSON: {args.json}")
    if failed or args.keep:
        print(f"work directory (controller logs, store): {workdir}")
    else:
        shutil.rmtree(workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
