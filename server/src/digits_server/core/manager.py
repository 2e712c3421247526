"""The model *manager*: loads what the source wants, unloads what it no longer wants, and
resolves request selectors to a loaded version.

Lifecycle of a version: LOADING (loaded and warmed up in a low-priority background thread,
never on the event loop or the compute threads) -> AVAILABLE (routable) -> UNLOADING (no new
requests; waits for its in-flight requests) -> END (gone). A load that raises or outlives
`load_timeout` leaves the version FAILED with its error. Availability is preserved: an old
version is unloaded only once a wanted version of the same model is AVAILABLE, so a version
that fails never replaces a working one. A FAILED version is retried when its files change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digits_server.core.domain import ModelSelector, ModelStatusView, VersionStatusView
from digits_server.core.errors import ModelNotFound, ModelUnavailable
from digits_server.core.litert_model import model_for
from digits_server.core.loaded_model import LoadedModel, VersionInfo
from digits_server.core.repository import ModelSource, VersionPolicy, fingerprint, scan
from digits_server.core.tensorflow_startup import import_tensorflow_quietly

log = logging.getLogger(__name__)

LOADING, AVAILABLE, UNLOADING, FAILED, END = "LOADING", "AVAILABLE", "UNLOADING", "FAILED", "END"
LOADER_NICENESS = 10  # the loader thread yields the CPU to serving threads (TF Serving #1866)

Loader = Callable[[str, int, Path], LoadedModel]


def savedmodel_loader(warm_up_sizes: tuple[int, ...] = (1, 8, 64), **runtime: Any) -> Loader:
    """A loader that loads a version with the model `litert_model.model_for` picks (with `runtime`
    options: runtime, xla_buckets) and warms it up at `warm_up_sizes`."""

    def load(name: str, version: int, path: Path) -> LoadedModel:
        model = model_for(name, version, path, **runtime)
        model.load()
        model.warm_up(warm_up_sizes)
        return model

    return load


load_savedmodel: Loader = savedmodel_loader()


def prepare_runtime() -> None:
    """Start TensorFlow from a normal-priority thread: its compute threads inherit the niceness of
    the thread that creates them, and they must not inherit the loader thread's low priority."""
    import_tensorflow_quietly()
    import tensorflow as tf

    tf.constant(0) + 1  # the first eager op creates the CPU device and its thread pools


@dataclass
class VersionSlot:
    """One version's lifecycle state; `model` is set while it is AVAILABLE or UNLOADING."""

    name: str
    version: int
    path: Path
    state: str = LOADING
    error: str = ""
    model: LoadedModel | None = None
    info: VersionInfo = field(default_factory=VersionInfo)
    fingerprint: tuple[int, int, int] = (0, 0, 0)
    in_flight: int = 0
    idle: asyncio.Event | None = field(default=None, repr=False)


def _run_in_background_thread(fn: Callable[[], LoadedModel], name: str) -> concurrent.futures.Future:
    """Run `fn` in a fresh daemon thread with a lower CPU priority; a hung call blocks nothing else."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: niceness is per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICENESS)
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # reported as the version's error
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


class ModelManager:
    """Keeps the loaded versions in line with the source and routes selectors to them."""

    def __init__(
        self,
        source: ModelSource,
        default_model: str,
        loader: Loader = load_savedmodel,
        load_timeout: float = 120.0,
        unload_grace: float = 30.0,
    ) -> None:
        self.source = source
        self.default_model = default_model
        self.load_timeout = load_timeout
        self.unload_grace = unload_grace
        self._loader = loader
        self._slots: dict[str, dict[int, VersionSlot]] = {}
        self._lock = asyncio.Lock()
        self._unloads: set[asyncio.Task] = set()
        self.on_change: list[Callable[[VersionSlot], None]] = []

    @property
    def labels(self) -> dict[str, dict[str, int]]:
        """{model: {label: version}} from the config."""
        return self.source.labels

    def configure(self, policies: dict[str, VersionPolicy], labels: dict[str, dict[str, int]]) -> None:
        """New version policies and labels; they take effect at the next `reload`."""
        self.source.policies = dict(policies)
        self.source.labels = {name: dict(mapping) for name, mapping in labels.items()}

    async def reload(self) -> None:
        """Scan the source once, load the wanted versions (newest first), retire the unwanted ones."""
        async with self._lock:
            on_disk = await asyncio.to_thread(scan, self.source.root)
            desired = self.source.select(on_disk)
            for name, versions in desired.items():
                slots = self._slots.setdefault(name, {})
                for version, path in sorted(versions.items(), reverse=True):
                    if self._needs_load(slots.get(version), path):
                        await self._load(slots, name, version, path)
                if not any(slot.state == AVAILABLE for slot in slots.values()):
                    await self._load_fallback(slots, name, on_disk[name], desired)
            for name, slots in self._slots.items():
                wanted = desired.get(name, {})
                has_wanted = any(slots[v].state == AVAILABLE for v in wanted if v in slots)
                for version, slot in list(slots.items()):
                    if version in wanted:
                        continue
                    if slot.state == FAILED and has_wanted:
                        del slots[version]
                        slot.state = END
                        self._changed(slot)
                    elif slot.state == AVAILABLE and has_wanted:
                        self._start_unload(slots, slot)

    @staticmethod
    def _needs_load(slot: VersionSlot | None, path: Path) -> bool:
        return slot is None or (slot.state == FAILED and fingerprint(path) != slot.fingerprint)

    async def _load_fallback(
        self, slots: dict[int, VersionSlot], name: str, on_disk: dict[int, Path], desired: dict[str, dict[int, Path]]
    ) -> None:
        """Every wanted version failed and nothing serves: serve the newest other version that loads."""
        for version, path in sorted(on_disk.items(), reverse=True):
            if version in desired[name] or not self._needs_load(slots.get(version), path):
                continue
            await self._load(slots, name, version, path)
            if slots[version].state == AVAILABLE:
                log.warning("model %s: no wanted version loads; serving version %d instead", name, version)
                desired[name][version] = path  # kept until a wanted version is AVAILABLE
                return

    async def _load(self, slots: dict[int, VersionSlot], name: str, version: int, path: Path) -> None:
        slot = VersionSlot(name, version, path, info=VersionInfo.read(path), fingerprint=fingerprint(path))
        slots[version] = slot
        self._changed(slot)
        job = _run_in_background_thread(lambda: self._loader(name, version, path), f"load-{name}-{version}")
        loading = asyncio.wrap_future(job)
        try:
            slot.model = await asyncio.wait_for(asyncio.shield(loading), self.load_timeout)
        except TimeoutError:
            slot.state, slot.error = FAILED, f"load timed out after {self.load_timeout:g}s"
            job.add_done_callback(_unload_late_result)
            loading.add_done_callback(_forget_late_error)
            log.error("model %s version %d failed to load: %s", name, version, slot.error)
        except Exception as exc:  # a broken version must never take the server down
            slot.state, slot.error = FAILED, f"{type(exc).__name__}: {exc}"[:500]
            log.error("model %s version %d failed to load: %s", name, version, slot.error)
        else:
            slot.state = AVAILABLE
            log.info("model %s version %d is available (%s)", name, version, path)
        self._changed(slot)

    def _start_unload(self, slots: dict[int, VersionSlot], slot: VersionSlot) -> None:
        slot.state = UNLOADING
        slot.idle = asyncio.Event()
        if slot.in_flight == 0:
            slot.idle.set()
        self._changed(slot)
        task = asyncio.create_task(self._finish_unload(slots, slot))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _finish_unload(self, slots: dict[int, VersionSlot], slot: VersionSlot) -> None:
        assert slot.idle is not None
        try:
            await asyncio.wait_for(slot.idle.wait(), self.unload_grace)
        except TimeoutError:
            log.warning("model %s version %d: %d requests still in flight after %gs; unloading anyway",
                        slot.name, slot.version, slot.in_flight, self.unload_grace)
        if slots.get(slot.version) is slot:
            del slots[slot.version]
        if slot.model is not None:
            slot.model.unload()
        slot.state = END
        log.info("model %s version %d unloaded", slot.name, slot.version)
        self._changed(slot)

    def _changed(self, slot: VersionSlot) -> None:
        for callback in self.on_change:
            try:
                callback(slot)
            except Exception:
                log.exception("on_change callback failed")

    def _resolve_slot(self, selector: ModelSelector) -> VersionSlot:
        name = selector.name or self.default_model
        slots = self._slots.get(name)
        if not slots:
            known = ", ".join(sorted(n for n, s in self._slots.items() if s)) or "none"
            raise ModelNotFound(f"model_spec.name: no model '{name}' (models: {known})")
        version = selector.version
        if selector.version_label:
            labels = self.labels.get(name, {})
            if selector.version_label not in labels:
                known = ", ".join(sorted(labels)) or "none"
                raise ModelNotFound(
                    f"model_spec.version_label: model '{name}' has no label '{selector.version_label}' (labels: {known})"
                )
            version = labels[selector.version_label]
        if version is None:
            available = [v for v, s in slots.items() if s.state == AVAILABLE]
            if not available:
                raise ModelUnavailable(f"model '{name}' has no available version yet")
            version = max(available)
        slot = slots.get(version)
        if slot is None:
            known = ", ".join(str(v) for v in sorted(slots)) or "none"
            raise ModelNotFound(f"model_spec.version: model '{name}' has no version {version} (versions: {known})")
        if slot.state != AVAILABLE or slot.model is None:
            raise ModelUnavailable(f"model '{name}' version {version} is {slot.state}")
        return slot

    def resolve(self, selector: ModelSelector) -> LoadedModel:
        """The loaded version a selector names; ModelNotFound/ModelUnavailable otherwise. Prefer `lease`."""
        model = self._resolve_slot(selector).model
        assert model is not None
        return model

    @contextlib.contextmanager
    def lease(self, selector: ModelSelector) -> Iterator[LoadedModel]:
        """Resolve a selector and hold the version while the block runs: it is not unloaded meanwhile."""
        slot = self.acquire(selector)
        try:
            yield slot.model  # type: ignore[misc]
        finally:
            self.release(slot)

    def acquire(self, selector: ModelSelector) -> VersionSlot:
        """`lease` without a context manager (the request path): hold the version until `release(slot)`."""
        slot = self._resolve_slot(selector)
        assert slot.model is not None
        slot.in_flight += 1
        return slot

    def release(self, slot: VersionSlot) -> None:
        """Let go of a version held by `acquire`."""
        slot.in_flight -= 1
        if slot.in_flight == 0 and slot.idle is not None:
            slot.idle.set()

    def slots(self) -> dict[str, list[VersionSlot]]:
        """Every model's version slots, newest first."""
        return {
            name: sorted(slots.values(), key=lambda s: s.version, reverse=True)
            for name, slots in sorted(self._slots.items())
            if slots
        }

    def statuses(self) -> list[ModelStatusView]:
        """Every model's versions with their state, labels and metadata, as plain data."""
        default = self.default_model
        return [
            ModelStatusView(name, [self._version_view(name, slot) for slot in slots], name == default)
            for name, slots in self.slots().items()
        ]

    def _version_view(self, name: str, slot: VersionSlot) -> VersionStatusView:
        runtime = slot.model.runtime if slot.model is not None else ""
        return VersionStatusView(slot.version, slot.state, slot.error, self.labels_of(name, slot.version), slot.info, runtime)

    def is_available(self, name: str) -> bool:
        """True when some version of the model can serve."""
        return any(slot.state == AVAILABLE for slot in self._slots.get(name, {}).values())

    def labels_of(self, name: str, version: int) -> list[str]:
        """The labels that point at a version."""
        return sorted(label for label, v in self.labels.get(name, {}).items() if v == version)

    async def close(self) -> None:
        """Unload everything."""
        for task in list(self._unloads):
            task.cancel()
        async with self._lock:
            for slots in self._slots.values():
                for slot in list(slots.values()):
                    if slot.model is not None:
                        slot.model.unload()
                    slot.state = END
                    self._changed(slot)
            self._slots.clear()


def _forget_late_error(loading: asyncio.Future) -> None:
    """A load that failed after its timeout was already reported FAILED: its error is not news."""
    if not loading.cancelled() and loading.exception() is not None:
        log.info("a load abandoned after its timeout ended with: %s", loading.exception())


def _unload_late_result(job: concurrent.futures.Future) -> None:
    """A load that finished after its timeout: drop the model it produced."""
    if not job.cancelled() and job.exception() is None:
        job.result().unload()
