"""A false care-of address through Open vSwitch: how many bytes does a third party receive?

The attack (RFC 4225 §3.2.1, the draft's Security Considerations): an
attacker with a valid CGA home address of its own registers a victim's
address as its care-of address (Alternate Care-of Address option, BU sent
from its own address, so the BA and its PHKT come back to the attacker) and
then pulls a stream to its home address.  The home DAR tunnels that stream
to the victim.

One command brings up a ``fama-lab`` lab of its own: 3 DARs (Open vSwitch
userspace datapath, the real controller, the Linux core router), ``mn1`` on
dar1's access link, ``cn1`` and ``cn2`` behind the core.  The domain file is
the lab's generated one with ``return_routability: true`` on dar3 only, so
both modes are measured in the same run on the same paths:

* **basic mode**, dar2: the attacker (emulated in ``mn1``: an RSA-1024 key,
  a CGA home address of dar2's prefix, a care-of address in dar1's) sends a
  CGA BU naming the victim as care-of address, then renews it with a PHKT BU;
* **return-routability mode**, dar3 (P13): the same BU without nonce indices;
  the same BU keyed with a care-of keygen token the attacker obtained for its
  own address (CoTI/CoT); a guessed token; then, after binding its own
  address properly (the positive control: dar3 tunnels the stream to the
  attacker), a PHKT BU naming the victim.

The victim is ``cn2``'s address: a raw socket there counts the GRE packets
and bytes addressed to it per outer source (dar2's or dar3's anchor).  The
stream: ``cn1`` sends UDP at ``--rate-pps`` packets of ``--payload`` bytes
per second to each attacker home address.  Measured for ``--window-s``:
bytes per second at the victim per mode, against what ``cn1`` sent; then how
long the victim keeps receiving after REST ``DELETE /fama/v1/bindings/<hoa>``
(revocation) and after the binding's lifetime ends (expiry, the attacker
registering again with ``--expiry-units`` x 4 s).

Usage (root)::

    .venv/bin/python benchmarks/false_coa_lab.py               # JSON in results/false_coa_lab.json
    .venv/bin/python benchmarks/false_coa_lab.py --window-s 3  # what the CI test runs
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import queue
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_common import (  # noqa: E402
    RESULTS,
    counter_delta,
    dar_counters,
    machine,
    run_and_report,
    running_lab,
)

from fama_ryu import auth, cga, icmpv6, lab, mh  # noqa: E402
from fama_ryu.lab_demo import DemoLab  # noqa: E402

DEFAULT_LAB_ID = "bench-fcoa"
BASIC_DAR, RR_DAR, SERVING_DAR = "dar2", "dar3", "dar1"
ETH_P_IPV6 = 0x86DD
IPPROTO_GRE = 47
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
REPLY_TIMEOUT_S = 1.5  # a silent drop: no BA or CoT within this time
MAX_LIFETIME_UNITS = 0xFFFF  # what an attacker asks for; the DAR grants max_lifetime_s
STREAM_PORT = 9
SETTLE_S = 2.0  # after a stop, the victim must see nothing more for this long
COOKIE = b"falsecoa"


# =========================================================================== node programs
# Each runs in a lab namespace (``false_coa_lab.py _ROLE SPEC``), reads JSON commands on
# stdin and answers each with one JSON line on stdout.


def _commands() -> Iterator[dict[str, Any]]:
    for line in sys.stdin:
        yield json.loads(line)


def _answer(doc: Any) -> None:
    print(json.dumps(doc), flush=True)


def _packet_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((interface, ETH_P_IPV6))
    return sock


@dataclass
class GreCount:
    """GRE packets from one outer source to one address, with the time of the last one."""

    packets: int = 0
    bytes: int = 0  # outer IPv6 packet bytes (header included, Ethernet excluded)
    last_at: float | None = None


class GreCounter:
    """Counts GRE-in-IPv6 packets addressed to ``address`` on ``interface``, per outer source."""

    def __init__(self, interface: str, address: bytes, on_other: Any = None) -> None:
        self.address = address
        self.by_source: dict[str, GreCount] = {}
        self.other_packets = 0  # anything else to the address (a CoT, an ICMP error...)
        self.on_other = on_other
        self.lock = threading.Lock()
        self.sock = _packet_socket(interface)
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            frame, sender = self.sock.recvfrom(65535)
            now = time.time()
            if sender[2] == PACKET_OUTGOING or len(frame) < 54 or frame[38:54] != self.address:
                continue
            if frame[20] != IPPROTO_GRE:
                self.other_packets += 1
                if self.on_other is not None:
                    self.on_other(frame)
                continue
            source = str(ipaddress.IPv6Address(frame[22:38]))
            with self.lock:
                count = self.by_source.setdefault(source, GreCount())
                count.packets += 1
                count.bytes += len(frame) - 14
                count.last_at = now

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "at": time.time(),
                "gre": {s: vars(c).copy() for s, c in self.by_source.items()},
                "other_packets": self.other_packets,
            }


def role_victim(spec: dict[str, Any]) -> None:
    counter = GreCounter(spec["interface"], ipaddress.IPv6Address(spec["address"]).packed)
    _answer({"ready": True})
    for _ in _commands():
        _answer(counter.snapshot())


class Attacker:
    """An emulated MN with a CGA home address at each target DAR, bound to nobody's CoA."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.mac = bytes.fromhex(spec["mac"].replace(":", ""))
        self.router_mac = bytes.fromhex(spec["router_mac"].replace(":", ""))
        self.serving_anchor = ipaddress.IPv6Address(spec["serving_anchor"]).packed
        self.coa = ipaddress.IPv6Address(spec["coa"]).packed
        self.key = cga.generate_rsa_key(1024)
        der = cga.public_key_der(self.key)
        rng = random.Random(spec["seed"]).randbytes
        self.homes: dict[str, dict[str, Any]] = {}
        for dar, target in spec["dars"].items():
            prefix = ipaddress.IPv6Network(target["prefix"]).network_address.packed[:8]
            hoa, params = cga.generate_cga(der, prefix, 0, rng)
            anchor = ipaddress.IPv6Address(target["anchor"]).packed
            self.homes[dar] = {"hoa": hoa, "params": params, "anchor": anchor, "phkt": None}
        self.sequence = 0
        self.replies: queue.Queue[mh.MobilityPacket] = queue.Queue()
        self.counter = GreCounter(spec["interface"], self.coa, on_other=self._on_other)

    def _on_other(self, frame: bytes) -> None:
        with contextlib.suppress(mh.MobilityParseError):
            self.replies.put(mh.parse_ethernet_frame(frame))

    def _send(self, packet: bytes) -> None:
        self.counter.sock.send(mh.build_ethernet_frame(self.mac, self.router_mac, packet))

    def _reply(self, kind: type, match: Any) -> mh.MobilityPacket | None:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                packet = self.replies.get(timeout=left)
            except queue.Empty:
                return None
            if isinstance(packet.message, kind) and match(packet):
                return packet
        return None

    def resolve(self) -> bool:
        """Announce the care-of address to the serving DAR (NS for its anchor, answered by NA)."""
        ns = icmpv6.build_neighbor_solicitation(
            router_mac=self.mac, source=self.coa, target=self.serving_anchor
        )
        self.counter.sock.send(ns)
        time.sleep(0.3)
        return True

    def care_of_test(self, dar: str) -> dict[str, Any] | None:
        anchor = self.homes[dar]["anchor"]
        self._send(mh.build_packet(mh.CareOfTestInit(COOKIE), source=self.coa, destination=anchor))
        reply = self._reply(mh.CareOfTest, lambda p: p.message.cookie == COOKIE)
        if reply is None:
            return None
        cot = reply.message
        assert isinstance(cot, mh.CareOfTest)
        return {"nonce_index": cot.nonce_index, "token": cot.keygen_token.hex()}

    def binding_update(self, command: dict[str, Any]) -> dict[str, Any]:
        """A BU from the own address naming ``coa`` (Alternate CoA), CGA-signed or PHKT-keyed."""
        home = self.homes[command["dar"]]
        hoa, anchor = home["hoa"], home["anchor"]
        coa = ipaddress.IPv6Address(command["coa"]).packed
        care_of = command.get("care_of")
        token = bytes.fromhex(care_of["token"]) if care_of else None
        with_cga = command["kind"] == "cga"
        self.sequence = (self.sequence + 1) & 0xFFFF
        options = mh.MobilityOptions(
            alternate_coa=coa if coa != self.coa else None,
            nonce_indices=(0, care_of["nonce_index"]) if care_of else None,
            cga_parameters=home["params"].encode() if with_cga else None,
        )
        bu = mh.BindingUpdate(self.sequence, command["lifetime_units"], options=options)
        key = self.key
        signer = (
            (lambda data: auth.sign_binding_update(key, coa, anchor, data)) if with_cga else None
        )
        # P9/P13: a CGA BU carries authorization data only with a care-of token (Kbm =
        # SHA1(token)); a PHKT BU always does (Kbm = SHA1(PHKT [| token])).
        authenticator = None
        if not with_cga or token is not None:
            kbm = auth.binding_management_key(None if with_cga else home["phkt"], token)

            def authenticator(data: bytes) -> bytes:
                return auth.binding_authenticator(kbm, coa, anchor, data)

        self._send(
            mh.build_packet(
                bu,
                source=self.coa,
                destination=anchor,
                home_address=hoa,
                signer=signer,
                signature_len=key.key_size // 8 if with_cga else 0,
                authenticator=authenticator,
            )
        )
        sequence = self.sequence
        reply = self._reply(
            mh.BindingAck,
            lambda p: p.routing_address == hoa and p.message.sequence == sequence,
        )
        if reply is None:
            return {"sequence": sequence, "ba_status": None}
        ba = reply.message
        assert isinstance(ba, mh.BindingAck)
        encrypted = ba.options.permanent_home_keygen_token
        if encrypted is not None:
            home["phkt"] = auth.decrypt_phkt(key, encrypted)
        return {"sequence": sequence, "ba_status": ba.status, "lifetime_units": ba.lifetime_units}


def role_attacker(spec: dict[str, Any]) -> None:
    attacker = Attacker(spec)
    _answer(
        {
            "ready": attacker.resolve(),
            "hoas": {
                dar: str(ipaddress.IPv6Address(h["hoa"])) for dar, h in attacker.homes.items()
            },
        }
    )
    for command in _commands():
        op = command["op"]
        if op == "coti":
            _answer(attacker.care_of_test(command["dar"]))
        elif op == "bu":
            _answer(attacker.binding_update(command))
        else:  # "count": the GRE the attacker's own address received
            _answer(attacker.counter.snapshot())


def role_stream(spec: dict[str, Any]) -> None:
    """UDP to each target at ``rate_pps``, paced per 5 ms tick, until stdin closes."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    payload = bytes(spec["payload"])
    sent = dict.fromkeys(spec["targets"], 0)
    errors = 0
    start = time.monotonic()
    _answer({"started_at": time.time()})
    while not select.select([sys.stdin], [], [], 0.005)[0]:
        due = int(spec["rate_pps"] * (time.monotonic() - start))
        for target in spec["targets"]:
            while sent[target] < due:
                try:
                    sock.sendto(payload, (target, STREAM_PORT))
                except OSError:  # a full buffer: lost, as on a wire
                    errors += 1
                sent[target] += 1
    elapsed = time.monotonic() - start
    _answer({"sent": sent, "send_errors": errors, "duration_s": round(elapsed, 3)})


ROLES = {"_victim": role_victim, "_attacker": role_attacker, "_stream": role_stream}


# =========================================================================== orchestration


class NodeProgram:
    """One of the roles above, running in a lab node; ``ask`` sends a command, reads the answer."""

    def __init__(self, demo_lab: DemoLab, node: str, role: str, spec: dict[str, Any]) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), role, json.dumps(spec)]
        self.process = subprocess.Popen(
            demo_lab.ns(node).command(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=lab.exec_environment(demo_lab.meta, node),
        )
        self.first = self.read()

    def read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"node program {self.process.args!r} ended early")
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def finish(self) -> Any:
        """Close stdin and read the final answer (the stream's totals)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        answer = self.read()
        self.process.wait(timeout=10)
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def domain_file_text() -> str:
    """The lab's generated 3-DAR domain with return-routability mode on dar3 only."""
    doc = yaml.safe_load(lab.domain_yaml(lab.sample_dars(3)))
    for dar in doc["dars"]:
        dar["return_routability"] = dar["name"] == RR_DAR
    return "# fama-lab's generated domain; dar3 in return-routability mode (P13).\n" + (
        yaml.safe_dump(doc, sort_keys=False)
    )


def _rest_delete(demo_lab: DemoLab, path: str) -> dict[str, Any]:
    url = demo_lab.meta["rest"]["url"] + path
    result = demo_lab.sw.run(
        ["curl", "-s", "-X", "DELETE", "--max-time", "5", "-w", "\n%{http_code}", url],
        check=False,
        timeout_s=10,
    )
    body, _, code = result.stdout.rpartition("\n")
    return {"http_status": int(code or 0), "body": json.loads(body) if body else None}


def _gre_delta(before: dict[str, Any], after: dict[str, Any], source: str) -> dict[str, Any]:
    old = before["gre"].get(source, {"packets": 0, "bytes": 0})
    new = after["gre"].get(source, {"packets": 0, "bytes": 0, "last_at": None})
    seconds = after["at"] - before["at"]
    byte_count = new["bytes"] - old["bytes"]
    return {
        "seconds": round(seconds, 3),
        "packets": new["packets"] - old["packets"],
        "bytes": byte_count,
        "bytes_per_s": round(byte_count / seconds, 1) if seconds > 0 else None,
        "last_at": new.get("last_at"),
    }


def _wait_silent(victim: NodeProgram, source: str, since: float, limit_s: float) -> dict[str, Any]:
    """Poll until ``source`` has sent the victim nothing for SETTLE_S; the last packet's time."""
    deadline = time.time() + limit_s
    while True:
        snapshot = victim.ask({})
        last = snapshot["gre"].get(source, {}).get("last_at")
        quiet_since = max(last or since, since)
        if time.time() - quiet_since >= SETTLE_S or time.time() > deadline:
            return {
                "last_packet_at": last,
                "stopped_after_s": round(last - since, 3) if last and last > since else 0.0,
                "still_arriving": time.time() - quiet_since < SETTLE_S,
            }
        time.sleep(0.2)


def _bindings_of(demo_lab: DemoLab, hoa: str) -> list[dict[str, Any]]:
    return [b for b in demo_lab.bindings() if b["hoa"] == hoa]


def attack(demo_lab: DemoLab, args: argparse.Namespace) -> dict[str, Any]:
    nodes = demo_lab.nodes
    victim_address = nodes["cn2"]["address"]
    anchors = {dar: nodes[dar]["anchor"] for dar in (BASIC_DAR, RR_DAR)}
    coa = str(ipaddress.IPv6Network(nodes[SERVING_DAR]["prefix"])[0xBAD])
    programs: list[NodeProgram] = []
    try:
        victim = NodeProgram(
            demo_lab, "cn2", "_victim", {"interface": "eth0", "address": victim_address}
        )
        programs.append(victim)
        attacker = NodeProgram(
            demo_lab,
            "mn1",
            "_attacker",
            {
                "interface": nodes["mn1"]["interface"],
                "mac": nodes["mn1"]["mac"],
                "router_mac": nodes[SERVING_DAR]["router_mac"],
                "serving_anchor": nodes[SERVING_DAR]["anchor"],
                "coa": coa,
                "seed": 5,
                "dars": {
                    dar: {"prefix": nodes[dar]["prefix"], "anchor": anchors[dar]} for dar in anchors
                },
            },
        )
        programs.append(attacker)
        hoas = attacker.first["hoas"]

        def bu(dar: str, to: str, kind: str = "cga", **extra: Any) -> dict[str, Any]:
            units = extra.pop("lifetime_units", MAX_LIFETIME_UNITS)
            command = {"op": "bu", "dar": dar, "coa": to, "kind": kind, "lifetime_units": units}
            return dict(attacker.ask(command | extra))

        # Basic mode: the CGA proves the HoA, nothing proves the CoA.
        basic: dict[str, Any] = {"bu_victim_coa": bu(BASIC_DAR, victim_address)}
        # The BA went to the attacker's own address: it holds the PHKT and renews without RSA.
        basic["phkt_bu_renewal"] = bu(BASIC_DAR, victim_address, "phkt")
        basic["binding"] = _bindings_of(demo_lab, hoas[BASIC_DAR])
        # Return-routability mode: every way the attacker has to name the victim.
        own = attacker.ask({"op": "coti", "dar": RR_DAR})
        guessed = {"nonce_index": own["nonce_index"], "token": random.randbytes(8).hex()}
        rr: dict[str, Any] = {
            "cga_bu_without_nonce_indices": bu(RR_DAR, victim_address),
            "care_of_test_of_own_address": own,
            "cga_bu_with_own_care_of_token": bu(RR_DAR, victim_address, care_of=own),
            "cga_bu_with_guessed_token": bu(RR_DAR, victim_address, care_of=guessed),
        }
        rr["bindings_after_attempts"] = _bindings_of(demo_lab, hoas[RR_DAR])
        # The positive control: the attacker's own address passes the care-of test and binds.
        rr["cga_bu_own_coa"] = bu(RR_DAR, coa, care_of=own)
        rr["phkt_bu_with_own_care_of_token"] = bu(RR_DAR, victim_address, "phkt", care_of=own)
        rr["phkt_bu_without_nonce_indices"] = bu(RR_DAR, victim_address, "phkt")
        rr["bindings"] = _bindings_of(demo_lab, hoas[RR_DAR])

        stream = NodeProgram(
            demo_lab,
            "cn1",
            "_stream",
            {
                "targets": [hoas[BASIC_DAR], hoas[RR_DAR]],
                "rate_pps": args.rate_pps,
                "payload": args.payload,
            },
        )
        programs.append(stream)
        time.sleep(1.0)  # the stream reaches its rate
        victim_before, own_before = victim.ask({}), attacker.ask({"op": "count"})
        time.sleep(args.window_s)
        victim_after, own_after = victim.ask({}), attacker.ask({"op": "count"})
        basic["window"] = _gre_delta(victim_before, victim_after, anchors[BASIC_DAR])
        rr["window"] = _gre_delta(victim_before, victim_after, anchors[RR_DAR])
        rr["control_at_attackers_own_coa"] = _gre_delta(own_before, own_after, anchors[RR_DAR])

        # Revocation by the operator: REST DELETE.
        revoked_at = time.time()
        basic["revocation"] = _rest_delete(demo_lab, f"/fama/v1/bindings/{hoas[BASIC_DAR]}")
        basic["revocation"] |= _wait_silent(victim, anchors[BASIC_DAR], revoked_at, 30.0)
        basic["binding_after_revocation"] = _bindings_of(demo_lab, hoas[BASIC_DAR])

        # Expiry: the attacker registers the victim again, for a short lifetime this time.
        again = bu(BASIC_DAR, victim_address, lifetime_units=args.expiry_units)
        bindings = _bindings_of(demo_lab, hoas[BASIC_DAR])
        basic["expiry"] = {"bu_victim_coa": again, "binding": bindings[0] if bindings else None}
        if bindings:
            expires_at = float(bindings[0]["expires_at"])
            time.sleep(max(0.0, expires_at - time.time()))
            silent = _wait_silent(victim, anchors[BASIC_DAR], expires_at, 30.0)
            basic["expiry"] |= silent
        basic["binding_after_expiry"] = _bindings_of(demo_lab, hoas[BASIC_DAR])
        quiet_before = victim.ask({})
        time.sleep(SETTLE_S)
        quiet_after = victim.ask({})
        basic["after_stop"] = _gre_delta(quiet_before, quiet_after, anchors[BASIC_DAR])
        rr["total_at_victim"] = quiet_after["gre"].get(anchors[RR_DAR], {"packets": 0, "bytes": 0})
        stream_result = stream.finish()
    finally:
        for program in programs:
            program.stop()
    stream_seconds = stream_result["duration_s"]
    sent_per_s = {
        target: round(count * (args.payload + 48) / stream_seconds, 1)
        for target, count in stream_result["sent"].items()
    }
    return {
        "victim": victim_address,
        "attacker": {"coa": coa, "hoas": hoas},
        "anchors": anchors,
        "stream": stream_result | {"ipv6_bytes_per_s": sent_per_s},
        "basic": basic,
        "return_routability": rr,
        "victim_other_packets": quiet_after["other_packets"],
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="false-coa-") as workdir:
        domain_file = Path(workdir) / "domain.yaml"
        domain_file.write_text(domain_file_text())
        with running_lab(
            args.lab_id, dars=3, mns=1, cns=2, agent=False, domain_file=domain_file
        ) as demo_lab:
            print(f"lab {args.lab_id!r} up", file=sys.stderr, flush=True)
            modes = {
                entry["name"]: entry["return_routability"]
                for entry in demo_lab.rest("/fama/v1/dars")
            }
            before = dar_counters(demo_lab)
            result = attack(demo_lab, args)
            after = dar_counters(demo_lab)
    return {
        "machine": machine(),
        "config": {
            key: getattr(args, key)
            for key in ("lab_id", "window_s", "rate_pps", "payload", "expiry_units")
        },
        "return_routability_by_dar": modes,
        **result,
        "controller_counters_delta": counter_delta(before, after),
    }


def report(data: dict[str, Any]) -> str:
    basic, rr = data["basic"], data["return_routability"]
    hoas = data["attacker"]["hoas"]
    sent = data["stream"]["ipv6_bytes_per_s"]
    expiry = basic["expiry"]
    lines = [
        f"victim {data['victim']}; stream {data['config']['rate_pps']} pkt/s x "
        f"{data['config']['payload']} B UDP to each attacker HoA",
        f"{'mode':<20} {'BA to false-CoA BU':<19} {'sent B/s':>10} {'victim GRE B/s':>15}"
        f" {'victim pkts':>12}",
    ]
    for name, mode, dar in (("basic", basic, BASIC_DAR), ("return routability", rr, RR_DAR)):
        first = mode.get("bu_victim_coa") or mode["cga_bu_with_own_care_of_token"]
        status = "none (dropped)" if first["ba_status"] is None else f"status {first['ba_status']}"
        lines.append(
            f"{name:<20} {status:<19} {sent[hoas[dar]]:>10.0f}"
            f" {mode['window']['bytes_per_s']:>15.0f} {mode['window']['packets']:>12}"
        )
    control = rr["control_at_attackers_own_coa"]
    lines += [
        f"RR control: the attacker's own CoA got {control['bytes_per_s']:.0f} B/s from {RR_DAR}",
        f"basic, REST DELETE (HTTP {basic['revocation']['http_status']}): the victim's last"
        f" packet {basic['revocation']['stopped_after_s']} s later",
        f"basic, expiry after {expiry['bu_victim_coa'].get('lifetime_units')} x 4 s: the"
        f" victim's last packet {expiry.get('stopped_after_s')} s after expires_at",
        f"basic, {SETTLE_S:g} s after that: {basic['after_stop']['packets']} packets;"
        f" RR, whole run: {rr['total_at_victim']['packets']} packets at the victim",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in ROLES:
        ROLES[argv[0]](json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-id", default=DEFAULT_LAB_ID, help=f"default {DEFAULT_LAB_ID}")
    parser.add_argument("--window-s", type=float, default=10.0, help="seconds of stream measured")
    parser.add_argument("--rate-pps", type=float, default=500.0, help="stream packets/s per HoA")
    parser.add_argument("--payload", type=int, default=1000, help="UDP payload bytes")
    parser.add_argument(
        "--expiry-units", type=int, default=2, help="lifetime (x 4 s) of the expiry phase's BU"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "false_coa_lab.json")
    args = parser.parse_args(argv)
    return run_and_report("false_coa_lab", lambda: bench(args), args.json, report)


if __name__ == "__main__":
    sys.exit(main())
