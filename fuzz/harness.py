"""What every fuzz target shares: the per-input time limit, accepted exceptions, statistics.

A target module defines ``one_input(data: bytes) -> None`` and calls
:func:`fuzz` with it.  The wrapper times each call: libFuzzer's
``-timeout`` counts whole seconds, and the issue asks for no input above
100 ms.  A call over the limit is timed again twice and only the fastest
of the three counts, so a scheduling hiccup on a busy machine is not a
finding while a genuinely slow input is; a confirmed slow input raises
:class:`SlowInput`, which atheris reports like a crash (input saved).

Exceptions named in ``expected`` are the documented rejections of the
code under test; any other exception escapes and is a finding.

Statistics (calls, slowest time, slowest input) go to the JSON file named
by ``FAMA_FUZZ_STATS`` every ``STATS_EVERY`` calls, on each new slowest
input and at the last of ``FAMA_FUZZ_RUNS`` calls: libFuzzer ends the
process with ``exit()``, so nothing can be written after the last call.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import atheris

STATS_EVERY = 20_000
SLOWEST_INPUT_SHOWN = 256  # bytes of the slowest input kept in the statistics
CONFIRMATIONS = 2

OneInput = Callable[[bytes], None]


class SlowInput(Exception):
    """An input took longer than the per-input limit, confirmed by re-timing."""


class _Stats:
    def __init__(self, path: str | None, runs: int, limit_s: float) -> None:
        self.path = Path(path) if path else None
        self.runs = runs
        self.limit_s = limit_s
        self.calls = 0
        self.slowest_s = 0.0
        self.slowest_input = b""

    def write(self) -> None:
        if self.path is None:
            return
        document = {
            "calls": self.calls,
            "slowest_ms": round(self.slowest_s * 1000, 3),
            "slowest_input_len": len(self.slowest_input),
            "slowest_input_hex": self.slowest_input[:SLOWEST_INPUT_SHOWN].hex(),
            "limit_ms": self.limit_s * 1000,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document))
        temporary.replace(self.path)


def _timed_call(target: OneInput, expected: tuple[type[BaseException], ...], data: bytes) -> float:
    start = time.perf_counter()
    with contextlib.suppress(*expected):
        target(data)
    return time.perf_counter() - start


def timed(target: OneInput, expected: tuple[type[BaseException], ...], stats: _Stats) -> OneInput:
    """Wrap ``target``: swallow ``expected`` exceptions, enforce and record the time limit."""

    def one_input(data: bytes) -> None:
        elapsed = _timed_call(target, expected, data)
        stats.calls += 1
        if elapsed > stats.slowest_s:
            if elapsed > stats.limit_s:
                for _ in range(CONFIRMATIONS):
                    elapsed = min(elapsed, _timed_call(target, expected, data))
            if elapsed > stats.slowest_s:
                stats.slowest_s = elapsed
                stats.slowest_input = bytes(data)
                stats.write()
            if elapsed > stats.limit_s:
                raise SlowInput(
                    f"{elapsed * 1000:.1f} ms > {stats.limit_s * 1000:.0f} ms "
                    f"for a {len(data)}-byte input"
                )
        if stats.calls % STATS_EVERY == 0 or stats.calls == stats.runs:
            stats.write()

    return one_input


def fuzz(target: OneInput, expected: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``target`` under atheris with the arguments of this process (libFuzzer flags)."""
    stats = _Stats(
        os.environ.get("FAMA_FUZZ_STATS"),
        int(os.environ.get("FAMA_FUZZ_RUNS", "0")),
        float(os.environ.get("FAMA_FUZZ_LIMIT_MS", "100")) / 1000,
    )
    atheris.Setup(sys.argv, timed(target, expected, stats))
    atheris.Fuzz()
