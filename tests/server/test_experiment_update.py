"""UpdateExperiment changes only what it is given (field presence), against a real server process:
the client libraries (sync and asyncio) and `digits ab update` leave shadow_percent and paused alone
unless told, and an explicit 0 / false still changes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from digits import AsyncDigitsClient, DigitsClient
from digits.cli import main as digits_cli
from digits.v1 import digits_pb2 as pb
from tests.serverproc import start_server

CONFIG = """
experiments:
  - name: cells
    shadow_percent: 20
    paused: true
    arms:
      - {model: gru, weight: 50}
      - {model: lstm, weight: 50}
"""


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("update-config") / "models.yaml"
    config.write_text(CONFIG)
    proc = start_server(model_repo, "--model-config", str(config), "--poll-seconds", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


def state(client: DigitsClient) -> tuple[float, bool, dict[str, float]]:
    """(shadow_percent, paused, {arm: weight}) of "cells" as the server lists it."""
    (cells,) = [e for e in client.list_experiments() if e.name == "cells"]
    return cells.shadow_percent, cells.paused, {a.name: a.weight for a in cells.arms}


def test_updating_only_weights_keeps_shadow_and_paused(server) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        assert state(client) == (20, True, {"gru": 50, "lstm": 50})
        returned = client.update_experiment("cells", [("gru", 30)])
        assert (returned.shadow_percent, returned.paused) == (20, True)
        assert state(client) == (20, True, {"gru": 30, "lstm": 50})
        # given explicitly, the zero values change them: presence, not truthiness
        client.update_experiment("cells", shadow_percent=0, paused=False)
        assert state(client) == (0, False, {"gru": 30, "lstm": 50})
        client.update_experiment("cells", shadow_percent=20, paused=True)
        # a message passed as is: only the fields set in it change
        client.update_experiment(pb.Experiment(name="cells", arms=[pb.Arm(name="lstm", weight=40)]))
        assert state(client) == (20, True, {"gru": 30, "lstm": 40})


@pytest.mark.asyncio
async def test_async_client_changes_only_what_it_is_given(server) -> None:
    async with AsyncDigitsClient(server.target, timeout=30) as client:
        await client.update_experiment("cells", [("gru", 50), ("lstm", 50)], shadow_percent=20, paused=True)
        await client.update_experiment("cells", [("lstm", 60)])
        await client.update_experiment("cells", shadow_percent=5)
        (cells,) = [e for e in await client.list_experiments() if e.name == "cells"]
    assert (cells.shadow_percent, cells.paused, [a.weight for a in cells.arms]) == (5, True, [50, 60])


def test_cli_update_changes_only_the_flags_given(server, capsys) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        client.update_experiment("cells", [("gru", 50), ("lstm", 50)], shadow_percent=20, paused=True)
        assert digits_cli(["ab", "update", "cells", "--arm", "gru=70", "--target", server.target]) == 0
        assert state(client) == (20, True, {"gru": 70, "lstm": 50})
        assert digits_cli(["ab", "update", "cells", "--resume", "--target", server.target]) == 0
        assert state(client) == (20, False, {"gru": 70, "lstm": 50})
        assert digits_cli(["ab", "update", "cells", "--shadow", "0", "--target", server.target]) == 0
        assert state(client) == (0, False, {"gru": 70, "lstm": 50})
    capsys.readouterr()
