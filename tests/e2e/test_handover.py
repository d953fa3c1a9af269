"""End-to-end handover on the real lab: the ``make demo`` scenario as assertions.

One lab for the whole module (``fama-lab up --dars 3 --mns 2 --cns 1``: real
Open vSwitch, the real controller, the real ``fama-mn`` agents, keep policy
``all``).  The demo's scenario (:func:`fama_ryu.lab_demo.run_handover`) runs
once, for mn1, while mn2 idles on dar1: a TCP stream (paced at 4 Mbit/s) and
an ICMPv6 echo every 20 ms from mn1's dar1 address to cn1; mn1 moves to dar2,
dar3 and back to dar1; meanwhile tcpdump captures, on mn1's side, everything
to and from dar1's anchor that is not GRE.  The tests then check, each on
its own:

1. the TCP stream survives the three moves (one connection, from the dar1
   address, data at the CN after every handover, no error at the sender);
2. probes lost per handover are printed and bounded: at most
   ``MAX_LOST_PER_HANDOVER`` = 50 (1 s of probes; the issue's bound is 2 s).
   Seen on this 2-core machine: 10-17 per handover, 200-340 ms, of which the
   200 ms link-down gap of ``fama-lab move`` (docs/lab.md); the bound keeps a
   margin of 3x for a loaded CI machine;
3. the connection opened at dar2 (P16): its source is dar2's address (as the
   CN saw it too), and it crosses no GRE port: ``ovs-ofctl dump-ports darN
   dN-gre`` of dar2 and dar3 do not move at all, dar1's moves no more with
   it than with the same length of background (the stream and probes
   tunnelled to dar1) alone, give or take a quarter of its 8 MB;
4. from dar3, REST shows bindings at dar1 and at dar2, both with the dar3
   address as care-of address (draft Figure 3);
5. back at dar1: no binding at dar1, and no ``tun_ipv6_src`` flow in
   ``dump-flows dar1`` (REST and OVS read again by this test, P11);
6. the capture decoded by tshark (``-T json``): the first BU to
   2001:db8:1::1 carries CGA Parameters and a Signature (P6) and its BA a
   PHKT; every later BU to it carries Binding Authorization Data and no
   Signature (nor CGA Parameters) option (P9);
7. two MNs moving at once: mn1 (back on dar1) and mn2 (on dar1 from the
   start) each run a stream and probes to cn1; mn1 -> dar2 and mn2 -> dar3
   move concurrently; every binding's care-of address belongs to the MN
   owning its home address, and mn1's and mn2's differ; both streams carry
   data after the moves; no frame addressed to mn2 (captured on its eth0)
   carries an address of mn1, outer or inside GRE, and the other way round;
   the CN saw each stream from its own MN's address only.

Needs root, Open vSwitch, tcpdump, tshark and curl; fails (does not skip)
without.  About 40 s on this machine.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from handover_helpers import (
    Node,
    child,
    fama_lab,
    frame_packets,
    is_neighbour_discovery,
    keys,
    lab_namespaces,
    one,
    require_prerequisites,
    tshark_packets,
)

from fama_ryu import lab, lab_demo
from fama_ryu.netlab import PacketCapture, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: Probes (20 ms apart) one handover may lose: 1 s worth (see the module docstring).
MAX_LOST_PER_HANDOVER = 50
ANCHOR1 = "2001:db8:1::1"


@dataclass
class Rig:
    lab_id: str
    doc: dict[str, Any]
    demo_lab: lab_demo.DemoLab
    workdir: Path
    run: lab_demo.HandoverRun | None = None
    pcap: Path | None = None

    def exec(self, node: str, *argv: str) -> str:
        return fama_lab(self.lab_id, "exec", node, "--", *argv).stdout


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_prerequisites()
    lab_id = f"e{secrets.token_hex(3)}"
    result = fama_lab(lab_id, "up", "--dars", "3", "--mns", "2", "--cns", "1", check=False)
    try:
        if result.returncode != 0:
            pytest.fail(f"fama-lab up exited {result.returncode}\n{result.stderr}", pytrace=False)
        doc = json.loads(result.stdout)
        assert doc["agents"] is True, "fama-lab up started no fama-mn agent"
        yield Rig(lab_id, doc, lab_demo.DemoLab(lab_id), tmp_path_factory.mktemp("handover"))
    finally:
        fama_lab(lab_id, "down", check=False)
        assert not lab_namespaces(lab_id), "fama-lab down left namespaces behind"


@pytest.fixture(scope="module")
def handover(rig: Rig) -> lab_demo.HandoverRun:
    """The demo's scenario for mn1, once per module; its report goes to stdout."""
    rig.pcap = rig.workdir / "signalling-mn1.pcap"
    started = time.monotonic()
    rig.run = lab_demo.run_handover(
        rig.demo_lab, lab_demo.Reporter(sys.stdout), mn="mn1", cn="cn1", pcap=rig.pcap
    )
    print(f"\n=== scenario: {time.monotonic() - started:.1f} s ===")
    return rig.run


# ----------------------------------------------------------------- 1-6: the demo's scenario


def test_1_tcp_stream_survives_the_three_moves_and_carries_data_after_each(
    handover: lab_demo.HandoverRun,
) -> None:
    address1 = handover.addresses["dar1"]
    stream = handover.stream
    assert [(f["from"], f["to"]) for f in handover.figures] == [
        ("dar1", "dar2"),
        ("dar2", "dar3"),
        ("dar3", "dar1"),
    ]
    assert stream["connections"] == 1, "the stream was reconnected"
    assert stream["errors"] == [], stream["errors"]
    assert stream["source"] == address1 == stream["peer_seen_by_cn"]
    bins = handover.bins["stream"]
    totals = []
    for figure in handover.figures:
        after = figure["stream_bytes_after"]
        print(
            f"{figure['from']} -> {figure['to']}: TCP back {figure.get('stream_back_ms')} ms "
            f"after the link came back, longest stall {figure['stream_stall_ms']} ms, "
            f"{after} bytes until the next move"
        )
        assert after > 0
        totals.append(sum(n for t, n in bins if t <= figure["moved_at"]))
    totals.append(sum(n for _, n in bins))
    # The bytes received so far grow across every handover.
    assert totals == sorted(totals) and len(set(totals)) == len(totals), totals
    assert stream["bytes_received"] == totals[-1]


def test_2_ping_loss_per_handover_is_reported_and_bounded(
    handover: lab_demo.HandoverRun,
) -> None:
    print(f"\nprobes lost per handover (bound {MAX_LOST_PER_HANDOVER}, 20 ms apart):")
    for figure in handover.figures:
        print(
            f"  {figure['from']} -> {figure['to']}: {figure['lost']} of {figure['probes']} lost, "
            f"outage {figure['outage_ms']} ms (link down {figure['link_down_ms']} ms), "
            f"through again {figure['recovery_ms']} ms after the link came back; "
            f"{figure['lost_elsewhere']} lost later, before the next move"
        )
    for figure in handover.figures:
        assert figure["lost"] <= MAX_LOST_PER_HANDOVER, figure
        assert figure["outage_ms"] <= MAX_LOST_PER_HANDOVER * lab_demo.PROBE_INTERVAL_S * 1000
        # Probes got through again after the move.
        answered_after = [
            p for p in handover.probes if p.answered is not None and figure["moved_at"] <= p.sent
        ]
        assert answered_after, figure
    answered = sum(1 for p in handover.probes if p.answered is not None)
    assert answered >= 0.9 * len(handover.probes)


def test_3_connection_opened_at_dar2_uses_dar2s_address_and_no_gre_port(
    handover: lab_demo.HandoverRun,
) -> None:
    new = handover.new_connection
    address2 = handover.addresses["dar2"]
    print(
        f"\nnew connection at dar2: source {new['source']}, {new['bytes']} bytes in "
        f"{new['seconds']} s; GRE bytes in {new['window_s']} s with it {new['gre_bytes']}, "
        f"background alone {new['gre_background_bytes']}"
    )
    assert new["source"] == address2 == new["peer_seen_by_cn"]
    assert new["bytes_received"] == new["bytes"]
    for dar in ("dar2", "dar3"):
        assert new["gre_delta"][dar] == {"rx_pkts": 0, "rx_bytes": 0, "tx_pkts": 0, "tx_bytes": 0}
        assert new["gre_background_bytes"][dar] == 0
    excess = new["gre_bytes"]["dar1"] - new["gre_background_bytes"]["dar1"]
    assert excess < new["bytes"] / 4, f"dar1's GRE port moved {excess} bytes more with it"
    # The background did cross dar1's GRE port: the counters are live.
    assert new["gre_background_bytes"]["dar1"] > 0


def test_4_from_dar3_both_dar1_and_dar2_hold_a_binding_to_the_dar3_address(
    handover: lab_demo.HandoverRun,
) -> None:
    address1, address2, address3 = (handover.addresses[d] for d in ("dar1", "dar2", "dar3"))
    table = handover.bindings["at dar3"]
    held = {dar: [(b["hoa"], b["coa"]) for b in entries] for dar, entries in table.items()}
    print(f"\nREST bindings while at dar3: {held}")
    assert [(b["hoa"], b["coa"]) for b in table["dar1"]] == [(address1, address3)]
    assert [(b["hoa"], b["coa"]) for b in table["dar2"]] == [(address2, address3)]
    assert table["dar3"] == []


def test_5_back_at_dar1_the_binding_and_its_flows_are_gone(
    rig: Rig, handover: lab_demo.HandoverRun
) -> None:
    address1 = handover.addresses["dar1"]
    assert handover.addresses["dar1 again"] == address1
    assert handover.return_home["bindings_at_home"] == []
    bindings = json.loads(rig.exec("ctl", "curl", "-sS", "http://127.0.0.1:8080/fama/v1/bindings"))
    assert not [b for b in bindings if b["dar"] == "dar1" or b["hoa"] == address1], bindings
    flows = rig.exec("dar1", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "dar1")
    # No tunnel rule (decapsulation: tun_ipv6_src; encapsulation: ->tun_ipv6_dst); the
    # only rule naming the dar1 address delivers to mn1 on the access port (ofport 2).
    assert "tun_ipv6" not in flows, flows
    naming = [line for line in flows.splitlines() if address1 in line]
    assert naming and all(line.endswith("output:2") for line in naming), naming
    # The other HDARs now tunnel to the dar1 address (keep policy all).
    held = {b["dar"]: b["coa"] for b in bindings if b["hoa"] in handover.addresses.values()}
    assert held == {"dar2": address1, "dar3": address1}, bindings


def _mobility_options(layers: Node) -> set[str]:
    return {
        k.removeprefix("mip6.options.")
        for k in keys(layers)
        if k.startswith("mip6.options.") and not k.endswith("_tree")
    }


def test_6_second_bu_to_dar1_is_phkt_authenticated_no_signature_on_the_wire(
    rig: Rig, handover: lab_demo.HandoverRun
) -> None:
    assert rig.pcap is not None
    bus = [p for p in tshark_packets(rig.pcap, "mipv6") if one(p, "mip6.mhtype") == "5"]
    bas = [p for p in tshark_packets(rig.pcap, "mipv6") if one(p, "mip6.mhtype") == "6"]
    to_dar1 = [p for p in bus if one(child(p, "ipv6"), "ipv6.dst") == ANCHOR1]
    summary = [
        (
            int(one(p, "mip6.bu.seqnr")),
            one(child(p, "ipv6"), "ipv6.src"),
            sorted(_mobility_options(p)),
        )
        for p in to_dar1
    ]
    print("\nBUs to 2001:db8:1::1 on the wire (seq, source, options):")
    for entry in summary:
        print(f"  {entry}")
    assert len({seq for seq, _, _ in summary}) >= 3, (
        "expected the CGA BU, a PHKT BU, the deregistration"
    )
    first_seq = summary[0][0]
    for seq, source, options in summary:
        if seq == first_seq:  # the first BU (and any retransmission of it): P6
            assert source == handover.addresses["dar2"]
            assert {"cgar", "sign"} <= set(options) and "bad_auth" not in options, options
        else:  # P9: PHKT only
            assert "bad_auth" in options, options
            assert "sign" not in options and "cgar" not in options, options
    first_ba = next(p for p in bas if int(one(p, "mip6.ba.seqnr")) == first_seq)
    assert one(first_ba, "mip6.ba.status") == "0"
    assert "phkt" in _mobility_options(first_ba), "the first BA carries no PHKT"
    # The demo's own decoding (-T fields) agrees.
    assert handover.bu_authentication["ok"] is True, handover.bu_authentication


# ----------------------------------------------------------------- 7: two MNs at once


def _addresses_of(demo_lab: lab_demo.DemoLab, mn: str) -> set[str]:
    state = demo_lab.agent_state(mn) or {}
    return {a["address"] for a in state.get("addresses", [])}


def test_7_two_mns_moving_at_once_keep_their_flows_apart(
    rig: Rig, handover: lab_demo.HandoverRun
) -> None:
    demo_lab = rig.demo_lab
    cn = rig.doc["nodes"]["cn1"]["address"]
    source = {
        "mn1": demo_lab.wait_attached("mn1", "dar1"),
        "mn2": demo_lab.wait_attached("mn2", "dar1"),
    }
    traffic = lab_demo.Traffic(demo_lab, demo_lab.workdir / "two-mns")
    captures: dict[str, PacketCapture] = {}
    port = lab_demo.STREAM_PORT + 1
    try:
        for mn in ("mn1", "mn2"):
            captures[mn] = traffic.capture(mn, "eth0", "ip6", rig.workdir / f"two-mns-{mn}.pcap")
        traffic.receiver("rx", "cn1", port=port)
        for k, mn in enumerate(("mn1", "mn2"), start=1):
            traffic.sender(mn, mn, source[mn], cn, port=port)
            traffic.prober(f"ping-{mn}", mn, source[mn], cn, ident=0xFA10 + k)
        started = time.time()
        for mn in ("mn1", "mn2"):
            traffic.wait_stream("rx", mn, started, 10.0)
        time.sleep(1.0)

        # Both moves at once.
        barrier = threading.Barrier(2)
        moved: dict[str, dict[str, Any]] = {}
        errors: list[BaseException] = []

        def move(mn: str, dar: str) -> None:
            try:
                barrier.wait(timeout=5)
                moved[mn] = demo_lab.move(mn, dar)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=move, args=("mn1", "dar2")),
            threading.Thread(target=move, args=("mn2", "dar3")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        print(
            "\nconcurrent moves: "
            + ", ".join(f"{mn} -> {m['to']} up at {m['moved_at']:.3f}" for mn, m in moved.items())
        )
        assert abs(moved["mn1"]["moved_at"] - moved["mn2"]["moved_at"]) < 0.5
        coa = {
            "mn1": demo_lab.wait_attached("mn1", "dar2"),
            "mn2": demo_lab.wait_attached("mn2", "dar3"),
        }
        assert coa["mn1"] != coa["mn2"]
        for mn in ("mn1", "mn2"):
            back = traffic.wait_stream("rx", mn, moved[mn]["moved_at"], lab_demo.SETTLE_TIMEOUT_S)
            print(
                f"{mn}: stream back {1000 * (back - moved[mn]['moved_at']):.0f} ms after its move"
            )
            wait_until(
                lambda mn=mn: traffic.probe_answered_after(f"ping-{mn}", moved[mn]["moved_at"]),
                lab_demo.SETTLE_TIMEOUT_S,
                description=f"{mn}'s probes to get through after the move",
            )
        owners = {mn: _addresses_of(demo_lab, mn) for mn in ("mn1", "mn2")}
        assert not owners["mn1"] & owners["mn2"]

        # REST: every binding's CoA is an address of the MN owning the HoA.
        def rest_settled() -> list[dict[str, Any]] | None:
            bindings = demo_lab.bindings()
            pairs = {(b["hoa"], b["coa"]) for b in bindings}
            wanted = {(source["mn1"], coa["mn1"]), (source["mn2"], coa["mn2"])}
            return bindings if wanted <= pairs else None

        bindings = wait_until(rest_settled, 5.0, description="REST to show both bindings")
        assert bindings is not None
        print(
            "REST bindings: " + ", ".join(f"{b['dar']}: {b['hoa']} -> {b['coa']}" for b in bindings)
        )
        for binding in bindings:
            owner = next(mn for mn, addresses in owners.items() if binding["hoa"] in addresses)
            assert binding["coa"] in owners[owner], (binding, owners)
        at_dar1 = {b["hoa"]: b["coa"] for b in bindings if b["dar"] == "dar1"}
        assert at_dar1 == {source["mn1"]: coa["mn1"], source["mn2"]: coa["mn2"]}

        # The streams keep flowing (a second after both came back).
        mark = time.time()
        time.sleep(1.5)
        for mn in ("mn1", "mn2"):
            assert traffic.stream_total("rx", mn, since=mark) > 0, f"{mn}'s stream stopped"
            assert traffic.alive(mn), f"{mn}'s sender died"
    finally:
        traffic.stop_all()

    # The CN saw each stream from its own MN's dar1 address, once.
    hellos = [r for r in traffic.records("rx") if r.get("ev") == "hello"]
    assert sorted((r["name"], r["peer"]) for r in hellos) == sorted(
        (mn, source[mn]) for mn in ("mn1", "mn2")
    )
    for mn in ("mn1", "mn2"):
        errors_seen = [r for r in traffic.records(mn) if r.get("ev") == "error"]
        assert not errors_seen, errors_seen
    # No frame for one MN carries the other's addresses (outer, or inside GRE).
    macs = {
        mn: bytes.fromhex(rig.doc["nodes"][mn]["mac"].replace(":", "")) for mn in ("mn1", "mn2")
    }
    for mn, other in (("mn2", "mn1"), ("mn1", "mn2")):
        frames = [p.data for p in captures[mn].packets()]
        to_me = [f for f in frames if f[:6] == macs[mn]]
        leaked = [
            packet
            for frame in to_me
            for packet in frame_packets(frame)
            if not is_neighbour_discovery(packet) and {packet.src, packet.dst} & owners[other]
        ]
        print(f"{mn}: {len(to_me)} frames addressed to it captured, {len(leaked)} of {other}'s")
        assert len(to_me) > 100, f"{mn}'s capture is nearly empty"
        assert not leaked, leaked[:5]


def test_8_controller_switch_and_agents_survived_everything(rig: Rig) -> None:
    report = lab.status(rig.lab_id)
    assert report["controller"]["alive"] is True and report["ovs"]["alive"] is True
    assert all(d["connected"] for d in report["dars"]), report["dars"]
    for mn in ("mn1", "mn2"):
        agent = report["mns"][mn]["agent"]
        assert agent["alive"] is True and agent["status"] is not None, report["mns"][mn]
