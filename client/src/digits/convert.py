"""Python <-> wire conversion shared by the sync and asyncio clients.

Requests are built here from numpy arrays, bytes and files; responses are turned into the
dataclasses of :mod:`digits.results` (re-exported here).  Client-side problems with the
input raise :class:`~digits.errors.InvalidInputError` (also a ``ValueError``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias, Union

import numpy as np

from digits.errors import InvalidInputError
from digits.results import batch_result, classify_result, feedback_result, model_info
from digits.v1 import digits_pb2

__all__ = [
    "IMAGE_SIDE",
    "IMAGE_PIXELS",
    "ImageLike",
    "ArmLike",
    "parse_model",
    "model_spec",
    "image_to_proto",
    "array_to_image",
    "load_image_file",
    "classify_request",
    "batch_request",
    "feedback_request",
    "arm_to_proto",
    "experiment_to_proto",
    "experiment_change",
    "classify_result",
    "batch_result",
    "model_info",
    "feedback_result",
]

IMAGE_SIDE = 28
IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE

#: What the clients accept as one image.
ImageLike: TypeAlias = Union[
    np.ndarray, bytes, bytearray, memoryview, str, "os.PathLike[str]", digits_pb2.Image, Sequence[Any]
]
#: An experiment arm: an Arm message, {"name", "model", "weight"}, (model, weight) or (name, model, weight).
ArmLike: TypeAlias = Union[digits_pb2.Arm, Mapping[str, Any], tuple[Any, ...]]


def parse_model(selector: str) -> tuple[str, int | None, str]:
    """Split "lstm", "lstm:3" or "lstm@canary" into (name, version, version_label)."""
    if "@" in selector:
        name, label = selector.split("@", 1)
        if not label:
            raise InvalidInputError(f"model selector {selector!r}: empty version label after '@'")
        return name, None, label
    if ":" in selector:
        name, number = selector.rsplit(":", 1)
        if not number.isdigit():
            raise InvalidInputError(
                f"model selector {selector!r}: expected NAME:VERSION with a whole version number"
            )
        return name, int(number), ""
    return selector, None, ""


def model_spec(
    model: str | None = None,
    version: int | None = None,
    version_label: str | None = None,
    experiment: str | None = None,
    routing_key: str | None = None,
) -> digits_pb2.ModelSpec:
    """Build a ModelSpec; ``model`` may carry ":VERSION" or "@LABEL". None: the server's default."""
    name, parsed_version, parsed_label = parse_model(model) if model else ("", None, "")
    if parsed_version is not None and version is not None and parsed_version != version:
        raise InvalidInputError(f"model {model!r} conflicts with version={version}")
    if parsed_label and version_label and parsed_label != version_label:
        raise InvalidInputError(f"model {model!r} conflicts with version_label={version_label!r}")
    version = parsed_version if version is None else version
    label = parsed_label or version_label or ""
    if version is not None and label:
        raise InvalidInputError("a version and a version label are exclusive: give one")
    if experiment and (name or version is not None or label):
        raise InvalidInputError("an experiment and a model are exclusive: give one")
    spec = digits_pb2.ModelSpec(
        name=name, version_label=label, experiment=experiment or "", routing_key=routing_key or ""
    )
    if version is not None:
        spec.version = int(version)
    return spec


def array_to_image(array: np.ndarray) -> digits_pb2.Image:
    """A 28x28 (or 784-value) array -> Image: uint8/int as pixels, float in [0, 1] as float_pixels."""
    if array.size != IMAGE_PIXELS:
        raise InvalidInputError(
            f"expected a {IMAGE_SIDE}x{IMAGE_SIDE} image ({IMAGE_PIXELS} values), got shape {array.shape}"
        )
    flat = np.ascontiguousarray(array).reshape(-1)
    kind = flat.dtype.kind
    if flat.dtype == np.uint8:
        return digits_pb2.Image(pixels=flat.tobytes())
    if kind in "iub":
        if kind != "b" and (flat.min() < 0 or flat.max() > 255):
            raise InvalidInputError(
                f"integer pixels must be within 0..255, got {flat.min()}..{flat.max()}"
            )
        return digits_pb2.Image(pixels=flat.astype(np.uint8).tobytes())
    if kind == "f":
        # Range and NaN checks are the server's job: it names the offending field.
        image = digits_pb2.Image()
        image.float_pixels.values.extend(flat.astype(np.float32).tolist())
        return image
    raise InvalidInputError(f"unsupported pixel dtype {flat.dtype}: use uint8 or float in [0, 1]")


def load_image_file(path: str | os.PathLike[str]) -> digits_pb2.Image:
    """A .npy file (28x28) -> pixels; any other file (PNG, JPEG, ...) is sent encoded as is."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        raise InvalidInputError(f"{path}: an .npz holds many images; use classify_batch")
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InvalidInputError(f"{path}: not a plain .npy array ({exc})") from exc
        try:
            return array_to_image(array)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc.details}") from exc
    return digits_pb2.Image(encoded=path.read_bytes())


def image_to_proto(image: ImageLike) -> digits_pb2.Image:
    """Any accepted image form -> an Image message (see :data:`ImageLike`).

    bytes of length 784 are raw pixels, other bytes an encoded file; str/Path name a file.
    """
    if isinstance(image, digits_pb2.Image):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if len(data) == IMAGE_PIXELS:
            return digits_pb2.Image(pixels=data)
        return digits_pb2.Image(encoded=data)
    if isinstance(image, (str, os.PathLike)):
        return load_image_file(image)
    try:
        array = np.asarray(image)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot use {type(image).__name__} as an image: {exc}") from exc
    if array.dtype == object:
        raise InvalidInputError(f"cannot use {type(image).__name__} as an image")
    return array_to_image(array)


def _label(value: Any, allow_unknown: bool) -> int:
    try:
        label = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"a true label must be a digit 0..9, got {value!r}") from exc
    if allow_unknown and label == -1:
        return -1
    if not 0 <= label <= 9 or label != value:
        raise InvalidInputError(f"a true label must be a digit 0..9, got {value!r}")
    return label


def classify_request(
    image: ImageLike,
    spec: digits_pb2.ModelSpec,
    true_label: int | None = None,
    request_id: str | None = None,
) -> digits_pb2.ClassifyRequest:
    """Build a ClassifyRequest (true_label only set when given)."""
    request = digits_pb2.ClassifyRequest(
        model_spec=spec, image=image_to_proto(image), request_id=request_id or ""
    )
    if true_label is not None:
        request.true_label = _label(true_label, allow_unknown=False)
    return request


def _iter_images(images: Iterable[ImageLike] | np.ndarray) -> Iterable[ImageLike]:
    if isinstance(images, np.ndarray):
        if images.ndim == 2 and images.shape[1] != IMAGE_PIXELS and images.size == IMAGE_PIXELS:
            raise InvalidInputError("got one 28x28 image where a batch was expected")
        return iter(images)
    return images


def batch_request(
    images: Iterable[ImageLike] | np.ndarray,
    spec: digits_pb2.ModelSpec,
    true_labels: Sequence[int | None] | np.ndarray | None = None,
    request_id: str | None = None,
) -> digits_pb2.ClassifyBatchRequest:
    """Build a ClassifyBatchRequest; true_labels is None or one per image (None or -1: unknown)."""
    protos = [image_to_proto(image) for image in _iter_images(images)]
    request = digits_pb2.ClassifyBatchRequest(model_spec=spec, request_id=request_id or "")
    request.images.extend(protos)
    if true_labels is not None:
        labels = [-1 if v is None else _label(v, allow_unknown=True) for v in list(true_labels)]
        if len(labels) != len(protos):
            raise InvalidInputError(
                f"true_labels must be empty or one per image: {len(labels)} labels for {len(protos)} images"
            )
        request.true_labels.extend(labels)
    return request


def feedback_request(request_id: str, true_label: int, index: int = 0) -> digits_pb2.FeedbackRequest:
    """Build a FeedbackRequest."""
    if not request_id:
        raise InvalidInputError("feedback needs the request_id of an earlier prediction")
    if index < 0:
        raise InvalidInputError(f"index must be >= 0, got {index}")
    return digits_pb2.FeedbackRequest(
        request_id=request_id, true_label=_label(true_label, allow_unknown=False), index=int(index)
    )


def arm_to_proto(arm: ArmLike) -> digits_pb2.Arm:
    """An Arm message, a mapping {"name", "model", "weight"}, (model, weight) or (name, model, weight)."""
    if isinstance(arm, digits_pb2.Arm):
        return arm
    if isinstance(arm, Mapping):
        name, model, weight = arm.get("name", ""), arm.get("model", ""), arm.get("weight", 1.0)
    elif isinstance(arm, tuple) and len(arm) == 2:
        (model, weight), name = arm, ""
    elif isinstance(arm, tuple) and len(arm) == 3:
        name, model, weight = arm
    else:
        raise InvalidInputError(f"cannot use {arm!r} as an experiment arm")
    spec = model if isinstance(model, digits_pb2.ModelSpec) else model_spec(str(model))
    if not spec.name:
        raise InvalidInputError(f"arm {arm!r} names no model")
    return digits_pb2.Arm(name=str(name or spec.name), model=spec, weight=float(weight))


def experiment_to_proto(
    experiment: digits_pb2.Experiment | str,
    arms: Iterable[ArmLike] | None = None,
    shadow_percent: float = 0.0,
    paused: bool = False,
) -> digits_pb2.Experiment:
    """An Experiment message as is, or one built from a name, arms and settings."""
    if isinstance(experiment, digits_pb2.Experiment):
        return experiment
    return experiment_change(experiment, arms, shadow_percent, paused)


def experiment_change(
    experiment: digits_pb2.Experiment | str,
    arms: Iterable[ArmLike] | None = None,
    shadow_percent: float | None = None,
    paused: bool | None = None,
) -> digits_pb2.Experiment:
    """An UpdateExperiment request: a message as is, or a name plus what changes.

    ``shadow_percent`` and ``paused`` are set only when not None, so the server keeps the
    experiment's own values for the ones left out; ``arms`` give new weights by arm name.
    """
    if isinstance(experiment, digits_pb2.Experiment):
        return experiment
    message = digits_pb2.Experiment(name=experiment)
    if shadow_percent is not None:
        if not 0.0 <= shadow_percent <= 100.0:
            raise InvalidInputError(f"shadow_percent must be within 0..100, got {shadow_percent}")
        message.shadow_percent = float(shadow_percent)
    if paused is not None:
        message.paused = bool(paused)
    message.arms.extend(arm_to_proto(a) for a in arms or ())
    return message
