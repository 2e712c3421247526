"""How the ecosystem protocols' model names map onto our selectors, and their call into the
data plane. Transport-free.

The rules (the README documents them):
- a model name selects that model; an empty name selects the server's default model;
- for inference calls, a name that is no model's is taken as an A/B experiment's name (the
  experiment then chooses the model and version, so none may be given);
- a version is a positive number, or a version label from the model config.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from digits_server.core.dataplane import DataPlane
from digits_server.core.domain import BatchOutcome, CallRecord, ModelSelector
from digits_server.core.errors import ModelNotFound

# The tensor names both protocols expose: the names of the trainer's `serving_default`
# signature, so a client written against the SavedModel itself works unchanged.
SIGNATURE = "serving_default"
INPUT_TENSOR = "images"
OUTPUT_TENSOR = "probabilities"


def selector(
    name: str, version: int | None, label: str, models: Collection[str], experiments: bool = True
) -> ModelSelector:
    """A protocol's (name, version, label) as a selector; with `experiments`, a bare name that is
    no model's becomes an experiment selector."""
    if experiments and name and name not in models and version is None and not label:
        return ModelSelector(experiment=name)
    return ModelSelector(name, version, label)


async def classify(
    dataplane: DataPlane,
    chosen: ModelSelector,
    images: np.ndarray,
    request_id: str,
    call: CallRecord,
    deadline: float | None,
    field: str,
) -> BatchOutcome:
    """Classify through the data plane (batching, observers, metrics labels), with a NOT_FOUND
    message that says both readings of a name that is neither a model nor an experiment."""
    try:
        return await dataplane.classify(chosen, images, [None] * len(images), request_id, call, deadline)
    except ModelNotFound as exc:
        if not chosen.experiment:
            raise
        known = ", ".join(dataplane.manager.slots()) or "none"
        name = chosen.experiment
        raise ModelNotFound(f"{field}: no model '{name}' (models: {known}); as an experiment: {exc}") from exc
