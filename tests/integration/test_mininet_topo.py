"""Integration test: the Mininet lab of ``mininet_topos/fama.py`` on a private OVS.

Mininet imports only under Debian's system python, so the lab runs as a
driver program under ``/usr/bin/python3`` inside a network namespace of this
test's own, next to a private Open vSwitch instance (``fama_ryu.netlab``:
private run/db/log directories, daemons stopped by recorded pid).  The driver
writes what it observed to a JSON file; the tests below check it:

(a) the file loads the way ``mn --custom mininet_topos/fama.py`` loads it
    (``exec`` into a dict, without importing the project package) and
    ``--topo fama,3`` builds with ``--switch ovs,datapath=user,protocols=
    OpenFlow13 --controller remote,ip=127.0.0.1,port=6653`` (nothing listens);
(b) DAR switches have datapath ids 1..3 and the port names and numbers of
    ``etc/fama-domain.yaml`` (read with the project's own parser);
(c) after ``configure_dars`` (with the sample domain): flow-based GRE ports,
    bridge MAC = router MAC, A_d on the LOCAL port, and a packet tunnelled by
    DAR1 to a care-of address in DAR2's prefix leaves with outer source A_d1
    (the shared-routing-table pitfall of docs/lab-notes.md);
(d) ``move`` re-plugs the mobile node from DAR1's access link to DAR2's: the
    MN's frames now arrive on d2's access port and no longer on d1's;
(e) after ``net.stop()`` nothing of Mininet is left (processes, links,
    bridges, OVS routes), and after the lab closes neither the namespace nor
    the OVS daemons exist.

Needs root, Open vSwitch, Debian's mininet and tcpdump; fails (not skips)
without them.  Run: ``.venv/bin/python -m pytest -q tests/integration/test_mininet_topo.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fama_ryu.config import load_domain
from fama_ryu.netlab import Lab, LabError, Namespace, check_prerequisites, process_alive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPO_FILE = REPO / "mininet_topos" / "fama.py"
DOMAIN_FILE = REPO / "etc" / "fama-domain.yaml"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python, where Mininet lives
DRIVER_TIMEOUT_S = 60.0
DARS = ("d1", "d2", "d3")

# The driver runs under /usr/bin/python3 inside the lab namespace (cwd: lab workdir).
DRIVER = r'''
import json, os, select, subprocess, sys, time, traceback

topo_file, domain_json, out_path = sys.argv[1:4]
obs = {"errors": [], "times": {}}
t0 = time.monotonic()


def stamp(key):
    obs["times"][key] = round(time.monotonic() - t0, 2)


def sh(node, argv):
    out, err, code = node.pexec(argv)
    if code != 0:
        return "ERROR(%d): %s" % (code, (err or out).strip())
    return out.strip()


def get(node, *args):
    return sh(node, ["ovs-vsctl", "get"] + list(args)).strip('"')


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as stream:
            raw = stream.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def masters(node):
    links = json.loads(sh(node, ["ip", "-j", "link", "show"]))
    return {link["ifname"]: link.get("master") for link in links}


def rx_packets(node, intf):
    return int(sh(node, ["cat", "/sys/class/net/%s/statistics/rx_packets" % intf]))


def capture_one(host, intf, bpf, action, timeout_s=5.0):
    """Start tcpdump -c 1 on host:intf, wait until it listens, run action(), return its line."""
    proc = host.popen(["tcpdump", "-n", "-l", "--immediate-mode", "-c", "1", "-i", intf, bpf])
    deadline = time.monotonic() + timeout_s
    heard = ""
    while "listening on" not in heard and time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.1)[0]:
            heard += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    action()
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace").strip()


from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from mininet.util import buildTopo, customClass

setLogLevel("warning")
Mininet.inited = True  # skip Mininet's fixLimits(): machine-wide sysctls, not needed here

# (a) exactly what `mn --custom FILE` does with the file
customs = {}
with open(topo_file) as stream:
    exec(compile(stream.read(), topo_file, "exec"), customs, customs)
obs["project_modules"] = sorted(
    m for m in sys.modules if m.split(".")[0] in ("fama_ryu", "openflow_pipelines"))
obs["custom_names"] = sorted(customs)
topo = buildTopo(customs["topos"], "fama,3")  # --topo fama,3
obs["topo"] = {
    "switches": sorted(topo.switches()),
    "hosts": sorted(topo.hosts()),
    "links": sorted([a, b, i.get("intfName1"), i.get("intfName2")]
                    for a, b, i in topo.links(withInfo=True)),
}
net = Mininet(
    topo=topo,
    switch=customClass({"ovs": OVSSwitch}, "ovs,datapath=user,protocols=OpenFlow13"),
    controller=customClass({"remote": RemoteController}, "remote,ip=127.0.0.1,port=6653"),
    build=False,
)
stopped = False
try:
    net.build()
    net.start()
    stamp("started")
    obs["nodes"] = {n.name: [n.pid, start_time(n.pid)]
                    for n in net.hosts + net.switches + net.controllers}
    # (b)
    obs["bridges"] = {}
    for name in ("d1", "d2", "d3"):
        node = net.get(name)
        ports = sorted(sh(node, ["ovs-vsctl", "list-ports", name]).split())
        obs["bridges"][name] = {
            "datapath_id": get(node, "bridge", name, "datapath_id"),
            "datapath_type": get(node, "bridge", name, "datapath_type"),
            "fail_mode": get(node, "bridge", name, "fail_mode"),
            "protocols": get(node, "bridge", name, "protocols"),
            "controller": sh(node, ["ovs-vsctl", "get-controller", name]),
            "ports": ports,
            "ofports": {p: get(node, "interface", p, "ofport") for p in ports},
        }
    # (c)
    with open(domain_json) as stream:
        domain = json.load(stream)
    dars = customs["configure_dars"](net, domain)
    stamp("configured")
    obs["configured"] = {}
    for index, dar in enumerate(dars):
        node = net.get(dar.switch)
        other = dars[(index + 1) % len(dars)]
        coa = other.prefix.split("/")[0] + "10"
        obs["configured"][dar.switch] = {
            "hwaddr": get(node, "bridge", dar.switch, "other_config:hwaddr"),
            "tap_mac": sh(node, ["cat", "/sys/class/net/%s/address" % dar.switch]),
            "tap_addresses": sh(node, ["ip", "-6", "-o", "addr", "show", "dev", dar.switch]),
            "gre": {key: get(node, "interface", dar.gre_port, key) for key in (
                "type", "ofport", "options:remote_ip", "options:local_ip",
                "options:packet_type", "options:egress_pkt_mark")},
            "route_lookup": [coa, sh(node, ["ovs-appctl", "ovs/route/lookup", coa,
                                            "pkt_mark=%d" % dar.pkt_mark])],
        }
    d1, core, cn1 = net.get("d1"), net.get("core"), net.get("cn1")
    flows = "\n".join([
        "priority=100,in_port=LOCAL actions=output:1",
        "priority=200,in_port=1,ipv6,ipv6_dst=2001:db8:1::10 "
        "actions=dec_ttl,set_field:2001:db8:2::10->tun_ipv6_dst,output:10",
    ])
    adder = d1.popen(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", "d1", "-"],
                     stdin=subprocess.PIPE)
    obs["add_flows"] = [adder.communicate(flows.encode())[1].decode(), adder.returncode]
    obs["tunnelled"] = capture_one(
        core, "core-d1", "ip6 proto 47",
        lambda: cn1.cmd("ping -6 -c 2 -i 0.2 -W 1 2001:db8:1::10"))
    stamp("tunnel checked")
    # (d)
    ap = net.get("ap1")
    obs["move"] = {"masters_before": masters(ap),
                   "attachment_before": customs["attachment"](net, "mn1")}
    obs["move"]["result"] = customs["move"](net, "mn1", "d2")
    obs["move"]["masters_after"] = masters(ap)
    obs["move"]["attachment_after"] = customs["attachment"](net, "mn1")
    obs["move"]["ports_after"] = {
        name: sorted(sh(net.get(name), ["ovs-vsctl", "list-ports", name]).split())
        for name in ("d1", "d2")}
    mn1 = net.get("mn1")
    obs["move"]["mn1_intf"] = [str(i) for i in mn1.intfList()]
    obs["move"]["mn1_mac"] = sh(mn1, ["cat", "/sys/class/net/mn1-eth0/address"])
    before = {p: rx_packets(ap, p) for p in ("d1-acc", "d2-acc")}
    mn1.cmd("ping -6 -c 3 -i 0.2 -w 1 -I mn1-eth0 ff02::1")
    obs["move"]["rx_delta"] = {p: rx_packets(ap, p) - before[p] for p in before}
    obs["move"]["same_dar"] = customs["move"](net, "mn1", "d2")
    obs["move"]["back"] = customs["move"](net, "mn1", "d1")
    obs["move"]["attachment_back"] = customs["attachment"](net, "mn1")
    stamp("moved")
    # (e)
    stopped = True
    customs["stop_lab"](net)  # unconfigure_dars + net.stop + controller shells
    stamp("stopped")
    deadline = time.monotonic() + 5.0
    while True:
        alive = sorted(name for name, (pid, start) in obs["nodes"].items()
                       if start is not None and start_time(pid) == start)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def run(argv):
        return subprocess.run(argv, capture_output=True, text=True).stdout

    obs["after_stop"] = {
        "alive_nodes": alive,
        "bridges": run(["ovs-vsctl", "list-br"]).split(),
        "user_routes": [l for l in run(["ovs-appctl", "ovs/route/show"]).splitlines()
                        if l.startswith("User:")],
        "links": sorted(l["ifname"] for l in json.loads(run(["ip", "-j", "link", "show"]))),
    }
except Exception:
    obs["errors"].append(traceback.format_exc())
finally:
    if not stopped:
        customs["stop_lab"](net)
    stamp("done")
    with open(out_path, "w") as stream:
        json.dump(obs, stream, indent=1)
'''


def _require_prerequisites() -> None:
    problems: list[str] = []
    try:
        check_prerequisites(need_ovs=True)
    except LabError as exc:
        problems.append(str(exc))
    if not Path(SYSTEM_PYTHON).is_file():
        problems.append(f"{SYSTEM_PYTHON} (Debian's python3, which runs Mininet) is missing")
    else:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import mininet.net, mininet.node"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            problems.append(
                f"Mininet does not import under {SYSTEM_PYTHON} (Debian package mininet, "
                f"`make system-deps`): {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
            )
    for program in ("tcpdump", "mnexec"):
        if shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            problems.append(f"{program} is missing (Debian packages tcpdump, mininet)")
    if problems:
        pytest.fail(
            "the Mininet lab test needs root, Open vSwitch, Mininet and tcpdump: "
            + "; ".join(problems),
            pytrace=False,
        )


def _domain_mapping() -> dict[str, Any]:
    """etc/fama-domain.yaml as parsed by fama_ryu.config, in the file's own schema (JSON-able)."""
    domain = load_domain(DOMAIN_FILE)
    return {
        "dars": [
            {
                "name": dar.name,
                "dpid": dar.dpid,
                "access_ports": list(dar.access_ports),
                "core_port": dar.core_port,
                "gre_port": dar.gre_port,
                "router_mac": dar.router_mac,
                "access_prefixes": [str(prefix) for prefix in dar.access_prefixes],
                "anchor_address": str(dar.anchor_address),
                "link_local": str(dar.link_local),
                "core_next_hop": {
                    "address": str(dar.core_next_hop.address),
                    "mac": dar.core_next_hop.mac,
                },
            }
            for dar in domain.dars
        ]
    }


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    """Run the driver once in a fresh lab; return its observations plus teardown facts."""
    _require_prerequisites()
    domain = _domain_mapping()
    facts: dict[str, Any] = {"domain": domain}
    started = time.monotonic()
    lab = Lab().open()
    namespace_name = ""
    ovs_pids: list[int] = []
    try:
        ns = lab.namespace("mn")
        namespace_name = ns.name
        ovs = lab.ovs(ns)
        ovs_pids = [pid for pid in (ovs.read_pid(d) for d in ovs.DAEMONS) if pid is not None]
        driver = lab.path("driver.py")
        driver.write_text(DRIVER)
        domain_json = lab.path("domain.json")
        domain_json.write_text(json.dumps(domain))
        out = lab.path("observed.json")
        result = ns.run(
            [SYSTEM_PYTHON, str(driver), str(TOPO_FILE), str(domain_json), str(out)],
            env=ovs.env,
            check=False,
            timeout_s=DRIVER_TIMEOUT_S,
        )
        facts["driver_exit"] = result.returncode
        facts["driver_output"] = (result.stdout + result.stderr)[-4000:]
        if not out.exists():
            pytest.fail(
                f"the driver wrote no observations (exit {result.returncode}):\n"
                + facts["driver_output"],
                pytrace=False,
            )
        facts.update(json.loads(out.read_text()))
        # Inside the namespace only the lab's own OVS daemons may remain.
        facts["namespace_pids_after_stop"] = sorted(
            pid for pid in ns.pids() if process_alive(pid) and pid not in ovs_pids
        )
    finally:
        try:
            lab.close()
            facts["lab_close_error"] = None
        except LabError as exc:
            facts["lab_close_error"] = str(exc)
    facts["namespace_exists_after_close"] = (
        bool(namespace_name) and Namespace(namespace_name).exists()
    )
    facts["ovs_alive_after_close"] = [pid for pid in ovs_pids if process_alive(pid)]
    facts["lab_leftovers"] = lab.leftovers()
    facts["state_file_exists"] = lab.state_file.exists()
    facts["elapsed_s"] = round(time.monotonic() - started, 2)
    yield facts


def _no_driver_errors(run: dict[str, Any]) -> None:
    assert not run["errors"], "the driver raised:\n" + "\n".join(run["errors"])


def _domain_dars(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"d{dar['dpid']}": dar for dar in run["domain"]["dars"]}


# --------------------------------------------------------------------------- (a)


def test_a_loads_like_mn_custom_without_the_project_package(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    assert run["project_modules"] == [], "mininet_topos/fama.py imported the project package"
    for name in ("topos", "tests", "FamaTopo", "configure_dars", "move", "stop_lab"):
        assert name in run["custom_names"], f"{name} missing from the custom file"
    topo = run["topo"]
    assert topo["switches"] == ["ap1", "ap2", "ap3", "d1", "d2", "d3"]
    assert topo["hosts"] == ["cn1", "core", "mn1"]
    assert len(topo["links"]) == 8  # 3 core links, 3 access links, CN, MN
    assert run["times"]["started"] < 20, run["times"]


# --------------------------------------------------------------------------- (b)


def test_b_dpids_and_port_names_match_the_domain_file(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    dars = _domain_dars(run)
    assert sorted(dars) == list(DARS)
    for switch, dar in dars.items():
        bridge = run["bridges"][switch]
        assert int(bridge["datapath_id"], 16) == dar["dpid"], (switch, bridge)
        assert bridge["datapath_id"] == f"{dar['dpid']:016x}"
        assert bridge["datapath_type"] == "netdev"
        assert bridge["fail_mode"] == "secure"
        assert bridge["protocols"] == "[OpenFlow13]"
        assert bridge["controller"] == "tcp:127.0.0.1:6653"
        # Every port the domain names exists when the switch first connects
        # (the controller resolves names once, at connection time).
        expected = sorted([*dar["access_ports"], dar["core_port"], dar["gre_port"]])
        assert bridge["ports"] == expected, (switch, bridge["ports"])
        assert bridge["ofports"][dar["core_port"]] == "1"
        assert bridge["ofports"][dar["access_ports"][0]] == "2"
        assert bridge["ofports"][dar["gre_port"]] == "10"


# --------------------------------------------------------------------------- (c)


def test_c_configure_dars_sets_gre_port_bridge_mac_and_anchor(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    for switch, dar in _domain_dars(run).items():
        configured = run["configured"][switch]
        assert configured["hwaddr"] == dar["router_mac"], (switch, configured)
        assert configured["tap_mac"] == dar["router_mac"]
        assert f"{dar['anchor_address']}/64" in configured["tap_addresses"]
        gre = configured["gre"]
        assert gre["type"] == "gre"
        assert gre["ofport"] == "10"
        assert gre["options:remote_ip"] == "flow"
        assert gre["options:local_ip"] == dar["anchor_address"]
        assert gre["options:packet_type"] == "legacy_l3"
        # Each DAR's tunnels leave from its own A_d, even to another DAR's prefix.
        coa, lookup = configured["route_lookup"]
        assert f"src {dar['anchor_address']}" in lookup, (switch, coa, lookup)
        assert f"dev {switch}" in lookup, (switch, coa, lookup)


def test_c_tunnel_to_another_dars_prefix_leaves_with_own_anchor(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    assert run["add_flows"] == ["", 0], run["add_flows"]
    line = run["tunnelled"]
    assert "2001:db8:1::1 > 2001:db8:2::10: GREv0" in line, (
        "expected CN->HoA tunnelled by DAR1 from A_d1 to the CoA in DAR2's prefix, "
        f"tcpdump on core-d1 saw: {line!r}"
    )
    assert "2001:db8:ff00:1::10 > 2001:db8:1::10" in line


# --------------------------------------------------------------------------- (d)


def test_d_move_replugs_the_mobile_node_into_dar2s_access_link(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    move = run["move"]
    assert move["attachment_before"] == ["d1", "ap1-mn1"]
    assert move["masters_before"]["ap1-mn1"] == "ap1"
    assert move["result"] == ["d1", "d2"]
    assert move["attachment_after"] == ["d2", "ap2-mn1"]
    assert "ap1-mn1" not in move["masters_after"], "the MN's link is still on DAR1's access link"
    assert move["masters_after"]["ap2-mn1"] == "ap2"
    # The DARs' access ports stay where the controller resolved them.
    assert move["ports_after"] == {
        "d1": ["d1-acc", "d1-core", "d1-gre"],
        "d2": ["d2-acc", "d2-core", "d2-gre"],
    }
    # The MN keeps its interface and MAC (a handover, not a new host).
    assert move["mn1_intf"] == ["mn1-eth0"]
    assert move["mn1_mac"] == "02:00:00:01:00:01"
    # Its frames now reach DAR2's access port and no longer DAR1's.
    assert move["rx_delta"]["d2-acc"] >= 3, move["rx_delta"]
    assert move["rx_delta"]["d1-acc"] == 0, move["rx_delta"]
    assert move["same_dar"] == ["d2", "d2"]
    assert move["back"] == ["d2", "d1"]
    assert move["attachment_back"] == ["d1", "ap1-mn1"]


# --------------------------------------------------------------------------- (e)


def test_e_stop_and_teardown_leave_nothing(run: dict[str, Any]) -> None:
    _no_driver_errors(run)
    assert run["driver_exit"] == 0, run["driver_output"]
    after = run["after_stop"]
    assert after["alive_nodes"] == [], f"Mininet node shells still running: {after}"
    assert after["bridges"] == []
    assert after["user_routes"] == [], "configure_dars' OVS routes outlived the network"
    assert after["links"] == ["lo"], f"interfaces left in the lab namespace: {after['links']}"
    assert run["namespace_pids_after_stop"] == [], "processes other than OVS in the namespace"
    assert run["lab_close_error"] is None, run["lab_close_error"]
    assert run["lab_leftovers"] == []
    assert not run["namespace_exists_after_close"]
    assert run["ovs_alive_after_close"] == []
    assert not run["state_file_exists"]
    assert run["elapsed_s"] < 60, run["elapsed_s"]
