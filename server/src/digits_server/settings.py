"""Server settings: one class, every field a flag (`--max-batch-size`) and an environment
variable with the `DIGITS_SERVER_` prefix (`DIGITS_SERVER_MAX_BATCH_SIZE`). Flags win over
the environment, the environment over defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "DIGITS_SERVER_"


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Each field's help line is its documentation."""

    config: Path | None = _setting(None, "YAML/JSON file of settings, keys named like the flags (max_batch_size: 32); "
                                   "flags and environment variables win over it")
    models: Path = _setting(Path("models"), "model repository: <name>/<version>/ SavedModel folders")
    host: str = _setting("127.0.0.1", "interface the gRPC port binds to ([::] for all)")
    port: int = _setting(50051, "gRPC port (0 picks a free one)")
    http_port: int = _setting(
        -1, "REST port (Open Inference Protocol v2 and TF Serving REST APIs) on --host, with the gRPC port's TLS "
        "and tokens (0 picks a free one, -1 disables; make demo and the deployments use 8080)"
    )
    metrics_host: str = _setting("127.0.0.1", "interface the Prometheus /metrics port binds to")
    metrics_port: int = _setting(9100, "Prometheus /metrics port (0 picks a free one, -1 disables)")
    default_model: str = _setting("lstm", "model that serves requests with no model name")
    model_config: Path | None = _setting(None, "YAML/JSON file with version policies, labels and experiments")
    poll_seconds: float = _setting(5.0, "how often the model folder is rescanned (0 = never)")
    max_batch_size: int = _setting(64, "most images one model call computes together")
    batch_timeout_us: int = _setting(
        0, "longest a queued request waits for others to join its batch (0: batch what queued during the last call)"
    )
    max_queued: int = _setting(1024, "most images waiting per model version before RESOURCE_EXHAUSTED")
    batching: bool = _setting(True, "batch concurrent requests together (off: one model call per request)")
    inline_single: bool = _setting(
        True, "with batch timeout 0: compute a lone single image on the event loop if its model has LiteRT"
    )
    max_batch_images: int = _setting(1024, "most images in one ClassifyBatch request")
    max_image_bytes: int = _setting(4 * 1024 * 1024, "largest encoded image file (PNG, JPEG, ...) accepted")
    max_image_pixels: int = _setting(4096 * 4096, "most pixels (width x height) an encoded image may decode to")
    load_timeout_seconds: float = _setting(120.0, "a version still loading after this long is marked FAILED")
    max_message_bytes: int = _setting(16 * 1024 * 1024, "largest gRPC message accepted or sent")
    grace_seconds: float = _setting(10.0, "how long in-flight calls may finish after SIGTERM")
    compute_threads: int = _setting(2, "threads that run model calls off the event loop")
    feedback_max_predictions: int = _setting(
        100_000, "most recent predictions remembered for the Feedback RPC under client-chosen ids, and most "
        "feedback labels remembered to refuse a second one for the same image (0 = none)",
    )
    feedback_max_age_seconds: float = _setting(3600.0, "how long a prediction can still receive feedback")
    feedback_key_file: Path | None = _setting(
        None, "file holding the HMAC key that signs request ids (>= 16 bytes), shared by every replica so any "
        "of them takes feedback (or the key itself in env DIGITS_SERVER_FEEDBACK_KEY); none: a random key per process",
    )
    runtime: str = _setting(
        "auto", "what computes: auto or litert (a version with its LiteRT twin on the standalone LiteRT runtime, "
        "without TensorFlow; any other with TensorFlow: LiteRT files where exported, XLA for batches otherwise), "
        "savedmodel, xla, tflite (TensorFlow's LiteRT interpreter beside the SavedModel, the signature where no file)"
    )
    xla_buckets: str = _setting("1,4,16,64,256", "batch sizes XLA compiles at load; a batch is padded to the next")
    monitoring: bool = _setting(
        True, "label-free monitoring: estimated accuracy and drift detectors for every version with a "
        "reference_profile.json (docs/monitoring.md); off: none of it"
    )
    monitoring_images_per_request: int = _setting(
        8, "the input-summary drift detectors watch at most this many images of each request (0 = all); "
        "predicted classes, confidence and the estimated accuracy always use every image"
    )
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    ready_file: Path | None = _setting(None, "once serving, write {\"port\", \"metrics_port\", \"http_port\"} as JSON here")
    # Security (README: Security). Token values never come from flags: `ps` shows flags to everyone.
    tls_cert: Path | None = _setting(None, "PEM certificate (chain) of the gRPC port; with --tls-key turns TLS on")
    tls_key: Path | None = _setting(None, "PEM private key of --tls-cert")
    tls_client_ca: Path | None = _setting(None, "PEM CA bundle: require client certificates it signed (mutual TLS)")
    tokens_file: Path | None = _setting(
        None,
        "file of bearer tokens, '<inference|admin> <token>' per line (also from the env variables "
        "DIGITS_SERVER_INFERENCE_TOKENS / DIGITS_SERVER_ADMIN_TOKENS, comma-separated); none: no auth",
    )
    allow_remote_admin: bool = _setting(False, "with no tokens configured, serve admin calls to non-loopback clients")
    metrics_tls_cert: Path | None = _setting(None, "PEM certificate of the metrics port; with --metrics-tls-key: HTTPS")
    metrics_tls_key: Path | None = _setting(None, "PEM private key of --metrics-tls-cert")
    metrics_tls_client_ca: Path | None = _setting(
        None, "PEM CA bundle: /metrics requires client certificates it signed"
    )
    metrics_auth_file: Path | None = _setting(
        None, "file of 'user:password' lines: require HTTP basic auth on /metrics"
    )
    allow_world_writable_models: bool = _setting(
        False, "load model folders other users (group or world) may write to (a SavedModel is code)"
    )
    # Payload logging (docs/observability.md: Payload logging).
    payload_log: str = _setting(
        "", "log each request's input and prediction, and later feedback, to a directory (JSON Lines files "
        "rotated by size) or an http(s):// URL (CloudEvents POSTs, KServe's logger format); empty: off",
    )
    payload_log_sample: float = _setting(
        1.0, "share of requests the payload log keeps (0-1, by request id; a model's payload_log_sample in "
        "--model-config wins)",
    )
    payload_log_queue: int = _setting(
        10_000, "most images (a feedback counts 1) waiting for the payload log's writer; more are dropped"
    )
    payload_log_file_bytes: int = _setting(64 * 1024 * 1024, "a JSON Lines payload log file is rotated at this size")
    payload_log_attempts: int = _setting(5, "tries to write a payload-log batch (backoff between) before dropping it")

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> "Settings":
        """Build settings from command-line flags, then `DIGITS_SERVER_*` variables, then the
        `--config` file, then defaults."""
        parser = build_parser()
        namespace = parser.parse_args(argv)
        env = os.environ if environ is None else environ
        config_path = namespace.config or env.get(ENV_PREFIX + "CONFIG")
        from_file = _read_settings_file(Path(config_path), parser) if config_path else {}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            given = getattr(namespace, f.name)
            if given is None and ENV_PREFIX + f.name.upper() in env:
                given = env[ENV_PREFIX + f.name.upper()]
            if given is None:
                given = from_file.get(f.name)
            if given is not None:
                values[f.name] = _convert(f, given, parser)
        return cls(**values)


def _read_settings_file(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The settings in a YAML/JSON file as {field name: value}; an unknown key is an error naming it."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        parser.error(f"config: cannot read {path}: {exc}")
    if not isinstance(raw, dict):
        parser.error(f"config: {path} must hold a mapping of setting name -> value")
    known = {f.name for f in dataclasses.fields(Settings)} - {"config"}
    values = {str(key).replace("-", "_"): value for key, value in raw.items()}
    for key in values:
        if key not in known:
            parser.error(f"config: {path}: unknown setting {key!r} (see digits-server --help)")
    return values


def _field_type(f: dataclasses.Field) -> type:
    text = str(f.type)
    for name, kind in (("Path", Path), ("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def _convert(f: dataclasses.Field, raw: Any, parser: argparse.ArgumentParser) -> Any:
    kind = _field_type(f)
    if isinstance(raw, kind) and kind is not str:
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        parser.error(f"{f.name}: cannot read {text!r} as {kind.__name__}")
        raise  # unreachable: parser.error exits


def build_parser() -> argparse.ArgumentParser:
    """The `digits-server` argument parser, generated from the Settings fields."""
    parser = argparse.ArgumentParser(
        prog="digits-server",
        description="Serve recurrent digit classifiers over gRPC. Every flag can also be set "
        f"as an environment variable {ENV_PREFIX}<FLAG_NAME>, e.g. {ENV_PREFIX}PORT=50051.",
    )
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env_name = ENV_PREFIX + f.name.upper()
        help_text = f"{f.metadata['help']} (env {env_name}; default {f.default})"
        if _field_type(f) is bool:
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    return parser
