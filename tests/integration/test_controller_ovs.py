"""End-to-end test: the FAMA controller (real ryu-manager) driving a real OVS DAR.

One DAR (``docs/lab-notes.md`` topology) built with :mod:`fama_ryu.netlab`:

* ``lab`` namespace: ovsdb-server + ovs-vswitchd (userspace datapath), bridge
  ``dar1`` (netdev, fail_mode=secure, OpenFlow13, hwaddr = router_mac,
  datapath-id 1) with ports ``d1-acc`` (to ``mnh``), ``d1-core`` (to ``core``)
  and ``d1-gre`` (flow-based GRE, P14); LOCAL ``dar1`` holds A_d; and the
  controller, ``fama-controller fama_ryu.app``, listening for OpenFlow and REST
  on 127.0.0.1 there;
* ``core``: a Linux router to ``cn`` (correspondent) and ``mnv`` (the mobile
  node in a visited network, CoA 2001:db8:2::10, later also ::11);
* ``mnh``: a host on the DAR's access link.

The mobile node is played by the test: its Binding Updates are built with
scapy and signed/authenticated with ``cryptography``/``hmac`` directly from
FAMA-PROFILE.md (P4, P6, P9, P11), independently of ``fama_ryu.mh``/``auth``
(only ``fama_ryu.cga.generate_cga`` and ``fama_ryu.mh.mobility_checksum`` are
borrowed).  Everything is checked with real packets captured by tcpdump in
the namespaces, ``ovs-ofctl dump-flows`` and the REST API.

Steps (file order, one shared lab: each builds on the state the previous left):

1. the controller connects and installs the FAMA pipeline (tables 0-3);
2. RS -> RA with H flag and A_d in the R-flagged PIO (P2); 2b. a home host is
   resolved and routed (RA default route, NS/NA host route); 2c. OVS
   reconnects to the running controller: everything reinstalled with a new
   cookie generation, the old one deleted;
3. first CGA BU (P6) -> BA status 0, RH2 = HoA, PHKT decrypting to 8 bytes,
   authenticator keyed by SHA1(PHKT) (P12); binding flows; REST;
4. downlink cn -> HoA GRE-encapsulated A_d -> CoA (P14, P15);
5. uplink GRE from the CoA decapsulated for the HoA only (P15); 5b. uplink to
   a home host not resolved yet (layer-3 packet-in from the GRE port);
6. PHKT-authenticated BU from a second CoA moves the binding (P9);
7. deregistration (lifetime 0, BAD over the HoA) removes it (P9, P11);
8. kill -9 of the controller under a 10 ms ping through the tunnel: no packet
   lost; restart: bindings restored from SQLite, flows reinstalled with a new
   generation, the old generation deleted;
9. no handler exception or switch error; everything is torn down.

Needs root and Open vSwitch (``make system-deps``); fails, not skips, without.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fama_ryu import cga
from fama_ryu.mh import mobility_checksum
from fama_ryu.netlab import (
    Lab,
    LabError,
    Namespace,
    OvsInstance,
    PacketCapture,
    check_prerequisites,
    process_alive,
    run_command,
    wait_until,
)

pytestmark = pytest.mark.integration

# Import scapy's layers only (not scapy.all: faster, no interface probing).
from scapy.layers.inet6 import (  # noqa: E402
    HAO,
    MIP6MH_BA,
    MIP6MH_BU,
    ICMPv6EchoRequest,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6OptBindingAuthData,
    MIP6OptCGAParams,
    MIP6OptSignature,
)
from scapy.layers.l2 import Ether  # noqa: E402

# ----------------------------------------------------------------- addresses

A_D = "2001:db8:1::1"  # DAR1 anchor address (P1), on the bridge's LOCAL port
ACCESS_PREFIX = "2001:db8:1::/64"
# The core's address on the DAR link, numbered inside A_d's /64 (a /128 on the
# core) so that OVS 3.1 takes A_d as the outer tunnel source (lab notes #1).
CORE_UPLINK = "2001:db8:1::fffe"
DAR_LINK_LOCAL = "fe80::d1:1"  # the DAR's link-local (config), the core's next hop
DAR_MAC = "02:00:00:00:d1:01"  # router_mac = the bridge's hwaddr (tnl_pop needs it)
DPID = 1
MNH = "2001:db8:1::20"  # a host on the DAR's access link
MNH2 = "2001:db8:1::21"  # a second address of it, first reached from the tunnel
COA = "2001:db8:2::10"  # care-of address in the visited network
COA2 = "2001:db8:2::11"  # the second care-of address (handover, step 6)
CN = "2001:db8:ff00::10"  # correspondent node
SPOOFED = "2001:db8:1::99"  # an inner source bound to no CoA
OF_PORT = 6653  # inside the lab namespace: no clash with anything else
REST_PORT = 8080
GRE_IPV6 = b"\x00\x00\x86\xdd"  # GRE: no C/K/S flags, version 0, protocol 0x86DD (P14)
CGA_MESSAGE_TYPE_TAG = bytes.fromhex("5F2705868D6C4C56A2469EBB9B2A2E13")  # P6
LIFETIME_UNITS = 100  # 400 s (P4: 4-second units)
FAMA_CONTROLLER = Path(sys.executable).parent / "fama-controller"
MH_PROTO, RH_PROTO, DSTOPT_PROTO, GRE_PROTO, ICMPV6_PROTO = 135, 43, 60, 47, 58


def packed(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


# ----------------------------------------------------------------- helpers run in namespaces

# Sends packets given as hex: "l2 IFACE FRAME..." (whole Ethernet frames) or
# "ip6 PACKET..." (whole IPv6 packets, the kernel routes them by destination
# and sends the header as written: IPPROTO_RAW implies IPV6_HDRINCL).
SENDER = r"""
import socket, sys
if sys.argv[1] == "l2":
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((sys.argv[2], 0))
    for frame in sys.argv[3:]:
        sock.send(bytes.fromhex(frame))
else:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for packet in sys.argv[2:]:
        data = bytes.fromhex(packet)
        sock.sendto(data, (socket.inet_ntop(socket.AF_INET6, data[24:40]), 0))
"""


def send_ipv6(ns: Namespace, *packets: bytes) -> None:
    ns.run([sys.executable, "-c", SENDER, "ip6", *(p.hex() for p in packets)])


def send_frames(ns: Namespace, interface: str, *frames: bytes) -> None:
    ns.run([sys.executable, "-c", SENDER, "l2", interface, *(f.hex() for f in frames)])


# ----------------------------------------------------------------- IPv6 parsing (test-side)


@dataclass(frozen=True)
class Packet6:
    src: str
    dst: str
    next_header: int
    hop_limit: int
    raw: bytes  # the whole IPv6 packet

    @property
    def payload(self) -> bytes:
        return self.raw[40:]


def ipv6_of(frame: bytes) -> Packet6 | None:
    if frame[12:14] != b"\x86\xdd" or len(frame) < 54:
        return None
    data = frame[14:]
    length = struct.unpack("!H", data[4:6])[0]
    return Packet6(text(data[8:24]), text(data[24:40]), data[6], data[7], data[: 40 + length])


def gre_inner(frame: bytes) -> tuple[Packet6, Packet6] | None:
    """(outer, inner) of a GRE-in-IPv6 frame with the P14 header, else None."""
    outer = ipv6_of(frame)
    if outer is None or outer.next_header != GRE_PROTO or outer.payload[:4] != GRE_IPV6:
        return None
    inner = ipv6_of(b"\0" * 12 + b"\x86\xdd" + outer.payload[4:])
    return None if inner is None else (outer, inner)


def echo_of(packet: Packet6) -> tuple[int, int, int] | None:
    """(type, identifier, sequence) of an ICMPv6 echo request/reply."""
    if packet.next_header != ICMPV6_PROTO or packet.payload[:1] not in (b"\x80", b"\x81"):
        return None
    kind, ident, seq = packet.payload[0], *struct.unpack("!HH", packet.payload[4:8])
    return kind, ident, seq


def echo_idents(cap: PacketCapture) -> set[int]:
    """Identifiers of every ICMPv6 echo message a capture holds."""
    found = set()
    for captured in cap.packets():
        packet = ipv6_of(captured.data)
        echo = echo_of(packet) if packet is not None else None
        if echo is not None:
            found.add(echo[1])
    return found


def mh_options(mh: bytes, start: int) -> list[tuple[int, int, int]]:
    """(type, offset of the option, offset past it) of every mobility option."""
    options, offset = [], start
    while offset < len(mh):
        if mh[offset] == 0:  # Pad1
            offset += 1
            continue
        end = offset + 2 + mh[offset + 1]
        options.append((mh[offset], offset, end))
        offset = end
    return options


def zero_checksum(mh: bytes) -> bytes:
    return mh[:4] + b"\0\0" + mh[6:]


def echo_request(src: str, dst: str, ident: int, seq: int = 1) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=64) / ICMPv6EchoRequest(id=ident, seq=seq))


def gre_packet(outer_src: str, outer_dst: str, inner: bytes) -> bytes:
    """GRE-in-IPv6 as the MN's user-space tunnel end would send it (P14)."""
    gre = GRE_IPV6 + inner
    return (
        struct.pack("!IHBB", 6 << 28, len(gre), GRE_PROTO, 64)
        + packed(outer_src)
        + packed(outer_dst)
        + gre
    )


# ----------------------------------------------------------------- the mobile node (scapy)


@dataclass
class MobileNode:
    """A CGA home address at DAR1 and the state the MN keeps about its binding."""

    key: rsa.RSAPrivateKey
    hoa: str
    params: cga.CgaParameters
    sequence: int = 0
    phkt: bytes | None = None

    @classmethod
    def create(cls) -> MobileNode:
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        address, params = cga.generate_cga(
            cga.public_key_der(key), packed(ACCESS_PREFIX.split("/")[0])[:8], 1, os.urandom
        )
        return cls(key, text(address), params)

    @property
    def kbm(self) -> bytes:
        assert self.phkt is not None, "no PHKT yet"
        return hashlib.sha1(self.phkt).digest()  # basic mode (P9)

    def next_sequence(self) -> int:
        self.sequence = (self.sequence + 1) % 65536
        return self.sequence

    def _bu(self, coa: str, sequence: int, units: int, options: list) -> tuple[bytearray, int]:
        """A BU (P4) serialised by scapy; returns (packet bytes, offset of the MH)."""
        packet = (
            IPv6(src=coa, dst=A_D, hlim=64)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=self.hoa)])
            / MIP6MH_BU(seq=sequence, flags="AH", mhtime=units, options=options)
        )
        data = bytearray(bytes(packet))
        assert data[6] == DSTOPT_PROTO and data[40] == MH_PROTO  # IPv6 -> dest opts -> MH
        mh_offset = 40 + (data[41] + 1) * 8
        return data, mh_offset

    def _finish(self, data: bytearray, mh_offset: int) -> bytes:
        """Fill in the MH checksum ourselves (RFC 6275 §6.1.1: pseudo-header HoA -> A_d).

        scapy's own checksum is not trusted (PLATFORM notes: in6_pseudoheader
        honours the HAO only in a lone-HAO options list).
        """
        mh = bytes(data[mh_offset:])
        checksum = mobility_checksum(packed(self.hoa), packed(A_D), zero_checksum(mh))
        data[mh_offset + 4 : mh_offset + 6] = checksum.to_bytes(2, "big")
        return bytes(data)

    def cga_bu(self, coa: str, units: int = LIFETIME_UNITS) -> bytes:
        """First BU for the HoA (P6): CGA Parameters option(s) then a Signature."""
        encoded = self.params.encode()
        chunks = [encoded[i : i + 255] for i in range(0, len(encoded), 255)]
        modulus_len = (self.key.key_size + 7) // 8
        options: list[MIP6OptCGAParams | MIP6OptSignature] = [
            MIP6OptCGAParams(cgaparams=chunk) for chunk in chunks
        ]
        options.append(MIP6OptSignature(sig=bytes(modulus_len)))
        data, mh_offset = self._bu(coa, self.next_sequence(), units, options)
        mh = bytes(data[mh_offset:])
        found = mh_options(mh, 12)
        assert [t for t, _, _ in found if t not in (1,)] == [12] * len(chunks) + [13]
        signed_end = max(end for kind, _, end in found if kind == 12)
        signature_at = next(start for kind, start, _ in found if kind == 13) + 2
        message = CGA_MESSAGE_TYPE_TAG + packed(coa) + packed(A_D) + zero_checksum(mh[:signed_end])
        signature = self.key.sign(message, padding.PKCS1v15(), hashes.SHA1())
        assert len(signature) == modulus_len
        start = mh_offset + signature_at
        data[start : start + modulus_len] = signature
        return self._finish(data, mh_offset)

    def authenticated_bu(self, coa: str, units: int = LIFETIME_UNITS) -> bytes:
        """Later BU (P9): Binding Authorization Data keyed by SHA1(PHKT).

        For a deregistration (lifetime 0) the HoA takes the CoA's place in
        the authenticator (P9, RFC 6275 §6.2.7).
        """
        options = [MIP6OptBindingAuthData(olen=12, authenticator=0)]
        data, mh_offset = self._bu(coa, self.next_sequence(), units, options)
        mh = bytes(data[mh_offset:])
        (kind, start, end), *rest = [o for o in mh_options(mh, 12) if o[0] != 1]
        assert kind == 5 and not rest and end == len(mh)
        first = self.hoa if units == 0 else coa
        authenticator = hmac.new(
            self.kbm,
            packed(first) + packed(A_D) + zero_checksum(mh[: start + 2]),
            hashlib.sha1,
        ).digest()[:12]
        data[mh_offset + start + 2 : mh_offset + end] = authenticator
        return self._finish(data, mh_offset)


@dataclass(frozen=True)
class BindingAck:
    frame: bytes
    status: int
    sequence: int
    routing_address: str
    destination: str
    mh: bytes  # the raw Mobility Header

    def options(self) -> dict[int, tuple[int, int]]:
        return {kind: (start, end) for kind, start, end in mh_options(self.mh, 12)}

    def option_data(self, kind: int) -> bytes | None:
        where = self.options().get(kind)
        return None if where is None else self.mh[where[0] + 2 : where[1]]

    def authenticator_ok(self, kbm: bytes, first: str) -> bool:
        """P12: BAD over first | A_d | MH data up to the authenticator, checksum zero."""
        where = self.options().get(5)
        if where is None:
            return False
        start, end = where
        expected = hmac.new(
            kbm, packed(first) + packed(A_D) + zero_checksum(self.mh[: start + 2]), hashlib.sha1
        ).digest()[:12]
        return hmac.compare_digest(expected, self.mh[start + 2 : end])


def parse_ba(frame: bytes) -> BindingAck | None:
    """A Binding Acknowledgement (P12) from A_d in ``frame``, checked with scapy too."""
    outer = ipv6_of(frame)
    if outer is None or outer.src != A_D or outer.next_header != RH_PROTO:
        return None
    data = outer.raw
    routing_len = (data[41] + 1) * 8
    if data[40] != MH_PROTO or data[42] != 2:  # RH type 2 directly followed by the MH
        return None
    routing_address = text(data[48:64])
    mh = data[40 + routing_len :]
    mh = mh[: (mh[1] + 1) * 8]
    if mh[2] != 6:  # MH type 6: Binding Acknowledgement
        return None
    checksum = mobility_checksum(packed(A_D), packed(routing_address), zero_checksum(mh))
    assert mh[4:6] == checksum.to_bytes(2, "big"), "BA checksum wrong (RFC 6275 §6.1.1)"
    dissected = Ether(frame)  # independent decoding of the same bytes
    assert dissected[IPv6ExtHdrRouting].type == 2
    assert dissected[IPv6ExtHdrRouting].addresses == [routing_address]
    ba = dissected[MIP6MH_BA]
    status, sequence = mh[6], struct.unpack("!H", mh[8:10])[0]
    assert (ba.status, ba.seq) == (status, sequence)
    return BindingAck(frame, status, sequence, routing_address, outer.dst, bytes(mh))


# ----------------------------------------------------------------- the lab


@dataclass
class Rig:
    lab: Lab
    lab_ns: Namespace
    core: Namespace
    cn: Namespace
    mnv: Namespace
    mnh: Namespace
    ovs: OvsInstance
    core_mac: str
    mnh_mac: str
    conf: Path
    store: Path
    controller: subprocess.Popen[bytes] | None = None
    controller_logs: list[Path] = field(default_factory=list)
    nodes: dict[str, MobileNode] = field(default_factory=dict)

    # controller
    def start_controller(self) -> None:
        assert self.controller is None or self.controller.poll() is not None
        log = self.lab.path(f"controller-{len(self.controller_logs)}.log")
        self.controller_logs.append(log)
        with log.open("wb") as stream:
            self.controller = self.lab_ns.popen(
                [str(FAMA_CONTROLLER), "fama_ryu.app", "--config-file", str(self.conf)],
                stdout=stream,
                stderr=subprocess.STDOUT,
                description="fama-controller",
            )

    def set_controller(self) -> None:
        """Point dar1 at the controller (loopback, so out of band).

        ``max_backoff`` is not set: OVS 3.1 creates an active controller's
        connection with the default 8 s and was seen reconnecting after 1, 2,
        4 s back-off even with ``max_backoff=1000``.
        """
        self.ovs.vsctl(
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

    def kill_controller(self) -> None:
        """kill -9 (by pid, our own child): no chance to clean anything up."""
        assert self.controller is not None
        os.kill(self.controller.pid, signal.SIGKILL)
        self.controller.wait(timeout=5)
        self.lab_ns.stop(self.controller)  # reaped already: only forgets the record

    def stop_controller(self) -> None:
        if self.controller is not None:
            self.lab_ns.stop(self.controller)
            self.controller = None

    def controller_log(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-6000:]
            for log in self.controller_logs
            if log.exists()
        )

    def controller_connected(self) -> bool:
        """OVS holds a TCP connection to the controller (ovsdb's is_connected lags 5 s)."""
        out = self.lab_ns.run(
            ["ss", "-Htn", "state", "established", "state", "close-wait", f"( dport = :{OF_PORT} )"]
        ).stdout
        return bool(out.strip())

    # REST
    def rest(self, path: str) -> Any:
        result = self.lab_ns.run(
            ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{REST_PORT}/fama/v1/{path}"],
            check=False,
        )
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def rest_text(self, path: str) -> str:
        return self.lab_ns.run(
            ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{REST_PORT}/fama/v1/{path}"]
        ).stdout

    def dar_connected(self) -> bool | None:
        """The controller's view of dar1 (REST), None if it does not answer."""
        answer = self.rest("dars")
        return None if not answer else bool(answer[0]["connected"])

    def bindings(self) -> dict[str, str]:
        answer = self.rest("bindings")
        assert isinstance(answer, list), answer
        return {entry["hoa"]: entry["coa"] for entry in answer}

    # flows
    def flows(self) -> list[str]:
        return self.ovs.dump_flows("dar1")

    def fama_flows(self) -> list[str]:
        return [line for line in self.flows() if re.search(r"cookie=0xfa4d", line)]

    def generations(self) -> set[int]:
        return {
            int(match.group(1), 16) & 0xFFFFFFFF
            for line in self.fama_flows()
            if (match := re.search(r"cookie=(0x[0-9a-f]+)", line))
        }

    def generations_replacing(self, old: int) -> set[int]:
        """The flow generations present once none of generation ``old`` is left, else {}."""
        generations = self.generations()
        return set() if old in generations else generations

    def binding_flows(self, hoa: str) -> list[str]:
        pattern = re.compile(rf"\bipv6_(src|dst)={re.escape(hoa)}[ ,]")
        return [line for line in self.fama_flows() if pattern.search(line)]

    # captures
    def capture(self, ns: Namespace, interface: str, bpf: str, name: str) -> PacketCapture:
        return ns.capture(interface, bpf, self.lab.path(name))

    def register(self, node: MobileNode, packet: bytes, coa: str, name: str) -> BindingAck:
        """Send a BU from mnv and return the BA that answers it."""
        sequence = node.sequence
        with self.capture(self.mnv, "eth0", f"ip6 and src host {A_D}", f"{name}.pcap") as cap:
            send_ipv6(self.mnv, packet)
            frames = cap.wait_for(
                lambda f: (ba := parse_ba(f)) is not None and ba.sequence == sequence,
                timeout_s=10.0,
            )
        ba = parse_ba(frames[0])
        assert ba is not None and ba.destination == coa  # P12: the BA goes to the CoA
        return ba

    def first_registration(self, node: MobileNode, coa: str, name: str) -> BindingAck:
        """CGA BU (P6) -> BA with a PHKT (P12); the MN keeps the decrypted PHKT."""
        ba = self.register(node, node.cga_bu(coa), coa, name)
        assert ba.status == 0, f"BA status {ba.status}\n{self.controller_log()}"
        encrypted = ba.option_data(14)
        assert encrypted is not None, "no Permanent Home Keygen Token option in the BA"
        node.phkt = node.key.decrypt(encrypted, padding.PKCS1v15())
        assert len(node.phkt) == 8
        assert ba.authenticator_ok(node.kbm, coa), "BA authenticator does not verify"
        return ba


def _require_lab_prerequisites() -> None:
    try:
        check_prerequisites(need_ovs=True)
        missing = [tool for tool in ("tcpdump", "curl") if shutil.which(tool) is None]
        if missing:
            raise LabError(f"missing programs: {', '.join(missing)} (Debian packages)")
        if not FAMA_CONTROLLER.exists():
            raise LabError(f"{FAMA_CONTROLLER} not found: install the project in its venv")
    except LabError as exc:
        pytest.fail(
            f"integration test needs root, Open vSwitch and the controller: {exc}", pytrace=False
        )


DOMAIN_TEMPLATE = """\
dars:
  - name: dar1
    dpid: "{dpid:016x}"
    access_ports: [d1-acc]
    core_port: d1-core
    gre_port: d1-gre
    router_mac: "{router_mac}"
    access_prefixes: ["{prefix}"]
    anchor_address: "{anchor}"
    link_local: "{link_local}"
    core_next_hop:
      address: "{next_hop}"
      mac: "{next_hop_mac}"
    max_lifetime_s: 3600
"""

CONF_TEMPLATE = """\
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


def build_rig(lab: Lab) -> Rig:
    lab_ns = lab.namespace("lab")
    core, cn, mnv, mnh = (lab.namespace(role) for role in ("core", "cn", "mnv", "mnh"))
    lab.veth(lab_ns, "d1-core", core, "core-dar1", switch_side="a")
    lab.veth(lab_ns, "d1-acc", mnh, "eth0", switch_side="a")
    lab.veth(core, "core-cn", cn, "eth0")
    lab.veth(core, "core-mnv", mnv, "eth0")

    core.set_ipv6_forwarding(True)
    core.add_address("core-dar1", f"{CORE_UPLINK}/128")
    core.add_address("core-cn", "2001:db8:ff00::1/64")
    core.add_address("core-mnv", "2001:db8:2::1/64")
    core.add_route(ACCESS_PREFIX, via=DAR_LINK_LOCAL, device="core-dar1")
    # The DAR's addresses are answered by the controller (NS punted, P2 pipeline):
    # while it is down (step 8) the core must not need to re-probe them, or
    # forwarding would stop for reasons unrelated to the flows OVS keeps.
    # 10 min reachable time instead of 15-45 s covers the whole module.
    core.sysctl("net/ipv6/neigh/core-dar1/base_reachable_time_ms", 600_000)
    cn.add_address("eth0", f"{CN}/64")
    cn.add_route("default", via="2001:db8:ff00::1")
    mnv.add_address("eth0", f"{COA}/64")
    mnv.add_route("default", via="2001:db8:2::1")
    mnh.add_address("eth0", f"{MNH}/64")

    ovs = lab.ovs(lab_ns)
    ovs.add_netdev_bridge("dar1", hwaddr=DAR_MAC)
    ovs.vsctl("set", "bridge", "dar1", f"other_config:datapath-id={DPID:016x}")
    ovs.add_port("dar1", "d1-core", ofport=1)
    ovs.add_port("dar1", "d1-acc", ofport=2)
    ovs.add_port(
        "dar1",
        "d1-gre",
        ofport=10,
        port_type="gre",
        options={"remote_ip": "flow", "local_ip": A_D, "packet_type": "legacy_l3"},
    )
    # The LOCAL port is a tap in the lab namespace: never autoconfigure from RAs.
    lab_ns.sysctl("net/ipv6/conf/dar1/accept_ra", 0)
    lab_ns.set_link_up("dar1")
    lab_ns.add_address("dar1", f"{A_D}/64")
    lab_ns.add_route("default", via=CORE_UPLINK, device="dar1")
    wait_until(
        lambda: f"src {A_D}" in ovs.appctl("ovs/route/lookup", COA),
        5.0,
        description=f"OVS to cache a route to {COA} with source {A_D}",
    )
    core_mac = core.mac_address("core-dar1")
    ovs.appctl("tnl/neigh/set", "dar1", CORE_UPLINK, core_mac)
    dpid = ovs.vsctl("get", "bridge", "dar1", "datapath_id").strip().strip('"')
    assert int(dpid, 16) == DPID, dpid

    workdir = lab.path("controller")
    workdir.mkdir()
    domain = workdir / "domain.yaml"
    domain.write_text(
        DOMAIN_TEMPLATE.format(
            dpid=DPID,
            router_mac=DAR_MAC,
            prefix=ACCESS_PREFIX,
            anchor=A_D,
            link_local=DAR_LINK_LOCAL,
            next_hop=CORE_UPLINK,
            next_hop_mac=core_mac,
        )
    )
    store = workdir / "bindings.sqlite"
    conf = workdir / "fama.conf"
    conf.write_text(
        CONF_TEMPLATE.format(of_port=OF_PORT, rest_port=REST_PORT, domain=domain, store=store)
    )
    rig = Rig(lab, lab_ns, core, cn, mnv, mnh, ovs, core_mac, mnh.mac_address("eth0"), conf, store)
    rig.set_controller()
    return rig


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    _require_lab_prerequisites()
    lab = Lab().open()
    try:
        built = build_rig(lab)
    except BaseException as exc:
        with contextlib.suppress(LabError):
            lab.close()
        exc.add_note(f"lab {lab.lab_id} failed to build")
        raise
    try:
        yield built
    finally:
        built.stop_controller()
        lab.close()
        # Nothing of this lab may remain: namespaces, processes, files.
        listed = run_command(["ip", "netns", "list"]).stdout
        assert not [line for line in listed.splitlines() if line.startswith(lab.lab_id)]
        assert not lab.workdir.exists()


# ----------------------------------------------------------------- tests (in order)


def test_1_controller_connects_and_installs_pipeline(rig: Rig) -> None:
    rig.start_controller()
    try:
        wait_until(rig.controller_connected, 20.0, description="dar1 to connect to the controller")
        tables = wait_until(
            lambda: (
                {
                    int(m.group(1))
                    for line in rig.fama_flows()
                    if (m := re.search(r"table=(\d+)", line))
                }
                >= {0, 1, 2, 3}
                and rig.fama_flows()
            ),
            10.0,
            description="FAMA pipeline flows in tables 0-3",
        )
    except LabError:
        pytest.fail(f"controller did not set up dar1\n{rig.controller_log()}")
    assert tables
    flows = rig.flows()
    # Every flow is the controller's pipeline skeleton (kind PIPELINE), one generation.
    assert flows and all("cookie=0xfa4d01" in line for line in flows), flows
    assert len(rig.generations()) == 1
    assert rig.rest("bindings") == []
    dars = rig.rest("dars")
    assert isinstance(dars, list) and dars[0]["connected"] is True


def test_2_router_solicitation_gets_ra_with_h_flag_and_anchor(rig: Rig) -> None:
    mnh_ll = next(a["local"] for a in rig.mnh.ipv6_addresses("eth0") if a["scope"] == "link")
    rs = (
        Ether(src=rig.mnh_mac, dst="33:33:00:00:00:02")
        / IPv6(src=mnh_ll, dst="ff02::2", hlim=255)
        / ICMPv6ND_RS()
        / ICMPv6NDOptSrcLLAddr(lladdr=rig.mnh_mac)
    )

    def solicited_ra(frame: bytes) -> bool:
        packet = ipv6_of(frame)
        return (
            packet is not None
            and packet.next_header == ICMPV6_PROTO
            and packet.payload[:1] == b"\x86"
            and packet.dst == mnh_ll
        )

    with rig.capture(rig.mnh, "eth0", "icmp6", "ra.pcap") as cap:
        send_frames(rig.mnh, "eth0", bytes(rs))
        frame = cap.wait_for(solicited_ra, timeout_s=5.0)[0]
    ra = Ether(frame)
    assert ra[Ether].src == DAR_MAC and ra[Ether].dst == rig.mnh_mac
    assert ra[IPv6].src == DAR_LINK_LOCAL and ra[IPv6].hlim == 255
    assert ra[ICMPv6ND_RA].H == 1, "RA without the Home Agent flag (P2)"
    prefixes = []
    layer = ra.getlayer(ICMPv6NDOptPrefixInfo)
    while layer is not None:
        prefixes.append(layer)
        layer = layer.payload.getlayer(ICMPv6NDOptPrefixInfo)
    assert len(prefixes) == 1
    pio = prefixes[0]
    assert (pio.L, pio.A, pio.R, pio.prefixlen) == (1, 1, 1, 64)
    assert pio.prefix == A_D, "R-flagged PIO must carry A_d in full (P2, RFC 6275 §7.2)"


def test_2b_home_host_is_resolved_and_routed(rig: Rig) -> None:
    """A node at home: default route from the DAR's RA, host route learnt by NS/NA."""
    wait_until(
        lambda: DAR_LINK_LOCAL in rig.mnh.run(["ip", "-6", "route", "show", "default"]).stdout,
        5.0,
        description="mnh to take the DAR as default router from its RA",
    )
    # The first packet for MNH is punted and answered with an NS (it is not
    # buffered); later ones follow the host flow learnt from MNH's NA.
    result = rig.cn.run(["ping", "-6", "-n", "-c", "4", "-i", "0.2", "-W", "1", MNH], check=False)
    assert re.search(r"\b[34] received", result.stdout), result.stdout
    host = [line for line in rig.fama_flows() if "cookie=0xfa4d03" in line]
    assert len(host) == 1 and f"ipv6_dst={MNH} " in host[0] and "output:2" in host[0], host
    # From MNH's resolved address (not its SLAAC one, whose first reply would
    # again be lost to resolution): both ways through the DAR, nothing lost.
    result = rig.mnh.run(
        ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", MNH, CN], check=False
    )
    assert " 0% packet loss" in result.stdout, result.stdout


def test_2c_switch_reconnection_to_the_running_controller_reinstalls_everything(
    rig: Rig,
) -> None:
    """OVS drops and re-opens its OpenFlow connection (same controller process).

    The controller knows MNH's link-local address (its RS, test 2) and global
    address (test 2b): the pipeline and MNH's host route come back with a new
    cookie generation and the old generation is deleted.
    """
    (old_generation,) = rig.generations()
    host_before = [line for line in rig.fama_flows() if "cookie=0xfa4d03" in line]
    assert host_before
    rig.ovs.vsctl("del-controller", "dar1")
    wait_until(lambda: not rig.controller_connected(), 5.0, description="disconnection")
    wait_until(
        lambda: rig.dar_connected() is False,
        5.0,
        description="the controller to see the switch go",
    )
    rig.set_controller()
    try:
        generations = wait_until(
            lambda: rig.generations_replacing(old_generation),
            10.0,
            description="the switch to be set up again with a new generation",
        )
    except LabError:
        pytest.fail(f"switch not set up again after reconnecting\n{rig.controller_log()}")
    assert generations == {old_generation + 1}
    assert rig.dar_connected() is True
    host_after = [line for line in rig.fama_flows() if "cookie=0xfa4d03" in line]
    assert [_strip_counters(line, generation=True) for line in host_after] == [
        _strip_counters(line, generation=True) for line in host_before
    ]
    result = rig.cn.run(["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", MNH], check=False)
    assert " 0% packet loss" in result.stdout, result.stdout


def test_3_first_cga_binding_update_is_acknowledged_with_phkt(rig: Rig) -> None:
    node = MobileNode.create()
    rig.nodes["mn1"] = node
    ba = rig.first_registration(node, COA, "bu1")
    assert ba.destination == COA and ba.routing_address == node.hoa  # P12: RH2 = HoA
    lifetime = struct.unpack("!H", ba.mh[10:12])[0]
    assert lifetime == LIFETIME_UNITS

    # P12: the rules were in place before the BA left.
    flows = rig.binding_flows(node.hoa)
    decap = [line for line in flows if f"tun_ipv6_src={COA}" in line]
    encap = [line for line in flows if f"set_field:{COA}->tun_ipv6_dst" in line]
    shown = "\n".join(rig.flows())
    assert len(decap) == 1, shown
    assert f"ipv6_src={node.hoa}" in decap[0] and "table=1" in decap[0], shown
    assert len(encap) == 2 and all(f"ipv6_dst={node.hoa}" in line for line in encap), shown
    assert rig.bindings() == {node.hoa: COA}


def test_4_downlink_to_hoa_is_gre_encapsulated_to_coa(rig: Rig) -> None:
    node = rig.nodes["mn1"]
    with rig.capture(rig.mnv, "eth0", "ip6 proto 47", "downlink.pcap") as cap:
        rig.cn.run(["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", node.hoa], check=False)
        frames = cap.wait_for(lambda f: gre_inner(f) is not None, 3, timeout_s=5.0)
    seqs = []
    for frame in frames:
        tunnel = gre_inner(frame)
        assert tunnel is not None
        outer, inner = tunnel
        assert (outer.src, outer.dst, outer.next_header) == (A_D, COA, GRE_PROTO)
        assert (inner.src, inner.dst) == (CN, node.hoa)
        echo = echo_of(inner)
        assert echo is not None and echo[0] == 128
        assert inner.hop_limit == 62  # 64 at CN, core, DAR (encap decrements once)
        seqs.append(echo[2])
    assert seqs == [1, 2, 3]


def test_5_uplink_gre_from_coa_is_decapsulated_only_for_the_bound_hoa(rig: Rig) -> None:
    node = rig.nodes["mn1"]
    good, spoofed = 0x600D, 0xBAD1
    with rig.capture(rig.cn, "eth0", "icmp6", "uplink.pcap") as cap:
        send_ipv6(
            rig.mnv,
            gre_packet(COA, A_D, echo_request(SPOOFED, CN, spoofed)),
            gre_packet(COA, A_D, echo_request(node.hoa, CN, good)),
        )
        delivered = cap.wait_for(
            lambda f: (
                (p := ipv6_of(f)) is not None
                and (e := echo_of(p)) is not None
                and e[:2] == (128, good)
            ),
            timeout_s=5.0,
        )
    packet = ipv6_of(delivered[0])
    assert packet is not None and (packet.src, packet.dst) == (node.hoa, CN)
    assert packet.hop_limit == 62  # inner 64, DAR route, core
    seen = echo_idents(cap)
    assert spoofed not in seen, "an inner source not bound to the CoA got through (P15)"


def test_5b_uplink_to_an_unresolved_home_host_is_resolved_and_delivered(rig: Rig) -> None:
    """P15 "routed as if sent on the access link": MN -> a home host with no route yet.

    The decapsulated packet reaches the controller as a layer-3 packet-in from
    the GRE port; the controller resolves the host (NS on the access port),
    and the MN's retransmission is then delivered on the access link.
    """
    node = rig.nodes["mn1"]
    rig.mnh.add_address("eth0", f"{MNH2}/64")
    ident = 0x5EED

    def deliver(cap: PacketCapture) -> list[bytes]:
        send_ipv6(rig.mnv, gre_packet(COA, A_D, echo_request(node.hoa, MNH2, ident)))
        return [
            f
            for f in (c.data for c in cap.packets())
            if (p := ipv6_of(f)) is not None
            and p.src == node.hoa
            and (e := echo_of(p)) is not None
            and e[:2] == (128, ident)
        ]

    with rig.capture(rig.mnh, "eth0", "icmp6", "uplink-home.pcap") as cap:
        frames = wait_until(
            lambda: deliver(cap), 5.0, interval_s=0.3, description="uplink echo at mnh"
        )
    frame = frames[0]
    assert frame[6:12] == bytes.fromhex(DAR_MAC.replace(":", ""))
    assert frame[0:6] == bytes.fromhex(rig.mnh_mac.replace(":", ""))
    host = [line for line in rig.fama_flows() if f"ipv6_dst={MNH2} " in line]
    assert len(host) == 1 and "cookie=0xfa4d03" in host[0], host


def test_6_phkt_authenticated_bu_moves_the_binding_to_a_new_coa(rig: Rig) -> None:
    node = rig.nodes["mn1"]
    rig.mnv.add_address("eth0", f"{COA2}/64")
    ba = rig.register(node, node.authenticated_bu(COA2), COA2, "bu-coa2")
    assert ba.status == 0, f"BA status {ba.status}\n{rig.controller_log()}"
    assert ba.destination == COA2 and ba.routing_address == node.hoa
    assert ba.option_data(14) is None  # no new PHKT after a PHKT-authenticated BU
    assert ba.authenticator_ok(node.kbm, COA2)
    assert rig.bindings() == {node.hoa: COA2}
    flows = rig.binding_flows(node.hoa)
    assert not [line for line in flows if COA + "," in line or f"{COA}->" in line], flows
    assert [line for line in flows if f"tun_ipv6_src={COA2}" in line]

    with rig.capture(rig.mnv, "eth0", "ip6 proto 47", "downlink2.pcap") as cap:
        rig.cn.run(["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", node.hoa], check=False)
        frames = cap.wait_for(lambda f: gre_inner(f) is not None, 2, timeout_s=5.0)
    for frame in frames:
        outer, inner = gre_inner(frame) or (None, None)
        assert outer is not None and inner is not None
        assert (outer.src, outer.dst, inner.dst) == (A_D, COA2, node.hoa)

    # Uplink: the new CoA is accepted, the old one no longer (P15).
    from_new, from_old = 0x0C02, 0x0C01
    with rig.capture(rig.cn, "eth0", "icmp6", "uplink2.pcap") as cap:
        send_ipv6(
            rig.mnv,
            gre_packet(COA, A_D, echo_request(node.hoa, CN, from_old)),
            gre_packet(COA2, A_D, echo_request(node.hoa, CN, from_new)),
        )
        cap.wait_for(
            lambda f: (
                (p := ipv6_of(f)) is not None
                and (e := echo_of(p)) is not None
                and e[:2] == (128, from_new)
            ),
            timeout_s=5.0,
        )
    seen = echo_idents(cap)
    assert from_old not in seen, "the old CoA's tunnel still accepted after the handover"


def test_7_deregistration_removes_the_binding_and_its_rules(rig: Rig) -> None:
    node = rig.nodes["mn1"]
    ba = rig.register(node, node.authenticated_bu(COA2, units=0), COA2, "dereg")
    assert ba.status == 0, f"BA status {ba.status}\n{rig.controller_log()}"
    assert ba.authenticator_ok(node.kbm, node.hoa)  # HoA stands in for the CoA (P9, P12)
    assert rig.bindings() == {}
    assert rig.binding_flows(node.hoa) == []
    assert not [line for line in rig.fama_flows() if "cookie=0xfa4d02" in line]
    node.phkt = None  # P11: the PHKT is gone with the binding


def test_8_flows_survive_controller_kill_and_restart_reconciles(rig: Rig) -> None:
    mn1 = rig.nodes["mn1"]
    rig.first_registration(mn1, COA, "rereg")  # new CGA BU: the PHKT went with the binding
    mn2 = rig.nodes["mn2"] = MobileNode.create()
    rig.first_registration(mn2, COA2, "bu-mn2")
    assert rig.bindings() == {mn1.hoa: COA, mn2.hoa: COA2}

    print("\n=== REST GET /fama/v1/bindings (dar1, two bindings) ===")
    print(rig.rest_text("bindings"))
    print("=== ovs-ofctl -O OpenFlow13 dump-flows dar1 (two bindings) ===")
    print(rig.ovs.ofctl("dump-flows", "dar1"))

    stats = rig.rest("stats")
    print("=== REST GET /fama/v1/stats (first controller, before kill -9) ===")
    print(json.dumps(stats, indent=1))
    assert isinstance(stats, dict)
    assert stats["dar1"]["ba_status"] == {"0": 5}, stats  # tests 3, 6, 7 and the two above
    assert "handler_exception" not in stats["dar1"]["events"], stats
    assert "switch_error" not in stats["dar1"]["events"], stats

    (old_generation,) = rig.generations()
    flows_before = sorted(_strip_counters(line) for line in rig.fama_flows())
    # The host route of MNH (test 2b) lives in the controller's memory only: the
    # restarted controller does not reinstall it, so its old-generation flow must
    # be found and deleted by the generation cleanup.
    assert len([line for line in flows_before if "cookie=0xfa4d03" in line]) == 2

    with rig.capture(rig.mnv, "eth0", "ip6 proto 47", "restart.pcap") as cap:
        ping = rig.cn.popen(
            ["ping", "-6", "-n", "-q", "-i", "0.01", "-c", "6000", mn1.hoa],
            description="10 ms ping cn -> HoA",
        )
        try:

            def requests_after(moment: float) -> list[tuple[float, int]]:
                found = []
                for captured in cap.packets():
                    tunnel = gre_inner(captured.data)
                    if tunnel is None or tunnel[1].dst != mn1.hoa:
                        continue
                    echo = echo_of(tunnel[1])
                    if echo is not None and echo[0] == 128 and captured.timestamp > moment:
                        found.append((captured.timestamp, echo[2]))
                return found

            wait_until(lambda: len(requests_after(0)) >= 20, 5.0, description="ping to flow")
            killed_at = time.time()
            rig.kill_controller()
            wait_until(lambda: not rig.controller_connected(), 10.0, description="OVS to notice")
            # fail_mode=secure: the switch keeps every flow while the controller is away.
            assert sorted(_strip_counters(line) for line in rig.fama_flows()) == flows_before
            # ...and the tunnel keeps working: a second of 10 ms pings without a controller.
            wait_until(
                lambda: len(requests_after(killed_at + 0.2)) >= 80,
                10.0,
                description="tunnelled pings while the controller is dead",
            )
            dead_until = time.time()
            rig.start_controller()
            wait_until(
                lambda: rig.rest("bindings") is not None, 20.0, description="REST after restart"
            )
            rest_up_at = time.time()
            assert rig.bindings() == {mn1.hoa: COA, mn2.hoa: COA2}  # restored from SQLite
            wait_until(rig.controller_connected, 20.0, description="dar1 to reconnect")
            connected_at = time.time()
            new_generations = wait_until(
                lambda: rig.generations_replacing(old_generation),
                10.0,
                description="old flow generation to be replaced and deleted",
            )
            (new_generation,) = new_generations
            reconnected_at = time.time()
            wait_until(
                lambda: len(requests_after(reconnected_at + 0.2)) >= 30,
                5.0,
                description="tunnelled pings after the reconnection",
            )
        finally:
            rig.cn.stop(ping)
    assert new_generation == old_generation + 1
    flows_after = sorted(_strip_counters(line, generation=True) for line in rig.fama_flows())
    assert flows_after == sorted(
        _strip_counters(line, generation=True)
        for line in flows_before
        if "cookie=0xfa4d03" not in line  # host routes: relearnt on demand
    ), "reinstalled flows differ from the ones before the restart"
    for node, coa in ((mn1, COA), (mn2, COA2)):
        assert [line for line in rig.binding_flows(node.hoa) if f"tun_ipv6_src={coa}" in line]

    requests = requests_after(0)
    timestamps = [stamp for stamp, _ in requests]
    seqs = [seq for _, seq in requests]
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    gaps = [b - a for a, b in zip(timestamps, timestamps[1:], strict=False)]
    during = [stamp for stamp in timestamps if killed_at <= stamp <= reconnected_at]
    print(
        f"=== restart: {len(requests)} tunnelled echo requests at mnv, seq {seqs[0]}..{seqs[-1]}, "
        f"missing {len(missing)}, largest gap {max(gaps) * 1000:.1f} ms; controller dead for "
        f"{dead_until - killed_at:.2f} s, restart to REST {rest_up_at - dead_until:.2f} s, "
        f"to OpenFlow connection {connected_at - dead_until:.2f} s, to old generation gone "
        f"{reconnected_at - dead_until:.2f} s, {len(during)} packets meanwhile; flow generation "
        f"{old_generation} -> {new_generation} ==="
    )
    assert len(during) >= 80
    assert missing == [], f"echo requests lost around the controller restart: {missing}"
    assert max(gaps) < 0.25, f"{max(gaps) * 1000:.0f} ms without tunnelled packets"

    # The home host is resolved again on demand by the new controller.
    result = rig.cn.run(["ping", "-6", "-n", "-c", "4", "-i", "0.2", "-W", "1", MNH], check=False)
    assert re.search(r"\b[34] received", result.stdout), result.stdout

    print("=== REST GET /fama/v1/bindings after the restart ===")
    print(rig.rest_text("bindings"))
    print("=== dump-flows dar1 after the restart ===")
    print(rig.ovs.ofctl("dump-flows", "dar1"))


def _strip_counters(line: str, *, generation: bool = False) -> str:
    """A dump-flows line without its changing fields (counters, age, timeouts left)."""
    line = re.sub(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,? ?", "", line)
    line = re.sub(r"hard_timeout=\d+", "hard_timeout=T", line)
    if generation:
        line = re.sub(r"cookie=0x(fa4d[0-9a-f]{4})[0-9a-f]{8}", r"cookie=0x\1G", line)
    return line.strip()


def test_9_no_handler_failures_and_teardown_leaves_nothing(rig: Rig) -> None:
    """No exception or switch error in the controller; stopped by pid; the fixture
    then tears the lab down and checks that nothing is left."""
    stats = rig.rest("stats")
    print("=== REST GET /fama/v1/stats ===")
    print(json.dumps(stats, indent=1))
    assert isinstance(stats, dict)
    events = stats["dar1"]["events"]
    assert "handler_exception" not in events and "switch_error" not in events, events
    pid = rig.controller.pid if rig.controller is not None else None
    rig.stop_controller()
    assert pid is None or not process_alive(pid)
    records = rig.lab.recorded()
    assert {r["description"] for r in records if r["kind"] == "process"} == {
        "ovsdb-server",
        "ovs-vswitchd",
    }
