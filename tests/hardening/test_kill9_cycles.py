"""kill -9 of the controller at every crash point: nothing acknowledged is lost.

* A short run of ``benchmarks/kill9_cycles.py`` (real controller, emulated
  switches that keep their flows, 50 BU/s with replays): one cycle per
  injected point and one external SIGKILL; after every restart no
  acknowledged binding is lost, no deletion comes back, no replay is
  accepted and the switches' flows equal the store.
* The oracle of that run flags each kind of violation (so a clean run means
  something).
* Real OVS (integration): a 10 ms ping through an existing tunnel loses no
  packet while the controller is killed, externally and at each injected
  point, and restarted.

The long run (100 cycles) is the documented command in docs/hardening-crash.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "integration")]

import bench_controller  # noqa: E402
import kill9_cycles  # noqa: E402
import yaml  # noqa: E402
from kill9_cycles import Ledger, Node, SentBu, StoreView  # noqa: E402

from fama_ryu import config  # noqa: E402
from fama_ryu.crash_points import POINTS  # noqa: E402
from fama_ryu.dar import Dar  # noqa: E402


def test_a_crash_at_each_point_and_an_external_kill_lose_nothing(tmp_path: Path) -> None:
    kinds = [*sorted(POINTS), kill9_cycles.EXTERNAL]
    args = kill9_cycles.parse_args(
        [
            "--cycles",
            str(len(kinds)),
            "--points",
            ",".join(kinds),
            "--mns",
            "30",
            "--crash-probability",
            "0.05",
            "--reconcile-probability",
            "1.0",
            "--seed",
            "7",
        ]
    )
    data = asyncio.run(kill9_cycles.run_cycles(args, tmp_path))
    totals = data["totals"]
    print(kill9_cycles.report(data))
    fired = {record["kind"] for record in data["cycles"] if record["ended_by"] == "crash_point"}
    assert fired == set(POINTS), data["cycles"]
    assert totals["external_kills"].get(kill9_cycles.EXTERNAL) == 1
    assert totals["final_check"]
    assert totals["checks"] >= len(kinds)  # every start but the one that died reconciling
    assert totals["acknowledged"] > 0 and totals["replays_sent"] > 0
    assert totals["acknowledged_bindings_lost"] == 0
    assert totals["deletions_resurrected"] == 0
    assert totals["stored_bindings_not_sent"] == 0
    assert totals["replays_accepted"] == 0
    assert totals["flow_mismatches"] == 0
    assert totals["unexpected_count"] == 0, totals["unexpected"]


# ---------------------------------------------------------------- the oracle can fail

HOA = bytes.fromhex("20010db8000100000000000000000abc")
COA_1 = bytes.fromhex("20010db8f00100000000000000000001")
COA_2 = bytes.fromhex("20010db8f00100010000000000000001")


class _Mn:
    dpid = 1
    hoa = HOA


def _ledger(*bus: tuple[int, str, bytes, bool]) -> Ledger:
    ledger = Ledger()
    for sequence, kind, coa, acknowledged in bus:
        ledger.sent.setdefault(HOA, []).append(SentBu(1, HOA, sequence, kind, coa, b"", 1))
        if acknowledged:
            ledger.accepted[(HOA, sequence)] += 1
    return ledger


def _violations(ledger: Ledger, store: StoreView) -> dict[str, list[str]]:
    nodes = [Node(_Mn(), 0)]  # type: ignore[arg-type]  # only dpid and hoa are read
    return kill9_cycles.binding_violations(ledger, nodes, store)


def test_b_oracle_flags_a_lost_acknowledged_binding() -> None:
    ledger = _ledger((1, "cga", COA_1, True), (2, "phkt_move", COA_2, True))
    older = StoreView({("dar1", HOA): (COA_1, 1)}, {})
    assert _violations(ledger, older)["lost"]
    assert _violations(ledger, StoreView({}, {}))["lost"]
    assert not any(_violations(ledger, StoreView({("dar1", HOA): (COA_2, 2)}, {})).values())


def test_c_oracle_accepts_an_unacknowledged_later_deregistration_but_flags_resurrection() -> None:
    sent = _ledger((1, "cga", COA_1, True), (2, "dereg", COA_1, False))
    assert not any(_violations(sent, StoreView({}, {("dar1", HOA): 2})).values())
    acknowledged = _ledger((1, "cga", COA_1, True), (2, "dereg", COA_1, True))
    assert _violations(acknowledged, StoreView({("dar1", HOA): (COA_1, 1)}, {}))["resurrected"]
    forged = StoreView({("dar1", HOA): (COA_2, 3)}, {})
    assert _violations(acknowledged, forged)["not_sent"]


def test_d_flow_comparison_flags_missing_extra_and_changed_flows(tmp_path: Path) -> None:
    run = kill9_cycles
    domain_file = tmp_path / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(bench_controller.domain(1)))
    domain = config.load_domain(domain_file)
    pipeline = Dar(domain.dars[0], domain, os.urandom).resolve_ports(bench_controller.port_names(1))
    bound = [(HOA, COA_1)]
    expected = run.expected_table(pipeline, 5, bound)
    assert run.flow_differences(run.expected_table(pipeline, 5, bound), expected) == []
    assert run.flow_differences(run.expected_table(pipeline, 5, []), expected)  # missing
    assert run.flow_differences(expected, run.expected_table(pipeline, 5, []))  # extra
    moved = [(bound[0][0], COA_2)]
    assert run.flow_differences(run.expected_table(pipeline, 5, moved), expected)  # CoA
    assert run.flow_differences(run.expected_table(pipeline, 4, bound), expected)  # cookie


# ---------------------------------------------------------------- real OVS: ping while down


@pytest.fixture
def ovs_rig() -> Iterator[object]:
    import test_controller_ovs as lab_rig

    from fama_ryu.netlab import Lab, LabError

    lab_rig._require_lab_prerequisites()
    lab = Lab().open()
    try:
        rig = lab_rig.build_rig(lab)
    except BaseException:
        with contextlib.suppress(LabError):
            lab.close()
        raise
    try:
        yield rig
    finally:
        rig.stop_controller()
        lab.close()


@contextlib.contextmanager
def _armed(point: str | None) -> Iterator[None]:
    if point is None:
        yield
        return
    os.environ["FAMA_CRASH_POINTS"] = f"{point}:1"
    try:
        yield
    finally:
        del os.environ["FAMA_CRASH_POINTS"]


@pytest.mark.integration
def test_e_ping_through_a_tunnel_loses_nothing_while_the_controller_is_killed(
    ovs_rig: object,
) -> None:
    import test_controller_ovs as lab_rig

    from fama_ryu.netlab import wait_until

    rig = ovs_rig
    assert isinstance(rig, lab_rig.Rig)

    def start(point: str | None = None) -> None:
        with _armed(point):
            rig.start_controller()

    def wait_reconciled(old: int) -> int:
        (generation,) = wait_until(
            lambda: rig.generations_replacing(old) if rig.controller_connected() else set(),
            30.0,
            description="the switch to reconnect and drop the old flow generation",
        )
        return int(generation)

    def wait_dead() -> None:
        assert rig.controller is not None
        rig.controller.wait(timeout=30)
        assert rig.controller.returncode == -signal.SIGKILL, rig.controller_log()
        rig.lab_ns.stop(rig.controller)  # reaped: forget the record

    start()
    wait_until(rig.controller_connected, 30.0, description="dar1 to connect")
    mn1 = lab_rig.MobileNode.create()
    rig.first_registration(mn1, lab_rig.COA, "mn1")
    mn2 = lab_rig.MobileNode.create()
    (generation,) = rig.generations()
    cycles = []
    with rig.capture(rig.mnv, "eth0", "ip6 proto 47", "kill9.pcap") as cap:
        ping = rig.cn.popen(
            ["ping", "-6", "-n", "-q", "-i", "0.01", "-c", "20000", mn1.hoa],
            description="10 ms ping cn -> HoA",
        )
        try:

            def echo_requests() -> list[tuple[float, int]]:
                found = []
                for captured in cap.packets():
                    tunnel = lab_rig.gre_inner(captured.data)
                    if tunnel is None or tunnel[1].dst != mn1.hoa:
                        continue
                    echo = lab_rig.echo_of(tunnel[1])
                    if echo is not None and echo[0] == 128:
                        found.append((captured.timestamp, echo[2]))
                return found

            wait_until(lambda: len(echo_requests()) >= 20, 5.0, description="ping to flow")
            for point in ("external", "before_commit", "after_commit", "before_ba"):
                down_at = time.time()
                if point == "external":
                    rig.kill_controller()
                else:
                    start(point)
                    generation = wait_reconciled(generation)
                    down_at = time.time()
                    # A BU takes the armed controller to its crash point.
                    lab_rig.send_ipv6(rig.mnv, mn2.cga_bu(lab_rig.COA2))
                    wait_dead()
                cycles.append((point, down_at))
                time.sleep(0.5)  # down for a while with the ping running
            start("during_reconcile")  # dies after sending the new generation
            wait_dead()
            cycles.append(("during_reconcile", time.time()))
            start()
            generation = wait_reconciled(generation)
            back_at = time.time()
            wait_until(
                lambda: len([t for t, _ in echo_requests() if t > back_at + 0.2]) >= 30,
                5.0,
                description="tunnelled pings after the last restart",
            )
        finally:
            rig.cn.stop(ping)
    requests = echo_requests()
    sequences = [sequence for _, sequence in requests]
    missing = sorted(set(range(sequences[0], sequences[-1] + 1)) - set(sequences))
    gaps = [b - a for (a, _), (b, _) in zip(requests, requests[1:], strict=False)]
    first_down = cycles[0][1]
    print(
        f"\n{len(requests)} tunnelled echo requests over {requests[-1][0] - requests[0][0]:.1f} s,"
        f" {len([t for t, _ in requests if first_down <= t <= back_at])} with the controller"
        f" killed or restarting ({', '.join(point for point, _ in cycles)}),"
        f" missing {len(missing)}, largest gap {max(gaps) * 1000:.0f} ms"
    )
    assert missing == [], f"echo requests lost: {missing[:20]}"
    assert rig.bindings().get(mn1.hoa) == lab_rig.COA
    assert [line for line in rig.binding_flows(mn1.hoa) if f"tun_ipv6_src={lab_rig.COA}" in line]
    assert rig.generations() == {generation}
