"""Issue 23's targets (bench/litert_targets.py) from a full-mode document: values, goals and verdicts
computed from what the harness measured, and every target still listed (not met, None) when a part
was not measured."""

from __future__ import annotations

from bench import litert_targets


def run(rate: float, cpu: float, images: float | None = None) -> dict:
    return {"requests_per_second": rate, "images_per_second": images or rate, "server_cpu_us_per_request": cpu}


def full_document() -> dict:
    starts = {"litert": {"median_rss_mb": 88.0, "median_seconds": 1.0, "tensorflow_loaded": False,
                         "runs": [{"seconds": 1.0}, {"seconds": 0.6}, {"seconds": 1.2}]},
              "tensorflow": {"median_rss_mb": 586.0, "median_seconds": 9.5, "tensorflow_loaded": True,
                             "runs": [{"seconds": 9.5}]}}
    runs = {"ours": {"lstm/unary_c1": run(900, 570), "lstm/unary_c16": run(1500, 450),
                     "lstm/stream_1": run(2000, 250), "lstm/batch512_c2": run(33, 12000, 17000)},
            "tf": {"lstm/unary_c1": run(1000, 580), "lstm/unary_c16": run(1500, 460), "lstm/stream_1": run(1600, 280)},
            "xla": {"lstm/batch512_c2": run(53, 14000, 27000)}}
    return {"cells": ["lstm"], "runs": runs, "startup": starts,
            "rolling_restart": {"litert": {"back": [2.0, 3.5, 1.6], "stopping": [0.5, 0.6, 0.4],
                                           "starting": [1.0, 1.1, 0.7]},
                                "tensorflow": {"back": [11.9, 14.2, 19.6]}},
            "peer_memory": {"ours_mb": 88.0, "mlserver_mb": 776.0, "mlserver_processes": 3}}


def by_what(targets: list[dict]) -> dict[str, dict]:
    return {f"{t['target']} {t['what']}": t for t in targets}


def test_a_full_run_gives_every_target_its_value_and_verdict() -> None:
    found = by_what(litert_targets.targets(full_document()))
    assert found["L1 LiteRT-only RSS, three cells loaded (MiB)"]["met"] is True
    assert "today's default 586 MiB" in found["L1 LiteRT-only RSS, three cells loaded (MiB)"]["detail"]
    assert found["L2 LiteRT-only exec -> health SERVING (s)"]["value"] == 1.0
    c1 = found["L3 unary_c1 LiteRT-only vs today's default"]
    assert c1["value"] == 0.9 and c1["met"] is False  # 900 vs 1,000 req/s: missed, said so
    assert found["L3 stream_1 LiteRT-only vs today's default"]["met"] is True
    batch = found["L4 batch 512 img/s LiteRT-only vs XLA"]
    assert round(batch["value"], 2) == 0.63 and batch["met"] is None  # reported, no goal
    restart = found["L5 rolling restart, LiteRT-only: slowest replica back (s)"]
    assert restart["value"] == 3.5 and restart["met"] is False and "11.9, 14.2, 19.6" in restart["detail"]
    memory = found["L6 RSS ours (LiteRT-only) vs MLServer (main + workers)"]
    assert round(memory["value"], 2) == 0.11 and "88 vs 776 MiB (3 MLServer processes)" in memory["detail"]


def test_what_a_run_did_not_measure_is_listed_as_not_measured() -> None:
    document = {"cells": ["lstm"], "runs": {"ours": {}}, "startup": None, "rolling_restart": None, "peer_memory": None}
    found = litert_targets.targets(document)
    assert {t["target"] for t in found} == {"L1", "L2", "L3", "L4", "L5", "L6"}
    assert all(t["met"] is None for t in found)
