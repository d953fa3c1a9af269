"""``make demo``: a FAMA handover, end to end, on the real lab (``fama-lab``).

Usage (as root; ``make demo`` runs it with ``--out build``)::

    python -m fama_ryu.lab_demo [--lab-id ID] [--out DIR] [--rate-mbps 4] [--dwell-s 3]

What it does (draft-bernardos-dmm-cmip-06 §3 and Figure 3; rules of
FAMA-PROFILE.md cited as "P6"):

1. ``fama-lab up``: 3 DARs (dar1..3, prefixes 2001:db8:N::/64, anchors
   2001:db8:N::1), one CN and one MN whose agent (``fama-mn``, keep policy
   ``all``) configures a CGA from dar1's Router Advertisement.
2. From that DAR1 address a long-lived TCP stream (a paced Python sender in
   the MN, a receiver in the CN counting bytes per 100 ms) and an ICMPv6
   echo every 20 ms (a Python prober with sequence numbers) go to the CN.
3. The MN moves to dar2, dar3 and back to dar1, a few seconds on each.
   Printed step by step: the bindings REST shows at each DAR; probes lost
   and the outage per handover; at dar2, that a new connection uses dar2's
   address and crosses no GRE port (``ovs-ofctl dump-ports darN dN-gre``
   before and after, against the same window of background traffic, P16);
   at dar3, that dar1 and dar2 both hold a binding with the dar3 address as
   care-of address (Figure 3); back at dar1, that dar1's binding and its
   tunnel rules are gone (P11); from a capture of the MN's signalling, that
   the first BU to dar1 is CGA-signed (P6) and the later ones carry only the
   PHKT's Binding Authorization Data (P9).
4. It writes ``OUT/demo-handover.png`` (throughput and ping over time,
   handovers marked), ``OUT/demo-handover.json`` (every measurement) and
   ``OUT/demo-handover-bu.pcap`` (the signalling to and from dar1), then
   removes the lab, also after a failure or Ctrl-C.

Exit status: 0 every check passed; 1 a check failed or the lab broke;
2 not root or not runnable here; 3 a lab with that id exists (left alone).

The traffic helpers are roles of this module, started in the lab's
namespaces as ``python -m fama_ryu.lab_demo _role NAME ...``; they write
JSON lines, timestamped with the wall clock (one clock for every
namespace), which :func:`handover_figures` turns into the figures.  The e2e tests
(``tests/e2e/test_handover.py``) drive :func:`run_handover` and
:class:`Traffic` on a lab of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

from fama_ryu import lab
from fama_ryu.netlab import LabError, Namespace, PacketCapture, wait_until

DEFAULT_LAB_ID = "fama-demo"
DEFAULT_OUT = Path("build")
PNG_NAME = "demo-handover.png"
JSON_NAME = "demo-handover.json"
PCAP_NAME = "demo-handover-bu.pcap"

STREAM_PORT = 5001
BIN_S = 0.1  # the receiver's counting interval
PROBE_INTERVAL_S = 0.02
DEFAULT_RATE_MBPS = 4.0  # the stream's pace: the MN's tunnel is in user space (fama-mn)
DEFAULT_DWELL_S = 3.0  # time on each DAR after a handover (at least)
WARMUP_S = 2.0  # traffic on dar1 before the first move
NEW_CONNECTION_BYTES = 8_000_000  # the connection opened at dar2 (P16 check)
NEW_CONNECTION_MBPS = 80.0  # its pace: a burst at full speed costs the probes a packet or two
GRE_WINDOW_S = 1.5  # windows of GRE port counters around it
#: Probes sent up to this long after the link came back count for the handover.
HANDOVER_WINDOW_S = 2.0
OUTAGE_GAP_S = 0.1  # lost probes this close belong to one outage
HELLO = b"FAMA-DEMO "  # first line of every stream: HELLO + name + "\n"
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ICMP6_FILTER = 1  # setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER) (RFC 3542 §3.2)
#: How long the scenario waits for the agent, REST, the stream... after a move.
SETTLE_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_ENVIRONMENT, EXIT_EXISTS = 0, 1, 2, 3

T = TypeVar("T")


# =========================================================================== roles
# Small programs started inside the lab's namespaces.  SIGTERM ends them
# cleanly (their last lines are written); every line is flushed at once.


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


class _JsonLines:
    def __init__(self, path: Path) -> None:
        self._stream: TextIO = path.open("a", buffering=1)

    def write(self, **fields: Any) -> None:
        self._stream.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._stream.close()


@dataclass
class _Connection:
    peer: str
    port: int
    name: str | None = None
    head: bytes = b""
    total: int = 0


def role_receiver(args: argparse.Namespace) -> int:
    """TCP server: count the bytes of every named stream per :data:`BIN_S` interval."""
    log = _JsonLines(Path(args.log))
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::", args.port))
    server.listen(16)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    connections: dict[socket.socket, _Connection] = {}
    counts: dict[str, int] = {}
    log.write(ev="listening", t=time.time(), port=args.port)
    next_bin = (int(time.time() / BIN_S) + 1) * BIN_S
    try:
        while True:
            timeout = max(0.0, next_bin - time.time())
            for key, _events in selector.select(timeout):
                if key.fileobj is server:
                    with contextlib.suppress(BlockingIOError):
                        sock, peer = server.accept()
                        sock.setblocking(False)
                        connections[sock] = _Connection(peer[0], peer[1])
                        selector.register(sock, selectors.EVENT_READ)
                        log.write(ev="accept", t=time.time(), peer=peer[0], port=peer[1])
                    continue
                sock = cast(socket.socket, key.fileobj)
                conn = connections[sock]
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as error:
                    data = b""
                    log.write(ev="error", t=time.time(), name=conn.name, error=str(error))
                if not data:
                    selector.unregister(sock)
                    sock.close()
                    del connections[sock]
                    log.write(ev="close", t=time.time(), name=conn.name, total=conn.total)
                    continue
                if conn.name is None:
                    conn.head += data
                    if b"\n" not in conn.head and len(conn.head) < 128:
                        continue
                    line, _, data = conn.head.partition(b"\n")
                    conn.name = line.removeprefix(HELLO).decode(errors="replace")[:64]
                    conn.head = b""
                    log.write(ev="hello", t=time.time(), name=conn.name, peer=conn.peer)
                conn.total += len(data)
                counts[conn.name] = counts.get(conn.name, 0) + len(data)
            now = time.time()
            if now >= next_bin:
                log.write(ev="bin", t=round(next_bin, 3), b=counts)
                counts = {}
                next_bin += BIN_S
                if now > next_bin:  # we were late: never emit a burst of empty bins
                    next_bin = (int(now / BIN_S) + 1) * BIN_S
    except _Stop:
        pass
    finally:
        if counts:
            log.write(ev="bin", t=round(time.time(), 3), b=counts)
        log.write(ev="stopped", t=time.time())
        log.close()
    return 0


def role_sender(args: argparse.Namespace) -> int:
    """TCP client bound to ``--source``: write continuously at ``--rate-mbps``."""
    log = _JsonLines(Path(args.log))
    rate = args.rate_mbps * 1e6 / 8  # bytes per second
    chunk = bytes(range(256)) * 16  # 4 KiB
    total = 0
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.bind((args.source, 0))
        sock.settimeout(10.0)
        sock.connect((args.destination, args.port))
        sock.settimeout(None)  # blocking sends: an outage just holds the writer back
        local = sock.getsockname()
        log.write(ev="connected", t=time.time(), local=local[0], port=local[1])
        sock.sendall(HELLO + args.name.encode() + b"\n")
        next_send = time.monotonic()
        next_report = time.time() + 1.0
        while True:
            now = time.monotonic()
            if now < next_send:
                time.sleep(next_send - now)
            sock.sendall(chunk)
            total += len(chunk)
            # Paced, with no catch-up burst after the writer was held back.
            next_send = max(next_send, time.monotonic() - 0.1) + len(chunk) / rate
            if time.time() >= next_report:
                log.write(ev="sent", t=time.time(), total=total)
                next_report += 1.0
    except _Stop:
        log.write(ev="stopped", t=time.time(), total=total)
        return 0
    except OSError as error:
        log.write(ev="error", t=time.time(), total=total, error=str(error))
        return 1
    finally:
        log.close()


def role_prober(args: argparse.Namespace) -> int:
    """ICMPv6 echo from ``--source`` every ``--interval-s``; log each sent and answered probe."""
    log = _JsonLines(Path(args.log))
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    blocked = [0xFFFFFFFF] * 8  # bit set = type blocked; let echo replies through only
    blocked[ICMPV6_ECHO_REPLY >> 5] &= ~(1 << (ICMPV6_ECHO_REPLY & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
    sock.bind((args.source, 0))  # the source, and only echo replies to it arrive here
    sock.setblocking(False)
    ident = args.ident & 0xFFFF
    log.write(ev="start", t=time.time(), src=args.source, dst=args.destination, id=ident)
    start = time.monotonic()
    seq = 0
    stopping_at: float | None = None

    def on_term(*_: object) -> None:
        nonlocal stopping_at
        stopping_at = time.monotonic() + 0.5  # answers still on their way are counted

    signal.signal(signal.SIGTERM, on_term)
    try:
        while stopping_at is None or time.monotonic() < stopping_at:
            now = time.monotonic()
            due = start + seq * args.interval_s
            if stopping_at is None and now >= due:
                message = struct.pack("!BBHHH", ICMPV6_ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF)
                message += b"FAMAdemo" + struct.pack("!d", time.time())
                sent_at = time.time()
                with contextlib.suppress(OSError):  # no route for a moment: a lost probe
                    sock.sendto(message, (args.destination, 0))
                log.write(s=seq, t=round(sent_at, 6))
                seq += 1
                continue
            wait = (due - now) if stopping_at is None else (stopping_at - now)
            readable, _, _ = select.select([sock], [], [], max(0.0, wait))
            if not readable:
                continue
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                if len(data) < 8 or data[0] != ICMPV6_ECHO_REPLY:
                    continue
                their_ident, their_seq = struct.unpack("!HH", data[4:8])
                if their_ident == ident:
                    log.write(r=their_seq, t=round(time.time(), 6))
    finally:
        log.write(ev="stopped", t=time.time(), sent=seq)
        log.close()
    return 0


def role_connect(args: argparse.Namespace) -> int:
    """One new TCP connection (no bind: the kernel picks the source); JSON on stdout."""
    started = time.time()
    sock = socket.create_connection((args.destination, args.port), timeout=10.0)
    local = sock.getsockname()
    sock.sendall(HELLO + args.name.encode() + b"\n")
    chunk = bytes(16384)
    left = args.bytes
    rate = args.rate_mbps * 1e6 / 8
    next_send = time.monotonic()
    while left > 0:
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        size = min(left, len(chunk))
        sock.sendall(chunk[:size])
        left -= size
        next_send += size / rate
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(10.0)
    while sock.recv(4096):  # the receiver closes after reading everything
        pass
    sock.close()
    finished = time.time()
    doc = {"local": local[0], "port": local[1], "bytes": args.bytes}
    doc.update(started=started, finished=finished)
    print(json.dumps(doc))
    return 0


def _role_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fama_ryu.lab_demo _role")
    roles = parser.add_subparsers(dest="role", required=True)
    receiver = roles.add_parser("receiver")
    receiver.add_argument("--port", type=int, default=STREAM_PORT)
    receiver.add_argument("--log", required=True)
    receiver.set_defaults(handler=role_receiver)
    sender = roles.add_parser("sender")
    prober = roles.add_parser("prober")
    connect = roles.add_parser("connect")
    for sub in (sender, prober, connect):
        sub.add_argument("--destination", required=True)
    for sub in (sender, prober):
        sub.add_argument("--source", required=True)
        sub.add_argument("--log", required=True)
    for sub in (sender, connect):
        sub.add_argument("--port", type=int, default=STREAM_PORT)
        sub.add_argument("--name", required=True)
    sender.add_argument("--rate-mbps", type=float, default=DEFAULT_RATE_MBPS)
    sender.set_defaults(handler=role_sender)
    prober.add_argument("--interval-s", type=float, default=PROBE_INTERVAL_S)
    prober.add_argument("--ident", type=int, default=0xFA01)
    prober.set_defaults(handler=role_prober)
    connect.add_argument("--bytes", type=int, default=NEW_CONNECTION_BYTES)
    connect.add_argument("--rate-mbps", type=float, default=NEW_CONNECTION_MBPS)
    connect.set_defaults(handler=role_connect)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the demo stops its helpers itself
    return int(args.handler(args))


# =========================================================================== the lab


def _options(**values: object) -> list[str]:
    """``--key value`` arguments (``_`` in keys becomes ``-``)."""
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", f"{v}")]


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def wait_for(predicate: Callable[[], T | None], timeout_s: float, *, description: str) -> T:
    """:func:`~fama_ryu.netlab.wait_until` for predicates returning a value or None."""
    value = wait_until(predicate, timeout_s, interval_s=0.05, description=description)
    assert value is not None
    return value


def in_prefix(address: str, prefix: str) -> bool:
    return ipaddress.IPv6Address(address) in ipaddress.IPv6Network(prefix)


class DemoLab:
    """A running ``fama-lab`` lab, seen from this process (root namespace)."""

    def __init__(self, lab_id: str) -> None:
        self.lab_id = lab_id
        self.meta = lab.load_lab(lab_id)
        self.nodes: dict[str, Any] = self.meta["nodes"]
        self.sw = Namespace(self.meta["ovs"]["namespace"])
        self.ovs_env: dict[str, str] = dict(self.meta["ovs"]["env"])
        self.workdir = Path(self.meta["workdir"])
        self.dars = sorted(n for n, v in self.nodes.items() if v.get("kind") == "dar")

    def ns(self, node: str) -> Namespace:
        return Namespace(lab.node_namespace(self.meta, node))

    def dar(self, name: str) -> dict[str, Any]:
        return dict(self.nodes[name])

    def dar_of_address(self, address: str) -> str | None:
        for name in self.dars:
            if any(in_prefix(address, p) for p in self.nodes[name]["prefixes"]):
                return name
        return None

    # ---------------------------------------------------------------- REST, OVS
    def rest(self, path: str) -> Any:
        """GET ``path`` of the controller's REST API (curl in its namespace, else urllib)."""
        answer = lab._rest_get(self.sw, path, timeout_s=5.0)
        if answer is None:
            raise LabError(f"REST GET {path}: no (JSON) answer from {self.meta['rest']['url']}")
        return answer

    def bindings(self) -> list[dict[str, Any]]:
        return list(self.rest("/fama/v1/bindings"))

    def bindings_by_dar(self) -> dict[str, list[dict[str, Any]]]:
        table: dict[str, list[dict[str, Any]]] = {name: [] for name in self.dars}
        for entry in self.bindings():
            table.setdefault(entry["dar"], []).append(entry)
        return table

    def ofctl(self, *args: str) -> str:
        return self.sw.run(["ovs-ofctl", "-O", "OpenFlow13", *args], env=self.ovs_env).stdout

    def gre_counters(self) -> dict[str, dict[str, int]]:
        """``dump-ports darN dN-gre`` of every DAR: rx/tx packets and bytes."""
        counters = {}
        for name in self.dars:
            gre = self.nodes[name]["ports"]["gre"]["name"]
            counters[name] = parse_port_counters(self.ofctl("dump-ports", name, gre))
        return counters

    def tunnel_flows(self, dar: str) -> list[str]:
        """The flows of ``dar`` that decapsulate a binding's tunnel (``tun_ipv6_src``)."""
        return [
            line.strip()
            for line in self.ofctl("dump-flows", dar).splitlines()
            if "tun_ipv6_src" in line
        ]

    # ---------------------------------------------------------------- MNs
    def agent_state(self, mn: str) -> dict[str, Any] | None:
        agent = self.nodes[mn].get("agent")
        if not agent:
            return None
        try:
            return dict(json.loads((Path(agent["state_dir"]) / "state.json").read_text()))
        except (OSError, json.JSONDecodeError):
            return None

    def current_address(self, mn: str) -> str | None:
        state = self.agent_state(mn) or {}
        for entry in state.get("addresses", []):
            if entry.get("role") == "current":
                return str(entry["address"])
        return None

    def wait_attached(self, mn: str, dar: str, *, timeout_s: float = SETTLE_TIMEOUT_S) -> str:
        """Wait until ``mn``'s agent uses an address of ``dar`` and every binding is registered.

        Returns that address.
        """
        anchor = self.nodes[dar]["anchor"]

        def settled() -> str | None:
            state = self.agent_state(mn)
            if not state or (state.get("current_dar") or {}).get("anchor") != anchor:
                return None
            current = self.current_address(mn)
            kept = [a for a in state["addresses"] if a["role"] == "kept"]
            registered = {
                (b["hoa"], b["coa"]) for b in state["bindings"] if b["state"] == "registered"
            }
            if current is None or any((a["address"], current) not in registered for a in kept):
                return None
            return current

        return wait_for(settled, timeout_s, description=f"{mn}'s agent settled at {dar}")

    def move(self, mn: str, dar: str) -> dict[str, Any]:
        """``fama-lab move``; adds ``down_at``, when the link went down."""
        down_at = time.time()
        moved = lab.move(self.lab_id, mn, dar)
        moved["down_at"] = down_at
        return moved


def parse_port_counters(text: str) -> dict[str, int]:
    """rx/tx packets and bytes of the one port in ``ovs-ofctl dump-ports`` output."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        words = line.replace(",", " ").split()
        if not words:
            continue
        direction = "rx" if "rx" in words[:3] else "tx" if "tx" in words[:2] else None
        if direction is None:
            continue
        for word in words:
            key, _, value = word.partition("=")
            if key in ("pkts", "bytes") and value.isdigit():
                counters[f"{direction}_{key}"] = int(value)
    if set(counters) != {"rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes"}:
        raise LabError(f"unexpected dump-ports output: {text.strip()}")
    return counters


def counter_deltas(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    return {dar: {key: after[dar][key] - before[dar][key] for key in before[dar]} for dar in before}


# =========================================================================== traffic


@dataclass
class Helper:
    name: str
    node: str
    proc: subprocess.Popen[bytes]
    log: Path | None


class Traffic:
    """The helper processes of one run, in the lab's namespaces; :meth:`stop_all` ends them.

    Processes are started in sessions of their own (Ctrl-C reaches only the
    demo, which stops them in order) and stopped by their Popen handle.
    """

    def __init__(self, demo_lab: DemoLab, run_dir: Path) -> None:
        self.lab = demo_lab
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.helpers: dict[str, Helper] = {}
        self.captures: list[PacketCapture] = []

    def _command(self, role: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "fama_ryu.lab_demo", "_role", role, *args]

    def start(self, name: str, node: str, role: str, *args: str) -> Helper:
        log = self.run_dir / f"{name}.jsonl"
        stderr = (self.run_dir / f"{name}.stderr").open("wb")
        proc = self.lab.ns(node).popen(
            self._command(role, *args, "--log", str(log)),
            stderr=stderr,
            description=f"lab_demo {role} {name}",
            start_new_session=True,
        )
        stderr.close()
        helper = self.helpers[name] = Helper(name, node, proc, log)
        return helper

    def receiver(self, name: str, node: str, port: int = STREAM_PORT) -> Helper:
        helper = self.start(name, node, "receiver", "--port", str(port))
        wait_until(
            lambda: any(r.get("ev") == "listening" for r in self.records(name)) or self._dead(name),
            10.0,
            description=f"the receiver {name} in {node}",
        )
        self._require_alive(name)
        return helper

    def sender(
        self,
        name: str,
        node: str,
        source: str,
        destination: str,
        *,
        port: int = STREAM_PORT,
        rate_mbps: float = DEFAULT_RATE_MBPS,
    ) -> Helper:
        options = _options(
            source=source, destination=destination, port=port, name=name, rate_mbps=rate_mbps
        )
        return self.start(name, node, "sender", *options)

    def prober(
        self, name: str, node: str, source: str, destination: str, *, ident: int = 0xFA01
    ) -> Helper:
        options = _options(
            source=source, destination=destination, ident=ident, interval_s=PROBE_INTERVAL_S
        )
        return self.start(name, node, "prober", *options)

    def connect(
        self,
        node: str,
        destination: str,
        name: str,
        *,
        port: int = STREAM_PORT,
        size: int = NEW_CONNECTION_BYTES,
        rate_mbps: float = NEW_CONNECTION_MBPS,
    ) -> dict[str, Any]:
        """Run one new connection to its end; its JSON (source address, times)."""
        options = _options(
            destination=destination, port=port, name=name, bytes=size, rate_mbps=rate_mbps
        )
        result = self.lab.ns(node).run(self._command("connect", *options), timeout_s=30)
        return dict(json.loads(result.stdout))

    def capture(self, node: str, interface: str, bpf: str, path: Path) -> PacketCapture:
        capture = self.lab.ns(node).capture(interface, bpf, path)
        self.captures.append(capture)
        return capture

    def records(self, name: str) -> list[dict[str, Any]]:
        helper = self.helpers[name]
        return [] if helper.log is None else _read_json_lines(helper.log)

    def _dead(self, name: str) -> bool:
        return self.helpers[name].proc.poll() is not None

    def _require_alive(self, name: str) -> None:
        helper = self.helpers[name]
        if helper.proc.poll() is not None:
            stderr = (self.run_dir / f"{name}.stderr").read_text(errors="replace")[-2000:]
            raise LabError(f"helper {name} exited with {helper.proc.returncode}: {stderr}")

    def alive(self, name: str) -> bool:
        return self.helpers[name].proc.poll() is None

    def stop(self, name: str, *, timeout_s: float = 5.0) -> int | None:
        """SIGTERM (the helper writes its last lines), SIGKILL after ``timeout_s``."""
        proc = self.helpers[name].proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        return proc.returncode

    def stop_all(self) -> None:
        """Every helper and capture still running.

        Senders and probers first; then each receiver, once it has read every
        connection to its end (at most 2 s), so that its totals are complete.
        """
        receivers = [n for n in self.helpers if self._role(n) == "receiver"]
        for name in self.helpers:
            if name not in receivers:
                self.stop(name)
        for name in receivers:
            deadline = time.monotonic() + 2.0
            while self.alive(name) and not self._drained(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stop(name)
        for capture in self.captures:
            capture.stop()
        self.captures.clear()

    def _drained(self, receiver: str) -> bool:
        records = self.records(receiver)
        accepted = sum(1 for r in records if r.get("ev") == "accept")
        return accepted == sum(1 for r in records if r.get("ev") == "close")

    def _role(self, name: str) -> str:
        argv = self.helpers[name].proc.args
        return str(argv[argv.index("_role") + 1]) if isinstance(argv, list) else ""

    # ---------------------------------------------------------------- views of the logs
    def stream_total(self, receiver: str, stream: str, since: float = 0.0) -> int:
        """Bytes of ``stream`` the receiver counted in bins ending after ``since``."""
        return sum(
            r["b"].get(stream, 0)
            for r in self.records(receiver)
            if r.get("ev") == "bin" and r["t"] > since
        )

    def wait_stream(self, receiver: str, stream: str, since: float, timeout_s: float) -> float:
        """Wait until ``stream`` carries data after ``since``; the end of that first bin."""

        def first_bin() -> float | None:
            for record in self.records(receiver):
                if (
                    record.get("ev") == "bin"
                    and record["t"] - BIN_S >= since - 1e-3
                    and record["b"].get(stream, 0) > 0
                ):
                    return float(record["t"])
            return None

        return wait_for(first_bin, timeout_s, description=f"{stream} to carry data")

    def probe_answered_after(self, prober: str, since: float) -> bool:
        records = self.records(prober)
        sent = {r["s"]: r["t"] for r in records if "s" in r}
        return any("r" in r and sent.get(r["r"], 0) >= since for r in records)


# =========================================================================== analysis


@dataclass
class Probe:
    seq: int
    sent: float
    answered: float | None


def probes_of(records: Sequence[dict[str, Any]]) -> list[Probe]:
    """The prober's log as probes (sequence numbers are unique within a run)."""
    probes: dict[int, Probe] = {}
    for record in records:
        if "s" in record:
            probes[record["s"]] = Probe(record["s"], record["t"], None)
        elif "r" in record and record["r"] in probes and probes[record["r"]].answered is None:
            probes[record["r"]].answered = record["t"]
    return sorted(probes.values(), key=lambda p: p.seq)


def stream_bins(records: Sequence[dict[str, Any]], stream: str) -> list[tuple[float, int]]:
    """(end of bin, bytes of ``stream``) for every bin the receiver wrote."""
    return [(r["t"], int(r["b"].get(stream, 0))) for r in records if r.get("ev") == "bin"]


def handover_figures(
    probes: Sequence[Probe],
    bins: Sequence[tuple[float, int]],
    handovers: Sequence[dict[str, Any]],
    end: float,
) -> list[dict[str, Any]]:
    """Loss, outage and stream stall of each handover.

    Handover i owns the probes sent from 0.1 s before its link went down
    (``down_at``) to :data:`HANDOVER_WINDOW_S` after the link came back
    (``moved_at``), or to 0.1 s before the next handover if that is sooner,
    and the stream's 100 ms bins ending in that window; ``lost_elsewhere``
    counts the probes lost after that window and before the next one.
    ``outage_ms``: from the send time of the first lost probe to that of the
    last one lost in the same burst (lost probes at most ``OUTAGE_GAP_S``
    apart), plus one interval: the time during which probes were lost, 0 if
    none was; ``recovery_ms``: from the
    carrier's return (``moved_at``) to the end of that time (probes get
    through again).  ``stream_stall_ms``: the longest run of 100 ms bins
    without a byte of the stream, times 100 ms.
    """
    figures = []
    for index, handover in enumerate(handovers):
        start = handover["down_at"] - 0.1
        following = handovers[index + 1]["down_at"] - 0.1 if index + 1 < len(handovers) else end
        stop = min(following, handover["moved_at"] + HANDOVER_WINDOW_S)
        own = [p for p in probes if start <= p.sent < stop]
        lost = [p for p in own if p.answered is None]
        elsewhere = [p for p in probes if stop <= p.sent < following and p.answered is None]
        figure: dict[str, Any] = {
            "mn": handover["mn"],
            "from": handover["from"],
            "to": handover["to"],
            "down_at": handover["down_at"],
            "moved_at": handover["moved_at"],
            "link_down_ms": round(1000 * (handover["moved_at"] - handover["down_at"]), 1),
            "probes": len(own),
            "lost": len(lost),
            "lost_seqs": [p.seq for p in lost],
            "lost_elsewhere": len(elsewhere),
            "outage_ms": 0.0,
            "recovery_ms": None,
        }
        if lost:
            # The outage: the first lost probe and those lost after it with
            # gaps of at most OUTAGE_GAP_S (a later, separate loss is no part).
            burst = [lost[0]]
            for probe in lost[1:]:
                if probe.sent - burst[-1].sent > OUTAGE_GAP_S:
                    break
                burst.append(probe)
            through_again = burst[-1].sent + PROBE_INTERVAL_S
            figure["outage_ms"] = round(1000 * (through_again - burst[0].sent), 1)
            figure["outage_lost"] = len(burst)
            figure["recovery_ms"] = round(1000 * (through_again - handover["moved_at"]), 1)
        own_bins = [n for t, n in bins if start < t <= stop]
        longest = run = 0
        for n in own_bins:
            run = run + 1 if n == 0 else 0
            longest = max(longest, run)
        figure["stream_stall_ms"] = round(1000 * longest * BIN_S)
        if "stream_back_at" in handover:  # the end of the first 100 ms bin with data again
            figure["stream_back_ms"] = round(
                1000 * (handover["stream_back_at"] - handover["moved_at"])
            )
        figure["stream_bytes_after"] = sum(
            n for t, n in bins if handover["moved_at"] < t <= following
        )
        figures.append(figure)
    return figures


def decode_signalling(pcap: Path, anchor: str) -> list[dict[str, Any]]:
    """BUs to and BAs from ``anchor`` in ``pcap``, decoded by tshark (-T fields).

    Each: frame time, source, destination, type ("BU"/"BA"), sequence
    number, lifetime or status, and which options tshark found on the wire.
    """
    fields = [
        "frame.time_epoch",
        "ipv6.src",
        "ipv6.dst",
        "mip6.mhtype",
        "mip6.bu.seqnr",
        "mip6.bu.lifetime",
        "mip6.ba.seqnr",
        "mip6.ba.status",
        "mip6.cgar.cga_par",
        "mip6.sign.sign",
        "mip6.bad.auth",
        "mip6.phkt.phkt",
        "ipv6.opt.mipv6.home_address",
        "ipv6.routing.mipv6.home_address",
    ]
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", "mipv6", "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        argv += ["-e", name]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    messages = []
    for line in result.stdout.splitlines():
        values = dict(zip(fields, line.split("\t"), strict=False))
        kind = {"5": "BU", "6": "BA"}.get(values.get("mip6.mhtype", ""))
        if kind is None or anchor not in (values["ipv6.src"], values["ipv6.dst"]):
            continue
        options = [
            option
            for option, key in (
                ("CGA Parameters", "mip6.cgar.cga_par"),
                ("Signature", "mip6.sign.sign"),
                ("Binding Authorization Data", "mip6.bad.auth"),
                ("Permanent Home Keygen Token", "mip6.phkt.phkt"),
            )
            if values.get(key)
        ]
        message: dict[str, Any] = {
            "time": float(values["frame.time_epoch"]),
            "type": kind,
            "src": values["ipv6.src"],
            "dst": values["ipv6.dst"],
            # The Home Address option of a BU, the type 2 Routing Header of a BA.
            "hoa": values.get("ipv6.opt.mipv6.home_address")
            or values.get("ipv6.routing.mipv6.home_address")
            or None,
            "options": options,
        }
        if kind == "BU":
            message["seq"] = int(values["mip6.bu.seqnr"])
            message["lifetime_s"] = int(values["mip6.bu.lifetime"]) * 4
        else:
            message["seq"] = int(values["mip6.ba.seqnr"])
            message["status"] = int(values["mip6.ba.status"])
        messages.append(message)
    return messages


def bu_authentication_check(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """P6 then P9: the first BU (sequence number) CGA-signed, every later one by the PHKT."""
    bus = [m for m in messages if m["type"] == "BU"]
    if not bus:
        return {"ok": False, "why": "no Binding Update captured"}
    first_seq = bus[0]["seq"]
    first = [m for m in bus if m["seq"] == first_seq]
    later = [m for m in bus if m["seq"] != first_seq]
    first_ok = all("CGA Parameters" in m["options"] and "Signature" in m["options"] for m in first)
    later_ok = bool(later) and all(
        "Binding Authorization Data" in m["options"]
        and "Signature" not in m["options"]
        and "CGA Parameters" not in m["options"]
        for m in later
    )
    return {
        "ok": first_ok and later_ok,
        "first_bu": {"seq": first_seq, "copies": len(first), "options": first[0]["options"]},
        "later_bus": [{"seq": m["seq"], "options": m["options"]} for m in later],
    }


# =========================================================================== output


class Reporter:
    """Step-by-step lines on ``out``: ``[  12.3 s] message``."""

    def __init__(self, out: TextIO, start: float | None = None) -> None:
        self.out = out
        self.start = time.time() if start is None else start
        self.checks: list[dict[str, Any]] = []

    def say(self, message: str = "", *, at: float | None = None) -> None:
        elapsed = (time.time() if at is None else at) - self.start
        first, *rest = message.split("\n")
        self.out.write(f"[{elapsed:6.1f} s] {first}\n")
        for line in rest:
            self.out.write(f"           {line}\n")
        self.out.flush()

    def detail(self, message: str) -> None:
        for line in message.split("\n"):
            self.out.write(f"           {line}\n")
        self.out.flush()

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        self.detail(f"{'OK  ' if ok else 'FAIL'} {name}: {detail}")
        return ok


def bindings_table(demo_lab: DemoLab, table: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for dar in demo_lab.dars:
        entries = table.get(dar, [])
        if not entries:
            lines.append(f"  {dar}: no binding")
        for entry in entries:
            lines.append(
                f"  {dar}: HoA {entry['hoa']} -> CoA {entry['coa']}"
                f" (seq {entry['sequence']}, {entry['remaining_s']:.0f} s left)"
            )
    return "\n".join(lines)


def _kbytes(n: int) -> str:
    return f"{n / 1000:.1f} kB"


# =========================================================================== the scenario


@dataclass
class HandoverRun:
    """What :func:`run_handover` measured (also the demo's JSON, see :meth:`as_json`)."""

    mn: str
    cn: str
    addresses: dict[str, str] = field(default_factory=dict)  # dar -> the MN's CGA there
    handovers: list[dict[str, Any]] = field(default_factory=list)
    bindings: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    new_connection: dict[str, Any] = field(default_factory=dict)
    figure3: dict[str, Any] = field(default_factory=dict)
    return_home: dict[str, Any] = field(default_factory=dict)
    signalling: list[dict[str, Any]] = field(default_factory=list)
    bu_authentication: dict[str, Any] = field(default_factory=dict)
    figures: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    bins: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    ended_at: float = 0.0
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "mn": self.mn,
            "cn": self.cn,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "addresses": self.addresses,
            "handovers": self.figures,
            "bindings": self.bindings,
            "new_connection": self.new_connection,
            "figure3": self.figure3,
            "return_home": self.return_home,
            "signalling": self.signalling,
            "bu_authentication": self.bu_authentication,
            "stream": self.stream,
            "checks": self.checks,
            "ok": self.ok,
            "series": {
                "bin_s": BIN_S,
                "stream_bins": {name: [[t, n] for t, n in b] for name, b in self.bins.items()},
                "probe_interval_s": PROBE_INTERVAL_S,
                "probes": [[p.seq, p.sent, p.answered] for p in self.probes],
            },
        }


def run_handover(
    demo_lab: DemoLab,
    report: Reporter,
    *,
    mn: str = "mn1",
    cn: str = "cn1",
    rate_mbps: float = DEFAULT_RATE_MBPS,
    dwell_s: float = DEFAULT_DWELL_S,
    pcap: Path | None = None,
) -> HandoverRun:
    """The demo's scenario on a running lab; the MN starts on dar1 (its agent running).

    ``mn`` goes dar1 -> dar2 -> dar3 -> dar1 with the stream and the probes
    running from its dar1 address; checks are reported as they are made
    and collected in the result, whose ``ok`` tells if all passed.  The
    helpers are stopped before it returns (also on errors).
    """
    home, second, third = demo_lab.dars[:3]
    run = HandoverRun(mn=mn, cn=cn, started_at=time.time())
    traffic = Traffic(demo_lab, demo_lab.workdir / f"demo-{mn}")
    cn_address = demo_lab.nodes[cn]["address"]
    anchor1 = demo_lab.nodes[home]["anchor"]
    try:
        address1 = demo_lab.wait_attached(mn, home)
        run.addresses[home] = address1
        report.say(f"{mn} attached to {home}: its agent configured the CGA {address1}")
        if pcap is not None:
            # The MN's signalling with dar1 (BUs, BAs), not the GRE data (P14).
            traffic.capture(mn, "eth0", f"ip6 host {anchor1} and not ip6 proto 47", pcap)
        traffic.receiver("receiver", cn)
        traffic.sender("stream", mn, address1, cn_address, rate_mbps=rate_mbps)
        traffic.prober("ping", mn, address1, cn_address)
        report.say(
            f"traffic from {address1} (the {home} address) to {cn} [{cn_address}]:\n"
            f"TCP stream to port {STREAM_PORT}, paced at {rate_mbps:g} Mbit/s; "
            f"ICMPv6 echo every {PROBE_INTERVAL_S * 1000:.0f} ms"
        )
        traffic.wait_stream("receiver", "stream", run.started_at, 10.0)
        wait_until(
            lambda: traffic.probe_answered_after("ping", run.started_at),
            5.0,
            description="the first answered probe",
        )
        run.bindings[f"at {home}"] = table = demo_lab.bindings_by_dar()
        report.detail("bindings (REST GET /fama/v1/bindings):\n" + bindings_table(demo_lab, table))
        _sleep_until(time.time() + WARMUP_S)

        # ------------------------------------------------------------ 1: -> dar2
        moved = _handover(demo_lab, report, traffic, run, mn, second, rate_mbps)
        address2 = run.addresses[second]
        table = run.bindings[f"at {second}"]
        at_home = [(b["hoa"], b["coa"]) for b in table[home]]
        report.check(
            f"{home} binds the {home} address to the {second} address",
            at_home == [(address1, address2)] and not table[second] and not table[third],
            f"{home} holds {' '.join(f'{h} -> {c}' for h, c in at_home) or 'nothing'}, "
            f"{second} and {third} no binding",
        )
        _new_connection_check(demo_lab, report, traffic, run, mn, second, cn_address)
        _sleep_until(moved["moved_at"] + dwell_s)

        # ------------------------------------------------------------ 2: -> dar3
        moved = _handover(demo_lab, report, traffic, run, mn, third, rate_mbps)
        address3 = run.addresses[third]
        table = run.bindings[f"at {third}"]
        held = {dar: [(b["hoa"], b["coa"]) for b in table[dar]] for dar in (home, second)}
        ok = held == {home: [(address1, address3)], second: [(address2, address3)]}
        run.figure3 = {"ok": ok, "bindings": held, "coa": address3}
        report.check(
            "draft Figure 3: two HDARs",
            ok,
            f"{home} and {second} both hold a binding with CoA {address3} (the {third} address)"
            if ok
            else f"bindings {held}",
        )
        _sleep_until(moved["moved_at"] + dwell_s)

        # ------------------------------------------------------------ 3: -> dar1
        moved = _handover(demo_lab, report, traffic, run, mn, home, rate_mbps)
        flows = demo_lab.tunnel_flows(home)
        table = run.bindings[f"at {home} again"]
        run.return_home = {
            "bindings_at_home": table[home],
            "tunnel_flows_at_home": flows,
            "current_address": run.addresses[f"{home} again"],
            "bindings": {dar: [(b["hoa"], b["coa"]) for b in table[dar]] for dar in demo_lab.dars},
        }
        report.check(
            f"back at {home}: deregistered (P11)",
            not table[home] and not flows and run.addresses[f"{home} again"] == address1,
            f"{home} holds no binding and no tun_ipv6_src flow (dump-flows {home}); "
            f"{mn} uses {address1} again, untunnelled",
        )
        _sleep_until(moved["moved_at"] + dwell_s)
    finally:
        traffic.stop_all()
    run.ended_at = time.time()

    # ---------------------------------------------------------------- figures
    run.probes = probes_of(traffic.records("ping"))
    receiver_records = traffic.records("receiver")
    run.bins = {
        name: stream_bins(receiver_records, name) for name in ("stream", f"new-at-{second}")
    }
    run.figures = handover_figures(run.probes, run.bins["stream"], run.handovers, run.ended_at)
    sender = traffic.records("stream")
    closes = [r for r in receiver_records if r.get("ev") == "close" and r["name"] == "stream"]
    hellos = [r for r in receiver_records if r.get("ev") == "hello" and r["name"] == "stream"]
    run.stream = {
        "source": next((r["local"] for r in sender if r.get("ev") == "connected"), None),
        "peer_seen_by_cn": hellos[0]["peer"] if hellos else None,
        "errors": [r for r in sender if r.get("ev") == "error"],
        "bytes_received": closes[0]["total"] if closes else None,
        "connections": len(hellos),
    }
    lost_total = sum(1 for p in run.probes if p.answered is None)
    lost_in_handovers = sum(f["lost"] for f in run.figures)
    report.say("results")
    report.detail(
        f"ICMPv6 echo: {len(run.probes)} probes, one every {PROBE_INTERVAL_S * 1000:.0f} ms; "
        f"{lost_total} lost, {lost_in_handovers} of them in the handovers "
        f"(from 0.1 s before the link went down to {HANDOVER_WINDOW_S:g} s after it came back)"
    )
    for figure in run.figures:
        recovery = "-" if figure["recovery_ms"] is None else f"{figure['recovery_ms']:.0f} ms"
        back = figure.get("stream_back_ms")
        report.detail(
            f"{figure['from']} -> {figure['to']}: {figure['lost']} probes lost, outage "
            f"{figure['outage_ms']:.0f} ms (link down {figure['link_down_ms']:.0f} ms; probes "
            f"through again {recovery} after it came back); TCP stream: back after "
            f"{'-' if back is None else f'{back:.0f} ms'}, longest stall "
            f"{figure['stream_stall_ms']:.0f} ms, {_kbytes(figure['stream_bytes_after'])} "
            "until the next move"
        )
    stream_ok = (
        run.stream["connections"] == 1
        and not run.stream["errors"]
        and run.stream["peer_seen_by_cn"] == address1
        and all(f["stream_bytes_after"] > 0 for f in run.figures)
        and len(run.figures) == 3
    )
    report.check(
        "the TCP stream survived the three handovers",
        stream_ok,
        f"one connection from {run.stream['peer_seen_by_cn']}, "
        f"{_kbytes(run.stream['bytes_received'] or 0)} received, data after every handover",
    )
    if pcap is not None:
        _signalling_check(report, run, pcap, anchor1)
    run.checks = list(report.checks)
    return run


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.time()
    if delay > 0:
        time.sleep(delay)


def _handover(
    demo_lab: DemoLab,
    report: Reporter,
    traffic: Traffic,
    run: HandoverRun,
    mn: str,
    dar: str,
    rate_mbps: float,
) -> dict[str, Any]:
    number = len(run.handovers) + 1
    report.say(f"=== handover {number}: {mn} moves to {dar} ===")
    moved = demo_lab.move(mn, dar)
    moved["mn"] = mn
    run.handovers.append(moved)
    report.say(
        f"{mn}: link down {moved['from']} -> up on {dar}'s access link "
        f"({1000 * (moved['moved_at'] - moved['down_at']):.0f} ms)",
        at=moved["moved_at"],
    )
    address = demo_lab.wait_attached(mn, dar)
    key = dar if dar not in run.addresses else f"{dar} again"
    run.addresses[key] = address
    state = demo_lab.agent_state(mn) or {}
    kept = [b for b in state.get("bindings", []) if b["state"] == "registered"]
    lines = [f"{mn} uses {address} (the {dar} address) for new flows"]
    lines += [
        f"kept {b['hoa']}: registered at {demo_lab.dar_of_address(b['hoa'])} "
        f"[{b['hdar']}] with CoA {b['coa']}" + (", PHKT held" if b["phkt_held"] else "")
        for b in kept
    ]
    report.say("\n".join(lines))
    recovered = traffic.wait_stream("receiver", "stream", moved["moved_at"], SETTLE_TIMEOUT_S)
    moved["stream_back_at"] = recovered
    report.detail(
        f"the TCP stream carries data again {1000 * (recovered - moved['moved_at']):.0f}"
        " ms after the link came back (end of its first 100 ms bin with data)"
    )

    # The REST view once it agrees with the agent: every binding the agent
    # holds (registered, P12: the DAR's rules were in place before its BA),
    # none for the address the MN uses now (back home: deregistered, P11).
    def rest_matches() -> dict[str, list[dict[str, Any]]] | None:
        table = demo_lab.bindings_by_dar()
        seen = {(b["hoa"], b["coa"]) for entries in table.values() for b in entries}
        wanted = {(b["hoa"], b["coa"]) for b in kept if b["hoa"] != b["coa"]}
        current_bound = any(b["hoa"] == address for e in table.values() for b in e)
        return table if wanted <= seen and not current_bound else None

    table = wait_for(rest_matches, 5.0, description="REST to show the bindings")
    run.bindings[f"at {key}"] = table
    report.detail("bindings (REST GET /fama/v1/bindings):\n" + bindings_table(demo_lab, table))
    return moved


def _new_connection_check(
    demo_lab: DemoLab,
    report: Reporter,
    traffic: Traffic,
    run: HandoverRun,
    mn: str,
    dar: str,
    cn_address: str,
) -> None:
    """P16: a connection opened at ``dar`` uses ``dar``'s address and no tunnel.

    The GRE port counters of every DAR are read before the connection, a
    window after it (``GRE_WINDOW_S``, or longer if the connection took
    long: Open vSwitch's userspace datapath refreshes port statistics about
    every 0.5 s) and again after a second window of the same length with the
    background traffic only (the stream and the probes, tunnelled to dar1).
    The connection's bytes must show on no GRE port: dar2's and dar3's do
    not move at all, dar1's moves no more than with the background alone
    (give or take a quarter of the connection's bytes).
    """
    address = run.addresses[dar]
    name = f"new-at-{dar}"
    home = demo_lab.dars[0]
    started = time.time()
    before = demo_lab.gre_counters()
    connection = traffic.connect(mn, cn_address, name)
    window = max(GRE_WINDOW_S, time.time() - started + 1.0)
    _sleep_until(started + window)
    after = demo_lab.gre_counters()
    _sleep_until(started + 2 * window)
    background_end = demo_lab.gre_counters()
    during = counter_deltas(before, after)
    background = counter_deltas(after, background_end)
    records = traffic.records("receiver")
    hello = next((r for r in records if r.get("ev") == "hello" and r["name"] == name), None)
    received = next(
        (r["total"] for r in records if r.get("ev") == "close" and r["name"] == name), None
    )

    def moved_bytes(d: dict[str, int]) -> int:
        return d["rx_bytes"] + d["tx_bytes"]

    gre_during = {d: moved_bytes(v) for d, v in during.items()}
    gre_background = {d: moved_bytes(v) for d, v in background.items()}
    excess = gre_during[home] - gre_background[home]
    run.new_connection = {
        "dar": dar,
        "source": connection["local"],
        "peer_seen_by_cn": hello["peer"] if hello else None,
        "dar_address": address,
        "bytes": connection["bytes"],
        "bytes_received": received,
        "started": connection["started"],
        "seconds": round(connection["finished"] - connection["started"], 3),
        "window_s": round(window, 3),
        "gre_delta": during,
        "gre_background_delta": background,
        "gre_bytes": gre_during,
        "gre_background_bytes": gre_background,
        "gre_excess_bytes": {home: excess},
    }
    report.say(
        f"new TCP connection from {mn} at {dar} (no bind): {_kbytes(connection['bytes'])} in "
        f"{run.new_connection['seconds']:.2f} s, source {connection['local']}",
        at=connection["started"],
    )
    report.detail(
        f"GRE port bytes (rx+tx, ovs-ofctl dump-ports darN dN-gre) in {window:.1f} s:\n"
        "  with the new connection: "
        + ", ".join(f"{d} +{_kbytes(n)}" for d, n in gre_during.items())
        + "\n  background only (stream and probes, tunnelled to dar1): "
        + ", ".join(f"{d} +{_kbytes(n)}" for d, n in gre_background.items())
    )
    others = [d for d in demo_lab.dars if d != home]
    ok = (
        connection["local"] == address
        and run.new_connection["peer_seen_by_cn"] == address
        and received == connection["bytes"]
        and all(gre_during[d] == 0 and gre_background[d] == 0 for d in others)
        and excess < connection["bytes"] / 4
    )
    run.new_connection["ok"] = ok
    report.check(
        f"a new connection at {dar} uses the {dar} address, no tunnel (P16)",
        ok,
        f"source {connection['local']} (the CN saw {run.new_connection['peer_seen_by_cn']}); "
        f"its {_kbytes(connection['bytes'])} crossed no GRE port ({home}: "
        f"{excess / 1000:+.1f} kB against the background alone)",
    )


def _signalling_check(report: Reporter, run: HandoverRun, pcap: Path, anchor: str) -> None:
    if shutil.which("tshark") is None:
        report.check("BU authentication on the wire", False, "tshark is not installed")
        return
    run.signalling = decode_signalling(pcap, anchor)
    report.say(f"signalling with {anchor} captured on the MN, decoded by tshark:")
    for message in run.signalling:
        what = (
            f"BU seq {message['seq']} lifetime {message['lifetime_s']} s"
            if message["type"] == "BU"
            else f"BA seq {message['seq']} status {message['status']}"
        )
        report.detail(
            f"{message['src']} -> {message['dst']}: {what}; "
            f"options: {', '.join(message['options']) or 'none'}",
        )
    run.bu_authentication = check = bu_authentication_check(run.signalling)
    report.check(
        f"first BU to {anchor} CGA-signed (P6), later ones PHKT-authenticated (P9)",
        check["ok"],
        "the later BUs carry Binding Authorization Data and no Signature option"
        if check["ok"]
        else json.dumps(check),
    )


# =========================================================================== plot


def write_plot(data: dict[str, Any], path: Path) -> None:
    """Stream throughput, probe loss and RTT over time, handovers marked (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = data["started_at"]
    series = data["series"]
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(12, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 1.6]}
    )
    # Where the MN was: light background per DAR, a label at the top of each stay.
    shades = {"dar1": "#e8f0fa", "dar2": "#eaf6e8", "dar3": "#fbf0e4"}
    handovers = data["handovers"]
    edges = [0.0] + [h["moved_at"] - origin for h in handovers] + [data["ended_at"] - origin]
    stays = [handovers[0]["from"]] + [h["to"] for h in handovers] if handovers else ["dar1"]
    for (left, right), dar in zip(zip(edges, edges[1:], strict=False), stays, strict=False):
        for axis in (top, middle, bottom):
            axis.axvspan(left, right, color=shades.get(dar, "#f2f2f2"), lw=0, zorder=0)
        top.annotate(
            f"mn1 at {dar}",
            ((left + right) / 2, 0.02),
            xycoords=("data", "axes fraction"),
            ha="center",
            fontsize=9,
            color="0.35",
        )

    stream = series["stream_bins"].get("stream", [])
    peak = max((n * 8 / BIN_S / 1e6 for _, n in stream), default=1.0)
    ceiling = max(peak * 1.6, 1.0)
    for name, bins in series["stream_bins"].items():
        if not bins or not any(n for _, n in bins):
            continue
        xs = [t - BIN_S / 2 - origin for t, _ in bins]
        ys = [n * 8 / BIN_S / 1e6 for _, n in bins]
        if name == "stream":
            label = f"long-lived TCP stream\nfrom the dar1 address {data['addresses'].get('dar1')}"
            top.step(xs, ys, where="mid", color="tab:blue", label=label, lw=1.3, zorder=3)
            continue
        new = data["new_connection"]
        top_rate = max(ys)
        label = (
            f"new TCP connection opened at dar2 ({new.get('bytes', 0) / 1e6:.0f} MB)\n"
            f"from the dar2 address {new.get('source')}, no tunnel"
        )
        clipped = [min(y, ceiling * 0.97) for y in ys]
        top.step(xs, clipped, where="mid", color="tab:green", label=label, lw=1.3, zorder=2)
        if top_rate > ceiling:
            above = [x for x, y in zip(xs, ys, strict=True) if y > ceiling * 0.97]
            top.annotate(
                f"{top_rate:.0f} Mbit/s\n(off scale)",
                ((above[0] + above[-1]) / 2, ceiling * 0.93),
                ha="center",
                va="top",
                fontsize=8,
                color="tab:green",
            )
    top.set_ylim(0, ceiling)
    top.set_ylabel("received at the CN\n(Mbit/s, 100 ms bins)")
    top.legend(loc="upper right", fontsize=8, framealpha=0.9)
    top.grid(alpha=0.3)

    probes = series["probes"]
    lost = [s - origin for _, s, a in probes if a is None]
    if probes:
        first = probes[0][1] - origin
        last = probes[-1][1] - origin
        n_bins = int((last - first) / BIN_S) + 1
        counts = [0] * n_bins
        for x in lost:
            counts[min(int((x - first) / BIN_S), n_bins - 1)] += 1
        lefts = [first + i * BIN_S for i in range(n_bins)]
        middle.bar(lefts, counts, width=BIN_S, align="edge", color="tab:red", zorder=3)
    per_bin = round(BIN_S / series["probe_interval_s"])
    middle.set_ylim(0, per_bin + 0.5)
    middle.set_ylabel(f"lost probes\nper 100 ms (of {per_bin})")
    middle.grid(alpha=0.3)

    answered = [(s - origin, 1000 * (a - s)) for _, s, a in probes if a is not None]
    if answered:
        bottom.scatter(
            [x for x, _ in answered], [rtt for _, rtt in answered], s=3, color="0.3", zorder=3
        )
    bottom.set_yscale("log")
    bottom.set_ylabel(
        f"ICMPv6 echo RTT (ms)\none probe every {series['probe_interval_s'] * 1000:.0f} ms"
    )
    bottom.set_xlabel("time since the traffic started (s)")
    bottom.grid(alpha=0.3, which="both")

    for handover in handovers:
        x = handover["moved_at"] - origin
        down = handover["down_at"] - origin
        for axis in (top, middle, bottom):
            axis.axvspan(down, x, color="tab:orange", alpha=0.35, lw=0, zorder=1)
            axis.axvline(x, color="tab:orange", lw=1.5, zorder=4)
        text = (
            f"\u2192 {handover['to']}\n{handover['lost']} probes lost\n"
            f"outage {handover['outage_ms']:.0f} ms"
        )
        middle.annotate(
            text,
            (x, 0.95),
            xycoords=("data", "axes fraction"),
            xytext=(14, 0),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="tab:orange",
            fontweight="bold",
        )
    fig.suptitle(
        "FAMA handovers (draft-bernardos-dmm-cmip-06) on Open vSwitch + Ryu: "
        "mn1 dar1 \u2192 dar2 \u2192 dar3 \u2192 dar1\n"
        "TCP stream and 20 ms ping from mn1's dar1 address to cn1; orange: link down "
        "(fama-lab move), line: link up",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# =========================================================================== main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fama_ryu.lab_demo",
        description="FAMA handover demo on a fama-lab lab: 3 DARs, a CN, an MN moving "
        "dar1 -> dar2 -> dar3 -> dar1 with a TCP stream and a 20 ms ping running.",
    )
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default build/")
    parser.add_argument(
        "--rate-mbps", type=float, default=DEFAULT_RATE_MBPS, help="pace of the TCP stream"
    )
    parser.add_argument(
        "--dwell-s", type=float, default=DEFAULT_DWELL_S, help="time on each DAR after a move"
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_role"]:
        return _role_main(argv[1:])
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print("lab_demo: must run as root (network namespaces, Open vSwitch)", file=sys.stderr)
        return EXIT_ENVIRONMENT
    try:
        lab_id = lab.resolve_lab_id(args.lab_id)
    except lab.LabUsageError as exc:
        print(f"lab_demo: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    report = Reporter(out)
    report.say(
        "FAMA handover demo (draft-bernardos-dmm-cmip-06) on a fama-lab lab "
        f"({lab_id!r}): 3 DARs, cn1, mn1 with fama-mn (keep policy all)"
    )
    created = False
    status = EXIT_FAILED
    try:
        plan = lab.LabPlan(lab_id, tuple(lab.sample_dars(3)), n_mns=1, n_cns=1, agent=True)
        doc = lab.up(plan)
        created = True
        report.say(f"lab up in {doc['timings_s']['total']:.1f} s:")
        for name in ("dar1", "dar2", "dar3"):
            dar = doc["nodes"][name]
            report.detail(f"{name}: prefix {dar['prefix']}, anchor A_d {dar['anchor']}")
        report.detail(f"cn1: {doc['nodes']['cn1']['address']}; mn1 on dar1's access link")
        status = _demo(DemoLab(lab_id), report, args)
    except lab.LabExistsError as exc:
        print(f"lab_demo: {exc}", file=sys.stderr)
        return EXIT_EXISTS
    except lab.LabUsageError as exc:
        print(f"lab_demo: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except (LabError, subprocess.CalledProcessError) as exc:
        report.say(f"FAILED: {exc}")
        for note in getattr(exc, "__notes__", []):
            report.detail(note)
        status = EXIT_FAILED
    except KeyboardInterrupt:
        report.say("interrupted")
        status = EXIT_FAILED
    finally:
        if created:
            with _no_interrupts():
                removed = lab.down(lab_id)
            report.say(f"lab {lab_id!r} removed ({removed['removed']} resources)")
        signal.signal(signal.SIGTERM, previous_term)
    return status


def _demo(demo_lab: DemoLab, report: Reporter, args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    pcap = out_dir / PCAP_NAME
    pcap.unlink(missing_ok=True)
    capture = demo_lab.workdir / PCAP_NAME
    run = run_handover(
        demo_lab, report, rate_mbps=args.rate_mbps, dwell_s=args.dwell_s, pcap=capture
    )
    shutil.copyfile(capture, pcap)
    data = run.as_json()
    data["lab_id"] = demo_lab.lab_id
    json_path, png_path = out_dir / JSON_NAME, out_dir / PNG_NAME
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    write_plot(data, png_path)
    report.say(f"wrote {png_path}, {json_path} and {pcap}")
    failed = [c["check"] for c in run.checks if not c["ok"]]
    if failed:
        report.say(f"FAILED checks: {'; '.join(failed)}")
        return EXIT_FAILED
    report.say(f"all {len(run.checks)} checks passed")
    return EXIT_OK


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Teardown runs to its end: Ctrl-C and SIGTERM are held off meanwhile."""
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
