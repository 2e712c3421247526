"""Hot reload: re-read the model config and rescan the model folder, on a timer and on demand.

`reload_now` is what the admin RPC `ReloadModels` calls; the poll task calls it every
`poll_seconds`. The config file is re-read every time (never cached by its mtime, so a
Kubernetes ConfigMap's `..data` symlink swap is seen at once) and handed to the listeners (the
experiment engine) before the manager. A config file that became invalid is reported (log line,
FAILED_PRECONDITION for the RPC) and the previous config stays in force, experiments included.
`change_config` is the one way the server itself changes the file (admin RPCs): read, change,
write atomically, apply — serialised with reloads so that a reload never applies a stale read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidConfig, InvalidInput
from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError, ServingConfig, load_config, update_config, with_label

log = logging.getLogger(__name__)


class Reloader:
    """Keeps the manager (and the config listeners) in line with the model folder and the config file."""

    def __init__(self, manager: ModelManager, config_path: Path | None, poll_seconds: float) -> None:
        self.manager = manager
        self.config_path = config_path
        self.poll_seconds = poll_seconds
        self.config = ServingConfig()
        # Called with each config about to be applied; may raise ConfigError before changing anything.
        self.listeners: list[Callable[[ServingConfig], None]] = []
        self._task: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None

    def read_config(self) -> ServingConfig:
        """Read the config file (raises ConfigError) and apply it."""
        config = load_config(self.config_path)
        self.apply(config)
        return config

    def apply(self, config: ServingConfig) -> None:
        """Hand a config to the listeners, then its policies and labels to the manager."""
        for listener in self.listeners:
            listener(config)
        self.manager.configure(config.policies(), config.labels())
        self.config = config

    async def reload_now(self) -> None:
        """Re-read the config, then load/unload versions to match the folder; waits until done."""
        if self.config_path is not None:
            async with self._serialised():
                self.apply(await asyncio.to_thread(load_config, self.config_path))
        await self.manager.reload()

    async def set_version_label(self, model: str, label: str, version: int) -> None:
        """Point a label of a model at a version: written to the config file (`change_config`:
        atomically, re-read under the file lock so a replica's concurrent change to other keys is
        kept), applied here at once; other replicas follow at their next poll.
        FAILED_PRECONDITION without a --model-config file."""
        if not model or not label or version <= 0:
            raise InvalidInput("model, label and a positive version are required")
        self.manager.resolve(ModelSelector(model, version))  # NOT_FOUND for a version the server lacks
        if self.config_path is None:
            raise InvalidConfig("the server has no --model-config file to keep labels in")
        await self.change_config(lambda config: with_label(config, model, label, version))
        log.info("label %s of model %s -> version %d (written to %s)", label, model, version, self.config_path)
        await self.manager.reload()

    async def change_config(self, change: Callable[[ServingConfig], ServingConfig]) -> ServingConfig:
        """Change the config file atomically (`update_config`) and apply the result here at once.

        ConfigError (FAILED_PRECONDITION) naming the file when there is none or it cannot be written."""
        if self.config_path is None:
            raise ConfigError("model_config: this server has no --model-config file to write")
        path = self.config_path
        async with self._serialised():
            config = await asyncio.to_thread(update_config, path, change)
            self.apply(config)
        return config

    def _serialised(self) -> asyncio.Lock:
        if self._lock is None:  # made on the event loop that uses it
            self._lock = asyncio.Lock()
        return self._lock

    def start(self) -> None:
        """Start polling (no-op when poll_seconds <= 0)."""
        if self.poll_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="model-poll")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.reload_now()
            except ConfigError as exc:
                log.error("model config not reloaded, keeping the previous one: %s", exc)
            except Exception:
                log.exception("model reload failed")
