"""Integration test of ``fama-lab``: the whole FAMA lab, driven through its CLI.

``fama-lab up --dars 3 --mns 1 --cns 1 --no-agent`` runs in a subprocess with
a lab id of this test's own; every later step goes through the CLI as other
scripts would (``exec``, ``move``, ``status``, ``down``), except packet
captures and raw packets, which use :mod:`fama_ryu.netlab` in the lab's
namespaces (tcpdump is an AF_PACKET capture: it sees the Binding Ack that
the MN's kernel drops for its type 2 Routing Header).

Steps (file order, one shared lab):

1. ``up`` prints the lab description; the three DARs are connected (REST
   through ``fama-lab exec ctl -- curl``); ``up`` took < 15 s;
2. each bridge carries the FAMA pipeline (tables 0-3, FAMA cookies), and
   each DAR has its own marked Open vSwitch tunnel route with source A_d;
3. mn1, on dar1's access link: RS -> dar1's RA; a CGA home address (HoA) in
   dar1's prefix, configured by hand with the RA's router as default, pings
   cn1 through dar1 and the core;
4. ``move mn1 dar2``: mn1's link is on ap2; an RS is answered by dar2's RA
   (prefix 2001:db8:2::/64, R flag with A_d2, H flag);
5. the multi-DAR tunnel pitfall: a CGA BU (``fama_ryu.mobile_node``) from a
   care-of address in dar2's prefix to dar1's anchor is accepted (BA status 0
   captured in mn1), then cn1 -> HoA arrives at mn1 GRE-encapsulated with outer
   source A_d1 (not A_d2) and destination the CoA;
6. ``status`` JSON; ``exec`` passes stdin, stdout and the exit code; a second
   ``up`` with the same id is refused (exit 3); without root ``up`` exits 2;
7. ``down`` removes everything (namespaces, processes, files); again: fine.

Needs root, Open vSwitch, tcpdump and curl; fails (does not skip) without.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fama_ryu import lab, mh, netlab
from fama_ryu.mobile_node import (
    AckResult,
    BindingUpdateList,
    MobileNodeIdentity,
    configure_address,
)
from fama_ryu.netlab import (
    LabError,
    Namespace,
    PacketCapture,
    check_prerequisites,
    process_alive,
    run_command,
    wait_until,
)

pytestmark = pytest.mark.integration

from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

FAMA_LAB = Path(sys.executable).parent / "fama-lab"
FAMA_CONTROLLER = Path(sys.executable).parent / "fama-controller"
STATE_DIR = Path("/tmp/fama-lab")
UP_BUDGET_S = 15.0
GRE_IPV6 = b"\x00\x00\x86\xdd"  # GRE without C/K/S, protocol 0x86DD (P14)
GRE_PROTO, ICMPV6_PROTO = 47, 58

# mn1's addresses: a CGA home address in dar1's prefix, a care-of address in dar2's.
COA = "2001:db8:2::10"

# Sends one Router Solicitation (with the source link-layer address option) from
# an interface through an ICMPv6 socket (the kernel picks the link-local source).
SEND_RS = r"""
import socket, struct, sys
name = sys.argv[1]
index = socket.if_nametoindex(name)
with open("/sys/class/net/%s/address" % name) as stream:
    mac = bytes.fromhex(stream.read().strip().replace(":", ""))
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
sock.sendto(struct.pack("!BBHI", 133, 0, 0, 0) + bytes([1, 1]) + mac, ("ff02::2", 0, 0, index))
"""

# Sends whole IPv6 packets given as hex (IPPROTO_RAW: the header as written,
# routed by the kernel by destination).
SEND_IPV6 = r"""
import socket, sys
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for packet in sys.argv[1:]:
    data = bytes.fromhex(packet)
    sock.sendto(data, (socket.inet_ntop(socket.AF_INET6, data[24:40]), 0))
"""


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


# ----------------------------------------------------------------- frames (test-side parsing)


@dataclass(frozen=True)
class Packet6:
    src: str
    dst: str
    next_header: int
    raw: bytes

    @property
    def payload(self) -> bytes:
        return self.raw[40:]


def ipv6_of(frame: bytes) -> Packet6 | None:
    if len(frame) < 54 or frame[12:14] != b"\x86\xdd":
        return None
    data = frame[14:]
    length = int.from_bytes(data[4:6], "big")
    return Packet6(text(data[8:24]), text(data[24:40]), data[6], data[: 40 + length])


def gre_inner(frame: bytes) -> tuple[Packet6, Packet6] | None:
    """(outer, inner) of a GRE-in-IPv6 frame with the P14 header, else None."""
    outer = ipv6_of(frame)
    if outer is None or outer.next_header != GRE_PROTO or outer.payload[:4] != GRE_IPV6:
        return None
    inner = ipv6_of(bytes(12) + b"\x86\xdd" + outer.payload[4:])
    return None if inner is None else (outer, inner)


def is_echo_request(packet: Packet6) -> bool:
    return packet.next_header == ICMPV6_PROTO and packet.payload[:1] == b"\x80"


def solicited_ra(frame: bytes, router_link_local: str, mn_link_local: str) -> bool:
    packet = ipv6_of(frame)
    return (
        packet is not None
        and packet.next_header == ICMPV6_PROTO
        and packet.payload[:1] == b"\x86"
        and packet.src == router_link_local
        and packet.dst == mn_link_local
    )


# ----------------------------------------------------------------- the lab, through the CLI


def fama_lab(
    lab_id: str, *args: str, input_text: str | None = None, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``fama-lab --lab-id LAB_ID ARGS``; with ``check`` a failure fails the test."""
    result = subprocess.run(
        [str(FAMA_LAB), "--lab-id", lab_id, *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"fama-lab {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


@dataclass
class Rig:
    lab_id: str
    doc: dict[str, Any]
    up_wall_s: float
    hoa: str = ""
    identity: MobileNodeIdentity | None = None
    bul: BindingUpdateList | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> dict[str, Any]:
        return dict(self.doc["nodes"][name])

    def ns(self, name: str) -> Namespace:
        return Namespace(self.node(name)["namespace"])

    def run(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return fama_lab(self.lab_id, "exec", node, "--", *argv, check=check)

    def rest(self, path: str) -> Any:
        out = self.run("ctl", "curl", "-sS", "--max-time", "5", f"{self.doc['rest']['url']}{path}")
        return json.loads(out.stdout)

    def capture(self, node: str, bpf: str, name: str) -> PacketCapture:
        workdir = Path(self.doc["workdir"])
        return self.ns(node).capture("eth0", bpf, workdir / "test-captures" / name)

    def solicit_router(self, mn: str, router_link_local: str, name: str) -> Any:
        """Send an RS from ``mn`` and return the solicited RA (scapy) from that router."""
        mn_link_local = self.node(mn)["link_local"]
        with self.capture(mn, "icmp6", name) as cap:
            self.ns(mn).run([sys.executable, "-c", SEND_RS, "eth0"])
            frames = cap.wait_for(
                lambda f: solicited_ra(f, router_link_local, mn_link_local), timeout_s=5.0
            )
        return Ether(frames[0])

    def controller_log(self) -> str:
        try:
            return Path(self.node("ctl")["log"]).read_text(errors="replace")[-5000:]
        except OSError as exc:
            return f"(no controller log: {exc})"


def _require_prerequisites() -> None:
    try:
        check_prerequisites(need_ovs=True)
        missing = [tool for tool in ("tcpdump", "curl", "ss") if shutil.which(tool) is None]
        if missing:
            raise LabError(f"missing programs: {', '.join(missing)} (Debian packages)")
        for program in (FAMA_LAB, FAMA_CONTROLLER):
            if not program.exists():
                raise LabError(f"{program} not found: `.venv/bin/pip install -e .`")
    except LabError as exc:
        pytest.fail(
            f"fama-lab integration test needs root, Open vSwitch and the project: {exc}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    _require_prerequisites()
    lab_id = f"t{secrets.token_hex(3)}"
    started = time.monotonic()
    result = fama_lab(
        lab_id, "up", "--dars", "3", "--mns", "1", "--cns", "1", "--no-agent", check=False
    )
    up_wall_s = time.monotonic() - started
    try:
        if result.returncode != 0:
            pytest.fail(f"fama-lab up exited {result.returncode}\n{result.stderr}", pytrace=False)
        yield Rig(lab_id, json.loads(result.stdout), up_wall_s)
    finally:
        # Idempotent: test 7 normally did it already; this also cleans up after a failure.
        fama_lab(lab_id, "down", check=False)
        assert not _lab_namespaces(lab_id)


def _lab_namespaces(lab_id: str) -> list[str]:
    listed = run_command(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"{lab_id}-")]


# ----------------------------------------------------------------- tests (in order)


def test_1_up_describes_the_lab_and_every_dar_is_connected(rig: Rig) -> None:
    doc = rig.doc
    print(f"\n=== fama-lab up: {rig.up_wall_s:.2f} s wall, steps {doc['timings_s']} ===")
    assert doc["lab_id"] == rig.lab_id
    assert rig.up_wall_s < UP_BUDGET_S
    nodes = doc["nodes"]
    sw = f"{rig.lab_id}-sw"
    assert nodes["mn1"] == {
        "kind": "mn",
        "namespace": f"{rig.lab_id}-mn1",
        "interface": "eth0",
        "mac": "02:00:00:01:00:01",
        "link_local": "fe80::ff:fe01:1",
        "attached_to": "dar1",
        "link": "mn1-ap",
        "agent": None,
    }
    assert nodes["cn1"]["namespace"] == f"{rig.lab_id}-cn1"
    assert nodes["cn1"]["address"] == "2001:db8:ff00:1::10"
    for n in (1, 2, 3):
        dar = nodes[f"dar{n}"]
        assert dar["namespace"] == sw
        assert dar["dpid"] == f"{n:016x}"
        assert (dar["prefix"], dar["anchor"]) == (f"2001:db8:{n}::/64", f"2001:db8:{n}::1")
        assert dar["router_mac"] == f"02:00:00:00:d0:0{n}"
        assert dar["ports"]["access"]["name"] == f"d{n}-acc"
        assert dar["core_next_hop"]["address"] == f"2001:db8:{n}::fffe"
    ctl = nodes["ctl"]
    assert ctl["namespace"] == sw and ctl["rest_url"] == "http://127.0.0.1:8080"
    assert process_alive(ctl["pid"])
    assert nodes["core"]["namespace"] == f"{rig.lab_id}-core"
    assert doc["rest"]["namespace"] == sw and doc["rest"]["url"] == "http://127.0.0.1:8080"
    assert "exec ctl -- curl" in doc["rest"]["how"]
    assert Path(doc["state_file"]).is_file()
    assert set(_lab_namespaces(rig.lab_id)) == {
        f"{rig.lab_id}-{role}" for role in ("sw", "core", "mn1", "cn1")
    }
    dars = rig.rest("/fama/v1/dars")
    assert [(d["name"], d["connected"]) for d in dars] == [
        ("dar1", True),
        ("dar2", True),
        ("dar3", True),
    ]
    assert rig.rest("/fama/v1/bindings") == []


def test_2_every_bridge_has_the_fama_pipeline_and_its_own_tunnel_route(rig: Rig) -> None:
    for n in (1, 2, 3):
        name = f"dar{n}"
        flows = rig.run(name, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", name).stdout
        fama = [line for line in flows.splitlines() if "cookie=0xfa4d" in line]
        tables = {int(m.group(1)) for line in fama if (m := re.search(r"table=(\d+)", line))}
        assert tables >= {0, 1, 2, 3}, flows
        # Mobility Headers to the anchor are punted through a meter (flood guard).
        assert f"ipv6_dst=2001:db8:{n}::1,nw_proto=135 actions=meter:" in flows, flows
        assert f"ipv6_src=2001:db8:{n}::/64 actions=goto_table:2" in flows, flows
        ports = rig.run(name, "ovs-vsctl", "list-ports", name).stdout.split()
        assert sorted(ports) == sorted(f"d{n}-{p}" for p in ("acc", "core", "gre"))
        gre = rig.run(name, "ovs-vsctl", "get", "interface", f"d{n}-gre", "options").stdout
        assert f'egress_pkt_mark="{n}"' in gre and f'local_ip="2001:db8:{n}::1"' in gre, gre
        # A care-of address in another DAR's prefix still goes out of this DAR's bridge.
        other = 2 if n == 1 else 1
        lookup = rig.run(
            name, "ovs-appctl", "ovs/route/lookup", f"2001:db8:{other}::10", f"pkt_mark={n}"
        ).stdout
        assert f"src 2001:db8:{n}::1" in lookup and f"dev {name}" in lookup, lookup
    neighbours = rig.run("dar1", "ovs-appctl", "tnl/neigh/show").stdout
    for n in (1, 2, 3):
        assert re.search(rf"2001:db8:{n}::fffe\s+02:00:00:00:fe:0{n}\s+dar{n}", neighbours)
    assert rig.run("dar1", "ovs-appctl", "tnl/neigh/aging").stdout.strip() == "3600"


def test_3_mn_at_dar1_gets_its_ra_and_pings_the_cn(rig: Rig) -> None:
    dar1 = rig.node("dar1")
    ra = rig.solicit_router("mn1", dar1["link_local"], "ra-dar1.pcap")
    assert ra[Ether].src == dar1["router_mac"]
    pio = ra[ICMPv6NDOptPrefixInfo]
    assert (pio.prefix, pio.prefixlen, pio.R) == ("2001:db8:1::1", 64, 1)

    identity = MobileNodeIdentity.generate()
    prefix = ipaddress.IPv6Address("2001:db8:1::").packed[:8]
    home = configure_address(identity, prefix, 0, os.urandom)
    rig.identity, rig.hoa = identity, text(home.address)
    rig.notes["cga_params"] = home.params
    rig.run("mn1", "ip", "-6", "addr", "add", f"{rig.hoa}/64", "dev", "eth0", "nodad")
    rig.run("mn1", "ip", "-6", "route", "add", "default", "via", dar1["link_local"], "dev", "eth0")

    cn = rig.node("cn1")["address"]
    # The first reply to the HoA is punted while dar1 resolves mn1 (not buffered).
    wait_until(
        lambda: (
            rig.run("mn1", "ping", "-6", "-n", "-c", "1", "-W", "1", cn, check=False).returncode
            == 0
        ),
        10.0,
        interval_s=0.2,
        description="mn1 -> cn1 to get through",
    )
    result = rig.run("mn1", "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", cn)
    assert " 0% packet loss" in result.stdout, result.stdout


def test_4_move_re_plugs_mn1_into_dar2s_access_link(rig: Rig) -> None:
    before = time.time()
    result = fama_lab(rig.lab_id, "move", "mn1", "dar2")
    moved = json.loads(result.stdout)
    assert (moved["mn"], moved["from"], moved["to"]) == ("mn1", "dar1", "dar2")
    assert before <= moved["moved_at"] <= time.time()
    sw = rig.ns("dar1")
    link = json.loads(sw.run(["ip", "-j", "link", "show", "dev", "mn1-ap"]).stdout)[0]
    assert link["master"] == "ap2" and link["operstate"] == "UP"
    eth0 = json.loads(rig.run("mn1", "ip", "-j", "link", "show", "dev", "eth0").stdout)[0]
    assert "LOWER_UP" in eth0["flags"]

    dar2 = rig.node("dar2")
    ra = rig.solicit_router("mn1", dar2["link_local"], "ra-dar2.pcap")
    assert ra[Ether].src == dar2["router_mac"]
    assert ra[ICMPv6ND_RA].H == 1
    pio = ra[ICMPv6NDOptPrefixInfo]
    assert (pio.prefix, pio.prefixlen, pio.R, pio.A) == ("2001:db8:2::1", 64, 1, 1)


def test_5_binding_at_dar1_from_dar2_tunnels_with_dar1s_anchor_as_source(rig: Rig) -> None:
    dar1, dar2 = rig.node("dar1"), rig.node("dar2")
    assert rig.identity is not None
    # The MN is away from home: the HoA leaves the interface (the home prefix is
    # not on-link at dar2), the CoA comes from dar2's prefix, dar2 is the router.
    rig.run("mn1", "ip", "-6", "addr", "del", f"{rig.hoa}/64", "dev", "eth0")
    rig.run("mn1", "ip", "-6", "addr", "add", f"{COA}/64", "dev", "eth0", "nodad")
    rig.run(
        "mn1", "ip", "-6", "route", "replace", "default", "via", dar2["link_local"], "dev", "eth0"
    )
    cn = rig.node("cn1")["address"]
    # dar2 resolves the CoA on first use (the punted packet is not buffered).
    wait_until(
        lambda: (
            rig.run("cn1", "ping", "-6", "-n", "-c", "1", "-W", "1", COA, check=False).returncode
            == 0
        ),
        10.0,
        interval_s=0.2,
        description="cn1 -> CoA at dar2",
    )

    anchor1 = ipaddress.IPv6Address(dar1["anchor"]).packed
    bul = rig.bul = BindingUpdateList(rig.identity, os.urandom)
    bu = bul.register(
        ipaddress.IPv6Address(rig.hoa).packed,
        rig.notes["cga_params"],
        anchor1,
        ipaddress.IPv6Address(COA).packed,
        time.monotonic(),
        lifetime_s=600,
    )
    with rig.capture("mn1", f"ip6 and src host {dar1['anchor']}", "ba.pcap") as cap:
        rig.ns("mn1").run([sys.executable, "-c", SEND_IPV6, bu.hex()])
        try:
            frames = cap.wait_for(lambda f: (p := ipv6_of(f)) is not None and p.dst == COA)
        except LabError:
            pytest.fail(f"no Binding Ack from dar1 in mn1\n{rig.controller_log()}")
    ba = mh.parse_ipv6_packet(frames[0][14:])
    assert isinstance(ba.message, mh.BindingAck)
    assert ba.message.status == 0, f"BA status {ba.message.status}\n{rig.controller_log()}"
    assert text(ba.pseudo_destination) == rig.hoa  # RH2 carries the HoA (P12)
    outcome = bul.handle_binding_ack(ba, time.monotonic())
    assert outcome.result is AckResult.REGISTERED, outcome
    bindings = rig.rest("/fama/v1/bindings")
    assert [(b["hoa"], b["coa"], b["dar"]) for b in bindings] == [(rig.hoa, COA, "dar1")]

    # cn1 -> HoA: dar1 tunnels to the CoA; the CoA is in dar2's prefix, yet the
    # packet leaves dar1 with dar1's anchor as outer source (pkt_mark route).
    with rig.capture("mn1", "ip6 proto 47", "downlink.pcap") as cap:
        rig.run("cn1", "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", rig.hoa, check=False)
        try:
            frames = cap.wait_for(lambda f: gre_inner(f) is not None, 3, timeout_s=5.0)
        except LabError:
            seen = [ipv6_of(p.data) for p in cap.packets()]
            flows = rig.run("dar1", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "dar1").stdout
            pytest.fail(f"no tunnelled echo at mn1; captured {seen}\n{flows}")
    for frame in frames:
        tunnel = gre_inner(frame)
        assert tunnel is not None
        outer, inner = tunnel
        assert (outer.src, outer.dst) == (dar1["anchor"], COA), "outer source is not A_d1"
        assert (inner.src, inner.dst) == (cn, rig.hoa) and is_echo_request(inner)
    # ...and it crossed dar1's core port, then dar2's access link (not dar2's GRE port).
    assert frames[0][6:12] == bytes.fromhex(dar2["router_mac"].replace(":", ""))


def test_6_status_exec_second_up_and_no_root(rig: Rig) -> None:
    report = json.loads(fama_lab(rig.lab_id, "status").stdout)
    assert report["lab_id"] == rig.lab_id and report["up"] is True
    assert report["controller"]["alive"] is True and report["ovs"]["alive"] is True
    assert report["mns"]["mn1"] == {"attached_to": "dar2", "agent": None}
    assert report["nodes"]["mn1"]["attached_to"] == "dar2"
    assert [(b["hoa"], b["coa"]) for b in report["bindings"]] == [(rig.hoa, COA)]
    assert all(d["connected"] for d in report["dars"])

    echoed = fama_lab(
        rig.lab_id, "exec", "cn1", "--", "sh", "-c", "cat; exit 7", input_text="ping\n", check=False
    )
    assert (echoed.returncode, echoed.stdout) == (7, "ping\n")
    ovs_env = fama_lab(rig.lab_id, "exec", "dar3", "--", "ovs-vsctl", "br-exists", "dar3")
    assert ovs_env.returncode == 0  # exec in the sw namespace points OVS tools at the lab's OVS
    unknown = fama_lab(rig.lab_id, "exec", "mn9", "--", "true", check=False)
    assert unknown.returncode == 2 and "no node 'mn9'" in unknown.stderr

    again = fama_lab(rig.lab_id, "up", "--no-agent", check=False)
    assert again.returncode == 3 and "already up" in again.stderr, again.stderr
    assert again.stdout == ""
    assert process_alive(rig.node("ctl")["pid"])  # the running lab is untouched


def test_6b_without_root_or_without_ovs_up_stops_with_exit_code_2(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (the venv's interpreter is not reachable by an unprivileged user here)."""
    other = f"u{secrets.token_hex(3)}"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab.main(["--lab-id", other, "up", "--no-agent"]) == 2
    assert "must run as root" in capsys.readouterr().err
    assert lab.main(["--lab-id", other, "exec", "mn1", "--", "true"]) == 2
    assert "must run as root" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(netlab, "OVS_SCHEMA", Path("/nonexistent/vswitch.ovsschema"))
    assert lab.main(["--lab-id", other, "up", "--no-agent"]) == 2
    assert "Open vSwitch schema" in capsys.readouterr().err
    assert not _lab_namespaces(other) and not (STATE_DIR / f"{other}.json").exists()


def test_7_down_removes_everything_and_is_idempotent(rig: Rig) -> None:
    state_file = Path(rig.doc["state_file"])
    recorded = json.loads(state_file.read_text())["resources"]
    pids = [(r["pid"], r["start_time"]) for r in recorded if r["kind"] == "process"]
    assert len(pids) == 3  # ovsdb-server, ovs-vswitchd, the controller
    result = fama_lab(rig.lab_id, "down")
    report = json.loads(result.stdout)
    assert report["was_up"] is True and report["removed"] == len(recorded)
    assert not _lab_namespaces(rig.lab_id)
    assert not any(process_alive(pid, start) for pid, start in pids)
    assert not state_file.exists() and not Path(rig.doc["workdir"]).exists()
    again = json.loads(fama_lab(rig.lab_id, "down").stdout)
    assert again == {"lab_id": rig.lab_id, "removed": 0, "was_up": False}
    missing = fama_lab(rig.lab_id, "status", check=False)
    assert missing.returncode == 1 and "no lab" in missing.stderr


# A stand-in for the MN agent with the CLI of `fama-mn`: `run` records how it was
# started and waits for SIGTERM; `status` prints what `run` recorded (JSON).
AGENT_STUB = r"""
import json, os, signal, sys, time
args = sys.argv[1:]
state_dir = args[args.index("--state-dir") + 1]
path = os.path.join(state_dir, "stub-status.json")
if args[0] == "status":
    sys.stdout.write(open(path).read())
    sys.exit(0)
with open(path, "w") as stream:
    json.dump({"argv": args, "pid": os.getpid(), "state": "running"}, stream)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""


def test_8_up_starts_one_agent_per_mn_and_down_stops_them(tmp_path: Path) -> None:
    stub = tmp_path / "fama-mn-stub"
    stub.write_text(f"#!{sys.executable}\n{AGENT_STUB}")
    stub.chmod(0o755)
    lab_id = f"t{secrets.token_hex(3)}"
    env = {**os.environ, "FAMA_LAB_AGENT": str(stub)}
    try:
        result = fama_lab(lab_id, "up", "--dars", "1", "--mns", "2", "--cns", "0", env=env)
        doc = json.loads(result.stdout)
        assert doc["agents"] is True
        agents = {}
        for k in (1, 2):
            mn = doc["nodes"][f"mn{k}"]
            agent = agents[k] = mn["agent"]
            assert agent["program"] == str(stub) and process_alive(agent["pid"])
            identify = run_command(["ip", "netns", "identify", str(agent["pid"])]).stdout
            assert identify.strip() == mn["namespace"] == f"{lab_id}-mn{k}"
        report = json.loads(fama_lab(lab_id, "status", env=env).stdout)
        for k in (1, 2):
            seen = report["mns"][f"mn{k}"]["agent"]
            assert seen["alive"] is True
            assert seen["status"] == {
                "argv": ["run", "--interface", "eth0", "--state-dir", agents[k]["state_dir"]],
                "pid": agents[k]["pid"],
                "state": "running",
            }
        fama_lab(lab_id, "down")
        assert not any(process_alive(agent["pid"]) for agent in agents.values())
    finally:
        fama_lab(lab_id, "down", check=False)
    assert not _lab_namespaces(lab_id)
