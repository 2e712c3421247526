"""The model *manager*: loads what the source wants, unloads what it no longer wants, and
resolves request selectors to a loaded version.

A new version is loaded and warmed up off the event loop and only then becomes routable;
an old one is unloaded only after a replacement is AVAILABLE, so a version that fails to
load never replaces a working one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from .domain import ModelSelector
from .errors import ModelNotFound, ModelUnavailable
from .repository import ModelSource
from .runtime import LoadedModel, VersionInfo

log = logging.getLogger(__name__)

LOADING, AVAILABLE, UNLOADING, FAILED = "LOADING", "AVAILABLE", "UNLOADING", "FAILED"

Loader = Callable[[str, int, Path], LoadedModel]


def load_savedmodel(name: str, version: int, path: Path) -> LoadedModel:
    """Default loader: the SavedModel runtime, loaded and warmed up."""
    model = LoadedModel(name, version, path)
    model.load()
    model.warm_up()
    return model


@dataclass
class VersionSlot:
    """One version's lifecycle state; `model` is set while it is AVAILABLE."""

    name: str
    version: int
    path: Path
    state: str = LOADING
    error: str = ""
    model: LoadedModel | None = None
    info: VersionInfo = field(default_factory=VersionInfo)


class ModelManager:
    """Keeps the loaded versions in line with the source and routes selectors to them."""

    def __init__(
        self,
        source: ModelSource,
        executor: Executor,
        default_model: str,
        loader: Loader = load_savedmodel,
        labels: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self.source = source
        self.default_model = default_model
        self.labels: dict[str, dict[str, int]] = dict(labels or {})
        self._executor = executor
        self._loader = loader
        self._slots: dict[str, dict[int, VersionSlot]] = {}
        self._lock = asyncio.Lock()
        self.on_change: list[Callable[[VersionSlot], None]] = []

    async def reload(self) -> None:
        """Scan the source once and load/unload versions to match it."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            desired = await loop.run_in_executor(self._executor, self.source.desired)
            for name, versions in desired.items():
                slots = self._slots.setdefault(name, {})
                for version, path in sorted(versions.items()):
                    if version not in slots:
                        await self._load(slots, name, version, path)
            for name, slots in self._slots.items():
                wanted = desired.get(name, {})
                has_wanted = any(slots[v].state == AVAILABLE for v in wanted if v in slots)
                for version, slot in list(slots.items()):
                    if version in wanted:
                        continue
                    if slot.state == AVAILABLE and has_wanted:
                        self._unload(slots, slot)
                    elif slot.state == FAILED:
                        del slots[version]

    async def _load(self, slots: dict[int, VersionSlot], name: str, version: int, path: Path) -> None:
        slot = VersionSlot(name, version, path, info=VersionInfo.read(path))
        slots[version] = slot
        self._changed(slot)
        loop = asyncio.get_running_loop()
        try:
            slot.model = await loop.run_in_executor(self._executor, self._loader, name, version, path)
        except Exception as exc:  # a broken version must never take the server down
            slot.state, slot.error = FAILED, f"{type(exc).__name__}: {exc}"[:500]
            log.error("model %s version %d failed to load: %s", name, version, slot.error)
        else:
            slot.state = AVAILABLE
            log.info("model %s version %d is available (%s)", name, version, path)
        self._changed(slot)

    def _unload(self, slots: dict[int, VersionSlot], slot: VersionSlot) -> None:
        slot.state = UNLOADING
        self._changed(slot)
        del slots[slot.version]
        if slot.model is not None:
            slot.model.unload()
        log.info("model %s version %d unloaded", slot.name, slot.version)
        slot.state = "END"
        self._changed(slot)

    def _changed(self, slot: VersionSlot) -> None:
        for callback in self.on_change:
            callback(slot)

    def resolve(self, selector: ModelSelector) -> LoadedModel:
        """The loaded version a selector names; ModelNotFound/ModelUnavailable otherwise."""
        name = selector.name or self.default_model
        slots = self._slots.get(name)
        if not slots:
            known = ", ".join(sorted(self._slots)) or "none"
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
        available = sorted((v for v, s in slots.items() if s.state == AVAILABLE), reverse=True)
        if version is None:
            if not available:
                raise ModelUnavailable(f"model '{name}' has no available version yet")
            version = available[0]
        slot = slots.get(version)
        if slot is None:
            known = ", ".join(str(v) for v in sorted(slots)) or "none"
            raise ModelNotFound(f"model_spec.version: model '{name}' has no version {version} (versions: {known})")
        if slot.state != AVAILABLE or slot.model is None:
            raise ModelUnavailable(f"model '{name}' version {version} is {slot.state}")
        return slot.model

    def slots(self) -> dict[str, list[VersionSlot]]:
        """Every model's version slots, newest first."""
        return {
            name: sorted(slots.values(), key=lambda s: s.version, reverse=True)
            for name, slots in sorted(self._slots.items())
            if slots
        }

    def labels_of(self, name: str, version: int) -> list[str]:
        """The labels that point at a version."""
        return sorted(label for label, v in self.labels.get(name, {}).items() if v == version)

    async def close(self) -> None:
        """Unload everything."""
        async with self._lock:
            for slots in self._slots.values():
                for slot in list(slots.values()):
                    if slot.model is not None:
                        slot.model.unload()
            self._slots.clear()
