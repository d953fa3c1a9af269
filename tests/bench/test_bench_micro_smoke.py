"""``benchmarks/bench_micro.py --smoke`` measures every figure and ratio.

Pure core, no controller: about a second.  No timing is asserted: only that
the report is complete, positive and consistent with the run's settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_micro.py"
SMOKE_SCALE = 1000
FIGURES = {
    "parse_first_bu",
    "parse_later_bu",
    "cga_verify_and_signature",
    "cga_public_key_load",
    "raw_rsa1024_verify",
    "phkt_authentication",
    "raw_hmac_sha1",
    "decision_cga_bu",
    "decision_phkt_bu",
    "decision_deregistration",
    f"decision_phkt_bu_{SMOKE_SCALE}_bindings",
    f"expiry_scan_{SMOKE_SCALE}_bindings",
}
RATIOS = {
    "cga_check_vs_raw_rsa_verify",
    "decision_cga_bu_vs_raw_rsa_verify",
    "phkt_check_vs_raw_hmac",
    "decision_phkt_bu_vs_raw_hmac",
    "parse_later_bu_vs_raw_hmac",
    f"decision_phkt_bu_{SMOKE_SCALE}_vs_empty",
}


def test_smoke_run_writes_a_complete_report(tmp_path: Path) -> None:
    output = tmp_path / "micro.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "raw_rsa1024_verify" in completed.stdout
    assert output.with_suffix(".png").stat().st_size > 0
    data = json.loads(output.read_text())
    assert set(data) >= {"machine", "config", "figures_us", "ratios", "cache_bytes_per_binding"}
    assert data["config"]["smoke"] is True
    assert set(data["figures_us"]) == FIGURES
    repeats = data["config"]["repeats"]
    for name, figure in data["figures_us"].items():
        assert len(figure["repeats"]) == repeats, name
        assert 0 < figure["min"] <= figure["median"] <= figure["max"], name
    assert set(data["ratios"]) == RATIOS
    assert all(ratio > 0 for ratio in data["ratios"].values())
    assert data["sec1_generation_ms"] > 0
    # A binding holds at least its four addresses and keys (16 bytes each).
    assert data["cache_bytes_per_binding"] > 64
