"""The transport-free data plane: route the selector, run the model, tell the observers.

The gRPC servicers are thin shells around it; so can any other protocol be. Collaborators:
the manager (which version serves), the runner (how model calls are made: direct or
batched), the router (A/B experiments) and the observers (metrics, live accuracy, feedback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from digits_server.core.domain import (
    BatchOutcome,
    CallRecord,
    ModelSelector,
    PredictionEvent,
    PredictionObserver,
    ServedBy,
    Timings,
)
from digits_server.core.errors import ModelNotFound
from digits_server.core.manager import ModelManager
from digits_server.core.model_runner import ModelRunner
from digits_server.core.request_ids import RequestIds

log = logging.getLogger(__name__)


class Router(Protocol):
    """Turns an experiment selector into a concrete model selector plus its experiment/arm names."""

    def route(self, selector: ModelSelector) -> tuple[ModelSelector, str, str]:
        """(model selector, experiment name, arm name); raises ModelNotFound for unknown experiments."""
        ...

    def shadows(self, experiment: str, arm: str) -> Sequence[tuple[ModelSelector, str]]:
        """(model selector, arm name) of each arm this request is mirrored to; usually none."""
        ...


class NoExperiments:
    """The router used when no experiments are configured."""

    def route(self, selector: ModelSelector) -> tuple[ModelSelector, str, str]:
        """Always NOT_FOUND: there are no experiments."""
        raise ModelNotFound(f"model_spec.experiment: no experiment '{selector.experiment}' (experiments: none)")

    def shadows(self, experiment: str, arm: str) -> Sequence[tuple[ModelSelector, str]]:
        """Never any: there are no experiments."""
        return ()


class DataPlane:
    """Classifies images with the version a selector resolves to."""

    def __init__(
        self,
        manager: ModelManager,
        runner: ModelRunner,
        router: Router | None = None,
        observers: Sequence[PredictionObserver] = (),
        max_shadows_in_flight: int = 64,
        request_ids: RequestIds | None = None,
    ) -> None:
        self.manager = manager
        self.request_ids = request_ids if request_ids is not None else RequestIds()  # signs server-made ids
        self.runner = runner
        self.router: Router = router if router is not None else NoExperiments()
        self.observers: list[PredictionObserver] = list(observers)
        self.max_shadows_in_flight = max_shadows_in_flight
        self.shadows_skipped = 0  # mirrors dropped because max_shadows_in_flight were running
        self._shadows: set[asyncio.Task[None]] = set()
        self._served: dict[tuple[str, int, str, str], ServedBy] = {}

    async def classify(
        self,
        selector: ModelSelector,
        images: np.ndarray,
        true_labels: list[int | None],
        request_id: str,
        call: CallRecord,
        deadline: float | None = None,
    ) -> BatchOutcome:
        """Predict uint8 images [N,28,28] with the selected model version."""
        experiment = arm = ""
        if selector.experiment:
            selector, experiment, arm = self.router.route(selector)
            call.experiment, call.arm = experiment, arm
        served_by, probabilities, timings = await self._run(selector, images, call, deadline, experiment, arm)
        digits = probabilities.argmax(axis=1)
        outcome = BatchOutcome(
            digits=digits,
            probabilities=probabilities,
            served_by=served_by,
            request_id=request_id or self.request_ids.issue(served_by, digits, true_labels),
        )
        self.notify(
            PredictionEvent(
                call.method, outcome.served_by, outcome.request_id, outcome.digits, probabilities, true_labels, timings,
                images=images, files=call.files, protocol=call.protocol,
            )
        )
        if experiment:
            self._mirror(call.method, images, true_labels, outcome)
        return outcome

    async def classify_group(
        self,
        selector: ModelSelector,
        images: np.ndarray,
        true_labels: list[int | None],
        request_ids: Sequence[str],
        call: CallRecord,
        deadline: float | None = None,
    ) -> BatchOutcome:
        """Predict a group of one-image requests (image i is request i, e.g. one stream's messages)
        in one model call, and tell the observers once (see PredictionObserver). `request_ids[i]`
        empty: a fresh id. No experiments: route those one request at a time with `classify`."""
        if selector.experiment:
            raise ValueError("classify_group: experiments route each request on its own; use classify")
        served_by, probabilities, timings = await self._run(selector, images, call, deadline)
        digits = probabilities.argmax(axis=1)
        issue = self.request_ids.issue
        ids = tuple(
            request_id or issue(served_by, digits[i : i + 1], true_labels[i : i + 1])
            for i, request_id in enumerate(request_ids)
        )
        outcome = BatchOutcome(digits, probabilities, served_by, "", ids)
        event = PredictionEvent(call.method, outcome.served_by, "", outcome.digits, probabilities, true_labels,
                                timings, request_ids=ids, images=images, files=call.files, protocol=call.protocol)
        for observer in self.observers:
            try:
                if getattr(observer, "observes_groups", False):
                    observer.observe(event)
                else:
                    for index in range(len(ids)):
                        observer.observe(event.one(index))
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)
        return outcome

    async def _run(
        self, selector: ModelSelector, images: np.ndarray, call: CallRecord, deadline: float | None,
        experiment: str = "", arm: str = "",
    ) -> tuple[ServedBy, np.ndarray, Timings]:
        """Run the model a (routed) selector names, holding its version meanwhile (not unloaded mid-call)."""
        slot = self.manager.acquire(selector)
        try:
            model = slot.model
            assert model is not None  # acquire() checked
            call.model, call.version = model.name, str(model.version)
            probabilities, timings = await self.runner.run(model, images, deadline)
        finally:
            self.manager.release(slot)
        return self._served_by(model.name, model.version, experiment, arm), probabilities, timings

    def _served_by(self, model: str, version: int, experiment: str = "", arm: str = "") -> ServedBy:
        """The (immutable, shared) ServedBy of a version and arm."""
        key = (model, version, experiment, arm)
        found = self._served.get(key)
        if found is None:
            if len(self._served) >= 4096:
                self._served.clear()
            found = self._served[key] = ServedBy(model, version, experiment, arm)
        return found

    def _mirror(self, method: str, images: np.ndarray, true_labels: list[int | None], primary: BatchOutcome) -> None:
        """Start the request's shadow predictions as background tasks: the caller never waits for them."""
        for selector, arm in self.router.shadows(primary.served_by.experiment, primary.served_by.arm):
            if len(self._shadows) >= self.max_shadows_in_flight:
                self.shadows_skipped += 1
                continue
            task = asyncio.get_running_loop().create_task(self._shadow(method, selector, arm, images, true_labels, primary))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, method: str, selector: ModelSelector, arm: str, images: np.ndarray,
        true_labels: list[int | None], primary: BatchOutcome,
    ) -> None:
        """Compute one shadow prediction and tell the observers (shadow=True); failures are only logged."""
        try:
            with self.manager.lease(selector) as model:
                probabilities, timings = await self.runner.run(model, images, None)
        except Exception as exc:
            log.warning("shadow prediction on arm %s of %s failed: %s", arm, primary.served_by.experiment, exc)
            return
        served_by = ServedBy(model.name, model.version, primary.served_by.experiment, arm)
        digits = probabilities.argmax(axis=1)
        self.notify(
            PredictionEvent(method, served_by, primary.request_id, digits, probabilities, true_labels, timings,
                            shadow=True, mirrors=primary, images=images)
        )

    async def close(self) -> None:
        """Cancel the shadow predictions still running (at shutdown)."""
        for task in list(self._shadows):
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)

    def notify(self, event: PredictionEvent) -> None:
        """Hand an event to every observer; an observer's failure is logged, never raised."""
        for observer in self.observers:
            try:
                observer.observe(event)
            except Exception:
                log.exception("observer %s failed", type(observer).__name__)
