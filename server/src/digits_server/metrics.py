"""Every Prometheus metric the server exports, declared in one place on an injected registry.

Names follow Prometheus conventions (`digits_` prefix, base units, `_total` counters).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .domain import CallRecord

# Sub-millisecond model calls up to multi-second queueing under overload.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class ServerMetrics:
    """The server's metrics; pass a fresh CollectorRegistry per server (tests run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "digits_requests_total",
            "RPCs finished, by method, serving model/version and gRPC status code.",
            ["protocol", "method", "model", "version", "experiment", "arm", "code"],
            registry=r,
        )
        self.request_latency = Histogram(
            "digits_request_duration_seconds",
            "End-to-end RPC latency inside the server, by method and serving model/version.",
            ["protocol", "method", "model", "version", "experiment", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.queue_depth = Gauge(
            "digits_queue_depth",
            "Images waiting in a model version's batching queue.",
            ["model", "version"],
            registry=r,
        )
        self.rejected = Counter(
            "digits_rejected_total",
            "Requests rejected with RESOURCE_EXHAUSTED because a version's batching queue was full.",
            ["model", "version"],
            registry=r,
        )

    def set_queue_depth(self, model: str, version: str, depth: int) -> None:
        """Images waiting in one version's batching queue."""
        self.queue_depth.labels(model, version).set(depth)

    def count_rejected(self, model: str, version: str) -> None:
        """One request rejected because its version's queue was full."""
        self.rejected.labels(model, version).inc()

    def observe_request(self, call: CallRecord, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        labels = (call.protocol, call.method, call.model, call.version, call.experiment, call.arm)
        self.requests.labels(*labels, code).inc()
        self.request_latency.labels(*labels).observe(seconds)


def serve_metrics(metrics: ServerMetrics, host: str, port: int) -> tuple[object, int]:
    """Start the /metrics HTTP endpoint in a daemon thread; returns (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)
