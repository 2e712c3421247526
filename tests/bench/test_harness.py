"""The benchmark harness' --quick mode as a smoke test: it completes, prints the comparison table
and writes its JSON/Markdown/PNG. No timing is asserted (the machine is shared and noisy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.serverproc import REPO, source_env


def test_quick_run_prints_the_table_and_writes_json(model_repo: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"  # the trainer's lstm only: the quick mode serves lstm
    shutil.copytree(model_repo / "lstm" / "1", models / "lstm" / "1")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--models", str(models), "--out", str(out)],
        capture_output=True, text=True, env=source_env(), timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    table = done.stdout
    for needle in ("unary c=16 req/s vs echo", "vs predict server", "vs savedmodel server", "one stream",
                   "batch 512 img/s", "c=1 p50 minus echo p50", "server CPU per png28 request",
                   "echo", "ours", "lstm/unary_c16", "LiteRT-only RSS", "unary_c16 LiteRT-only vs today's default",
                   "v2 REST c=16 req/s vs our v2 gRPC", "lstm/v2rest_unary_c16",
                   "monitoring on vs off: Classify, 1 image", "monitoring on vs off: ClassifyBatch, 64 images"):
        assert needle in table, table
    document = json.loads((out / "latest-quick.json").read_text())
    assert document["mode"] == "quick" and document["cells"] == ["lstm"]
    assert set(document["runs"]) == {"echo", "predict", "savedmodel", "ours", "tf"}
    for server, key in (("echo", "unary_c16"), ("predict", "lstm/unary_c16"), ("savedmodel", "lstm/unary_c16"),
                        ("ours", "lstm/unary_c16"), ("ours", "lstm/batch512_c2"), ("tf", "lstm/unary_c1"),
                        ("tf", "lstm/stream_1")):
        run = document["runs"][server][key]
        assert run["ok"] > 0 and run["errors"] == {}, (server, key, run)
    assert document["in_process"]["cells"]["lstm"]["runtimes"]["tflite"]["1"] > 0
    assert {t["target"] for t in document["targets"]} == {1, 2, 3, 5, 6, 7, "b", "r", "M", "L1", "L2", "L3", "L4", "L5", "L6"}
    # 4 compares GRU with RNN, L5 restarts a fleet: full mode only; L6 with --peers
    # the LiteRT-only server started without TensorFlow, today's default with it (one start each in quick mode)
    assert not document["startup"]["litert"]["tensorflow_loaded"] and document["startup"]["tensorflow"]["tensorflow_loaded"]
    assert document["startup"]["litert"]["median_rss_mb"] > 0 and len(document["startup"]["tensorflow"]["runs"]) == 1
    for key in ("lstm/v2_unary_c16", "lstm/v2rest_unary_c16", "lstm/v2restjson_unary_c16"):
        assert document["runs"]["ours"][key]["errors"] == {}, (key, document["runs"]["ours"][key])
    uploads = {key for key in document["runs"]["ours"] if key.startswith("lstm/png")}
    assert uploads == {"lstm/png28_c16", "lstm/png200_c16"}, document["runs"]["ours"].keys()
    assert all(document["runs"]["ours"][key]["errors"] == {} for key in uploads)
    assert document["uploads"]["png200"]["decode_and_preprocess_us"] > 0
    # issue 22's target M: monitoring on vs off, 3 interleaved rounds per traffic, both servers measured
    for traffic in ("classify_1", "batch_64"):
        measured = document["monitoring"][traffic]
        assert len(measured["ratios"]) == measured["rounds"] == 3, measured
        assert all(us > 0 for us in measured["on_us"] + measured["off_us"]), measured
    monitoring_targets = [t for t in document["targets"] if t["target"] == "M"]
    assert len(monitoring_targets) == 2 and all(t["met"] is not None for t in monitoring_targets), monitoring_targets
    assert (out / "latest-quick.md").read_text().startswith("Run of ")
    assert (out / "latest-quick.png").read_bytes()[:4] == b"\x89PNG"
