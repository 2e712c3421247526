"""digits-server: serves the trainer's SavedModels over gRPC (`digits.v1.DigitClassifier`).

Layers, from the inside out (`tests/server/test_layers.py` keeps each importing only the layers
below it, in the order core, settings, observability, experiments, transport, security, apis,
protocols, entry points, and the first three free of gRPC; `tests/test_docs.py` checks that every
module is named here):
- `core`: transport-free serving. `domain` and `errors` (shared types), `repository` (the
  *source*: which versions should be served) and `model_config` (the `--model-config` file),
  `manager` (loads, warms up, unloads), `loaded_model` (one SavedModel version) and `runtimes`
  (its XLA / LiteRT fast paths), `litert_model` (a version served by the standalone LiteRT runtime,
  without TensorFlow, and which runtime serves each version), `model_trust` (checks before loading), `batching` and
  `model_runner` (how model calls run), `dataplane` (route, run, observe), `request_ids`
  (signed request ids: what a prediction was, so any replica takes its feedback), `feedback`,
  `reloader` (re-reads the config file, writes it for admin calls), `imaging` and `png` (images from
  the wire, PNG decoded without a library), `ordered_streams`, `tensorflow_startup` (TensorFlow's
  native start-up notices kept off the terminal), `pem` (PEM files named by a setting), `ssl_contexts`
  (the server TLS context of the HTTP ports, REST and /metrics).
- `experiments`: A/B `router`, `observer` (per-arm counts), `report`, `decisions` (the always-valid
  statistics folded into each experiment's running state), `service` (the operations
  behind the RPCs), `config_file` (experiments <-> the config file's entries, the sync plan). The
  statistics and the verdict words live in the client package (`digits.experiments.statistics`,
  `digits.experiments.verdict`), shared with `digits ab report --prometheus`.
- `observability`: `metrics` (the serving path's Prometheus metrics, one injected registry),
  `experiment_metrics` (the A/B experiments' metrics, same registry), `request_metrics`, `observers`
  (events -> metrics), `histograms`, `http_endpoint` (/metrics), and the payload log
  (`--payload-log`): `payload_logger` (observer, sampling, wiring), `payload_records`,
  `payload_sinks` (JSON Lines, CloudEvents), `payload_writer` (queue, thread), `payload_log_metrics`; label-free monitoring
  (docs/monitoring.md): `monitor` (the observer: reference profiles, batched statistics),
  `prediction_buffer` (the predictions awaiting a batch), `version_monitor` (one version's
  estimate and drift detectors), `monitoring_metrics`.
- `transport`: the gRPC layer for digits.v1: `classifier_servicer`, `admin_servicer`, `codec`
  (wire <-> domain), `status_codes` (domain error -> gRPC status, the only place),
  `health_service`, `guarded_handlers` / `handler_shapes` / `wire_guard` (handler wrapping),
  `drain` (graceful shutdown that loses no received call), `deadlines` (the caller's gRPC deadline
  in the data plane), `stream_groups` (ClassifyStream messages grouped into batches).
- `security`: `auth` (token scopes), `auth_guard`, `tls`, `credentials` (wiring).
- `protocols`: Open Inference Protocol v2 and TensorFlow Serving's API on the same port,
  through the same data plane: `kserve_v2` and `tfserving` (thin servicers), `kserve_v2_codec` and
  `tfserving_codec` (wire <-> domain), `tfserving_on_demand` (TF Serving's messages are TensorFlow's,
  imported on its first call where no version needed TensorFlow), `kserve_v2_requests` (the client side, for tests and tools),
  `naming` (their model names -> our selectors), `tensors` (input tensors -> images); `apis` holds
  their generated messages. Their REST forms on the REST port (`--http-port`): `rest_server`
  (aiohttp in the same event loop: auth, deadlines, limits, errors, metrics, drain),
  `kserve_v2_rest` / `tfserving_rest` and their codecs `kserve_v2_rest_codec` / `tfserving_rest_codec`;
  `tfserving_rest_on_demand` (the TF Serving REST routes, their handlers imported on the first
  call, 501 without TensorFlow installed).
- Entry points: `settings` (every flag), `app` (wiring and lifecycle), `cli`
  (`digits-server`; `__main__` for `python -m digits_server`), `health_probe`
  (`digits-server-healthcheck`).
"""

__version__ = "0.1.0"
