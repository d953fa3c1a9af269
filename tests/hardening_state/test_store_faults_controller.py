"""Storage faults through the real controller (``fama-controller fama_ryu.app``).

The controller runs on free loopback ports with its store on a small tmpfs;
one emulated OpenFlow 1.3 switch (``benchmarks/ofload.py``, no OVS) sends
Binding Updates as packet-ins and reads the Binding Acks from packet-outs.
Filling the tmpfs at runtime must turn new BUs into BA 130 with no flow-mod,
log the refusal, and recover once space returns; a damaged store must stop
the controller from starting.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_store_faults import fill, small_tmpfs

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_controller import (  # noqa: E402
    CONTROLLER,
    HOST,
    Recorder,
    domain,
    free_port,
    make_mns,
    port_names,
)
from ofload import EmulatedSwitch, Request, connect  # noqa: E402

DPID = 1


def start(workdir: Path, store: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    domain_file = workdir / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(domain(1)))
    conf = workdir / "fama.conf"
    conf.write_text(f"[fama]\ndomain_file = {domain_file}\nstore_path = {store}\n")
    ofp_port = free_port()
    log = workdir / "controller.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                str(CONTROLLER),
                "fama_ryu.app",
                "--config-file",
                str(conf),
                "--ofp-tcp-listen-port",
                str(ofp_port),
                "--wsapi-port",
                str(free_port()),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    return process, ofp_port, log


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def answer(switch: EmulatedSwitch, request: Request, timeout_s: float = 10.0) -> None:
    await asyncio.wait_for(switch.send(request), timeout_s)


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    with small_tmpfs() as mount_point:
        yield mount_point


def test_disk_full_at_runtime_answers_130_and_recovers(tmp_path: Path, tmpfs: Path) -> None:
    process, ofp_port, log = start(tmp_path, tmpfs / "bindings.sqlite")
    try:
        asyncio.run(_disk_full_scenario(ofp_port, tmpfs))
    finally:
        stop(process)
    text = log.read_text()
    assert "binding store refused" in text and "[disk_full]" in text
    # Ryu's own KeyboardInterrupt traceback at SIGINT is not ours; handler failures are.
    assert "handling failed" not in text and "periodic work failed" not in text


async def _disk_full_scenario(ofp_port: int, tmpfs: Path) -> None:
    statuses = Recorder(statuses=Counter(), keep=True, frames=[])
    switch = EmulatedSwitch(DPID, port_names(DPID), statuses)
    await connect(HOST, ofp_port, [switch])
    bound, newcomer = make_mns(1, 2)[DPID]
    await answer(switch, bound.cga_bu())
    assert dict(statuses.statuses) == {0: 1}
    assert statuses.frames is not None
    bound.learn(statuses.frames[-1])
    filler = fill(tmpfs)
    flow_mods = switch.counts["flow_mod"]
    await answer(switch, newcomer.cga_bu())
    await answer(switch, bound.phkt_bu())
    assert statuses.statuses[130] == 2
    assert switch.counts["flow_mod"] == flow_mods  # forwarding untouched
    filler.unlink()
    await answer(switch, newcomer.cga_bu())
    await answer(switch, bound.phkt_bu())
    assert statuses.statuses[0] == 3
    assert switch.counts["flow_mod"] > flow_mods
    switch.close()


def test_a_damaged_store_stops_the_controller_from_starting(tmp_path: Path) -> None:
    store = tmp_path / "bindings.sqlite"
    store.write_bytes(b"SQLite format 3\x00" + bytes(4080))
    process, ofp_port, log = start(tmp_path, store)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert process.poll() not in (None, 0)
    finally:
        stop(process)
    assert "[corrupt]" in log.read_text()
    assert store.read_bytes() == b"SQLite format 3\x00" + bytes(4080)
