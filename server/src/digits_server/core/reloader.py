"""Hot reload: re-read the model config and rescan the model folder, on a timer and on demand.

`reload_now` is what the admin RPC `ReloadModels` calls; the poll task calls it every
`poll_seconds`. A config file that became invalid is reported (log line, FAILED_PRECONDITION
for the RPC) and the previous config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError, ServingConfig, load_config

log = logging.getLogger(__name__)


class Reloader:
    """Keeps the manager in line with the model folder and the config file."""

    def __init__(self, manager: ModelManager, config_path: Path | None, poll_seconds: float) -> None:
        self.manager = manager
        self.config_path = config_path
        self.poll_seconds = poll_seconds
        self.config = ServingConfig()
        self._task: asyncio.Task | None = None

    def read_config(self) -> ServingConfig:
        """Read the config file (raises ConfigError) and hand its policies and labels to the manager."""
        config = load_config(self.config_path)
        self.manager.configure(config.policies(), config.labels())
        self.config = config
        return config

    async def reload_now(self) -> None:
        """Re-read the config, then load/unload versions to match the folder; waits until done."""
        if self.config_path is not None:
            await asyncio.to_thread(self.read_config)
        await self.manager.reload()

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
