"""A DAR on a simulated switch with a real SQLite store, run in the shim's order.

:class:`StoreRig` does what ``fama_ryu.app`` does with a :class:`~fama_ryu.dar.Work`
(send packet-outs, commit the changes to the store, then update the cache
and the switch, then release the Binding Acks; on a store failure send what
:meth:`Dar.store_failed` returns instead), without Ryu.  :meth:`restart`
builds a new DAR from what the store holds, as the controller does at start.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from pathlib import Path

from fama_ryu import mh
from fama_ryu.binding_cache import BindingCache
from fama_ryu.config import DomainConfig, parse_domain
from fama_ryu.dar import Dar, PacketOut, Work
from fama_ryu.store import SqliteBindingStore, StoreError
from openflow_pipelines.fake_table import FakeSwitch, PacketFate

ACCESS, CORE, GRE = 1, 10, 20
ROUTER_MAC = "02:00:00:00:0a:01"
CORE_MAC = "02:00:00:00:ff:ff"
CORRESPONDENT = "2001:db8:99::5"
T0 = 1_000_000.0
TOMBSTONE_TTL_S = 86400.0


def domain(**overrides: object) -> DomainConfig:
    """One DAR anchoring 2001:db8:a::/64 (the mobile nodes' home prefix of mn_factory)."""
    dar: dict[str, object] = {
        "name": "dara",
        "dpid": 0xA,
        "access_ports": [ACCESS],
        "core_port": CORE,
        "gre_port": GRE,
        "router_mac": ROUTER_MAC,
        "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
        "anchor_address": "2001:db8:a::1",
        "link_local": "fe80::a:1",
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
    }
    dar.update(overrides)
    return parse_domain({"domain": {"tombstone_ttl_s": TOMBSTONE_TTL_S}, "dars": [dar]}, "test")


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def from_core(ipv6_packet: bytes) -> bytes:
    return bytes.fromhex(ROUTER_MAC.replace(":", "") + CORE_MAC.replace(":", "")) + (
        b"\x86\xdd" + ipv6_packet
    )


def reply_of(out: PacketOut) -> mh.MobilityPacket:
    return mh.parse_ethernet_frame(out.frame)


@dataclass
class Sent:
    """What the shim sent for one event."""

    frames: list[PacketOut] = field(default_factory=list)
    flow_steps: int = 0
    store_error: str | None = None

    def bas(self) -> list[mh.BindingAck]:
        messages = [reply_of(out).message for out in self.frames]
        return [m for m in messages if isinstance(m, mh.BindingAck)]

    def status(self) -> int | None:
        """The status of the one BA sent, None if no BA was sent."""
        bas = self.bas()
        assert len(bas) <= 1, bas
        return int(bas[0].status) if bas else None


class StoreRig:
    """A connected DAR, its simulated switch and a real binding store."""

    def __init__(self, store_path: Path, *, now: float = T0, **dar_overrides: object) -> None:
        self.store_path = store_path
        self.dar_overrides = dar_overrides
        self.now = now
        self.switch = FakeSwitch()
        self.store = SqliteBindingStore(store_path, tombstone_ttl_s=TOMBSTONE_TTL_S)
        self.dar = self._start()

    def _start(self) -> Dar:
        config = domain(**self.dar_overrides)
        bindings, tombstones = self.store.load(self.now).get("dara", ([], []))
        cache = BindingCache(TOMBSTONE_TTL_S)
        cache.restore(bindings, tombstones)
        dar = Dar(config.dars[0], config, random.Random(7).randbytes, cache=cache)
        work = dar.connect({}, self.store.next_generation(), self.now)
        self.switch.apply_all(work.flow_steps)
        return dar

    def restart(self, now: float | None = None) -> None:
        """Stop the controller (not the switch) and start it again from the store."""
        if now is not None:
            self.now = now
        self.store.close()
        self.store = SqliteBindingStore(self.store_path, tombstone_ttl_s=TOMBSTONE_TTL_S)
        self.dar = self._start()

    def close(self) -> None:
        self.store.close()

    def execute(self, work: Work) -> Sent:
        sent = Sent(frames=list(work.packet_outs))
        if work.changes:
            try:
                self.store.commit([(self.dar.name, change) for change in work.changes])
            except StoreError as error:
                sent.store_error = error.reason
                sent.frames += self.dar.store_failed(work, error.reason)
                return sent
            self.dar.committed(work.changes)
        self.switch.apply_all(work.flow_steps)
        sent.flow_steps = len(work.flow_steps)
        sent.frames += work.after_flows
        return sent

    def bu(self, ipv6_packet: bytes, now: float | None = None) -> Sent:
        """A Mobility Header packet arriving from the core, handled end to end."""
        return self.execute(
            self.dar.packet_in(CORE, from_core(ipv6_packet), self.now if now is None else now)
        )

    def tick(self, now: float, monotonic: float | None = None) -> Sent:
        self.now = now
        return self.execute(self.dar.tick(now, monotonic))

    def downlink(self, hoa: bytes) -> PacketFate:
        return self.switch.process(
            {
                "in_port": CORE,
                "eth_type": 0x86DD,
                "eth_src": CORE_MAC,
                "eth_dst": ROUTER_MAC,
                "ipv6_src": CORRESPONDENT,
                "ipv6_dst": text(hoa),
                "ip_proto": 17,
                "hop_limit": 64,
            }
        )

    def tunnelled_to(self, hoa: bytes) -> str | None:
        fate = self.downlink(hoa)
        if fate.punted or not fate.emissions:
            return None
        return str(fate.single().packet.get("tun_ipv6_dst"))
