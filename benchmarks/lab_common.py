"""Plumbing shared by the lab benchmarks (``bench_e2e``, ``bench_handover``, ``bench_tunnel``).

Each benchmark runs on a ``fama-lab`` lab of its own id, built with
:func:`fama_ryu.lab.up` and removed with the lab's own :func:`fama_ryu.lab.down`
on every exit path (an exception, Ctrl-C or SIGTERM included).  Helpers
here: that life cycle, programs run inside a lab node, percentiles, the
controller's per-DAR counters from REST, and the machine description every
result file carries.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fama_ryu import lab
from fama_ryu.lab_demo import DemoLab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
EXIT_ENVIRONMENT, EXIT_EXISTS = 2, 3


class BenchEnvironmentError(Exception):
    """The benchmark cannot run here (not root, lab id taken...); exit code attached."""

    def __init__(self, message: str, exit_code: int = EXIT_ENVIRONMENT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Teardown runs to its end: Ctrl-C and SIGTERM are held off meanwhile."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def running_lab(
    lab_id: str,
    *,
    dars: int,
    mns: int,
    cns: int,
    agent: bool,
    log: Any = sys.stderr,
    domain_file: Path | None = None,
) -> Iterator[DemoLab]:
    """A lab of its own id for one benchmark run; ``fama-lab down`` when the block ends.

    With ``domain_file`` the DARs are the file's (``dars`` is then ignored).
    A lab with that id already up is left alone (:class:`BenchEnvironmentError`).
    """
    if os.geteuid() != 0:
        raise BenchEnvironmentError("must run as root (network namespaces, Open vSwitch)")
    try:
        lab_id = lab.resolve_lab_id(lab_id)
    except lab.LabUsageError as exc:
        raise BenchEnvironmentError(str(exc)) from None
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    created = False
    try:
        planned = lab.dars_from_domain_file(domain_file) if domain_file else lab.sample_dars(dars)
        plan = lab.LabPlan(
            lab_id,
            tuple(planned),
            n_mns=mns,
            n_cns=cns,
            agent=agent,
            domain_file=domain_file,
        )
        try:
            doc = lab.up(plan)
        except lab.LabExistsError as exc:
            raise BenchEnvironmentError(str(exc), EXIT_EXISTS) from None
        except lab.LabUsageError as exc:
            raise BenchEnvironmentError(str(exc)) from None
        created = True
        print(f"lab {lab_id!r} up in {doc['timings_s']['total']:.1f} s", file=log, flush=True)
        yield DemoLab(lab_id)
    finally:
        if created:
            with _no_interrupts():
                removed = lab.down(lab_id)
            print(f"lab {lab_id!r} removed ({removed['removed']} resources)", file=log, flush=True)
        signal.signal(signal.SIGTERM, previous_term)


def run_in_node(
    demo_lab: DemoLab, node: str, argv: Sequence[str], *, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``node``'s namespace; its stderr goes to ours (progress), stdout returned."""
    env = lab.exec_environment(demo_lab.meta, node)
    return subprocess.run(
        demo_lab.ns(node).command(list(argv)),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        timeout=timeout_s,
        check=True,
    )


def percentiles_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """n, p50, p95, p99 and max of ``values_s`` (seconds) in milliseconds (nearest rank)."""
    ordered = sorted(values_s)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

    return {
        "n": len(ordered),
        "p50_ms": rank(0.50),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def dar_counters(demo_lab: DemoLab) -> dict[str, dict[str, int]]:
    """Every DAR's controller counters (REST ``/fama/v1/stats``), flattened per DAR."""
    flat: dict[str, dict[str, int]] = {}
    for name, entry in demo_lab.rest("/fama/v1/stats").items():
        counters: dict[str, int] = {}
        for group, values in entry.items():
            if isinstance(values, dict):
                counters.update({f"{group}.{key}": int(v) for key, v in values.items()})
        flat[name] = counters
    return flat


def counter_delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Per DAR, the counters that changed between two :func:`dar_counters` readings."""
    delta: dict[str, dict[str, int]] = {}
    for dar, counters in after.items():
        old = before.get(dar, {})
        changed = {k: v - old.get(k, 0) for k, v in counters.items() if v != old.get(k, 0)}
        delta[dar] = dict(sorted(changed.items()))
    return delta


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def run_and_report(
    name: str,
    run: Callable[[], dict[str, Any]],
    json_path: Path,
    report: Callable[[dict[str, Any]], str],
    plot: tuple[Callable[[dict[str, Any], Path], None], Path] | None = None,
) -> int:
    """Run a lab benchmark; write its JSON (and plot), print its table; the exit status.

    A lab that cannot run here (:class:`BenchEnvironmentError`) is a message
    on stderr and that error's exit status.
    """
    try:
        data = run()
    except BenchEnvironmentError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.exit_code
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    outputs = f"JSON: {json_path}"
    if plot is not None:
        write_plot, plot_path = plot
        write_plot(data, plot_path)
        outputs += f"\nplot: {plot_path}"
    print(report(data))
    print(f"\n{outputs}")
    return 0
