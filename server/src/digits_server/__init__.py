"""digits-server: serves the trainer's SavedModels over gRPC (`digits.v1.DigitClassifier`).

Layers, from the inside out (`tests/server/test_layers.py` keeps the first three free of gRPC):
- `core`: transport-free serving. `domain` and `errors` (shared types), `repository` (the
  *source*: which versions should be served) and `model_config` (the `--model-config` file),
  `manager` (loads, warms up, unloads), `loaded_model` (one SavedModel version) and `runtimes`
  (its XLA / LiteRT fast paths), `model_trust` (checks before loading), `batching` and
  `model_runner` (how model calls run), `dataplane` (route, run, observe), `request_ids`
  (signed request ids: what a prediction was, so any replica takes its feedback), `feedback`,
  `reloader` (re-reads the config file, writes it for admin calls), `imaging`, `ordered_streams`.
- `experiments`: A/B `router`, `observer` (per-arm counts), `report`, `service` (the operations
  behind the RPCs), `config_file` (experiments <-> the config file's entries, the sync plan). The
  statistics and the verdict words live in the client package (`digits.experiments.statistics`,
  `digits.experiments.verdict`), shared with `digits ab report --prometheus`.
- `observability`: `metrics` (the serving path's Prometheus metrics, one injected registry),
  `experiment_metrics` (the A/B experiments' metrics, same registry), `request_metrics`, `observers`
  (events -> metrics), `histograms`, `http_endpoint` (/metrics).
- `transport`: the gRPC layer for digits.v1: `classifier_servicer`, `admin_servicer`, `codec`
  (wire <-> domain), `status_codes` (domain error -> gRPC status, the only place),
  `health_service`, `guarded_handlers` / `handler_shapes` / `wire_guard` (handler wrapping).
- `security`: `auth` (token scopes), `auth_guard`, `tls`, `pem`, `credentials` (wiring).
- `protocols`: Open Inference Protocol v2 and TensorFlow Serving's API on the same port,
  through the same data plane; `apis` holds their generated messages. Their REST forms on the
  REST port (`--http-port`): `rest_server` (aiohttp in the same event loop: auth, deadlines,
  limits, errors, metrics, drain), `kserve_v2_rest` / `tfserving_rest` and their `*_rest_codec`.
- Entry points: `settings` (every flag), `app` (wiring and lifecycle), `cli`
  (`digits-server`), `health_probe` (`digits-server-healthcheck`).
"""

__version__ = "0.1.0"
