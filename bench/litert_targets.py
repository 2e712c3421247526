"""Issue 23's targets (L1-L6): the LiteRT-only server (no TensorFlow in the process) against today's
default (the TensorFlow-hosted runtime: SavedModel loaded, tf.lite interpreters beside it; `--runtime
tflite` now), all measured in one harness run. What bench/run.py puts in the document for them:

- `startup`: {"litert": ..., "tensorflow": ...} from bench/startup.py (exec -> health SERVING, RSS
  with the three cells loaded, whether TensorFlow was mapped), medians over a few starts;
- runs of the server "tf" (today's default) beside "ours" (LiteRT-only) for unary c=1 / c=16 and the
  stream, and of the server "xla" (`--runtime xla`) for batches of 512;
- `rolling_restart`: seconds for each replica to come back (bench/rolling_restart.py), per runtime;
- `peer_memory`: RSS of ours and of MLServer (main process + workers), with --peers.
"""

from __future__ import annotations

from typing import Any

from bench.target_rows import check, rate, ratio, target

RSS_GOAL_MB = 120.0
STARTUP_GOAL_S = 2.0
RESTART_GOAL_S = 3.0
PARITY_GOAL = 1.0  # unary and stream: at least today's default


def targets(document: dict[str, Any]) -> list[dict]:
    """L1-L6 with the measured value, the goal and whether it was met (None: not measured in this run)."""
    found: list[dict] = []
    startup = document.get("startup") or {}
    lite, tf = startup.get("litert"), startup.get("tensorflow")
    if lite is None:
        found.append(target("all", "L1", "LiteRT-only RSS, three cells loaded (MiB)", None,
                             f"<= {RSS_GOAL_MB:.0f}", None, "full mode only"))
        found.append(target("all", "L2", "LiteRT-only exec -> health SERVING (s)", None,
                             f"<= {STARTUP_GOAL_S:g}", None, "full mode only"))
    else:
        tf_detail = f"today's default {tf['median_rss_mb']:.0f} MiB" if tf else "today's default not measured"
        found.append(target("all", "L1", "LiteRT-only RSS, three cells loaded (MiB)", lite["median_rss_mb"],
                             f"<= {RSS_GOAL_MB:.0f}", check(lite["median_rss_mb"], RSS_GOAL_MB, True),
                             f"{tf_detail}; TensorFlow loaded: {lite['tensorflow_loaded']}"))
        tf_detail = f"today's default {tf['median_seconds']:.1f} s" if tf else "today's default not measured"
        found.append(target("all", "L2", "LiteRT-only exec -> health SERVING (s)", lite["median_seconds"],
                             f"<= {STARTUP_GOAL_S:g}", check(lite["median_seconds"], STARTUP_GOAL_S, True),
                             f"{tf_detail}; median of {len(lite['runs'])} starts: "
                             + ", ".join(f"{r['seconds']:.2f}" for r in lite["runs"])))
    runs = document["runs"]
    for cell in document["cells"]:
        for scenario, field in (("unary_c1", "requests_per_second"), ("unary_c16", "requests_per_second"),
                                ("stream_1", "images_per_second")):
            ours, today = runs.get("ours", {}).get(f"{cell}/{scenario}"), runs.get("tf", {}).get(f"{cell}/{scenario}")
            r = ratio(rate(ours, field), rate(today, field))
            cpu = ratio(*(None if run is None else run.get("server_cpu_us_per_request") for run in (today, ours)))
            found.append(target(cell, "L3", f"{scenario} LiteRT-only vs today's default", r, f">= {PARITY_GOAL:g}",
                                 check(r, PARITY_GOAL, False),
                                 f"{rate(ours, field) or 0:,.0f} vs {rate(today, field) or 0:,.0f}/s; server CPU "
                                 f"per request today/LiteRT {cpu or 0:.2f}"))
        ours, xla = runs.get("ours", {}).get(f"{cell}/batch512_c2"), runs.get("xla", {}).get(f"{cell}/batch512_c2")
        r = ratio(rate(ours, "images_per_second"), rate(xla, "images_per_second"))
        found.append(target(cell, "L4", "batch 512 img/s LiteRT-only vs XLA", r, "report (< 1: XLA faster)", None,
                             f"{rate(ours, 'images_per_second') or 0:,.0f} vs {rate(xla, 'images_per_second') or 0:,.0f}"
                             " img/s; per batch size: bench/litert_batches.py"))
    found += _restart_targets(document.get("rolling_restart"))
    found += _peer_memory(document.get("peer_memory"))
    return found


def _restart_targets(restart: dict | None) -> list[dict]:
    if not restart:
        return [target("all", "L5", "rolling restart, LiteRT-only: each replica back (s)", None, "<= 3", None,
                        "full mode only")]
    lite, tf = restart.get("litert", {}), restart.get("tensorflow", {})

    def shown(steps: dict, key: str) -> str:
        return ", ".join(f"{s:.1f}" for s in steps.get(key, [])) or "-"

    worst = max(lite["back"]) if lite.get("back") else None
    return [target("all", "L5", "rolling restart, LiteRT-only: slowest replica back (s)", worst,
                    f"<= {RESTART_GOAL_S:g}", check(worst, RESTART_GOAL_S, True),
                    f"SIGTERM -> in Envoy's rotation again: {shown(lite, 'back')} s (of which stopping "
                    f"{shown(lite, 'stopping')}, exec -> ready {shown(lite, 'starting')}); today's default: "
                    f"{shown(tf, 'back')} s")]


def _peer_memory(memory: dict | None) -> list[dict]:
    if not memory:
        return [target("all", "L6", "RSS vs MLServer (main + workers)", None, "report", None, "run with --peers")]
    r = ratio(memory["ours_mb"], memory["mlserver_mb"])
    return [target("all", "L6", "RSS ours (LiteRT-only) vs MLServer (main + workers)", r, "report", None,
                    f"{memory['ours_mb']:.0f} vs {memory['mlserver_mb']:.0f} MiB "
                    f"({memory['mlserver_processes']} MLServer processes)")]
