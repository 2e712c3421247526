"""digits: Python client for the digits gRPC model server (no TensorFlow needed).

>>> from digits import DigitsClient
>>> with DigitsClient("localhost:50051") as client:      # doctest: +SKIP
...     result = client.classify(image, model="lstm")
"""

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
