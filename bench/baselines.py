"""The baseline servers the harness compares ours with, all speaking digits.v1 on grpc.aio:

- ``echo``: the transport ceiling. Parses each request and answers with a pre-built response
  of the same size as a real one (ten probabilities, served_by, a 32-character request id).
- ``predict``: the naive style of serving a Keras model: one Keras ``model.predict`` per request (the model is
  the SavedModel wrapped in a Keras ``TFSMLayer``), one predict at a time.
- ``savedmodel``: one SavedModel ``serving_default`` call per request, no batching, in a small
  thread pool.

Usage: ``python bench/baselines.py --kind echo --port 0 --ready-file ready.json [--models DIR]``;
the bound port is written to the ready file as ``{"port": N}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc

REQUEST_ID = "0" * 32
UNIFORM = [0.1] * 10


def _response(spec: pb.ModelSpec, digit: int, probabilities: list[float]) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(
        digit=digit, probabilities=probabilities, request_id=REQUEST_ID,
        served_by=pb.ServedBy(model=spec.name or "lstm", version=1),
    )


class EchoServicer(pb_grpc.DigitClassifierServicer):
    """Answers every request with a canned response of the real size; no model."""

    def __init__(self) -> None:
        self._unary = _response(pb.ModelSpec(name="lstm"), 7, UNIFORM).SerializeToString()
        self._batches: dict[int, bytes] = {}

    def batch_bytes(self, count: int) -> bytes:
        """A pre-built ClassifyBatchResponse with `count` predictions."""
        if count not in self._batches:
            predictions = [pb.Prediction(digit=7, probabilities=UNIFORM) for _ in range(count)]
            self._batches[count] = pb.ClassifyBatchResponse(
                predictions=predictions, request_id=REQUEST_ID, served_by=pb.ServedBy(model="lstm", version=1)
            ).SerializeToString()
        return self._batches[count]

    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext) -> bytes:  # noqa: N802
        return self._unary

    async def ClassifyBatch(self, request: pb.ClassifyBatchRequest, context: grpc.aio.ServicerContext) -> bytes:  # noqa: N802
        return self.batch_bytes(len(request.images))

    async def ClassifyStream(self, requests, context):  # noqa: N802
        async for _request in requests:
            yield self._unary

    def handler(self) -> grpc.GenericRpcHandler:
        """The service with pass-through response serializers (responses are pre-built bytes)."""
        return grpc.method_handlers_generic_handler("digits.v1.DigitClassifier", {
            "Classify": grpc.unary_unary_rpc_method_handler(
                self.Classify, request_deserializer=pb.ClassifyRequest.FromString),
            "ClassifyBatch": grpc.unary_unary_rpc_method_handler(
                self.ClassifyBatch, request_deserializer=pb.ClassifyBatchRequest.FromString),
            "ClassifyStream": grpc.stream_stream_rpc_method_handler(
                self.ClassifyStream, request_deserializer=pb.ClassifyRequest.FromString),
        })


class ModelServicer(pb_grpc.DigitClassifierServicer):
    """One model call per request (no batching) through `predict(name, uint8 [N,28,28])`."""

    def __init__(self, predict: Callable[[str, np.ndarray], np.ndarray], threads: int) -> None:
        self._predict = predict
        self._pool = ThreadPoolExecutor(threads)

    async def _run(self, name: str, images: np.ndarray) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._predict, name, images)

    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        image = np.frombuffer(request.image.pixels, dtype=np.uint8).reshape(1, 28, 28)
        probabilities = (await self._run(request.model_spec.name or "lstm", image))[0]
        return _response(request.model_spec, int(probabilities.argmax()), probabilities.tolist())

    async def ClassifyBatch(self, request: pb.ClassifyBatchRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        images = np.stack([np.frombuffer(i.pixels, dtype=np.uint8).reshape(28, 28) for i in request.images])
        probabilities = await self._run(request.model_spec.name or "lstm", images)
        return pb.ClassifyBatchResponse(
            predictions=[pb.Prediction(digit=int(p.argmax()), probabilities=p.tolist()) for p in probabilities],
            request_id=REQUEST_ID, served_by=pb.ServedBy(model=request.model_spec.name or "lstm", version=1),
        )


def _newest_versions(models: Path, cells: list[str]) -> dict[str, Path]:
    found = {}
    for model_dir in sorted(models / cell for cell in cells):
        versions = [int(v.name) for v in model_dir.iterdir() if v.name.isdigit()]
        if versions:
            found[model_dir.name] = model_dir / str(max(versions))
    return found


def savedmodel_predictor(models: Path, cells: list[str]) -> Callable[[str, np.ndarray], np.ndarray]:
    """predict(name, images) through each model's SavedModel signature."""
    import tensorflow as tf

    signatures = {name: tf.saved_model.load(str(path)).signatures["serving_default"]
                  for name, path in _newest_versions(models, cells).items()}

    def predict(name: str, images: np.ndarray) -> np.ndarray:
        return signatures[name](images=tf.constant(images))["probabilities"].numpy()

    return predict


def keras_predictor(models: Path, cells: list[str]) -> Callable[[str, np.ndarray], np.ndarray]:
    """predict(name, images) through Keras `model.predict`, the naive way to serve a Keras model."""
    import keras

    keras_models = {}
    for name, path in _newest_versions(models, cells).items():
        inputs = keras.Input((28, 28), dtype="uint8")
        outputs = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inputs)
        keras_models[name] = keras.Model(inputs, outputs)

    def predict(name: str, images: np.ndarray) -> np.ndarray:
        return np.asarray(keras_models[name].predict(images, verbose=0)["probabilities"])

    return predict


async def serve(kind: str, models: Path | None, cells: list[str], port: int, ready_file: Path) -> None:
    """Run one baseline server until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.max_send_message_length", 64 << 20)])
    if kind == "echo":
        server.add_generic_rpc_handlers([EchoServicer().handler()])
    else:
        predictor = keras_predictor if kind == "predict" else savedmodel_predictor
        servicer = ModelServicer(predictor(models, cells), threads=1 if kind == "predict" else 4)
        pb_grpc.add_DigitClassifierServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    partial = ready_file.with_name(ready_file.name + ".part")
    partial.write_text(json.dumps({"port": bound, "pid": os.getpid()}))
    os.replace(partial, ready_file)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main() -> None:
    """Command line of the baseline servers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("echo", "predict", "savedmodel"), required=True)
    parser.add_argument("--models", type=Path, help="model repository (predict and savedmodel)")
    parser.add_argument("--cells", default="rnn,lstm,gru", help="models to load (predict and savedmodel)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    if args.kind != "echo" and args.models is None:
        parser.error("--models is needed for predict and savedmodel")
    asyncio.run(serve(args.kind, args.models, args.cells.split(","), args.port, args.ready_file))


if __name__ == "__main__":
    main()
