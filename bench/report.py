"""The harness' verdicts and outputs: the performance targets (issue 14's 1-7, and the earlier
ones as 'b'; see docs/performance.md) as ratios measured within one run, a comparison table (text
and Markdown), the JSON document, a latency-vs-throughput PNG, and the dated Markdown page
`--publish` commits under docs/benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import litert_targets
from bench.target_rows import check as _check
from bench.target_rows import rate as _rate
from bench.target_rows import ratio as _ratio
from bench.target_rows import target as _target

BATCH_KEY = "batch512_c2"
MEMORY_OVER_FLOOR_MB = 120.0  # issue 14, target 7: loaded RSS <= import-TensorFlow-only RSS + this
LEAK_TOLERANCE_MB = 10.0


def _get(runs: dict, server: str, key: str) -> dict | None:
    return runs.get(server, {}).get(key)


def _cpu(run: dict | None) -> float | None:
    return None if run is None else run.get("server_cpu_us_per_request")


def _p(run: dict | None, which: str) -> float | None:
    return None if run is None else run["latency_ms"][which]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def targets(document: dict[str, Any]) -> list[dict]:
    """Issue 14's targets (1-7) per cell, then the earlier ones (b: baselines, in-process), each with
    the measured value, the goal and whether it was met (None: not measured in this run)."""
    runs, found = document["runs"], []
    echo16, echo1 = _get(runs, "echo", "unary_c16"), _get(runs, "echo", "unary_c1")
    echo_stream = _get(runs, "echo", "stream_1")
    for cell in document["cells"]:
        ours16, ours1 = _get(runs, "ours", f"{cell}/unary_c16"), _get(runs, "ours", f"{cell}/unary_c1")
        cpu = _ratio(_cpu(ours16), _cpu(echo16))
        found.append(_target(cell, 1, "server CPU per request c=16 vs echo", cpu, "<= 1.5", _check(cpu, 1.5, True),
                             f"{_fmt(_cpu(ours16))} vs {_fmt(_cpu(echo16))} us"))
        r = _ratio(_rate(ours16), _rate(echo16))
        found.append(_target(cell, 1, "unary c=16 req/s vs echo", r, ">= 0.6", _check(r, 0.6, False),
                             f"{_rate(ours16) or 0:,.0f} vs {_rate(echo16) or 0:,.0f} req/s"))
        p99 = _ratio(_p(ours16, "p99"), _p(echo16, "p99"))
        found.append(_target(cell, 1, "unary c=16 p99 vs echo p99", p99, "<= 1.5", _check(p99, 1.5, True),
                             f"{_ms(_p(ours16, 'p99'))} vs {_ms(_p(echo16, 'p99'))} ms"))
        stream = _get(runs, "ours", f"{cell}/stream_1")
        r = _ratio(_rate(stream, "images_per_second"), _rate(ours16))
        found.append(_target(cell, 2, "one stream images/s vs unary c=16 req/s", r, ">= 5", _check(r, 5, False),
                             f"{_rate(stream, 'images_per_second') or 0:,.0f} img/s, {_fmt(_cpu(stream))} us/msg; "
                             f"echo's stream {_rate(echo_stream) or 0:,.0f} msg/s = "
                             f"{_fmt(_ratio(_rate(echo_stream), _rate(ours16)))}x our unary"))
        gap = None if ours1 is None or echo1 is None else ours1["latency_ms"]["p50"] - echo1["latency_ms"]["p50"]
        found.append(_target(cell, 3, "c=1 p50 minus echo p50 (ms)", gap, "<= 0.3", _check(gap, 0.3, True),
                             f"{_ms(_p(ours1, 'p50'))} vs {_ms(_p(echo1, 'p50'))} ms"))
    if {"rnn", "gru"} <= set(document["cells"]):
        gru, rnn = _cpu(_get(runs, "ours", "gru/unary_c16")), _cpu(_get(runs, "ours", "rnn/unary_c16"))
        r = _ratio(gru, rnn)
        found.append(_target("gru", 4, "server CPU per request c=16, GRU vs RNN", r, "<= 1.2", _check(r, 1.2, True),
                             f"{_fmt(gru)} vs {_fmt(rnn)} us"))
    found += _upload_targets(document)
    found += _peer_targets(document)
    found += _rest_targets(document)
    found += _monitoring_targets(document.get("monitoring"))
    found += _memory_targets(runs.get("ours", {}).get("memory"), document.get("tensorflow_floor_mb"))
    for cell in document["cells"]:
        ours16 = _get(runs, "ours", f"{cell}/unary_c16")
        for server, goal in (("predict", 50.0), ("savedmodel", 2.5)):
            base = _get(runs, server, f"{cell}/unary_c16")
            r = _ratio(_rate(ours16), _rate(base))
            found.append(_target(cell, "b", f"unary c=16 req/s vs {server} server", r, f">= {goal:g}",
                                 _check(r, goal, False), f"{_rate(ours16) or 0:,.0f} vs {_rate(base) or 0:,.1f} req/s"))
        found += _batch_targets(document, cell)
    return found + litert_targets.targets(document)


def goal_rows() -> list[list[str]]:
    """Every target the harness checks, once each: number, measure, goal. Read off `targets()` itself
    (on a run with no measurements), so docs/performance.md's table cannot drift from the checks."""
    blank = {"runs": {"mlserver": {}, "ours": {"memory": {"loaded_mb": 0.0, "after_20k_mb": 0.0,
                                                          "after_100k_mb": 0.0}}},
             "cells": ["rnn", "lstm", "gru"], "uploads": {name: {"bytes": 0, "decode_and_preprocess_us": 0.0}
                                                          for name in ("png28", "png200")},  # bench/pictures.py
             "in_process": {"cells": {}, "matmul_gflops": 0.0}, "tensorflow_floor_mb": 0.0}
    rows: list[list[str]] = []
    for found in targets(blank):
        row = [str(found["target"]), found["what"], found["goal"]]
        if row not in rows:
            rows.append(row)
    return rows


def goals_markdown() -> str:
    """The Markdown table of `goal_rows()` (docs/performance.md carries it between markers)."""
    return _markdown_table(["#", "measure (per cell unless `all`)", "goal"],
                           [[n, what.replace("|", "\\|"), goal] for n, what, goal in goal_rows()])


def _upload_targets(document: dict) -> list[dict]:
    found, uploads = [], document.get("uploads") or {}
    for cell in document["cells"]:
        raw = _cpu(_get(document["runs"], "ours", f"{cell}/unary_c16"))
        for name, cost in uploads.items():
            png = _get(document["runs"], "ours", f"{cell}/{name}_c16")
            r = _ratio(_cpu(png), raw)
            found.append(_target(cell, 5, f"server CPU per {name} request vs raw (c=16)", r, "<= 2",
                                 _check(r, 2, True), f"{_fmt(_cpu(png))} vs {_fmt(raw)} us; {cost['bytes']:,} B, "
                                 f"decode+preprocess {cost['decode_and_preprocess_us']:,.0f} us in-process"))
    return found


def _peer_targets(document: dict) -> list[dict]:
    runs = document["runs"]
    if "mlserver" not in runs:
        return [_target("all", 6, "digits vs MLServer (v2)", None, "-", None, "run with --peers")]
    found = []
    for cell in document["cells"]:
        ours, peer = _get(runs, "ours", f"{cell}/v2_unary_c16"), _get(runs, "mlserver", f"{cell}/v2_unary_c16")
        r = _ratio(_rate(ours), _rate(peer))
        found.append(_target(cell, 6, "v2 c=16 req/s vs MLServer", r, ">= 4", _check(r, 4, False),
                             f"{_rate(ours) or 0:,.0f} vs {_rate(peer) or 0:,.0f} req/s"))
        p99 = _ratio(_p(ours, "p99"), _p(peer, "p99"))
        found.append(_target(cell, 6, "v2 c=16 p99 vs MLServer p99", p99, "<= 0.5", _check(p99, 0.5, True),
                             f"{_ms(_p(ours, 'p99'))} vs {_ms(_p(peer, 'p99'))} ms"))
        ours_b, peer_b = (_get(runs, s, f"{cell}/v2_batch{512}_c2") for s in ("ours", "mlserver"))
        r = _ratio(_rate(ours_b, "images_per_second"), _rate(peer_b, "images_per_second"))
        found.append(_target(cell, 6, "v2 batch 512 img/s vs MLServer", r, ">= 3", _check(r, 3, False),
                             f"{_rate(ours_b, 'images_per_second') or 0:,.0f} vs "
                             f"{_rate(peer_b, 'images_per_second') or 0:,.0f} img/s"))
    return found


def _rest_targets(document: dict) -> list[dict]:
    """Issue 24: the REST port's v2 infer against our v2 gRPC and (with --peers) MLServer's REST."""
    runs, found = document["runs"], []
    for cell in document["cells"]:
        rest, grpc_v2 = _get(runs, "ours", f"{cell}/v2rest_unary_c16"), _get(runs, "ours", f"{cell}/v2_unary_c16")
        r = _ratio(_rate(rest), _rate(grpc_v2))
        found.append(_target(cell, "r", "v2 REST c=16 req/s vs our v2 gRPC", r, ">= 0.5", _check(r, 0.5, False),
                             f"{_rate(rest) or 0:,.0f} vs {_rate(grpc_v2) or 0:,.0f} req/s; server CPU "
                             f"{_fmt(_cpu(rest))} vs {_fmt(_cpu(grpc_v2))} us/request"))
        as_json = _get(runs, "ours", f"{cell}/v2restjson_unary_c16")
        if "mlserver" in runs:  # all-JSON bodies on both: MLServer's REST has no binary tensor extension
            peer = _get(runs, "mlserver", f"{cell}/v2restjson_unary_c16")
            r = _ratio(_rate(as_json), _rate(peer))
            found.append(_target(cell, "r", "v2 REST (JSON) c=16 req/s vs MLServer REST", r, ">= 3",
                                 _check(r, 3, False), f"{_rate(as_json) or 0:,.0f} vs {_rate(peer) or 0:,.0f} req/s; "
                                 f"p99 {_ms(_p(as_json, 'p99'))} vs {_ms(_p(peer, 'p99'))} ms"))
    return found


#: Issue 22 (target M): server CPU per request, label-free monitoring on / off, at most this.
MONITORING_COST = 1.05


def _monitoring_targets(monitoring: dict | None) -> list[dict]:
    """Issue 22: the median over interleaved rounds of server CPU per request, monitoring on / off."""
    found = []
    for key, what in (("classify_1", "Classify, 1 image"), ("batch_64", "ClassifyBatch, 64 images")):
        run = (monitoring or {}).get(key)
        r = None if run is None else run["median_ratio"]
        detail = "" if run is None else (
            f"{run['rounds']} rounds, ratios {min(run['ratios']):.3f}-{max(run['ratios']):.3f}; off "
            f"{min(run['off_us']):.0f}-{max(run['off_us']):.0f} us/request; monitor in process "
            f"{monitoring['in_process_us'][str(run['batch'])]:.0f} us/request")
        found.append(_target((monitoring or {}).get("model", "all"), "M",
                             f"server CPU per request, monitoring on vs off: {what} (median of interleaved rounds)",
                             r, f"<= {MONITORING_COST:g}", _check(r, MONITORING_COST, True), detail))
    return found


def _batch_targets(document: dict, cell: str) -> list[dict]:
    batch = _get(document["runs"], "ours", f"{cell}/{BATCH_KEY}")
    inproc = document["in_process"]["cells"].get(cell, {})
    best_name, best = max(((name, per.get("512", 0.0)) for name, per in inproc.get("runtimes", {}).items()),
                          key=lambda item: item[1], default=("", 0.0))
    served = _rate(batch, "images_per_second")
    r = _ratio(served, best)
    ceiling = inproc.get("ceiling_images_per_second")
    c = _ratio(served, ceiling)
    return [
        _target(cell, "b", "batch 512 img/s vs best in-process b=512", r, ">= 0.70", _check(r, 0.7, False),
                f"{served or 0:,.0f} vs {best:,.0f} img/s ({best_name})"),
        _target(cell, "b", "batch 512 img/s vs compute ceiling", c, ">= 0.25", _check(c, 0.25, False),
                f"ceiling {ceiling or 0:,.0f} img/s at {document['in_process']['matmul_gflops']:.0f} GFLOP/s"),
    ]


def _memory_targets(memory: dict | None, floor: float | None) -> list[dict]:
    if not memory:
        return [_target("all", 7, "resident memory", None, "<= TensorFlow floor + 120 MiB", None, "full mode only")]
    over = None if floor is None else memory["loaded_mb"] - floor
    growth = memory["after_100k_mb"] - memory["after_20k_mb"]
    return [
        _target("all", 7, "RSS with three cells loaded minus import-TensorFlow-only RSS (MiB)", over,
                f"<= {MEMORY_OVER_FLOOR_MB:.0f}", _check(over, MEMORY_OVER_FLOOR_MB, True),
                f"{memory['loaded_mb']:.0f} vs {floor or 0:.0f} MiB; "
                f"{memory['after_100k_mb']:.0f} MiB after 100k requests"),
        _target("all", 7, "RSS growth 20k -> 100k requests (MiB)", growth, f"<= {LEAK_TOLERANCE_MB:.0f}",
                growth <= LEAK_TOLERANCE_MB, f"{memory['after_20k_mb']:.0f} -> {memory['after_100k_mb']:.0f} MiB"),
    ]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def runs_rows(document: dict) -> list[list[str]]:
    """One row per (server, scenario): req/s, img/s, p50, p99, errors, client CPU."""
    rows = []
    for server, results in document["runs"].items():
        for key, run in results.items():
            if key == "memory":
                continue
            lat = run["latency_ms"]
            rows.append([server, key, _fmt(run["requests_per_second"]), _fmt(run["images_per_second"]),
                         _fmt(lat["p50"]), _fmt(lat["p99"]), str(sum(run["errors"].values())),
                         _fmt(run.get("server_cpu_us_per_request")), f"{run['client_cpu_percent']:.0f}%"])
    return rows


#: Where the measured reasons for each missed target are written up: a dated heading of
#: docs/performance-findings.md (fixed prose here would print old numbers under every later miss).
#: Measured again: add a dated section there and point these at it.
FINDINGS_PAGE = "performance-findings.md"
#: target number -> (the date its reasons were measured, the heading's anchor on FINDINGS_PAGE).
FINDINGS: dict[str, tuple[str, str]] = {
    "1": ("2026-11-29", "target-1-on-2026-11-29-server-cpu-rate-and-p99-vs-the-echo"),
    "2": ("2026-11-29", "target-2-on-2026-11-29-one-classifystream-vs-unary"),
    "3": ("2026-11-29", "target-3-on-2026-11-29-one-callers-p50-vs-the-echo"),
    "4": ("2026-11-29", "target-4-on-2026-11-29-gru-vs-rnn"),
    "5": ("2026-11-29", "target-5-on-2026-11-29-png-uploads-vs-raw"),
    "6": ("2026-11-29", "target-6-on-2026-11-29-vs-mlserver"),
    "7": ("2026-11-29", "target-7-on-2026-11-29-resident-memory"),
    "L1": ("2026-12-05", "target-l1-on-2026-12-05-resident-memory-without-tensorflow"),
    "L2": ("2026-12-05", "target-l2-on-2026-12-05-exec-to-serving"),
    "L3": ("2026-12-05", "target-l3-on-2026-12-05-unary-and-stream-vs-todays-default"),
    "L5": ("2026-12-05", "target-l5-on-2026-12-05-rolling-restart"),
    "M": ("2026-12-05", "target-m-on-2026-12-05-afternoon-met-and-where-the-gap-beyond-the-monitors-own-cpu-goes"),
}


def missed_targets(document: dict) -> list[str]:
    """The target numbers (1-7, L1-L6) with a miss in this run and dated findings, each once."""
    return sorted({str(t["target"]) for t in document["targets"] if t["met"] is False} & set(FINDINGS))


def missed_reasons(document: dict) -> list[str]:
    """'target N: where its reasons were measured' for each target number with a miss in this run."""
    return [f"target {number}: reasons measured on {FINDINGS[number][0]}: docs/{FINDINGS_PAGE}#{FINDINGS[number][1]}"
            for number in missed_targets(document)]


def target_rows(document: dict) -> list[list[str]]:
    """One row per target and cell."""
    return [[str(t["target"]), t["cell"], t["what"], _fmt(t["value"]), t["goal"], _verdict(t["met"]), t["detail"]]
            for t in document["targets"]]


RUN_HEADER = ["server", "scenario", "req/s", "img/s", "p50 ms", "p99 ms", "errors", "server CPU us/req", "client CPU"]
TARGET_HEADER = ["#", "cell", "measure", "value", "goal", "met", "detail"]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table(document: dict) -> str:
    """The comparison as plain text: targets with ratios, then every run."""
    reasons = "".join(f"missed {line}\n" for line in missed_reasons(document))
    return (f"digits bench harness ({document['mode']}), {document['date']}, {document['machine']}\n\n"
            + _text_table(TARGET_HEADER, target_rows(document)) + "\n\n" + (reasons + "\n" if reasons else "")
            + _text_table(RUN_HEADER, runs_rows(document)))


def markdown(document: dict) -> str:
    """The comparison as Markdown (latest-<mode>.md, and the body of a published page)."""
    missed = missed_targets(document)
    why = ("Why the missed ones were missed, as last measured (dated findings):\n\n"
           + "".join(f"- target {number}: [findings of {FINDINGS[number][0]}](../{FINDINGS_PAGE}#{FINDINGS[number][1]})\n"
                     for number in missed)
           + "\n") if missed else ""
    return (f"Run of {document['date']} ({document['mode']} mode, {document['seconds']:.0f} s) on "
            f"{document['machine']}.\n\n" + _markdown_table(TARGET_HEADER, target_rows(document)) + "\n\n"
            + why + _markdown_table(RUN_HEADER, runs_rows(document)) + "\n")


def plot(document: dict, path: Path) -> Path:
    """Latency (p50 solid, p99 dashed) against requests/s of the unary runs, one colour per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    cell = "lstm" if "lstm" in document["cells"] else document["cells"][0]
    for server, results in document["runs"].items():
        points = sorted(
            (run["requests_per_second"], run["latency_ms"]["p50"], run["latency_ms"]["p99"], key.split("_c")[-1])
            for key, run in results.items()
            if key != "memory" and "unary" in key and "v2_" not in key
            and (server == "echo" or key.startswith(cell + "/"))
            and None not in (run["requests_per_second"], run["latency_ms"]["p50"], run["latency_ms"]["p99"])
        )  # a run that answered nothing (e.g. every call timed out on a loaded machine) has no point
        if not points:
            continue
        xs, p50, p99, labels = zip(*points)
        (line,) = ax.plot(xs, p50, "o-", label=f"{server} p50")
        ax.plot(xs, p99, "s--", color=line.get_color(), label=f"{server} p99")
        for x, y, label in zip(xs, p50, labels):
            ax.annotate(f"c={label}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests/s (unary Classify)")
    ax.set_ylabel("latency, ms")
    ax.set_title(f"Latency vs throughput, {cell}, closed loop ({document['date'][:10]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(document: dict, out: Path) -> list[Path]:
    """results.json, results.md and latency.png in `out` (also kept as latest-<mode>.*)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"latest-{document['mode']}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2))
    md_path.write_text(markdown(document))
    return [json_path, md_path, plot(document, out / f"{stem}.png")]


PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def publish(document: dict, directory: Path = PUBLISHED) -> Path:
    """The Markdown report as a dated page to commit: `<directory>/harness-<YYYY-MM-DD>.md` (a later
    run on the same day replaces it). docs/performance.md links to the newest one."""
    directory.mkdir(parents=True, exist_ok=True)
    day = document["date"][:10]
    path = directory / f"harness-{day}.md"
    path.write_text(
        f"# Benchmark harness, {day}\n\n"
        f"Written by `python bench/run.py{' --quick' if document['mode'] == 'quick' else ''} --publish` "
        "(see [the performance page](../performance.md) for what the servers, scenarios and targets are). "
        "Only ratios within one run mean anything: the machine is shared and its load moves between runs.\n\n"
        + markdown(document)
    )
    return path
