"""``fama-lab``: a complete FAMA lab on real Open vSwitch, the real controller and namespaces.

One command brings up a FAMA domain (draft-bernardos-dmm-cmip-06) on this
machine, drives it and removes it again::

    fama-lab up [--dars N] [--mns M] [--cns K] [--config FILE] [--no-agent] [--lab-id ID]
    fama-lab exec NODE -- CMD ...      # run CMD in NODE's namespace (stdin/stdout/exit code)
    fama-lab move MN DAR               # handover: re-plug MN into DAR's access link
    fama-lab status                    # JSON: nodes, attachments, controller, bindings, agents
    fama-lab down                      # remove exactly what `up` created (idempotent)

Topology (``<id>`` is the lab id, default ``fama``; N, K in hex in addresses)::

      cn1 .. cnK   <id>-cnK: eth0 2001:db8:ff00:K::10/64, default via ::1
         |
      core-cnK     2001:db8:ff00:K::1/64
     +--------+
     |  core  |    <id>-core: Linux router (forwarding=1); on core-dN: the DAR's
     +--------+    core next hop 2001:db8:N::fffe/128 (inside A_d's /64) with
      |      |     MAC 02:00:00:00:fe:NN, route prefix via the DAR's link-local
    core-d1 .. core-dN
      |      |
  ====|======|=============== <id>-sw: ONE ovsdb-server/ovs-vswitchd + the controller
    d1-core  dN-core  ofport 1
    [dar1] .. [darN]  OVS netdev bridges, OF1.3, fail secure, dpid N, hwaddr =
      |        |      router MAC 02:00:00:00:d0:NN; LOCAL tap darN holds A_d
    d1-acc   dN-acc   2001:db8:N::1/64; d1-gre: flow-based GRE (ofport 10,
      |        |      egress_pkt_mark=N); ofport 2 = access
    ap1-d1   apN-dN
    [ap1 ] .. [apN ]  access links: Linux bridges (the "radio cells")
      |
    mn1-ap .. mnM-ap  switch-side ends of the MNs' links (re-plugged by `move`)
  ====|=====================
     eth0             <id>-mnM: MAC 02:00:00:01:00:MM, link-local only
                      (accept_ra=0: the MN agent configures addresses)

Decisions (see ``docs/lab.md``): all DAR bridges share one vswitchd in the
``sw`` namespace, and each DAR's tunnel gets its own Open vSwitch route
(``ovs/route/add ::/0 darN 2001:db8:N::fffe pkt_mark=N`` matching the GRE
port's ``egress_pkt_mark=N``) plus ``tnl/neigh/set``, so DAR1's tunnel to a
care-of address in DAR2's prefix leaves DAR1 with outer source A_d1.  The
controller (``fama-controller fama_ryu.app``) runs in the same namespace,
listening on 127.0.0.1 (OpenFlow 6653, REST 8080), its store in the lab's
work directory.  Everything is created through :mod:`fama_ryu.netlab`, which
records it in ``/tmp/fama-lab/<id>.json``; ``down`` removes exactly that.

This module never imports Ryu; ``fama_ryu.config`` is imported only for
``--config``.  Exit codes: 0 success, 1 failure (also: no such lab),
2 environment or usage (not root, no Open vSwitch, bad arguments or domain
file), 3 ``up`` while a lab with that id exists.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fama_ryu.netlab import (
    DEFAULT_STATE_DIR,
    Lab,
    LabError,
    Namespace,
    OvsInstance,
    check_prerequisites,
    link_local_from_mac,
    process_alive,
    process_start_time,
    run_command,
    wait_until,
)

__all__ = [
    "DEFAULT_LAB_ID",
    "DarPlan",
    "LabEnvironmentError",
    "LabExistsError",
    "LabPlan",
    "LabUsageError",
    "dars_from_domain_file",
    "down",
    "load_lab",
    "main",
    "move",
    "node_namespace",
    "sample_dars",
    "status",
    "up",
]

#: Lab id used when neither ``--lab-id`` nor ``$FAMA_LAB_ID`` is given.
DEFAULT_LAB_ID = "fama"
LAB_ID_ENV = "FAMA_LAB_ID"
#: Path of the MN agent program to use instead of ``fama-mn`` next to the interpreter.
AGENT_PROGRAM_ENV = "FAMA_LAB_AGENT"
OF_PORT = 6653
REST_PORT = 8080
REST_URL = f"http://127.0.0.1:{REST_PORT}"
CORE_OFPORT, ACCESS_OFPORT, GRE_OFPORT = 1, 2, 10
MAX_DARS = 254  # one byte of the router MAC / core MAC
MAX_HOSTS = 254  # MNs and CNs: one byte of their MACs
#: Unsolicited RA interval of the generated domain ([min, max] seconds, RFC 4861 §6.2.1).
LAB_RA_INTERVAL_S = (10, 30)
#: ``ovs-appctl tnl/neigh/aging`` of the lab's vswitchd (OVS 3.1 accepts at most 3600 s).
TUNNEL_NEIGHBOUR_AGING_S = 3600
#: How long ``move`` keeps the MN's link down (a radio handover takes some time too;
#: ``fama-mn`` learns of both edges from the kernel's link events).
DEFAULT_MOVE_DOWN_MS = 200.0
MN_INTERFACE = "eth0"
CN_INTERFACE = "eth0"
META_FILE = "fama-lab.json"
CONTROLLER_PROGRAM = "fama-controller"
AGENT_PROGRAM = "fama-mn"

EXIT_OK, EXIT_FAILURE, EXIT_ENVIRONMENT, EXIT_EXISTS = 0, 1, 2, 3

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class LabUsageError(Exception):
    """Bad arguments or domain file (exit code 2)."""


class LabEnvironmentError(LabUsageError):
    """This machine or user cannot run a lab: not root, no Open vSwitch... (exit code 2)."""


class LabExistsError(Exception):
    """``up`` for a lab id that is already up (exit code 3)."""


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class DarPlan:
    """One DAR of the lab: its OVS bridge, addresses and the core's side of its link."""

    index: int  # 1-based position in the domain: names ap<index>, core-d<index>, pkt_mark
    name: str  # domain name = OVS bridge = LOCAL tap, e.g. "dar1"
    dpid: int
    access_port: str  # e.g. "d1-acc"
    core_port: str  # e.g. "d1-core"
    gre_port: str  # e.g. "d1-gre"
    router_mac: str  # bridge hwaddr
    prefixes: tuple[str, ...]  # access prefixes, the anchor's first
    anchor: str  # A_d, on the LOCAL tap
    link_local: str  # the DAR's link-local (RA source; the core's next hop to the prefixes)
    core_next_hop: str  # the domain's core_next_hop.address (on the core's link interface)
    core_mac: str  # the domain's core_next_hop.mac = MAC of the core's link interface
    tunnel_next_hop: str  # the core's address inside A_d's /64 (OVS outer source = A_d)
    ra_interval_s: tuple[float, float] | None = None  # only for a generated domain

    @property
    def prefix(self) -> str:
        return self.prefixes[0]

    @property
    def dpid_text(self) -> str:
        return f"{self.dpid:016x}"

    @property
    def pkt_mark(self) -> int:
        return self.index

    @property
    def access_link(self) -> str:
        return f"ap{self.index}"

    @property
    def access_link_port(self) -> str:
        """The access link's end of the veth to the DAR's access port."""
        return f"ap{self.index}-d{self.index}"

    @property
    def core_interface(self) -> str:
        return f"core-d{self.index}"


@dataclass(frozen=True)
class LabPlan:
    """What ``up`` builds."""

    lab_id: str
    dars: tuple[DarPlan, ...]
    n_mns: int
    n_cns: int
    agent: bool
    domain_file: Path | None = None  # --config FILE (else a generated one)


def _tunnel_next_hop(prefix: str) -> str:
    return str(ipaddress.IPv6Network(prefix)[0xFFFE])


def sample_dars(n_dars: int) -> list[DarPlan]:
    """The lab's built-in domain: DAR N = dar<N>, dpid N, prefix 2001:db8:N::/64 (N hex)."""
    if not 1 <= n_dars <= MAX_DARS:
        raise LabUsageError(f"--dars must be 1..{MAX_DARS}, not {n_dars}")
    dars = []
    for n in range(1, n_dars + 1):
        prefix = f"2001:db8:{n:x}::/64"
        router_mac = f"02:00:00:00:d0:{n:02x}"
        next_hop = _tunnel_next_hop(prefix)
        dars.append(
            DarPlan(
                index=n,
                name=f"dar{n}",
                dpid=n,
                access_port=f"d{n}-acc",
                core_port=f"d{n}-core",
                gre_port=f"d{n}-gre",
                router_mac=router_mac,
                prefixes=(prefix,),
                anchor=f"2001:db8:{n:x}::1",
                link_local=_link_local(router_mac),
                core_next_hop=next_hop,
                core_mac=f"02:00:00:00:fe:{n:02x}",
                tunnel_next_hop=next_hop,
                ra_interval_s=(float(LAB_RA_INTERVAL_S[0]), float(LAB_RA_INTERVAL_S[1])),
            )
        )
    return dars


def dars_from_domain_file(path: Path) -> list[DarPlan]:
    """DarPlans from a domain file, validated by :func:`fama_ryu.config.load_domain`.

    The lab needs port *names* (it creates the ports), one access port per
    DAR and DAR names usable as interface names (the bridge is named after
    the DAR).
    """
    from fama_ryu.config import ConfigError, load_domain  # oslo.config: only when needed

    try:
        domain = load_domain(path)
    except ConfigError as exc:
        raise LabUsageError(f"invalid domain file:\n{exc}") from None
    if len(domain.dars) > MAX_DARS:
        raise LabUsageError(f"{path}: at most {MAX_DARS} DARs in a lab")
    dars: list[DarPlan] = []
    for index, dar in enumerate(domain.dars, start=1):
        ports = (*dar.access_ports, dar.core_port, dar.gre_port)
        if len(dar.access_ports) != 1:
            raise LabUsageError(f"{path}: {dar.name}: the lab supports exactly one access port")
        if not all(isinstance(port, str) and _IFNAME.match(port) for port in ports):
            raise LabUsageError(
                f"{path}: {dar.name}: the lab creates the ports, so they must be names "
                f"(1..15 of [A-Za-z0-9_.-]), got {ports}"
            )
        if not _IFNAME.match(dar.name) or dar.name == "lo":
            raise LabUsageError(
                f"{path}: DAR name {dar.name!r} cannot name its OVS bridge "
                "(1..15 of [A-Za-z0-9_.-])"
            )
        prefixes = tuple(str(prefix) for prefix in dar.access_prefixes)
        dars.append(
            DarPlan(
                index=index,
                name=dar.name,
                dpid=dar.dpid,
                access_port=str(dar.access_ports[0]),
                core_port=str(dar.core_port),
                gre_port=str(dar.gre_port),
                router_mac=dar.router_mac,
                prefixes=prefixes,
                anchor=str(dar.anchor_address),
                link_local=str(dar.link_local),
                core_next_hop=str(dar.core_next_hop.address),
                core_mac=dar.core_next_hop.mac,
                tunnel_next_hop=_tunnel_next_hop(prefixes[0]),
            )
        )
    names = [n for d in dars for n in (d.name, d.access_port, d.core_port, d.gre_port)]
    names += [n for d in dars for n in (d.access_link, d.access_link_port)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LabUsageError(f"{path}: interface names used twice in the lab: {duplicates}")
    return dars


def domain_yaml(dars: Sequence[DarPlan]) -> str:
    """The domain file the controller of a generated lab reads."""
    lines = ["# Generated by fama-lab: the DARs of this lab.", "dars:"]
    for dar in dars:
        lines += [
            f"  - name: {dar.name}",
            f'    dpid: "{dar.dpid_text}"',
            f"    access_ports: [{dar.access_port}]",
            f"    core_port: {dar.core_port}",
            f"    gre_port: {dar.gre_port}",
            f'    router_mac: "{dar.router_mac}"',
            "    access_prefixes: [" + ", ".join(f'"{p}"' for p in dar.prefixes) + "]",
            f'    anchor_address: "{dar.anchor}"',
            f'    link_local: "{dar.link_local}"',
            "    core_next_hop:",
            f'      address: "{dar.core_next_hop}"',
            f'      mac: "{dar.core_mac}"',
        ]
        if dar.ra_interval_s is not None:
            low, high = dar.ra_interval_s
            lines.append(f"    ra_interval_s: [{low:g}, {high:g}]")
    return "\n".join(lines) + "\n"


def controller_conf(domain_file: Path, store: Path) -> str:
    """The oslo.config file of the lab's controller (everything on loopback)."""
    return (
        "[DEFAULT]\n"
        "ofp_listen_host = 127.0.0.1\n"
        f"ofp_tcp_listen_port = {OF_PORT}\n"
        "wsapi_host = 127.0.0.1\n"
        f"wsapi_port = {REST_PORT}\n"
        "\n[fama]\n"
        f"domain_file = {domain_file}\n"
        f"store_path = {store}\n"
        "metrics_port = 0\n"
    )


def _cn_addresses(k: int) -> tuple[str, str, str]:
    """(CN address, its /64, the core's address on it) of CN ``k``."""
    prefix = f"2001:db8:ff00:{k:x}::"
    return f"{prefix}10", f"{prefix}/64", f"{prefix}1"


def _mn_mac(k: int) -> str:
    return f"02:00:00:01:00:{k:02x}"


def _link_local(mac: str) -> str:
    """The EUI-64 link-local address of ``mac``, in canonical text form."""
    return str(ipaddress.IPv6Address(link_local_from_mac(mac)))


# --------------------------------------------------------------------------- helpers


def program_next_to_python(name: str) -> str | None:
    """``name`` in the directory of the running interpreter (the venv's bin), if there."""
    return shutil.which(name, path=str(Path(sys.executable).parent))


def find_agent_program() -> str | None:
    """The MN agent: ``$FAMA_LAB_AGENT`` if set, else ``fama-mn`` next to the interpreter."""
    override = os.environ.get(AGENT_PROGRAM_ENV)
    if override:
        return shutil.which(override)
    return program_next_to_python(AGENT_PROGRAM)


def resolve_lab_id(given: str | None) -> str:
    """``--lab-id``, else ``$FAMA_LAB_ID``, else :data:`DEFAULT_LAB_ID`."""
    lab_id = given or os.environ.get(LAB_ID_ENV) or DEFAULT_LAB_ID
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,11}", lab_id):
        raise LabUsageError(
            f"invalid lab id {lab_id!r}: 1..12 letters, digits or '-', starting with a letter "
            "or digit (namespace names are <id>-<node>)"
        )
    return lab_id


def _system_path() -> str:
    """``$PATH`` plus the sbin directories a root shell searches."""
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _state_dir() -> Path:
    return DEFAULT_STATE_DIR


def _meta_path(lab_id: str) -> Path:
    return _state_dir() / lab_id / META_FILE


def _state_file(lab_id: str) -> Path:
    return _state_dir() / f"{lab_id}.json"


def _ip_batch(ns: Namespace, commands: Sequence[str]) -> None:
    """Run several ``ip`` commands in ``ns`` with one process (stops at the first error)."""
    if commands:
        ns.run(["ip", "-batch", "-"], input_text="\n".join(commands) + "\n")


def _sysctls(ns: Namespace, settings: dict[str, int]) -> None:
    """Set several sysctls in ``ns`` at once ('/'-separated keys for names with dots)."""
    if settings:
        ns.run(["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in settings.items())])


def _rest_get(ns: Namespace, path: str, timeout_s: float = 3.0) -> Any:
    """GET ``REST_URL + path`` from inside ``ns``; the decoded JSON, or None if unreachable."""
    url = REST_URL + path
    if shutil.which("curl"):
        argv = ["curl", "-sf", "--max-time", f"{timeout_s:g}", url]
    else:
        script = (
            "import sys, urllib.request;"
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"
            ".read().decode())"
        )
        argv = [sys.executable, "-c", script, url, str(timeout_s)]
    result = ns.run(argv, check=False, timeout_s=timeout_s + 5)
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return None


def _listening(ns: Namespace, port: int) -> bool:
    out = ns.run(["ss", "-Hltn", f"( sport = :{port} )"], check=False).stdout
    return bool(out.strip())


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


class _Progress:
    """Step timings (always) and, with ``--verbose``, step messages on stderr."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.start = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str, message: str = "") -> None:
        elapsed = round(time.monotonic() - self.start, 3)
        self.marks[name] = elapsed
        if self.verbose:
            print(f"fama-lab: {elapsed:6.2f} s  {message or name}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- up


def _add_tunnel_route(ovs: OvsInstance, dar: DarPlan, timeout_s: float = 10.0) -> None:
    """DAR ``dar``'s own Open vSwitch route for its tunnels, and its next hop's MAC.

    ``::/0`` via the core's address inside A_d's /64, for packets marked with
    the GRE port's ``egress_pkt_mark``: OVS then takes A_d as the outer source
    and sends through this DAR's bridge, whatever the destination (lab notes
    #1 and PLATFORM.md's multi-DAR pitfall).  ``tnl/neigh/set`` spares the
    first tunnelled packet the next hop's resolution.
    """
    route = ["ovs/route/add", "::/0", dar.name, dar.tunnel_next_hop, f"pkt_mark={dar.pkt_mark}"]

    def added() -> bool:
        # OVS accepts the route once it has seen A_d on the tap (netlink, asynchronous).
        argv = ["ovs-appctl", "-t", "ovs-vswitchd", *route]
        return run_command(argv, env=ovs.env, check=False).returncode == 0

    wait_until(added, timeout_s, interval_s=0.05, description=f"the tunnel route of {dar.name}")
    ovs.appctl("tnl/neigh/set", dar.name, dar.tunnel_next_hop, dar.core_mac)
    # Any destination: with the mark, only this route matches (OVS routes match the mark).
    out = ovs.appctl("ovs/route/lookup", "2001:db8:ffff::1", f"pkt_mark={dar.pkt_mark}")
    if f"src {dar.anchor}" not in out or f"dev {dar.name}" not in out:
        raise LabError(f"{dar.name}: unexpected Open vSwitch tunnel route: {out.strip()}")


def up(plan: LabPlan, *, verbose: bool = False) -> dict[str, Any]:
    """Build the lab of ``plan`` and return its description (the JSON ``up`` prints).

    Raises :class:`LabExistsError` if the lab id is taken, :class:`LabError`
    if something fails (everything created so far is removed again).
    """
    controller_program = program_next_to_python(CONTROLLER_PROGRAM)
    if controller_program is None:
        raise LabEnvironmentError(
            f"{CONTROLLER_PROGRAM} not found next to {sys.executable}: install fama-ryu "
            "in this venv (`make venv`)"
        )
    agent_program = find_agent_program() if plan.agent else None
    try:
        check_prerequisites(need_ovs=True)
    except LabError as exc:
        raise LabEnvironmentError(str(exc)) from None
    if shutil.which("ss", path=_system_path()) is None:
        raise LabEnvironmentError("cannot build a network lab: missing program ss (iproute2)")
    if _state_file(plan.lab_id).exists() or (_state_dir() / plan.lab_id).exists():
        raise LabExistsError(
            f"lab {plan.lab_id!r} is already up (state {_state_file(plan.lab_id)}); "
            f"`fama-lab down --lab-id {plan.lab_id}` removes it, or choose another --lab-id"
        )
    lab = Lab(lab_id=plan.lab_id)
    try:
        lab.open()
    except FileExistsError:  # another `up` with this id created it meanwhile
        raise LabExistsError(f"lab {plan.lab_id!r} is being created by another process") from None
    except LabError as exc:
        if "already exists" in str(exc):
            raise LabExistsError(str(exc)) from None
        raise
    builder = _Builder(lab, plan, controller_program, agent_program, _Progress(verbose))
    try:
        return builder.build()
    except BaseException as exc:
        log = builder.controller_log
        if log is not None and log.exists():
            exc.add_note(f"controller log ({log}), last lines:\n{_tail(log, 3000)}")
        try:
            lab.close()
        except LabError as teardown_error:
            exc.add_note(f"teardown after the failure was incomplete too: {teardown_error}")
        raise


class _Builder:
    """Builds one lab; every resource goes through :class:`Lab` (recorded at once)."""

    def __init__(
        self,
        lab: Lab,
        plan: LabPlan,
        controller_program: str,
        agent_program: str | None,
        progress: _Progress,
    ) -> None:
        self.lab = lab
        self.plan = plan
        self.controller_program = controller_program
        self.agent_program = agent_program
        self.progress = progress
        self.controller_log: Path | None = None
        self.sw: Namespace
        self.core: Namespace
        self.ovs: OvsInstance

    def build(self) -> dict[str, Any]:
        lab, plan, progress = self.lab, self.plan, self.progress
        self.sw = lab.namespace("sw")
        self.ovs = lab.ovs(self.sw)
        progress.mark("ovs", "Open vSwitch started")
        controller = self._start_controller()
        progress.mark("controller_started", f"controller started (pid {controller.pid})")
        self.core = lab.namespace("core")
        self.core.set_ipv6_forwarding(True)
        self._build_dars()
        progress.mark("dars", f"{len(plan.dars)} DAR bridges configured")
        cns = self._build_cns()
        mns = self._build_mns()
        progress.mark("hosts", f"{plan.n_mns} MNs, {plan.n_cns} CNs")
        self._connect_dars(controller)
        progress.mark("connected", "every DAR connected to the controller")
        agents = self._start_agents() if self.agent_program else {}
        if plan.agent and not self.agent_program:
            print(
                f"fama-lab: warning: {AGENT_PROGRAM} not found next to {sys.executable}; "
                "MNs run without an agent",
                file=sys.stderr,
            )
        internal: dict[str, Any] = {
            "controller_start_time": process_start_time(controller.pid),
            "agents": {},
        }
        for name, agent in agents.items():
            internal["agents"][name] = {"pid": agent["pid"], "start_time": agent["start_time"]}
            mns[name]["agent"] = {k: v for k, v in agent.items() if k != "start_time"}
        progress.mark("total", "lab up")
        doc = self._document(controller, cns, mns)
        meta = copy.deepcopy(doc)
        meta["internal"] = internal
        _meta_path(plan.lab_id).write_text(json.dumps(meta, indent=1) + "\n")
        return doc

    # controller
    def _start_controller(self) -> subprocess.Popen[bytes]:
        workdir = self.lab.workdir
        if self.plan.domain_file is not None:
            domain = self.plan.domain_file.resolve()
        else:
            domain = workdir / "domain.yaml"
            domain.write_text(domain_yaml(self.plan.dars))
        conf = workdir / "fama.conf"
        conf.write_text(controller_conf(domain, workdir / "bindings.sqlite"))
        self.controller_log = workdir / "controller.log"
        with self.controller_log.open("wb") as log:
            return self.sw.popen(
                [self.controller_program, "fama_ryu.app", "--config-file", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                description="fama-controller",
                start_new_session=True,
            )

    # DARs
    def _build_dars(self) -> None:
        lab, sw, core, ovs = self.lab, self.sw, self.core, self.ovs
        for dar in self.plan.dars:
            lab.veth(
                sw, dar.core_port, core, dar.core_interface, switch_side="a", b_mac=dar.core_mac
            )
            lab.veth(sw, dar.access_port, sw, dar.access_link_port, switch_side="both")
        bridges: list[str] = []
        for dar in self.plan.dars:
            bridges += [
                "--", "add-br", dar.name,
                "--", "set", "bridge", dar.name, "datapath_type=netdev", "fail_mode=secure",
                "protocols=OpenFlow13", f"other_config:hwaddr={dar.router_mac}",
                f"other_config:datapath-id={dar.dpid_text}",
                "--", "add-port", dar.name, dar.core_port,
                "--", "set", "interface", dar.core_port, f"ofport_request={CORE_OFPORT}",
                "--", "add-port", dar.name, dar.access_port,
                "--", "set", "interface", dar.access_port, f"ofport_request={ACCESS_OFPORT}",
                "--", "add-port", dar.name, dar.gre_port,
                "--", "set", "interface", dar.gre_port, "type=gre",
                f"ofport_request={GRE_OFPORT}", "options:remote_ip=flow",
                f"options:local_ip={dar.anchor}", "options:packet_type=legacy_l3",
                f"options:egress_pkt_mark={dar.pkt_mark}",
            ]  # fmt: skip
        ovs.vsctl(*bridges, timeout_s=30)
        # Access links (Linux bridges, IPv6 off, no multicast snooping: ND reaches every port).
        _ip_batch(
            sw,
            [f"link add name {d.access_link} type bridge mcast_snooping 0" for d in self.plan.dars],
        )
        sysctls: dict[str, int] = {}
        for dar in self.plan.dars:
            sysctls[f"net/ipv6/conf/{dar.access_link}/disable_ipv6"] = 1
            # The LOCAL tap: never autoconfigure from RAs, never DAD (forwarding stays 0).
            sysctls[f"net/ipv6/conf/{dar.name}/accept_ra"] = 0
            sysctls[f"net/ipv6/conf/{dar.name}/accept_dad"] = 0
        _sysctls(sw, sysctls)
        ip_cmds = []
        for dar in self.plan.dars:
            ip_cmds += [
                f"link set dev {dar.access_link_port} master {dar.access_link}",
                f"link set dev {dar.access_link} up",
                f"link set dev {dar.name} up",
                f"addr add {dar.anchor}/64 dev {dar.name} nodad",
            ]
        _ip_batch(sw, ip_cmds)
        # The core's side of every DAR link.
        ip_cmds = []
        for dar in self.plan.dars:
            intf = dar.core_interface
            for address in dict.fromkeys((dar.core_next_hop, dar.tunnel_next_hop)):
                ip_cmds.append(f"addr add {address}/128 dev {intf} nodad")
            neighbour = f"{dar.link_local} lladdr {dar.router_mac} dev {intf} nud permanent"
            ip_cmds.append(f"neigh replace {neighbour}")
            ip_cmds += [f"route add {p} via {dar.link_local} dev {intf}" for p in dar.prefixes]
        _ip_batch(self.core, ip_cmds)
        # Open vSwitch's tunnel route per DAR (pkt_mark = the GRE port's egress_pkt_mark) and
        # its next hop's MAC: DAR N's tunnels always leave DAR N with outer source A_d(N).
        # Entries set with tnl/neigh/set age out too (900 s idle by default, then the
        # first tunnelled packet is lost while OVS re-resolves): the longest OVS allows.
        ovs.appctl("tnl/neigh/aging", str(TUNNEL_NEIGHBOUR_AGING_S))
        for dar in self.plan.dars:
            _add_tunnel_route(ovs, dar)

    # hosts
    def _build_cns(self) -> dict[str, dict[str, Any]]:
        cns: dict[str, dict[str, Any]] = {}
        for k in range(1, self.plan.n_cns + 1):
            name = f"cn{k}"
            address, prefix, gateway = _cn_addresses(k)
            ns = self.lab.namespace(name)
            core_intf = f"core-{name}"
            self.lab.veth(self.core, core_intf, ns, CN_INTERFACE)
            _ip_batch(self.core, [f"addr add {gateway}/64 dev {core_intf} nodad"])
            _ip_batch(
                ns,
                [
                    f"addr add {address}/64 dev {CN_INTERFACE} nodad",
                    f"route add default via {gateway} dev {CN_INTERFACE}",
                ],
            )
            cns[name] = {
                "kind": "cn",
                "namespace": ns.name,
                "interface": CN_INTERFACE,
                "address": address,
                "prefix": prefix,
                "gateway": gateway,
            }
        return cns

    def _build_mns(self) -> dict[str, dict[str, Any]]:
        mns: dict[str, dict[str, Any]] = {}
        first = self.plan.dars[0]
        for k in range(1, self.plan.n_mns + 1):
            name = f"mn{k}"
            ns = self.lab.namespace(name)
            # No kernel autoconfiguration: addresses and routes are the MN agent's job.
            _sysctls(
                ns,
                {
                    "net.ipv6.conf.all.accept_ra": 0,
                    "net.ipv6.conf.default.accept_ra": 0,
                    "net.ipv6.conf.default.autoconf": 0,
                },
            )
            link = f"{name}-ap"
            mac = _mn_mac(k)
            self.lab.veth(ns, MN_INTERFACE, self.sw, link, switch_side="b", a_mac=mac)
            _ip_batch(self.sw, [f"link set dev {link} master {first.access_link}"])
            mns[name] = {
                "kind": "mn",
                "namespace": ns.name,
                "interface": MN_INTERFACE,
                "mac": mac,
                "link_local": _link_local(mac),
                "attached_to": first.name,
                "link": link,
                "agent": None,
            }
        return mns

    def _connect_dars(self, controller: subprocess.Popen[bytes]) -> None:
        sw = self.sw

        def controller_listening() -> bool:
            if controller.poll() is not None:
                raise LabError(f"the controller exited with status {controller.returncode}")
            return _listening(sw, OF_PORT)

        wait_until(controller_listening, 60.0, interval_s=0.05, description="the controller")
        self.progress.mark("controller_listening", f"controller listens on {OF_PORT}")
        settings: list[str] = []
        for dar in self.plan.dars:
            ref = f"@c{dar.index}"
            settings += [
                "--", f"--id={ref}", "create", "Controller", f'target="tcp:127.0.0.1:{OF_PORT}"',
                "connection_mode=out-of-band",
                "--", "set", "bridge", dar.name, f"controller={ref}",
            ]  # fmt: skip
        self.ovs.vsctl(*settings)
        names = {dar.name for dar in self.plan.dars}

        def all_connected() -> bool:
            if controller.poll() is not None:
                raise LabError(f"the controller exited with status {controller.returncode}")
            answer = _rest_get(sw, "/fama/v1/dars")
            if not isinstance(answer, list):
                return False
            connected = {entry.get("name") for entry in answer if entry.get("connected") is True}
            return names <= connected

        wait_until(all_connected, 30.0, interval_s=0.1, description="every DAR to connect")

    def _start_agents(self) -> dict[str, dict[str, Any]]:
        assert self.agent_program is not None
        agents: dict[str, dict[str, Any]] = {}
        for k in range(1, self.plan.n_mns + 1):
            name = f"mn{k}"
            ns = Namespace(self.lab.name(name), lab=self.lab)
            state_dir = self.lab.workdir / name
            state_dir.mkdir(exist_ok=True)
            log = self.lab.workdir / f"{name}-agent.log"
            with log.open("wb") as stream:
                proc = ns.popen(
                    [
                        self.agent_program,
                        "run",
                        "--interface",
                        MN_INTERFACE,
                        "--state-dir",
                        str(state_dir),
                    ],
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    description=f"fama-mn {name}",
                    start_new_session=True,
                )
            agents[name] = {
                "program": self.agent_program,
                "pid": proc.pid,
                "start_time": process_start_time(proc.pid),
                "state_dir": str(state_dir),
                "log": str(log),
                "command": f"{AGENT_PROGRAM} run --interface {MN_INTERFACE} "
                f"--state-dir {state_dir}",
            }
        time.sleep(0.3)  # an agent that cannot start at all exits at once: say so
        for name, agent in agents.items():
            if not process_alive(agent["pid"], agent["start_time"]):
                print(
                    f"fama-lab: warning: the agent of {name} exited at once; see {agent['log']}:\n"
                    + _tail(Path(agent["log"]), 1500),
                    file=sys.stderr,
                )
        return agents

    # output
    def _document(
        self,
        controller: subprocess.Popen[bytes],
        cns: dict[str, dict[str, Any]],
        mns: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        plan, lab, sw = self.plan, self.lab, self.sw
        workdir = lab.workdir
        nodes: dict[str, Any] = {}
        nodes.update(mns)
        nodes.update(cns)
        for dar in plan.dars:
            nodes[dar.name] = {
                "kind": "dar",
                "namespace": sw.name,
                "dpid": dar.dpid_text,
                "prefix": dar.prefix,
                "prefixes": list(dar.prefixes),
                "anchor": dar.anchor,
                "bridge": dar.name,
                "router_mac": dar.router_mac,
                "link_local": dar.link_local,
                "ports": {
                    "core": {"name": dar.core_port, "ofport": CORE_OFPORT},
                    "access": {"name": dar.access_port, "ofport": ACCESS_OFPORT},
                    "gre": {"name": dar.gre_port, "ofport": GRE_OFPORT},
                },
                "access_link": dar.access_link,
                "core_next_hop": {"address": dar.core_next_hop, "mac": dar.core_mac},
                "tunnel_next_hop": dar.tunnel_next_hop,
                "pkt_mark": dar.pkt_mark,
            }
        config_file = workdir / "fama.conf"
        domain_file = plan.domain_file.resolve() if plan.domain_file else workdir / "domain.yaml"
        nodes["ctl"] = {
            "kind": "controller",
            "namespace": sw.name,
            "pid": controller.pid,
            "rest_url": REST_URL,
            "openflow": f"tcp:127.0.0.1:{OF_PORT}",
            "config_file": str(config_file),
            "domain_file": str(domain_file),
            "store": str(workdir / "bindings.sqlite"),
            "log": str(self.controller_log),
        }
        core_interfaces: dict[str, Any] = {}
        for dar in plan.dars:
            core_interfaces[dar.core_interface] = {
                "to": dar.name,
                "mac": dar.core_mac,
                "addresses": list(dict.fromkeys((dar.core_next_hop, dar.tunnel_next_hop))),
                "routes": {p: f"via {dar.link_local}" for p in dar.prefixes},
            }
        for name, cn in cns.items():
            core_interfaces[f"core-{name}"] = {"to": name, "addresses": [cn["gateway"]]}
        nodes["core"] = {
            "kind": "router",
            "namespace": self.core.name,
            "interfaces": core_interfaces,
        }
        lab_option = "" if plan.lab_id == DEFAULT_LAB_ID else f" --lab-id {plan.lab_id}"
        return {
            "lab_id": plan.lab_id,
            "nodes": nodes,
            "rest": {
                "url": REST_URL,
                "namespace": sw.name,
                "how": f"fama-lab{lab_option} exec ctl -- curl -s {REST_URL}/fama/v1/bindings",
            },
            "ovs": {
                "namespace": sw.name,
                "env": self.ovs.env,
                "how": f"fama-lab{lab_option} exec {plan.dars[0].name} -- "
                f"ovs-ofctl -O OpenFlow13 dump-flows {plan.dars[0].name}",
            },
            "agents": bool(self.agent_program),
            "workdir": str(workdir),
            "state_file": str(lab.state_file),
            "created_at": time.time(),
            "timings_s": dict(self.progress.marks),
        }


# --------------------------------------------------------------------------- the other commands


def load_lab(lab_id: str) -> dict[str, Any]:
    """The description ``up`` stored for ``lab_id``; :class:`LabError` if no such lab is up."""
    path = _meta_path(lab_id)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        if _state_file(lab_id).exists():
            raise LabError(
                f"lab {lab_id!r} is incomplete (no {path}): it failed or is being built; "
                f"`fama-lab down --lab-id {lab_id}` removes it"
            ) from None
        raise LabError(
            f"no lab {lab_id!r} is up (no {path}); start one with `fama-lab up`"
        ) from None


def node_namespace(meta: dict[str, Any], node: str) -> str:
    """Namespace of ``node`` (mnK, cnK, ctl, core, a DAR name, or ``sw``)."""
    nodes = meta["nodes"]
    if node == "sw":
        return str(meta["nodes"]["ctl"]["namespace"])
    if node not in nodes:
        raise LabUsageError(
            f"no node {node!r} in lab {meta['lab_id']!r}; nodes: {', '.join(sorted(nodes))}, sw"
        )
    return str(nodes[node]["namespace"])


def exec_environment(meta: dict[str, Any], node: str) -> dict[str, str]:
    """Environment for a command in ``node``: the lab's OVS (in ``sw``), the venv's PATH."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, _system_path()])
    env[LAB_ID_ENV] = meta["lab_id"]
    env["FAMA_LAB_NODE"] = node
    if node_namespace(meta, node) == meta["ovs"]["namespace"]:
        env.update(meta["ovs"]["env"])
    return env


def _mn_attachment(meta: dict[str, Any], mn: str) -> str | None:
    """The DAR whose access link ``mn``'s link is on now (from the kernel), or None."""
    sw = Namespace(meta["ovs"]["namespace"])
    link = meta["nodes"][mn]["link"]
    result = sw.run(["ip", "-j", "link", "show", "dev", link], check=False)
    if result.returncode != 0:
        return None
    master = json.loads(result.stdout)[0].get("master")
    for name, node in meta["nodes"].items():
        if node.get("kind") == "dar" and node.get("access_link") == master:
            return str(name)
    return None


def move(
    lab_id: str, mn: str, dar: str, *, down_s: float = DEFAULT_MOVE_DOWN_MS / 1000
) -> dict[str, Any]:
    """Handover of ``mn`` to ``dar``: its link leaves its access link and joins ``dar``'s.

    The switch-side end of the MN's veth goes down, stays down ``down_s``
    (off both access links), joins ``dar``'s access link and comes up again:
    the MN's ``eth0`` sees its carrier drop and return (it stays
    administratively up and keeps its addresses; Linux sends no RS for that,
    the agent solicits).  ``moved_at`` is the time the link came up.  Moving
    to the DAR the MN is on re-attaches it there (carrier drop and return).
    """
    meta = load_lab(lab_id)
    nodes = meta["nodes"]
    if nodes.get(mn, {}).get("kind") != "mn":
        raise LabUsageError(f"{mn!r} is not a mobile node of lab {lab_id!r}")
    if nodes.get(dar, {}).get("kind") != "dar":
        dars = sorted(n for n, v in nodes.items() if v.get("kind") == "dar")
        raise LabUsageError(f"{dar!r} is not a DAR of lab {lab_id!r} ({', '.join(dars)})")
    sw = Namespace(meta["ovs"]["namespace"])
    link = nodes[mn]["link"]
    previous = _mn_attachment(meta, mn)
    _ip_batch(sw, [f"link set dev {link} down", f"link set dev {link} nomaster"])
    time.sleep(max(down_s, 0.0))
    _ip_batch(
        sw, [f"link set dev {link} master {nodes[dar]['access_link']}", f"link set dev {link} up"]
    )
    moved_at = time.time()
    return {"mn": mn, "from": previous, "to": dar, "moved_at": moved_at}


def status(lab_id: str) -> dict[str, Any]:
    """The lab as it is now: nodes, attachments, processes, REST dars/bindings, agents."""
    meta = load_lab(lab_id)
    internal = meta.get("internal", {})
    sw = Namespace(meta["ovs"]["namespace"])
    nodes = meta["nodes"]
    ctl = nodes["ctl"]
    controller_alive = process_alive(ctl["pid"], internal.get("controller_start_time"))
    env = meta["ovs"]["env"]
    ovs_pids = {}
    for daemon in ("ovsdb-server", "ovs-vswitchd"):
        with contextlib.suppress(OSError, ValueError):
            ovs_pids[daemon] = int(Path(env["OVS_RUNDIR"], f"{daemon}.pid").read_text())
    mns: dict[str, Any] = {}
    for name, node in nodes.items():
        if node.get("kind") != "mn":
            continue
        node["attached_to"] = _mn_attachment(meta, name)
        entry: dict[str, Any] = {"attached_to": node["attached_to"], "agent": None}
        agent = node.get("agent")
        if agent:
            started = internal.get("agents", {}).get(name, {}).get("start_time")
            info: dict[str, Any] = {
                "pid": agent["pid"],
                "alive": process_alive(agent["pid"], started),
                "log": agent["log"],
            }
            program = agent.get("program") or AGENT_PROGRAM
            result = Namespace(node["namespace"]).run(
                [program, "status", "--state-dir", agent["state_dir"]],
                check=False,
                timeout_s=10,
            )
            try:
                info["status"] = json.loads(result.stdout) if result.returncode == 0 else None
            except json.JSONDecodeError:
                info["status"] = None
            if info["status"] is None:
                info["status_error"] = (result.stderr or result.stdout).strip()[-500:]
            entry["agent"] = info
        mns[name] = entry
    doc: dict[str, Any] = {
        "lab_id": meta["lab_id"],
        "up": True,
        "controller": {
            "pid": ctl["pid"],
            "alive": controller_alive,
            "rest_url": ctl["rest_url"],
            "log": ctl["log"],
        },
        "ovs": {
            "namespace": sw.name,
            "pids": ovs_pids,
            "alive": bool(ovs_pids) and all(process_alive(p) for p in ovs_pids.values()),
        },
        "mns": mns,
        "dars": _rest_get(sw, "/fama/v1/dars"),
        "bindings": _rest_get(sw, "/fama/v1/bindings"),
        "nodes": nodes,
        "state_file": meta["state_file"],
    }
    return doc


def down(lab_id: str) -> dict[str, Any]:
    """Remove everything ``up`` created for ``lab_id`` (idempotent: no lab, nothing to do)."""
    state_file = _state_file(lab_id)
    if not state_file.exists():
        leftover_dir = _state_dir() / lab_id
        if leftover_dir.exists() and not any(leftover_dir.glob("ovs-*/run/*.pid")):
            shutil.rmtree(leftover_dir, ignore_errors=True)
        return {"lab_id": lab_id, "removed": 0, "was_up": False}
    resources = Lab.down(lab_id, state_dir=_state_dir())
    return {"lab_id": lab_id, "removed": len(resources), "was_up": True}


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fama-lab",
        description="Bring up, drive and remove a complete FAMA lab (DARs on Open vSwitch, "
        "the fama-ryu controller, a core router, CNs and MNs in network namespaces).",
    )
    lab_id_help = (
        f"lab id (default ${LAB_ID_ENV} or {DEFAULT_LAB_ID!r}); namespaces are <id>-<node>"
    )
    parser.add_argument("--lab-id", dest="lab_id", default=None, help=lab_id_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--lab-id", dest="lab_id", default=argparse.SUPPRESS, help=lab_id_help)
        return command

    up_parser = add("up", "build the lab and print its description (JSON)")
    up_parser.add_argument("--dars", type=int, default=None, help="number of DARs (default 3)")
    up_parser.add_argument("--mns", type=int, default=1, help="mobile nodes (default 1)")
    up_parser.add_argument("--cns", type=int, default=1, help="correspondent nodes (default 1)")
    up_parser.add_argument(
        "--config", type=Path, metavar="FILE", help="domain file to use instead of a generated one"
    )
    up_parser.add_argument(
        "--no-agent", action="store_true", help=f"do not start {AGENT_PROGRAM} in the MNs"
    )
    up_parser.add_argument("--verbose", action="store_true", help="report steps on stderr")
    exec_parser = add("exec", "run a command in a node's namespace")
    exec_parser.add_argument("node", help="mnK, cnK, ctl, core, a DAR name, or sw")
    exec_parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    move_parser = add("move", "hand a mobile node over to another DAR (JSON)")
    move_parser.add_argument("mn")
    move_parser.add_argument("dar")
    move_parser.add_argument(
        "--down-ms",
        type=float,
        default=DEFAULT_MOVE_DOWN_MS,
        help="how long the link stays down between the two access links "
        f"(default {DEFAULT_MOVE_DOWN_MS:g})",
    )
    add("status", "the lab's state (JSON)")
    add("down", "remove the lab (idempotent)")
    return parser


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    sys.stdout.flush()


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabEnvironmentError(
            f"must run as root (effective uid is {os.geteuid()}): network namespaces, "
            "veths and Open vSwitch need CAP_NET_ADMIN"
        )


def _command_up(args: argparse.Namespace, lab_id: str) -> int:
    if args.config is not None:
        if args.dars is not None:
            raise LabUsageError("--dars and --config exclude each other (the file lists the DARs)")
        if not args.config.is_file():
            raise LabUsageError(f"domain file {args.config} not found")
        dars = dars_from_domain_file(args.config)
    else:
        dars = sample_dars(3 if args.dars is None else args.dars)
    for option, value in (("--mns", args.mns), ("--cns", args.cns)):
        if not 0 <= value <= MAX_HOSTS:
            raise LabUsageError(f"{option} must be 0..{MAX_HOSTS}, not {value}")
    plan = LabPlan(
        lab_id=lab_id,
        dars=tuple(dars),
        n_mns=args.mns,
        n_cns=args.cns,
        agent=not args.no_agent,
        domain_file=args.config,
    )
    _print_json(up(plan, verbose=args.verbose))
    return EXIT_OK


def _command_exec(args: argparse.Namespace, lab_id: str) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabUsageError("usage: fama-lab exec NODE -- CMD [ARGS...]")
    _require_root()
    meta = load_lab(lab_id)
    namespace = node_namespace(meta, args.node)
    env = exec_environment(meta, args.node)
    ip = shutil.which("ip", path=env["PATH"]) or "ip"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(ip, [ip, "netns", "exec", namespace, *argv], env)
    return EXIT_FAILURE  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fama-lab``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        lab_id = resolve_lab_id(args.lab_id)
        if args.command == "up":
            return _command_up(args, lab_id)
        if args.command == "exec":
            return _command_exec(args, lab_id)
        _require_root()
        if args.command == "move":
            _print_json(move(lab_id, args.mn, args.dar, down_s=args.down_ms / 1000))
        elif args.command == "status":
            _print_json(status(lab_id))
        elif args.command == "down":
            _print_json(down(lab_id))
        return EXIT_OK
    except LabUsageError as exc:
        print(f"fama-lab: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except LabExistsError as exc:
        print(f"fama-lab: {exc}", file=sys.stderr)
        return EXIT_EXISTS
    except LabError as exc:
        message = str(exc)
        print(f"fama-lab: {message}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(note, file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("fama-lab: interrupted", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
