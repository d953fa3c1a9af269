"""``benchmarks/bench_scale.py --smoke`` runs end to end against the real controller.

Two tiny sizes, each on its own ``fama-controller`` (filled, killed, restarted
on the same store), so it takes some seconds.  No timing is asserted: only
that every binding was made, every figure is present and sane, and the
restart reconciled the emulated switches' flow tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_scale.py"
SMOKE_SIZES = [8, 32]
SMOKE_SWITCHES = 2
RUN_KEYS = {"rate_per_s", "p50_ms", "p99_ms", "sent", "answered", "controller_cpu_ms_per_request"}


def test_smoke_run_writes_a_complete_report(tmp_path: Path) -> None:
    output = tmp_path / "scale.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "restart s" in completed.stdout
    assert output.with_suffix(".png").stat().st_size > 0
    data = json.loads(output.read_text())
    assert set(data) >= {"machine", "code", "config", "runs", "goals"}
    assert data["config"]["smoke"] is True
    assert [run["size"] for run in data["runs"]] == SMOKE_SIZES
    for run in data["runs"]:
        size = run["size"]
        assert run["bindings"] == size, size
        # Every BU (fill, probes) was accepted: the generator's BUs are valid.
        assert set(run["ba_status"]) == {"0"}, size
        assert run["phkts_learnt"] == run["probe_mns"] > 0, size
        chunks = run["fill"]["chunks"]
        assert chunks[-1]["bindings_after"] == size
        assert all(c["answered"] == c["sent"] > 0 for c in chunks), size
        for name in ("throughput_phkt", "latency_phkt"):
            figures = run["per_bu"][name]
            assert set(figures) >= RUN_KEYS, (size, name)
            assert figures["answered"] == figures["sent"] > 0, (size, name)
            assert figures["rate_per_s"] > 0 and figures["p50_ms"] > 0, (size, name)
        memory = run["memory"]
        assert memory["rss_full_bytes"] > 0 and memory["rss_empty_bytes"] > 0
        assert memory["store_bytes"] > 0
        flows = run["flows"]
        # The pipeline, then three flows per binding (decap, encap, hairpin encap).
        assert flows["base_flows_per_dar"] > 0
        assert flows["flows_per_binding"] == 3.0
        assert flows["flows_per_dar"] == flows["base_flows_per_dar"] + 3 * size / SMOKE_SWITCHES
        assert flows["unsupported_flow_mods"] == {}
        restart = run["restart"]
        assert restart["reconciled"] is True, size
        assert restart["restart_to_reconciled_s"] > 0
        assert restart["bindings_removed_while_down"] > 0
        for dar in restart["per_dar"].values():
            # The removed bindings' flows went with the old generation.
            assert dar["flows_held"] == dar["expected_flows"] < flows["flows_per_dar"]
            assert dar["sweep_sent_s"] >= dar["first_flow_mod_s"] > dar["connected_s"]
    assert set(data["goals"]) == {
        "phkt_cpu_per_bu_largest_vs_smallest<=1.25",
        "bytes_per_binding_largest<=2048",
        "restart_to_reconciled_s_largest<=30",
    }
    # CPU time is counted in clock ticks: a smoke run's few BUs may show none.
    assert data["goals"]["bytes_per_binding_largest<=2048"]["measured"] is not None
    assert data["goals"]["restart_to_reconciled_s_largest<=30"]["measured"] is not None
