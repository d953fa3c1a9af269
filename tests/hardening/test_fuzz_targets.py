"""The CI fuzzing run: each atheris target of fuzz/ for at least 200,000 executions.

``fuzz/run.py`` runs the target in its own process from the checked-in seed
corpus with a fixed libFuzzer seed, and reports crashes, uncaught
exceptions (anything but the documented rejections), per-input times over
100 ms (timed by fuzz/harness.py) and runs cut short.  Each test prints
executions, seconds, exec/s and the slowest input.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
CI_RUNS = 200_000
MAX_INPUT_MS = 100.0

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed"
)


def _runner() -> ModuleType:
    """fuzz/run.py as a module, loaded from its path (fuzz/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fuzz_run", FUZZ_DIR / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_run", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(900)
@pytest.mark.parametrize("target", ["mh_frame", "cga", "config", "rest"])
def test_target_survives_200k_executions(target: str, tmp_path: Path) -> None:
    result = _runner().run_target(
        target, CI_RUNS, MAX_INPUT_MS, seed=1, artifacts=tmp_path, verbose=False
    )
    print(
        f"{target}: {result.runs_done} execs in {result.seconds} s ({result.exec_per_s}/s), "
        f"slowest {result.slowest_ms} ms"
    )
    assert result.finding == "", (result.finding, result.artifacts)
    assert result.runs_done >= CI_RUNS
    assert result.slowest_ms < MAX_INPUT_MS
    assert result.artifacts == []


def test_runner_reports_an_uncaught_exception(tmp_path: Path) -> None:
    """The runner is no rubber stamp: a target that raises is a finding with its input saved."""
    target = tmp_path / "fuzz_raises.py"
    target.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(FUZZ_DIR)!r})\n"
        "import harness\n"
        "def one_input(data):\n"
        "    if data[:1] == b'!':\n"
        "        raise KeyError('planted')\n"
        "harness.fuzz(one_input)\n"
    )
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "bang").write_bytes(b"!")
    runner = _runner()
    result = runner.run_script(target, tmp_path / "seeds", 1000, MAX_INPUT_MS, 1, tmp_path / "out")
    assert result.finding.startswith("uncaught exception: KeyError"), result.finding
    assert len(result.artifacts) == 1
    assert Path(result.artifacts[0]).read_bytes().startswith(b"!")


def test_runner_reports_a_slow_input(tmp_path: Path) -> None:
    target = tmp_path / "fuzz_slow.py"
    target.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(FUZZ_DIR)!r})\n"
        "import harness\n"
        "def one_input(data):\n"
        "    if data[:1] == b'z':\n"
        "        time.sleep(0.15)\n"
        "harness.fuzz(one_input)\n"
    )
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "zzz").write_bytes(b"zzz")
    result = _runner().run_script(
        target, tmp_path / "seeds", 1000, MAX_INPUT_MS, 1, tmp_path / "out"
    )
    assert result.finding.startswith("uncaught exception: SlowInput"), result.finding
    assert result.slowest_ms >= 150
