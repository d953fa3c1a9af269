"""The real controller stops cleanly on SIGINT and SIGTERM, whichever green thread runs.

Python raises a signal's KeyboardInterrupt in the green thread running at
that moment; before the controller routed it to ryu-manager's main green
thread, a SIGINT landing in the tick loop killed only that loop (Ryu logs
and swallows it) and the controller ran on without expiring bindings; and
SIGTERM ended the process without closing the apps.  Both now end
ryu-manager's main loop: exit status 0, no traceback.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    conf = tmp_path / "fama.conf"
    conf.write_text(
        "[DEFAULT]\nofp_listen_host = 127.0.0.1\nwsapi_host = 127.0.0.1\n\n"
        f"[fama]\ndomain_file = {ROOT / 'etc' / 'fama-domain.yaml'}\n"
        f"store_path = {tmp_path / 'bindings.sqlite'}\nmetrics_port = 0\n"
    )
    log = tmp_path / "controller.log"
    ofp_port = _free_port()
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "fama-controller"),
            "fama_ryu.app",
            "--config-file",
            str(conf),
            "--ofp-tcp-listen-port",
            str(ofp_port),
            "--wsapi-port",
            str(_free_port()),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ofp_port)) == 0:
                return process, log
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the controller did not listen: " + log.read_text())


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_controller_cleanly(tmp_path: Path, number: signal.Signals) -> None:
    process, log = _start(tmp_path)
    try:
        time.sleep(0.6)  # a few ticks
        process.send_signal(number)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "uncaught exception" not in text and "Traceback" not in text, text
