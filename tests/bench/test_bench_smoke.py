"""``benchmarks/bench_controller.py --smoke`` runs end to end against the real controller.

It starts ``fama-controller`` twice (the FAMA app and the simple_switch_13
baseline) on free loopback ports, so it takes a few seconds.  No timing is
asserted: only that every kind of request was sent, answered and counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_controller.py"
FAMA_RUNS = [
    f"{mode}_{kind}" for mode in ("throughput", "latency") for kind in ("cga", "phkt", "dereg")
]
BASELINE_RUNS = ["throughput_packet_in", "latency_packet_in"]
RUN_KEYS = {
    "rate_per_s",
    "rates_per_s",
    "p50_ms",
    "p99_ms",
    "sent",
    "answered",
    "flow_mods_per_request",
    "packet_outs_per_request",
    "barriers_per_request",
}


def test_smoke_run_writes_a_complete_report(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "PHKT BU" in completed.stdout
    data = json.loads(output.read_text())
    assert set(data) >= {"machine", "config", "disk_sync", "fama", "baseline", "ratios", "goals"}
    assert 0 < data["disk_sync"]["p50_ms"] <= data["disk_sync"]["p99_ms"]
    assert output.with_suffix(".png").stat().st_size > 10_000
    assert data["config"]["smoke"] is True
    for name in FAMA_RUNS:
        run = data["fama"][name]
        assert set(run) >= RUN_KEYS, name
        assert run["sent"] > 0 and run["answered"] == run["sent"], name
        assert run["rate_per_s"] > 0 and run["p50_ms"] > 0, name
    # Every BU registers a binding: flow-mods, then one BA packet-out.
    for kind in ("cga", "phkt", "dereg"):
        run = data["fama"][f"throughput_{kind}"]
        assert run["flow_mods_per_request"] > 0 and run["packet_outs_per_request"] >= 1
    # All Binding Acks accepted (status 0): the generator's BUs are valid.
    assert set(data["fama"]["ba_status"]) == {"0"}
    assert data["fama"]["ba_status"]["0"] == sum(data["fama"][n]["sent"] for n in FAMA_RUNS)
    for name in BASELINE_RUNS:
        run = data["baseline"][name]
        assert set(run) >= RUN_KEYS, name
        assert run["sent"] > 0 and run["answered"] == run["sent"], name
    assert data["baseline"]["throughput_packet_in"]["flow_mods_per_request"] > 0
    for ratio in ("phkt_vs_baseline", "cga_vs_baseline", "dereg_vs_baseline"):
        assert data["ratios"][ratio] > 0
    assert set(data["goals"]) == {
        "phkt_rate_vs_baseline>=1.5",
        "cga_rate_vs_baseline>=1.0",
        "phkt_p99_ms<=5",
        "cga_p99_ms<=10",
    }
