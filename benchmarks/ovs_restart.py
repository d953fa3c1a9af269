"""ovs-vswitchd restart with N bindings: how long until every binding flow is back.

A one-DAR lab (:mod:`fama_ryu.netlab`): a network namespace of its own with a
private ovsdb-server + ovs-vswitchd (userspace datapath), bridge ``dar1``
(netdev, fail_mode=secure, OpenFlow 1.3, datapath-id 1) with ports
``d1-acc``, ``d1-core`` (internal) and ``d1-gre`` (flow-based GRE, P14), and
the real controller (``fama-controller fama_ryu.app``) on 127.0.0.1 in that
namespace.  The SQLite store is filled with N bindings through the store's
own API before the controller starts (a registration per HoA, as the
controller would have committed it), so the controller installs their
3 x N binding flows when the bridge connects.

Then ovs-vswitchd (the instance this program started, by its pid) is
stopped with SIGTERM and started again on the same database.  A userspace
datapath keeps no flow across that: the new vswitchd connects to the running
controller, which reconciles (pipeline and every binding, new cookie
generation).  Measured: from the stop to every binding flow back
(``ovs-ofctl dump-flows``, counted by cookie kind), and from the new
vswitchd's start.  Median over R restarts; prints a table and writes JSON::

    .venv/bin/python benchmarks/ovs_restart.py [--bindings 1000] [--repeats 3]

Needs root and Open vSwitch (``make system-deps``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fama_ryu.binding_cache import Binding, BindingCache
from fama_ryu.netlab import Lab, Namespace, OvsInstance, wait_until
from fama_ryu.store import SqliteBindingStore

ROOT = Path(__file__).resolve().parents[1]
FAMA_CONTROLLER = Path(sys.executable).parent / "fama-controller"
DPID = 1
ANCHOR = "2001:db8:1::1"
ACCESS_PREFIX = "2001:db8:1::/64"
ROUTER_MAC = "02:00:00:00:d1:01"
NEXT_HOP = "2001:db8:1::fffe"
NEXT_HOP_MAC = "02:00:00:00:00:fe"
OF_PORT = 6653  # inside the lab's own namespace: nothing else listens there
REST_PORT = 8080
LIFETIME_S = 3600
BINDING_FLOWS_PER_BINDING = 3  # decap, encap, encap hairpin
BINDING_COOKIE = "cookie=0xfa4d02"  # owner 0xfa4d, kind BINDING (openflow_pipelines.cookies)

DOMAIN = f"""\
dars:
  - name: dar1
    dpid: "{DPID:016x}"
    access_ports: [d1-acc]
    core_port: d1-core
    gre_port: d1-gre
    router_mac: "{ROUTER_MAC}"
    access_prefixes: ["{ACCESS_PREFIX}"]
    anchor_address: "{ANCHOR}"
    core_next_hop:
      address: "{NEXT_HOP}"
      mac: "{NEXT_HOP_MAC}"
    max_lifetime_s: {LIFETIME_S}
"""

CONF = """\
[DEFAULT]
ofp_listen_host = 127.0.0.1
ofp_tcp_listen_port = {of_port}
wsapi_host = 127.0.0.1
wsapi_port = {rest_port}

[fama]
domain_file = {domain}
store_path = {store}
metrics_port = 0
"""


def binding_hoa(index: int) -> bytes:
    return ipaddress.IPv6Address(f"2001:db8:1::1:{index // 0x10000:x}:{index % 0x10000:x}").packed


def binding_coa(index: int) -> bytes:
    return ipaddress.IPv6Address(f"2001:db8:2::{index // 0x10000:x}:{index % 0x10000:x}").packed


def prefill_store(path: Path, count: int, now: float) -> None:
    """``count`` live bindings of dar1, committed as the controller commits them."""
    cache = BindingCache()
    changes = []
    for index in range(count):
        binding = Binding(
            hoa=binding_hoa(index),
            coa=binding_coa(index),
            sequence=1,
            lifetime_s=LIFETIME_S,
            registered_at=now,
            expires_at=now + LIFETIME_S,
            key_hash=index.to_bytes(4, "big").rjust(16, b"\0"),
            phkt=os.urandom(8),
        )
        changes.append(("dar1", cache.registration(binding)))
    with SqliteBindingStore(path) as store:
        store.commit(changes)


@dataclass
class DarLab:
    """The lab of one DAR bridge, its OVS and the controller."""

    lab: Lab
    namespace: Namespace
    ovs: OvsInstance
    conf: Path
    controller: subprocess.Popen[bytes] | None = None

    def binding_flows(self) -> int:
        """Binding flows dar1 holds (0 while vswitchd does not answer)."""
        try:
            out = self.ovs.ofctl("dump-flows", "dar1")
        except Exception:  # vswitchd restarting: its socket is not there yet
            return 0
        return sum(BINDING_COOKIE in line for line in out.splitlines())

    def start_controller(self) -> None:
        log = self.lab.path("controller.log").open("ab")
        with log:
            self.controller = self.namespace.popen(
                [str(FAMA_CONTROLLER), "fama_ryu.app", "--config-file", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                description="fama-controller",
            )

    def controller_log(self) -> str:
        path = self.lab.path("controller.log")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def restart_vswitchd(self) -> float:
        """Restart this lab's ovs-vswitchd; returns the moment the new one was launched."""
        return self.ovs.restart_vswitchd()


@contextlib.contextmanager
def dar_lab(bindings: int) -> Iterator[DarLab]:
    """The lab with ``bindings`` stored bindings and the controller connected."""
    with Lab() as lab:
        namespace = lab.namespace("dar")
        ovs = lab.ovs(namespace)
        ovs.add_netdev_bridge("dar1", hwaddr=ROUTER_MAC)
        ovs.vsctl("set", "bridge", "dar1", f"other_config:datapath-id={DPID:016x}")
        ovs.add_port("dar1", "d1-core", ofport=1, port_type="internal")
        ovs.add_port("dar1", "d1-acc", ofport=2, port_type="internal")
        ovs.add_port(
            "dar1",
            "d1-gre",
            ofport=10,
            port_type="gre",
            options={"remote_ip": "flow", "local_ip": ANCHOR, "packet_type": "legacy_l3"},
        )
        workdir = lab.path("controller")
        workdir.mkdir()
        domain = workdir / "domain.yaml"
        domain.write_text(DOMAIN)
        store = workdir / "bindings.sqlite"
        prefill_store(store, bindings, time.time())
        conf = workdir / "fama.conf"
        conf.write_text(
            CONF.format(of_port=OF_PORT, rest_port=REST_PORT, domain=domain, store=store)
        )
        rig = DarLab(lab, namespace, ovs, conf)
        ovs.vsctl(
            "--",
            "--id=@c",
            "create",
            "Controller",
            f'target="tcp:127.0.0.1:{OF_PORT}"',
            "connection_mode=out-of-band",
            "--",
            "set",
            "bridge",
            "dar1",
            "controller=@c",
        )
        rig.start_controller()
        try:
            yield rig
        finally:
            if rig.controller is not None:
                namespace.stop(rig.controller)


def measure_restart(rig: DarLab, expected: int, timeout_s: float) -> dict[str, Any]:
    """One vswitchd restart: seconds until ``expected`` binding flows are back."""
    stopped = time.perf_counter()
    started = rig.restart_vswitchd()
    deadline = started + timeout_s
    count = 0
    while time.perf_counter() < deadline:
        count = rig.binding_flows()
        if count == expected:
            back = time.perf_counter()
            return {
                "all_back": True,
                "from_stop_s": back - stopped,
                "from_vswitchd_start_s": back - started,
                "binding_flows": count,
            }
        time.sleep(0.05)
    return {"all_back": False, "binding_flows": count, "expected": expected}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    expected = BINDING_FLOWS_PER_BINDING * args.bindings
    with dar_lab(args.bindings) as rig:
        wait_until(
            lambda: rig.binding_flows() == expected,
            args.timeout,
            description=f"{expected} binding flows after the controller's start",
        )
        restarts = [measure_restart(rig, expected, args.timeout) for _ in range(args.repeats)]
        log = rig.controller_log()
    back = [r for r in restarts if r["all_back"]]
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "config": {"bindings": args.bindings, "repeats": args.repeats, "timeout_s": args.timeout},
        "restarts": restarts,
        "all_back_every_time": len(back) == len(restarts),
        "median_from_stop_s": statistics.median(r["from_stop_s"] for r in back) if back else None,
        "median_from_vswitchd_start_s": (
            statistics.median(r["from_vswitchd_start_s"] for r in back) if back else None
        ),
        "goal_s": 5.0,
        "controller_errors": log.count(" ERROR ") + log.count("Traceback"),
    }


def report(data: dict[str, Any]) -> str:
    lines = [f"{'restart':>7} {'all back':>8} {'from stop s':>11} {'from start s':>12}"]
    for n, r in enumerate(data["restarts"], 1):
        lines.append(
            f"{n:>7} {str(r['all_back']):>8} {r.get('from_stop_s', float('nan')):>11.2f}"
            f" {r.get('from_vswitchd_start_s', float('nan')):>12.2f}"
        )
    median = data["median_from_stop_s"]
    lines.append(
        f"\n{data['config']['bindings']} bindings: median {median:.2f} s from the stop"
        f" (goal <= {data['goal_s']:.0f} s: {'met' if median <= data['goal_s'] else 'NOT met'})"
        if median is not None
        else "\nflows did not all come back"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "ovs_restart.json")
    args = parser.parse_args(argv)
    data = bench(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(report(data))
    print(f"\nJSON: {args.json}")
    return 0 if data["all_back_every_time"] else 1


if __name__ == "__main__":
    sys.exit(main())
