#!/usr/bin/python3
"""Mininet lab of a FAMA domain: Distributed Anchor Routers on Open vSwitch.

A DAR is an Open vSwitch userspace-datapath bridge driven by the fama-ryu
controller (draft-bernardos-dmm-cmip-06).  This module builds the lab around
the DARs of a domain and moves mobile nodes between them:

* :class:`FamaTopo`: N DAR switches ``d1..dN`` (datapath ids 1..N, ports named
  as in ``etc/fama-domain.yaml``: ``dN-core`` ofport 1, ``dN-acc`` ofport 2,
  flow-based GRE port ``dN-gre`` ofport 10), one access link per DAR (a Linux
  bridge ``apN``, the "radio cell"), a core router ``core`` linked to every
  DAR's core port, correspondent nodes ``cn1..`` behind the core and mobile
  nodes ``mn1..`` that start on DAR1's access link.
* :func:`configure_dars`: after ``net.start()``, the parts a Topo cannot
  express: bridge MAC and GRE port (idempotent, :class:`DarSwitch` already
  creates them), the anchor address A_d on each bridge's LOCAL port, Open
  vSwitch's tunnel route and next hop per DAR, and the core's side of every
  DAR link.
* :func:`move`: a handover; re-plugs a mobile node's link from one DAR's
  access link into another's (like Mininet's ``examples/mobility.py``); the
  mobile node keeps its interface, its MAC and its addresses, and sees the
  carrier drop and return.

Runs under Debian's system python (``/usr/bin/python3``, where Mininet is
installed) and imports only the standard library and Mininet: never the
fama_ryu package.  Run it inside a network namespace of its own with a private
Open vSwitch instance (see ``mininet_topos/README.md``); never ``mn -c``.

Usage::

    python3 mininet_topos/fama.py --dars 3 --controller-port 6653   # CLI
    mn --custom mininet_topos/fama.py --topo fama,3 --test fama ...  # see README

Addressing (the conventions of ``etc/fama-domain.yaml``, DAR N):

====================  ============================================
DAR N bridge ``dN``   dpid N, router MAC ``02:00:00:00:d0:NN``
A_d (LOCAL port)      ``2001:db8:N::1/64`` (access prefix 2001:db8:N::/64)
core on ``core-dN``   MAC ``02:00:00:00:ff:ff``, ``2001:db8:ffff::ff/128``
                      (the domain's core next hop) and
                      ``2001:db8:N::fffe/128`` (tunnel next hop, see below)
CN k                  ``2001:db8:ff00:k::10/64``, default via ``...::1``
MN k                  MAC ``02:00:00:01:00:kk``; addresses from the
                      DAR's Router Advertisements (or the MN agent)
====================  ============================================

The tunnel next hop lies inside A_d's /64 because Open vSwitch 3.1 takes a
tunnel's outer source address from its route (the bridge address covering
the gateway), not from ``options:local_ip`` (``docs/lab-notes.md``).  All DARs
share one ovs-vswitchd and so one routing table; each GRE port therefore
marks its packets (``options:egress_pkt_mark=M``) and each DAR gets its own
``ovs/route`` entry for that mark, so DAR1's tunnel to a care-of address in
DAR2's prefix still leaves DAR1 with source A_d1.
"""

import argparse
import ipaddress
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import partial

import mininet.cli
from mininet.link import Intf, Link
from mininet.log import error, info, output, setLogLevel
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController, Switch
from mininet.topo import Topo

#: OpenFlow port numbers of every DAR (the controller resolves ports by name).
CORE_OFPORT = 1
ACCESS_OFPORT = 2
GRE_OFPORT = 10
#: Mininet node name of the core router.
CORE_NODE = "core"
#: The core router's MAC on every DAR link (``core_next_hop.mac`` of the domain).
DEFAULT_CORE_MAC = "02:00:00:00:ff:ff"
#: The domain's ``core_next_hop.address``.
DEFAULT_CORE_ADDRESS = "2001:db8:ffff::ff"
#: Largest DAR number the address conventions cover (router MAC byte, prefix group).
MAX_DARS = 254
MAX_NODES = 255
_LINUX_IFNAMSIZ = 15


# --------------------------------------------------------------------------- domain


@dataclass(frozen=True)
class DarSpec:
    """What the lab needs to know about one DAR of the domain."""

    name: str  # domain name, e.g. "dar1"
    dpid: int
    switch: str  # Mininet switch = OVS bridge = LOCAL tap name, e.g. "d1"
    access_port: str  # e.g. "d1-acc"
    core_port: str  # e.g. "d1-core"
    gre_port: str  # e.g. "d1-gre"
    router_mac: str  # bridge MAC (other_config:hwaddr)
    prefix: str  # first access prefix, e.g. "2001:db8:1::/64"
    anchor: str  # A_d, e.g. "2001:db8:1::1"
    link_local: str  # the DAR's link-local address (the core's next hop to the prefix)
    core_address: str  # domain's core_next_hop.address
    core_mac: str  # domain's core_next_hop.mac
    tunnel_next_hop: str  # core address inside the prefix (outer source selection)
    pkt_mark: int  # egress_pkt_mark of the GRE port, selects this DAR's OVS route

    @property
    def dpid_text(self):
        """The datapath id as OVS and Mininet write it (16 hex digits)."""
        return f"{self.dpid:016x}"

    @property
    def core_intf(self):
        """Name of the core router's interface on this DAR's core link."""
        return f"{CORE_NODE}-{self.switch}"


def eui64_link_local(mac):
    """The modified-EUI-64 link-local address (RFC 4291) of ``mac``."""
    octets = [int(part, 16) for part in mac.split(":")]
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    suffix = int.from_bytes(bytes(eui), "big")
    return str(ipaddress.IPv6Address((0xFE80 << 112) | suffix))


def _tunnel_next_hop(prefix):
    """``prefix::fffe``: the core's address inside a DAR's access prefix."""
    return str(ipaddress.IPv6Network(prefix)[0xFFFE])


def sample_dars(n_dars=3):
    """The DARs of ``etc/fama-domain.yaml``'s conventions, for ``n_dars`` DARs.

    DAR N: name ``darN``, dpid N, bridge ``dN`` with ports ``dN-acc``,
    ``dN-core``, ``dN-gre``, router MAC ``02:00:00:00:d0:NN``, prefix
    ``2001:db8:N::/64`` (N in hex, like the dpid), anchor ``2001:db8:N::1``,
    link-local = EUI-64 of the router MAC, core next hop
    ``2001:db8:ffff::ff`` at ``02:00:00:00:ff:ff``.
    """
    n_dars = int(n_dars)
    if not 1 <= n_dars <= MAX_DARS:
        raise ValueError(f"n_dars must be 1..{MAX_DARS}, not {n_dars}")
    dars = []
    for number in range(1, n_dars + 1):
        switch = f"d{number}"
        prefix = f"2001:db8:{number:x}::/64"
        router_mac = f"02:00:00:00:d0:{number:02x}"
        dars.append(
            DarSpec(
                name=f"dar{number}",
                dpid=number,
                switch=switch,
                access_port=switch + "-acc",
                core_port=switch + "-core",
                gre_port=switch + "-gre",
                router_mac=router_mac,
                prefix=prefix,
                anchor=f"2001:db8:{number:x}::1",
                link_local=eui64_link_local(router_mac),
                core_address=DEFAULT_CORE_ADDRESS,
                core_mac=DEFAULT_CORE_MAC,
                tunnel_next_hop=_tunnel_next_hop(prefix),
                pkt_mark=number,
            )
        )
    return dars


def _port_name(value, what, dar_name):
    if not isinstance(value, str) or not value or len(value) > _LINUX_IFNAMSIZ:
        raise ValueError(
            f"{dar_name}: {what} must be a port name of 1..{_LINUX_IFNAMSIZ} characters for "
            f"the Mininet lab (port numbers cannot name veths), not {value!r}"
        )
    return value


def _dpid(value, dar_name):
    if isinstance(value, bool):
        raise ValueError(f"{dar_name}: bad dpid {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):  # text is always hex, as in the domain file
        text = value.lower()
        text = text[2:] if text.startswith("0x") else text
        return int(text, 16)
    raise ValueError(f"{dar_name}: bad dpid {value!r}")


def dars_from_domain(domain):
    """DarSpecs from a parsed domain file (``yaml.safe_load`` / ``json.load`` result).

    Uses each DAR's ``name``, ``dpid``, first ``access_ports`` entry,
    ``core_port``, ``gre_port`` (port *names*), ``router_mac``, first
    ``access_prefixes`` entry, ``anchor_address``, ``link_local`` (default:
    EUI-64 of the router MAC) and ``core_next_hop`` (``mac`` defaults to
    02:00:00:00:ff:ff: the lab's core needs one).  The Mininet switch of a DAR
    is ``d<dpid>``.  Validation here is only what the lab needs; ``fama
    check-config`` is the real check.
    """
    entries = domain.get("dars") if hasattr(domain, "get") else None
    if not entries:
        raise ValueError("domain has no 'dars' list")
    dars = []
    for index, entry in enumerate(entries, start=1):
        name = str(entry.get("name", f"dar{index}"))
        dpid = _dpid(entry.get("dpid"), name)
        access_ports = entry.get("access_ports") or []
        prefixes = entry.get("access_prefixes") or []
        if not access_ports or not prefixes:
            raise ValueError(f"{name}: needs access_ports and access_prefixes")
        prefix = str(ipaddress.IPv6Network(str(prefixes[0])))
        if len(f"{CORE_NODE}-d{dpid}") > _LINUX_IFNAMSIZ:
            raise ValueError(
                f"{name}: dpid {dpid} too large for the lab's interface names "
                f"(bridge d{dpid}, core interface {CORE_NODE}-d{dpid}: at most "
                f"{_LINUX_IFNAMSIZ} characters)"
            )
        router_mac = str(entry["router_mac"]).lower()
        next_hop = entry.get("core_next_hop") or {}
        dars.append(
            DarSpec(
                name=name,
                dpid=dpid,
                switch=f"d{dpid}",
                access_port=_port_name(access_ports[0], "access port", name),
                core_port=_port_name(entry.get("core_port"), "core_port", name),
                gre_port=_port_name(entry.get("gre_port"), "gre_port", name),
                router_mac=router_mac,
                prefix=prefix,
                anchor=str(ipaddress.IPv6Address(str(entry["anchor_address"]))),
                link_local=str(entry.get("link_local") or eui64_link_local(router_mac)),
                core_address=str(next_hop.get("address") or DEFAULT_CORE_ADDRESS),
                core_mac=str(next_hop.get("mac") or DEFAULT_CORE_MAC).lower(),
                tunnel_next_hop=_tunnel_next_hop(prefix),
                pkt_mark=index,
            )
        )
    return dars


def load_domain(path):
    """DarSpecs from a domain file: JSON, or YAML when python3-yaml is installed."""
    with open(path) as stream:
        text = stream.read()
    if path.endswith(".json"):
        return dars_from_domain(json.loads(text))
    try:
        import yaml  # optional: Debian package python3-yaml
    except ImportError:
        raise RuntimeError(
            f"reading {path} needs python3-yaml for /usr/bin/python3 (or give a .json domain)"
        ) from None
    return dars_from_domain(yaml.safe_load(text))


# --------------------------------------------------------------------------- nodes


class LabIntf(Intf):
    """A veth end set up for the lab before it comes up.

    TX checksum offload goes off (the userspace datapath forwards partial
    checksums: TCP fails otherwise); on a switch-side end (``switch_side``)
    IPv6 is disabled, so the kernel of the namespace sends no DAD, Router
    Solicitation or MLD report through it behind the switch's back.
    """

    def config(self, switch_side=False, **params):
        if switch_side:
            self.cmd(f"sysctl -qw net.ipv6.conf.{self.name}.disable_ipv6=1")
        self.cmd(f"ethtool -K {self.name} tx off >/dev/null 2>&1")
        return Intf.config(self, **params)


class Ipv6Host(Host):
    """A host configured for IPv6 only: no DAD, optional addresses and routes.

    Parameters (Topo ``addHost`` options): ``ip6`` list of (interface, CIDR),
    ``routes6`` list of (prefix, gateway, interface), ``forwarding`` (a
    router).  Mininet's IPv4 is left unset (``ip=None``).
    """

    def startShell(self, mnopts=None):
        Host.startShell(self, mnopts)
        # Before any interface exists in the namespace: addresses usable at once.
        self.cmd("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0")

    def config(self, ip6=None, routes6=None, forwarding=False, **params):
        result = Host.config(self, **params)
        if forwarding:
            _check(self, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        for intf, cidr in ip6 or ():
            _check(self, ["ip", "-6", "addr", "replace", cidr, "dev", intf, "nodad"])
        for prefix, via, intf in routes6 or ():
            _check(self, ["ip", "-6", "route", "replace", prefix, "via", via, "dev", intf])
        return result


class DarSwitch(OVSSwitch):
    """An Open vSwitch bridge that is a DAR: netdev datapath, OF1.3, fail secure.

    The bridge MAC (``router_mac``) and the flow-based GRE port are created
    in the same ovsdb transaction as the bridge, so they exist when the
    switch first connects: the controller resolves the domain's port names
    once, at connection time.
    """

    def __init__(self, name, router_mac=None, gre_port=None, anchor=None, pkt_mark=None, **params):
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow13")
        params.setdefault("failMode", "secure")
        self.router_mac = router_mac
        self.gre_port = gre_port
        self.anchor = anchor
        self.pkt_mark = pkt_mark
        OVSSwitch.__init__(self, name, **params)

    def bridgeOpts(self):
        opts = OVSSwitch.bridgeOpts(self)
        if self.router_mac:
            opts += f" other_config:hwaddr={self.router_mac}"
        if self.gre_port and self.anchor:
            settings = " ".join(_gre_settings(self.anchor, self.pkt_mark))
            opts += (
                f" -- add-port {self} {self.gre_port} -- set interface {self.gre_port} {settings}"
            )
        return opts


def _gre_settings(anchor, pkt_mark):
    settings = [
        "type=gre",
        f"ofport_request={GRE_OFPORT}",
        "options:remote_ip=flow",
        f"options:local_ip={anchor}",
        "options:packet_type=legacy_l3",
    ]
    if pkt_mark:
        settings.append(f"options:egress_pkt_mark={pkt_mark}")
    return settings


class AccessPoint(Switch):
    """A DAR's access link: a Linux bridge in Mininet's root namespace.

    One per DAR; the DAR's access port and the mobile nodes attached to
    that DAR are its ports, so the access port exists (with a fixed ofport)
    whether or not a mobile node is there, and several mobile nodes can
    share it.  IPv6 is off on the bridge device and multicast snooping off
    (Neighbor Discovery reaches every port).
    """

    created = False

    def start(self, controllers):
        _check(
            self, ["ip", "link", "add", "name", self.name, "type", "bridge", "mcast_snooping", "0"]
        )
        self.created = True
        _check(self, ["sysctl", "-qw", f"net.ipv6.conf.{self.name}.disable_ipv6=1"])
        for intf in self.intfList():
            if intf.name != "lo":
                self.attach(intf)
        _check(self, ["ip", "link", "set", "dev", self.name, "up"])

    def attach(self, intf):
        _check(self, ["ip", "link", "set", "dev", intf.name, "master", self.name, "up"])

    def detach(self, intf):
        _check(self, ["ip", "link", "set", "dev", intf.name, "nomaster"])

    def stop(self, deleteIntfs=True):
        if self.created:  # never a bridge of that name that was there before
            self.cmd(f"ip link del dev {self.name} 2>/dev/null")
            self.created = False
        Switch.stop(self, deleteIntfs)

    def dpctl(self, *args):
        return f"{self.name} is a Linux bridge (access link), not an OpenFlow switch\n"

    def connected(self):
        return True


def _check(node, argv):
    """Run ``argv`` in ``node``'s namespace; return stdout, raise with stderr on failure."""
    out, err, code = node.pexec(argv)
    if code != 0:
        raise RuntimeError(
            f"{node.name}: {' '.join(argv)} failed (exit {code}): {(err or out).strip()}"
        )
    return out


# --------------------------------------------------------------------------- topology


class FamaTopo(Topo):
    """The FAMA lab: DARs, their access links, a core router, CNs and MNs."""

    def build(self, n_dars=3, n_mns=1, n_cns=1, dars=None):
        r"""N DARs, each with an access link; MNs start on DAR1's.

        ::

                 cn1 ... cnK              2001:db8:ff00:k::10/64
                   \      /
                  core-cnK                2001:db8:ff00:k::1/64
                 +--------+
                 |  core  |  Linux router (IPv6 forwarding); on core-dN:
                 +--------+  02:00:00:00:ff:ff, 2001:db8:ffff::ff/128,
                 /    |    \              2001:db8:N::fffe/128
           core-d1 core-d2 .. core-dN
              |       |         |
           d1-core d2-core .. dN-core     ofport 1
           +----+  +----+     +----+
           | d1 |  | d2 | ..  | dN |      DAR bridges: OVS netdev, OF1.3,
           +----+  +----+     +----+      fail secure, dpid N, hwaddr
           d1-acc  d2-acc  .. dN-acc      02:00:00:00:d0:NN, LOCAL tap dN =
              |       |         |         A_d 2001:db8:N::1/64, flow-based
           ap1-d1  ap2-d2  .. apN-dN      GRE port dN-gre (ofport 10)
           [ap1 ]  [ap2 ]  .. [apN ]      access links (Linux bridges)
              |
           ap1-mn1 .. ap1-mnM             move(net, "mn1", "d2") re-plugs
              |                           ap1-mn1 into ap2 as ap2-mn1
           mn1-eth0 .. mnM-eth0           MACs 02:00:00:01:00:MM

        ``dars``: list of :class:`DarSpec` (default ``sample_dars(n_dars)``).
        """
        dars = list(dars) if dars is not None else sample_dars(n_dars)
        n_mns, n_cns = int(n_mns), int(n_cns)
        if not dars:
            raise ValueError("a FAMA lab needs at least one DAR")
        if not 0 <= n_mns <= MAX_NODES or not 0 <= n_cns <= MAX_NODES:
            raise ValueError(f"n_mns and n_cns must be 0..{MAX_NODES}")
        self.dars = dars
        switch_side = {"switch_side": True}

        self.addHost(
            CORE_NODE,
            cls=Ipv6Host,
            ip=None,
            forwarding=True,
            ip6=[(f"core-cn{k}", f"2001:db8:ff00:{k:x}::1/64") for k in range(1, n_cns + 1)],
        )
        for index, dar in enumerate(dars, start=1):
            access_point = f"ap{index}"
            self.addSwitch(
                dar.switch,
                cls=DarSwitch,
                dpid=dar.dpid_text,
                router_mac=dar.router_mac,
                gre_port=dar.gre_port,
                anchor=dar.anchor,
                pkt_mark=dar.pkt_mark,
            )
            self.addSwitch(access_point, cls=AccessPoint, dpid=f"{0xA00000 + index:016x}")
            self.addLink(
                dar.switch,
                CORE_NODE,
                port1=CORE_OFPORT,
                intfName1=dar.core_port,
                intfName2=dar.core_intf,
                addr2=dar.core_mac,
                cls1=LabIntf,
                cls2=LabIntf,
                params1=switch_side,
            )
            self.addLink(
                dar.switch,
                access_point,
                port1=ACCESS_OFPORT,
                intfName1=dar.access_port,
                intfName2=f"{access_point}-{dar.switch}",
                cls1=LabIntf,
                cls2=LabIntf,
                params1=switch_side,
                params2=switch_side,
            )
        for k in range(1, n_cns + 1):
            cn = f"cn{k}"
            self.addHost(
                cn,
                cls=Ipv6Host,
                ip=None,
                ip6=[(cn + "-eth0", f"2001:db8:ff00:{k:x}::10/64")],
                routes6=[("default", f"2001:db8:ff00:{k:x}::1", cn + "-eth0")],
            )
            self.addLink(
                cn,
                CORE_NODE,
                intfName1=cn + "-eth0",
                intfName2="core-" + cn,
                addr1=f"02:00:00:02:00:{k:02x}",
                addr2=f"02:00:00:03:00:{k:02x}",
                cls1=LabIntf,
                cls2=LabIntf,
            )
        for k in range(1, n_mns + 1):
            mn = f"mn{k}"
            self.addHost(mn, cls=Ipv6Host, ip=None)
            self.addLink(
                mn,
                "ap1",
                intfName1=mn + "-eth0",
                intfName2="ap1-" + mn,
                addr1=f"02:00:00:01:00:{k:02x}",
                cls1=LabIntf,
                cls2=LabIntf,
                params2=switch_side,
            )


topos = {
    "fama": lambda n_dars=3, n_mns=1, n_cns=1: FamaTopo(
        n_dars=int(n_dars), n_mns=int(n_mns), n_cns=int(n_cns)
    )
}


# --------------------------------------------------------------------------- after start


def _resolve_dars(net, domain):
    if domain is None:
        dars = getattr(net.topo, "dars", None)
        if dars is None:
            raise ValueError("net was not built from a FamaTopo: pass domain=")
        return list(dars)
    if isinstance(domain, str):
        return load_domain(domain)
    if hasattr(domain, "get"):
        return dars_from_domain(domain)
    return list(domain)


def _retry(node, argv, timeout_s, interval_s=0.05):
    """Run ``argv`` in ``node`` until it succeeds (bounded); raise with its last error."""
    deadline = time.monotonic() + timeout_s
    while True:
        out, err, code = node.pexec(argv)
        if code == 0:
            return out
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{node.name}: {' '.join(argv)} still failing after {timeout_s:g} s: "
                f"{(err or out).strip()}"
            )
        time.sleep(interval_s)


def configure_dars(net, domain=None, static_neighbours=True, timeout_s=10.0):
    """Make every DAR switch of a started ``net`` a working DAR data plane.

    ``domain``: None (the FamaTopo's DARs), a list of :class:`DarSpec`, a
    parsed domain mapping, or a domain file path.  For each DAR:

    1. bridge ``other_config:hwaddr`` = router MAC and the flow-based GRE port
       (``remote_ip=flow``, ``local_ip`` = A_d, ``packet_type=legacy_l3``,
       ``egress_pkt_mark``), both idempotent;
    2. the LOCAL tap: ``accept_ra=0``, up, A_d/64 (no DAD); the namespace's
       kernel never forwards (forwarding stays 0);
    3. Open vSwitch's tunnel route ``::/0 via <tunnel next hop> pkt_mark=M``
       and the next hop's MAC (``tnl/neigh/set``), so the first tunnelled
       packet is not lost and the outer source is A_d;
    4. the core: its MAC, the core next hop and tunnel next hop addresses on
       ``core-dN``, the route to the access prefix via the DAR's link-local
       and (``static_neighbours``) that link-local's MAC, so the core does
       not depend on the controller answering its Neighbor Solicitations.

    Returns the DarSpecs it configured.  Raises RuntimeError/ValueError with
    the failing command or the missing port.
    """
    dars = _resolve_dars(net, domain)
    core = net.get(CORE_NODE) if CORE_NODE in net else None
    for dar in dars:
        if dar.switch not in net:
            raise ValueError(f"{dar.name}: no switch {dar.switch} in this network")
        switch = net.get(dar.switch)
        ports = _check(switch, ["ovs-vsctl", "list-ports", dar.switch]).split()
        for port in (dar.access_port, dar.core_port):
            if port not in ports:
                raise ValueError(
                    f"{dar.name}: bridge {dar.switch} has no port {port} (ports: {' '.join(ports)})"
                )
        _check(
            switch,
            [
                "ovs-vsctl",
                "set",
                "bridge",
                dar.switch,
                f"other_config:hwaddr={dar.router_mac}",
                "--",
                "--may-exist",
                "add-port",
                dar.switch,
                dar.gre_port,
                "--",
                "set",
                "interface",
                dar.gre_port,
            ]
            + _gre_settings(dar.anchor, dar.pkt_mark),
        )
        tap = dar.switch
        _check(
            switch,
            [
                "sysctl",
                "-qw",
                f"net.ipv6.conf.{tap}.disable_ipv6=0",
                f"net.ipv6.conf.{tap}.accept_ra=0",
                f"net.ipv6.conf.{tap}.accept_dad=0",
            ],
        )
        _check(switch, ["ip", "link", "set", "dev", tap, "up"])
        _check(switch, ["ip", "-6", "addr", "replace", f"{dar.anchor}/64", "dev", tap, "nodad"])
        # OVS accepts the route once it has seen A_d on the tap (netlink, async).
        route = [
            "ovs-appctl",
            "ovs/route/add",
            "::/0",
            tap,
            dar.tunnel_next_hop,
            f"pkt_mark={dar.pkt_mark}",
        ]
        _retry(switch, route, timeout_s)
        _check(switch, ["ovs-appctl", "tnl/neigh/set", tap, dar.tunnel_next_hop, dar.core_mac])
        if core is None:
            continue
        intf = dar.core_intf
        if intf not in core.nameToIntf:
            raise ValueError(f"{dar.name}: core has no interface {intf}")
        current_mac = _check(core, ["cat", f"/sys/class/net/{intf}/address"]).strip()
        if current_mac != dar.core_mac:
            _check(core, ["ip", "link", "set", "dev", intf, "address", dar.core_mac])
        for address in (dar.core_address, dar.tunnel_next_hop):
            _check(core, ["ip", "-6", "addr", "replace", address + "/128", "dev", intf, "nodad"])
        _check(
            core, ["ip", "-6", "route", "replace", dar.prefix, "via", dar.link_local, "dev", intf]
        )
        if static_neighbours:
            _check(
                core,
                [
                    "ip",
                    "-6",
                    "neigh",
                    "replace",
                    dar.link_local,
                    "lladdr",
                    dar.router_mac,
                    "dev",
                    intf,
                    "nud",
                    "permanent",
                ],
            )
    net.fama_dars = dars
    return dars


def unconfigure_dars(net):
    """Undo what outlives the Mininet network: the OVS tunnel routes of configure_dars.

    Bridges, taps, neighbour entries (flushed with their bridge) and the core
    go with ``net.stop()``; the ``ovs/route`` entries would stay in
    ovs-vswitchd.  Call before ``net.stop()``; a no-op if nothing was configured.
    """
    for dar in getattr(net, "fama_dars", None) or []:
        if dar.switch in net:  # "Not found" (already gone) is fine
            net.get(dar.switch).pexec(
                ["ovs-appctl", "ovs/route/del", "::/0", f"pkt_mark={dar.pkt_mark}"]
            )
    net.fama_dars = []


def stop_lab(net):
    """Stop the network completely: :func:`unconfigure_dars`, ``net.stop()``, controller shells.

    Mininet's RemoteController.stop() does nothing, so its shell (a bash in
    the lab's namespace) would live on until the Python process exits;
    it is terminated here.
    """
    try:
        unconfigure_dars(net)
    finally:
        net.stop()
        for controller in net.controllers:
            controller.terminate()


# --------------------------------------------------------------------------- handover


def _peer(intf):
    link = intf.link
    return link.intf2 if link.intf1 is intf else link.intf1


def access_point_of(net, dar_name):
    """The AccessPoint (access link) attached to DAR switch ``dar_name``."""
    dar = net.get(dar_name)
    for intf in dar.intfList():
        if intf.link is not None and isinstance(_peer(intf).node, AccessPoint):
            return _peer(intf).node
    raise ValueError(f"{dar_name} has no access link (is it a DAR switch of a FamaTopo?)")


def dar_of(access_point):
    """Name of the DAR switch whose access link ``access_point`` is."""
    for intf in access_point.intfList():
        if intf.link is not None and isinstance(_peer(intf).node, OVSSwitch):
            return _peer(intf).node.name
    return None


def attachment(net, mn_name):
    """(DAR switch name, access-link-side interface name) where ``mn_name`` is attached."""
    host = net.get(mn_name)
    for intf in host.intfList():
        if intf.link is not None and isinstance(_peer(intf).node, AccessPoint):
            side = _peer(intf)
            return dar_of(side.node), side.name
    raise ValueError(f"{mn_name} is not attached to an access link")


# Sends one Router Solicitation (with the source link-layer address option) from
# an interface: the Linux kernel sends none when only the carrier comes back.
_SEND_RS = """
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


def send_router_solicitation(host, intf_name=None):
    """Make ``host`` send one Router Solicitation to ff02::2 on ``intf_name`` (default: eth0)."""
    intf_name = intf_name or str(host.defaultIntf())
    _check(host, [sys.executable or "/usr/bin/python3", "-c", _SEND_RS, intf_name])


def move(net, mn_name, dar_name, solicit=False):
    """Handover: re-plug mobile node ``mn_name`` into DAR ``dar_name``'s access link.

    The access-link end of the MN's veth is taken off the old access link,
    renamed ``ap<N>-<mn>`` and put on the new one (Mininet's
    ``examples/mobility.py`` moves a switch-side interface the same way).
    The MN's own interface, MAC and addresses stay; it sees the carrier go
    down and up, but Linux sends no Router Solicitation for that: the MN
    learns the new DAR from its next unsolicited RA, from its own agent, or
    (``solicit=True``) from the RS this function then sends for it.
    Returns (old DAR name, new DAR name); moving to the current DAR does
    nothing.
    """
    for name in (mn_name, dar_name):
        if name not in net:
            raise ValueError(f"no node {name!r} in this network")
    host = net.get(mn_name)
    new_ap = access_point_of(net, dar_name)
    side = None
    for intf in host.intfList():
        if intf.link is not None and isinstance(_peer(intf).node, AccessPoint):
            side = _peer(intf)
            break
    if side is None:
        raise ValueError(f"{mn_name} is not attached to an access link")
    old_ap = side.node
    old_dar = dar_of(old_ap)
    if old_ap is new_ap:
        return old_dar, dar_name
    old_ap.detach(side)
    old_ap.delIntf(side)
    new_name = f"{new_ap.name}-{host.name}"
    _check(old_ap, ["ip", "link", "set", "dev", side.name, "down"])
    _check(old_ap, ["ip", "link", "set", "dev", side.name, "name", new_name])
    side.name = new_name
    side.node = new_ap
    new_ap.addIntf(side, port=new_ap.newPort())
    new_ap.attach(side)
    if solicit:
        send_router_solicitation(host, str(_peer(side)))
    return old_dar, dar_name


class FamaCLI(mininet.cli.CLI):
    """Mininet's CLI plus ``move MN DAR [rs]``."""

    prompt = "fama> "

    def do_move(self, line):
        """move MN DAR [rs]: hand MN over to DAR's access link (rs: send a Router
        Solicitation from MN afterwards), e.g. move mn1 d2 rs"""
        words = line.split()
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "rs"):
            output("usage: move MN DAR [rs]\n")
            return
        try:
            old, new = move(self.mn, words[0], words[1], solicit=len(words) == 3)
        except (ValueError, RuntimeError) as exc:
            error(f"move: {exc}\n")
            return
        output(f"{words[0]}: {old} -> {new}\n")


# --------------------------------------------------------------------------- mn --test


def _mn_fama_test(net, *_args):
    """``mn ... --test fama``: configure the DARs, then open the CLI."""
    configure_dars(net)
    try:
        FamaCLI(net)
    finally:
        unconfigure_dars(net)


tests = {"fama": _mn_fama_test}


# --------------------------------------------------------------------------- command line


def named_netns():
    """Name of the ``ip netns`` namespace this process runs in, or None.

    A positive check (the current namespace is one of /run/netns/*): the
    initial namespace cannot always be identified (/proc/1 may be unreadable).
    """
    try:
        own = os.stat("/proc/self/ns/net")
        names = sorted(os.listdir("/run/netns"))
    except OSError:
        return None
    for name in names:
        try:
            other = os.stat(os.path.join("/run/netns", name))
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (own.st_dev, own.st_ino):
            return name
    return None


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="fama.py",
        description="Build the FAMA Mininet lab, configure the DARs, then open the "
        "Mininet CLI or run commands. Run it inside a dedicated network namespace "
        "with a private Open vSwitch (see mininet_topos/README.md).",
    )
    parser.add_argument("--dars", type=int, default=3, help="number of DARs (default 3)")
    parser.add_argument("--mns", type=int, default=1, help="mobile nodes on DAR1 (default 1)")
    parser.add_argument("--cns", type=int, default=1, help="correspondent nodes (default 1)")
    parser.add_argument(
        "--domain",
        metavar="FILE",
        help="domain file (YAML needs python3-yaml, or JSON); "
        "replaces the built-in conventions and --dars",
    )
    parser.add_argument("--controller-ip", default="127.0.0.1")
    parser.add_argument(
        "--controller-port",
        type=int,
        default=6653,
        help="remote controller port (0: no controller)",
    )
    parser.add_argument(
        "--wait-connected",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for every DAR to connect before configuring",
    )
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="'NODE COMMAND'",
        help="run COMMAND on NODE and print its output instead of the CLI "
        "(repeatable; 'move MN DAR [rs]' performs a handover)",
    )
    parser.add_argument(
        "--no-configure", action="store_true", help="skip configure_dars() (bare topology)"
    )
    parser.add_argument(
        "--allow-any-netns",
        action="store_true",
        help="run even outside an `ip netns` namespace (e.g. the machine's "
        "initial one: Mininet and OVS then share it with everything else)",
    )
    parser.add_argument(
        "-v", "--verbosity", default="info", help="Mininet log level (default info)"
    )
    return parser.parse_args(argv)


def _run_line(net, line):
    words = line.split()
    if len(words) in (3, 4) and words[0] == "move":
        old, new = move(net, words[1], words[2], solicit=words[3:] == ["rs"])
        return f"{words[1]} moved {old} -> {new}\n"
    if len(words) < 2 or words[0] not in net:
        raise SystemExit(f"--run needs 'NODE COMMAND' or 'move MN DAR', got {line!r}")
    return net.get(words[0]).cmd(line.split(None, 1)[1])


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        raise SystemExit("fama.py: must run as root (Mininet, namespaces, Open vSwitch)")
    if named_netns() is None and not args.allow_any_netns:
        raise SystemExit(
            "fama.py: not inside an `ip netns` namespace; run it under `ip netns exec <ns>` "
            "with a private Open vSwitch (mininet_topos/README.md), or pass --allow-any-netns"
        )
    setLogLevel(args.verbosity)
    try:
        dars = load_domain(args.domain) if args.domain else sample_dars(args.dars)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise SystemExit(f"fama.py: {exc}") from None
    # Mininet.init() raises machine-wide limits (kernel.pty.max, fs.file-max): not needed
    # for a lab of this size, and not ours to change.  Root was checked above.
    Mininet.inited = True
    if args.controller_port:
        controller = partial(RemoteController, ip=args.controller_ip, port=args.controller_port)
    else:
        controller = None
    net = Mininet(
        topo=FamaTopo(n_mns=args.mns, n_cns=args.cns, dars=dars),
        switch=partial(OVSSwitch, datapath="user", protocols="OpenFlow13"),
        controller=controller,
        link=Link,
        build=False,
    )
    try:
        net.build()
        net.start()
        if args.wait_connected > 0:
            net.waitConnected(timeout=args.wait_connected)
        if not args.no_configure:
            info("*** Configuring the DARs\n")
            configure_dars(net)
        if args.run:
            for line in args.run:
                sys.stdout.write(_run_line(net, line))
                sys.stdout.flush()
        else:
            FamaCLI(net)
    finally:
        stop_lab(net)


if __name__ == "__main__":
    main()
