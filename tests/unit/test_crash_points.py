"""The crash-point switch of the kill -9 runs: parsed strictly, off by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fama_ryu import crash_points


def test_spec_is_parsed_with_default_probability_one() -> None:
    assert crash_points.parse("before_commit:0.25, before_ba") == {
        "before_commit": 0.25,
        "before_ba": 1.0,
    }
    assert crash_points.parse("") == {}


@pytest.mark.parametrize("spec", ["nowhere:1", "before_commit:2", "after_commit:-0.1"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        crash_points.parse(spec)


def _run(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from fama_ryu import crash_points; crash_points.reached('after_commit'); print('alive')"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FAMA_CRASH")}
    return subprocess.run(
        [sys.executable, "-c", code], env=env | environment, capture_output=True, text=True
    )


def test_an_armed_point_kills_the_process_and_others_do_not() -> None:
    assert _run({"FAMA_CRASH_POINTS": "after_commit:1"}).returncode == -signal.SIGKILL
    survived = _run({"FAMA_CRASH_POINTS": "before_commit:1"})
    assert survived.returncode == 0 and survived.stdout.strip() == "alive"
    assert _run({}).stdout.strip() == "alive"
