"""Prometheus metrics (``fama_ryu/metrics.py``) as wired into ``FamaApp``.

The app is built in process as in ``test_app.py`` (a ``WSGIApplication``
context, fake datapaths recording real ryu OpenFlow 1.3 messages, the tick
loop not spawned).  Every assertion reads the exposition text that
``prometheus_client.generate_latest`` makes of ``app.metrics.registry``,
parsed with prometheus_client's own text parser, so the names, label sets
and values are those a Prometheus server would scrape.  One test serves
the endpoint for real on 127.0.0.1 (``[fama] metrics_port``) and fetches
it with eventlet's green urllib from the main greenlet.
"""

from __future__ import annotations

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
import ipaddress
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from eventlet.green.urllib import request as green_request
from fake_datapath import FakeDatapath, event
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3
from ryu.ofproto import ofproto_v1_3_parser as parser

import fama_ryu.app as app_module
from fama_ryu import metrics, mh
from fama_ryu.store import StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mn_factory import COA_1, MobileNode  # noqa: E402

CONF = cfg.CONF
DPID_A, DPID_B = 0xA, 0xB
DP_ID_A, DP_ID_B = f"{DPID_A:016x}", f"{DPID_B:016x}"
PORTS_A = {"a-acc1": 1, "a-acc2": 2, "a-core": 10, "a-gre": 20}
CORE_A, CORE_B = 10, 10
ROUTER_MAC_A = "02:00:00:00:0a:01"
ROUTER_MAC_B = "02:00:00:00:0b:01"
CORE_MAC = "02:00:00:00:ff:ff"
ANCHOR_B = ipaddress.IPv6Address("2001:db8:b::1").packed
COA_AWAY_FROM_B = ipaddress.IPv6Address("2001:db8:c::100").packed  # reached through the core

DOMAIN: dict[str, Any] = {
    "dars": [
        {
            "name": "dara",
            "dpid": DPID_A,
            "access_ports": ["a-acc1", "a-acc2"],
            "core_port": "a-core",
            "gre_port": "a-gre",
            "router_mac": ROUTER_MAC_A,
            "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
            "anchor_address": "2001:db8:a::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
        },
        {
            "name": "darb",
            "dpid": DPID_B,
            "access_ports": [1],
            "core_port": CORE_B,
            "gre_port": 20,
            "router_mac": ROUTER_MAC_B,
            "access_prefixes": ["2001:db8:b::/64"],
            "anchor_address": "2001:db8:b::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
            "return_routability": True,
        },
    ]
}

METRIC_FAMILIES = {
    "fama_bu_accepted",
    "fama_bu_rejected",
    "fama_bu_dropped",
    "fama_punted_packets",
    "fama_rsa_operations",
    "fama_flows_installed",
    "fama_store_errors",
    "fama_bindings",
    "fama_dar_connected",
    "fama_bu_processing_seconds",
}
LABELS = {"dp_id", "dp_name"}
REAL_SPAWN = hub.spawn  # the fixture replaces hub.spawn; the endpoint test needs the real one


# ---------------------------------------------------------------- fakes


def flow_mods(messages: list[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, parser.OFPFlowMod)]


def packet_outs(messages: list[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, parser.OFPPacketOut)]


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def from_core(ipv6_packet: bytes, router_mac: str = ROUTER_MAC_A) -> bytes:
    return mh.build_ethernet_frame(mac(CORE_MAC), mac(router_mac), ipv6_packet)


def with_bad_checksum(ipv6_packet: bytes) -> bytes:
    """Flip the Mobility Header checksum, walking the extension headers to find it."""
    next_header, offset = ipv6_packet[6], 40
    while next_header != mh.IPPROTO_MH:
        next_header = ipv6_packet[offset]
        offset += (ipv6_packet[offset + 1] + 1) * 8
    (checksum,) = struct.unpack_from("!H", ipv6_packet, offset + 4)
    corrupted = bytearray(ipv6_packet)
    struct.pack_into("!H", corrupted, offset + 4, checksum ^ 0x5A5A)
    return bytes(corrupted)


class Rig:
    """Builds FamaApps on a temporary domain file and store, and feeds them events."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.apps: list[app_module.FamaApp] = []

    def new_app(self) -> app_module.FamaApp:
        app = app_module.FamaApp(wsgi=WSGIApplication())
        self.apps.append(app)
        return app

    @staticmethod
    def connect(app: app_module.FamaApp, dpid: int = DPID_A) -> FakeDatapath:
        datapath = FakeDatapath(dpid)
        app._switch_features(event(datapath))
        ports = PORTS_A if dpid == DPID_A else {}
        body = [SimpleNamespace(name=name.encode(), port_no=no) for name, no in ports.items()]
        app._port_desc(event(datapath, body=body))
        return datapath

    @staticmethod
    def punt(app: app_module.FamaApp, datapath: FakeDatapath, port: int, frame: bytes) -> None:
        app._packet_in(event(datapath, match={"in_port": port}, data=frame, reason=0))
        app._commit_pending()

    @staticmethod
    def release_barriers(app: app_module.FamaApp, datapath: FakeDatapath) -> None:
        for dpid, xid in list(app._after_barrier):
            if dpid == datapath.id:
                app._barrier_reply(event(datapath, xid=xid))


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    domain_file = tmp_path / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(DOMAIN))
    CONF.set_override("domain_file", str(domain_file), group="fama")
    CONF.set_override("store_path", str(tmp_path / "state" / "bindings.sqlite"), group="fama")
    monkeypatch.setattr(app_module.hub, "spawn", lambda *args, **kwargs: None)
    rig = Rig(tmp_path)
    try:
        yield rig
    finally:
        for app in rig.apps:
            app.store.close()
        CONF.clear_override("domain_file", group="fama")
        CONF.clear_override("store_path", group="fama")
        CONF.clear_override("metrics_port", group="fama")


@pytest.fixture
def app(rig: Rig) -> app_module.FamaApp:
    return rig.new_app()


# ---------------------------------------------------------------- reading the exposition


def exposition(app: app_module.FamaApp) -> str:
    return generate_latest(app.metrics.registry).decode()


def samples(app: app_module.FamaApp) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(exposition(app))
        for sample in family.samples
    ]


def family_names(app: app_module.FamaApp) -> set[str]:
    return {family.name for family in text_string_to_metric_families(exposition(app))}


def value(app: app_module.FamaApp, name: str, dp_id: str = DP_ID_A) -> float | None:
    """The one sample ``name`` of the DAR ``dp_id``; None when there is none."""
    found = [s.value for s in samples(app) if s.name == name and s.labels.get("dp_id") == dp_id]
    assert len(found) <= 1, (name, dp_id, found)
    return found[0] if found else None


def bound_first_bu(
    rig: Rig, app: app_module.FamaApp, datapath: FakeDatapath, mn: MobileNode
) -> None:
    rig.punt(app, datapath, CORE_A, from_core(mn.first_bu(1, COA_1)))
    rig.release_barriers(app, datapath)


# ---------------------------------------------------------------- the registry


def test_a_fresh_app_exposes_every_family_with_zeroes(app: app_module.FamaApp) -> None:
    assert family_names(app) == METRIC_FAMILIES
    for name in ("fama_bu_accepted_total", "fama_flows_installed_total", "fama_bindings"):
        assert value(app, name, DP_ID_A) == 0 and value(app, name, DP_ID_B) == 0
    assert value(app, "fama_dar_connected", DP_ID_A) == 0
    # No BU processed yet: the histogram has no child, hence no sample.
    assert [s for s in samples(app) if s.name.startswith("fama_bu_processing_seconds")] == []


def test_a_first_cga_bu_is_counted_timed_and_bound(rig: Rig, app: app_module.FamaApp) -> None:
    datapath = rig.connect(app)
    mn = MobileNode.create()
    bound_first_bu(rig, app, datapath, mn)
    [ba_out] = packet_outs(datapath.sent)
    ba = mh.parse_ethernet_frame(bytes(ba_out.data)).message
    assert isinstance(ba, mh.BindingAck) and ba.status == 0

    text = exposition(app)
    line = re.search(
        r'^fama_bu_accepted_total\{dp_id="000000000000000a",dp_name="dara"\} (\S+)$', text, re.M
    )
    assert line is not None and float(line.group(1)) == 1
    assert value(app, "fama_bu_accepted_total", DP_ID_B) == 0
    assert value(app, "fama_bu_rejected_total") == 0
    assert value(app, "fama_bu_dropped_total") == 0
    assert value(app, "fama_bu_processing_seconds_count") == 1
    latency = value(app, "fama_bu_processing_seconds_sum")
    assert latency is not None and 0 < latency < 5
    assert value(app, "fama_bu_processing_seconds_count", DP_ID_B) is None  # darb saw no BU
    assert value(app, "fama_bindings") == 1 and value(app, "fama_bindings", DP_ID_B) == 0
    assert value(app, "fama_rsa_operations_total") == 2  # signature check + PHKT encryption
    assert value(app, "fama_punted_packets_total") == 1
    assert value(app, "fama_store_errors_total") == 0


def test_flows_installed_is_the_number_of_flow_mods_the_switch_received(
    rig: Rig, app: app_module.FamaApp
) -> None:
    datapath = rig.connect(app)
    installed = value(app, "fama_flows_installed_total")
    assert installed is not None and installed > 20  # the pipeline
    assert installed == len(flow_mods(datapath.sent))
    bound_first_bu(rig, app, datapath, MobileNode.create())
    after_bu = value(app, "fama_flows_installed_total")
    assert after_bu is not None and after_bu > installed  # the binding's tunnel rules
    assert after_bu == len(flow_mods(datapath.sent))
    # The deletes of other generations that end every connection are counted too.
    deletes = [m for m in flow_mods(datapath.sent) if m.command == ofproto_v1_3.OFPFC_DELETE]
    assert len(deletes) == 32
    assert value(app, "fama_flows_installed_total") == len(flow_mods(datapath.sent))
    # Barriers, packet-outs and stats requests are not flow-mods.
    assert len(datapath.sent) > len(flow_mods(datapath.sent))
    assert value(app, "fama_flows_installed_total", DP_ID_B) == 0


def test_punted_packets_counts_every_packet_in_of_a_connected_dar(
    rig: Rig, app: app_module.FamaApp
) -> None:
    datapath = rig.connect(app)
    mn = MobileNode.create()
    rig.punt(app, datapath, CORE_A, from_core(mn.first_bu(1, COA_1)))
    rig.punt(app, datapath, CORE_A, from_core(with_bad_checksum(mn.first_bu(2, COA_1))))
    rig.punt(app, datapath, CORE_A, from_core(mn.phkt_bu(3, COA_1, phkt=bytes(8))))
    assert value(app, "fama_punted_packets_total") == 3
    # darb's switch never connected: its packet-ins are ignored, not counted.
    rig.punt(app, FakeDatapath(DPID_B), CORE_B, from_core(mn.first_bu(1, COA_1)))
    assert value(app, "fama_punted_packets_total", DP_ID_B) == 0
    assert value(app, "fama_punted_packets_total") == 3


def test_a_rejected_bu_increments_rejected_only(rig: Rig, app: app_module.FamaApp) -> None:
    datapath = rig.connect(app)
    stranger = MobileNode.create(seed=2)
    rig.punt(app, datapath, CORE_A, from_core(stranger.phkt_bu(3, COA_1, phkt=bytes(8))))
    [ba_out] = packet_outs(datapath.sent)
    ba = mh.parse_ethernet_frame(bytes(ba_out.data)).message
    assert isinstance(ba, mh.BindingAck) and ba.status == 147
    assert value(app, "fama_bu_rejected_total") == 1
    assert value(app, "fama_bu_accepted_total") == 0
    assert value(app, "fama_bu_dropped_total") == 0
    assert value(app, "fama_bindings") == 0
    assert value(app, "fama_bu_processing_seconds_count") == 1  # a decision was made


def test_a_bad_checksum_mobility_header_increments_dropped(
    rig: Rig, app: app_module.FamaApp
) -> None:
    datapath = rig.connect(app)
    sent_before = len(datapath.sent)
    mn = MobileNode.create()
    rig.punt(app, datapath, CORE_A, from_core(with_bad_checksum(mn.first_bu(1, COA_1))))
    assert datapath.sent[sent_before:] == []  # silently
    assert app.dars[DPID_A].counters["drop:bad_checksum"] == 1
    assert value(app, "fama_bu_dropped_total") == 1
    assert value(app, "fama_bu_accepted_total") == 0 and value(app, "fama_bu_rejected_total") == 0
    assert value(app, "fama_bindings") == 0
    assert value(app, "fama_punted_packets_total") == 1


def test_every_drop_reason_is_summed_into_dropped(rig: Rig, app: app_module.FamaApp) -> None:
    datapath = rig.connect(app)
    mn = MobileNode.create()
    bound_first_bu(rig, app, datapath, mn)
    rig.punt(app, datapath, CORE_A, from_core(with_bad_checksum(mn.first_bu(2, COA_1))))
    rig.punt(app, datapath, CORE_A, from_core(mn.phkt_bu(2, COA_1, phkt=bytes(8))))  # bad auth
    counters = app.dars[DPID_A].counters
    assert (counters["drop:bad_checksum"], counters["drop:bad_authenticator"]) == (1, 1)
    assert value(app, "fama_bu_dropped_total") == 2
    assert value(app, "fama_bu_accepted_total") == 1


def test_store_failures_are_counted(
    rig: Rig, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = rig.connect(app)

    def refuse(changes: object, run_blocking: object = None) -> None:
        raise StoreError("disk_full", "no space left on device")

    monkeypatch.setattr(app.store, "commit", refuse)
    rig.punt(app, datapath, CORE_A, from_core(MobileNode.create().first_bu(1, COA_1)))
    assert value(app, "fama_store_errors_total") == 1
    assert value(app, "fama_bindings") == 0


def test_dar_connected_follows_the_switch(rig: Rig, app: app_module.FamaApp) -> None:
    assert value(app, "fama_dar_connected") == 0
    datapath = rig.connect(app)
    assert value(app, "fama_dar_connected") == 1
    assert value(app, "fama_dar_connected", DP_ID_B) == 0
    bound_first_bu(rig, app, datapath, MobileNode.create())
    app._switch_gone(SimpleNamespace(datapath=datapath))  # EventOFPStateChange, DEAD
    assert value(app, "fama_dar_connected") == 0
    assert value(app, "fama_bindings") == 1  # kept for the reconnection
    rig.connect(app)
    assert value(app, "fama_dar_connected") == 1


def test_every_sample_is_labelled_by_dp_id_and_dp_name_only(
    rig: Rig, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = rig.connect(app)
    mn = MobileNode.create()
    bound_first_bu(rig, app, datapath, mn)
    stranger = MobileNode.create(seed=2)
    rig.punt(app, datapath, CORE_A, from_core(stranger.phkt_bu(3, COA_1, phkt=bytes(8))))
    rig.punt(app, datapath, CORE_A, from_core(with_bad_checksum(mn.first_bu(2, COA_1))))
    all_samples = samples(app)
    assert {s.name.split("_bucket")[0] for s in all_samples} >= {
        "fama_bu_accepted_total",
        "fama_bu_processing_seconds",
        "fama_bindings",
        "fama_dar_connected",
    }
    for sample in all_samples:
        names = set(sample.labels)
        if sample.name == "fama_bu_processing_seconds_bucket":
            # A histogram bucket necessarily adds its upper bound, nothing else.
            assert names == LABELS | {"le"}, sample
        else:
            assert names == LABELS, sample
        assert (sample.labels["dp_id"], sample.labels["dp_name"]) in {
            (DP_ID_A, "dara"),
            (DP_ID_B, "darb"),
        }
    # No address anywhere: neither as a label value nor in the text at all.
    text = exposition(app)
    for address in (mn.hoa, stranger.hoa, COA_1):
        assert str(ipaddress.IPv6Address(address)) not in text
    label_values = {v for s in all_samples for k, v in s.labels.items() if k != "le"}
    assert not any(":" in v for v in label_values)


# ---------------------------------------------------------------- bugs


def test_a_care_of_test_init_is_not_an_accepted_binding_update(
    rig: Rig, app: app_module.FamaApp
) -> None:
    datapath = rig.connect(app, DPID_B)
    coti = mh.build_packet(
        mh.CareOfTestInit(b"cookie!!"), source=COA_AWAY_FROM_B, destination=ANCHOR_B
    )
    rig.punt(app, datapath, CORE_B, from_core(coti, ROUTER_MAC_B))
    [cot_out] = packet_outs(datapath.sent)
    assert isinstance(mh.parse_ethernet_frame(bytes(cot_out.data)).message, mh.CareOfTest)
    assert value(app, "fama_bu_accepted_total", DP_ID_B) == 0


def test_punts_that_are_no_mobility_header_are_not_dropped_bus(
    rig: Rig, app: app_module.FamaApp
) -> None:
    datapath = rig.connect(app)
    arp = mac(ROUTER_MAC_A) + mac(CORE_MAC) + b"\x08\x06" + bytes(46)
    rig.punt(app, datapath, CORE_A, arp)
    assert app.dars[DPID_A].counters["drop:punt_not_ipv6"] == 1
    assert value(app, "fama_punted_packets_total") == 1
    assert value(app, "fama_bu_dropped_total") == 0


# ---------------------------------------------------------------- the endpoint


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_no_endpoint_without_metrics_port(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[Callable[..., Any]] = []
    monkeypatch.setattr(app_module.hub, "spawn", lambda func, *a, **k: spawned.append(func))
    app = rig.new_app()
    assert CONF.fama.metrics_port == 0
    assert spawned == [app._commit_when_idle, app._tick_forever]
    assert not hasattr(app, "_metrics_server")


def test_the_endpoint_serves_the_registry_over_http(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    CONF.set_override("metrics_port", port, group="fama")
    threads: list[Any] = []

    def spawn(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(func, "__name__", "") in ("_tick_forever", "_commit_when_idle"):
            return None  # the loops stay off, as in the other tests
        thread = REAL_SPAWN(func, *args, **kwargs)
        threads.append(thread)
        return thread

    monkeypatch.setattr(app_module.hub, "spawn", spawn)
    app = rig.new_app()
    try:
        assert threads == [app._metrics_server] and threads[0] is not None
        datapath = rig.connect(app)
        bound_first_bu(rig, app, datapath, MobileNode.create())
        hub.sleep(0.2)  # let the server's green thread reach accept()
        # The fetch must yield to the hub (the server runs in a green thread of
        # this very thread): eventlet's green urllib, never a blocking socket.
        with green_request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            body = response.read().decode()
        lines = body.splitlines()
        assert 'fama_bu_accepted_total{dp_id="000000000000000a",dp_name="dara"} 1.0' in lines
        assert 'fama_dar_connected{dp_id="000000000000000a",dp_name="dara"} 1.0' in lines
        assert any(line.startswith("fama_bu_processing_seconds_count{") for line in lines)
        served = {f.name for f in text_string_to_metric_families(body)}
        assert served == family_names(app)  # what generate_latest makes of the registry
        assert served == METRIC_FAMILIES
    finally:
        for thread in threads:
            hub.kill(thread)
        hub.sleep(0)
    assert all(thread.dead for thread in threads)
    with socket.socket() as probe:  # the listening socket went with the server
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@settings(max_examples=200, deadline=None)
@given(
    latencies=st.lists(
        st.one_of(
            st.sampled_from(metrics.BU_LATENCY_BUCKETS_S),  # on a bound: counted in its bucket
            st.floats(0, 5, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_the_bu_latency_histogram_exposes_what_prometheus_clients_histogram_does(
    latencies: list[float],
) -> None:
    dar = SimpleNamespace(dpid=0xA, name="dara")
    ours = metrics.BuLatency()
    registry = CollectorRegistry()
    reference = Histogram(
        "fama_bu_processing_seconds",
        "Time from packet-in to the decision and its flow-mods being sent",
        labelnames=metrics.LABELS,
        buckets=metrics.BU_LATENCY_BUCKETS_S,
        registry=registry,
    )
    for seconds in latencies:
        ours.observe(dar.dpid, seconds)
        reference.labels(f"{dar.dpid:016x}", dar.name).observe(seconds)
    expected = [s for f in registry.collect() for s in f.samples if not s.name.endswith("_created")]
    got = ours.family([dar]).samples  # type: ignore[arg-type]
    assert [(s.name, s.labels) for s in got] == [(s.name, s.labels) for s in expected]
    assert [s.value for s in got] == pytest.approx([s.value for s in expected])
