"""The harness' verdicts and outputs: its six performance targets (see docs/performance.md) as
ratios measured within one run, a comparison table (text and Markdown), the JSON document, a
latency-vs-throughput PNG, and the dated Markdown page `--publish` commits under docs/benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BATCH_KEY = "batch512_c2"
MEMORY_LIMIT_MB = 700.0
LEAK_TOLERANCE_MB = 10.0


def _get(runs: dict, server: str, key: str) -> dict | None:
    return runs.get(server, {}).get(key)


def _rate(run: dict | None, field: str = "requests_per_second") -> float | None:
    return None if run is None else run[field]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _target(cell: str, number: int, what: str, value: float | None, goal: str, ok: bool | None, detail: str) -> dict:
    return {"cell": cell, "target": number, "what": what, "value": value, "goal": goal, "met": ok, "detail": detail}


def targets(document: dict[str, Any]) -> list[dict]:
    """Each target per cell: the measured value, the goal and whether it was met (None: not measured)."""
    runs, found = document["runs"], []
    echo16, echo1 = _get(runs, "echo", "unary_c16"), _get(runs, "echo", "unary_c1")
    for cell in document["cells"]:
        ours16, ours1 = _get(runs, "ours", f"{cell}/unary_c16"), _get(runs, "ours", f"{cell}/unary_c1")
        r = _ratio(_rate(ours16), _rate(echo16))
        found.append(_target(cell, 1, "unary c=16 req/s vs echo", r, ">= 0.70", r is not None and r >= 0.7,
                             f"{_rate(ours16) or 0:,.0f} vs {_rate(echo16) or 0:,.0f} req/s"))
        p99 = _ratio(ours16 and ours16["latency_ms"]["p99"], echo16 and echo16["latency_ms"]["p99"])
        found.append(_target(cell, 1, "unary c=16 p99 vs echo p99", p99, "<= 1.5", p99 is not None and p99 <= 1.5,
                             f"{ours16 and ours16['latency_ms']['p99']} vs {echo16 and echo16['latency_ms']['p99']} ms"))
        cpu = _ratio(ours16 and ours16.get("server_cpu_us_per_request"), echo16 and echo16.get("server_cpu_us_per_request"))
        found.append(_target(cell, 1, "server CPU per request vs echo (info)", cpu, "-", None,
                             f"{ours16 and ours16.get('server_cpu_us_per_request')} vs "
                             f"{echo16 and echo16.get('server_cpu_us_per_request')} us"))
        for server, goal in (("predict", 50.0), ("savedmodel", 2.5)):
            base = _get(runs, server, f"{cell}/unary_c16")
            r = _ratio(_rate(ours16), _rate(base))
            found.append(_target(cell, 2, f"unary c=16 req/s vs {server} server", r, f">= {goal:g}",
                                 r is not None and r >= goal, f"{_rate(ours16) or 0:,.0f} vs {_rate(base) or 0:,.1f} req/s"))
        stream = _get(runs, "ours", f"{cell}/stream_1")
        r = _ratio(_rate(stream, "images_per_second"), _rate(ours16))
        found.append(_target(cell, 3, "one stream images/s vs unary c=16 req/s", r, ">= 5", r is not None and r >= 5,
                             f"{_rate(stream, 'images_per_second') or 0:,.0f} img/s; vs unary c=1: "
                             f"{_ratio(_rate(stream, 'images_per_second'), _rate(ours1)) or 0:.1f}x"))
        found += _batch_targets(document, cell)
        gap = None if ours1 is None or echo1 is None else ours1["latency_ms"]["p50"] - echo1["latency_ms"]["p50"]
        found.append(_target(cell, 5, "c=1 p50 minus echo p50 (ms)", gap, "<= 0.4", gap is not None and gap <= 0.4,
                             f"{ours1 and ours1['latency_ms']['p50']} vs {echo1 and echo1['latency_ms']['p50']} ms"))
    found += _memory_targets(runs.get("ours", {}).get("memory"))
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
        _target(cell, 4, "batch 512 img/s vs best in-process b=512", r, ">= 0.70", r is not None and r >= 0.7,
                f"{served or 0:,.0f} vs {best:,.0f} img/s ({best_name})"),
        _target(cell, 4, "batch 512 img/s vs compute ceiling", c, ">= 0.25", c is not None and c >= 0.25,
                f"ceiling {ceiling or 0:,.0f} img/s at {document['in_process']['matmul_gflops']:.0f} GFLOP/s"),
    ]


def _memory_targets(memory: dict | None) -> list[dict]:
    if not memory:
        return [_target("all", 6, "resident memory", None, f"<= {MEMORY_LIMIT_MB:.0f} MiB", None, "full mode only")]
    growth = memory["after_100k_mb"] - memory["after_20k_mb"]
    return [
        _target("all", 6, "RSS with three cells loaded (MiB)", memory["loaded_mb"], f"<= {MEMORY_LIMIT_MB:.0f}",
                memory["loaded_mb"] <= MEMORY_LIMIT_MB, f"{memory['after_100k_mb']:.0f} MiB after 100k requests"),
        _target("all", 6, "RSS growth 20k -> 100k requests (MiB)", growth, f"<= {LEAK_TOLERANCE_MB:.0f}",
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
    return (f"digits bench harness ({document['mode']}), {document['date']}, {document['machine']}\n\n"
            + _text_table(TARGET_HEADER, target_rows(document)) + "\n\n" + _text_table(RUN_HEADER, runs_rows(document)))


def markdown(document: dict) -> str:
    """The comparison as Markdown (latest-<mode>.md, and the body of a published page)."""
    return (f"Run of {document['date']} ({document['mode']} mode, {document['seconds']:.0f} s) on "
            f"{document['machine']}.\n\n" + _markdown_table(TARGET_HEADER, target_rows(document)) + "\n\n"
            + _markdown_table(RUN_HEADER, runs_rows(document)) + "\n")


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
            if key != "memory" and "unary" in key and (server == "echo" or key.startswith(cell + "/"))
        )
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
