"""The synchronous client: :class:`DigitsClient`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np

from digits import calls, convert
from digits.channel import auth_metadata, balanced_target, channel_credentials, channel_options, default_target
from digits.convert import ArmLike, ImageLike
from digits.errors import UnavailableError, from_rpc_error
from digits.monitoring.report import VersionReport
from digits.results import BatchResult, ClassifyResult, FeedbackResult, ModelInfo
from digits.v1 import digits_pb2, digits_pb2_grpc

__all__ = ["DigitsClient"]

_Result = TypeVar("_Result")
PathLike = str | os.PathLike[str]


class DigitsClient:
    """Blocking client for the digits server; use it as a context manager.

    ``timeout`` is the default deadline in seconds of every unary call (None: no deadline);
    ``token`` is sent as ``authorization: Bearer <token>``; ``tls_*`` are PEM file paths
    (a CA alone: TLS; with cert and key: mutual TLS). ``target`` may name several servers
    (``dns:///name:port``, ``ipv4:A:P1,A:P2``, ``host:p1,host:p2``): calls are then spread over
    them with round_robin, or ``lb_policy="pick_first"``. Server errors raise
    :class:`digits.errors.DigitsError` subclasses.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = 10.0,
        token: str | None = None,
        tls_ca: PathLike | None = None,
        tls_cert: PathLike | None = None,
        tls_key: PathLike | None = None,
        wait_for_ready: bool = False,
        options: Sequence[tuple[str, Any]] = (),
        lb_policy: str | None = None,
    ) -> None:
        self.target = target or default_target()
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self._metadata = auth_metadata(token)
        grpc_target, balancing = balanced_target(self.target, lb_policy)
        opts = channel_options() + balancing + list(options)
        credentials = channel_credentials(tls_ca, tls_cert, tls_key)
        if credentials is None:
            self._channel = grpc.insecure_channel(grpc_target, options=opts)
        else:
            self._channel = grpc.secure_channel(grpc_target, credentials, options=opts)
        self._stub = digits_pb2_grpc.DigitClassifierStub(self._channel)
        self._admin = digits_pb2_grpc.DigitsAdminStub(self._channel)

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> DigitsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def wait_for_server(self, timeout: float = 10.0) -> None:
        """Block until the channel connects; raise UnavailableError after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UnavailableError(f"no connection to {self.target} within {timeout:g} s") from None

    def __repr__(self) -> str:
        return f"DigitsClient({self.target!r})"

    @property
    def stub(self) -> digits_pb2_grpc.DigitClassifierStub:
        """The raw DigitClassifier stub, for calls the typed methods do not cover."""
        return self._stub

    @property
    def admin_stub(self) -> digits_pb2_grpc.DigitsAdminStub:
        """The raw DigitsAdmin stub."""
        return self._admin

    # -- plumbing --------------------------------------------------------------------
    def _run(self, call: calls.Call[_Result], timeout: float | None) -> _Result:
        """Send one unary call (see :mod:`digits.calls`) and convert its answer."""
        method = getattr(self._stub if call.service == "classifier" else self._admin, call.method)
        try:
            response = method(
                call.request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata + call.metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return call.convert(response)

    # -- inference -------------------------------------------------------------------
    def classify(
        self,
        image: ImageLike,
        model: str | None = None,
        *,
        version: int | None = None,
        version_label: str | None = None,
        true_label: int | None = None,
        request_id: str | None = None,
        experiment: str | None = None,
        routing_key: str | None = None,
        timeout: float | None = None,
    ) -> ClassifyResult:
        """Classify one image (see :func:`digits.convert.image_to_proto` for accepted forms).

        ``model``: "lstm", "lstm:3" or "lstm@canary"; None: the server's default model.
        """
        call = calls.classify(image, model, version, version_label, true_label, request_id, experiment, routing_key)
        return self._run(call, timeout)

    def classify_batch(
        self,
        images: Iterable[ImageLike] | np.ndarray,
        model: str | None = None,
        *,
        version: int | None = None,
        version_label: str | None = None,
        true_labels: Sequence[int | None] | np.ndarray | None = None,
        request_id: str | None = None,
        experiment: str | None = None,
        routing_key: str | None = None,
        timeout: float | None = None,
    ) -> BatchResult:
        """Classify many images with one model in one call; predictions keep the input order."""
        call = calls.classify_batch(images, model, version, version_label, true_labels, request_id, experiment,
                                    routing_key)
        return self._run(call, timeout)

    def classify_stream(
        self,
        images: Iterable[ImageLike],
        model: str | None = None,
        *,
        version: int | None = None,
        version_label: str | None = None,
        true_labels: Iterable[int | None] | None = None,
        experiment: str | None = None,
        routing_key: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[ClassifyResult]:
        """Classify images over one ClassifyStream call, yielding results in input order.

        ``images`` is consumed lazily, so it may be endless. The stream has no deadline
        unless ``timeout`` is given (the client default would cut long streams short).
        An image that cannot be converted ends the stream: results for the images before
        it are yielded, then the InvalidInputError is raised. Closing the generator early
        cancels the call.
        """
        spec = convert.model_spec(model, version, version_label, experiment, routing_key)
        failure: list[BaseException] = []
        requests = _stream_requests(images, spec, true_labels, failure)
        try:
            call = self._stub.ClassifyStream(
                requests, timeout=timeout, metadata=self._metadata, wait_for_ready=self.wait_for_ready
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        try:
            for response in call:
                yield convert.classify_result(response)
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from exc
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()
        if failure:
            raise failure[0]

    # -- models ----------------------------------------------------------------------
    def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every model the server knows, with versions (newest first), states and labels."""
        return self._run(calls.list_models(), timeout)

    def model_status(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        """One model's versions, states and labels."""
        return self._run(calls.model_status(name), timeout)

    def monitoring(self, name: str | None = None, *, timeout: float | None = None) -> list[VersionReport]:
        """Label-free monitoring per version (estimated accuracy, labelled accuracy, drift) on this server."""
        return self._run(calls.monitoring(name), timeout)

    def feedback(
        self, request_id: str, true_label: int, index: int = 0, *, timeout: float | None = None
    ) -> FeedbackResult:
        """Report the true digit of an earlier prediction (``index``: image within a batch)."""
        return self._run(calls.feedback(request_id, true_label, index), timeout)

    def reload_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Admin: rescan the model folder now; returns the models afterwards."""
        return self._run(calls.reload_models(), timeout)

    # -- experiments -----------------------------------------------------------------
    def list_experiments(self, *, timeout: float | None = None) -> list[digits_pb2.Experiment]:
        """Every experiment the server runs."""
        return self._run(calls.list_experiments(), timeout)

    def create_experiment(
        self,
        experiment: digits_pb2.Experiment | str,
        arms: Iterable[ArmLike] | None = None,
        *,
        shadow_percent: float = 0.0,
        paused: bool = False,
        timeout: float | None = None,
    ) -> digits_pb2.Experiment:
        """Admin: create an experiment from a message or a name plus arms (see ``ArmLike``)."""
        return self._run(calls.create_experiment(experiment, arms, shadow_percent, paused), timeout)

    def update_experiment(
        self,
        experiment: digits_pb2.Experiment | str,
        arms: Iterable[ArmLike] | None = None,
        *,
        shadow_percent: float | None = None,
        paused: bool | None = None,
        timeout: float | None = None,
    ) -> digits_pb2.Experiment:
        """Admin: change an experiment: the weights of the arms given, ``shadow_percent`` and
        ``paused`` unless None; what is not given keeps its value on the server."""
        return self._run(calls.update_experiment(experiment, arms, shadow_percent, paused), timeout)

    def delete_experiment(self, name: str, *, timeout: float | None = None) -> None:
        """Admin: delete an experiment."""
        return self._run(calls.delete_experiment(name), timeout)

    def experiment_report(
        self, name: str, *, verdict_basis: str = "", timeout: float | None = None
    ) -> digits_pb2.ExperimentReport:
        """The statistical comparison report of an experiment's arms; verdicts rest on the
        always-valid tests unless ``verdict_basis="fixed-horizon"``."""
        return self._run(calls.experiment_report(name, verdict_basis), timeout)

    def set_version_label(self, model: str, label: str, version: int, *, timeout: float | None = None) -> ModelInfo:
        """Admin: point a version label (e.g. ``stable``) of a model at a version."""
        return self._run(calls.set_version_label(model, label, version), timeout)

    def record_rollout_decision(
        self, decision: digits_pb2.RolloutDecision, *, timeout: float | None = None
    ) -> digits_pb2.RolloutDecision:
        """Admin: record a rollout step or decision (logged, counted, listed in the report)."""
        return self._run(calls.record_rollout_decision(decision), timeout)


def _stream_requests(
    images: Iterable[ImageLike],
    spec: digits_pb2.ModelSpec,
    true_labels: Iterable[int | None] | None,
    failure: list[BaseException],
) -> Iterator[digits_pb2.ClassifyRequest]:
    """Requests for ClassifyStream; a conversion error is stored in ``failure`` and ends the stream."""
    labels = iter(true_labels) if true_labels is not None else None
    try:
        for image in images:
            label = next(labels, None) if labels is not None else None
            yield convert.classify_request(image, spec, label)
    except Exception as exc:  # handed to the consumer, which raises it in the caller's thread
        failure.append(exc)

