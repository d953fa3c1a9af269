"""Integration test: the ``fama-mn`` agent in a real namespace against a fake DAR.

Topology (:mod:`fama_ryu.netlab`, no Open vSwitch)::

    mn: eth0  <-- veth -->  dar: acc
    (fama-mn run)            fake DAR in this test process: two personalities,
                             DAR1 (fe80::d1, A_1 = 2001:db8:1::1, 2001:db8:1::/64)
                             DAR2 (fe80::d2, A_2 = 2001:db8:2::1, 2001:db8:2::/64)

The fake DAR opens its sockets inside the ``dar`` namespace (``setns`` of
one thread, which is switched back at once) and runs them on threads:

* an AF_PACKET socket on ``acc``: it answers Router Solicitations and sends
  unsolicited RAs built with ``fama_ryu.icmpv6.build_router_advertisement``
  (P2), and answers Binding Updates with the decisions of a real
  ``fama_ryu.home_agent.HomeAgent`` per personality, so BAs carry real PHKTs
  and authenticators (P6, P9, P11, P12);
* a raw GRE socket: it records GRE-in-IPv6 packets and sends them (P14).

The ``dar`` kernel holds both link-local router addresses and both anchor
addresses, so it answers the MN's neighbour solicitations and accepts GRE.

Steps, in file order on one shared lab: attach to DAR1 (CGA in prefix 1);
move to DAR2 (CGA in prefix 2, the first deprecated on the tunnel device, a
CGA-signed BU accepted by DAR1, status REGISTERED with the PHKT held); UDP
uplink from the HoA leaves GRE-encapsulated CoA -> A_1; GRE downlink from A_1
reaches a UDP socket bound to the HoA; move back (deregistration with
CoA == HoA, the second address now kept and registered at DAR2); SIGTERM
removes the tunnel device, rules and routes.

Needs root (``ip netns``, packet sockets, TUN); fails, not skips, without.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet6 import UDP, IPv6

from fama_ryu import icmpv6, mh
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig, Verdict
from fama_ryu.mn_agent import TUNNEL_RULE_PRIORITY, TUNNEL_TABLE
from fama_ryu.mn_tunnel import DEFAULT_DEVICE, GRE_HEADER, IPPROTO_GRE
from fama_ryu.netlab import Lab, LabError, Namespace, check_prerequisites, wait_until

pytestmark = pytest.mark.integration

FAMA_MN = str(Path(sys.executable).with_name("fama-mn"))
CN = "2001:db8:ff::10"  # a correspondent "behind" the fake DAR
ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
PACKET_OUTGOING = 4


def _addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


@dataclass(frozen=True)
class Personality:
    """One DAR the fake plays: its router link-local, prefix and anchor (P1, P2)."""

    name: str
    link_local: str
    prefix: str
    anchor: str

    @property
    def prefix_bytes(self) -> bytes:
        return _addr(self.prefix)[:8]


DAR1 = Personality("dar1", "fe80::d1", "2001:db8:1::", "2001:db8:1::1")
DAR2 = Personality("dar2", "fe80::d2", "2001:db8:2::", "2001:db8:2::1")


# ---------------------------------------------------------------- namespaces

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside(namespace: Namespace) -> Iterator[None]:
    """Run the block with this thread in ``namespace``: sockets made there stay there."""
    with (
        open("/proc/thread-self/ns/net") as own,
        open(f"/run/netns/{namespace.name}") as target,
    ):
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace.name}")
        try:
            yield
        finally:
            if _libc.setns(own.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


# ---------------------------------------------------------------- fake DAR


@dataclass
class ReceivedBu:
    at: float
    packet: mh.MobilityPacket
    verdict: Verdict
    status: int | None
    ba_sent_at: float | None


@dataclass
class ReceivedGre:
    at: float
    source: str
    destination: str
    data: bytes


@dataclass
class FakeDar:
    """RAs, a HomeAgent per personality, and a GRE end, in the ``dar`` namespace."""

    namespace: Namespace
    interface: str
    mac: bytes
    personality: Personality = DAR1
    solicitations: list[float] = field(default_factory=list)
    binding_updates: list[ReceivedBu] = field(default_factory=list)
    gre_packets: list[ReceivedGre] = field(default_factory=list)
    ra_sent_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home_agents = {
            personality.anchor: HomeAgent(
                HomeAgentConfig(
                    name=personality.name,
                    anchor_address=_addr(personality.anchor),
                    home_prefixes=(personality.prefix_bytes,),
                    local_prefixes=(personality.prefix_bytes,),
                ),
                rng=os.urandom,
            )
            for personality in (DAR1, DAR2)
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()
        with inside(self.namespace):
            self.packet_socket = socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
            )
            self.packet_socket.bind((self.interface, ETH_P_ALL))
            self.gre_socket = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_GRE)
            self.gre_socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        for sock in (self.packet_socket, self.gre_socket):
            sock.settimeout(0.1)
        self._threads = [
            threading.Thread(target=self._serve_frames, daemon=True),
            threading.Thread(target=self._serve_gre, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.packet_socket.close()
        self.gre_socket.close()

    # ------------------------------------------------------------ RAs

    def advertise(self, personality: Personality) -> float:
        """Become ``personality`` and send an unsolicited RA to all nodes; return when."""
        with self._lock:
            self.personality = personality
        return self._send_ra(icmpv6.ALL_NODES, icmpv6.multicast_mac(icmpv6.ALL_NODES))

    def _send_ra(self, destination: bytes, destination_mac: bytes) -> float:
        with self._lock:
            personality = self.personality
        frame = icmpv6.build_router_advertisement(
            router_mac=self.mac,
            router_link_local=_addr(personality.link_local),
            destination=destination,
            destination_mac=destination_mac,
            prefixes=[
                icmpv6.AdvertisedPrefix(
                    prefix=_addr(personality.prefix), router_address=_addr(personality.anchor)
                )
            ],
        )
        sent_at = time.monotonic()
        self.packet_socket.send(frame)
        self.ra_sent_at.append(sent_at)
        return sent_at

    # ------------------------------------------------------------ frames

    def _serve_frames(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self.packet_socket.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:  # ENETDOWN once after the link went down; closed at the end
                continue
            if address[2] == PACKET_OUTGOING:
                continue
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        try:
            nd = icmpv6.parse_nd_frame(frame)
        except icmpv6.NdParseError:
            nd = None
        if nd is not None:
            if nd.icmp_type == icmpv6.ROUTER_SOLICITATION:
                self.solicitations.append(time.monotonic())
                if nd.sender_mac is not None and nd.source != icmpv6.UNSPECIFIED:
                    self._send_ra(nd.source, nd.sender_mac)
                else:
                    self._send_ra(icmpv6.ALL_NODES, icmpv6.multicast_mac(icmpv6.ALL_NODES))
            return
        try:
            packet = mh.parse_ethernet_frame(frame)
        except mh.MobilityParseError:
            return
        received_at = time.monotonic()
        home_agent = self.home_agents.get(str(ipaddress.IPv6Address(packet.destination)))
        if home_agent is None:
            return
        decision = home_agent.handle(packet, received_at)
        if decision.change is not None:
            home_agent.apply(decision.change)
        ba_sent_at = None
        if decision.reply is not None:
            self.packet_socket.send(
                mh.build_ethernet_frame(self.mac, frame[6:12], decision.reply.packet)
            )
            ba_sent_at = time.monotonic()
        self.binding_updates.append(
            ReceivedBu(received_at, packet, decision.verdict, decision.status, ba_sent_at)
        )

    # ------------------------------------------------------------ GRE

    def _serve_gre(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, sender = self.gre_socket.recvmsg(
                    65535, socket.CMSG_SPACE(20)
                )
            except TimeoutError:
                continue
            except OSError:
                continue
            destination = next(
                str(ipaddress.IPv6Address(cmsg[:16]))
                for level, kind, cmsg in ancillary
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO
            )
            self.gre_packets.append(ReceivedGre(time.monotonic(), sender[0], destination, data))

    def send_gre(self, source: str, destination: str, inner: bytes) -> None:
        self.gre_socket.sendmsg(
            [GRE_HEADER + inner],
            [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _addr(source) + bytes(4))],
            0,
            (destination, 0),
        )


# ---------------------------------------------------------------- lab


@dataclass
class Setup:
    lab: Lab
    mn: Namespace
    dar: Namespace
    fake: FakeDar
    agent: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    facts: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        result = subprocess.run(
            [FAMA_MN, "status", "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


def _global_addresses(setup: Setup, device: str, prefix: Personality) -> list[dict[str, Any]]:
    network = ipaddress.IPv6Network(f"{prefix.prefix}/64")
    present = setup.mn.run(["ip", "link", "show", "dev", device], check=False).returncode == 0
    if not present:
        return []
    return [
        info
        for info in setup.mn.ipv6_addresses(device)
        if ipaddress.IPv6Address(info["local"]) in network
    ]


def _require_root() -> None:
    try:
        check_prerequisites(need_ovs=False)
    except LabError as exc:
        pytest.fail(f"integration test needs root and iproute2: {exc}", pytrace=False)
    if not Path("/dev/net/tun").exists():
        pytest.fail("integration test needs /dev/net/tun", pytrace=False)
    if not Path(FAMA_MN).exists():
        pytest.fail(f"{FAMA_MN} missing: run `.venv/bin/pip install -e .`", pytrace=False)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    _require_root()
    work = Path(tempfile.mkdtemp(prefix="fmn"))
    lab = Lab(need_ovs=False).open()
    fake: FakeDar | None = None
    try:
        mn, dar = lab.namespace("mn"), lab.namespace("dar")
        lab.veth(mn, "eth0", dar, "acc")
        # The link-flap step takes acc down: its addresses must survive that.
        dar.sysctl("net/ipv6/conf/acc/keep_addr_on_down", 1)
        for address in (DAR1.link_local, DAR2.link_local):
            dar.add_address("acc", f"{address}/64")
        for personality in (DAR1, DAR2):
            dar.add_address("acc", f"{personality.anchor}/64")
        mac = bytes.fromhex(dar.mac_address("acc").replace(":", ""))
        fake = FakeDar(dar, "acc", mac)
        state_dir = work / "state"
        log_path = work / "agent.log"
        run_args = ["run", "--interface", "eth0", "--keep", "all", "--state-dir", str(state_dir)]
        with log_path.open("wb") as log:
            agent = mn.popen(
                [FAMA_MN, *run_args],
                stderr=log,
                description="fama-mn",
            )
        the_setup = Setup(lab, mn, dar, fake, agent, state_dir, log_path)
        yield the_setup
        if agent.poll() is None:
            mn.stop(agent)
        print("\n--- fama-mn log ---\n" + the_setup.log())
    finally:
        if fake is not None:
            fake.close()
        lab.close()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- steps


def test_attach_configures_a_cga_in_prefix_1(setup: Setup) -> None:
    wait_until(lambda: setup.fake.solicitations, 10, description="a Router Solicitation")
    attached = wait_until(
        lambda: _global_addresses(setup, "eth0", DAR1), 10, description="a CGA in prefix 1"
    )
    assert len(attached) == 1
    setup.facts["hoa"] = attached[0]["local"]
    status = wait_until(lambda: setup.status()["current_dar"], 5, description="status")
    assert status == {"prefix": "2001:db8:1::/64", "anchor": DAR1.anchor, "router": "fe80::d1"}
    default = setup.mn.run(["ip", "-6", "route", "show", "default"]).stdout
    assert "via fe80::d1 dev eth0" in default and f"src {setup.facts['hoa']}" in default


def test_move_registers_the_first_address_at_its_dar(setup: Setup) -> None:
    hoa = setup.facts["hoa"]
    setup.fake.advertise(DAR2)
    coa_info = wait_until(
        lambda: _global_addresses(setup, "eth0", DAR2), 10, description="a CGA in prefix 2"
    )
    coa = setup.facts["coa"] = coa_info[0]["local"]
    # P16: the old address left eth0 and lives, deprecated, on the tunnel device.
    wait_until(lambda: not _global_addresses(setup, "eth0", DAR1), 5, description="HoA off eth0")
    on_tunnel = _global_addresses(setup, DEFAULT_DEVICE, DAR1)
    assert [info["local"] for info in on_tunnel] == [hoa]
    assert on_tunnel[0]["preferred_life_time"] == 0 and on_tunnel[0]["prefixlen"] == 128

    accepted = wait_until(
        lambda: [bu for bu in setup.fake.binding_updates if bu.verdict is Verdict.ACCEPTED],
        10,
        description="an accepted BU",
    )
    first = accepted[0]
    assert first.packet.destination == _addr(DAR1.anchor)
    assert first.packet.source == _addr(coa)
    assert first.packet.home_address == _addr(hoa)
    assert first.packet.message.options.cga_parameters is not None  # CGA-signed (P6)
    assert first.packet.message.options.signature is not None

    def registered() -> dict[str, Any] | None:
        status = setup.status()
        return next((b for b in status["bindings"] if b["state"] == "registered"), None)

    binding = wait_until(registered, 10, description="binding REGISTERED in status")
    assert binding["hoa"] == hoa and binding["coa"] == coa and binding["hdar"] == DAR1.anchor
    assert binding["phkt_held"] is True
    status = setup.status()
    assert 'phkt":' not in json.dumps(status).replace("phkt_held", "")
    roles = {a["address"]: (a["role"], a["preferred"]) for a in status["addresses"]}
    assert roles == {coa: ("current", True), hoa: ("kept", False)}
    rules = setup.mn.run(["ip", "-6", "rule", "show"]).stdout
    assert f"from {hoa} lookup {TUNNEL_TABLE}" in rules
    assert first.ba_sent_at is not None
    setup.facts["bu_to_ba_at_dar_ms"] = 1000 * (first.ba_sent_at - first.at)


def test_uplink_from_the_hoa_is_gre_encapsulated_to_a1(setup: Setup) -> None:
    hoa, coa = setup.facts["hoa"], setup.facts["coa"]
    with inside(setup.mn):
        sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with sender:
        sender.bind((hoa, 0))
        sender.sendto(b"uplink through the tunnel", (CN, 9))

    def tunnelled() -> list[ReceivedGre]:
        return [g for g in setup.fake.gre_packets if b"uplink through the tunnel" in g.data]

    gre = wait_until(tunnelled, 5, description="GRE uplink at the fake DAR")[0]
    assert (gre.source, gre.destination) == (coa, DAR1.anchor)
    assert gre.data[:4] == GRE_HEADER  # P14: no checksum, key or sequence number
    inner = IPv6(gre.data[4:])
    assert (inner.src, inner.dst) == (hoa, CN)
    assert bytes(inner[UDP].payload) == b"uplink through the tunnel"
    # Counters reach the state file within a second.
    wait_until(
        lambda: setup.status()["tunnel"]["packets_out"] >= 1, 3, description="packets_out counted"
    )


def test_downlink_gre_from_a1_reaches_a_socket_bound_to_the_hoa(setup: Setup) -> None:
    hoa, coa = setup.facts["hoa"], setup.facts["coa"]
    with inside(setup.mn):
        receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with receiver:
        receiver.bind((hoa, 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        inner = bytes(IPv6(src=CN, dst=hoa) / UDP(sport=4000, dport=port) / b"downlink")
        setup.fake.send_gre(DAR1.anchor, coa, inner)
        data, sender = receiver.recvfrom(2048)
    assert data == b"downlink" and sender[0] == CN
    before = wait_until(
        lambda: (tunnel := setup.status()["tunnel"])["packets_in"] == 1 and tunnel,
        3,
        description="packets_in counted",
    )
    assert before["bytes_in"] == len(inner)
    # An unknown peer is dropped (P15): A_2 has no binding for this HoA.
    setup.fake.send_gre(DAR2.anchor, coa, inner)
    after = wait_until(
        lambda: (tunnel := setup.status()["tunnel"])["dropped"] > before["dropped"] and tunnel,
        3,
        description="GRE from an unknown peer counted as dropped",
    )
    assert after["packets_in"] == 1
    print(f"\ntunnel counters: {after}")


def test_return_home_deregisters_with_coa_equal_to_hoa(setup: Setup) -> None:
    hoa, coa = setup.facts["hoa"], setup.facts["coa"]
    count = len(setup.fake.binding_updates)
    setup.fake.advertise(DAR1)

    def deregistration() -> ReceivedBu | None:
        return next(
            (
                bu
                for bu in setup.fake.binding_updates[count:]
                if bu.packet.destination == _addr(DAR1.anchor)
            ),
            None,
        )

    bu = wait_until(deregistration, 10, description="deregistration BU to A_1")
    assert bu.packet.source == _addr(hoa) and bu.packet.home_address is None  # CoA == HoA
    assert bu.verdict is Verdict.ACCEPTED and bu.status == 0
    assert bu.packet.message.options.authenticator is not None  # PHKT-authenticated (P9)
    wait_until(
        lambda: [i["local"] for i in _global_addresses(setup, "eth0", DAR1)] == [hoa],
        5,
        description="HoA back on eth0",
    )

    def settled() -> dict[str, Any] | None:
        status = setup.status()
        states = {(b["hoa"], b["hdar"]): b["state"] for b in status["bindings"]}
        return status if states == {(coa, DAR2.anchor): "registered"} else None

    status = wait_until(settled, 10, description="HoA unbound, CGA 2 registered at A_2")
    roles = {a["address"]: (a["role"], a["preferred"]) for a in status["addresses"]}
    assert roles == {hoa: ("current", True), coa: ("kept", False)}
    assert status["current_dar"]["anchor"] == DAR1.anchor
    info = _global_addresses(setup, "eth0", DAR1)[0]
    assert info["preferred_life_time"] > 0 and info["prefixlen"] == 64


def test_link_down_up_sends_a_router_solicitation(setup: Setup) -> None:
    count = len(setup.fake.solicitations)
    setup.dar.run(["ip", "link", "set", "dev", "acc", "down"])
    time.sleep(0.3)  # several of the agent's 100 ms link polls
    assert len(setup.fake.solicitations) == count
    setup.dar.run(["ip", "link", "set", "dev", "acc", "up"])
    up_at = time.monotonic()
    wait_until(lambda: len(setup.fake.solicitations) > count, 3, description="RS after link up")
    setup.facts["link_up_to_rs_ms"] = 1000 * (setup.fake.solicitations[count] - up_at)
    # The DAR answered with the current DAR's RA: no move, nothing changes.
    time.sleep(0.2)
    assert setup.status()["current_dar"]["anchor"] == DAR1.anchor
    assert setup.log().count("move:") == 3


def test_sigterm_removes_tunnel_rules_and_routes(setup: Setup) -> None:
    setup.agent.send_signal(signal.SIGTERM)
    assert setup.agent.wait(timeout=10) == 0
    links = setup.mn.run(["ip", "-j", "link", "show"]).stdout
    assert DEFAULT_DEVICE not in {link["ifname"] for link in json.loads(links)}
    rules = setup.mn.run(["ip", "-6", "rule", "show"]).stdout
    assert f"lookup {TUNNEL_TABLE}" not in rules and f"{TUNNEL_RULE_PRIORITY}:" not in rules
    table = setup.mn.run(["ip", "-6", "route", "show", "table", str(TUNNEL_TABLE)], check=False)
    assert table.stdout.strip() == ""
    assert setup.mn.run(["ip", "-6", "route", "show", "default"]).stdout.strip() == ""
    assert not (setup.state_dir / "state.json").exists()
    status = subprocess.run(
        [FAMA_MN, "status", "--state-dir", str(setup.state_dir)], capture_output=True, text=True
    )
    assert status.returncode == 1 and "no agent state" in status.stderr
    log = setup.log()
    assert "Traceback" not in log
    moves = re.findall(r"move handled ([0-9.]+) ms", log)
    round_trips = re.findall(r"BA ([0-9.]+) ms after the last BU", log)
    print(
        f"\nRA -> actions applied (agent, ms): {moves}"
        f"\nBU -> BA at the agent (ms): {round_trips}"
        f"\nBU -> BA at the fake DAR (ms): {setup.facts['bu_to_ba_at_dar_ms']:.1f}"
        f"\nlink up -> RS at the fake DAR (ms): {setup.facts['link_up_to_rs_ms']:.1f}"
    )
