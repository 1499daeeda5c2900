"""Prometheus metrics of a node: its counters, fork choice per target, HTTP latencies.

Each app has its own registry (several nodes may share a test process). What the node counts
comes from ``node.stats()`` at scrape time: a key ending in ``_total`` is a counter, any other
key a gauge, each named ``poi_<key>``. Fork-choice gauges are read from ``node.chains`` at scrape
time too, so a scrape always agrees with what the API answers at that moment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HTTP_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Latency buckets in seconds: the API's goal is p99 ≤ 20 ms, so most buckets sit below it."""
UNMATCHED_ROUTE = "unmatched"
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(key: str) -> str:
    return "poi_" + _NAME_OK.sub("_", key)


class NodeCollector(Collector):
    """Reads ``node.stats()`` and each followed target's fork choice on every scrape."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        families = [*self._stats(), *self._status(), *self._chains()]
        events = getattr(self.node, "events", None)
        if events is not None:
            families.append(GaugeMetricFamily("poi_event_subscribers",
                                              "Open event-stream subscribers.",
                                              value=events.subscriber_count))
        for family in families:  # the node's own stats win over a derived metric of one name
            if family.name not in seen:
                seen.add(family.name)
                yield family

    def _stats(self) -> Iterator[Metric]:
        stats_of = getattr(self.node, "stats", None)
        stats = stats_of() if callable(stats_of) else {}
        for key in sorted(stats):
            value = stats[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if key.endswith("_total"):
                family = CounterMetricFamily(metric_name(key[: -len("_total")]),
                                             f"Node counter {key}.")
            else:
                family = GaugeMetricFamily(metric_name(key), f"Node gauge {key}.")
            family.add_metric([], value)
            yield family

    def _status(self) -> Iterator[Metric]:
        status_of = getattr(self.node, "status", None)
        status = status_of() if callable(status_of) else {}
        gauges = (
            ("poi_verification_queue_length", "Commits waiting for this node's verifier.",
             status.get("queue_length")),
            ("poi_verifying", "1 while this node's verifier is evaluating a commit.",
             None if "verifying" not in status else int(status["verifying"] is not None)),
            ("poi_peers", "Connected peers.", len(status.get("peers") or ()) if "peers" in status
             else None),
            ("poi_synced", "1 once the node has caught up with its peers.",
             None if "synced" not in status else int(bool(status["synced"]))),
        )
        for name, text, value in gauges:
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, text, value=value)

    def _chains(self) -> Iterator[Metric]:
        gauges = {
            "commits": "Commits of the target this node knows.",
            "canonical_length": "Commits on the canonical chain (the target excluded).",
            "finalized_length": "Final commits on the canonical chain.",
            "accepted_commits": "Commits accepted by verdict stake (final ones included).",
            "rejected_commits": "Commits rejected by verdict stake.",
            "speedup": "Baseline time over the head's time along the canonical chain.",
            "active_stake": "Total stake fork choice counts now.",
            "equivocators": "Verifiers whose weight left fork choice for equivocating.",
            "epoch": "The node's current epoch for the target.",
        }
        families = {name: GaugeMetricFamily(f"poi_fork_choice_{name}", text, labels=["target"])
                    for name, text in gauges.items()}
        for cid, chain in list(getattr(self.node, "chains", {}).items()):
            fork_choice = chain.fork_choice
            steps = chain.canonical_chain()
            values = {
                "commits": len(chain.index),
                "canonical_length": len(steps),
                "finalized_length": sum(1 for s in steps if s.final),
                "accepted_commits": len(fork_choice.accepted()) - 1,  # the target itself
                "rejected_commits": len(fork_choice.rejected()),
                "speedup": steps[-1].speedup if steps else 1.0,
                "active_stake": fork_choice.total_active_stake(),
                "equivocators": len(fork_choice.equivocators()),
                "epoch": chain.epoch,
            }
            for name, value in values.items():
                families[name].add_metric([str(cid)], value)
        yield from families.values()


class Metrics:
    """One app's registry: the node collector and the HTTP latency histogram."""

    def __init__(self, node: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        self.http_latency = Histogram(
            "poi_http_request_duration_seconds",
            "Time from a request's arrival to its response's start, by route and status.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS_S, registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_latency.labels(method, route, str(status)).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class LatencyMiddleware:
    """Pure ASGI middleware timing each HTTP request to the start of its response.

    The route label is the matched path template (``/v1/commits/{cid}``), never the raw path,
    so a client cannot grow the metric without bound; unmatched paths share one label.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        async def timed_send(message: dict) -> None:
            nonlocal observed
            if message["type"] == "http.response.start" and not observed:
                observed = True
                route = scope.get("route")
                label = getattr(route, "path", None) or UNMATCHED_ROUTE
                self.metrics.observe(scope["method"], label, message["status"],
                                     time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
