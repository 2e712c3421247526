"""Every Prometheus metric of the serving path, declared in one place on an injected registry (the A/B
experiments' own counters and gauges are in experiment_metrics.py, on the same registry).

Names follow Prometheus conventions: a `digits_` prefix, base units (seconds), `_total`
counters, `_info` metrics with value 1 that carry facts as labels. The `_created` series are
switched off. The README's metrics table documents each one; keep the two in step.
Callers (observers, servicers, the batcher) use the methods, never the metric objects.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from digits_server.core.domain import CallRecord, Timings
from digits_server.observability.histograms import bucket_counts
from digits_server.observability.request_metrics import FastCounter, FastGauge, FastHistogram, FastMetricsCollector

# Sub-millisecond model calls up to multi-second queueing under overload.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Images per model call: powers of two up to the largest ClassifyBatch request.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# The winning probability: a well-trained model puts most of its mass above 0.9.
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
# A SavedModel load plus warm-up: a second or two here, minutes on a cold disk.
LOAD_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

MODEL_STATES = ("LOADING", "AVAILABLE", "UNLOADING", "FAILED")
TRAFFIC = ("live", "shadow")  # shadow: a mirrored prediction no caller received
LABEL_SOURCES = ("request", "feedback")  # where the true digit came from
DIGITS = tuple(str(d) for d in range(10))
# Request series that exist (at 0) from the moment a version is AVAILABLE, so that rate() and
# histogram_quantile() see its very first requests (a series born at 5 looks like no increase).
INFERENCE_METHODS = ("Classify", "ClassifyBatch", "ClassifyStream")


class ServerMetrics:
    """The server's metrics; pass a fresh CollectorRegistry per server (tests run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # process-wide switch in prometheus_client; idempotent
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        call = ["protocol", "method", "model", "version", "experiment", "arm"]
        cell = ["model", "version"]
        # the request path's metrics: plain numbers, exported at scrape time (request_metrics.py)
        self.requests = FastCounter(
            "digits_requests_total",
            "RPCs finished, by method, serving model/version and gRPC status code.", [*call, "code"],
        )
        self.request_latency = FastHistogram(
            "digits_request_duration_seconds",
            "End-to-end RPC latency inside the server, by method and serving model/version.", call, LATENCY_BUCKETS,
        )
        self.in_flight = FastGauge("digits_requests_in_flight", "RPCs being served right now.", ["protocol", "method"])
        self.queue_wait = FastHistogram(
            "digits_queue_wait_seconds",
            "Time a request waited for its model call to start (batching queue).", cell, LATENCY_BUCKETS,
        )
        self.compute = FastHistogram(
            "digits_compute_duration_seconds",
            "Duration of the model call that computed a request (shared by a batch).", cell, LATENCY_BUCKETS,
        )
        self.batch_size = FastHistogram(
            "digits_batch_size",
            "Images in the model call each request rode in (observed once per request).", cell, BATCH_SIZE_BUCKETS,
        )
        self.queue_depth = FastGauge("digits_queue_depth", "Images waiting in a model version's batching queue.", cell)
        self.predictions = FastCounter(
            "digits_predictions_total",
            "Images classified, by predicted digit; traffic=shadow for mirrored predictions.",
            [*cell, "traffic", "digit"],
        )
        self.confidence = FastHistogram(
            "digits_prediction_confidence",
            "The winning probability (max of the ten) of each prediction.", [*cell, "traffic"], CONFIDENCE_BUCKETS,
        )
        self.labelled = FastCounter(
            "digits_labelled_predictions_total",
            "Predictions whose true digit is known; source=request (sent with it) or feedback (Feedback RPC).",
            [*cell, "traffic", "source"],
        )
        self.correct = FastCounter(
            "digits_correct_predictions_total",
            "Labelled predictions that were right; divide by digits_labelled_predictions_total for live accuracy.",
            [*cell, "traffic", "source"],
        )
        self.confusion = FastCounter(
            "digits_confusion_total",
            "Labelled predictions by true and predicted digit (the live confusion matrix).",
            [*cell, "traffic", "true_digit", "predicted_digit"],
        )
        r.register(FastMetricsCollector([
            self.requests, self.request_latency, self.in_flight, self.queue_wait, self.compute, self.batch_size,
            self.queue_depth, self.predictions, self.confidence, self.labelled, self.correct, self.confusion,
        ]))
        self.rejected = Counter(
            "digits_rejected_total", "Requests rejected because the batching queue was full.", cell, registry=r
        )
        self.auth_rejections = Counter(
            "digits_auth_rejections_total",
            "Calls refused before any servicer ran: UNAUTHENTICATED (no or unknown token) or PERMISSION_DENIED.",
            ["method", "code"], registry=r,
        )
        self.feedback_held = Gauge(
            "digits_feedback_store_predictions", "Predictions remembered for the Feedback RPC.", registry=r
        )
        self.feedback_evicted = Counter(
            "digits_feedback_store_evictions_total",
            "Predictions forgotten by the feedback store, by reason (capacity or age).",
            ["reason"], registry=r,
        )
        self.feedback_rejected = Counter(
            "digits_feedback_rejected_total",
            "Feedback refused, by reason: forged (signed id malformed, forged or altered), expired, unknown "
            "(client-chosen id not remembered here), duplicate (image labelled already here), invalid_index.",
            ["reason"], registry=r,
        )
        self.model_state = Gauge(
            "digits_model_state", "1 for the state a model version is in, 0 for the others.", [*cell, "state"],
            registry=r,
        )
        self.load_duration = Histogram(
            "digits_model_load_duration_seconds",
            "Time from LOADING to AVAILABLE or FAILED (load and warm-up) per model.",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )
        self.load_failures = Counter(
            "digits_model_load_failures_total", "Model versions that failed to load.", cell, registry=r
        )
        self.model_info = Info(
            "digits_model", "Facts about a loaded model version from its metadata.json.", cell, registry=r
        )
        self.model_test_accuracy = Gauge(
            "digits_model_test_accuracy_ratio",
            "Offline test accuracy the trainer measured for a model version (metadata.json).",
            cell, registry=r,
        )
        self.model_parameters = Gauge(
            "digits_model_parameters", "Trainable and non-trainable parameters of a model version.", cell,
            registry=r,
        )
        self.build_info = Info("digits_build", "Versions of the server and the libraries it runs on.", registry=r)
        self.server_info = Info("digits_server", "How this server is configured.", registry=r)
        self.config_info = Info(
            "digits_config",
            "Hash of the model/experiment config in force; replicas of one fleet should all show the same.",
            registry=r,
        )

    # Requests -------------------------------------------------------------------------------

    def observe_request(self, call: CallRecord, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        labels = (call.protocol, call.method, call.model, call.version, call.experiment, call.arm)
        self.requests.inc((*labels, code))
        self.request_latency.observe(labels, seconds)

    def observe_requests(self, call: CallRecord, code: str, seconds: Sequence[float]) -> None:
        """Count finished requests of one kind (e.g. the messages of a stream answered as a group)."""
        labels = (call.protocol, call.method, call.model, call.version, call.experiment, call.arm)
        self.requests.inc((*labels, code), len(seconds))
        latency = self.request_latency
        if len(seconds) == 1:
            latency.observe(labels, seconds[0])
        else:
            values = np.asarray(seconds, dtype=np.float64)
            latency.observe_counts(labels, bucket_counts(latency.bounds, values), float(values.sum()))

    @contextlib.contextmanager
    def track_in_flight(self, call: CallRecord) -> Iterator[None]:
        """Count an RPC as in flight while the block runs."""
        key = (call.protocol, call.method)
        gauge = self.in_flight
        gauge.inc(key)
        try:
            yield
        finally:
            gauge.inc(key, -1)

    # Batching -------------------------------------------------------------------------------

    def observe_timings(self, model: str, version: str, timings: Timings, requests: int = 1) -> None:
        """Record where `requests` requests' time went (queue wait, model call) and their batch size."""
        key = (model, version)
        self.queue_wait.observe(key, timings.queue_seconds, requests)
        self.compute.observe(key, timings.compute_seconds, requests)
        if timings.batch_size > 0:
            self.batch_size.observe(key, timings.batch_size, requests)

    def set_queue_depth(self, model: str, version: str, depth: int) -> None:
        """Images now waiting in a model version's batching queue."""
        self.queue_depth.values[(model, version)] = depth

    def count_rejected(self, model: str, version: str) -> None:
        """One request turned away because its queue was full."""
        self.rejected.labels(model, version).inc()

    def count_auth_rejection(self, method: str, code: str) -> None:
        """One call refused by the auth guard (`method` is "unknown" for methods that do not exist)."""
        self.auth_rejections.labels(method, code).inc()

    # Predictions and live accuracy ----------------------------------------------------------

    def count_predictions(
        self, model: str, version: str, traffic: str, digits: np.ndarray, probabilities: np.ndarray
    ) -> None:
        """Count a request's predicted digits and observe each prediction's confidence."""
        if len(digits) == 1:  # the common case, without bincount's ten-way loop
            self.predictions.inc((model, version, traffic, DIGITS[int(digits[0])]))
            self.confidence.observe((model, version, traffic), float(probabilities[0].max()))
            return
        for digit, count in enumerate(np.bincount(digits, minlength=10).tolist()):
            if count:
                self.predictions.inc((model, version, traffic, DIGITS[digit]), count)
        winning = probabilities.max(axis=1).astype(np.float64)
        confidence = self.confidence
        confidence.observe_counts((model, version, traffic), bucket_counts(confidence.bounds, winning),
                                  float(winning.sum()))

    def count_labelled(
        self, model: str, version: str, traffic: str, source: str,
        true_digits: Sequence[int], predicted_digits: Sequence[int],
    ) -> None:
        """Predictions whose true digits are now known (pairwise): live accuracy and confusion."""
        pairs = collections.Counter(zip(true_digits, predicted_digits))
        if not pairs:
            return
        key = (model, version, traffic, source)
        self.labelled.inc(key, sum(pairs.values()))
        self.correct.inc(key, sum(count for (truth, predicted), count in pairs.items() if truth == predicted))
        for (truth, predicted), count in pairs.items():
            self.confusion.inc((model, version, traffic, DIGITS[truth], DIGITS[predicted]), count)

    def set_feedback_held(self, predictions: int) -> None:
        """How many predictions the feedback store remembers now."""
        self.feedback_held.set(predictions)

    def count_feedback_evicted(self, reason: str, predictions: int) -> None:
        """Predictions the feedback store forgot (reason: capacity or age)."""
        self.feedback_evicted.labels(reason).inc(predictions)

    def count_feedback_rejected(self, reason: str) -> None:
        """A Feedback call refused (reason: forged, expired, unknown, duplicate, invalid_index)."""
        self.feedback_rejected.labels(reason).inc()

    # Model lifecycle ------------------------------------------------------------------------

    def set_model_state(self, model: str, version: str, state: str) -> None:
        """Mark the state a version is in; accuracy counters start at 0 once it is AVAILABLE."""
        for known in MODEL_STATES:
            self.model_state.labels(model, version, known).set(1 if known == state else 0)
        self.load_failures.labels(model, version)  # 0 from the start, so increase() sees a first failure
        if state == "AVAILABLE":  # present series from the start make rate() and ratios exact
            self.queue_depth.touch((model, version))  # 0 until a request queues (lone ones may never)
            for method in INFERENCE_METHODS:
                self.requests.touch(("digits.v1", method, model, version, "", "", "OK"))
                self.request_latency.touch(("digits.v1", method, model, version, "", ""))
            for traffic in TRAFFIC:
                for source in LABEL_SOURCES:
                    self.labelled.touch((model, version, traffic, source))
                    self.correct.touch((model, version, traffic, source))

    def forget_model_version(self, model: str, version: str) -> None:
        """Drop the state, info and queue series of a version that was unloaded."""
        for known in MODEL_STATES:
            self.model_state.remove(model, version, known)
        for gauge in (self.model_info, self.model_test_accuracy, self.model_parameters):
            gauge.remove(model, version)
        self.queue_depth.remove((model, version))

    def observe_model_load(self, model: str, seconds: float) -> None:
        """How long a version took from LOADING to AVAILABLE or FAILED."""
        self.load_duration.labels(model).observe(seconds)

    def count_load_failure(self, model: str, version: str) -> None:
        """A version failed to load."""
        self.load_failures.labels(model, version).inc()

    def set_model_info(self, model: str, version: str, info: Mapping[str, str], test_accuracy: float, parameters: int) -> None:
        """A loaded version's metadata.json facts (info labels) and its numbers (gauges)."""
        self.model_info.labels(model, version).info(dict(info))
        self.model_test_accuracy.labels(model, version).set(test_accuracy)
        self.model_parameters.labels(model, version).set(parameters)

    # Server ---------------------------------------------------------------------------------

    def set_server_info(self, build: Mapping[str, str], config: Mapping[str, str]) -> None:
        """Build versions and configuration (process_start_time_seconds tells when it started)."""
        self.build_info.info(dict(build))
        self.server_info.info(dict(config))

    def set_config_hash(self, digest: str) -> None:
        """The hash of the model/experiment config now in force (digits_config_info{hash})."""
        self.config_info.info({"hash": digest})
