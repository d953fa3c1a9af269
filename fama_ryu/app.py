"""The Ryu application: OpenFlow events to the DAR core, work back to switches.

Run it with the launcher (which applies the eventlet shim ryu 4.34 needs on
Python 3.11) or with ryu-manager where the shim is in place::

    fama-controller fama_ryu.app --config-file etc/fama.conf

This module, ``ofp_shim`` and ``rest`` are the only ones importing ryu.
Each handler decodes its event, hands it to the pure :class:`~fama_ryu.dar.Dar`
with ``now=time.time()``, and executes the returned :class:`~fama_ryu.dar.Work`
in its prescribed order: persist, apply, flows, barrier, Binding Ack (P12).
"""

from __future__ import annotations

from fama_ryu import eventlet_compat  # must precede every ryu import

# isort: split
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import greenlet  # type: ignore[import-untyped]
from eventlet import tpool
from eventlet.hubs import get_hub
from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from fama_ryu import config, crash_points, metrics, ofp_shim, rest, rest_views
from fama_ryu.binding_cache import BindingCache
from fama_ryu.dar import Dar, PacketOut, Work
from fama_ryu.store import SqliteBindingStore, StoreError
from openflow_pipelines import wire
from openflow_pipelines.model import FlowMod

eventlet_compat.apply()
CONF = cfg.CONF
config.register_opts(CONF)
config.apply_listen_defaults(CONF)
LOG = logging.getLogger("fama_ryu.app")

TICK_INTERVAL_S = 0.25  # bindings leave the switch within a second of expiry
MAX_BATCH = 256  # works per group commit; bounds a batch's BA delay under overload
CHECKPOINT_INTERVAL_S = 1.0  # WAL copied back between batches, not inside a BU's commit


def _stop_in_this_greenlet_on(*signals: int) -> None:
    """Deliver ``signals`` as KeyboardInterrupt to the calling (ryu-manager's main) greenlet.

    Python raises a signal's KeyboardInterrupt in whichever greenlet runs at
    that moment; in the tick or commit loop it only killed that loop (Ryu's
    hub logs and swallows it) and the controller ran on without expiring
    bindings.  Thrown into the main greenlet, it ends ryu-manager's
    ``joinall`` and the apps are closed; SIGTERM is handled the same way.
    """
    main = greenlet.getcurrent()

    def stop(*_: object) -> None:
        get_hub().schedule_call_global(0, main.throw, KeyboardInterrupt())

    for number in signals:
        signal.signal(number, stop)


class FamaApp(app_manager.RyuApp):
    """Turns the configured OVS bridges into Distributed Anchor Routers."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not CONF.fama.domain_file:
            raise SystemExit("fama: [fama] domain_file is not set (see etc/fama.conf)")
        try:
            self.domain = config.load_domain(Path(CONF.fama.domain_file))
        except config.ConfigError as error:
            raise SystemExit(f"fama: invalid domain file:\n{error}") from None
        store_path = Path(CONF.fama.store_path)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteBindingStore(store_path, tombstone_ttl_s=self.domain.tombstone_ttl_s)
        loaded = self.store.load(time.time())
        self.dars: dict[int, Dar] = {}
        for dar_config in self.domain.dars:
            cache = BindingCache(self.domain.tombstone_ttl_s)
            bindings, tombstones = loaded.get(dar_config.name, ([], []))
            cache.restore(bindings, tombstones)
            self.dars[dar_config.dpid] = Dar(dar_config, self.domain, os.urandom, cache=cache)
            LOG.info("%s: %d binding(s) restored", dar_config.name, len(bindings))
        self.datapaths: dict[int, Any] = {}
        self._after_barrier: dict[tuple[int, int], list[PacketOut]] = {}
        self._pending: list[tuple[Dar, Work]] = []
        self._commit_wanted = hub.Event()
        self._commit_lock = hub.BoundedSemaphore(1)
        kwargs["wsgi"].register(rest.FamaRestController, {rest.APP_KEY: self})
        self.metrics = metrics.Metrics(self.dars.values)
        if CONF.fama.metrics_port:
            self._serve_metrics(CONF.fama.metrics_host, CONF.fama.metrics_port)
        ofp_shim.take_over_receive(
            self._fast_packet_in, self._fast_barrier_reply, self._commit_after_read
        )
        self._committer = hub.spawn(self._commit_when_idle)
        self._ticker = hub.spawn(self._tick_forever)

    def start(self) -> Any:
        """Called by ryu-manager in its main greenlet once every app is built."""
        thread = super().start()
        _stop_in_this_greenlet_on(signal.SIGINT, signal.SIGTERM)
        return thread

    def _serve_metrics(self, host: str, port: int) -> None:
        from prometheus_client import make_wsgi_app

        server = hub.WSGIServer((host, port), make_wsgi_app(self.metrics.registry))
        self._metrics_server = hub.spawn(server.serve_forever)
        LOG.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    # ------------------------------------------------------------ switch lifecycle

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, event: Any) -> None:
        datapath = event.msg.datapath
        if datapath.id not in self.dars:
            LOG.warning("switch %016x is not in the domain file: left alone", datapath.id)
            return
        datapath.send_msg(ofp_shim.port_desc_request(datapath))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, event: Any) -> None:
        datapath = event.msg.datapath
        dar = self.dars.get(datapath.id)
        if dar is None:
            return
        ports = {port.name.decode(errors="replace"): port.port_no for port in event.msg.body}
        self._commit_pending()  # reinstall from the store's truth
        try:
            with self._commit_lock:
                generation = tpool.execute(self.store.next_generation)
            work = dar.connect(ports, generation, time.time())
        except (LookupError, ValueError, StoreError) as error:
            LOG.error("%s: cannot set up switch %016x: %s", dar.name, datapath.id, error)
            return
        self.datapaths[datapath.id] = datapath
        LOG.info(
            "%s: switch %016x connected, flow generation %d", dar.name, datapath.id, dar.generation
        )
        self._execute_now(dar, work)
        crash_points.reached("during_reconcile")

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, event: Any) -> None:
        datapath = event.datapath
        dpid = datapath.id
        dar = self.dars.get(dpid) if dpid is not None else None
        # A stale connection closing after a reconnect must not unseat the new one.
        if dar is None or self.datapaths.get(dpid) is not datapath:
            return
        del self.datapaths[dpid]
        dar.disconnect()
        self._after_barrier = {
            key: frames for key, frames in self._after_barrier.items() if key[0] != dpid
        }
        LOG.warning("%s: switch %016x disconnected", dar.name, dpid)

    # ------------------------------------------------------------ packets and replies

    # Packet-ins and barrier replies come as bytes from the shim's receive
    # loop (ofp_shim.take_over_receive), in the switch's green thread; the
    # Ryu event handlers take what the loop declines (a switch not yet set
    # up, so the packet waits behind its port description in the queue).

    def _fast_packet_in(self, datapath: Any, in_port: int, frame: bytes) -> bool:
        dar = self.dars.get(datapath.id)
        if dar is None or self.datapaths.get(datapath.id) is not datapath:
            return False
        self._handle_packet_in(dar, in_port, frame)
        return True

    def _fast_barrier_reply(self, datapath: Any, xid: int) -> bool:
        if self.datapaths.get(datapath.id) is not datapath:
            return False
        self._release_after_barrier(datapath, xid)
        return True

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, event: Any) -> None:
        message = event.msg
        dar = self.dars.get(message.datapath.id)
        if dar is None or message.datapath.id not in self.datapaths:
            return
        self._handle_packet_in(dar, message.match["in_port"], bytes(message.data))

    def _handle_packet_in(self, dar: Dar, in_port: int, frame: bytes) -> None:
        started = time.perf_counter()
        try:
            work = dar.packet_in(in_port, frame, time.time(), time.monotonic())
            if work.retry_after_commit:
                self._commit_pending()
                work = dar.packet_in(in_port, frame, time.time(), time.monotonic())
        except Exception:  # never die on a packet: log it, count it, go on
            LOG.exception("%s: packet-in handling failed", dar.name)
            dar.counters["handler_exception"] += 1
            return
        if work.retry_after_commit:  # the store keeps failing: the MN retransmits
            dar.counters["drop:uncommitted_after_retry"] += 1
            return
        self._submit(dar, work)
        if work.decided_binding_update:
            self.metrics.observe_bu(dar, time.perf_counter() - started)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, event: Any) -> None:
        self._release_after_barrier(event.msg.datapath, event.msg.xid)

    def _release_after_barrier(self, datapath: Any, xid: int) -> None:
        frames = self._after_barrier.pop((datapath.id, xid), None)
        if frames:
            crash_points.reached("before_ba")
            self._send_frames(datapath, frames)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, event: Any) -> None:
        message = event.msg
        dar = self.dars.get(message.datapath.id)
        LOG.error(
            "switch %016x error type %d code %d: %s",
            message.datapath.id,
            message.type,
            message.code,
            bytes(message.data[:64]).hex(),
        )
        if dar is not None:
            dar.counters["switch_error"] += 1

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, event: Any) -> None:
        dar = self.dars.get(event.msg.datapath.id)
        if dar is not None:
            # The controller removes bindings itself; a switch timeout winning
            # that race is worth knowing about.
            dar.counters[f"flow_removed_reason:{event.msg.reason}"] += 1

    # ------------------------------------------------------------ execution
    #
    # Work with binding changes is held and persisted in one transaction with
    # whatever else arrived meanwhile (group commit): one fsync for a burst of
    # Binding Updates instead of one each.  The batch is committed after each
    # read from a switch unless a commit is running (what arrives meanwhile
    # joins the next batch), when the event loop goes idle, when it holds
    # MAX_BATCH works, or before anything that must see the store's truth.
    # Then, per switch, the flow-mods of the whole batch go out phase by phase
    # (a barrier between phases keeps each change's order), then one barrier
    # whose reply releases the batch's Binding Acks (P12).

    def _submit(self, dar: Dar, work: Work) -> None:
        """Carry out ``work`` from the event loop, holding its changes for a group commit."""
        datapath = self.datapaths.get(dar.dpid)
        self._send_frames(datapath, work.packet_outs)
        if not work.changes:
            self._send_flows([(dar, work)])
            return
        self._pending.append((dar, work))
        if len(self._pending) >= MAX_BATCH:
            self._commit_pending()
        else:
            self._commit_wanted.set()

    def _commit_when_idle(self) -> None:
        """Runs whenever the event loop yields (its queue is empty, or a send blocks)."""
        while True:
            self._commit_wanted.wait()
            self._commit_wanted.clear()
            self._commit_pending_logged()

    def _commit_after_read(self) -> None:
        """After each read from a switch: commit what it decided unless a commit runs.

        The idle committer alone would wait until every switch with data has
        been read (the hub serves all ready sockets before its timers): with
        many busy switches the first Binding Acks would wait for the last read.
        """
        if self._pending and not self._commit_lock.locked():
            self._commit_pending_logged()

    def _commit_pending_logged(self) -> None:
        try:
            self._commit_pending()
        except Exception:  # the next batch must still be committed
            LOG.exception("group commit failed")

    def _commit_pending(self) -> None:
        with self._commit_lock:
            batch, self._pending = self._pending, []
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Dar, Work]]) -> bool:
        """Persist every change of ``batch`` in one transaction, then send its flows."""
        changes = [(dar.name, change) for dar, work in batch for change in work.changes]
        crash_points.reached("before_commit")
        try:
            # Under load, the COMMIT (log write, fsync) runs in a worker thread,
            # which holds no GIL meanwhile: the event loop decides the next
            # Binding Updates.  A lone change commits here: nothing waits
            # behind it, and the hand-off to the thread and back (a thread to
            # schedule, the GIL, the hub's next turn) would be its latency.
            run_blocking = tpool.execute if len(batch) > 1 else None
            self.store.commit(changes, run_blocking=run_blocking)
        except StoreError as error:
            LOG.error("binding store refused %d change(s): %s", len(changes), error)
            for dar, work in batch:
                self._send_frames(
                    self.datapaths.get(dar.dpid), dar.store_failed(work, error.reason)
                )
            return False
        crash_points.reached("after_commit")
        for dar, work in batch:
            dar.committed(work.changes)
        self._send_flows(batch)
        return True

    def _execute_now(self, dar: Dar, work: Work) -> bool:
        """Carry out ``work`` at once (outside the event loop); False if the store refused it."""
        with self._commit_lock:
            self._send_frames(self.datapaths.get(dar.dpid), work.packet_outs)
            if work.changes:
                return self._commit([(dar, work)])
            self._send_flows([(dar, work)])
            return True

    def _send_flows(self, batch: list[tuple[Dar, Work]]) -> None:
        """Per switch, all flow steps phase by phase in one write, then the Binding Acks."""
        by_dar: dict[int, tuple[Dar, list[Work]]] = {}
        for dar, work in batch:
            if work.flow_steps or work.after_flows:
                by_dar.setdefault(dar.dpid, (dar, []))[1].append(work)
        for dar, works in by_dar.values():
            datapath = self.datapaths.get(dar.dpid)
            if datapath is None:
                continue
            phases = wire.merge_phases(work.flow_steps for work in works)
            messages = []
            for index, phase in enumerate(phases):
                if index:
                    messages.append(wire.encode_barrier_request(ofp_shim.next_xid(datapath)))
                messages += [
                    wire.encode_message(flow, ofp_shim.next_xid(datapath)) for flow in phase
                ]
            dar.counters["flow_mods_sent"] += sum(
                isinstance(step, FlowMod) for phase in phases for step in phase
            )
            after_flows = [frame for work in works for frame in work.after_flows]
            if after_flows:
                xid = ofp_shim.next_xid(datapath)
                self._after_barrier[(dar.dpid, xid)] = after_flows
                messages.append(wire.encode_barrier_request(xid))
            datapath.send(b"".join(messages))

    @staticmethod
    def _send_frames(datapath: Any, frames: list[PacketOut]) -> None:
        if datapath is None or not frames:
            return
        datapath.send(
            b"".join(
                wire.encode_packet_out(frame.port, frame.frame, ofp_shim.next_xid(datapath))
                for frame in frames
            )
        )

    def _checkpoint(self) -> None:
        with self._commit_lock:
            try:
                tpool.execute(self.store.checkpoint)
            except StoreError as error:
                LOG.warning("WAL checkpoint failed (the WAL keeps the data): %s", error)

    def _tick_forever(self) -> None:
        next_checkpoint = 0.0
        while True:
            now, monotonic = time.time(), time.monotonic()
            for dar in self.dars.values():
                try:
                    self._execute_now(dar, dar.tick(now, monotonic))
                except Exception:  # a failing tick must not stop the others
                    LOG.exception("%s: periodic work failed", dar.name)
                    dar.counters["handler_exception"] += 1
            if time.monotonic() >= next_checkpoint and not self._pending:
                next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
                self._checkpoint()
            hub.sleep(TICK_INTERVAL_S)

    # ------------------------------------------------------------ REST actions

    def revoke(self, hoa: bytes) -> list[tuple[Dar, Any]]:
        """Administratively remove ``hoa``'s bindings on every DAR (REST DELETE)."""
        removed = []
        for dar in self.dars.values():
            # Decide on the store's truth: commit what the event loop holds first.
            while dar.is_uncommitted(hoa):
                self._commit_pending()
            binding = dar.home_agent.cache.get(hoa)
            work = dar.revoke(hoa, time.time(), time.monotonic())
            if work is None:
                continue
            if not self._execute_now(dar, work):
                raise rest_views.StoreUnavailable(f"{dar.name}: the revocation was not stored")
            removed.append((dar, binding))
        return removed
