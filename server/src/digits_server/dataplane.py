"""The transport-free data plane: resolve the selector, run the model, shape the outcome.

The gRPC servicer is a thin shell around it; so can any other protocol be.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Executor

import numpy as np

from .domain import BatchOutcome, CallRecord, ModelSelector, ServedBy
from .manager import ModelManager


def new_request_id() -> str:
    """A fresh server-made request id."""
    return uuid.uuid4().hex


class DataPlane:
    """Classifies images with the version a selector resolves to."""

    def __init__(self, manager: ModelManager, executor: Executor) -> None:
        self.manager = manager
        self._executor = executor

    async def classify(
        self,
        selector: ModelSelector,
        images: np.ndarray,
        true_labels: list[int | None],
        request_id: str,
        call: CallRecord,
    ) -> BatchOutcome:
        """Predict uint8 images [N,28,28] with the selected model version."""
        model = self.manager.resolve(selector)
        call.model, call.version = model.name, str(model.version)
        loop = asyncio.get_running_loop()
        probabilities = await loop.run_in_executor(self._executor, model.predict, images)
        digits = probabilities.argmax(axis=1)
        return BatchOutcome(
            digits=digits,
            probabilities=probabilities,
            served_by=ServedBy(model.name, model.version),
            request_id=request_id or new_request_id(),
        )
