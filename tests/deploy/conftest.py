"""One fleet for tests/deploy: three real replicas (GRU) sharing a private model repository, behind a
real Envoy. Tests that stop replicas bring them back with `Fleet.restore` before they need all three."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.envoyproc import Fleet, start_fleet
from tests.modelrepo import private_repo

POLL_SECONDS = 1.0
GRACE_SECONDS = 5.0
FEEDBACK_KEY = "a-feedback-key-the-three-replicas-share-0123"
FLAGS = ("--default-model", "gru", "--poll-seconds", str(POLL_SECONDS), "--grace-seconds", str(GRACE_SECONDS))


@pytest.fixture(scope="session")
def fleet(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    repo = private_repo(model_repo, tmp_path_factory.mktemp("fleet-models"), cells=("gru",))
    key = tmp_path_factory.mktemp("fleet-key") / "feedback.key"
    key.write_text(FEEDBACK_KEY)  # shared: any replica takes feedback for an id another made
    key.chmod(0o600)
    started = time.monotonic()
    fleet = start_fleet(repo, 3, *FLAGS, "--feedback-key-file", str(key))
    print(f"\n3 replicas + Envoy ready in {time.monotonic() - started:.1f} s")
    yield fleet
    fleet.stop()

