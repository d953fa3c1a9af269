"""Network lab harness: namespaces, veth pairs and private Open vSwitch instances.

This module builds the small, real networks that fama-ryu's integration tests
(and the ``fama-lab`` command) run on: Linux network namespaces joined by veth
pairs, with an Open vSwitch userspace-datapath instance (ovsdb-server +
ovs-vswitchd) running *inside* a namespace of its own, with its own run, db
and log directories.  It uses only the standard library and the system tools
``ip``, ``sysctl``, ``ethtool``, ``tcpdump`` and the Open vSwitch programs.

Everything a :class:`Lab` creates is recorded, in creation order, both in
memory and in a JSON state file, and is removed in reverse order when the lab
closes, also after failures.  A separate process can remove exactly the same
things with :meth:`Lab.down` (for example after the creating process died).
Nothing is ever found or stopped by name pattern: namespaces are deleted by
their recorded name and processes are signalled by their recorded pid, and only
while that pid still belongs to the process that was started (same start time
in ``/proc/<pid>/stat``).

Facts this module relies on (see ``docs/lab-notes.md``):

* Only one userspace-datapath ovs-vswitchd can run per network namespace, so
  every :class:`OvsInstance` runs in a namespace of its own.
* The userspace datapath forwards partial checksums: TCP across it needs TX
  checksum offload off on the veths (:class:`VethPair` turns it off on both
  ends by default).
* A veth end attached to a switch must have IPv6 disabled, or the kernel of
  the switch's namespace sends DAD, router solicitations and MLD reports out
  of it behind the switch's back.

Typical use::

    with Lab() as lab:
        sw = lab.namespace("sw")
        host = lab.namespace("h1")
        lab.veth(sw, "br0-h1", host, "eth0", switch_side="a")
        ovs = lab.ovs(sw)
        ovs.add_netdev_bridge("br0")
        ovs.add_port("br0", "br0-h1", ofport=1)
        host.add_address("eth0", "2001:db8::10/64")
    # everything is gone here
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from fama_ryu.pcap import CapturedPacket, CaptureFormatError, read_capture

__all__ = [
    "DEFAULT_STATE_DIR",
    "IP_TOOLS",
    "OVS_SCHEMA",
    "OVS_TOOLS",
    "Lab",
    "LabError",
    "Namespace",
    "OvsInstance",
    "PacketCapture",
    "VethPair",
    "check_prerequisites",
    "link_local_from_mac",
    "process_alive",
    "process_start_time",
    "run_command",
    "stop_process",
    "wait_until",
]

T = TypeVar("T")

#: Where labs keep their JSON state file (``<lab_id>.json``) and work directory.
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "fama-lab"
#: Open vSwitch database schema installed by the Debian package.
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
#: Programs every lab needs.
IP_TOOLS = ("ip", "sysctl", "ethtool")
#: Programs a lab with an Open vSwitch instance needs.
OVS_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")
#: Linux limit for interface names (IFNAMSIZ - 1).
MAX_INTERFACE_NAME = 15
#: Unix socket paths longer than this do not fit ``sockaddr_un``.
_MAX_UNIX_SOCKET_PATH = 107
_NETNS_DIR = Path("/run/netns")
_STATE_VERSION = 1


class LabError(RuntimeError):
    """A lab could not be built, driven or torn down; the message says why."""


# --------------------------------------------------------------------------- helpers


def check_prerequisites(*, need_ovs: bool = True, search_path: str | None = None) -> None:
    """Raise :class:`LabError` unless this process can build labs.

    Checks: effective uid 0, the programs in :data:`IP_TOOLS` (and, with
    ``need_ovs``, :data:`OVS_TOOLS`, the OVS schema and ``/dev/net/tun``, which
    the userspace datapath needs for internal ports).  ``search_path`` replaces
    ``$PATH`` for the program look-up (``/usr/sbin`` and ``/sbin`` are always
    searched too, as a root shell would).
    """
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append(
            f"must run as root (effective uid is {os.geteuid()}): network namespaces, "
            "veths and Open vSwitch need CAP_NET_ADMIN"
        )
    if search_path is None:
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    else:
        path = search_path
    tools = IP_TOOLS + (OVS_TOOLS if need_ovs else ())
    missing = [tool for tool in tools if shutil.which(tool, path=path) is None]
    if missing:
        problems.append(
            "missing programs: " + ", ".join(missing) + " (Debian packages iproute2, procps, "
            "ethtool, openvswitch-switch; `make system-deps` installs them)"
        )
    if need_ovs:
        if not OVS_SCHEMA.is_file():
            problems.append(f"Open vSwitch schema {OVS_SCHEMA} not found (openvswitch-switch)")
        if not Path("/dev/net/tun").exists():
            problems.append("/dev/net/tun is missing: the OVS userspace datapath needs TUN/TAP")
    if problems:
        raise LabError("cannot build a network lab: " + "; ".join(problems))


def run_command(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout_s: float = 30.0,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) and return the completed process, text mode.

    With ``check`` a non-zero exit status raises :class:`LabError` carrying the
    command line and its stderr; so do a missing program and a timeout.
    """
    full_env = None if env is None else {**os.environ, **env}
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=full_env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"program not found: {argv[0]!r} (command: {_quote(argv)})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout_s:g} s: {_quote(argv)}") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"command failed (exit {result.returncode}): {_quote(argv)}: {detail}")
    return result


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    *,
    interval_s: float = 0.02,
    description: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Raises :class:`LabError` naming ``description`` when ``timeout_s`` passes
    first.  The predicate is always called at least once, and once more at
    the deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise LabError(f"timed out after {timeout_s:g} s waiting for {description}")
        time.sleep(min(interval_s, max(deadline - now, 0.0)))


def link_local_from_mac(mac: str) -> str:
    """The modified-EUI-64 link-local address (RFC 4291) Linux derives from ``mac``."""
    octets = [int(part, 16) for part in mac.split(":")]
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    groups = [f"{(eui[i] << 8) | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def _quote(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _check_interface_name(name: str) -> None:
    if not name or len(name) > MAX_INTERFACE_NAME or "/" in name or " " in name:
        raise LabError(
            f"invalid interface name {name!r}: 1-{MAX_INTERFACE_NAME} characters, no '/' or spaces"
        )


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` since boot in clock ticks (identifies it across pid reuse)."""
    stat = _process_stat(pid)
    return None if stat is None else stat[1]


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """True if ``pid`` runs (zombies do not count) and, if given, started at ``start_time``."""
    stat = _process_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start_time is None or stat[1] == start_time


def stop_process(
    pid: int,
    *,
    start_time: int | None,
    timeout_s: float = 5.0,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """Stop the process ``pid`` (SIGTERM, then SIGKILL after ``timeout_s``).

    ``popen`` (the process is our child): it is signalled through ``popen``
    and reaped; its pid cannot be reused before that.  Otherwise the process
    is signalled only if it still runs with the recorded ``start_time``; with
    no ``start_time`` its identity is unknown and nothing is signalled.
    """
    if popen is not None:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=timeout_s)
        return
    if start_time is not None and process_alive(pid, start_time):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            try:
                wait_until(
                    lambda: not process_alive(pid, start_time),
                    timeout_s,
                    description=f"pid {pid} to exit after {sig.name}",
                )
                break
            except LabError:
                if sig is signal.SIGKILL:
                    raise


# --------------------------------------------------------------------------- namespace


class Namespace:
    """A named Linux network namespace (``ip netns``) and commands run inside it."""

    def __init__(self, name: str, *, lab: Lab | None = None) -> None:
        if not name or "/" in name or len(name) > 64:
            raise LabError(f"invalid namespace name {name!r}")
        self.name = name
        self._lab = lab

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # lifecycle
    def exists(self) -> bool:
        """True if ``ip netns`` knows this namespace."""
        return (_NETNS_DIR / self.name).exists()

    def create(self, *, ipv6_dad: bool = False) -> Namespace:
        """Create the namespace and bring ``lo`` up.

        ``ipv6_dad=False`` (default) turns IPv6 duplicate address detection
        off for every interface created in it later, so addresses are usable
        at once (no 1-2 s tentative phase).
        """
        if self.exists():
            raise LabError(f"namespace {self.name} already exists; refusing to reuse it")
        run_command(["ip", "netns", "add", self.name])
        if self._lab is not None:
            self._lab._record({"kind": "namespace", "name": self.name})
        self.run(["ip", "link", "set", "lo", "up"])
        if not ipv6_dad:
            self.sysctl("net.ipv6.conf.all.accept_dad", 0)
            self.sysctl("net.ipv6.conf.default.accept_dad", 0)
        return self

    def pids(self) -> list[int]:
        """Pids of the processes running in this namespace (``ip netns pids``)."""
        if not self.exists():
            return []
        out = run_command(["ip", "netns", "pids", self.name]).stdout
        return [int(pid) for pid in out.split()]

    def delete(self) -> None:
        """Delete the namespace (a no-op if it is gone).

        Raises :class:`LabError` if processes still run inside it: they are
        listed, never killed here, and the namespace lingers until they exit.
        """
        if not self.exists():
            return
        leftover = [pid for pid in self.pids() if process_alive(pid)]
        run_command(["ip", "netns", "delete", self.name])
        if leftover:
            raise LabError(
                f"namespace {self.name} deleted but processes still ran in it: {leftover} "
                "(not started by this lab, or not stopped; not killed)"
            )

    # commands
    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout_s: float = 30.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait for it (see :func:`run_command`)."""
        return run_command(
            self.command(argv), check=check, timeout_s=timeout_s, input_text=input_text, env=env
        )

    def popen(
        self,
        argv: Sequence[str],
        *,
        stdout: Any = subprocess.DEVNULL,
        stderr: Any = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
        description: str = "",
        start_new_session: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the namespace without waiting.

        ``ip netns exec`` execs the program, so the returned pid is the
        program's.  When the namespace belongs to a lab the process is
        recorded (pid and start time) and stopped at teardown at the latest.
        ``start_new_session`` runs it in a session of its own, so a daemon
        meant to outlive this process gets no SIGINT/SIGHUP from its terminal.
        """
        full_env = None if env is None else {**os.environ, **env}
        try:
            proc = subprocess.Popen(
                self.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=full_env,
                start_new_session=start_new_session,
            )
        except FileNotFoundError as exc:
            raise LabError("program not found: 'ip' (iproute2)") from exc
        if self._lab is not None:
            self._lab._track_child(proc, self, list(argv), description)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, timeout_s: float = 5.0) -> int | None:
        """Stop a process started with :meth:`popen` (if still running) and reap it."""
        stop_process(proc.pid, start_time=None, timeout_s=timeout_s, popen=proc)
        if self._lab is not None:
            self._lab._forget_child(proc)
        return proc.poll()

    # configuration
    def sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl inside the namespace.  Use '/' separators when a part contains '.'."""
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def read_sysctl(self, key: str) -> str:
        """Value of a sysctl inside the namespace."""
        return self.run(["sysctl", "-n", key]).stdout.strip()

    def set_ipv6_forwarding(self, enabled: bool = True) -> None:
        """Turn IPv6 forwarding on or off for the whole namespace (a router or not)."""
        self.sysctl("net.ipv6.conf.all.forwarding", int(enabled))

    def set_link_up(self, device: str) -> None:
        """Bring ``device`` up."""
        self.run(["ip", "link", "set", "dev", device, "up"])

    def add_address(self, device: str, cidr: str, *, nodad: bool = True) -> None:
        """Add an address (``2001:db8::1/64``) to ``device``; ``nodad`` skips DAD for it."""
        family = "-6" if ":" in cidr else "-4"
        argv = ["ip", family, "addr", "add", cidr, "dev", device]
        if nodad and family == "-6":
            argv.append("nodad")
        self.run(argv)

    def add_route(
        self,
        prefix: str,
        *,
        via: str | None = None,
        device: str | None = None,
        source: str | None = None,
        onlink: bool = False,
    ) -> None:
        """Add a route (``prefix`` may be ``default``, IPv6 unless IPv4 addresses are given)."""
        family = "-4" if "." in (via or prefix) else "-6"
        argv = ["ip", family, "route", "add", prefix]
        if via is not None:
            argv += ["via", via]
        if device is not None:
            argv += ["dev", device]
        if source is not None:
            argv += ["src", source]
        if onlink:
            argv.append("onlink")
        self.run(argv)

    def add_neighbour(self, device: str, address: str, mac: str) -> None:
        """Install a permanent neighbour (ND/ARP) entry ``address -> mac`` on ``device``."""
        self.run(
            ["ip", "neigh", "replace", address, "lladdr", mac, "dev", device, "nud", "permanent"]
        )

    def mac_address(self, device: str) -> str:
        """MAC address of ``device``."""
        out = self.run(["ip", "-j", "link", "show", "dev", device]).stdout
        return str(json.loads(out)[0]["address"])

    def ipv6_addresses(self, device: str) -> list[dict[str, Any]]:
        """IPv6 addresses of ``device`` as ``ip -j`` reports them (``local``, ``prefixlen``...)."""
        out = self.run(["ip", "-j", "-6", "addr", "show", "dev", device]).stdout
        data = json.loads(out) if out.strip() else []
        return list(data[0].get("addr_info", [])) if data else []

    def capture(
        self, interface: str, bpf_filter: str, pcap_path: Path | str, *, timeout_s: float = 5.0
    ) -> PacketCapture:
        """Start a tcpdump capture on ``interface`` and return once it is listening."""
        return PacketCapture(self, interface, bpf_filter, Path(pcap_path)).start(timeout_s)


# --------------------------------------------------------------------------- capture


class PacketCapture:
    """A running ``tcpdump -w`` inside a namespace; a context manager that stops it.

    Packets are written to the file as they arrive (``-U --immediate-mode``),
    so :meth:`wait_for` can poll for them instead of sleeping.
    """

    def __init__(self, namespace: Namespace, interface: str, bpf_filter: str, path: Path) -> None:
        self.namespace = namespace
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.path = path
        self.log_path = path.with_suffix(path.suffix + ".log")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> PacketCapture:
        """Start tcpdump and wait until it reports that it is listening."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = self.namespace.popen(
                [
                    "tcpdump",
                    "-i",
                    self.interface,
                    "-n",
                    "-U",
                    "--immediate-mode",
                    "-s",
                    "0",
                    "-Z",
                    "root",
                    "-w",
                    str(self.path),
                    self.bpf_filter,
                ],
                stdout=log,
                stderr=log,
                description=f"tcpdump on {self.interface}",
            )

        def listening() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise LabError(f"tcpdump exited early: {self.log_path.read_text().strip()}")
            return "listening on" in self.log_path.read_text(errors="replace")

        wait_until(listening, timeout_s, description=f"tcpdump on {self.interface} to listen")
        return self

    def packets(self) -> list[CapturedPacket]:
        """Packets captured so far (a record still being written is left out)."""
        packets: list[CapturedPacket] = []
        try:
            with self.path.open("rb") as stream:
                for packet in read_capture(stream):
                    packets.append(packet)
        except (CaptureFormatError, FileNotFoundError):
            pass
        return packets

    def wait_for(
        self, predicate: Callable[[bytes], bool], count: int = 1, *, timeout_s: float = 5.0
    ) -> list[bytes]:
        """Wait until ``count`` captured frames satisfy ``predicate``; return those frames."""

        def matching() -> list[bytes]:
            frames = [p.data for p in self.packets() if predicate(p.data)]
            return frames if len(frames) >= count else []

        return wait_until(
            matching, timeout_s, description=f"{count} matching packet(s) on {self.interface}"
        )

    def stop(self) -> list[CapturedPacket]:
        """Stop tcpdump (SIGINT, so it flushes) and return every captured packet."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=5)
            self.namespace.stop(self._proc)
            self._proc = None
        return self.packets()

    def __enter__(self) -> PacketCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- veth


class VethPair:
    """A veth pair created directly inside two namespaces (never in the root one).

    ``switch_side`` ("a", "b", or "both" for a pair joining two switches)
    names the end(s) that will be attached to a switch: IPv6 is disabled on
    it before it comes up, so its namespace's kernel sends no DAD, RS or MLD
    through it.  TX checksum offload is off on both ends unless
    ``tx_checksum_offload`` is True (TCP through the OVS userspace datapath
    needs it off).  ``a_mac``/``b_mac`` give an end a fixed MAC address from
    its creation on (so its link-local address is derived from that MAC).
    """

    def __init__(
        self,
        a_ns: Namespace,
        a_name: str,
        b_ns: Namespace,
        b_name: str,
        *,
        switch_side: Literal["a", "b", "both"] | None = None,
        tx_checksum_offload: bool = False,
        a_mac: str | None = None,
        b_mac: str | None = None,
        lab: Lab | None = None,
    ) -> None:
        _check_interface_name(a_name)
        _check_interface_name(b_name)
        if switch_side not in ("a", "b", "both", None):
            raise LabError(f"switch_side must be 'a', 'b', 'both' or None, not {switch_side!r}")
        self.a_ns, self.a_name, self.b_ns, self.b_name = a_ns, a_name, b_ns, b_name
        self.switch_side = switch_side
        self.tx_checksum_offload = tx_checksum_offload
        self.a_mac, self.b_mac = a_mac, b_mac
        self._lab = lab

    def __repr__(self) -> str:
        return f"VethPair({self.a_ns.name}:{self.a_name} <-> {self.b_ns.name}:{self.b_name})"

    def ends(self) -> tuple[tuple[Namespace, str], tuple[Namespace, str]]:
        return (self.a_ns, self.a_name), (self.b_ns, self.b_name)

    def create(self) -> VethPair:
        """Create the pair, apply the settings, bring both ends up."""
        a_address = ["address", self.a_mac] if self.a_mac else []
        b_address = ["address", self.b_mac] if self.b_mac else []
        self.a_ns.run(
            [
                "ip",
                "link",
                "add",
                self.a_name,
                *a_address,
                "type",
                "veth",
                "peer",
                "name",
                self.b_name,
                *b_address,
                "netns",
                self.b_ns.name,
            ]
        )
        if self._lab is not None:
            self._lab._record(
                {
                    "kind": "veth",
                    "namespace": self.a_ns.name,
                    "name": self.a_name,
                    "peer_namespace": self.b_ns.name,
                    "peer_name": self.b_name,
                }
            )
        sides = {"a": (0,), "b": (1,), "both": (0, 1), None: ()}[self.switch_side]
        for index in sides:
            ns, name = self.ends()[index]
            ns.sysctl(f"net/ipv6/conf/{name}/disable_ipv6", 1)
        offload = "on" if self.tx_checksum_offload else "off"
        for ns, name in self.ends():
            ns.run(["ethtool", "-K", name, "tx", offload])
            ns.set_link_up(name)
        return self

    def delete(self) -> None:
        """Delete the pair (both ends go); a no-op if it or its namespace is gone."""
        if not self.a_ns.exists():
            return
        present = self.a_ns.run(["ip", "link", "show", "dev", self.a_name], check=False)
        if present.returncode == 0:
            self.a_ns.run(["ip", "link", "delete", "dev", self.a_name])


# --------------------------------------------------------------------------- OVS


class OvsInstance:
    """ovsdb-server + ovs-vswitchd (userspace datapath) running inside one namespace.

    Every file lives under ``workdir`` (``run/``, ``db/``, ``log/``); the
    daemons are started with ``--pidfile --detach`` and stopped by the pids
    in those pidfiles.  The control commands (:meth:`vsctl`, :meth:`ofctl`,
    :meth:`appctl`) reach the daemons through Unix sockets in ``run/``.
    """

    DAEMONS = ("ovsdb-server", "ovs-vswitchd")

    def __init__(
        self, namespace: Namespace, workdir: Path | str, *, lab: Lab | None = None
    ) -> None:
        self.namespace = namespace
        self.workdir = Path(workdir)
        self.rundir = self.workdir / "run"
        self.dbdir = self.workdir / "db"
        self.logdir = self.workdir / "log"
        self.db_path = self.dbdir / "conf.db"
        self.db_socket = self.rundir / "db.sock"
        self._lab = lab
        self._started: dict[str, tuple[int, int | None]] = {}
        longest = self.rundir / "ovs-vswitchd.4194304.ctl"
        if len(str(longest)) > _MAX_UNIX_SOCKET_PATH:
            raise LabError(f"OVS work directory path too long for Unix sockets: {self.workdir}")

    def __repr__(self) -> str:
        return f"OvsInstance(namespace={self.namespace.name!r}, workdir={str(self.workdir)!r})"

    @property
    def env(self) -> dict[str, str]:
        """Environment that points the OVS tools at this instance."""
        return {
            "OVS_RUNDIR": str(self.rundir),
            "OVS_DBDIR": str(self.dbdir),
            "OVS_LOGDIR": str(self.logdir),
            "OVS_SYSCONFDIR": str(self.workdir),
        }

    def pidfile(self, daemon: str) -> Path:
        return self.rundir / f"{daemon}.pid"

    def read_pid(self, daemon: str) -> int | None:
        """Pid from ``daemon``'s pidfile, or None if there is no (valid) pidfile."""
        try:
            return int(self.pidfile(daemon).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def start(self, *, timeout_s: float = 15.0) -> OvsInstance:
        """Create the database and start both daemons inside the namespace."""
        for directory in (self.rundir, self.dbdir, self.logdir):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists():
            run_command(["ovsdb-tool", "create", str(self.db_path), str(OVS_SCHEMA)])
        self.namespace.run(
            [
                "ovsdb-server",
                str(self.db_path),
                f"--remote=punix:{self.db_socket}",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--pidfile={self.pidfile('ovsdb-server')}",
                "--detach",
                "--no-chdir",
                f"--log-file={self.logdir / 'ovsdb-server.log'}",
            ],
            env=self.env,
            timeout_s=timeout_s,
        )
        self._register_daemon("ovsdb-server")
        self.vsctl("--no-wait", "init")
        self._start_vswitchd(timeout_s)
        return self

    def _start_vswitchd(self, timeout_s: float) -> None:
        self.namespace.run(
            [
                "ovs-vswitchd",
                f"unix:{self.db_socket}",
                f"--pidfile={self.pidfile('ovs-vswitchd')}",
                "--detach",
                "--no-chdir",
                f"--log-file={self.logdir / 'ovs-vswitchd.log'}",
            ],
            env=self.env,
            timeout_s=timeout_s,
        )
        self._register_daemon("ovs-vswitchd")
        wait_until(
            lambda: (
                run_command(self._appctl_argv("version"), env=self.env, check=False).returncode == 0
            ),
            timeout_s,
            description="ovs-vswitchd to answer ovs-appctl",
        )

    def restart_vswitchd(self, *, timeout_s: float = 15.0) -> float:
        """Stop this instance's ovs-vswitchd by pid and start it again (the database stays).

        The bridges come back from the database; their flows come back from
        the controller when the switches reconnect.  Returns the
        ``time.perf_counter()`` moment the new daemon was launched.
        """
        pid, start_time = self._started.pop("ovs-vswitchd")
        stop_process(pid, start_time=start_time, timeout_s=timeout_s)
        launched = time.perf_counter()
        self._start_vswitchd(timeout_s)
        return launched

    def _register_daemon(self, daemon: str) -> None:
        pid = wait_until(lambda: self.read_pid(daemon), 5.0, description=f"{daemon} pidfile")
        start_time = process_start_time(pid) if pid is not None else None
        if pid is None or start_time is None:
            raise LabError(
                f"{daemon} exited right after starting; see {self.logdir / (daemon + '.log')}"
            )
        self._started[daemon] = (pid, start_time)
        if self._lab is not None:
            self._lab._record(
                {
                    "kind": "process",
                    "pid": pid,
                    "start_time": start_time,
                    "namespace": self.namespace.name,
                    "description": daemon,
                    "pidfile": str(self.pidfile(daemon)),
                }
            )

    def is_running(self) -> bool:
        """True while both daemons this instance started are alive."""
        return len(self._started) == 2 and all(
            process_alive(pid, start) for pid, start in self._started.values()
        )

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop ovs-vswitchd, then ovsdb-server, by the pids from their pidfiles."""
        for daemon in reversed(self.DAEMONS):
            pid, start_time = self._started.get(daemon, (self.read_pid(daemon), None))
            if pid is None:
                continue
            if start_time is None:  # not started by this object: identity unknown, leave it
                continue
            stop_process(pid, start_time=start_time, timeout_s=timeout_s)
            if self._lab is not None:
                self._lab._forget_pid(pid)
        self._started.clear()

    # control tools
    def vsctl(self, *args: str, timeout_s: float = 15.0) -> str:
        """``ovs-vsctl`` against this instance's database; returns stdout."""
        argv = ["ovs-vsctl", f"--db=unix:{self.db_socket}", f"--timeout={int(timeout_s)}", *args]
        return run_command(argv, env=self.env, timeout_s=timeout_s + 5).stdout

    def ofctl(
        self, *args: str, protocols: str = "OpenFlow13", input_text: str | None = None
    ) -> str:
        """``ovs-ofctl -O <protocols>`` (bridges are found through ``run/<bridge>.mgmt``)."""
        argv = ["ovs-ofctl", "-O", protocols, *args]
        return run_command(argv, env=self.env, input_text=input_text).stdout

    def _appctl_argv(self, *args: str, target: str = "ovs-vswitchd") -> list[str]:
        # With OVS_RUNDIR set, "-t ovs-vswitchd" resolves run/ovs-vswitchd.pid -> .<pid>.ctl.
        return ["ovs-appctl", "-t", target, *args]

    def appctl(self, *args: str, target: str = "ovs-vswitchd") -> str:
        """``ovs-appctl -t <target>`` for this instance (``target`` = daemon name)."""
        return run_command(self._appctl_argv(*args, target=target), env=self.env).stdout

    # conveniences
    def add_netdev_bridge(
        self,
        bridge: str,
        *,
        hwaddr: str | None = None,
        protocols: str = "OpenFlow13",
        fail_mode: str = "secure",
    ) -> None:
        """Add a userspace-datapath bridge; its LOCAL port is a tap in the namespace."""
        _check_interface_name(bridge)
        settings = ["datapath_type=netdev", f"fail_mode={fail_mode}", f"protocols={protocols}"]
        if hwaddr is not None:
            settings.append(f"other_config:hwaddr={hwaddr}")
        self.vsctl("add-br", bridge, "--", "set", "bridge", bridge, *settings)

    def add_port(
        self,
        bridge: str,
        port: str,
        *,
        ofport: int | None = None,
        port_type: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        """Add ``port`` to ``bridge`` (a veth in the namespace, or ``port_type`` like gre)."""
        _check_interface_name(port)
        settings: list[str] = []
        if ofport is not None:
            settings.append(f"ofport_request={ofport}")
        if port_type is not None:
            settings.append(f"type={port_type}")
        settings += [f"options:{key}={value}" for key, value in (options or {}).items()]
        argv = ["add-port", bridge, port]
        if settings:
            argv += ["--", "set", "interface", port, *settings]
        self.vsctl(*argv)

    def add_flows(self, bridge: str, flows: Iterable[str]) -> None:
        """Add flows (``ovs-ofctl`` syntax, one per item) in one ``add-flows`` call."""
        text = "".join(flow.strip() + "\n" for flow in flows if flow.strip())
        self.ofctl("add-flows", bridge, "-", input_text=text)

    def dump_flows(self, bridge: str) -> list[str]:
        """Flow table of ``bridge`` as ``ovs-ofctl dump-flows`` lines (header dropped)."""
        out = self.ofctl("dump-flows", bridge)
        return [line.strip() for line in out.splitlines() if "actions=" in line]


# --------------------------------------------------------------------------- lab


class Lab:
    """A set of namespaces, veths, OVS instances and processes, torn down as one.

    Use as a context manager.  Names are ``<lab_id>-<role>``, with a random
    ``lab_id`` (``fl`` + 6 hex digits) unless one is given.  Every created
    resource is appended to :attr:`state_file` (JSON) right after it exists,
    so :meth:`down` in another process can remove exactly those resources.
    """

    def __init__(
        self,
        *,
        lab_id: str | None = None,
        state_dir: Path | str | None = None,
        need_ovs: bool = True,
        keep_workdir: bool = False,
    ) -> None:
        self.lab_id = lab_id or f"fl{secrets.token_hex(3)}"
        if not self.lab_id.replace("-", "").isalnum() or len(self.lab_id) > 24:
            raise LabError(f"invalid lab id {self.lab_id!r}")
        self.state_dir = Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR
        self.state_file = self.state_dir / f"{self.lab_id}.json"
        self.workdir = self.state_dir / self.lab_id
        self.need_ovs = need_ovs
        self.keep_workdir = keep_workdir
        self._resources: list[dict[str, Any]] = []
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return f"Lab({self.lab_id!r}, resources={len(self._resources)})"

    # context manager
    def __enter__(self) -> Lab:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except LabError as teardown_error:
            if exc is None:
                raise
            exc.add_note(f"lab teardown also failed: {teardown_error}")

    def open(self) -> Lab:
        """Check prerequisites and create the work directory and state file."""
        if self._opened:
            return self
        check_prerequisites(need_ovs=self.need_ovs)
        if self.state_file.exists() or self.workdir.exists():
            raise LabError(f"lab {self.lab_id} already exists in {self.state_dir}")
        self.workdir.mkdir(mode=0o700, parents=True)
        self._opened = True
        self._save()
        return self

    # building blocks
    def name(self, role: str) -> str:
        """Full name for a namespace of this lab: ``<lab_id>-<role>``."""
        return f"{self.lab_id}-{role}"

    def namespace(self, role: str, *, ipv6_dad: bool = False) -> Namespace:
        """Create the namespace ``<lab_id>-<role>``."""
        self._require_open()
        return Namespace(self.name(role), lab=self).create(ipv6_dad=ipv6_dad)

    def veth(
        self,
        a_ns: Namespace,
        a_name: str,
        b_ns: Namespace,
        b_name: str,
        *,
        switch_side: Literal["a", "b", "both"] | None = None,
        tx_checksum_offload: bool = False,
        a_mac: str | None = None,
        b_mac: str | None = None,
    ) -> VethPair:
        """Create a veth pair between two of this lab's namespaces (see :class:`VethPair`)."""
        self._require_open()
        return VethPair(
            a_ns,
            a_name,
            b_ns,
            b_name,
            switch_side=switch_side,
            tx_checksum_offload=tx_checksum_offload,
            a_mac=a_mac,
            b_mac=b_mac,
            lab=self,
        ).create()

    def ovs(self, namespace: Namespace, *, name: str | None = None) -> OvsInstance:
        """Start an OVS instance in ``namespace`` (one per namespace).

        Its files go to ``<workdir>/<name>`` (default ``ovs-<role>``); keep
        ``state_dir`` short, Unix socket paths are limited to 107 bytes.
        """
        self._require_open()
        role = namespace.name.removeprefix(f"{self.lab_id}-")
        workdir = self.workdir / (name or f"ovs-{role}")
        return OvsInstance(namespace, workdir, lab=self).start()

    def path(self, name: str) -> Path:
        """A path inside the lab's work directory (for captures, scripts, logs)."""
        return self.workdir / name

    # teardown
    def close(self) -> None:
        """Tear down everything recorded, newest first; raise :class:`LabError` on leftovers.

        Every step is attempted even if earlier ones fail.  The state file and
        work directory are removed only when nothing is left (the work
        directory is kept with ``keep_workdir``).  Calling it again is harmless.
        """
        if not self._opened or self._closed:
            return
        errors = _teardown(self._resources, self._children)
        self._children.clear()
        leftovers = _leftovers(self._resources)
        if not leftovers:
            self._resources.clear()
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
            _remove_dir_if_empty(self.state_dir)
            self._closed = True
        else:
            self._save()
        if errors or leftovers:
            raise LabError(
                f"teardown of lab {self.lab_id} incomplete: "
                + "; ".join(errors + [f"still present: {item}" for item in leftovers])
                + f" (state kept in {self.state_file})" * bool(leftovers)
            )

    def leftovers(self) -> list[str]:
        """What of this lab still exists (empty after a complete teardown)."""
        return _leftovers(self._resources)

    def recorded(self) -> list[dict[str, Any]]:
        """Copy of the resource records, in creation order."""
        return [dict(r) for r in self._resources]

    @classmethod
    def down(cls, lab: str | Path, *, state_dir: Path | str | None = None) -> list[dict[str, Any]]:
        """Tear down a lab from its state file (``lab`` = lab id or state file path).

        Removes exactly the recorded resources, newest first, then the state
        file and work directory.  Returns the records it processed; raises
        :class:`LabError` if something could not be removed.
        """
        state_file = Path(lab)
        if state_file.suffix != ".json":
            base = Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR
            state_file = base / f"{lab}.json"
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError as exc:
            raise LabError(f"no lab state file {state_file}") from exc
        if state.get("version") != _STATE_VERSION:
            raise LabError(f"unknown lab state version in {state_file}: {state.get('version')!r}")
        resources: list[dict[str, Any]] = list(state["resources"])
        errors = _teardown(resources, {})
        leftovers = _leftovers(resources)
        if errors or leftovers:
            raise LabError(
                f"teardown of lab {state['lab_id']} incomplete: "
                + "; ".join(errors + [f"still present: {item}" for item in leftovers])
            )
        shutil.rmtree(state["workdir"], ignore_errors=True)
        state_file.unlink(missing_ok=True)
        _remove_dir_if_empty(state_file.parent)
        return resources

    @staticmethod
    def state_files(state_dir: Path | str | None = None) -> list[Path]:
        """State files of labs not (completely) torn down in ``state_dir``."""
        base = Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR
        return sorted(base.glob("*.json")) if base.is_dir() else []

    # bookkeeping (used by Namespace, VethPair, OvsInstance)
    def _require_open(self) -> None:
        if not self._opened or self._closed:
            raise LabError(f"lab {self.lab_id} is not open (use it as a context manager)")

    def _record(self, resource: dict[str, Any]) -> None:
        self._resources.append(resource)
        self._save()

    def _track_child(
        self, proc: subprocess.Popen[bytes], ns: Namespace, argv: list[str], description: str
    ) -> None:
        self._children[proc.pid] = proc
        self._record(
            {
                "kind": "process",
                "pid": proc.pid,
                "start_time": process_start_time(proc.pid),
                "namespace": ns.name,
                "description": description or " ".join(argv)[:200],
            }
        )

    def _forget_child(self, proc: subprocess.Popen[bytes]) -> None:
        self._children.pop(proc.pid, None)
        self._forget_pid(proc.pid)

    def _forget_pid(self, pid: int) -> None:
        before = len(self._resources)
        self._resources = [
            r for r in self._resources if not (r["kind"] == "process" and r["pid"] == pid)
        ]
        if len(self._resources) != before and not self._closed:
            self._save()

    def _save(self) -> None:
        if not self._opened:
            return
        state = {
            "version": _STATE_VERSION,
            "lab_id": self.lab_id,
            "workdir": str(self.workdir),
            "created_by_pid": os.getpid(),
            "resources": self._resources,
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.state_file)


def _teardown(
    resources: list[dict[str, Any]], children: Mapping[int, subprocess.Popen[bytes]]
) -> list[str]:
    """Remove ``resources`` newest first; return one message per failed step."""
    errors: list[str] = []
    for resource in reversed(resources):
        try:
            kind = resource["kind"]
            if kind == "process":
                stop_process(
                    resource["pid"],
                    start_time=resource["start_time"],
                    popen=children.get(resource["pid"]),
                )
            elif kind == "veth":
                VethPair(
                    Namespace(resource["namespace"]),
                    resource["name"],
                    Namespace(resource["peer_namespace"]),
                    resource["peer_name"],
                ).delete()
            elif kind == "namespace":
                Namespace(resource["name"]).delete()
            else:
                errors.append(f"unknown resource kind {kind!r}")
        except (LabError, OSError, KeyError) as exc:
            errors.append(f"{resource.get('kind')} {_describe(resource)}: {exc}")
    return errors


def _leftovers(resources: Iterable[dict[str, Any]]) -> list[str]:
    left: list[str] = []
    for resource in resources:
        start_time = resource.get("start_time")
        if (
            resource["kind"] == "process"
            and start_time is not None
            and process_alive(resource["pid"], start_time)
        ):
            left.append(f"process {_describe(resource)}")
        elif resource["kind"] == "namespace" and Namespace(resource["name"]).exists():
            left.append(f"namespace {resource['name']}")
    return left


def _remove_dir_if_empty(directory: Path) -> None:
    """Remove ``directory`` if nothing is in it (another lab may still use it)."""
    with contextlib.suppress(OSError):
        directory.rmdir()


def _describe(resource: Mapping[str, Any]) -> str:
    if resource.get("kind") == "process":
        return f"pid {resource.get('pid')} ({resource.get('description')})"
    if resource.get("kind") == "veth":
        return f"{resource.get('namespace')}:{resource.get('name')}"
    return str(resource.get("name"))
