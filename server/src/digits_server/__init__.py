"""digits-server: serves the trainer's SavedModels over gRPC (`digits.v1.DigitClassifier`).

Layout: `settings` (configuration), `errors` (domain errors, transport-free),
`runtime` (one loaded SavedModel version), `repository` (which versions exist on
disk), `manager` (loads/unloads versions and resolves selectors), `dataplane`
(transport-free inference logic), `codec` (protobuf <-> domain), `servicer`
(thin gRPC layer), `status` (domain error -> gRPC status, the only place),
`metrics` (every Prometheus metric), `app` (wiring and lifecycle), `cli`.
`protocols` serves the Open Inference Protocol v2 and TensorFlow Serving's API on the same
port through the same data plane; `apis` holds their generated messages.
"""

__version__ = "0.1.0"
