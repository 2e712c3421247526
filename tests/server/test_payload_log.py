"""The payload log's parts with real sinks: JSON Lines files in a real directory (rotation by
size), CloudEvents POSTed to a real local HTTP receiver (KServe's logger's shape), a sink that
is down (retries, then drops that are counted), a full queue, sampling by request id, and the
settings and model-config keys that turn it on."""

from __future__ import annotations

import base64
import json
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from digits_server.core.domain import FeedbackEvent, PredictionEvent, ServedBy
from digits_server.core.errors import ConfigurationError
from digits_server.core.model_config import ConfigError, config_to_raw, parse_config
from digits_server.observability.payload_log_metrics import PayloadLogMetrics
from digits_server.observability.payload_logger import PayloadLogger, payload_logger
from digits_server.observability.payload_records import CE_FEEDBACK, CE_REQUEST, CE_RESPONSE, FEEDBACK, PREDICTION
from digits_server.observability.payload_sinks import CloudEventsSink, JsonLinesSink
from digits_server.observability.payload_writer import BackgroundWriter
from digits_server.settings import Settings
from tests.cloudevents_receiver import CloudEventsReceiver
from tests.server.test_layers import forbidden_paths

SERVED = ServedBy("lstm", 3, "exp", "b")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def prediction(request_id: str, count: int = 1, seed: int = 0, files: tuple[bytes, ...] = ()) -> PredictionEvent:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(10), size=count).astype(np.float32)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return PredictionEvent("Classify", SERVED, request_id, probabilities.argmax(axis=1), probabilities,
                           [None] * count, images=images, files=files, protocol="digits.v1")


def counted(registry: CollectorRegistry, sink: str) -> dict[str, float]:
    """{"written": n, "<reason>": n} summed over event kinds."""
    out = {"written": 0.0}
    for event in (PREDICTION, FEEDBACK):
        out["written"] += registry.get_sample_value("digits_payload_log_written_total", {"event": event, "sink": sink})
        for reason in ("queue_full", "sink_error", "shutdown"):
            value = registry.get_sample_value(
                "digits_payload_log_dropped_total", {"event": event, "sink": sink, "reason": reason}
            )
            out[reason] = out.get(reason, 0.0) + value
    return out


def wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def test_json_lines_rotate_by_size_and_hold_every_record(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    sink = JsonLinesSink(tmp_path, max_file_bytes=8_000)
    writer = BackgroundWriter(sink, PayloadLogMetrics(registry, sink.name), batch=4)
    writer.start()
    events = [prediction(f"id-{i}", seed=i) for i in range(40)]
    for event in events:
        writer.offer((PREDICTION, 1_700_000_000.25, event, -1))
    writer.close(10.0)
    files = sorted(tmp_path.glob("payloads-*.jsonl"))
    assert len(files) > 3  # ~1.4 KB per record, 8 KB per file
    assert all(f.stat().st_size <= 8_000 for f in files)
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert [r["id"] for r in records] == [f"id-{i}" for i in range(40)]
    first = records[0]
    assert first["event"] == "prediction" and first["time"] == "2023-11-14T22:13:20.250000Z"
    assert (first["model"], first["version"], first["experiment"], first["arm"]) == ("lstm", 3, "exp", "b")
    assert base64.b64decode(first["inputs"][0]["pixels"]) == events[0].images[0].tobytes()
    assert first["digits"] == [int(events[0].digits[0])]
    np.testing.assert_allclose(first["probabilities"], events[0].probabilities, rtol=1e-6)
    assert counted(registry, "jsonl") == {"written": 40, "queue_full": 0, "sink_error": 0, "shutdown": 0}


def test_a_group_event_is_one_record_per_request_and_uploads_are_kept(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    sink = JsonLinesSink(tmp_path, 1 << 20)
    logger = PayloadLogger(BackgroundWriter(sink, PayloadLogMetrics(registry, sink.name)))
    group = prediction("", count=3, files=(b"", b"\x89PNG-not-really", b""))
    group = PredictionEvent(group.method, group.served_by, "", group.digits, group.probabilities, [None, 4, None],
                            request_ids=("a", "b", "c"), images=group.images, files=group.files, protocol="digits.v1")
    logger.start()
    logger.observe(group)
    logger.close(10.0)
    records = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b", "c"]
    assert records[1]["inputs"] == [{"file": base64.b64encode(b"\x89PNG-not-really").decode()}]
    assert records[1]["true_labels"] == [4]
    assert base64.b64decode(records[2]["inputs"][0]["pixels"]) == group.images[2].tobytes()


def test_cloud_events_have_kserve_logger_shape() -> None:
    receiver = CloudEventsReceiver()
    receiver.start()
    try:
        registry = CollectorRegistry()
        writer = BackgroundWriter(CloudEventsSink(receiver.url, "digits-server/test"), PayloadLogMetrics(registry, "cloudevents"))
        logger = PayloadLogger(writer)
        logger.start()
        event = prediction("d1.some-signed-id")
        logger.observe(event)
        logger.observe_feedback(FeedbackEvent(SERVED, "d1.some-signed-id", 0, int(event.digits[0]), 7))
        logger.observe(prediction("client id ü\r\nx"))  # percent-encoded, never a header injection
        logger.close(10.0)
    finally:
        receiver.stop()
    request, response, feedback = receiver.of_type(CE_REQUEST)[0], receiver.of_type(CE_RESPONSE)[0], receiver.of_type(CE_FEEDBACK)[0]
    for received in (request, response, feedback):
        assert received.id == "d1.some-signed-id"
        assert received.headers["ce-specversion"] == "1.0"
        assert received.headers["ce-source"] == "digits-server/test"
        assert RFC3339.match(received.headers["ce-time"])
        assert received.headers["content-type"] == "application/json"
        assert received.headers["ce-inferenceservicename"] == "lstm" and received.headers["ce-modelversion"] == "3"
    assert base64.b64decode(request.body["inputs"][0]["pixels"]) == event.images[0].tobytes()
    assert response.body["digits"] == [int(event.digits[0])]
    assert feedback.body["true_label"] == 7 and feedback.body["index"] == 0
    assert receiver.of_type(CE_REQUEST)[1].id == "client id %C3%BC%0D%0Ax"
    assert counted(registry, "cloudevents")["written"] == 3


def test_a_sink_that_is_down_is_retried_then_dropped_and_counted_and_recovers() -> None:
    receiver = CloudEventsReceiver()  # not started: connections are refused
    registry = CollectorRegistry()
    writer = BackgroundWriter(CloudEventsSink(receiver.url, "s", timeout=1.0), PayloadLogMetrics(registry, "cloudevents"),
                              attempts=3, backoff=0.01)
    writer.start()
    for i in range(10):
        writer.offer((PREDICTION, time.time(), prediction(f"down-{i}"), -1))
    wait_for(lambda: counted(registry, "cloudevents")["sink_error"] == 10)
    assert registry.get_sample_value("digits_payload_log_sink_errors_total", {"sink": "cloudevents"}) >= 3
    receiver.start()
    try:
        for i in range(5):
            writer.offer((PREDICTION, time.time(), prediction(f"up-{i}"), -1))
        writer.close(10.0)
    finally:
        receiver.stop()
    assert counted(registry, "cloudevents") == {"written": 5, "queue_full": 0, "sink_error": 10, "shutdown": 0}
    assert sorted(e.id for e in receiver.of_type(CE_RESPONSE)) == [f"up-{i}" for i in range(5)]


def test_a_full_queue_drops_at_once_and_shutdown_counts_what_was_left(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    writer = BackgroundWriter(JsonLinesSink(tmp_path, 1 << 20), PayloadLogMetrics(registry, "jsonl"), capacity=3)
    for i in range(5):  # no writer thread yet: nothing leaves the queue
        writer.offer((PREDICTION, time.time(), prediction(f"q-{i}"), -1))
    writer.close(0.0)
    assert counted(registry, "jsonl") == {"written": 0, "queue_full": 2, "sink_error": 0, "shutdown": 3}


def test_the_queue_is_bounded_in_images_so_big_batches_cannot_hold_unbounded_memory(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    writer = BackgroundWriter(JsonLinesSink(tmp_path, 1 << 20), PayloadLogMetrics(registry, "jsonl"), capacity=5)
    writer.offer((PREDICTION, time.time(), prediction("batch-4", count=4), -1))
    writer.offer((PREDICTION, time.time(), prediction("batch-2", count=2), -1))  # 6 > 5: dropped
    writer.offer((FEEDBACK, time.time(), FeedbackEvent(SERVED, "batch-4", 0, 1, 2), -1))  # 5: fits
    assert writer.queued == 5
    writer.start()
    writer.close(10.0)
    assert counted(registry, "jsonl") == {"written": 2, "queue_full": 1, "sink_error": 0, "shutdown": 0}
    assert writer.queued == 0


def test_sampling_follows_the_request_id_so_feedback_matches_its_prediction(tmp_path: Path) -> None:
    writer = BackgroundWriter(JsonLinesSink(tmp_path, 1 << 20), PayloadLogMetrics(CollectorRegistry(), "jsonl"))
    logger = PayloadLogger(writer, sample=0.3)
    rng = random.Random(7)
    ids = [f"d1.{rng.getrandbits(128):032x}" for _ in range(20_000)]
    kept = [logger.sampled("lstm", i) for i in ids]
    assert abs(sum(kept) / len(ids) - 0.3) < 0.015  # binomial sd 0.0032: > 4 sd
    assert kept == [logger.sampled("lstm", i) for i in ids]  # the same answer every time (feedback)
    for request_id, was_kept in list(zip(ids, kept))[:200]:
        before = writer.queued
        logger.observe_feedback(FeedbackEvent(SERVED, request_id, 0, 1, 2))
        assert writer.queued - before == was_kept
    logger.configure(parse_config("models: {lstm: {payload_log_sample: 0}, gru: {payload_log_sample: 1}}"))
    assert not any(logger.sampled("lstm", i) for i in ids[:500])
    assert all(logger.sampled("gru", i) for i in ids[:500])
    assert sum(logger.sampled("rnn", i) for i in ids) == sum(kept)  # unnamed models: the server's rate
    logger.configure(parse_config(""))
    assert [logger.sampled("lstm", i) for i in ids] == kept
    shadow = prediction("x")
    logger.observe(PredictionEvent(shadow.method, shadow.served_by, "x", shadow.digits, shadow.probabilities,
                                   [None], shadow=True))
    assert writer.queued == sum(kept[:200])  # shadows are never logged


def test_model_config_payload_log_sample_is_validated_and_round_trips() -> None:
    config = parse_config("models:\n  lstm:\n    payload_log_sample: 0.25\n")
    assert config.payload_log_samples() == {"lstm": 0.25}
    assert parse_config(json.dumps(config_to_raw(config)), json_syntax=True) == config
    for bad in ("1.5", "-0.1", "yes", "'half'"):
        with pytest.raises(ConfigError, match=r"models\.lstm\.payload_log_sample: must be a number from 0 to 1"):
            parse_config(f"models: {{lstm: {{payload_log_sample: {bad}}}}}")


def test_settings_flags_environment_and_bad_values(tmp_path: Path) -> None:
    settings = Settings.from_args(
        ["--payload-log-sample", "0.1"],
        {"DIGITS_SERVER_PAYLOAD_LOG": str(tmp_path / "log"), "DIGITS_SERVER_PAYLOAD_LOG_QUEUE": "50"},
    )
    assert (settings.payload_log, settings.payload_log_sample, settings.payload_log_queue) == (str(tmp_path / "log"), 0.1, 50)
    logger = payload_logger(settings, CollectorRegistry())
    assert logger is not None and (tmp_path / "log").is_dir() and logger.sample == 0.1
    assert payload_logger(Settings(), CollectorRegistry()) is None  # off by default
    bad = {
        "payload_log_sample": Settings(payload_log=str(tmp_path), payload_log_sample=1.5),
        "payload_log_queue": Settings(payload_log=str(tmp_path), payload_log_queue=0),
        "payload_log: 'ftp://x'": Settings(payload_log="ftp://x"),
        "payload_log: cannot create": Settings(payload_log=str(tmp_path / "file" / "sub")),
    }
    (tmp_path / "file").write_text("a file, not a directory")
    for message, settings in bad.items():
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            payload_logger(settings, CollectorRegistry())


def test_payload_log_modules_are_transport_free() -> None:
    """They live in observability, whose modules test_layers checks too; this names them, so a move is seen."""
    for module in ("payload_logger", "payload_records", "payload_sinks", "payload_writer", "payload_log_metrics"):
        assert forbidden_paths(f"digits_server.observability.{module}") == [], module


def test_docs_list_every_payload_log_metric_with_its_labels() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    section = text.split("\n## Payload logging\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        name: set(re.findall(r"`(\w+)`", labels))
        for name, labels in re.findall(r"^\| `(digits_payload_\w+)` \|([^|]*)\|", section, flags=re.MULTILINE)
    }
    registry = CollectorRegistry()
    PayloadLogMetrics(registry, "jsonl")
    exported = {
        family.name + ("_total" if family.type == "counter" else ""): {k for s in family.samples for k in s.labels}
        for family in registry.collect()
    }
    assert exported == documented
