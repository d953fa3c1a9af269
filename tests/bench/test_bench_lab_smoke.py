"""The lab benchmarks' ``--smoke`` modes run end to end on a real lab.

``benchmarks/bench_e2e.py``, ``bench_handover.py`` and ``bench_tunnel.py``
each bring up a ``fama-lab`` lab (Open vSwitch userspace datapath, the real
controller, the real MN agent for the handover) under a random lab id, and
remove it.  No timing is asserted: only that every figure was measured, that
the protocol did what it must (BAs with status 0, bindings at the HDAR, the
kept flow back through the tunnel after every handover, GRE from the HDAR's
anchor, no packet-in caused by data) and that no lab is left behind.

Needs root, Open vSwitch and tcpdump; fails (does not skip) without.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fama_ryu.netlab import LabError, check_prerequisites, run_command

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def run_smoke(script: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Run ``SCRIPT --smoke`` on a lab of a random id; its JSON and stdout."""
    try:
        check_prerequisites(need_ovs=True)
        if shutil.which("tcpdump") is None:
            raise LabError("missing program: tcpdump")
    except LabError as exc:
        pytest.fail(f"the lab benchmarks need root, Open vSwitch, tcpdump: {exc}", pytrace=False)
    lab_id = f"b{secrets.token_hex(3)}"
    output = tmp_path / "out" / f"{script}.json"
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", "--lab-id", lab_id]
        + ["--json", str(output)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    leftovers = [
        line
        for line in run_command(["ip", "netns", "list"]).stdout.splitlines()
        if line.startswith(f"{lab_id}-")
    ]
    assert leftovers == [], f"lab {lab_id} left namespaces behind"
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert output.with_suffix(".png").stat().st_size > 0
    data = json.loads(output.read_text())
    assert data["config"]["smoke"] is True and data["config"]["lab_id"] == lab_id
    assert set(data["machine"]) >= {"python", "cpus"}
    return data, completed.stdout


def test_e2e_smoke_measures_bu_and_baseline(tmp_path: Path) -> None:
    data, stdout = run_smoke("bench_e2e", tmp_path)
    assert "PHKT BU" in stdout
    latency = data["summary"]["latency"]
    assert set(latency) == {"baseline_ns", "cga_bu", "phkt_bu"}
    for kind, entry in latency.items():
        assert entry["sent"] > 0 and entry["answered"] > 0, kind
        assert set(entry["median_of_rounds"]) == {"p50_ms", "p95_ms", "p99_ms"}, kind
        assert 0 < entry["median_of_rounds"]["p50_ms"] <= entry["median_of_rounds"]["p99_ms"]
    # Every answered BU was accepted; every emulated MN holds a binding at dar2.
    for kind in ("cga_bu", "phkt_bu"):
        assert set(latency[kind]["ba_status"]) == {"0"}, latency[kind]["ba_status"]
    assert data["bindings_at_end"] == data["config"]["mns"]
    dar2 = data["controller_counters_delta"]["dar2"]
    assert dar2["bu_results.accepted"] >= latency["cga_bu"]["answered"]
    assert data["controller_counters_delta"]["dar1"]["events.neighbor_solicitation"] > 0
    for kind in ("baseline_ns", "phkt_bu"):
        steps = data["raw"]["ramps"][kind]
        assert steps and all(s["sent"] > 0 for s in steps), kind
    assert set(data["summary"]["highest_rate_99"]) == {"baseline_ns", "phkt_bu"}
    assert set(data["ratios"]) >= {"phkt_bu_p50_ms_vs_ns", "phkt_highest_rate_vs_ns"}


def test_handover_smoke_times_every_handover(tmp_path: Path) -> None:
    data, stdout = run_smoke("bench_handover", tmp_path)
    assert "first kept-flow packet" in stdout
    handovers = data["raw"]["handovers"]
    counted = [h for h in handovers if not h["warmup"]]
    assert len(counted) == data["config"]["handovers"] == 3
    assert [h["to"] for h in handovers] == ["dar2", "dar3", "dar2", "dar3"]
    for handover in counted:
        # The RS, the new DAR's RA, the BU to dar1 and its BA, and the kept
        # flow back through the tunnel: all seen at the MN after the move.
        assert all(v is not None for v in handover["events_s"].values()), handover
        # Causality: the BA answers the BU, the tunnel follows the BU.
        events = handover["events_s"]
        assert events["ba"] > events["bu"] and events["first_packet"] > events["bu"], handover
    summary = data["summary"]
    for step in ("ra", "ba", "first_packet"):
        assert summary[step]["n"] == 3 and summary[step]["missing"] == 0, step
    assert set(summary["breakdown"]) == {
        "detect_rs",
        "rs_to_ra",
        "ra_to_bu",
        "bu_to_ba",
        "ba_to_first_packet",
    }
    assert set(summary["goal_first_packet_p99_ms<=100"]) == {"target", "measured", "met"}


def test_tunnel_smoke_compares_kept_and_native(tmp_path: Path) -> None:
    data, stdout = run_smoke("bench_tunnel", tmp_path)
    assert "kept/native" in stdout
    assert data["binding"]["ba_status"] == 0
    check = data["encapsulation_check"]
    assert check["gre_frames"] > 0
    assert check["outer_source_is_hdar_anchor_and_destination_coa"] is True
    assert check["inner_destination_is_hoa"] is True
    for size, entry in data["summary"].items():
        for kind in ("native", "kept"):
            assert entry[kind]["sent_pps"] > 0 and entry[kind]["received_pps"] > 0, (size, kind)
        assert entry["kept_vs_native"] > 0
    # Data packets, encapsulated or routed, never reach the controller.
    assert data["goals"]["data_packet_ins==0"]["met"] is True
    assert data["gre_port_counters_at_end"]["dar1"]["tx_pkts"] > 0
