"""One Distributed Anchor Router as pure logic: switch events in, work out.

A :class:`Dar` receives what the switch punts (Router and Neighbor
Solicitations, Neighbor Advertisements, Mobility Header packets to its
anchor address, packets to unresolved hosts) and the clock ticks, and
returns :class:`Work`: binding changes to persist, OpenFlow steps for the
pipeline of ``openflow_pipelines``, and frames to send.  It never touches
a switch, a socket, a database or the clock, in the manner of Faucet's
valve: the Ryu shim executes the work in the order :class:`Work` spells
out (persist, then flows, then a barrier, then the Binding Ack: P12).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fama_ryu import auth, icmpv6, mh
from fama_ryu.binding_cache import Binding, BindingCache, BindingChange, ChangeKind
from fama_ryu.config import DarConfig, DomainConfig
from fama_ryu.home_agent import CARE_OF_TEST_REASON, Decision, HomeAgent, Verdict
from openflow_pipelines import dar_flows
from openflow_pipelines.dar_config import DarPipelineConfig
from openflow_pipelines.model import Barrier, FlowStep, ipv6_text
from openflow_pipelines.wire import merge_phases

LOG = logging.getLogger(__name__)

Rng = Callable[[int], bytes]
# RFC 4443 §2.4 (f) asks for rate-limited errors; issue-wide budget per destination.
ERROR_REPLIES_PER_S = 10.0
# ...and all destinations together, so spoofed sources cannot multiply it.
ERROR_REPLIES_TOTAL_PER_S = 100.0
NEIGHBOR_SOLICIT_INTERVAL_S = 1.0
NEIGHBOR_SOLICITS_TOTAL_PER_S = 100.0
BINDING_FLOW_MARGIN_S = 30.0
# RFC 4861 §4: Router Solicitation .. Redirect; only these are ND messages.
ND_MESSAGE_TYPES = range(133, 138)


@dataclass(frozen=True)
class PacketOut:
    """A complete Ethernet frame to send out ``port``."""

    port: int
    frame: bytes


@dataclass
class Work:
    """What the shim does for one event, in this order.

    1. send ``packet_outs`` (they depend on nothing);
    2. persist ``changes`` in one transaction; if that fails, call
       :meth:`Dar.store_failed` and send its frames instead of the rest;
    3. call :meth:`Dar.committed` with ``changes`` (the cache follows the store);
    4. send ``flow_steps`` (a ``Barrier`` step orders what follows it);
    5. once a barrier acknowledges all of that, send ``after_flows`` (the
       Binding Acks: the forwarding rules are in place before the BA
       leaves, P12).

    The shim may hold works with ``changes`` back and persist several in one
    transaction (group commit).  Until :meth:`Dar.committed` or
    :meth:`Dar.store_failed` is called for them, a packet about one of their
    home addresses is not decided: its work says ``retry_after_commit``, and
    the shim commits what it holds and hands the packet in again.
    """

    packet_outs: list[PacketOut] = field(default_factory=list)
    changes: list[BindingChange] = field(default_factory=list)
    flow_steps: list[FlowStep] = field(default_factory=list)
    after_flows: list[PacketOut] = field(default_factory=list)
    decisions: list[tuple[mh.MobilityPacket, Decision]] = field(default_factory=list)
    retry_after_commit: bool = False

    @property
    def decided_binding_update(self) -> bool:
        return any(isinstance(packet.message, mh.BindingUpdate) for packet, _ in self.decisions)

    def extend(self, other: Work) -> None:
        self.packet_outs += other.packet_outs
        self.changes += other.changes
        self.flow_steps += other.flow_steps
        self.after_flows += other.after_flows
        self.decisions += other.decisions


@dataclass
class Neighbor:
    mac: bytes
    port: int


class _RateLimiter:
    """A token bucket per key, at most ``capacity`` keys, and optionally one for all keys.

    The least recently used key is forgotten beyond ``capacity`` (O(1) per
    call, so a flood of spoofed sources costs no more than any other flood);
    the shared bucket (``total_per_s``) bounds what all keys together get,
    also while forgotten keys start again with a full bucket.  ``now`` is
    passed in.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        total_per_s: float | None = None,
        capacity: int = 4096,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._total = (
            None if total_per_s is None else _RateLimiter(total_per_s, total_per_s, capacity=1)
        )

    def _refilled(self, key: bytes, now: float) -> float:
        tokens, last = self._buckets.pop(key, (self.burst, now))
        # After a backward clock step the bucket starts afresh, rather than
        # refusing for as long as the step.
        elapsed = now - last if now >= last else self.burst / self.rate_per_s
        return min(self.burst, tokens + elapsed * self.rate_per_s)

    def allow(self, key: bytes, now: float) -> bool:
        tokens = self._refilled(key, now)
        allowed = tokens >= 1.0 and (self._total is None or self._total.allow(b"", now))
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return allowed


def _text(address: bytes) -> str:
    return ipv6_text(address)


_ZERO_INTERFACE_ID = bytes(8)


@functools.cache
def _result_counters(verdict: Verdict, status: int | None) -> tuple[str, ...]:
    """The counter names of an answered BU (a few combinations, built once each)."""
    if status is None:
        return (f"bu_result:{verdict.value}",)
    return (f"bu_result:{verdict.value}", f"ba_status:{int(status)}")


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Dar:
    """The controller's view and decisions for one DAR bridge."""

    def __init__(
        self,
        config: DarConfig,
        domain: DomainConfig,
        rng: Rng,
        *,
        cache: BindingCache | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.dpid = config.dpid
        self.rng = rng
        token_issuer = None
        if config.return_routability:
            token_issuer = auth.CareOfTokenIssuer(rng(auth.NODE_KEY_LEN), rng, 0.0)
        self.home_agent = HomeAgent(
            config.home_agent_config(domain),
            rng,
            cache if cache is not None else BindingCache(domain.tombstone_ttl_s),
            token_issuer,
        )
        self.router_mac = _mac_bytes(config.router_mac)
        self.link_local = config.link_local.packed
        self.anchor = config.anchor_address.packed
        self.own_addresses = frozenset({self.anchor, self.link_local})
        self._access_prefixes64 = frozenset(
            prefix.network_address.packed[:8] for prefix in config.access_prefixes
        )
        self._core_next_hop_mac = _mac_bytes(config.core_next_hop.mac)
        self.pipeline: DarPipelineConfig | None = None
        self.generation = 0
        self.neighbors: dict[bytes, Neighbor] = {}
        self.counters: Counter[str] = Counter()
        self._error_limiter = _RateLimiter(
            ERROR_REPLIES_PER_S, ERROR_REPLIES_PER_S, total_per_s=ERROR_REPLIES_TOTAL_PER_S
        )
        self._solicit_limiter = _RateLimiter(
            1.0 / NEIGHBOR_SOLICIT_INTERVAL_S, 1.0, total_per_s=NEIGHBOR_SOLICITS_TOTAL_PER_S
        )
        self._next_ra_at: float | None = None
        # Home addresses with a decided change the store does not hold yet.
        self._uncommitted: Counter[bytes] = Counter()

    # ------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self.pipeline is not None

    def resolve_ports(self, ports_by_name: dict[str, int]) -> DarPipelineConfig:
        """Turn the configured port references into numbers (names from port desc)."""

        def number(reference: int | str) -> int:
            if isinstance(reference, int):
                return reference
            if reference not in ports_by_name:
                raise LookupError(f"{self.name}: switch has no port named {reference!r}")
            return ports_by_name[reference]

        return DarPipelineConfig(
            dpid=self.dpid,
            access_ports=tuple(number(port) for port in self.config.access_ports),
            core_port=number(self.config.core_port),
            gre_port=number(self.config.gre_port),
            router_mac=self.config.router_mac,
            core_next_hop_mac=self.config.core_next_hop.mac,
            anchor_address=_text(self.anchor),
            own_addresses=(_text(self.anchor), _text(self.link_local)),
            access_prefixes=tuple(str(prefix) for prefix in self.config.access_prefixes),
            domain_prefixes=tuple(str(prefix) for prefix in self.config.domain_prefixes),
            punt_rates=self.config.punt_rates,
        )

    def connect(self, ports_by_name: dict[str, int], generation: int, now: float) -> Work:
        """The switch connected: install the pipeline and every binding (reconcile).

        Flows are (re)installed with ``generation`` (an ADD replaces the
        same flow of an older generation), then, behind a barrier, whatever
        is left of other generations is deleted: traffic keeps flowing
        through the switch's old rules meanwhile.  The bindings' rules go
        phase by phase (every decap rule, a barrier, every encap rule), not
        with a barrier per binding.
        """
        self.pipeline = self.resolve_ports(ports_by_name)
        self.generation = generation
        work = Work(flow_steps=dar_flows.pipeline_setup(self.pipeline, generation))
        binding_phases = merge_phases(
            dar_flows.install_binding_packed(
                self.pipeline, binding.hoa, binding.coa, generation, self._expires_in(binding, now)
            )
            for binding in self.home_agent.cache
        )
        for phase in binding_phases:
            work.flow_steps += [Barrier(), *phase]
        for address, neighbor in self.neighbors.items():
            # Link-local neighbours (learnt from every RS) get no host route, as
            # in _learn: install_host refuses them, and the ValueError left the
            # switch unconfigured after any reconnection (found by the
            # controller/OVS integration test, test_2c).
            if neighbor.port in self.pipeline.access_ports and not _is_link_local(address):
                work.flow_steps += self._host_flows(address, neighbor)
        work.flow_steps += [
            Barrier(),
            *dar_flows.delete_other_generations(self.pipeline, generation),
        ]
        # The next tick sends the first RA and expires what expired while the
        # switch was away: kept out of this work so that a store failure can
        # never keep the pipeline from being installed.
        self._next_ra_at = now
        return work

    def disconnect(self) -> None:
        self.pipeline = None
        self._next_ra_at = None

    # ------------------------------------------------------------ events

    def packet_in(
        self, in_port: int, frame: bytes, now: float, monotonic: float | None = None
    ) -> Work:
        """Everything the pipeline punts arrives here.

        ``now`` is the wall clock (persisted with bindings); ``monotonic``, a
        clock that never steps, lets the binding cache absorb wall-clock steps.
        """
        self.counters["packet_in"] += 1
        if self.pipeline is None:
            return Work()
        if in_port == self.pipeline.gre_port:
            # Decapsulated tunnel packets are layer 3.  Open vSwitch 3.1 hands
            # them to an OpenFlow 1.3 controller behind a dummy Ethernet header
            # (00:00:00:00:00:00 both ways, type 0x86dd; seen with `ovs-ofctl
            # snoop` in the controller/OVS integration test): strip it.  A bare
            # IPv6 packet (packet-type-aware switches) is taken as it is.
            # A bare IPv6 packet starts 0x6_, never with twelve zero bytes.
            dummy_header = frame[:12] == bytes(12) and frame[12:14] == b"\x86\xdd"
            if len(frame) >= 14 + 40 and dummy_header and frame[14] >> 4 == 6:
                frame = frame[14:]
            return self._layer3_packet_in(frame, now)
        if len(frame) < 14 + 40 or frame[12:14] != b"\x86\xdd":
            self.counters["drop:punt_not_ipv6"] += 1
            return Work()
        destination = frame[14 + 24 : 14 + 40]
        if frame[14 + 6] == mh.IPPROTO_ICMPV6:
            # Only Neighbor Discovery goes to the ND handler.  Any other ICMPv6
            # packet here was punted by the route table's "resolve" rule (e.g. a
            # ping to a home host whose MAC is not known yet) and must trigger
            # a Neighbor Solicitation like any other packet: found by the
            # controller/OVS integration test (ping cn -> home host failed).
            if len(frame) <= 14 + 40 or frame[14 + 40] in ND_MESSAGE_TYPES:
                return self._icmpv6(in_port, frame, now)
            if destination == self.anchor:  # never punted by the pipeline
                self.counters["drop:unexpected_packet_in"] += 1
                return Work()
        if destination == self.anchor:
            return self._mobility(in_port, frame, now, monotonic)
        if self._is_access_host(destination):
            return self._resolve(destination, now)
        self.counters["drop:unexpected_packet_in"] += 1
        return Work()

    def _layer3_packet_in(self, packet: bytes, now: float) -> Work:
        """A packet from the tunnel for an unresolved access host: resolve it."""
        if len(packet) < 40 or packet[0] >> 4 != 6:
            self.counters["drop:punt_not_ipv6"] += 1
            return Work()
        destination = packet[24:40]
        if self._is_access_host(destination):
            return self._resolve(destination, now)
        self.counters["drop:unexpected_packet_in"] += 1
        return Work()

    def tick(self, now: float, monotonic: float | None = None) -> Work:
        """Periodic work: expire bindings (RFC 6275 §10.3.1) and send unsolicited RAs (P2).

        Bindings expire even while the switch is away; their rules then go
        at reconnection, with the older flow generations.
        """
        work = Work()
        # A binding with an uncommitted change is decided again at the next tick.
        expirations = [
            change
            for change in self.home_agent.expirations(now, monotonic)
            if change.hoa not in self._uncommitted
        ]
        if expirations:
            self._hold(expirations)
            work.changes += expirations
            for change in expirations:
                work.flow_steps += self._flows_for(change, now)
            self.counters["binding_expired"] += len(expirations)
        # Bindings whose times moved with a clock step: persisted, flows unchanged.
        rebased = [c for c in self.home_agent.clock_rebase() if c.hoa not in self._uncommitted]
        self._hold(rebased)
        work.changes += rebased
        self.home_agent.cache.forget_old_tombstones(now)
        if self.pipeline is not None and self._next_ra_at is not None and now >= self._next_ra_at:
            for port in self.pipeline.access_ports:
                work.packet_outs.append(
                    PacketOut(port, self._router_advertisement(icmpv6.ALL_NODES, None))
                )
            low, high = self.config.ra_interval_s
            fraction = int.from_bytes(self.rng(2), "big") / 0xFFFF
            self._next_ra_at = now + low + (high - low) * fraction
        return work

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.home_agent.cache.next_expiry(), self._next_ra_at) if d]
        return min(deadlines, default=None)

    def revoke(self, hoa: bytes, now: float, monotonic: float | None = None) -> Work | None:
        """Administrative removal of a binding (REST DELETE); None if unbound."""
        if hoa in self._uncommitted:
            raise RuntimeError("revoke with an uncommitted change for the address: commit first")
        change = self.home_agent.revocation(hoa, now, monotonic)
        if change is None:
            return None
        self._hold([change])
        self.counters["binding_revoked"] += 1
        return Work(changes=[change], flow_steps=self._flows_for(change, now))

    def committed(self, changes: list[BindingChange]) -> None:
        """The store holds ``changes``: make them the cache's truth."""
        for change in changes:
            self.home_agent.apply(change)
        self._release(changes)

    def _hold(self, changes: Iterable[BindingChange]) -> None:
        for change in changes:
            self._uncommitted[change.hoa] += 1

    def _release(self, changes: Iterable[BindingChange]) -> None:
        for change in changes:
            if self._uncommitted[change.hoa] <= 1:
                self._uncommitted.pop(change.hoa, None)
            else:
                self._uncommitted[change.hoa] -= 1

    def is_uncommitted(self, hoa: bytes) -> bool:
        """A change for ``hoa`` is decided but not yet committed or refused."""
        return hoa in self._uncommitted

    def store_failed(self, work: Work, reason: str) -> list[PacketOut]:
        """The store refused ``work.changes``: nothing changes, BUs get 130.

        Every BU the work would have accepted is answered "insufficient
        resources" (issue-wide policy for storage faults); forwarding is
        left exactly as it was.
        """
        self.counters[f"store_error:{reason}"] += 1
        self._release(work.changes)
        replies = []
        for packet, decision in work.decisions:
            if decision.verdict is Verdict.ACCEPTED and isinstance(
                packet.message, mh.BindingUpdate
            ):
                self.counters["ba_status:130"] += 1
                refusal = self.home_agent.rejection_packet(
                    packet, mh.BAStatus.INSUFFICIENT_RESOURCES
                )
                frame = self._ethernet_for(refusal)
                if frame is not None:
                    replies.append(frame)
        return replies

    # ------------------------------------------------------------ mobility

    def _mobility(self, in_port: int, frame: bytes, now: float, monotonic: float | None) -> Work:
        try:
            packet = mh.parse_ethernet_frame(frame)
        except mh.MobilityParseError as error:
            return self._mobility_rejected(frame, error, now)
        if self._uncommitted and (
            packet.pseudo_source in self._uncommitted or packet.source in self._uncommitted
        ):
            # Judged against the store's truth, never against a change that
            # may still fail to persist (sequence numbers, replays).
            self.counters["deferred_until_commit"] += 1
            return Work(retry_after_commit=True)
        work = self._snoop(in_port, frame[6:12], packet.source)
        decision = self.home_agent.handle(packet, now, monotonic)
        self._count(decision)
        work.decisions.append((packet, decision))
        reply = None
        if decision.reply is not None:
            reply = self._ethernet_for(decision.reply.packet)
            if reply is None:
                # An MN at home whose MAC is unknown: resolve it; its BU
                # retransmission then finds the route.
                self.counters["reply_unroutable"] += 1
                work.extend(self._resolve(decision.reply.destination, now))
        if decision.change is None:
            if reply is not None and self._may_send_refusal(decision, now):
                work.packet_outs.append(reply)
            return work
        work.changes.append(decision.change)
        self._hold(work.changes)
        work.flow_steps += self._flows_for(decision.change, now)
        if reply is not None:
            work.after_flows.append(reply)
        return work

    def _may_send_refusal(self, decision: Decision, now: float) -> bool:
        """A refusing BA shares the error replies' budget (10/s per destination,
        100/s in all): forged BUs from spoofed sources cannot turn the DAR into
        a reflector.  Acceptances and Care-of Tests are not limited here."""
        if decision.status is None or decision.status < mh.BAStatus.UNSPECIFIED:
            return True
        assert decision.reply is not None
        if self._error_limiter.allow(decision.reply.destination, now):
            return True
        self.counters["error_reply_suppressed"] += 1
        return False

    def _count(self, decision: Decision) -> None:
        if decision.verdict is Verdict.DROPPED:
            self.counters[f"drop:{decision.reason}"] += 1
            return
        if decision.reason == CARE_OF_TEST_REASON:
            self.counters["care_of_test_sent"] += 1
            return
        for key in _result_counters(decision.verdict, decision.status):
            self.counters[key] += 1
        if decision.rsa_operations:
            self.counters["rsa_operations"] += decision.rsa_operations

    def _mobility_rejected(self, frame: bytes, error: mh.MobilityParseError, now: float) -> Work:
        """RFC 6275 §9.2 reactions to a packet the codec refused."""
        self.counters[f"drop:{error.reason.value}"] += 1
        reaction = error.reason.reaction
        if reaction is mh.Reaction.SILENT_DROP:
            return Work()
        packet = frame[14:]
        source = packet[8:24]
        if not _is_unicast(source) or not self._error_limiter.allow(source, now):
            self.counters["error_reply_suppressed"] += 1
            return Work()
        if reaction is mh.Reaction.PARAMETER_PROBLEM:
            assert error.pointer is not None
            ipv6 = icmpv6.parameter_problem_packet(
                source=self.anchor, invoking_packet=packet, pointer=error.pointer
            )
            self.counters["icmpv6_parameter_problem"] += 1
        else:
            # RFC 6275 §9.3.3: the Home Address field carries the HoA of the
            # packet's Home Address option, or the unspecified address.
            home_address = error.home_address if error.home_address is not None else bytes(16)
            ipv6 = mh.build_packet(
                mh.BindingError(mh.BEStatus.UNRECOGNIZED_MH_TYPE, home_address),
                source=self.anchor,
                destination=source,
            )
            self.counters["binding_error_2"] += 1
        reply = self._ethernet_for(ipv6)
        return Work(packet_outs=[reply] if reply is not None else [])

    def _flows_for(self, change: BindingChange, now: float) -> list[FlowStep]:
        """The rules a change needs; none while the switch is away (reconnection reconciles)."""
        if self.pipeline is None:
            return []
        if change.kind is ChangeKind.DELETE:
            assert change.previous is not None
            return list(
                dar_flows.delete_binding_packed(self.pipeline, change.hoa, change.previous.coa)
            )
        binding = change.binding
        assert binding is not None
        expires_in = self._expires_in(binding, now)
        previous = change.previous
        if previous is not None and previous.coa != binding.coa:
            return dar_flows.replace_binding_packed(
                self.pipeline, binding.hoa, previous.coa, binding.coa, self.generation, expires_in
            )
        return dar_flows.install_binding_packed(
            self.pipeline, binding.hoa, binding.coa, self.generation, expires_in
        )

    @staticmethod
    def _expires_in(binding: Binding, now: float) -> float:
        # Defence in depth: the switch drops the rules a little after the
        # controller should have; the controller removes them at expiry.
        return max(binding.expires_at - now, 0.0) + BINDING_FLOW_MARGIN_S

    # ------------------------------------------------------------ routing of replies

    def _is_access_host(self, address: bytes) -> bool:
        """An address a mobile node may hold on one of this DAR's access links.

        Not the DAR's own addresses, nor a prefix's Subnet-Router anycast
        address (prefix::, RFC 4291 §2.6.1), which belongs to the router.
        """
        return (
            address[:8] in self._access_prefixes64
            and address not in self.own_addresses
            and address[8:] != _ZERO_INTERFACE_ID
        )

    def _ethernet_for(self, ipv6_packet: bytes) -> PacketOut | None:
        """Frame a packet the controller originates and pick its port.

        Destinations on an access link go straight to the neighbour's MAC;
        everything else goes to the core next hop.  An unresolved access
        destination yields None (the sender retransmits; the NS resolves it).
        """
        assert self.pipeline is not None
        destination = ipv6_packet[24:40]
        if self._is_access_host(destination) or _is_link_local(destination):
            neighbor = self.neighbors.get(destination)
            if neighbor is None:
                return None
            return PacketOut(
                neighbor.port, mh.build_ethernet_frame(self.router_mac, neighbor.mac, ipv6_packet)
            )
        return PacketOut(
            self.pipeline.core_port,
            mh.build_ethernet_frame(self.router_mac, self._core_next_hop_mac, ipv6_packet),
        )

    # ------------------------------------------------------------ neighbour discovery

    def _icmpv6(self, in_port: int, frame: bytes, now: float) -> Work:
        assert self.pipeline is not None
        try:
            message = icmpv6.parse_nd_frame(frame)
        except icmpv6.NdParseError as error:
            self.counters[f"drop:nd_{error.reason.value}"] += 1
            return Work()
        from_access = in_port in self.pipeline.access_ports
        if not from_access and in_port != self.pipeline.core_port:
            self.counters["drop:nd_unexpected_port"] += 1
            return Work()
        if not from_access:
            # The core router resolves the DAR's addresses; nothing else
            # from the core is answered or learnt.
            if (
                message.icmp_type == icmpv6.NEIGHBOR_SOLICITATION
                and message.target in self.own_addresses
            ):
                self.counters["neighbor_solicitation"] += 1
                return Work(packet_outs=[PacketOut(in_port, self._neighbor_advertisement(message))])
            self.counters["drop:nd_from_core"] += 1
            return Work()
        work = self._learn(message, in_port)
        if message.icmp_type == icmpv6.ROUTER_SOLICITATION:
            self.counters["router_solicitation"] += 1
            sender = message.sender_mac
            if message.source != icmpv6.UNSPECIFIED and sender is not None:
                ra = self._router_advertisement(message.source, sender)
            else:
                ra = self._router_advertisement(icmpv6.ALL_NODES, None)
            work.packet_outs.append(PacketOut(in_port, ra))
        elif (
            message.icmp_type == icmpv6.NEIGHBOR_SOLICITATION
            and message.target in self.own_addresses
        ):
            self.counters["neighbor_solicitation"] += 1
            work.packet_outs.append(PacketOut(in_port, self._neighbor_advertisement(message)))
        return work

    def _snoop(self, in_port: int, eth_source: bytes, source: bytes) -> Work:
        """Learn an MN's MAC from a packet it sent on an access link (e.g. a BU from home)."""
        assert self.pipeline is not None
        if in_port not in self.pipeline.access_ports or not self._is_access_host(source):
            return Work()
        if eth_source[0] & 1:
            return Work()  # a multicast source MAC is never a neighbour's
        return self._remember(source, eth_source, in_port)

    def _learn(self, message: icmpv6.NdMessage, port: int) -> Work:
        """Remember where an MN's address lives, and route to it directly."""
        mac = message.sender_mac
        address = (
            message.target if message.icmp_type == icmpv6.NEIGHBOR_ADVERTISEMENT else message.source
        )
        if mac is None or address is None or address == icmpv6.UNSPECIFIED:
            return Work()
        if not (self._is_access_host(address) or _is_link_local(address)):
            return Work()
        return self._remember(address, mac, port)

    def _remember(self, address: bytes, mac: bytes, port: int) -> Work:
        known = self.neighbors.get(address)
        if known is not None and known.mac == mac and known.port == port:
            return Work()
        neighbor = Neighbor(mac, port)
        self.neighbors[address] = neighbor
        self.counters["neighbor_learned"] += 1
        if _is_link_local(address):
            return Work()  # link-local neighbours need no route
        return Work(flow_steps=list(self._host_flows(address, neighbor)))

    def _host_flows(self, address: bytes, neighbor: Neighbor) -> list[FlowStep]:
        assert self.pipeline is not None
        mac_text = ":".join(f"{b:02x}" for b in neighbor.mac)
        return list(
            dar_flows.install_host(
                self.pipeline, _text(address), mac_text, neighbor.port, self.generation
            )
        )

    def _resolve(self, target: bytes, now: float) -> Work:
        """A packet for an access host with no route: ask who has it (RFC 4861 §7.2.2)."""
        assert self.pipeline is not None
        self.counters["unresolved_host_packet"] += 1
        if not self._solicit_limiter.allow(target, now):
            return Work()
        solicitation = icmpv6.build_neighbor_solicitation(
            router_mac=self.router_mac, source=self.anchor, target=target
        )
        self.counters["neighbor_solicitation_sent"] += 1
        return Work(
            packet_outs=[PacketOut(port, solicitation) for port in self.pipeline.access_ports]
        )

    def _router_advertisement(self, destination: bytes, destination_mac: bytes | None) -> bytes:
        """P2: H flag, one PIO per access prefix, A_d in full in the R-flagged one."""
        prefixes = [
            icmpv6.AdvertisedPrefix(
                prefix=prefix.network_address.packed,
                router_address=self.anchor if index == 0 else None,
            )
            for index, prefix in enumerate(self.config.access_prefixes)
        ]
        self.counters["router_advertisement"] += 1
        return icmpv6.build_router_advertisement(
            router_mac=self.router_mac,
            router_link_local=self.link_local,
            destination=destination,
            destination_mac=destination_mac or icmpv6.multicast_mac(destination),
            prefixes=prefixes,
        )

    def _neighbor_advertisement(self, solicitation: icmpv6.NdMessage) -> bytes:
        assert solicitation.target is not None
        if solicitation.source == icmpv6.UNSPECIFIED:
            # Someone probes one of our addresses (DAD): defend it to all nodes.
            destination, destination_mac, solicited = icmpv6.ALL_NODES, None, False
        else:
            destination, destination_mac, solicited = (
                solicitation.source,
                solicitation.sender_mac,
                True,
            )
        return icmpv6.build_neighbor_advertisement(
            router_mac=self.router_mac,
            target=solicitation.target,
            destination=destination,
            destination_mac=destination_mac or icmpv6.multicast_mac(destination),
            solicited=solicited,
        )

    # ------------------------------------------------------------ views

    def bindings(self) -> list[Binding]:
        return list(self.home_agent.cache)


def _is_link_local(address: bytes) -> bool:
    """fe80::/10 (RFC 4291 §2.5.6)."""
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80


def _is_unicast(address: bytes) -> bool:
    return address[0] != 0xFF and address != bytes(16)
