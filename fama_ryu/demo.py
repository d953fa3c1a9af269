"""In-process FAMA exchange between a mobile node and its home DARs.

No network and no switch: the mobile node's Binding Update List and the
DARs' home agents talk through bytes, exactly the frames they would put
on the wire.  The scenario follows draft-bernardos-dmm-cmip-06 §3 and
Figure 3:

1. the MN attaches to DAR1 and configures a CGA HoA1 there (P3);
2. it moves to DAR2 and keeps HoA1: first BU to DAR1 with CGA Parameters
   and Signature (P6), BA with the PHKT (P12);
3. it moves to DAR3 and keeps HoA1 and HoA2: a PHKT-authenticated BU to
   DAR1 (P9) and a first, CGA-signed BU to DAR2;
4. it returns to DAR1: HoA1 is deregistered (CoA == HoA, P11) and HoA2
   at DAR2 now points to HoA1.

Every message is printed decoded and written as an Ethernet/IPv6 frame to
a pcap file, so tshark can check the bytes independently.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from fama_ryu import keyfile, mh, mh_describe, pcap
from fama_ryu.binding_cache import BindingChange, ChangeKind
from fama_ryu.home_agent import HomeAgent, HomeAgentConfig
from fama_ryu.mobile_node import (
    BindingUpdateList,
    CgaAddress,
    MobileNodeIdentity,
    configure_address,
)

MN_MAC = bytes.fromhex("020000000001")
MN_KEY_BITS = 1024
MN_SEC = 1
LIFETIME_S = 600


@dataclass
class Dar:
    name: str
    prefix: ipaddress.IPv6Network
    mac: bytes
    agent: HomeAgent = field(init=False)

    @property
    def anchor(self) -> bytes:
        """A_d = Pref_d::1 (P1)."""
        return (self.prefix.network_address + 1).packed

    def start(self) -> None:
        config = HomeAgentConfig(
            name=self.name,
            anchor_address=self.anchor,
            home_prefixes=(self.prefix.network_address.packed[:8],),
            max_lifetime_s=3600,
        )
        self.agent = HomeAgent(config, os.urandom)


@dataclass
class Exchange:
    """Carries BUs to home agents and BAs back, recording every frame."""

    mobile_node: BindingUpdateList
    out: TextIO
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    clock: float = field(default_factory=time.time)

    def record(self, frame: bytes, sender: str, receiver: str) -> None:
        self.frames.append((self.clock, frame))
        described = mh_describe.decode_bytes(frame)
        self.out.write(f"  {sender} -> {receiver}: {_summary(described)}\n")
        self.out.write(_indent(json.dumps(described["mobility_header"], indent=2)) + "\n")

    def send(self, bu_packet: bytes, serving: Dar, home: Dar) -> None:
        """One BU/BA round trip: MN (attached to ``serving``) to ``home``."""
        self.record(mh.build_ethernet_frame(MN_MAC, serving.mac, bu_packet), "MN", home.name)
        decision = home.agent.handle(mh.parse_ipv6_packet(bu_packet), self.clock)
        if decision.change is not None:
            home.agent.apply(decision.change)  # P12: in place before the BA leaves
        self.out.write(
            f"  {home.name} decides: {decision.verdict.value} ({decision.reason}), "
            f"{decision.rsa_operations} RSA operation(s){_change_text(decision.change)}\n"
        )
        self.clock += 0.005
        if decision.reply is None:
            return
        self.record(
            mh.build_ethernet_frame(serving.mac, MN_MAC, decision.reply.packet), home.name, "MN"
        )
        outcome = self.mobile_node.handle_binding_ack(
            mh.parse_ipv6_packet(decision.reply.packet), self.clock
        )
        self.out.write(f"  MN: BA {outcome.result.value}\n")
        self.clock += 0.005


def _summary(described: dict[str, object]) -> str:
    header = described["mobility_header"]
    assert isinstance(header, dict)
    parts = [str(header["type"])]
    for key in ("sequence", "flags", "status_name", "lifetime_s"):
        if key in header:
            parts.append(f"{key}={header[key]}")
    parts.append(f"{described['source']} -> {described['destination']}")
    if "home_address_option" in described:
        parts.append(f"HAO {described['home_address_option']}")
    if "type2_routing_header" in described:
        parts.append(f"RH2 {described['type2_routing_header']}")
    return " ".join(parts)


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def _change_text(change: BindingChange | None) -> str:
    if change is None:
        return ""
    if change.kind is ChangeKind.DELETE:
        return f"; binding of {mh_describe.address_text(change.hoa)} removed"
    assert change.binding is not None
    return (
        f"; binding {mh_describe.address_text(change.hoa)} -> "
        f"{mh_describe.address_text(change.binding.coa)} ({change.kind.value}, "
        f"{change.binding.lifetime_s} s)"
    )


def _print_bindings(dars: list[Dar], out: TextIO) -> None:
    for dar in dars:
        rows = [
            f"{mh_describe.address_text(b.hoa)} -> {mh_describe.address_text(b.coa)}"
            for b in dar.agent.cache
        ]
        out.write(f"  {dar.name} bindings: {', '.join(rows) if rows else 'none'}\n")


def run(*, pcap_path: Path, keys_dir: Path, out: TextIO) -> int:
    """Run the scenario; return a process exit code (0: every step as expected)."""
    dars = [
        Dar(
            f"DAR{n}", ipaddress.IPv6Network(f"2001:db8:{n}::/64"), bytes.fromhex(f"02000000d00{n}")
        )
        for n in (1, 2, 3)
    ]
    for dar in dars:
        dar.start()
    dar1, dar2, dar3 = dars
    identity = MobileNodeIdentity.generate(MN_KEY_BITS)
    keyfile.write_private_key(keys_dir / "mn-key.pem", identity.private_key)
    exchange = Exchange(BindingUpdateList(identity, os.urandom), out)
    mn = exchange.mobile_node

    def attach(dar: Dar) -> bytes:
        configured = configure_address(
            identity, dar.prefix.network_address.packed[:8], MN_SEC, os.urandom
        )
        addresses[dar.name] = configured
        out.write(
            f"MN attaches to {dar.name}: CGA {mh_describe.address_text(configured.address)}"
            f" (Sec {MN_SEC}, {len(configured.params.encode())}-byte CGA Parameters)\n"
        )
        return configured.address

    addresses: dict[str, CgaAddress] = {}
    out.write(f"== 1. attach to DAR1 (anchor {mh_describe.address_text(dar1.anchor)})\n")
    hoa1 = attach(dar1)

    out.write("== 2. move to DAR2, keep HoA1: first BU is CGA-signed, BA brings the PHKT\n")
    coa = attach(dar2)
    exchange.send(
        mn.register(hoa1, addresses["DAR1"].params, dar1.anchor, coa, exchange.clock, LIFETIME_S),
        dar2,
        dar1,
    )
    _print_bindings(dars, out)

    out.write("== 3. move to DAR3, keep HoA1 (PHKT BU to DAR1) and HoA2 (CGA BU to DAR2)\n")
    hoa2 = coa
    coa = attach(dar3)
    exchange.send(
        mn.register(hoa1, addresses["DAR1"].params, dar1.anchor, coa, exchange.clock, LIFETIME_S),
        dar3,
        dar1,
    )
    exchange.send(
        mn.register(hoa2, addresses["DAR2"].params, dar2.anchor, coa, exchange.clock, LIFETIME_S),
        dar3,
        dar2,
    )
    _print_bindings(dars, out)

    out.write("== 4. return to DAR1: HoA1 is home again (deregistration), HoA2 follows to HoA1\n")
    dereg = mn.deregister(hoa1, dar1.anchor, hoa1, exchange.clock)
    assert dereg is not None
    exchange.send(dereg, dar1, dar1)
    exchange.send(
        mn.register(hoa2, addresses["DAR2"].params, dar2.anchor, hoa1, exchange.clock, LIFETIME_S),
        dar1,
        dar2,
    )
    _print_bindings(dars, out)

    pcap_path.parent.mkdir(parents=True, exist_ok=True)
    with open(pcap_path, "wb") as stream:
        count = pcap.write_pcap(stream, exchange.frames)
    out.write(f"wrote {count} frames to {pcap_path}, MN key to {keys_dir / 'mn-key.pem'}\n")
    expected = (
        dar1.agent.cache.get(hoa1) is None
        and (binding := dar2.agent.cache.get(hoa2)) is not None
        and binding.coa == hoa1
        and all(entry.state.value == "registered" for entry in mn.entries())
    )
    if not expected:
        out.write("demo: the exchange did not end in the expected state\n")
        return 1
    return 0
