"""digits: Python client for the digits gRPC model server (no TensorFlow needed).

>>> from digits import DigitsClient
>>> with DigitsClient("localhost:50051") as client:      # doctest: +SKIP
...     result = client.classify(image, model="lstm")

The names below are imported on first use (PEP 562), so that `import digits.experiments.statistics`
(pure statistics the server shares) does not load gRPC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digits.aio import AsyncDigitsClient
    from digits.client import DigitsClient
    from digits.errors import (
        AlreadyExistsError,
        AuthenticationError,
        DeadlineExceededError,
        DigitsError,
        InvalidInputError,
        ModelNotFoundError,
        NotFoundError,
        PermissionDeniedError,
        RequestNotFoundError,
        ResourceExhaustedError,
        UnavailableError,
    )
    from digits.results import BatchResult, ClassifyResult, FeedbackResult, ModelInfo, Prediction, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "AsyncDigitsClient",
    "DigitsClient",
    "ClassifyResult",
    "BatchResult",
    "Prediction",
    "ModelInfo",
    "VersionInfo",
    "FeedbackResult",
    "DigitsError",
    "ModelNotFoundError",
    "NotFoundError",
    "RequestNotFoundError",
    "InvalidInputError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "AuthenticationError",
    "PermissionDeniedError",
    "AlreadyExistsError",
    "__version__",
]


_HOMES = {
    "AsyncDigitsClient": "digits.aio",
    "DigitsClient": "digits.client",
    **dict.fromkeys(("BatchResult", "ClassifyResult", "FeedbackResult", "ModelInfo", "Prediction", "VersionInfo"),
                    "digits.results"),
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    home = _HOMES.get(name) or ("digits.errors" if name in __all__ and name.endswith("Error") else None)
    if home is None:
        raise AttributeError(f"module 'digits' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
