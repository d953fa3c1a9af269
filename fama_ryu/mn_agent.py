"""``fama-mn``: the FAMA mobile-node agent (draft-bernardos-dmm-cmip-06 §3).

Command line (other scripts rely on these exact forms)::

    fama-mn run --interface IF [--key KEY.pem] [--bits 1024] [--sec 1]
                [--keep all|connections|list] [--keep-address ADDR]...
                [--lifetime 600] [--state-dir DIR]
    fama-mn status [--state-dir DIR]

``run`` (as root, in the mobile node's network namespace) attaches to the
DAR whose Router Advertisements arrive on IF and keeps the addresses of
earlier DARs reachable through them.  The state directory (default
``/run/fama-mn/<IF>``) holds the RSA key (``mn-key.pem``, mode 0600,
generated with ``--bits`` if missing; ``--key`` elsewhere) and
``state.json``, rewritten atomically on every change and at least every
second.  ``status`` prints that file; with no ``--state-dir`` it takes the
only agent under ``/run/fama-mn``.  Exit codes: 0 success; 1 no (fresh)
agent state; 2 unusable arguments or environment.

What the agent does (FAMA-PROFILE.md rule numbers):

* It listens on an AF_PACKET socket of IF, which also sees what the kernel
  drops (a BA's type 2 Routing Header: the kernel has no MIPv6), and sends a
  Router Solicitation at start and whenever IF's link comes back up
  (RFC 4861 §6.3.7: up to 3, 4 s apart).  IF's ``accept_ra`` is set to 0 so
  the kernel does not autoconfigure from the same RAs; the previous value is
  restored at exit.
* The R-flagged Prefix Information option of a RA gives the DAR's prefix and
  anchor address A_d (P2).  An RA from another router or prefix than the
  current one is a move.  In a new prefix the agent configures a CGA (P3)
  on IF without DAD; the modifier found for the first CGA is reused
  (RFC 3972 §4), so only the first attachment pays the Sec 1 search.  It
  routes by default via the RA's source with the CGA as preferred source of
  new sockets, flushes IF's neighbours (a packet queued for the old router
  would hold TCP's retransmission back until resolution fails, 3 s), and
  announces the CGA with an unsolicited Neighbor Advertisement (RFC 9131)
  so that the DAR delivers the BAs to it without resolving it first.
  Addresses of earlier DARs are deprecated (preferred lifetime 0, P16).
* Each old address is kept or released by the ``--keep`` policy: ``all``;
  ``connections`` (an address is kept while a TCP socket that is not in
  TIME_WAIT/CLOSE, or a UDP socket, is bound to or connected from it,
  and for 30 s after it was last seen so used, per /proc/net/tcp6 and
  /proc/net/udp6; re-checked every 5 s); ``list`` (addresses and prefixes
  given with ``--keep-address``).  A kept address moves to the tunnel
  device as a deprecated /128 (its sockets keep working), is policy-routed
  there (``ip -6 rule from HoA lookup 64077``) and registered with its own
  DAR, the HDAR (P4, P6, P9 through :mod:`fama_ryu.mobile_node`).  A
  released address is deregistered if it had a binding (P11), then removed.
  A binding that fails (rejected, or unanswered after the RFC 6275 §11.8
  back-off) releases its address.
* Back at an address's own DAR the agent deregisters it with CoA == HoA
  (P11), stops tunnelling it and makes it the current address again.
* GRE-in-IPv6 (P14) in user space: see :mod:`fama_ryu.mn_tunnel`.

On SIGTERM or SIGINT the agent sends nothing (bindings simply expire at
their HDARs): it removes the routing rules, the tunnel table, the tunnel
device (and with it the kept addresses), the default route it installed,
and the state file, restores ``accept_ra`` and exits 0.  The current
address stays configured on IF.  One agent runs per network namespace
(tunnel device ``fama-tun``, routing table 64077); a second one fails at
start without touching the first one's state.  Logs (one line per RA that
moves the MN, BU, BA and state change, with timings) go to stderr.

The decisions are made by :class:`MobileNodeCore`, which does no I/O:
events in (RAs, Mobility Header packets, the clock, socket snapshots),
:data:`Action` lists out.  :class:`Agent` is the thin I/O layer around it.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import enum
import ipaddress
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fama_ryu import cga, keyfile, mh, mn_tunnel, ra
from fama_ryu.mobile_node import (
    DEFAULT_LIFETIME_S,
    MAX_LIFETIME_S,
    MIN_LIFETIME_S,
    AckResult,
    BindingState,
    BindingStatus,
    BindingUpdateList,
    MobileNodeIdentity,
    configure_address,
)

LOG = logging.getLogger("fama-mn")

EXIT_OK = 0
EXIT_NO_STATE = 1
EXIT_USAGE = 2

DEFAULT_STATE_ROOT = Path("/run/fama-mn")
STATE_FILE = "state.json"
KEY_FILE = "mn-key.pem"
# The daemon rewrites the state every second: older means it is not running.
STALE_STATE_S = 5.0

ACCESS_PREFIX_LEN = 64  # CGAs live in /64s (RFC 3972 §4)
HOST_PREFIX_LEN = 128
TUNNEL_TABLE = 64077  # 0xfa4d: the routing table of HoA-sourced traffic
TUNNEL_RULE_PRIORITY = 1000  # before the main table (32766)

MAX_RTR_SOLICITATIONS = 3  # RFC 4861 §10
RTR_SOLICITATION_INTERVAL_S = 4.0  # RFC 4861 §10
CONNECTION_GRACE_S = 30.0
SOCKET_CHECK_INTERVAL_S = 5.0
RELEASED_HISTORY = 16  # released addresses still shown by `status`
LINK_POLL_INTERVAL_S = 0.1  # fallback: link events (netlink) normally wake the loop first
NETLINK_ROUTE = 0
RTMGRP_LINK = 1
STATE_WRITE_INTERVAL_S = 1.0

# /proc/net/tcp6 states that hold no connection any more.
_TCP_TIME_WAIT = 0x06
_TCP_CLOSE = 0x07

_SCOPE_LINK = 0x20  # /proc/net/if_inet6 scope of fe80::/10
_IFA_F_TENTATIVE = 0x40

ETH_P_IPV6 = 0x86DD
_PACKET_OUTGOING = 4
_PACKET_OTHERHOST = 3
_SO_ATTACH_FILTER = 26


def _text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def _prefix_text(prefix: bytes) -> str:
    return f"{_text(prefix + bytes(8))}/{ACCESS_PREFIX_LEN}"


# ---------------------------------------------------------------- pure core: data


class KeepPolicy(enum.Enum):
    """Which addresses of earlier DARs the mobile node keeps (draft §3)."""

    ALL = "all"
    CONNECTIONS = "connections"
    LIST = "list"


class Role(enum.Enum):
    """What a mobile-node address is for now."""

    CURRENT = "current"  # of the DAR the MN is attached to: preferred, not tunnelled
    KEPT = "kept"  # of an earlier DAR: deprecated, tunnelled to its HDAR
    RELEASED = "released"  # given up: removed (and deregistered)


@dataclass(frozen=True)
class Router:
    """The DAR the mobile node is attached to, as its RA describes it (P2)."""

    link_local: bytes
    mac: bytes
    prefix: bytes  # the /64 of the R-flagged PIO, 8 bytes
    anchor: bytes  # A_d: the R-flagged PIO's full address


@dataclass
class MnAddress:
    """A CGA of the mobile node and where it lives."""

    address: bytes
    params: cga.CgaParameters
    anchor: bytes  # A_d of the DAR whose prefix it is in: its HDAR
    role: Role
    on_tunnel: bool = False  # a /128 on the tunnel device, else a /64 on IF
    last_used_at: float | None = None

    @property
    def prefix(self) -> bytes:
        return self.address[:8]

    @property
    def prefix_length(self) -> int:
        return HOST_PREFIX_LEN if self.on_tunnel else ACCESS_PREFIX_LEN


@dataclass(frozen=True)
class KeepRule:
    """The ``--keep`` policy and, for ``list``, the ``--keep-address`` networks."""

    policy: KeepPolicy = KeepPolicy.ALL
    networks: tuple[ipaddress.IPv6Network, ...] = ()

    def keeps(self, address: MnAddress, now: float, in_use: frozenset[bytes]) -> bool:
        if self.policy is KeepPolicy.ALL:
            return True
        if self.policy is KeepPolicy.LIST:
            ip = ipaddress.IPv6Address(address.address)
            return any(ip in network for network in self.networks)
        return address.address in in_use or (
            address.last_used_at is not None and now - address.last_used_at <= CONNECTION_GRACE_S
        )


# ---------------------------------------------------------------- pure core: actions


@dataclass(frozen=True)
class ConfigureAddress:
    """Add (or change the lifetimes of) an address, without DAD."""

    address: bytes
    prefix_length: int
    on_tunnel: bool
    preferred: bool


@dataclass(frozen=True)
class RemoveAddress:
    address: bytes
    prefix_length: int
    on_tunnel: bool


@dataclass(frozen=True)
class SetDefaultRoute:
    """Default route via the router's link-local address, ``source`` preferred."""

    router: bytes
    source: bytes


@dataclass(frozen=True)
class RemoveDefaultRoute:
    router: bytes


@dataclass(frozen=True)
class FlushNeighbours:
    """Forget IF's neighbours: they were on the link the MN left.

    A packet sent while the link was down waits in the old router's
    neighbour entry until resolution fails (3 s), and TCP does not
    retransmit a segment still queued in the host; flushing frees it.
    """


@dataclass(frozen=True)
class AddHomeRule:
    """Route packets from ``hoa`` by the tunnel table (into the tunnel device)."""

    hoa: bytes


@dataclass(frozen=True)
class RemoveHomeRule:
    hoa: bytes


@dataclass(frozen=True)
class StartTunnel:
    peer: mn_tunnel.TunnelPeer


@dataclass(frozen=True)
class StopTunnel:
    hoa: bytes


@dataclass(frozen=True)
class Transmit:
    """Send an Ethernet frame on IF; ``binding`` (HoA, HDAR) when it is a BU."""

    frame: bytes
    binding: tuple[bytes, bytes] | None = None


Action = (
    ConfigureAddress
    | RemoveAddress
    | SetDefaultRoute
    | RemoveDefaultRoute
    | FlushNeighbours
    | AddHomeRule
    | RemoveHomeRule
    | StartTunnel
    | StopTunnel
    | Transmit
)


# ---------------------------------------------------------------- pure core


class MobileNodeCore:
    """The agent's decisions: events in, actions out; no I/O, no clock.

    ``now`` is a monotonic clock reading in seconds; ``rng`` the random
    source of CGA modifiers and sequence numbers.
    """

    def __init__(
        self,
        identity: MobileNodeIdentity,
        *,
        interface: str,
        interface_mac: bytes,
        rng: cga.RandomBytes,
        keep_rule: KeepRule | None = None,
        sec: int = 1,
        lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> None:
        self.interface = interface
        self._identity = identity
        self._mac = interface_mac
        self._rng = rng
        self._keep_rule = keep_rule or KeepRule()
        self._sec = sec
        self._lifetime_s = lifetime_s
        self.bindings = BindingUpdateList(identity, rng)
        self.router: Router | None = None
        self._addresses: dict[bytes, MnAddress] = {}
        self._released: collections.deque[MnAddress] = collections.deque(maxlen=RELEASED_HISTORY)
        self._modifier: bytes | None = None
        self._link_local: bytes | None = None
        self._solicitations_left = 0
        self._next_solicitation_at: float | None = None

    # ------------------------------------------------------------ events

    def link_up(self, now: float, link_local: bytes | None) -> list[Action]:
        """At start and when IF's link comes back: solicit routers (RFC 4861 §6.3.7)."""
        self._link_local = link_local
        self._solicitations_left = MAX_RTR_SOLICITATIONS
        return self._solicit(now)

    def router_advertisement(
        self, advertisement: ra.RouterAdvertisement, now: float, in_use: frozenset[bytes]
    ) -> list[Action]:
        """A valid RA arrived on IF; ``in_use``: addresses sockets use now."""
        self._note_usage(in_use, now)
        router = self._router_from(advertisement)
        if router is None:
            return []
        self._solicitations_left, self._next_solicitation_at = 0, None
        current = self.router
        if current == router:
            return []
        if current is not None and (current.link_local, current.anchor) == (
            router.link_local,
            router.anchor,
        ):
            LOG.info("router %s now at MAC %s", _text(router.link_local), router.mac.hex(":"))
            self.router = router
            return []
        LOG.info(
            "move: %s -> DAR %s (router %s, prefix %s)",
            "attach" if current is None else f"DAR {_text(current.anchor)}",
            _text(router.anchor),
            _text(router.link_local),
            _prefix_text(router.prefix),
        )
        return self._move(router, now, in_use)

    def mobility_packet(self, packet: mh.MobilityPacket, now: float) -> list[Action]:
        """A Mobility Header packet arrived on IF (a BA is what matters)."""
        if not isinstance(packet.message, mh.BindingAck):
            return []
        outcome = self.bindings.handle_binding_ack(packet, now)
        detail = f"status {outcome.status}" if outcome.status is not None else "no status"
        if outcome.result is AckResult.IGNORED:
            assert outcome.ignore_reason is not None
            LOG.info(
                "BA from %s for %s ignored (%s): %s",
                _text(outcome.hdar),
                _text(outcome.hoa),
                detail,
                outcome.ignore_reason.value,
            )
        else:
            LOG.info(
                "BA from %s for %s: %s, %s",
                _text(outcome.hdar),
                _text(outcome.hoa),
                detail,
                outcome.result.value,
            )
        actions: list[Action] = []
        if outcome.packet is not None:
            actions += self._send_bu(outcome.packet, now, "answering the BA")
        return actions + self._settle_failures(now)

    def tick(self, now: float) -> list[Action]:
        """Timers: Router Solicitations, BU retransmissions and refreshes."""
        actions: list[Action] = []
        if self._next_solicitation_at is not None and now >= self._next_solicitation_at:
            actions += self._solicit(now)
        for packet in self.bindings.due(now):
            actions += self._send_bu(packet, now, "retransmission or refresh")
        return actions + self._settle_failures(now)

    def sockets_seen(self, in_use: frozenset[bytes], now: float) -> list[Action]:
        """A periodic socket snapshot: release kept addresses nothing uses any more."""
        self._note_usage(in_use, now)
        current = self.current_address()
        if self._keep_rule.policy is not KeepPolicy.CONNECTIONS or current is None:
            return []
        actions: list[Action] = []
        for address in self._kept():
            if not self._keep_rule.keeps(address, now, in_use):
                why = f"no socket used it for {CONNECTION_GRACE_S:.0f} s"
                actions += self._release(address, current.address, now, why)
        return actions

    def shutdown(self) -> list[Action]:
        """What to undo at exit: rules and the default route (nothing is sent)."""
        actions: list[Action] = [RemoveHomeRule(address.address) for address in self._kept()]
        if self.router is not None:
            actions.append(RemoveDefaultRoute(self.router.link_local))
        return actions

    def next_deadline(self) -> float | None:
        deadlines = [self._next_solicitation_at, self.bindings.next_deadline()]
        return min((deadline for deadline in deadlines if deadline is not None), default=None)

    # ------------------------------------------------------------ views

    def current_address(self) -> MnAddress | None:
        return next((a for a in self._addresses.values() if a.role is Role.CURRENT), None)

    def addresses(self) -> list[MnAddress]:
        """Current and kept addresses, then the recently released ones."""
        return [*self._addresses.values(), *self._released]

    def status(
        self, now: float, wall_clock: float, tunnel: mn_tunnel.TunnelCounters
    ) -> dict[str, Any]:
        """The ``fama-mn status`` document; never the PHKT.

        ``expires_at`` is converted from the monotonic clock to Unix time.
        """
        router = self.router
        return {
            "interface": self.interface,
            "current_dar": None
            if router is None
            else {
                "prefix": _prefix_text(router.prefix),
                "anchor": _text(router.anchor),
                "router": _text(router.link_local),
            },
            "addresses": [
                {
                    "address": _text(address.address),
                    "prefix": _prefix_text(address.prefix),
                    "anchor": _text(address.anchor),
                    "role": address.role.value,
                    "preferred": address.role is Role.CURRENT,
                }
                for address in self.addresses()
            ],
            "bindings": [
                _binding_json(entry, now, wall_clock) for entry in self.bindings.entries()
            ],
            "tunnel": tunnel.as_dict(),
        }

    # ------------------------------------------------------------ internals

    def _router_from(self, advertisement: ra.RouterAdvertisement) -> Router | None:
        """The DAR an RA describes (P2), or None if the MN cannot attach to it."""
        pio = advertisement.router_address_prefix()
        source = _text(advertisement.source)
        problem = None
        if pio is None:
            problem = "no R-flagged Prefix Information (no anchor address, P2)"
        elif pio.prefix_length != ACCESS_PREFIX_LEN or not pio.autonomous:
            problem = f"R-flagged prefix /{pio.prefix_length}, A={pio.autonomous}: no CGA there"
        elif pio.valid_lifetime_s == 0:
            problem = "R-flagged prefix with valid lifetime 0"
        elif advertisement.router_lifetime_s == 0:
            problem = "router lifetime 0 (not a default router)"
        elif advertisement.router_mac is None:
            problem = "no link-layer address"
        if problem is not None:
            LOG.info("RA from %s ignored: %s", source, problem)
            return None
        assert pio is not None and advertisement.router_mac is not None
        LOG.info(
            "RA from %s: prefix %s, A_d %s, H=%s, router lifetime %d s",
            source,
            _prefix_text(pio.prefix[:8]),
            _text(pio.prefix),
            advertisement.home_agent,
            advertisement.router_lifetime_s,
        )
        return Router(
            link_local=advertisement.source,
            mac=advertisement.router_mac,
            prefix=pio.prefix[:8],
            anchor=pio.prefix,
        )

    def _move(self, router: Router, now: float, in_use: frozenset[bytes]) -> list[Action]:
        actions: list[Action] = []
        self.router = router
        target = next((a for a in self._addresses.values() if a.prefix == router.prefix), None)
        returning_home = target is not None and target.role is Role.KEPT
        if target is None:
            configured = configure_address(
                self._identity, router.prefix, self._sec, self._modifier_source()
            )
            self._modifier = configured.params.modifier
            target = MnAddress(configured.address, configured.params, router.anchor, Role.CURRENT)
            self._addresses[target.address] = target
            LOG.info("configured CGA %s (Sec %d)", _text(target.address), self._sec)
            actions.append(ConfigureAddress(target.address, ACCESS_PREFIX_LEN, False, True))
        elif returning_home:
            actions += self._untunnel(target)
        actions += [
            SetDefaultRoute(router.link_local, target.address),
            FlushNeighbours(),
            # Before any BU: the DAR must be able to deliver the BAs to this address.
            Transmit(
                ra.build_unsolicited_neighbor_advertisement(
                    source_mac=self._mac, address=target.address
                )
            ),
        ]
        if returning_home:
            # P11: CoA == HoA, sent from the HoA itself.
            packet = self.bindings.deregister(target.address, target.anchor, target.address, now)
            if packet is not None:
                actions += self._send_bu(packet, now, "deregistration from home")
        for address in [a for a in self._addresses.values() if a is not target]:
            if self._keep_rule.keeps(address, now, in_use):
                actions += self._keep(address, target.address, now)
            else:
                actions += self._release(address, target.address, now, "keep policy")
        return actions

    def _modifier_source(self) -> cga.RandomBytes:
        """Where a new CGA's modifier search starts (RFC 3972 §4).

        The first search starts at random; later CGAs start from the
        modifier it found, which RFC 3972 §4 allows for a new subnet prefix
        with the same key: the Hash2 condition does not involve the prefix,
        so no Sec > 0 search is repeated.  It links the addresses, as the
        public key in every CGA-signed BU does anyway.
        """
        modifier = self._modifier
        if modifier is None:
            return self._rng
        return lambda _length: modifier

    def _untunnel(self, address: MnAddress) -> list[Action]:
        """Back at the address's own DAR: it leaves the tunnel and is current again."""
        hoa = address.address
        LOG.info("back at the DAR of %s: it is the current address again", _text(hoa))
        address.role, address.on_tunnel = Role.CURRENT, False
        return [
            StopTunnel(hoa),
            RemoveHomeRule(hoa),
            ConfigureAddress(hoa, ACCESS_PREFIX_LEN, False, True),
            RemoveAddress(hoa, HOST_PREFIX_LEN, True),
        ]

    def _keep(self, address: MnAddress, coa: bytes, now: float) -> list[Action]:
        """Keep an old address reachable: tunnel it and register ``coa`` for it."""
        hoa = address.address
        actions: list[Action] = []
        if not address.on_tunnel:
            LOG.info("keeping %s (deprecated, tunnelled to %s)", _text(hoa), _text(address.anchor))
            # Added to the tunnel before leaving IF, so sockets never lose it.
            actions += [
                ConfigureAddress(hoa, HOST_PREFIX_LEN, True, False),
                RemoveAddress(hoa, ACCESS_PREFIX_LEN, False),
            ]
            address.on_tunnel = True
        if address.role is not Role.KEPT:
            address.role = Role.KEPT
            actions.append(AddHomeRule(hoa))
        entry = self._binding(hoa, address.anchor)
        if (
            entry is not None
            and entry.coa == coa
            and entry.state in (BindingState.PENDING, BindingState.REGISTERED)
        ):
            return actions  # another router of the same DAR: the binding stands
        # Tunnelled at once: the HDAR installs its rules before the BA leaves (P12).
        actions.append(StartTunnel(mn_tunnel.TunnelPeer(hoa, address.anchor, coa)))
        packet = self.bindings.register(
            hoa, address.params, address.anchor, coa, now, self._lifetime_s
        )
        return actions + self._send_bu(packet, now, "registration")

    def _release(self, address: MnAddress, coa: bytes, now: float, why: str) -> list[Action]:
        """Give an address up: deregister its binding if any (P11), remove it."""
        hoa = address.address
        LOG.info("releasing %s (%s)", _text(hoa), why)
        actions: list[Action] = []
        if address.role is Role.KEPT:
            actions += [StopTunnel(hoa), RemoveHomeRule(hoa)]
        entry = self._binding(hoa, address.anchor)
        if entry is not None and entry.state is not BindingState.FAILED:
            packet = self.bindings.deregister(hoa, address.anchor, coa, now)
            assert packet is not None
            actions += self._send_bu(packet, now, "deregistration")
        elif entry is not None:
            self.bindings.forget(hoa, address.anchor)
        actions.append(RemoveAddress(hoa, address.prefix_length, address.on_tunnel))
        address.role = Role.RELEASED
        del self._addresses[hoa]
        self._released.append(address)
        return actions

    def _settle_failures(self, now: float) -> list[Action]:
        """Forget failed bindings; a kept address whose binding failed is released."""
        actions: list[Action] = []
        current = self.current_address()
        for entry in self.bindings.entries():
            if entry.state is not BindingState.FAILED:
                continue
            self.bindings.forget(entry.hoa, entry.hdar)
            address = self._addresses.get(entry.hoa)
            reason = (
                "no BA" if entry.failure_status is None else f"BA status {entry.failure_status}"
            )
            LOG.warning(
                "binding of %s at %s failed (%s)", _text(entry.hoa), _text(entry.hdar), reason
            )
            if address is not None and address.role is Role.KEPT and current is not None:
                actions += self._release(address, current.address, now, "binding failed")
        return actions

    def _binding(self, hoa: bytes, hdar: bytes) -> BindingStatus | None:
        return next((e for e in self.bindings.entries() if (e.hoa, e.hdar) == (hoa, hdar)), None)

    def _kept(self) -> list[MnAddress]:
        return [a for a in self._addresses.values() if a.role is Role.KEPT]

    def _note_usage(self, in_use: frozenset[bytes], now: float) -> None:
        for address in self._addresses.values():
            if address.address in in_use:
                address.last_used_at = now

    def _send_bu(self, packet: bytes, now: float, why: str) -> list[Action]:
        router = self.router
        assert router is not None, "Binding Updates are only sent while attached"
        parsed = mh.parse_ipv6_packet(packet)
        bu = parsed.message
        assert isinstance(bu, mh.BindingUpdate)
        hoa, hdar = parsed.pseudo_source, parsed.destination
        LOG.info(
            "BU %s: HoA %s CoA %s -> %s, seq %d, lifetime %d s, %s",
            why,
            _text(hoa),
            _text(parsed.source),
            _text(hdar),
            bu.sequence,
            bu.lifetime_s,
            "CGA-signed" if bu.options.cga_parameters is not None else "PHKT-authenticated",
        )
        frame = mh.build_ethernet_frame(self._mac, router.mac, packet)
        return [Transmit(frame, (hoa, hdar))]

    def _solicit(self, now: float) -> list[Action]:
        if self._solicitations_left <= 0:
            self._next_solicitation_at = None
            return []
        self._solicitations_left -= 1
        self._next_solicitation_at = (
            now + RTR_SOLICITATION_INTERVAL_S if self._solicitations_left > 0 else None
        )
        source = self._link_local or bytes(16)
        LOG.info("sending Router Solicitation from %s", _text(source))
        return [Transmit(ra.build_router_solicitation(source_mac=self._mac, source=source))]


def _binding_json(entry: BindingStatus, now: float, wall_clock: float) -> dict[str, Any]:
    return {
        "hoa": _text(entry.hoa),
        "hdar": _text(entry.hdar),
        "coa": _text(entry.coa),
        "state": entry.state.value,
        "last_sequence": entry.last_sequence,
        "phkt_held": entry.phkt_held,
        "granted_lifetime_s": entry.granted_lifetime_s,
        "expires_at": None
        if entry.expires_at is None
        else round(wall_clock + entry.expires_at - now, 3),
    }


# ---------------------------------------------------------------- pure helpers of the I/O layer


def ip_command(action: Action, interface: str, tunnel_device: str) -> list[str] | None:
    """The ``ip -6`` command (its arguments) for ``action``; None for packets and peers."""
    if isinstance(action, ConfigureAddress | RemoveAddress):
        device = tunnel_device if action.on_tunnel else interface
        address = f"{_text(action.address)}/{action.prefix_length}"
        if isinstance(action, RemoveAddress):
            return f"addr del {address} dev {device}".split()
        preferred = "forever" if action.preferred else "0"
        return (
            f"addr replace {address} dev {device} nodad valid_lft forever preferred_lft {preferred}"
        ).split()
    if isinstance(action, SetDefaultRoute):
        return (
            f"route replace default via {_text(action.router)} dev {interface}"
            f" src {_text(action.source)}"
        ).split()
    if isinstance(action, RemoveDefaultRoute):
        return f"route del default via {_text(action.router)} dev {interface}".split()
    if isinstance(action, FlushNeighbours):
        return f"neigh flush dev {interface}".split()
    if isinstance(action, AddHomeRule | RemoveHomeRule):
        verb = "add" if isinstance(action, AddHomeRule) else "del"
        return (
            f"rule {verb} from {_text(action.hoa)}/128"
            f" lookup {TUNNEL_TABLE} pref {TUNNEL_RULE_PRIORITY}"
        ).split()
    return None


def tunnel_table_command(tunnel_device: str) -> list[str]:
    """The tunnel table's one route (``ip -6`` arguments): everything into the device."""
    return f"route replace default dev {tunnel_device} table {TUNNEL_TABLE}".split()


def failed_batch_commands(stderr: str) -> dict[int, str]:
    """Error messages of ``ip -force -batch`` by 0-based command index.

    ``ip`` prints a command's error lines, then ``Command failed -:N``.
    """
    failed: dict[int, str] = {}
    message: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("Command failed -:"):
            failed[int(line.rsplit(":", 1)[1]) - 1] = " ".join(message)
            message = []
        else:
            message.append(line.strip())
    return failed


def addresses_in_use(tcp6: str, udp6: str) -> frozenset[bytes]:
    """Local addresses of TCP connections and UDP sockets in /proc/net/{tcp6,udp6} text.

    TCP sockets in TIME_WAIT or CLOSE hold no connection and do not count;
    listeners bound to one address do (an application chose that address).
    """
    found: set[bytes] = set()
    for text, is_tcp in ((tcp6, True), (udp6, False)):
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4:
                continue
            local_hex = fields[1].split(":")[0]
            state = int(fields[3], 16)
            if is_tcp and state in (_TCP_TIME_WAIT, _TCP_CLOSE):
                continue
            address = _proc_address(local_hex)
            if address is not None and address != bytes(16):
                found.add(address)
    return frozenset(found)


def link_local_of(if_inet6: str, interface: str) -> bytes | None:
    """``interface``'s usable link-local address in /proc/net/if_inet6 text, if any.

    Each line: address (32 hex digits), ifindex, prefix length, scope,
    flags, name; all hex.  Scope 0x20 is link; flag 0x40 is tentative.
    """
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) != 6 or fields[5] != interface:
            continue
        scope, flags = int(fields[3], 16), int(fields[4], 16)
        if scope == _SCOPE_LINK and not flags & _IFA_F_TENTATIVE:
            return bytes.fromhex(fields[0])
    return None


def _proc_address(hex_text: str) -> bytes | None:
    """/proc/net prints an in6_addr as four 32-bit words in host byte order."""
    if len(hex_text) != 32:
        return None
    try:
        words = [int(hex_text[i : i + 8], 16) for i in range(0, 32, 8)]
    except ValueError:
        return None
    return b"".join(struct.pack("=I", word) for word in words)


def _is_router_advertisement(frame: bytes) -> bool:
    return (
        len(frame) > 54 and frame[20] == mh.IPPROTO_ICMPV6 and frame[54] == ra.ROUTER_ADVERTISEMENT
    )


# Classic BPF for the packet socket: only what the agent reads (RAs and
# Mobility Header packets, possibly behind extension headers) reaches it,
# not the tunnelled data traffic.  Offsets are in the Ethernet frame.
_SIGNALLING_FILTER = (
    (0x30, 0, 0, 20),  # ldb [20]            IPv6 next header
    (0x15, 3, 0, mh.IPPROTO_ICMPV6),  # jeq 58 -> 5
    (0x15, 4, 0, mh.IPPROTO_MH),  # jeq 135 -> accept
    (0x15, 3, 0, mh.IPPROTO_ROUTING),  # jeq 43 -> accept
    (0x15, 2, 3, mh.IPPROTO_DSTOPTS),  # jeq 60 -> accept, else drop
    (0x30, 0, 0, 54),  # ldb [54]            ICMPv6 type
    (0x15, 0, 1, ra.ROUTER_ADVERTISEMENT),  # jeq 134 -> accept, else drop
    (0x06, 0, 0, 0xFFFF),  # accept
    (0x06, 0, 0, 0),  # drop
)


def _attach_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("=HBBI", *insn) for insn in _SIGNALLING_FILTER)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("@HP", len(_SIGNALLING_FILTER), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


# ---------------------------------------------------------------- I/O layer


class AgentError(RuntimeError):
    """The agent cannot run here; the message says why."""


def run_ip_batch(commands: Sequence[Sequence[str]], *, quiet: Sequence[bool] = ()) -> bool:
    """Run ``ip -6`` commands in one process; log failures; True if all succeeded.

    One ``ip`` process per event keeps a move fast (each fork+exec costs
    milliseconds).  ``quiet[i]`` logs command ``i``'s failure at debug level
    only: a removal may find the thing already gone.
    """
    if not commands:
        return True
    result = subprocess.run(
        ["ip", "-6", "-force", "-batch", "-"],
        input="".join(" ".join(command) + "\n" for command in commands),
        capture_output=True,
        text=True,
        check=False,
    )
    for index, message in failed_batch_commands(result.stderr).items():
        log = LOG.debug if index < len(quiet) and quiet[index] else LOG.error
        log("ip -6 %s: %s", " ".join(commands[index]), message)
    return result.returncode == 0


def _configure_tunnel_device(device: str, mtu: int) -> None:
    # No link-local on the tunnel: nothing but HoA-sourced packets should enter it.
    for argv in (
        ["ip", "link", "set", "dev", device, "addrgenmode", "none"],
        ["ip", "link", "set", "dev", device, "mtu", str(mtu), "up"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AgentError(f"{' '.join(argv)}: {result.stderr.strip()}")


class Agent:
    """The I/O around :class:`MobileNodeCore` for one interface (see module docstring)."""

    def __init__(
        self,
        core: MobileNodeCore,
        tunnel: mn_tunnel.Tunnel,
        *,
        interface: str,
        state_dir: Path,
        keep_policy: KeepPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.tunnel = tunnel
        self.interface = interface
        self.state_path = state_dir / STATE_FILE
        self._keep_policy = keep_policy
        self._clock = clock
        self._stopping = False
        self._packet_socket: socket.socket | None = None
        self._link_events: socket.socket | None = None
        self._tunnel_open = False
        self._accept_ra_path = Path(f"/proc/sys/net/ipv6/conf/{interface}/accept_ra")
        self._saved_accept_ra: str | None = None
        self._state_dirty = True
        self._state_written_at = 0.0
        self._bu_sent_at: dict[tuple[bytes, bytes], float] = {}

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            self._open(selector)
            self._loop(selector)
        finally:
            selector.close()
            self._close()

    # ------------------------------------------------------------ setup and teardown

    def _open(self, selector: selectors.BaseSelector) -> None:
        # The tunnel first: it fails if another agent runs in this namespace,
        # before anything of that agent's could be touched (and undone).
        self.tunnel.open()
        self._tunnel_open = True
        self._saved_accept_ra = self._accept_ra_path.read_text().strip()
        self._accept_ra_path.write_text("0")  # the agent, not the kernel, acts on RAs
        if not run_ip_batch([tunnel_table_command(self.tunnel.device)]):
            raise AgentError("cannot install the tunnel routing table")
        packet_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        _attach_filter(packet_socket)
        packet_socket.bind((self.interface, ETH_P_IPV6))
        packet_socket.setblocking(False)
        self._packet_socket = packet_socket
        selector.register(packet_socket, selectors.EVENT_READ)
        for fd in self.tunnel.fds():
            selector.register(fd, selectors.EVENT_READ)
        # Link changes wake the loop at once (the kernel's RTM_NEWLINK), so a
        # handover starts when the carrier comes up, not at the next poll.
        link_events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        link_events.bind((0, RTMGRP_LINK))
        link_events.setblocking(False)
        self._link_events = link_events
        selector.register(link_events, selectors.EVENT_READ)

    def _close(self) -> None:
        if not self._tunnel_open:
            return
        self._apply_all(self.core.shutdown())
        run_ip_batch([["route", "flush", "table", str(TUNNEL_TABLE)]], quiet=[True])
        self.tunnel.close()
        if self._packet_socket is not None:
            self._packet_socket.close()
        if self._link_events is not None:
            self._link_events.close()
        if self._saved_accept_ra is not None:
            self._accept_ra_path.write_text(self._saved_accept_ra)
        self.state_path.unlink(missing_ok=True)
        LOG.info("stopped: tunnel, rules and routes removed")

    # ------------------------------------------------------------ main loop

    def _loop(self, selector: selectors.BaseSelector) -> None:
        link_was_up = False
        next_socket_check = 0.0
        while not self._stopping:
            now = self._clock()
            link_up = self._link_is_up()
            if link_up and not link_was_up:
                LOG.info("link %s is up", self.interface)
                self._apply_all(self.core.link_up(now, self._link_local()))
            link_was_up = link_up
            if self._keep_policy is KeepPolicy.CONNECTIONS and now >= next_socket_check:
                next_socket_check = now + SOCKET_CHECK_INTERVAL_S
                self._apply_all(self.core.sockets_seen(self._sockets_in_use(), now))
            self._apply_all(self.core.tick(now))
            self._write_state_if_due(now)
            deadline = self.core.next_deadline()
            timeout = LINK_POLL_INTERVAL_S
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - self._clock()))
            for key, _events in selector.select(timeout):
                if key.fileobj is self._packet_socket:
                    self._receive_frames()
                elif key.fileobj is self._link_events:
                    self._drain_link_events()  # the loop reads the link state next
                else:
                    self.tunnel.handle_readable(key.fd)

    def _drain_link_events(self) -> None:
        assert self._link_events is not None
        while True:
            try:
                self._link_events.recv(65536)
            except BlockingIOError:
                return
            except OSError as error:  # ENOBUFS after a burst: the state is re-read anyway
                LOG.debug("link events: %s", error)
                return

    def _receive_frames(self) -> None:
        assert self._packet_socket is not None
        while True:
            try:
                frame, address = self._packet_socket.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as error:  # ENETDOWN once after IF went down: keep listening
                LOG.warning("packet socket on %s: %s", self.interface, error)
                return
            if address[2] in (_PACKET_OUTGOING, _PACKET_OTHERHOST):
                continue
            self._handle_frame(frame)

    def _handle_frame(self, frame: bytes) -> None:
        now = self._clock()
        if _is_router_advertisement(frame):
            try:
                advertisement = ra.parse_router_advertisement_frame(frame)
            except ra.RaParseError as error:
                LOG.info("invalid RA dropped: %s", error)
                return
            in_use = (
                self._sockets_in_use()
                if self._keep_policy is KeepPolicy.CONNECTIONS
                else frozenset()
            )
            actions = self.core.router_advertisement(advertisement, now, in_use)
            self._apply_all(actions)
            self._state_dirty = True
            if actions:
                LOG.info("move handled %.1f ms after the RA", 1000 * (self._clock() - now))
            return
        try:
            packet = mh.parse_ethernet_frame(frame)
        except mh.MobilityParseError as error:
            LOG.debug("not a usable Mobility Header packet: %s", error)
            return
        if isinstance(packet.message, mh.BindingAck):
            sent_at = self._bu_sent_at.get((packet.pseudo_destination, packet.source))
            if sent_at is not None:
                LOG.info("BA %.1f ms after the last BU left", 1000 * (now - sent_at))
        self._apply_all(self.core.mobility_packet(packet, now))
        self._state_dirty = True

    # ------------------------------------------------------------ actions

    def _apply_all(self, actions: Sequence[Action]) -> None:
        """Carry out actions in order; consecutive ``ip`` commands share one process."""
        batch: list[list[str]] = []
        quiet: list[bool] = []
        for action in actions:
            command = ip_command(action, self.interface, self.tunnel.device)
            if command is not None:
                batch.append(command)
                quiet.append(
                    isinstance(action, RemoveAddress | RemoveHomeRule | RemoveDefaultRoute)
                )
                continue
            run_ip_batch(batch, quiet=quiet)
            batch, quiet = [], []
            self._apply_in_process(action)
        run_ip_batch(batch, quiet=quiet)
        if actions:
            self._state_dirty = True

    def _apply_in_process(self, action: Action) -> None:
        if isinstance(action, Transmit):
            assert self._packet_socket is not None
            try:
                self._packet_socket.send(action.frame)
            except OSError as error:  # link down: retransmission timers take over
                LOG.warning("cannot send on %s: %s", self.interface, error)
                return
            if action.binding is not None:
                self._bu_sent_at[action.binding] = self._clock()
        elif isinstance(action, StartTunnel):
            self.tunnel.add_peer(action.peer)
        elif isinstance(action, StopTunnel):
            self.tunnel.remove_peer(action.hoa)

    # ------------------------------------------------------------ host facts

    def _link_is_up(self) -> bool:
        try:
            state = Path(f"/sys/class/net/{self.interface}/operstate").read_text().strip()
        except OSError:
            return False
        return state in ("up", "unknown")

    def _link_local(self) -> bytes | None:
        try:
            text = Path("/proc/net/if_inet6").read_text()
        except OSError:
            return None
        return link_local_of(text, self.interface)

    @staticmethod
    def _sockets_in_use() -> frozenset[bytes]:
        texts = []
        for name in ("tcp6", "udp6"):
            try:
                texts.append(Path(f"/proc/net/{name}").read_text())
            except OSError:
                texts.append("")
        return addresses_in_use(*texts)

    # ------------------------------------------------------------ state file

    def _write_state_if_due(self, now: float) -> None:
        if not self._state_dirty and now - self._state_written_at < STATE_WRITE_INTERVAL_S:
            return
        document = self.core.status(now, time.time(), self.tunnel.counters())
        write_state(self.state_path, document)
        self._state_dirty = False
        self._state_written_at = now


def write_state(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as JSON atomically: readers see the old or the new file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


# ---------------------------------------------------------------- command line


class UsageError(Exception):
    """Arguments or environment the command cannot use (exit 2)."""


def _load_identity(path: Path, bits: int) -> MobileNodeIdentity:
    if path.exists():
        try:
            identity = MobileNodeIdentity.from_pem(path.read_bytes())
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot use key {path}: {error}") from None
        LOG.info("loaded %d-bit key %s", identity.private_key.key_size, path)
        return identity
    identity = MobileNodeIdentity.generate(bits)
    keyfile.write_private_key(path, identity.private_key)
    LOG.info("generated %d-bit key %s", bits, path)
    return identity


def _keep_networks(texts: Sequence[str]) -> tuple[ipaddress.IPv6Network, ...]:
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.IPv6Network(text, strict=False))
        except ValueError as error:
            raise UsageError(f"bad --keep-address {text!r}: {error}") from None
    return tuple(networks)


def _interface_mac(interface: str) -> bytes:
    try:
        text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    except OSError:
        raise UsageError(f"no interface {interface!r} in this network namespace") from None
    return bytes.fromhex(text.replace(":", ""))


def cmd_run(args: argparse.Namespace) -> int:
    if not cga.MIN_KEY_BITS <= args.bits <= cga.MAX_KEY_BITS:
        raise UsageError(f"--bits must be {cga.MIN_KEY_BITS}..{cga.MAX_KEY_BITS} (P8)")
    if args.sec not in (0, 1):
        raise UsageError("--sec must be 0 or 1 (Sec 2 takes hours to generate, RFC 3972 §4)")
    if not MIN_LIFETIME_S <= args.lifetime <= MAX_LIFETIME_S:
        raise UsageError(f"--lifetime must be {MIN_LIFETIME_S}..{MAX_LIFETIME_S} s")
    policy = KeepPolicy(args.keep)
    if args.keep_address and policy is not KeepPolicy.LIST:
        raise UsageError("--keep-address needs --keep list")
    keep_rule = KeepRule(policy, _keep_networks(args.keep_address))
    if os.geteuid() != 0:
        raise UsageError("fama-mn run needs root (addresses, routes, TUN, packet sockets)")
    mac = _interface_mac(args.interface)
    state_dir = Path(args.state_dir or DEFAULT_STATE_ROOT / args.interface)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = _load_identity(Path(args.key) if args.key else state_dir / KEY_FILE, args.bits)
    core = MobileNodeCore(
        identity,
        interface=args.interface,
        interface_mac=mac,
        rng=os.urandom,
        keep_rule=keep_rule,
        sec=args.sec,
        lifetime_s=args.lifetime,
    )
    tunnel = mn_tunnel.UserspaceGreTunnel(_configure_tunnel_device)
    agent = Agent(core, tunnel, interface=args.interface, state_dir=state_dir, keep_policy=policy)
    signal.signal(signal.SIGTERM, agent.request_stop)
    signal.signal(signal.SIGINT, agent.request_stop)
    LOG.info(
        "running on %s (MAC %s), keep policy %s, lifetime %d s, state %s",
        args.interface,
        mac.hex(":"),
        policy.value,
        args.lifetime,
        state_dir,
    )
    try:
        agent.run()
    except (AgentError, OSError) as error:
        raise UsageError(f"agent failed on {args.interface}: {error}") from None
    return EXIT_OK


def _find_state_dir(state_dir: str | None) -> Path | None:
    if state_dir is not None:
        return Path(state_dir)
    candidates = sorted(DEFAULT_STATE_ROOT.glob(f"*/{STATE_FILE}"))
    if len(candidates) > 1:
        names = ", ".join(path.parent.name for path in candidates)
        raise UsageError(f"several agents under {DEFAULT_STATE_ROOT} ({names}): pass --state-dir")
    return candidates[0].parent if candidates else None


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = _find_state_dir(args.state_dir)
    where = state_dir if state_dir is not None else DEFAULT_STATE_ROOT
    path = where / STATE_FILE
    try:
        text = path.read_text()
        age_s = time.time() - path.stat().st_mtime
    except OSError:
        print(f"fama-mn: no agent state in {where} (is `fama-mn run` running?)", file=sys.stderr)
        return EXIT_NO_STATE
    if age_s > STALE_STATE_S:
        print(
            f"fama-mn: agent state {path} is {age_s:.0f} s old: the agent is not running",
            file=sys.stderr,
        )
        return EXIT_NO_STATE
    sys.stdout.write(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fama-mn", description="FAMA mobile-node agent (draft-bernardos-dmm-cmip-06)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent on an interface until SIGTERM")
    run.add_argument("--interface", required=True, metavar="IF", help="the access interface")
    run.add_argument(
        "--key", metavar="KEY.pem", help=f"RSA key, created if missing (default DIR/{KEY_FILE})"
    )
    run.add_argument(
        "--bits", type=int, default=cga.MIN_KEY_BITS, help="size of a new key (default 1024)"
    )
    run.add_argument("--sec", type=int, default=1, help="CGA Sec parameter, 0 or 1 (default 1)")
    run.add_argument(
        "--keep",
        choices=[policy.value for policy in KeepPolicy],
        default=KeepPolicy.ALL.value,
        help="which addresses of earlier DARs to keep (default all)",
    )
    run.add_argument(
        "--keep-address",
        action="append",
        default=[],
        metavar="ADDR",
        help="with --keep list: an address or prefix to keep (repeatable)",
    )
    run.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_LIFETIME_S,
        metavar="SECONDS",
        help=f"requested binding lifetime (default {DEFAULT_LIFETIME_S})",
    )
    run.add_argument("--state-dir", metavar="DIR", help="default /run/fama-mn/IF")
    run.set_defaults(handler=cmd_run)
    status = commands.add_parser("status", help="print the running agent's state as JSON")
    status.add_argument(
        "--state-dir", metavar="DIR", help="default: the only agent under /run/fama-mn"
    )
    status.set_defaults(handler=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s fama-mn %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"fama-mn: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
