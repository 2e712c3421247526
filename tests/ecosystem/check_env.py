"""Check the ecosystem venv: exactly one TensorFlow, the pinned clients importable, and no broken
requirement other than the one tensorflow-serving-api's --no-deps install leaves on purpose.

Run with the venv's python; prints a JSON summary and exits 1 when something is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

# tensorflow-serving-api asks for the `tensorflow` distribution; tensorflow-cpu provides the package.
EXPECTED_PIP_CHECK = {"tensorflow-serving-api 2.21.0 requires tensorflow, which is not installed."}


def tensorflow_distributions(path: list[str] | None = None) -> list[str]:
    """Every installed distribution (on `path`, default sys.path) that ships the top-level `tensorflow` package."""
    found = set()
    for dist in metadata.distributions(path=path if path is not None else sys.path):
        if any(str(path).startswith("tensorflow/") for path in dist.files or ()):
            found.add(dist.metadata["Name"])
    return sorted(found)


def main() -> int:
    problems: list[str] = []
    providers = tensorflow_distributions()
    if [name.replace("_", "-") for name in providers] != ["tensorflow-cpu"]:
        problems.append(f"expected exactly one TensorFlow (tensorflow-cpu), found {providers}")
    checked = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    complaints = {line.strip() for line in checked.stdout.splitlines() if line.strip()}
    unexpected = sorted(complaints - EXPECTED_PIP_CHECK)
    if unexpected:
        problems.append(f"pip check: {unexpected}")
    import google.protobuf
    import tensorflow as tf
    import tritonclient.grpc  # noqa: F401
    import tritonclient.http  # noqa: F401
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc  # noqa: F401

    if int(google.protobuf.__version__.split(".")[0]) >= 7:
        problems.append(f"tritonclient needs protobuf < 7, found {google.protobuf.__version__}")
    summary = {
        "tensorflow_distributions": providers,
        "tensorflow": tf.__version__,
        "protobuf": google.protobuf.__version__,
        "tritonclient": metadata.version("tritonclient"),
        "tensorflow_serving_api": metadata.version("tensorflow-serving-api"),
        "pip_check": sorted(complaints),
        "problems": problems,
    }
    print(json.dumps(summary))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
