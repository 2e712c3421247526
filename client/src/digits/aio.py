"""The asyncio client: :class:`AsyncDigitsClient`, built on ``grpc.aio``.

It mirrors :class:`digits.client.DigitsClient` method by method, as coroutines;
``classify_stream`` is an async iterator.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio
import numpy as np

from digits import calls, convert
from digits.channel import auth_metadata, balanced_target, channel_credentials, channel_options, default_target
from digits.convert import ArmLike, ImageLike
from digits.errors import UnavailableError, from_rpc_error
from digits.monitoring.report import VersionReport
from digits.results import BatchResult, ClassifyResult, FeedbackResult, ModelInfo
from digits.v1 import digits_pb2, digits_pb2_grpc

__all__ = ["AsyncDigitsClient"]

_Result = TypeVar("_Result")
PathLike = str | os.PathLike[str]


class AsyncDigitsClient:
    """Asyncio client for the digits server; use it as ``async with AsyncDigitsClient() as c``.

    Same arguments and errors as :class:`digits.DigitsClient`. The channel is opened lazily,
    on first use inside the running event loop, and closed by :meth:`close`.
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
        self._grpc_target, balancing = balanced_target(self.target, lb_policy)
        self._options = channel_options() + balancing + list(options)
        self._credentials = channel_credentials(tls_ca, tls_cert, tls_key)
        self._channel: grpc.aio.Channel | None = None
        self._stub: digits_pb2_grpc.DigitClassifierStub | None = None
        self._admin: digits_pb2_grpc.DigitsAdminStub | None = None

    # -- lifecycle -------------------------------------------------------------------
    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._grpc_target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self._grpc_target, self._credentials, options=self._options
                )
            self._stub = digits_pb2_grpc.DigitClassifierStub(self._channel)
            self._admin = digits_pb2_grpc.DigitsAdminStub(self._channel)
        return self._channel

    @property
    def stub(self) -> digits_pb2_grpc.DigitClassifierStub:
        """The raw DigitClassifier stub (opens the channel)."""
        self._open()
        assert self._stub is not None
        return self._stub

    @property
    def admin_stub(self) -> digits_pb2_grpc.DigitsAdminStub:
        """The raw DigitsAdmin stub (opens the channel)."""
        self._open()
        assert self._admin is not None
        return self._admin

    async def __aenter__(self) -> AsyncDigitsClient:
        self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def wait_for_server(self, timeout: float = 10.0) -> None:
        """Wait until the channel connects; raise UnavailableError after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._open().channel_ready(), timeout)
        except asyncio.TimeoutError:
            raise UnavailableError(f"no connection to {self.target} within {timeout:g} s") from None

    def __repr__(self) -> str:
        return f"AsyncDigitsClient({self.target!r})"

    # -- plumbing --------------------------------------------------------------------
    async def _run(self, call: calls.Call[_Result], timeout: float | None) -> _Result:
        """Send one unary call (see :mod:`digits.calls`) and convert its answer."""
        method = getattr(self.stub if call.service == "classifier" else self.admin_stub, call.method)
        try:
            response = await method(
                call.request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata + call.metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return call.convert(response)

    # -- inference -------------------------------------------------------------------
    async def classify(
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
        """Classify one image; see :meth:`digits.DigitsClient.classify`."""
        call = calls.classify(image, model, version, version_label, true_label, request_id, experiment, routing_key)
        return await self._run(call, timeout)

    async def classify_batch(
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
        """Classify many images in one call; see :meth:`digits.DigitsClient.classify_batch`."""
        call = calls.classify_batch(images, model, version, version_label, true_labels, request_id, experiment,
                                    routing_key)
        return await self._run(call, timeout)

    async def classify_stream(
        self,
        images: Iterable[ImageLike] | AsyncIterable[ImageLike],
        model: str | None = None,
        *,
        version: int | None = None,
        version_label: str | None = None,
        true_labels: Iterable[int | None] | None = None,
        experiment: str | None = None,
        routing_key: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[ClassifyResult]:
        """Async iterator of results in input order over one ClassifyStream call.

        Same rules as :meth:`digits.DigitsClient.classify_stream`; ``images`` may also be
        an async iterable. No deadline unless ``timeout`` is given.
        """
        spec = convert.model_spec(model, version, version_label, experiment, routing_key)
        failure: list[BaseException] = []
        requests = _stream_requests(images, spec, true_labels, failure)
        call = self.stub.ClassifyStream(
            requests, timeout=timeout, metadata=self._metadata, wait_for_ready=self.wait_for_ready
        )
        try:
            async for response in call:
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
    async def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every model the server knows, with versions (newest first), states and labels."""
        return await self._run(calls.list_models(), timeout)

    async def model_status(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        """One model's versions, states and labels."""
        return await self._run(calls.model_status(name), timeout)

    async def monitoring(self, name: str | None = None, *, timeout: float | None = None) -> list[VersionReport]:
        """Label-free monitoring per version (estimated accuracy, labelled accuracy, drift) on this server."""
        return await self._run(calls.monitoring(name), timeout)

    async def feedback(
        self, request_id: str, true_label: int, index: int = 0, *, timeout: float | None = None
    ) -> FeedbackResult:
        """Report the true digit of an earlier prediction (``index``: image within a batch)."""
        return await self._run(calls.feedback(request_id, true_label, index), timeout)

    async def reload_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Admin: rescan the model folder now; returns the models afterwards."""
        return await self._run(calls.reload_models(), timeout)

    # -- experiments -----------------------------------------------------------------
    async def list_experiments(self, *, timeout: float | None = None) -> list[digits_pb2.Experiment]:
        """Every experiment the server runs."""
        return await self._run(calls.list_experiments(), timeout)

    async def create_experiment(
        self,
        experiment: digits_pb2.Experiment | str,
        arms: Iterable[ArmLike] | None = None,
        *,
        shadow_percent: float = 0.0,
        paused: bool = False,
        timeout: float | None = None,
    ) -> digits_pb2.Experiment:
        """Admin: create an experiment from a message or a name plus arms."""
        return await self._run(calls.create_experiment(experiment, arms, shadow_percent, paused), timeout)

    async def update_experiment(
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
        return await self._run(calls.update_experiment(experiment, arms, shadow_percent, paused), timeout)

    async def delete_experiment(self, name: str, *, timeout: float | None = None) -> None:
        """Admin: delete an experiment."""
        return await self._run(calls.delete_experiment(name), timeout)

    async def experiment_report(
        self, name: str, *, verdict_basis: str = "", timeout: float | None = None
    ) -> digits_pb2.ExperimentReport:
        """The statistical comparison report of an experiment's arms; verdicts rest on the
        always-valid tests unless ``verdict_basis="fixed-horizon"``."""
        return await self._run(calls.experiment_report(name, verdict_basis), timeout)

    async def set_version_label(
        self, model: str, label: str, version: int, *, timeout: float | None = None
    ) -> ModelInfo:
        """Admin: point a version label (e.g. ``stable``) of a model at a version."""
        return await self._run(calls.set_version_label(model, label, version), timeout)

    async def record_rollout_decision(
        self, decision: digits_pb2.RolloutDecision, *, timeout: float | None = None
    ) -> digits_pb2.RolloutDecision:
        """Admin: record a rollout step or decision (logged, counted, listed in the report)."""
        return await self._run(calls.record_rollout_decision(decision), timeout)


async def _stream_requests(
    images: Iterable[ImageLike] | AsyncIterable[ImageLike],
    spec: digits_pb2.ModelSpec,
    true_labels: Iterable[int | None] | None,
    failure: list[BaseException],
) -> AsyncIterator[digits_pb2.ClassifyRequest]:
    """Requests for ClassifyStream; a conversion error is stored in ``failure`` and ends the stream."""
    labels = iter(true_labels) if true_labels is not None else None
    try:
        if isinstance(images, AsyncIterable):
            async for image in images:
                label = next(labels, None) if labels is not None else None
                yield convert.classify_request(image, spec, label)
        else:
            for image in images:
                label = next(labels, None) if labels is not None else None
                yield convert.classify_request(image, spec, label)
    except Exception as exc:  # handed to the consumer, which raises it to the caller
        failure.append(exc)
