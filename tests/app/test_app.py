"""The Ryu shim ``FamaApp``, in process, with fake datapaths and events (no network).

The app is built as ryu-manager would build it (oslo options on
``ryu.cfg.CONF``, a ``WSGIApplication`` context) with the tick loop left
unspawned; OpenFlow events are plain objects carrying the attributes the
handlers read, and datapaths record what the app sends (real ryu
OpenFlow 1.3 message objects, serialised to prove they encode).
"""

from __future__ import annotations

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
import ipaddress
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from fake_datapath import FakeDatapath, event
from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.ofproto import ofproto_v1_3
from ryu.ofproto import ofproto_v1_3_parser as parser
from webob import Request

import fama_ryu.app as app_module
from fama_ryu import mh
from fama_ryu.store import StoreError
from openflow_pipelines.cookies import (
    FlowKind,
    decode_cookie,
    encode_cookie,
    other_generations_filters,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mn_factory import COA_1, COA_2, MobileNode  # noqa: E402

CONF = cfg.CONF
DPID_A, DPID_B, DPID_UNKNOWN = 0xA, 0xB, 0x99
PORTS_A = {"a-acc1": 1, "a-acc2": 2, "a-core": 10, "a-gre": 20}
CORE_A = PORTS_A["a-core"]
ROUTER_MAC_A = "02:00:00:00:0a:01"
CORE_MAC = "02:00:00:00:ff:ff"

DOMAIN = {
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
            "core_port": 10,
            "gre_port": 20,
            "router_mac": "02:00:00:00:0b:01",
            "access_prefixes": ["2001:db8:b::/64"],
            "anchor_address": "2001:db8:b::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
        },
    ]
}


def deliver(app: app_module.FamaApp, packet_in: SimpleNamespace) -> None:
    """A packet-in, then what the event loop does when its queue runs dry: the group commit."""
    app._packet_in(packet_in)
    app._commit_pending()


def port_desc_event(datapath: FakeDatapath, ports: dict[str, int]) -> SimpleNamespace:
    body = [SimpleNamespace(name=name.encode(), port_no=number) for name, number in ports.items()]
    return event(datapath, body=body)


def packet_in_event(datapath: FakeDatapath, port: int, frame: bytes) -> SimpleNamespace:
    return event(datapath, match={"in_port": port}, data=frame, reason=0, buffer_id=0xFFFFFFFF)


def flow_mods(messages: list[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, parser.OFPFlowMod)]


def packet_outs(messages: list[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, parser.OFPPacketOut)]


def barriers(messages: list[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, parser.OFPBarrierRequest)]


def out_port(packet_out: Any) -> int:
    [action] = packet_out.actions
    return int(action.port)


def ba_of(packet_out: Any) -> mh.BindingAck:
    message = mh.parse_ethernet_frame(bytes(packet_out.data)).message
    assert isinstance(message, mh.BindingAck)
    return message


def from_core(ipv6_packet: bytes) -> bytes:
    return mh.build_ethernet_frame(
        bytes.fromhex(CORE_MAC.replace(":", "")),
        bytes.fromhex(ROUTER_MAC_A.replace(":", "")),
        ipv6_packet,
    )


def stored_hoas(store_path: Path) -> set[bytes]:
    """The bindings in the SQLite file, read through a connection of our own."""
    connection = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        return {row[0] for row in connection.execute("SELECT hoa FROM bindings")}
    finally:
        connection.close()


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store_path = tmp_path / "state" / "bindings.sqlite"
        self.apps: list[app_module.FamaApp] = []

    def new_app(self) -> app_module.FamaApp:
        wsgi = WSGIApplication()
        app = app_module.FamaApp(wsgi=wsgi)
        app.test_wsgi = wsgi  # type: ignore[attr-defined]
        self.apps.append(app)
        return app

    def connect(self, app: app_module.FamaApp, dpid: int = DPID_A, **kwargs: Any) -> FakeDatapath:
        datapath = FakeDatapath(dpid, **kwargs)
        app._switch_features(event(datapath))
        app._port_desc(port_desc_event(datapath, PORTS_A if dpid == DPID_A else {}))
        return datapath


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    domain_file = tmp_path / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(DOMAIN))
    CONF.set_override("domain_file", str(domain_file), group="fama")
    CONF.set_override("store_path", str(tmp_path / "state" / "bindings.sqlite"), group="fama")
    spawned: list[Any] = []
    monkeypatch.setattr(app_module.hub, "spawn", lambda *args, **kwargs: spawned.append(args))
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        for app in harness.apps:
            app.store.close()
        CONF.clear_override("domain_file", group="fama")
        CONF.clear_override("store_path", group="fama")


@pytest.fixture
def app(harness: Harness) -> app_module.FamaApp:
    return harness.new_app()


def get_json(app: app_module.FamaApp, path: str) -> tuple[int, Any]:
    import json

    response = Request.blank(path).get_response(app.test_wsgi)  # type: ignore[attr-defined]
    return response.status_int, json.loads(response.body)


# ---------------------------------------------------------------- construction


def test_the_app_registers_rest_and_would_spawn_the_committer_and_the_ticker(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[Any] = []
    monkeypatch.setattr(app_module.hub, "spawn", lambda *args, **kwargs: spawned.append(args))
    app = harness.new_app()
    assert spawned == [(app._commit_when_idle,), (app._tick_forever,)]
    assert set(app.dars) == {DPID_A, DPID_B}
    assert get_json(app, "/fama/v1/dars")[0] == 200
    assert harness.store_path.exists()


def test_missing_domain_file_option_exits(harness: Harness) -> None:
    CONF.set_override("domain_file", "", group="fama")
    with pytest.raises(SystemExit, match="domain_file is not set"):
        harness.new_app()


def test_invalid_domain_file_exits(harness: Harness) -> None:
    bad = harness.tmp_path / "bad.yaml"
    bad.write_text("dars: []\nbogus: 1\n")
    CONF.set_override("domain_file", str(bad), group="fama")
    with pytest.raises(SystemExit, match="invalid domain file"):
        harness.new_app()


# ---------------------------------------------------------------- switch lifecycle


def test_unknown_switch_is_left_alone_with_a_warning(
    app: app_module.FamaApp, caplog: pytest.LogCaptureFixture
) -> None:
    datapath = FakeDatapath(DPID_UNKNOWN)
    with caplog.at_level(logging.WARNING, logger="fama_ryu.app"):
        app._switch_features(event(datapath))
        app._port_desc(port_desc_event(datapath, PORTS_A))
        deliver(app, packet_in_event(datapath, 1, b"\x00" * 60))
    assert datapath.sent == []
    assert any(
        record.levelno == logging.WARNING and "0000000000000099" in record.getMessage()
        for record in caplog.records
    )
    assert DPID_UNKNOWN not in app.datapaths


def test_switch_features_asks_for_port_descriptions(app: app_module.FamaApp) -> None:
    datapath = FakeDatapath(DPID_A)
    app._switch_features(event(datapath))
    [request] = datapath.take()
    assert isinstance(request, parser.OFPPortDescStatsRequest)


def match_of(flow_mod: Any) -> dict[str, Any]:
    fields = flow_mod.to_jsondict()["OFPFlowMod"]["match"]["OFPMatch"]["oxm_fields"]
    return {field["OXMTlv"]["field"]: field["OXMTlv"]["value"] for field in fields}


def test_port_desc_installs_the_pipeline_then_sweeps_other_generations(
    app: app_module.FamaApp,
) -> None:
    datapath = FakeDatapath(DPID_A)
    app._switch_features(event(datapath))
    datapath.take()
    app._port_desc(port_desc_event(datapath, {**PORTS_A, "unrelated": 77}))
    sent = datapath.take()
    mods = [m for m in flow_mods(sent) if m.command == ofproto_v1_3.OFPFC_ADD]
    sweep = [m for m in flow_mods(sent) if m.command == ofproto_v1_3.OFPFC_DELETE]
    assert len(mods) > 20 and len(sweep) == 32
    assert {m.cookie for m in mods} == {encode_cookie(FlowKind.PIPELINE, 1)}
    # A few flows in the OpenFlow encoding: ports resolved from their names.
    jsons = [m.to_jsondict()["OFPFlowMod"] for m in mods]
    gre_dispatch = [
        j
        for j, m in zip(jsons, mods, strict=True)
        if match_of(m) == {"in_port": 20, "eth_type": 0x86DD}
    ]
    [dispatch] = gre_dispatch
    assert list(dispatch["instructions"][0]) == ["OFPInstructionGotoTable"]
    punts = [
        m
        for m in mods
        if match_of(m).get("icmpv6_type") == 133 and match_of(m).get("in_port") in (1, 2)
    ]
    assert sorted(match_of(m)["in_port"] for m in punts) == [1, 2]
    for m in punts:
        # Through the neighbour-discovery punt meter, then to the controller.
        meter, instruction = m.to_jsondict()["OFPFlowMod"]["instructions"]
        assert meter["OFPInstructionMeter"]["meter_id"] > 0
        [action] = instruction["OFPInstructionActions"]["actions"]
        assert action["OFPActionOutput"]["port"] == ofproto_v1_3.OFPP_CONTROLLER
    [default_route] = [
        m
        for m in mods
        if match_of(m) == {"eth_type": 0x86DD}
        and m.instructions
        and m.table_id > 0
        and any(
            isinstance(action, parser.OFPActionDecNwTtl)
            for instruction in m.instructions
            for action in getattr(instruction, "actions", [])
        )
    ]
    [instruction] = default_route.instructions
    actions = instruction.actions
    assert isinstance(actions[0], parser.OFPActionDecNwTtl)
    assert {(a.key, a.value) for a in actions[1:-1]} == {
        ("eth_src", ROUTER_MAC_A),
        ("eth_dst", CORE_MAC),
    }
    assert actions[-1].port == CORE_A
    # Meters (deleted, then added, each step behind a barrier), flows, a barrier,
    # then the deletes of every other generation: no RA yet, no stats request.
    assert packet_outs(sent) == []
    kinds = [type(m).__name__ for m in sent]
    assert (
        kinds
        == ["OFPMeterMod"] * 4
        + ["OFPBarrierRequest"]
        + ["OFPMeterMod"] * 4
        + ["OFPBarrierRequest"]
        + ["OFPFlowMod"] * len(mods)
        + ["OFPBarrierRequest"]
        + ["OFPFlowMod"] * 32
    )
    meters = [m for m in sent if isinstance(m, parser.OFPMeterMod)]
    assert [m.command for m in meters] == [ofproto_v1_3.OFPMC_DELETE] * 4 + [
        ofproto_v1_3.OFPMC_ADD
    ] * 4
    assert all(len(m.bands) == 1 and m.bands[0].rate > 0 for m in meters[4:])
    assert [(m.cookie, m.cookie_mask) for m in sweep] == other_generations_filters(1)
    assert all(m.table_id == ofproto_v1_3.OFPTT_ALL for m in sweep)
    dar = app.dars[DPID_A]
    assert app.datapaths[DPID_A] is datapath and dar.connected
    # The next tick sends the unsolicited RAs out both access ports, and nothing else.
    app._execute_now(dar, dar.tick(time.time()))
    ticked = datapath.take()
    assert ticked == packet_outs(ticked)
    assert sorted(out_port(p) for p in ticked) == [1, 2]


def test_port_desc_without_a_configured_port_leaves_the_switch_alone(
    app: app_module.FamaApp, caplog: pytest.LogCaptureFixture
) -> None:
    datapath = FakeDatapath(DPID_A)
    ports = {name: number for name, number in PORTS_A.items() if name != "a-gre"}
    with caplog.at_level(logging.ERROR, logger="fama_ryu.app"):
        app._port_desc(port_desc_event(datapath, ports))
    assert datapath.sent == []
    assert DPID_A not in app.datapaths
    assert any("a-gre" in record.getMessage() for record in caplog.records)


def test_every_connection_ends_with_deletes_of_every_other_generation(
    harness: Harness, app: app_module.FamaApp
) -> None:
    first = harness.connect(app)
    app._switch_gone(SimpleNamespace(datapath=first))
    second = harness.connect(app)
    third = harness.connect(app)  # a reconnect without a DEAD event in between
    assert app.dars[DPID_A].generation == 3 and app.datapaths[DPID_A] is third
    for datapath, generation in ((first, 1), (second, 2), (third, 3)):
        sent = datapath.take()
        deletes = [m for m in flow_mods(sent) if m.command == ofproto_v1_3.OFPFC_DELETE]
        assert [(m.cookie, m.cookie_mask) for m in deletes] == other_generations_filters(generation)
        assert all(m.table_id == ofproto_v1_3.OFPTT_ALL for m in deletes)
        # Behind a barrier, after every flow of the new generation: the last messages.
        assert sent[-len(deletes) :] == deletes
        assert isinstance(sent[-len(deletes) - 1], parser.OFPBarrierRequest)
    assert second is not third


# ---------------------------------------------------------------- Binding Updates through the app


def test_first_bu_is_stored_then_flows_then_barrier_then_ba(
    harness: Harness, app: app_module.FamaApp
) -> None:
    mn = MobileNode.create()
    in_store_at_flow_mod: list[bool] = []

    def watch(message: Any) -> None:
        if isinstance(message, parser.OFPFlowMod):
            fields = decode_cookie(message.cookie)
            if fields is not None and fields.kind is FlowKind.BINDING:
                in_store_at_flow_mod.append(mn.hoa in stored_hoas(harness.store_path))

    datapath = harness.connect(app, on_send=watch)
    datapath.take()
    deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1))))
    sent = datapath.take()
    # Persisted before anything of the binding reached the switch.
    assert in_store_at_flow_mod and all(in_store_at_flow_mod)
    assert mn.hoa in stored_hoas(harness.store_path)
    mods = flow_mods(sent)
    assert mods and all(m.cookie == encode_cookie(FlowKind.BINDING, 1) for m in mods)
    tunnel = [m for m in mods if match_of(m).get("ipv6_dst") == str(ipaddress.IPv6Address(mn.hoa))]
    assert tunnel
    # The BA waits: the last message is the barrier whose reply releases it.
    assert packet_outs(sent) == []
    assert isinstance(sent[-1], parser.OFPBarrierRequest)
    barrier_xid = sent[-1].xid
    app._barrier_reply(event(datapath, xid=barrier_xid - 1))  # another barrier
    assert datapath.take() == []
    app._barrier_reply(event(datapath, xid=barrier_xid))
    [ba_out] = datapath.take()
    assert isinstance(ba_out, parser.OFPPacketOut)
    assert out_port(ba_out) == CORE_A
    assert ba_out.in_port == ofproto_v1_3.OFPP_CONTROLLER
    assert ba_out.buffer_id == ofproto_v1_3.OFP_NO_BUFFER
    ba = ba_of(ba_out)
    assert ba.status == 0 and ba.sequence == 1
    mn.learn_phkt(bytes(ba_out.data)[14:], COA_1)
    app._barrier_reply(event(datapath, xid=barrier_xid))  # a duplicate reply sends nothing
    assert datapath.take() == []
    assert [b.hoa for b in app.dars[DPID_A].bindings()] == [mn.hoa]


def test_rejected_bu_is_answered_at_once(harness: Harness, app: app_module.FamaApp) -> None:
    datapath = harness.connect(app)
    datapath.take()
    stranger = MobileNode.create(seed=2)
    frame = from_core(stranger.phkt_bu(3, COA_1, phkt=bytes(8)))
    deliver(app, packet_in_event(datapath, CORE_A, frame))
    [ba_out] = datapath.take()
    assert ba_of(ba_out).status == 147
    assert stored_hoas(harness.store_path) == set()


def test_store_failure_answers_130_at_once_and_installs_nothing(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = harness.connect(app)
    datapath.take()

    def refuse(changes: object, run_blocking: object = None) -> None:
        raise StoreError("disk_full", "no space left on device")

    monkeypatch.setattr(app.store, "commit", refuse)
    mn = MobileNode.create()
    deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1))))
    sent = datapath.take()
    assert flow_mods(sent) == [] and barriers(sent) == []
    [ba_out] = packet_outs(sent)
    assert ba_of(ba_out).status == 130 and out_port(ba_out) == CORE_A
    dar = app.dars[DPID_A]
    assert dar.bindings() == []
    assert dar.counters["store_error:disk_full"] == 1
    assert app._after_barrier == {}


def test_dead_switch_drops_pending_bas_and_disconnects_the_dar(
    harness: Harness, app: app_module.FamaApp
) -> None:
    datapath = harness.connect(app)
    datapath.take()
    mn = MobileNode.create()
    deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1))))
    barrier_xid = datapath.take()[-1].xid
    app._switch_gone(SimpleNamespace(datapath=datapath))
    assert not app.dars[DPID_A].connected
    assert DPID_A not in app.datapaths and app._after_barrier == {}
    app._barrier_reply(event(datapath, xid=barrier_xid))
    assert datapath.take() == []
    # Packets of a gone switch are ignored.
    deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.phkt_bu(2, COA_1, phkt=b"x" * 8))))
    assert datapath.take() == []
    # The binding is kept (stored and cached) for the reconnection.
    assert mn.hoa in stored_hoas(harness.store_path)


def test_a_stale_connection_closing_does_not_unseat_the_new_one(
    harness: Harness, app: app_module.FamaApp
) -> None:
    old = harness.connect(app)
    new = harness.connect(app)
    app._switch_gone(SimpleNamespace(datapath=old))
    assert app.datapaths[DPID_A] is new and app.dars[DPID_A].connected
    app._switch_gone(SimpleNamespace(datapath=SimpleNamespace(id=None)))  # before features
    app._switch_gone(SimpleNamespace(datapath=FakeDatapath(DPID_UNKNOWN)))
    assert app.dars[DPID_A].connected


def test_packet_in_failure_is_logged_and_counted(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = harness.connect(app)
    datapath.take()
    dar = app.dars[DPID_A]

    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(dar, "packet_in", explode)
    deliver(app, packet_in_event(datapath, CORE_A, b"\x00" * 60))
    assert dar.counters["handler_exception"] == 1
    assert datapath.take() == []


def test_packet_in_before_port_desc_is_ignored(app: app_module.FamaApp) -> None:
    datapath = FakeDatapath(DPID_A)
    app._switch_features(event(datapath))
    datapath.take()
    deliver(app, packet_in_event(datapath, 1, b"\x00" * 60))
    assert datapath.sent == [] and app.dars[DPID_A].counters["packet_in"] == 0


def test_error_and_flow_removed_messages_are_counted(
    harness: Harness, app: app_module.FamaApp, caplog: pytest.LogCaptureFixture
) -> None:
    datapath = harness.connect(app)
    with caplog.at_level(logging.ERROR, logger="fama_ryu.app"):
        app._error(event(datapath, type=5, code=6, data=b"\x04\x0e" + b"\x00" * 100))
    assert app.dars[DPID_A].counters["switch_error"] == 1
    assert any("type 5 code 6" in record.getMessage() for record in caplog.records)
    app._flow_removed(event(datapath, reason=ofproto_v1_3.OFPRR_HARD_TIMEOUT))
    assert app.dars[DPID_A].counters["flow_removed_reason:1"] == 1
    app._error(event(FakeDatapath(DPID_UNKNOWN), type=1, code=1, data=b""))
    app._flow_removed(event(FakeDatapath(DPID_UNKNOWN), reason=0))


def test_tick_sends_ras_and_expires_bindings(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = harness.connect(app)
    mn = MobileNode.create()
    deliver(
        app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1, lifetime_units=1)))
    )
    datapath.take()
    dar = app.dars[DPID_A]
    app._execute_now(dar, dar.tick(time.time() + 3600))
    sent = datapath.take()
    assert sorted(out_port(p) for p in packet_outs(sent)) == [1, 2]
    deletes = [m for m in flow_mods(sent) if m.command == ofproto_v1_3.OFPFC_DELETE_STRICT]
    assert len(deletes) == 3
    assert mn.hoa not in stored_hoas(harness.store_path)
    assert dar.bindings() == []


def test_tick_loop_survives_a_failing_dar(
    app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stop(BaseException):
        pass

    def boom(now: float) -> None:
        raise RuntimeError("tick failed")

    def stop(seconds: float) -> None:
        raise Stop

    monkeypatch.setattr(app.dars[DPID_A], "tick", boom)
    monkeypatch.setattr(app_module.hub, "sleep", stop)
    with pytest.raises(Stop):
        app._tick_forever()
    assert app.dars[DPID_A].counters["handler_exception"] == 1


# ---------------------------------------------------------------- restart


def test_restart_restores_bindings_and_reinstalls_them(harness: Harness) -> None:
    first = harness.new_app()
    datapath = harness.connect(first)
    mn = MobileNode.create()
    deliver(first, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1))))
    first._barrier_reply(event(datapath, xid=datapath.take()[-1].xid))
    mn.learn_phkt(bytes(packet_outs(datapath.take())[0].data)[14:], COA_1)
    first.store.close()
    harness.apps.remove(first)

    second = harness.new_app()
    status, bindings = get_json(second, "/fama/v1/bindings")
    assert status == 200
    assert [(b["hoa"], b["coa"], b["dar"], b["sequence"]) for b in bindings] == [
        (str(ipaddress.IPv6Address(mn.hoa)), str(ipaddress.IPv6Address(COA_1)), "dara", 1)
    ]
    datapath = harness.connect(second)
    mods = flow_mods(datapath.take())
    binding_mods = [m for m in mods if m.cookie == encode_cookie(FlowKind.BINDING, 2)]
    assert binding_mods  # reinstalled with the new generation
    assert {match_of(m).get("tun_ipv6_src") for m in binding_mods} >= {
        str(ipaddress.IPv6Address(COA_1))
    }
    # The PHKT survived the restart: the MN's next BU is accepted.
    deliver(second, packet_in_event(datapath, CORE_A, from_core(mn.phkt_bu(2, COA_2))))
    second._barrier_reply(event(datapath, xid=datapath.take()[-1].xid))
    assert ba_of(packet_outs(datapath.take())[0]).status == 0


def test_revoke_through_the_app(harness: Harness, app: app_module.FamaApp) -> None:
    datapath = harness.connect(app)
    mn = MobileNode.create()
    deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1))))
    datapath.take()
    removed = app.revoke(mn.hoa)
    assert [(dar.name, binding.hoa) for dar, binding in removed] == [("dara", mn.hoa)]
    deletes = flow_mods(datapath.take())
    assert deletes and all(m.command == ofproto_v1_3.OFPFC_DELETE_STRICT for m in deletes)
    assert mn.hoa not in stored_hoas(harness.store_path)
    assert app.revoke(mn.hoa) == []


def test_store_failure_at_reconnection_still_installs_the_pipeline(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binding expired while the switch was away; the store refuses its removal."""
    datapath = harness.connect(app)
    mn = MobileNode.create()
    deliver(
        app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, COA_1, lifetime_units=1)))
    )
    app._switch_gone(SimpleNamespace(datapath=datapath))
    later = time.time() + 3600
    monkeypatch.setattr(app_module, "time", SimpleNamespace(time=lambda: later))
    real_commit = app.store.commit
    refusing = True

    def refuse(changes: Any, run_blocking: Any = None) -> None:
        if refusing:
            raise StoreError("locked", "database is locked")
        real_commit(changes, run_blocking)

    monkeypatch.setattr(app.store, "commit", refuse)
    again = FakeDatapath(DPID_A)
    app._switch_features(event(again))
    again.take()
    app._port_desc(port_desc_event(again, PORTS_A))
    sent = again.take()
    mods = [m for m in flow_mods(sent) if m.command == ofproto_v1_3.OFPFC_ADD]
    # Only the reinstall and the sweep of other generations: nothing removed yet.
    assert len(flow_mods(sent)) == len(mods) + 32
    pipeline = [m for m in mods if m.cookie == encode_cookie(FlowKind.PIPELINE, 2)]
    assert len(pipeline) > 20
    # The binding is reinstalled with the new generation until its removal is stored.
    binding_mods = [m for m in mods if m.cookie == encode_cookie(FlowKind.BINDING, 2)]
    assert {match_of(m).get("tun_ipv6_src") for m in binding_mods} >= {
        str(ipaddress.IPv6Address(COA_1))
    }
    dar = app.dars[DPID_A]
    assert app.datapaths[DPID_A] is again and dar.connected
    # The next tick expires the binding: the store refuses, so its flows stay.
    app._execute_now(dar, dar.tick(later))
    ticked = again.take()
    assert flow_mods(ticked) == []  # the binding's flows are NOT deleted
    assert sorted(out_port(p) for p in packet_outs(ticked)) == [1, 2]  # the RAs still go
    assert dar.counters["store_error:locked"] == 1
    assert [b.hoa for b in dar.bindings()] == [mn.hoa]
    assert mn.hoa in stored_hoas(harness.store_path)
    # Once the store is back, a later tick removes the binding and its flows.
    refusing = False
    app._execute_now(dar, dar.tick(later + 1))
    deletes = flow_mods(again.take())
    assert len(deletes) == 3
    assert all(m.command == ofproto_v1_3.OFPFC_DELETE_STRICT for m in deletes)
    assert dar.bindings() == [] and mn.hoa not in stored_hoas(harness.store_path)
    assert dar.counters["store_error:locked"] == 1


# ---------------------------------------------------------------- group commit


def care_of(index: int) -> bytes:
    return ipaddress.IPv6Address(f"2001:db8:b::{0x100 + index:x}").packed


def test_a_burst_of_bus_is_one_transaction_one_barrier_and_every_ba_after_it(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = harness.connect(app)
    datapath.take()
    commits: list[int] = []
    real_commit = app.store.commit
    monkeypatch.setattr(
        app.store,
        "commit",
        lambda changes, run_blocking=None: (
            commits.append(len(changes)),
            real_commit(changes, run_blocking),
        ),
    )
    nodes = [MobileNode.create(seed=seed) for seed in range(5)]
    for index, mn in enumerate(nodes):
        # The event loop is busy: nothing is committed until its queue runs dry.
        app._packet_in(packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, care_of(index)))))
    assert commits == [] and flow_mods(datapath.take()) == []
    assert all(mn.hoa not in stored_hoas(harness.store_path) for mn in nodes)
    app._commit_pending()
    assert commits == [5]
    assert {mn.hoa for mn in nodes} <= stored_hoas(harness.store_path)
    sent = datapath.take()
    # Two phases (decap, then encap: P15) for the whole batch, then the BAs' barrier.
    assert [type(m).__name__ for m in sent] == (
        ["OFPFlowMod"] * 5 + ["OFPBarrierRequest"] + ["OFPFlowMod"] * 10 + ["OFPBarrierRequest"]
    )
    assert packet_outs(sent) == []
    app._barrier_reply(event(datapath, xid=sent[-1].xid))
    answers = datapath.take()
    assert sorted(ba_of(m).status for m in answers) == [0] * 5
    assert {bytes(m.data)[14 + 24 : 14 + 40] for m in answers} == {care_of(i) for i in range(5)}


def test_a_bu_about_an_uncommitted_address_waits_for_the_commit(
    harness: Harness, app: app_module.FamaApp
) -> None:
    datapath = harness.connect(app)
    datapath.take()
    mn = MobileNode.create()
    first = from_core(mn.first_bu(1, COA_1))
    app._packet_in(packet_in_event(datapath, CORE_A, first))
    assert mn.hoa not in stored_hoas(harness.store_path)
    # The same BU again (a replay) must be judged against the stored binding:
    # the app commits the first, then the replay gets 135.
    app._packet_in(packet_in_event(datapath, CORE_A, first))
    assert mn.hoa in stored_hoas(harness.store_path)
    dar = app.dars[DPID_A]
    assert dar.counters["deferred_until_commit"] == 1
    replies = packet_outs(datapath.take())
    assert [ba_of(m).status for m in replies] == [135]


def test_a_failed_group_commit_answers_130_to_every_bu_of_the_batch(
    harness: Harness, app: app_module.FamaApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = harness.connect(app)
    datapath.take()

    def refuse(changes: object, run_blocking: object = None) -> None:
        raise StoreError("disk_full", "no space left on device")

    monkeypatch.setattr(app.store, "commit", refuse)
    nodes = [MobileNode.create(seed=seed) for seed in range(3)]
    for index, mn in enumerate(nodes):
        app._packet_in(packet_in_event(datapath, CORE_A, from_core(mn.first_bu(1, care_of(index)))))
    app._commit_pending()
    sent = datapath.take()
    assert flow_mods(sent) == [] and barriers(sent) == []
    assert sorted(ba_of(m).status for m in packet_outs(sent)) == [130] * 3
    dar = app.dars[DPID_A]
    assert dar.bindings() == [] and not any(dar.is_uncommitted(mn.hoa) for mn in nodes)
    # Space is back: the MNs' retransmissions are accepted.
    monkeypatch.undo()
    for index, mn in enumerate(nodes):
        deliver(app, packet_in_event(datapath, CORE_A, from_core(mn.first_bu(2, care_of(index)))))
    assert len(dar.bindings()) == 3
