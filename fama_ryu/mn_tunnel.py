"""The mobile node's end of the HDAR-MN tunnels: GRE over IPv6 (P14, P15).

For every kept home address (HoA) with a binding, packets the MN sends from
the HoA travel GRE-encapsulated from the current care-of address (CoA) to
the HoA's anchor ``A_HDAR``, and the HDAR tunnels packets for the HoA back
the same way.  The GRE header is exactly four bytes, ``0x0000 0x86DD``: no
checksum, key or sequence number (RFC 2784, RFC 7676, P14).

The kernels this project runs on have no ip6gre (docs/lab-notes.md), so
:class:`UserspaceGreTunnel` does the encapsulation in user space: a TUN
device (``fama-tun``) into which the agent policy-routes HoA-sourced
packets, and one raw ``IPPROTO_GRE`` socket, which receives GRE-in-IPv6 with
the data starting at the GRE header and sends with the kernel writing the
outer IPv6 header (source chosen per packet with ``IPV6_PKTINFO``).

Everything the agent needs from a tunnel is the :class:`Tunnel` protocol:
open/close, add/remove a peer ``(hoa, hdar, coa)``, the device name that
HoA-sourced traffic is routed to, the counters, and the file descriptors to
poll.  A kernel implementation (one ``ip6gre external`` device, routes with
``encap ip6 dst A_HDAR src CoA``) would keep its peers in the kernel and
poll nothing.

Counters count inner IPv6 packets and their bytes.  ``dropped`` counts what
neither direction may carry (P15): a packet from the TUN whose source is no
bound HoA, and a GRE packet that is not ``0x0000 0x86DD`` + IPv6, whose inner destination is
no bound HoA, or which comes from another address than that HoA's HDAR or
to another address than its CoA.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

IPPROTO_GRE = 47
GRE_HEADER = b"\x00\x00\x86\xdd"  # no C/K/S flags, version 0, protocol IPv6 (P14)
OUTER_OVERHEAD = 40 + len(GRE_HEADER)  # outer IPv6 header + GRE header
DEFAULT_LINK_MTU = 1500
TUNNEL_MTU = DEFAULT_LINK_MTU - OUTER_OVERHEAD  # 1456: the outer packet is never fragmented
DEFAULT_DEVICE = "fama-tun"

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MAX_PACKET = 65535
# Bounded so that one busy direction cannot starve the agent's signalling.
_BATCH = 64
# Send errors of a moment (no route, CoA gone during a move): the packet is
# lost, as it would be on a link.
_TRANSIENT_SEND_ERRORS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENOBUFS}
)


@dataclass(frozen=True)
class TunnelPeer:
    """One tunnel: packets from/to ``hoa`` go between ``coa`` and ``hdar``."""

    hoa: bytes
    hdar: bytes
    coa: bytes


@dataclass
class TunnelCounters:
    packets_out: int = 0
    packets_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Tunnel(Protocol):
    """What the mobile-node agent needs from a GRE-in-IPv6 tunnel implementation."""

    @property
    def device(self) -> str:
        """Interface that HoA-sourced packets are routed to."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add_peer(self, peer: TunnelPeer) -> None:
        """Start (or re-point, for a known HoA) tunnelling ``peer.hoa``."""

    def remove_peer(self, hoa: bytes) -> None: ...

    def counters(self) -> TunnelCounters: ...

    def fds(self) -> list[int]:
        """File descriptors to watch for reading; empty for a kernel tunnel."""

    def handle_readable(self, fd: int) -> None:
        """Move what is waiting on ``fd`` (one of :meth:`fds`) through the tunnel."""


class ConfigureDevice(Protocol):
    """Sets a new tunnel device's MTU and brings it up."""

    def __call__(self, device: str, mtu: int) -> None: ...


def open_tun_device(name: str) -> int:
    """Create the TUN device ``name`` (IPv6 packets, no packet-info header); return its fd.

    The device exists as long as the descriptor is open (not persistent).
    """
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _pktinfo(address: bytes) -> bytes:
    """A ``struct in6_pktinfo`` choosing ``address`` as source, any interface."""
    return address + struct.pack("=I", 0)


class UserspaceGreTunnel:
    """GRE-in-IPv6 through a TUN device and a raw GRE socket (see module docstring).

    ``configure_device`` is called once the TUN device exists, to set its
    MTU and bring it up (the agent passes a function running ``ip``).
    """

    def __init__(
        self,
        configure_device: ConfigureDevice,
        device: str = DEFAULT_DEVICE,
        mtu: int = TUNNEL_MTU,
    ) -> None:
        self._device = device
        self._mtu = mtu
        self._configure_device = configure_device
        self._peers: dict[bytes, TunnelPeer] = {}
        self._counters = TunnelCounters()
        self._tun_fd: int | None = None
        self._gre: socket.socket | None = None

    @property
    def device(self) -> str:
        return self._device

    def open(self) -> None:
        self._tun_fd = open_tun_device(self._device)
        self._configure_device(self._device, self._mtu)
        gre = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_GRE)
        gre.setblocking(False)
        # The destination tells which CoA a GRE packet was sent to (P15 check).
        gre.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        self._gre = gre

    def close(self) -> None:
        if self._gre is not None:
            self._gre.close()
            self._gre = None
        if self._tun_fd is not None:
            os.close(self._tun_fd)  # removes the non-persistent device
            self._tun_fd = None
        self._peers.clear()

    def add_peer(self, peer: TunnelPeer) -> None:
        self._peers[peer.hoa] = peer

    def remove_peer(self, hoa: bytes) -> None:
        self._peers.pop(hoa, None)

    def counters(self) -> TunnelCounters:
        return TunnelCounters(**self._counters.as_dict())

    def fds(self) -> list[int]:
        if self._tun_fd is None or self._gre is None:
            return []
        return [self._tun_fd, self._gre.fileno()]

    def handle_readable(self, fd: int) -> None:
        if fd == self._tun_fd:
            self._encapsulate_waiting()
        elif self._gre is not None and fd == self._gre.fileno():
            self._decapsulate_waiting()

    # ------------------------------------------------------------ uplink

    def _encapsulate_waiting(self) -> None:
        assert self._tun_fd is not None
        for _ in range(_BATCH):
            try:
                packet = os.read(self._tun_fd, _MAX_PACKET)
            except BlockingIOError:
                return
            self._encapsulate(packet)

    def _encapsulate(self, packet: bytes) -> None:
        assert self._gre is not None
        peer = self._peers.get(packet[8:24]) if len(packet) >= 40 and packet[0] >> 4 == 6 else None
        if peer is None:
            self._counters.dropped += 1
            return
        try:
            self._gre.sendmsg(
                [GRE_HEADER, packet],
                [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _pktinfo(peer.coa))],
                0,
                (str(ipaddress.IPv6Address(peer.hdar)), 0),
            )
        except OSError as error:
            if error.errno not in _TRANSIENT_SEND_ERRORS:
                raise
            self._counters.dropped += 1
            return
        self._counters.packets_out += 1
        self._counters.bytes_out += len(packet)

    # ------------------------------------------------------------ downlink

    def _decapsulate_waiting(self) -> None:
        assert self._gre is not None
        ancillary_size = socket.CMSG_SPACE(20)  # struct in6_pktinfo
        for _ in range(_BATCH):
            try:
                data, ancillary, _flags, sender = self._gre.recvmsg(_MAX_PACKET, ancillary_size)
            except BlockingIOError:
                return
            destination = next(
                (
                    cmsg_data[:16]
                    for level, kind, cmsg_data in ancillary
                    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO
                ),
                None,
            )
            source = ipaddress.IPv6Address(sender[0].split("%")[0]).packed
            self._decapsulate(data, source, destination)

    def _decapsulate(self, data: bytes, source: bytes, destination: bytes | None) -> None:
        assert self._tun_fd is not None
        inner = data[len(GRE_HEADER) :]
        peer = None
        if data[: len(GRE_HEADER)] == GRE_HEADER and len(inner) >= 40 and inner[0] >> 4 == 6:
            peer = self._peers.get(inner[24:40])
        if peer is None or peer.hdar != source or peer.coa != destination:
            self._counters.dropped += 1
            return
        try:
            os.write(self._tun_fd, inner)
        except OSError:  # device down or queue full: lost, as on a link
            self._counters.dropped += 1
            return
        self._counters.packets_in += 1
        self._counters.bytes_in += len(inner)
