"""Integration test: the netlab harness and the DAR data plane with hand-written flows.

Builds the Part-1 topology of ``docs/lab-notes.md`` with :mod:`fama_ryu.netlab`
(real namespaces, veths and an Open vSwitch userspace-datapath instance in its
own namespace, no controller) and checks with real packets:

(a) ICMPv6 from CN to the HoA is GRE-in-IPv6 encapsulated at DAR1, outer
    A_d -> CoA, GRE protocol 0x86DD, no key/checksum/sequence (P14, P15);
(b) GRE from the CoA carrying HoA -> CN is decapsulated, routed to the core
    port with MACs rewritten and hop limit decremented, delivered to CN; inner
    sources not bound to the CoA and other outer sources are dropped (P15);
(c) plain routing between a node at home (MNH) and CN with host entries;
(d) TCP across the DAR: MNH <-> CN, and CN <-> HoA through the tunnel with a
    user-space GRE end in the visited namespace (the kernel has no ip6gre);
and that teardown (in-process and from the JSON state file by another
process) removes exactly what the lab created.

Needs root and Open vSwitch (``make system-deps``); fails, not skips, without.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fama_ryu.netlab import (
    Lab,
    LabError,
    Namespace,
    OvsInstance,
    check_prerequisites,
    link_local_from_mac,
    process_alive,
    run_command,
    wait_until,
)

pytestmark = pytest.mark.integration

# Addresses of the Part-1 topology (docs/lab-notes.md).
A_D = "2001:db8:1::1"  # DAR1 anchor address (P1), on the bridge's LOCAL port
ACCESS_PREFIX = "2001:db8:1::/64"
CORE_UPLINK = "2001:db8:1::fffe"  # core's address on the DAR link (/128 on core)
HOA = "2001:db8:1::10"  # MN's home address, anchored at DAR1
MNH = "2001:db8:1::20"  # a node at home on DAR1's access port
COA = "2001:db8:2::10"  # MN's care-of address in the visited network
ROGUE = "2001:db8:2::11"  # another address in the visited network (not bound)
CN = "2001:db8:ff00::10"  # correspondent node
DAR_MAC = "02:00:00:00:d1:01"
CORE_PORT, ACCESS_PORT, GRE_PORT = 1, 2, 10
GRE_IPV6 = b"\x00\x00\x86\xdd"  # GRE header: no C/K/S flags, version 0, protocol 0x86DD


def dar_flows(core_mac: str, mnh_mac: str) -> list[str]:
    """The minimal hand-written DAR1 pipeline (no controller)."""
    route_to_core = f"set_field:{DAR_MAC}->eth_src,set_field:{core_mac}->eth_dst,dec_ttl"
    return [
        # DAR1's own traffic to the core, and the GRE packets after tnl_push: OVS
        # re-enters the encapsulated packet into the bridge as if from LOCAL.
        f"priority=100,in_port=LOCAL actions=output:{CORE_PORT}",
        # Everything else from the core is for DAR1 itself: ND, and GRE to A_d
        # (tnl_pop happens on output to LOCAL when eth_dst is the bridge MAC).
        f"priority=10,in_port={CORE_PORT} actions=output:LOCAL",
        # P15 downlink: packets to the HoA are tunnelled to the CoA.
        f"priority=200,in_port={CORE_PORT},ipv6,ipv6_dst={HOA} "
        f"actions=dec_ttl,set_field:{COA}->tun_ipv6_dst,output:{GRE_PORT}",
        # P15 uplink: only the HoA bound to this CoA is decapsulated and routed.
        f"priority=200,in_port={GRE_PORT},ipv6,tun_ipv6_src={COA},ipv6_src={HOA} "
        f"actions={route_to_core},output:{CORE_PORT}",
        # Home routing: host entry for MNH, and MNH's traffic to the core.
        f"priority=200,in_port={CORE_PORT},ipv6,ipv6_dst={MNH} "
        f"actions=set_field:{DAR_MAC}->eth_src,set_field:{mnh_mac}->eth_dst,dec_ttl,"
        f"output:{ACCESS_PORT}",
        f"priority=200,in_port={ACCESS_PORT},ipv6,eth_dst={DAR_MAC},ipv6_src={MNH} "
        f"actions={route_to_core},output:{CORE_PORT}",
    ]


@dataclass
class Topology:
    lab: Lab
    dar_ns: Namespace
    core: Namespace
    cn: Namespace
    mnv: Namespace
    mnh: Namespace
    ovs: OvsInstance
    core_mac: str
    mnh_mac: str


def build_topology(lab: Lab) -> Topology:
    dar_ns = lab.namespace("lab")
    core, cn, mnv, mnh = (lab.namespace(role) for role in ("core", "cn", "mnv", "mnh"))
    lab.veth(dar_ns, "dar1-core", core, "core-dar1", switch_side="a")
    lab.veth(dar_ns, "dar1-acc", mnh, "eth0", switch_side="a")
    lab.veth(core, "core-cn", cn, "eth0")
    lab.veth(core, "core-mnv", mnv, "eth0")

    core.set_ipv6_forwarding(True)
    core.add_address("core-dar1", f"{CORE_UPLINK}/128")
    core.add_address("core-cn", "2001:db8:ff00::1/64")
    core.add_address("core-mnv", "2001:db8:2::1/64")
    core.add_route(ACCESS_PREFIX, via=link_local_from_mac(DAR_MAC), device="core-dar1")
    cn.add_address("eth0", f"{CN}/64")
    cn.add_route("default", via="2001:db8:ff00::1")
    mnv.add_address("eth0", f"{COA}/64")
    mnv.add_address("eth0", f"{ROGUE}/64")
    mnv.add_route("default", via="2001:db8:2::1")
    mnh.add_address("eth0", f"{MNH}/64")
    mnh.add_neighbour("eth0", A_D, DAR_MAC)
    mnh.add_route("default", via=A_D)

    ovs = lab.ovs(dar_ns)
    ovs.add_netdev_bridge("dar1", hwaddr=DAR_MAC)
    ovs.add_port("dar1", "dar1-core", ofport=CORE_PORT)
    ovs.add_port("dar1", "dar1-acc", ofport=ACCESS_PORT)
    ovs.add_port(
        "dar1",
        "dar1-gre",
        ofport=GRE_PORT,
        port_type="gre",
        options={"remote_ip": "flow", "local_ip": A_D, "packet_type": "legacy_l3"},
    )
    # The LOCAL port is a tap in the DAR namespace: never autoconfigure from RAs.
    dar_ns.sysctl("net/ipv6/conf/dar1/accept_ra", 0)
    dar_ns.set_link_up("dar1")
    dar_ns.add_address("dar1", f"{A_D}/64")
    # The next hop lies inside A_d's /64 so that OVS 3.1 picks A_d as the outer
    # source (it takes the address of the bridge port covering the gateway).
    dar_ns.add_route("default", via=CORE_UPLINK, device="dar1")
    wait_until(
        lambda: f"src {A_D}" in ovs.appctl("ovs/route/lookup", COA),
        5.0,
        description=f"OVS to cache a route to {COA} with source {A_D}",
    )
    core_mac = core.mac_address("core-dar1")
    mnh_mac = mnh.mac_address("eth0")
    # Without this the first tunnelled packet is lost while OVS resolves the next hop.
    ovs.appctl("tnl/neigh/set", "dar1", CORE_UPLINK, core_mac)
    ovs.add_flows("dar1", dar_flows(core_mac, mnh_mac))
    return Topology(lab, dar_ns, core, cn, mnv, mnh, ovs, core_mac, mnh_mac)


def _require_lab_prerequisites() -> None:
    try:
        check_prerequisites(need_ovs=True)
    except LabError as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(f"integration test needs root and Open vSwitch: {problem}", pytrace=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory (pytest's tmp_path is too long for OVS Unix sockets)."""
    path = Path(tempfile.mkdtemp(prefix="fltest"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    _require_lab_prerequisites()
    lab = Lab().open()
    try:
        topology = build_topology(lab)
    except BaseException as exc:
        with contextlib.suppress(LabError):
            lab.close()
        exc.add_note(f"lab {lab.lab_id} failed to build; OVS logs were in {lab.workdir}")
        raise
    try:
        yield topology
    finally:
        lab.close()  # no-op if test_teardown_removes_everything closed it


# --------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class IPv6Packet:
    src: str
    dst: str
    next_header: int
    hop_limit: int
    payload: bytes


def parse_ipv6(data: bytes) -> IPv6Packet | None:
    if len(data) < 40 or data[0] >> 4 != 6:
        return None
    length, next_header, hop_limit = struct.unpack("!HBB", data[4:8])
    return IPv6Packet(
        src=str(ipaddress.IPv6Address(data[8:24])),
        dst=str(ipaddress.IPv6Address(data[24:40])),
        next_header=next_header,
        hop_limit=hop_limit,
        payload=data[40 : 40 + length],
    )


def ipv6_of_frame(frame: bytes) -> IPv6Packet | None:
    return parse_ipv6(frame[14:]) if frame[12:14] == b"\x86\xdd" else None


def echo_ident(packet: IPv6Packet | None) -> int | None:
    """ICMPv6 echo identifier of ``packet`` (request or reply), else None."""
    if packet is None or packet.next_header != 58 or packet.payload[:1] not in (b"\x80", b"\x81"):
        return None
    return int(struct.unpack("!H", packet.payload[4:6])[0])


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmpv6_echo_request(src: str, dst: str, ident: int, seq: int = 1, hop_limit: int = 64) -> bytes:
    """An IPv6 packet with an ICMPv6 echo request, checksum filled in."""
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    icmp = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"fama-netlab"
    pseudo = s + d + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp)) + icmp[4:]
    return struct.pack("!IHBB", 6 << 28, len(icmp), 58, hop_limit) + s + d + icmp


# Sends GRE payloads with the kernel writing the outer IPv6 header (no ip6gre needed).
GRE_SENDER = r"""
import socket, sys
for spec in sys.argv[1:]:
    outer_src, outer_dst, gre_hex = spec.split(",")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 47)
    sock.bind((outer_src, 0))
    sock.sendto(bytes.fromhex(gre_hex), (outer_dst, 0))
    sock.close()
"""

# User-space GRE end for the MN in the visited network: TUN <-> raw GRE socket.
GRE_TUN_RELAY = r"""
import fcntl, os, select, socket, struct, sys
tun_name, local, remote, ready_file = sys.argv[1:5]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", tun_name.encode(), 0x0001 | 0x1000))
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 47)
raw.bind((local, 0))
gre = struct.pack("!HH", 0, 0x86DD)
open(ready_file, "w").write("ready\n")
while True:
    readable, _, _ = select.select([tun, raw], [], [])
    if tun in readable:
        packet = os.read(tun, 65535)
        if packet[:1] and packet[0] >> 4 == 6:
            raw.sendto(gre + packet, (remote, 0))
    if raw in readable:
        data, peer = raw.recvfrom(65535)
        if peer[0] == remote and data[:4] == gre:
            os.write(tun, data[4:])
"""

TCP_SERVER = r"""
import hashlib, socket, sys
port, ready_file = int(sys.argv[1]), sys.argv[2]
server = socket.socket(socket.AF_INET6)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("::", port))
server.listen(1)
server.settimeout(20)
open(ready_file, "w").write("listening\n")
conn, _ = server.accept()
conn.settimeout(20)
digest, total = hashlib.sha256(), 0
while chunk := conn.recv(65536):
    digest.update(chunk)
    total += len(chunk)
conn.sendall(f"{total} {digest.hexdigest()}".encode())
conn.close()
"""

TCP_CLIENT = r"""
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytes(i % 251 for i in range(size))
conn = socket.create_connection((host, port), timeout=20)
conn.sendall(data)
conn.shutdown(socket.SHUT_WR)
print(conn.recv(200).decode())
"""


def tcp_transfer(
    topo: Topology,
    server: Namespace,
    client: Namespace,
    address: str,
    port: int,
    size: int = 1 << 20,
) -> str:
    """Send ``size`` bytes over TCP from ``client`` to ``server`` at ``address``; return
    the server's ``"<bytes> <sha256>"`` receipt."""
    ready = topo.lab.path(f"tcp-{port}.ready")
    proc = server.popen(
        [sys.executable, "-c", TCP_SERVER, str(port), str(ready)], description=f"tcp server :{port}"
    )
    try:
        wait_until(ready.exists, 5.0, description=f"TCP server on port {port}")
        result = client.run(
            [sys.executable, "-c", TCP_CLIENT, address, str(port), str(size)], timeout_s=30
        )
        return result.stdout.strip()
    finally:
        server.stop(proc)


def expected_receipt(size: int = 1 << 20) -> str:
    import hashlib

    return f"{size} {hashlib.sha256(bytes(i % 251 for i in range(size))).hexdigest()}"


# --------------------------------------------------------------------------- tests


def test_setup_facts(topo: Topology) -> None:
    """The facts the data plane relies on hold in the built topology."""
    route = topo.ovs.appctl("ovs/route/lookup", COA)
    assert f"src {A_D}" in route and f"gateway {CORE_UPLINK}" in route
    assert CORE_UPLINK in topo.ovs.appctl("tnl/neigh/show")
    for ns, device in ((topo.mnh, "eth0"), (topo.core, "core-dar1"), (topo.dar_ns, "dar1-core")):
        features = ns.run(["ethtool", "-k", device]).stdout
        assert "tx-checksumming: off" in features, (ns, device)
    for device in ("dar1-core", "dar1-acc"):
        assert topo.dar_ns.read_sysctl(f"net/ipv6/conf/{device}/disable_ipv6") == "1"
    assert len(topo.ovs.dump_flows("dar1")) == len(dar_flows(topo.core_mac, topo.mnh_mac))


def test_a_downlink_to_hoa_is_gre_encapsulated_to_coa(topo: Topology) -> None:
    with topo.mnv.capture("eth0", "ip6 proto 47", topo.lab.path("a-mnv.pcap")) as cap:
        topo.cn.run(["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", HOA], check=False)
        frames = cap.wait_for(lambda f: (p := ipv6_of_frame(f)) is not None and p.dst == COA, 3)
    seqs = []
    for frame in frames:
        outer = ipv6_of_frame(frame)
        assert outer is not None
        assert (outer.src, outer.dst, outer.next_header) == (A_D, COA, 47)
        assert outer.hop_limit == 63  # 64 from OVS, minus the core router
        assert outer.payload[:4] == GRE_IPV6  # 4-byte GRE header: no key, checksum, sequence
        inner = parse_ipv6(outer.payload[4:])
        assert inner is not None and (inner.src, inner.dst) == (CN, HOA)
        assert inner.payload[0] == 128  # echo request
        assert inner.hop_limit == 62  # 64 from CN, minus core, minus DAR1
        seqs.append(struct.unpack("!H", inner.payload[6:8])[0])
    assert seqs == [1, 2, 3]  # the first packet is not lost (tnl/neigh/set)


def test_b_uplink_gre_from_coa_is_decapsulated_and_routed(topo: Topology) -> None:
    good, spoofed_inner, foreign_outer = 0x600D, 0xBAD1, 0xBAD2
    specs = [  # sent in this order; the good one last proves the others were processed
        (COA, icmpv6_echo_request("2001:db8:1::99", CN, spoofed_inner)),
        (ROGUE, icmpv6_echo_request(HOA, CN, foreign_outer)),
        (COA, icmpv6_echo_request(HOA, CN, good)),
    ]
    args = [f"{src},{A_D},{(GRE_IPV6 + inner).hex()}" for src, inner in specs]
    core_cap = topo.core.capture("core-dar1", "icmp6", topo.lab.path("b-core.pcap"))
    cn_cap = topo.cn.capture("eth0", "icmp6", topo.lab.path("b-cn.pcap"))
    with core_cap, cn_cap:
        topo.mnv.run([sys.executable, "-c", GRE_SENDER, *args])
        delivered = cn_cap.wait_for(lambda f: echo_ident(ipv6_of_frame(f)) == good)
        routed = core_cap.wait_for(
            lambda f: (
                echo_ident(ipv6_of_frame(f)) == good
                and f[6:12] == bytes.fromhex(DAR_MAC.replace(":", ""))
            )
        )
    frame = routed[0]
    assert frame[0:6] == bytes.fromhex(topo.core_mac.replace(":", ""))
    packet = ipv6_of_frame(frame)
    assert packet is not None and (packet.src, packet.dst) == (HOA, CN)
    assert packet.hop_limit == 63  # decremented once by DAR1
    at_cn = ipv6_of_frame(delivered[0])
    assert at_cn is not None and at_cn.hop_limit == 62
    seen = {echo_ident(ipv6_of_frame(p.data)) for cap in (core_cap, cn_cap) for p in cap.packets()}
    assert spoofed_inner not in seen, "inner source not bound to the CoA was forwarded"
    assert foreign_outer not in seen, "HoA from a foreign outer source was forwarded"


def test_c_home_routing_between_mnh_and_cn(topo: Topology) -> None:
    for ns, target in ((topo.mnh, CN), (topo.cn, MNH)):
        result = ns.run(
            ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", target], check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert " 0% packet loss" in result.stdout


def test_d_tcp_across_the_dar(topo: Topology) -> None:
    expected = expected_receipt()
    assert tcp_transfer(topo, topo.cn, topo.mnh, CN, 5101) == expected  # MNH -> CN
    assert tcp_transfer(topo, topo.mnh, topo.cn, MNH, 5102) == expected  # CN -> MNH

    ready = topo.lab.path("relay.ready")
    relay = topo.mnv.popen(
        [sys.executable, "-c", GRE_TUN_RELAY, "hoa0", COA, A_D, str(ready)],
        description="user-space GRE end of the MN",
    )
    try:
        wait_until(ready.exists, 5.0, description="GRE relay in mnv")
        topo.mnv.run(["ip", "link", "set", "dev", "hoa0", "mtu", "1456", "up"])  # 1500-40-4
        topo.mnv.add_address("hoa0", f"{HOA}/128")
        topo.mnv.add_route(f"{CN}/128", device="hoa0", source=HOA)
        assert tcp_transfer(topo, topo.cn, topo.mnv, CN, 5103) == expected  # HoA -> CN (uplink)
        assert tcp_transfer(topo, topo.mnv, topo.cn, HOA, 5104) == expected  # CN -> HoA (downlink)
    finally:
        topo.mnv.stop(relay)


def test_teardown_removes_everything(topo: Topology) -> None:
    lab = topo.lab
    records = lab.recorded()
    namespaces = [r["name"] for r in records if r["kind"] == "namespace"]
    processes = [r for r in records if r["kind"] == "process"]
    assert len(namespaces) == 5
    assert {r["description"] for r in processes} == {"ovsdb-server", "ovs-vswitchd"}
    assert topo.ovs.is_running()

    lab.close()

    listed = run_command(["ip", "netns", "list"]).stdout
    assert not [line for line in listed.splitlines() if line.startswith(lab.lab_id)]
    assert not any(Namespace(name).exists() for name in namespaces)
    assert not [r for r in processes if process_alive(r["pid"], r["start_time"])]
    assert not _processes_mentioning(str(lab.workdir))
    assert not lab.state_file.exists() and not lab.workdir.exists()
    assert lab.leftovers() == []


def test_down_from_state_file_in_another_process(short_tmp: Path) -> None:
    _require_lab_prerequisites()
    bystander = Namespace(f"flby{os.getpid()}")
    bystander.create()
    lab = Lab(state_dir=short_tmp).open()
    try:
        a = lab.namespace("a")
        b = lab.namespace("b")
        lab.veth(a, "br0-b", b, "eth0", switch_side="a")
        ovs = lab.ovs(a)
        ovs.add_netdev_bridge("br0")
        ovs.add_port("br0", "br0-b", ofport=1)
        sleeper = b.popen(["sleep", "60"], description="sleeper")
        assert lab.state_file.exists()

        run_command(
            [
                sys.executable,
                "-c",
                "import sys; from fama_ryu.netlab import Lab; "
                "Lab.down(sys.argv[1], state_dir=sys.argv[2])",
                lab.lab_id,
                str(short_tmp),
            ],
            timeout_s=30,
        )
        assert sleeper.wait(timeout=5) is not None
        assert not a.exists() and not b.exists()
        assert not ovs.is_running()
        assert not _processes_mentioning(str(lab.workdir))
        assert not lab.state_file.exists() and not lab.workdir.exists()
        assert bystander.exists(), "down removed a namespace it did not create"
    finally:
        lab.close()
        bystander.delete()


def test_failure_inside_lab_still_tears_down(tmp_path: Path) -> None:
    _require_lab_prerequisites()
    with pytest.raises(RuntimeError, match="boom"), Lab(state_dir=tmp_path, need_ovs=False) as lab:
        ns = lab.namespace("x")
        proc = ns.popen(["sleep", "60"])
        raise RuntimeError("boom")
    assert not ns.exists()
    assert proc.poll() is not None
    assert Lab.state_files(tmp_path) == []


def test_prerequisite_errors_are_precise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"missing programs: .*ovs-vswitchd"):
        check_prerequisites(search_path=str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="must run as root"):
        check_prerequisites(need_ovs=False)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (read-only scan of /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes() and process_alive(
                    int(entry.name)
                ):
                    found.append(int(entry.name))
    return found
