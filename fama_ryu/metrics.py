"""Prometheus metrics of the DAR controller, all declared here.

Labels are ``dp_id`` (16 hex digits) and ``dp_name`` only: never a home or
care-of address, whose cardinality is unbounded (the same rule as Faucet's
metrics).  Binding Update outcomes are separate metric names rather than a
label.  Counters are read from each DAR's own counters at scrape time, so
the hot path only increments a dictionary entry.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fama_ryu import mh
from fama_ryu.dar import Dar
from fama_ryu.home_agent import DropReason

# Drop counters that concern Mobility Header packets: codec rejections and
# the home agent's silent drops (not ND, not stray punts).
_MOBILITY_DROPS = frozenset(f"drop:{reason.value}" for reason in (*mh.RejectReason, *DropReason))

LABELS = ("dp_id", "dp_name")
BU_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

# (metric name, help, counter keys summed into it)
_COUNTERS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    (
        "fama_bu_accepted",
        "Binding Updates accepted (BA status 0)",
        lambda key: key == "bu_result:accepted",
    ),
    (
        "fama_bu_rejected",
        "Binding Updates answered with a non-zero BA status",
        lambda key: key == "bu_result:rejected",
    ),
    (
        "fama_bu_dropped",
        "Mobility Header packets dropped silently (every reason)",
        lambda key: key in _MOBILITY_DROPS,
    ),
    (
        "fama_punted_packets",
        "Packets the switch sent to the controller",
        lambda k: k == "packet_in",
    ),
    (
        "fama_rsa_operations",
        "RSA operations spent on Binding Updates",
        lambda key: key == "rsa_operations",
    ),
    ("fama_flows_installed", "Flow-mods sent to the switch", lambda key: key == "flow_mods_sent"),
    (
        "fama_store_errors",
        "Binding store commits that failed (BUs answered 130)",
        lambda key: key.startswith("store_error:"),
    ),
)


class BuLatency:
    """Time from packet-in to decision and flow-mods sent, per DAR: Prometheus
    histogram buckets (upper bounds inclusive) counted without a lock."""

    def __init__(self, bounds: tuple[float, ...] = BU_LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        # dpid -> [count per bucket..., count over the last bound, sum of seconds]
        self.by_dpid: dict[int, list[float]] = {}

    def observe(self, dpid: int, seconds: float) -> None:
        counts = self.by_dpid.get(dpid)
        if counts is None:
            counts = self.by_dpid[dpid] = [0] * (len(self.bounds) + 2)
        counts[bisect.bisect_left(self.bounds, seconds)] += 1
        counts[-1] += seconds

    def family(self, dars: Iterable[Dar]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "fama_bu_processing_seconds",
            "Time from packet-in to the decision and its flow-mods being sent",
            labels=LABELS,
        )
        for dar in dars:
            counts = self.by_dpid.get(dar.dpid)
            if counts is None:  # no BU yet: no sample, as for an unused label set
                continue
            buckets, total = [], 0.0
            for bound, count in zip((*self.bounds, float("inf")), counts[:-1], strict=True):
                total += count
                buckets.append((floatToGoString(bound), total))
            family.add_metric(_labels(dar), buckets, sum_value=counts[-1])
        return family


class DarCollector(Collector):
    """Reads the DARs' counters, binding tables and BU latencies when Prometheus scrapes."""

    def __init__(self, dars: Callable[[], Iterable[Dar]], latency: BuLatency | None = None) -> None:
        self._dars = dars
        self._latency = latency if latency is not None else BuLatency()

    def collect(self) -> Iterator[Metric]:
        dars = list(self._dars())
        for name, documentation, selects in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=LABELS)
            for dar in dars:
                total = sum(value for key, value in dar.counters.items() if selects(key))
                family.add_metric(_labels(dar), total)
            yield family
        bindings = GaugeMetricFamily("fama_bindings", "Bindings held per DAR", labels=LABELS)
        connected = GaugeMetricFamily(
            "fama_dar_connected", "1 while the DAR's switch is connected", labels=LABELS
        )
        for dar in dars:
            bindings.add_metric(_labels(dar), len(dar.home_agent.cache))
            connected.add_metric(_labels(dar), 1 if dar.connected else 0)
        yield bindings
        yield connected
        yield self._latency.family(dars)


def _labels(dar: Dar) -> list[str]:
    return [f"{dar.dpid:016x}", dar.name]


class Metrics:
    """The registry of one controller: collected counters plus the BU latency histogram."""

    def __init__(self, dars: Callable[[], Iterable[Dar]]) -> None:
        self.registry = CollectorRegistry()
        self.bu_latency = BuLatency()
        self.registry.register(DarCollector(dars, self.bu_latency))

    def observe_bu(self, dar: Dar, seconds: float) -> None:
        self.bu_latency.observe(dar.dpid, seconds)
