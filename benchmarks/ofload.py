"""A cbench-style OpenFlow 1.3 load generator: emulated switches over asyncio.

No Ryu here: every message is packed and parsed with :mod:`struct`.  Each
:class:`EmulatedSwitch` connects to a controller, answers the handshake
(HELLO, FEATURES_REPLY with its dpid, PORT_DESC multipart replies with the
port names the domain file expects, an empty FLOW stats reply, ECHO and
BARRIER replies) and counts what the controller sends (flow-mods,
packet-outs, barriers).  The load itself is packet-ins whose ``data`` is a
caller-supplied Ethernet frame.

A packet-in is *answered* when a packet-out arrives whose frame the caller's
``match_reply`` maps back to it: for FAMA the Binding Ack (keyed by
destination/Type 2 RH address and sequence number, parsed here from the
packet-out data), for a learning switch the frame's own bytes.

:func:`run_window` keeps ``window`` packet-ins outstanding per switch
(throughput); :func:`run_paced` keeps one outstanding in total and starts one
every ``1/rate`` seconds (latency).
"""

from __future__ import annotations

import asyncio
import functools
import struct
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

OFP_VERSION = 4
HEADER = struct.Struct("!BBHI")

OFPT_HELLO = 0
OFPT_ERROR = 1
OFPT_ECHO_REQUEST = 2
OFPT_ECHO_REPLY = 3
OFPT_FEATURES_REQUEST = 5
OFPT_FEATURES_REPLY = 6
OFPT_PACKET_IN = 10
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_MULTIPART_REQUEST = 18
OFPT_MULTIPART_REPLY = 19
OFPT_BARRIER_REQUEST = 20
OFPT_BARRIER_REPLY = 21

OFPMP_FLOW = 1
OFPTT_ALL = 0xFF
OFPFC_DELETE = 3
OFPMP_PORT_DESC = 13
OFP_NO_BUFFER = 0xFFFFFFFF

IPPROTO_MH = 135
MH_TYPE_BA = 6
_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options

ReplyKey = Hashable
MatchReply = Callable[[int, bytes], Sequence[ReplyKey]]


def message(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    """One OpenFlow 1.3 message: header plus ``body``."""
    return HEADER.pack(OFP_VERSION, msg_type, HEADER.size + len(body), xid) + body


def packet_in(xid: int, in_port: int, frame: bytes) -> bytes:
    """OFPT_PACKET_IN (no buffer, reason NO_MATCH, table 0) with an OXM in_port match."""
    oxm = struct.pack("!IIHH", 0x80000004, in_port, 0, 0)  # in_port TLV, then match padding
    match = struct.pack("!HH", 1, 4 + 8) + oxm  # type OXM, length 12, padded to 16
    body = struct.pack("!IHBBQ", OFP_NO_BUFFER, len(frame), 0, 0, 0) + match + b"\x00\x00" + frame
    return message(OFPT_PACKET_IN, xid, body)


def features_reply(xid: int, dpid: int) -> bytes:
    """OFPT_FEATURES_REPLY: 256 buffers, 254 tables, no auxiliary connection."""
    return message(OFPT_FEATURES_REPLY, xid, struct.pack("!QIBB2xII", dpid, 256, 254, 0, 0x4F, 0))


def port_desc_reply(xid: int, ports: dict[str, int]) -> bytes:
    """OFPMP_PORT_DESC reply with one 64-byte ``ofp_port`` per named port."""
    body = struct.pack("!HH4x", OFPMP_PORT_DESC, 0)
    for name, number in ports.items():
        mac = struct.pack("!HI", 0x0200, number)
        body += struct.pack(
            "!I4x6s2x16sIIIIIIII", number, mac, name.encode()[:15], 0, 4, 0, 0, 0, 0, 10_000_000, 0
        )
    return message(OFPT_MULTIPART_REPLY, xid, body)


def ba_keys(frame: bytes) -> list[tuple[bytes, int]]:
    """``(address, sequence)`` keys of a Binding Ack frame; ``[]`` for anything else.

    The addresses are the IPv6 destination and, when present, every address
    of a routing header (the Type 2 RH carries the home address).
    """
    if len(frame) < 14 + 40 or frame[12:14] != b"\x86\xdd":
        return []
    addresses = [frame[38:54]]
    next_header = frame[20]
    offset = 54
    while next_header in _EXTENSION_HEADERS and offset + 8 <= len(frame):
        length = (frame[offset + 1] + 1) * 8
        if next_header == 43:
            addresses.extend(
                frame[start : start + 16] for start in range(offset + 8, offset + length, 16)
            )
        next_header = frame[offset]
        offset += length
    if next_header != IPPROTO_MH or offset + 12 > len(frame) or frame[offset + 2] != MH_TYPE_BA:
        return []
    (sequence,) = struct.unpack_from("!H", frame, offset + 8)
    return [(address, sequence) for address in addresses]


def ba_status(frame: bytes) -> int | None:
    """The status byte of a Binding Ack frame, or None."""
    next_header = frame[20]
    offset = 54
    while next_header in _EXTENSION_HEADERS and offset + 8 <= len(frame):
        next_header, offset = frame[offset], offset + (frame[offset + 1] + 1) * 8
    if next_header != IPPROTO_MH or frame[offset + 2] != MH_TYPE_BA:
        return None
    return frame[offset + 6]


@dataclass
class Request:
    """One packet-in to send and the reply keys that answer it."""

    in_port: int
    frame: bytes
    keys: Sequence[ReplyKey]


@dataclass
class EmulatedSwitch(asyncio.Protocol):
    """One OpenFlow 1.3 switch; counts what the controller sends it."""

    dpid: int
    ports: dict[str, int]
    match_reply: MatchReply
    counts: Counter[str] = field(default_factory=Counter)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # What tells that the app has set us up: "sweep", the deletes of other flow
    # generations that end its setup, or "flow_mod", any flow-mod (other apps).
    ready_on: str = "sweep"
    keep_frames: bool = False
    frames: list[bytes] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._xid = 0
        self._waiting: dict[ReplyKey, asyncio.Future[float]] = {}
        self._keys_of: dict[asyncio.Future[float], Sequence[ReplyKey]] = {}
        self.closed = asyncio.Event()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(message(OFPT_HELLO, self._next_xid()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"dpid {self.dpid}: connection lost"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        offset, end = 0, len(buffer)
        while end - offset >= 8:
            _, msg_type, length, xid = HEADER.unpack_from(buffer, offset)
            if end - offset < length:
                break
            self._handle(msg_type, xid, buffer, offset, length)
            offset += length
        self._buffer = buffer[offset:]

    # ------------------------------------------------------------ messages

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def _handle(self, msg_type: int, xid: int, buffer: bytes, offset: int, length: int) -> None:
        counts = self.counts
        if msg_type == OFPT_FLOW_MOD:
            counts["flow_mod"] += 1
            table_id, command = buffer[offset + 24], buffer[offset + 25]
            sweep = table_id == OFPTT_ALL and command == OFPFC_DELETE
            if self.ready_on == "flow_mod" or (self.ready_on == "sweep" and sweep):
                self.ready.set()
        elif msg_type == OFPT_PACKET_OUT:
            counts["packet_out"] += 1
            (actions_len,) = struct.unpack_from("!H", buffer, offset + 16)
            frame = buffer[offset + 24 + actions_len : offset + length]
            self._reply(frame)
        elif msg_type == OFPT_BARRIER_REQUEST:
            counts["barrier"] += 1
            self._send(message(OFPT_BARRIER_REPLY, xid))
        elif msg_type == OFPT_ECHO_REQUEST:
            counts["echo"] += 1
            self._send(message(OFPT_ECHO_REPLY, xid, buffer[offset + 8 : offset + length]))
        elif msg_type == OFPT_FEATURES_REQUEST:
            self._send(features_reply(xid, self.dpid))
        elif msg_type == OFPT_MULTIPART_REQUEST:
            (kind,) = struct.unpack_from("!H", buffer, offset + 8)
            if kind == OFPMP_PORT_DESC:
                counts["port_desc_request"] += 1
                self._send(port_desc_reply(xid, self.ports))
            elif kind == OFPMP_FLOW:
                counts["flow_stats_request"] += 1
                self._send(message(OFPT_MULTIPART_REPLY, xid, struct.pack("!HH4x", OFPMP_FLOW, 0)))
            else:
                counts[f"multipart_request_{kind}"] += 1
        elif msg_type == OFPT_ERROR:
            counts["error"] += 1
        elif msg_type != OFPT_HELLO:
            counts[f"type_{msg_type}"] += 1

    def _reply(self, frame: bytes) -> None:
        if self.keep_frames:
            self.frames.append(frame)
        for key in self.match_reply(self.dpid, frame):
            future = self._waiting.get(key)
            if future is not None:
                for other in self._keys_of.pop(future, ()):
                    self._waiting.pop(other, None)
                if not future.done():
                    self.counts["answered"] += 1
                    future.set_result(time.perf_counter())
                return
        self.counts["packet_out_unmatched"] += 1

    # ------------------------------------------------------------ load

    def send(self, request: Request) -> asyncio.Future[float]:
        """Send one packet-in; the future resolves to the answer's arrival time."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        for key in request.keys:
            self._waiting[key] = future
        self._keys_of[future] = request.keys
        self.counts["packet_in"] += 1
        self._send(packet_in(self._next_xid(), request.in_port, request.frame))
        return future

    def forget(self) -> None:
        """Drop the outstanding requests (after a timeout)."""
        self._waiting.clear()
        self._keys_of.clear()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _same(switch: EmulatedSwitch) -> EmulatedSwitch:
    return switch


async def connect(
    host: str,
    port: int,
    switches: list[EmulatedSwitch],
    *,
    timeout_s: float = 30.0,
) -> None:
    """Connect every switch (retrying until the controller listens) and wait until set up."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout_s
    for switch in switches:
        while True:
            try:
                await loop.create_connection(functools.partial(_same, switch), host, port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    remaining = max(0.1, deadline - time.monotonic())
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in switches)), remaining)


@dataclass
class RunResult:
    """What one load run measured."""

    sent: int
    answered: int
    elapsed_s: float
    latencies_s: list[float]
    generator_cpu_s: float = 0.0  # filled in by the caller that measures CPU
    controller_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def run_window(
    work: dict[int, list[Request]],
    switches: dict[int, EmulatedSwitch],
    window: int,
    *,
    timeout_s: float = 60.0,
) -> RunResult:
    """Throughput: per switch, keep ``window`` requests outstanding until its list is done."""
    latencies: list[float] = []
    answered = 0

    async def drive(dpid: int) -> None:
        nonlocal answered
        switch = switches[dpid]
        queue = iter(work[dpid])
        outstanding: set[asyncio.Future[float]] = set()
        started: dict[asyncio.Future[float], float] = {}

        def launch() -> bool:
            request = next(queue, None)
            if request is None:
                return False
            future = switch.send(request)
            started[future] = time.perf_counter()
            outstanding.add(future)
            return True

        for _ in range(window):
            if not launch():
                break
        while outstanding:
            done, _ = await asyncio.wait(outstanding, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                outstanding.discard(future)
                latencies.append(future.result() - started.pop(future))
                answered += 1
                launch()

    start = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(drive(d) for d in work)), timeout_s)
    except TimeoutError:
        for switch in switches.values():
            switch.forget()
    elapsed = time.perf_counter() - start
    sent = sum(len(requests) for requests in work.values())
    return RunResult(sent, answered, elapsed, latencies)


async def run_paced(
    requests: list[tuple[int, Request]],
    switches: dict[int, EmulatedSwitch],
    rate: float,
    *,
    answer_timeout_s: float = 2.0,
) -> RunResult:
    """Latency: one request outstanding in total, one started every ``1/rate`` s."""
    latencies: list[float] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    next_at = start
    for dpid, request in requests:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at = time.perf_counter()
        try:
            answered_at = await asyncio.wait_for(switches[dpid].send(request), answer_timeout_s)
        except TimeoutError:
            switches[dpid].forget()
        else:
            latencies.append(answered_at - sent_at)
        next_at = max(next_at + interval, time.perf_counter())
    elapsed = time.perf_counter() - start
    return RunResult(len(requests), len(latencies), elapsed, latencies)
