"""Build Open Inference Protocol v2 requests and read their answers: the client side of
kserve_v2_codec, for benchmarks and tools that drive the v2 protocol beside digits.v1.

    import grpc
    from digits_server.protocols import kserve_v2_requests as v2

    stub = v2.stub(grpc.aio.insecure_channel("localhost:50051"))
    request = v2.infer_request("lstm", images)        # uint8 [N,28,28]; raw tensors by default
    digits, probabilities = v2.read_infer_response(await stub.ModelInfer(request))

Build the request once and reuse it in a load loop: building is not free (typed contents
especially), and what a benchmark should measure is the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import inference_v2_pb2_grpc as v2_grpc
from digits_server.protocols import naming
from digits_server.protocols.kserve_v2_codec import DIGIT_OUTPUT, join_bytes


def stub(channel: "grpc.Channel | grpc.aio.Channel") -> v2_grpc.GRPCInferenceServiceStub:
    """The v2 stub on a (sync or asyncio) channel."""
    return v2_grpc.GRPCInferenceServiceStub(channel)


def infer_request(
    model: str,
    images: "np.ndarray | Sequence[bytes]",
    version: str = "",
    raw: bool = True,
    request_id: str = "",
    outputs: Sequence[str] = (),
) -> v2.ModelInferRequest:
    """A ModelInferRequest for uint8 [N,28,28] or float32 [N,28,28] pixels, or encoded image files.

    `version` is a number, a label or "" (newest); `raw` puts the tensor in raw_input_contents
    (what tritonclient does) instead of typed contents; `outputs` limits the outputs returned.
    """
    request = v2.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    request.outputs.extend(v2.ModelInferRequest.InferRequestedOutputTensor(name=name) for name in outputs)
    if isinstance(images, np.ndarray):
        datatype = "FP32" if images.dtype == np.float32 else "UINT8"
        tensor = request.inputs.add(name=naming.INPUT_TENSOR, datatype=datatype, shape=list(images.shape))
        if raw:
            layout = "<f4" if datatype == "FP32" else np.uint8
            request.raw_input_contents.append(np.ascontiguousarray(images, dtype=layout).tobytes())
        elif datatype == "FP32":
            tensor.contents.fp32_contents.extend(images.ravel().tolist())
        else:
            tensor.contents.uint_contents.extend(images.ravel().tolist())
        return request
    files = list(images)
    tensor = request.inputs.add(name=naming.INPUT_TENSOR, datatype="BYTES", shape=[len(files)])
    if raw:
        request.raw_input_contents.append(join_bytes(files))
    else:
        tensor.contents.bytes_contents.extend(files)
    return request


def read_infer_response(response: v2.ModelInferResponse) -> tuple[np.ndarray, np.ndarray]:
    """(digits int32 [N], probabilities float32 [N,10]) from a response, raw or typed.

    An output the request left out comes back as an empty array.
    """
    found: dict[str, np.ndarray] = {}
    for i, output in enumerate(response.outputs):
        dtype = "<f4" if output.datatype == "FP32" else "<i4"
        if response.raw_output_contents:
            values = np.frombuffer(response.raw_output_contents[i], dtype=dtype)
        elif output.datatype == "FP32":
            values = np.asarray(output.contents.fp32_contents, dtype=np.float32)
        else:
            values = np.asarray(output.contents.int_contents, dtype=np.int32)
        found[output.name] = values.reshape(list(output.shape))
    return (
        found.get(DIGIT_OUTPUT, np.empty(0, dtype=np.int32)),
        found.get(naming.OUTPUT_TENSOR, np.empty((0, 10), dtype=np.float32)),
    )
