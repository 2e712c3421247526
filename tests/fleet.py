"""Helpers for tests of several real replicas: a ConfigMap-like config directory, the replicas
themselves, and their /metrics summed like Prometheus would."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.serverproc import ServerProcess, start_server

CONFIG_NAME = "model-config.yaml"


class ConfigMapDir:
    """A directory laid out the way the kubelet mounts a ConfigMap: `model-config.yaml ->
    ..data/model-config.yaml`, `..data -> ..<generation>/`, and an update swaps `..data` atomically."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self._write_generation(text)
        (root / CONFIG_NAME).symlink_to(Path("..data") / CONFIG_NAME)

    @property
    def path(self) -> Path:
        """The file replicas are given (`--model-config`)."""
        return self.root / CONFIG_NAME

    def read(self) -> str:
        """The content in force."""
        return self.path.read_text()

    def swap(self, text: str) -> None:
        """Publish new content the kubelet's way: a new generation folder, then `..data` renamed over."""
        old = os.readlink(self.root / "..data")
        self._write_generation(text)
        shutil.rmtree(self.root / old)  # the kubelet removes the old generation

    def _write_generation(self, text: str) -> None:
        self.generation += 1
        folder = f"..2026_11_29_00_00_{self.generation:02d}.000000001"
        (self.root / folder).mkdir()
        (self.root / folder / CONFIG_NAME).write_text(text)
        link = self.root / "..data_tmp"
        link.symlink_to(folder)
        os.replace(link, self.root / "..data")


def start_replicas(models: Path, count: int, *flags: str) -> list[ServerProcess]:
    """`count` real servers with the same flags, started side by side."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: start_server(models, *flags), range(count)))


def scrape(server: ServerProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} from one replica's /metrics."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(server: ServerProcess, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include `labels`, on one replica."""
    wanted = set(labels.items())
    return sum(v for key, v in scrape(server).get(name, {}).items() if wanted <= set(key))


def fleet_total(servers: list[ServerProcess], name: str, **labels: str) -> float:
    """The same summed over replicas: what `sum(...)` in Prometheus gives."""
    return sum(total(server, name, **labels) for server in servers)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> float:
    """Poll until `condition()` holds; the seconds it took. AssertionError after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic() - started
