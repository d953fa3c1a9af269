"""Run one fuzz target (or all) for N executions and judge the run.

    python fuzz/run.py --target mh_frame --runs 200000
    python fuzz/run.py --target all --runs 200000 --json

Each target runs in its own process under atheris (libFuzzer), seeded
from ``fuzz/corpus/<target>/``; new inputs go to a scratch corpus that is
removed afterwards, so the checked-in seeds never change.  A run fails on
a crash, an uncaught exception (anything but the target's documented
rejections), an input slower than ``--max-ms`` (timed per call by
``fuzz/harness.py``) or a process that ends before ``--runs`` executions.
Crash and slow inputs are saved under ``--artifacts``.  The summary gives
executions, seconds, exec/s and the slowest input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
TARGETS = ("mh_frame", "cga", "config", "rest")
# libFuzzer's -max_len: the largest input worth mutating per target.
MAX_LEN = {"mh_frame": 1600, "cga": 1200, "config": 1024, "rest": 2048}
HANG_TIMEOUT_S = 10  # libFuzzer's own whole-second timeout, a backstop for hangs
SLOWEST_SHOWN = 64  # hex bytes of the slowest input in the text summary


@dataclass
class Result:
    target: str
    runs_asked: int
    runs_done: int
    seconds: float
    exec_per_s: float
    slowest_ms: float
    slowest_input_len: int
    slowest_input_hex: str
    max_ms: float
    returncode: int
    finding: str
    artifacts: list[str]

    @property
    def ok(self) -> bool:
        return not self.finding


def _finding(returncode: int, output: str, runs_asked: int, runs_done: int) -> str:
    if "=== Uncaught Python exception: ===" in output:
        block = output.split("=== Uncaught Python exception: ===", 1)[1].strip().splitlines()
        return "uncaught exception: " + (block[0] if block else "?")
    for marker in ("ERROR: libFuzzer: timeout", "ERROR: libFuzzer: out-of-memory", "==ERROR"):
        if marker in output:
            return marker.strip("=")
    if returncode != 0:
        return f"fuzzer exited with status {returncode}"
    if runs_done < runs_asked:
        return f"only {runs_done} of {runs_asked} executions"
    return ""


def run_target(
    target: str, runs: int, max_ms: float, seed: int, artifacts: Path, verbose: bool = False
) -> Result:
    """Run ``fuzz/fuzz_<target>.py`` from its seed corpus."""
    if target not in TARGETS:
        raise SystemExit(f"unknown target {target!r}; choose from {', '.join(TARGETS)} or all")
    return run_script(
        FUZZ_DIR / f"fuzz_{target}.py",
        FUZZ_DIR / "corpus" / target,
        runs,
        max_ms,
        seed,
        artifacts,
        name=target,
        max_len=MAX_LEN[target],
        verbose=verbose,
    )


def run_script(
    script: Path,
    seeds: Path,
    runs: int,
    max_ms: float,
    seed: int,
    artifacts: Path,
    *,
    name: str | None = None,
    max_len: int = 4096,
    verbose: bool = False,
) -> Result:
    """Run one harness-based target script under libFuzzer flags and judge the run."""
    target = name or script.stem
    memory_fs = "/dev/shm" if Path("/dev/shm").is_dir() else None
    scratch = Path(tempfile.mkdtemp(prefix=f"fama-fuzz-{target}-", dir=memory_fs))
    try:
        work_corpus = scratch / "corpus"
        work_corpus.mkdir()
        stats_path = scratch / "stats.json"
        artifacts.mkdir(parents=True, exist_ok=True)
        prefix = artifacts / f"{target}-"
        earlier = set(artifacts.glob(f"{target}-*"))
        command = [
            sys.executable,
            str(script),
            f"-runs={runs}",
            f"-seed={seed}",
            f"-max_len={max_len}",
            f"-timeout={HANG_TIMEOUT_S}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={prefix}",
            "-print_final_stats=1",
            str(work_corpus),
            str(seeds),
        ]
        environment = dict(
            os.environ,
            FAMA_FUZZ_STATS=str(stats_path),
            FAMA_FUZZ_RUNS=str(runs),
            FAMA_FUZZ_LIMIT_MS=str(max_ms),
            TMPDIR=str(scratch),
        )
        started = time.monotonic()
        completed = subprocess.run(
            command,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        seconds = time.monotonic() - started
        output = completed.stdout
        if verbose:
            print(output, file=sys.stderr)
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        done = re.search(r"Done (\d+) runs", output)
        runs_done = int(done.group(1)) if done else int(stats.get("calls", 0))
        finding = _finding(completed.returncode, output, runs, runs_done)
        if finding and not verbose:
            print(output[-4000:], file=sys.stderr)
        saved = sorted(str(path) for path in set(artifacts.glob(f"{target}-*")) - earlier)
        return Result(
            target=target,
            runs_asked=runs,
            runs_done=runs_done,
            seconds=round(seconds, 1),
            exec_per_s=round(runs_done / seconds) if seconds else 0,
            slowest_ms=float(stats.get("slowest_ms", 0.0)),
            slowest_input_len=int(stats.get("slowest_input_len", 0)),
            slowest_input_hex=str(stats.get("slowest_input_hex", "")),
            max_ms=max_ms,
            returncode=completed.returncode,
            finding=finding,
            artifacts=saved,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help=f"{', '.join(TARGETS)} or all")
    parser.add_argument("--runs", type=int, default=200_000, help="executions per target")
    parser.add_argument("--max-ms", type=float, default=100.0, help="per-input time limit")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer seed (reproducible runs)")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fama-fuzz-artifacts",
        help="where crash and slow inputs are saved",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--verbose", action="store_true", help="show libFuzzer's output")
    arguments = parser.parse_args(argv)
    targets = TARGETS if arguments.target == "all" else (arguments.target,)
    results = [
        run_target(
            target,
            arguments.runs,
            arguments.max_ms,
            arguments.seed,
            arguments.artifacts,
            arguments.verbose,
        )
        for target in targets
    ]
    if arguments.json:
        print(json.dumps([asdict(result) | {"ok": result.ok} for result in results], indent=2))
    else:
        for result in results:
            verdict = "OK" if result.ok else f"FAIL ({result.finding})"
            print(
                f"{result.target}: {result.runs_done} execs in {result.seconds} s "
                f"({result.exec_per_s}/s), slowest input {result.slowest_ms} ms "
                f"({result.slowest_input_len} bytes: "
                f"{result.slowest_input_hex[: 2 * SLOWEST_SHOWN]}) -> {verdict}"
            )
            for artifact in result.artifacts:
                print(f"  artifact: {artifact}")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
