"""The DAR the fuzz targets and the seed corpus share, and the checksum fixer.

A fuzzed Mobility Header almost never carries a right checksum, which the
DAR checks first (RFC 6275 §9.2): without :func:`reseal` the fuzzer would
never get past it to the option parser and the home-agent checks.
"""

from __future__ import annotations

import ipaddress
import random

from fama_ryu import mh
from fama_ryu.binding_cache import Binding
from fama_ryu.config import parse_domain
from fama_ryu.dar import Dar
from fama_ryu.home_agent import public_key_hash

ACCESS_1, ACCESS_2, CORE, GRE, UNKNOWN_PORT = 1, 2, 10, 20, 99
# The low three bits of a mobility input's first byte pick the in_port.
PORTS = (ACCESS_1, ACCESS_2, CORE, GRE, UNKNOWN_PORT, CORE, CORE, ACCESS_1)
RESEAL = 0x08  # bit of the first byte: recompute the MH checksum before sending
ROUTER_MAC = "02:00:00:00:0a:01"
CORE_MAC = "02:00:00:00:ff:ff"
ANCHOR = "2001:db8:a::1"
T0 = 1_000_000.0
# A binding the mobility target holds from the start, so that PHKT-authenticated
# seeds (refresh, move, deregistration) reach the checks after the authenticator.
BOUND_HOA = "2001:db8:a::b0"
BOUND_COA = "2001:db8:c::b0"
BOUND_PHKT = bytes(range(0x50, 0x58))
BOUND_SEQUENCE = 10

DOMAIN = {
    "dars": [
        {
            "name": "dara",
            "dpid": 0xA,
            "access_ports": [ACCESS_1, ACCESS_2],
            "core_port": CORE,
            "gre_port": GRE,
            "router_mac": ROUTER_MAC,
            "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
            "anchor_address": ANCHOR,
            "link_local": "fe80::a:1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
            "binding_limit": 50,
        },
        {
            "name": "darb",
            "dpid": 0xB,
            "access_ports": [ACCESS_1],
            "core_port": CORE,
            "gre_port": GRE,
            "router_mac": "02:00:00:00:0b:01",
            "access_prefixes": ["2001:db8:b::/64"],
            "anchor_address": "2001:db8:b::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
            "return_routability": True,
        },
    ]
}


def packed(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def make_dars() -> dict[int, Dar]:
    """The domain's DARs by dpid; "dara" is connected and holds the BOUND_* binding."""
    domain = parse_domain(DOMAIN, "fuzz")
    dars = {config.dpid: Dar(config, domain, random.Random(1).randbytes) for config in domain.dars}
    dara = dars[domain.dars[0].dpid]
    dara.connect({}, 1, T0)
    binding = Binding(
        hoa=packed(BOUND_HOA),
        coa=packed(BOUND_COA),
        sequence=BOUND_SEQUENCE,
        lifetime_s=3600,
        registered_at=T0,
        expires_at=T0 + 1e9,
        key_hash=public_key_hash(b"fuzz"),
        phkt=BOUND_PHKT,
    )
    dara.committed([dara.home_agent.cache.registration(binding)])
    return dars


def reseal(frame: bytes) -> bytes:
    """``frame`` with its Mobility Header checksum recomputed (HAO and RH2 honoured).

    Frames whose extension header chain cannot be walked come back unchanged.
    """
    data = bytearray(frame)
    base = 14
    if len(data) < base + 40:
        return frame
    source, destination = bytes(data[base + 8 : base + 24]), bytes(data[base + 24 : base + 40])
    next_header, offset = data[base + 6], base + 40
    for _ in range(mh.MAX_EXTENSION_HEADERS + 1):
        if next_header not in (mh.IPPROTO_HOPOPTS, mh.IPPROTO_ROUTING, mh.IPPROTO_DSTOPTS):
            break
        if offset + 8 > len(data):
            return frame
        length = (data[offset + 1] + 1) * 8
        if next_header == mh.IPPROTO_ROUTING and offset + 24 <= len(data):
            destination = bytes(data[offset + 8 : offset + 24])
        elif next_header != mh.IPPROTO_ROUTING:
            position = offset + 2
            while position + 2 <= min(offset + length, len(data)):
                if data[position] == 0:
                    position += 1
                    continue
                if data[position] == mh.HOME_ADDRESS_OPTION_TYPE and position + 18 <= len(data):
                    source = bytes(data[position + 2 : position + 18])
                position += 2 + data[position + 1]
        next_header, offset = data[offset], offset + length
    if next_header != mh.IPPROTO_MH or offset + 6 > len(data):
        return frame
    mh_end = min(offset + (data[offset + 1] + 1) * 8, len(data))
    data[offset + 4 : offset + 6] = b"\x00\x00"
    checksum = mh.mobility_checksum(source, destination, bytes(data[offset:mh_end]))
    data[offset + 4 : offset + 6] = checksum.to_bytes(2, "big")
    return bytes(data)
