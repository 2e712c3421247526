"""Ablation of the tuned recipe's levers: ``python -m digits_trainer.ablation``.

Each *variant* is the tuned recipe with some levers changed (see :data:`VARIANTS`). For every
variant x cell x seed the student is trained exactly as ``digits-train --recipe tuned`` would
train it (same split, same loop, same teacher), then measured on the test digits: accuracy
(argmax of the logits, which the exported graph reproduces), ECE (15 bins) before and after
temperature scaling fitted on the validation split, and training seconds (teacher excluded;
the teacher's own seconds are listed per seed). Results are appended to a JSON-lines file
(``--results``) so a run can be resumed or extended, and the table is printed from that file::

    python -m digits_trainer.ablation --data ../shared/data/mnist-9k.npz \\
        --variants base,final --cells rnn,lstm,gru --seeds 0,1,2
    python -m digits_trainer.ablation --table-only      # reprint the table

Teachers are cached per (seed, teacher settings) in memory during a run, so all variants and
cells of one seed share one teacher, as ``digits-train`` shares one across cells.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .recipes import TUNED, TUNED_2, TUNED_V1, Recipe

#: The tuned recipe plus distillation from the CNN teacher (the ablation's `final`; measured, left out).
DISTILLED = replace(TUNED_2, teacher="cnn", teacher_epochs=20, distill_alpha=0.5, distill_temperature=4.0)

#: Variant name -> (description, recipe). ``+ema`` is :data:`~digits_trainer.recipes.TUNED_2` (the
#: second tuned recipe), ``tuned`` is :data:`~digits_trainer.recipes.TUNED`.
VARIANTS: dict[str, tuple[str, Recipe]] = {
    "base": ("previous tuned recipe: Adam 1e-3 halved on plateaus, up to 40 epochs, early "
             "stopping (patience 6), shifts 2 px, Model.fit", TUNED_V1),
    "cosine": (
        "custom loop, cosine schedule (peak 2e-3, 2 warm-up epochs), 35 epochs (rnn 50), "
        "early stopping (patience 8), shifts 2 px",
        replace(TUNED_2, augment_rotation=0.0, augment_scale=0.0, label_smoothing=0.0,
                ema_decay=None, teacher=None, distill_alpha=0.0),
    ),
    "+affine": (
        "cosine + rotations (8 deg) and scaling (8%) on top of the shifts",
        replace(TUNED_2, label_smoothing=0.0, ema_decay=None, teacher=None, distill_alpha=0.0),
    ),
    "+ema": (
        "+affine + EMA of the weights (0.998) = tuned-2, the second tuned recipe (final without distillation)",
        replace(TUNED_2, label_smoothing=0.0, teacher=None, distill_alpha=0.0),
    ),
    "final": ("+ema + distillation from the CNN teacher (alpha 0.5, T 4); left out of tuned",
              DISTILLED),
    "+ls": ("final + label smoothing 0.1", replace(DISTILLED, label_smoothing=0.1)),
    "final-ema": ("final without EMA", replace(DISTILLED, ema_decay=None)),
    "final-affine": ("final with shifts only", replace(DISTILLED, augment_rotation=0.0,
                                                          augment_scale=0.0)),
    # --- third round: levers on top of +ema (the second tuned recipe), one at a time ---
    "ema+ls": ("+ema + label smoothing 0.1 (no teacher)", replace(TUNED_2, label_smoothing=0.1)),
    "ema+elastic": ("+ema + elastic distortion (alpha 34, sigma 4 px) composed with the affine warp",
                    replace(TUNED_2, elastic_alpha=34.0, elastic_sigma=4.0)),
    "ema+ep50": ("+ema with 50 epochs for every cell (cosine over 50)", replace(TUNED_2, epochs=50)),
    "ema+val5": ("+ema with a 5% validation split (7,125 fit digits)",
                 replace(TUNED_2, validation_split=0.05)),
    "ema+adamw": ("+ema with AdamW, decoupled weight decay 0.05", replace(TUNED_2, weight_decay=0.05)),
    "ema+erase": ("+ema + random erasing (half the digits, 2-15% of the area)",
                  replace(TUNED_2, random_erasing=0.5)),
    "ema+swa": ("+ema + SWA: equal average of the last 10 epochs' EMA weights (kept if it validates better)",
                replace(TUNED_2, swa_epochs=10)),
    "ep50+elastic": ("ema+ep50 + elastic distortion (alpha 34, sigma 4)",
                     replace(TUNED_2, epochs=50, elastic_alpha=34.0, elastic_sigma=4.0)),
    "ep50+noes": ("ema+ep50 without early stopping (all 50 epochs; best validation epoch still kept)",
                  replace(TUNED_2, epochs=50, early_stopping_patience=None)),
    "ep50+last": ("ema+ep50, no early stopping, the last step's raw (not averaged) weights kept",
                  replace(TUNED_2, epochs=50, early_stopping_patience=None, final_weights="last")),
    "ep50+elastic+last": ("ep50+last + elastic distortion (alpha 34, sigma 4)",
                          replace(TUNED_2, epochs=50, early_stopping_patience=None, final_weights="last",
                                  elastic_alpha=34.0, elastic_sigma=4.0)),
    "ep70+elastic+last": ("ep50+elastic+last with 70 epochs for every cell",
                          replace(TUNED_2, epochs=70, cell_epochs=(), early_stopping_patience=None,
                                  final_weights="last", elastic_alpha=34.0, elastic_sigma=4.0)),
    "tuned-gru70": ("tuned with the GRU at 70 epochs like the LSTM (before its 90-epoch override); gru only",
                    replace(TUNED, cell_overrides=TUNED.cell_overrides[:1])),
    "uniform-rnn": (("the third recipe with the SimpleRNN trained like the gated cells (70 epochs, elastic, "
                     "last weights); rnn only"), replace(TUNED, cell_overrides=())),
    "tuned": (("the third tuned recipe = ep70+elastic+last without the (then unused) EMA, temperature "
               "kept only if it lowers the validation NLL by >= 3%; GRU 90 epochs; the SimpleRNN as in +ema"), TUNED),
}


def run_one(
    variant: str, recipe: Recipe, cell: str, seed: int, data: Any, teachers: dict[Any, Any],
    epochs: int | None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train one student; return its measured figures."""
    from . import calibration
    from .data import split_validation
    from .loop import fit_loop, predict_logits, train_teacher
    from .model import build_model
    from .training import fit, seed_everything

    if epochs is not None:
        recipe = recipe.with_overrides(epochs=epochs)
    recipe = recipe.for_cell(cell)
    x_fit, y_fit, x_val, y_val = split_validation(
        data.x_train, data.y_train, recipe.validation_split, seed
    )
    teacher, teacher_info = None, None
    if recipe.teacher:
        key = (seed, recipe.teacher, recipe.teacher_epochs, recipe.augment_shift,
               recipe.augment_rotation, recipe.augment_scale, recipe.validation_split)
        if key not in teachers:
            seed_everything(seed)
            teachers[key] = train_teacher(recipe, data, seed=seed, quiet=not verbose)
        teacher, teacher_info = teachers[key]
    seed_everything(seed)
    model = build_model(cell)
    cpu_started = time.process_time()
    if recipe.custom_loop:
        history, epochs_run, best_epoch, seconds = fit_loop(
            model, recipe, x_fit, y_fit, x_val, y_val, seed=seed, teacher=teacher,
            quiet=not verbose, label=f"{variant}/{cell}/{seed}", epochs=recipe.epochs_for(cell),
        )
    else:
        outcome = fit(model, recipe, data, seed=seed, quiet=True)
        epochs_run, best_epoch, seconds = outcome.epochs_run, outcome.best_epoch, outcome.seconds
    test_logits = predict_logits(model, data.x_test)
    val_logits = predict_logits(model, x_val)
    temperature = fitted = calibration.fit_temperature(val_logits, y_val)
    val_nll = (calibration.negative_log_likelihood(val_logits, y_val, 1.0),
               calibration.negative_log_likelihood(val_logits, y_val, temperature))
    if not calibration.temperature_pays(*val_nll, recipe.calibrate_min_gain):
        temperature = 1.0
    before = calibration.softmax(test_logits)
    after = calibration.softmax(test_logits, temperature)
    return {
        "variant": variant, "cell": cell, "seed": seed,
        "test_accuracy": float(np.mean(test_logits.argmax(axis=1) == data.y_test)),
        "val_accuracy": float(np.mean(val_logits.argmax(axis=1) == y_val)),
        "ece_before": calibration.expected_calibration_error(before, data.y_test),
        "ece_after": calibration.expected_calibration_error(after, data.y_test),
        "temperature": temperature, "temperature_fitted": fitted,
        "val_nll_before": val_nll[0], "val_nll_after": val_nll[1],
        "seconds": round(seconds, 2), "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "epochs_run": epochs_run, "best_epoch": best_epoch,
        "teacher": teacher_info, "epochs_override": epochs,
    }


def rows_from_models(models: Path, variant: str = "final") -> list[dict[str, Any]]:
    """Result rows read back from a ``digits-train`` model repository's ``metadata.json`` files.

    A ``digits-train --recipe tuned --seed S`` run trains exactly what ``run_one("final", ...)``
    trains for seed ``S`` (same split, teacher, loop), so its models can stand for those rows.
    """
    rows = []
    for meta_path in sorted(models.glob("*/*/metadata.json")):
        meta = json.loads(meta_path.read_text())
        cal = meta.get("calibration") or {}
        hyper = meta.get("hyperparameters", {})
        rows.append({
            "variant": variant, "cell": meta["cell"], "seed": meta["seed"],
            "test_accuracy": meta["test_accuracy"], "val_accuracy": None,
            "ece_before": cal.get("ece_before"), "ece_after": cal.get("ece"),
            "temperature": meta.get("temperature"), "seconds": meta["training_seconds"],
            "cpu_seconds": None, "epochs_run": hyper.get("epochs_run"),
            "best_epoch": hyper.get("best_epoch"),
            "teacher": (hyper.get("distillation") or {}).get("teacher_run"),
            "epochs_override": None, "from": str(meta_path),
        })
    return rows


def load_results(path: Path) -> list[dict[str, Any]]:
    """All result lines of ``path`` (none if it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_table(results: list[dict[str, Any]], cells: list[str]) -> str:
    """Markdown table: per variant and cell, test accuracy mean ± std (n seeds, mean seconds per run), ECE."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for r in results:
        groups[(r["variant"], r["cell"])].append(r)
        if r["variant"] not in order:
            order.append(r["variant"])

    def stat(rows: list[dict[str, Any]], digits: int = 4) -> str:
        values = [r["test_accuracy"] for r in rows]
        if not values:
            return "-"
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        seconds = np.mean([r["seconds"] for r in rows])
        return f"{np.mean(values):.{digits}f} ± {std:.{digits}f} (n={len(values)}, {seconds:.0f} s)"

    head = ["variant", *[f"{c} test acc (n, s/run)" for c in cells], "ECE before -> after (mean)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in order:
        rows = [r for c in cells for r in groups.get((variant, c), [])]
        if not rows:
            continue
        accs = [stat(groups.get((variant, c), [])) for c in cells]
        ece = (f"{np.mean([r['ece_before'] for r in rows]):.4f} -> "
               f"{np.mean([r['ece_after'] for r in rows]):.4f}")
        lines.append("| " + " | ".join([variant, *accs, ece]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the requested variants x cells x seeds, then print the table."""
    parser = argparse.ArgumentParser(prog="python -m digits_trainer.ablation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="sample")
    parser.add_argument("--variants", default="base,final")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every variant's epochs (screening)")
    parser.add_argument("--results", default="ablation-results.jsonl")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every epoch")
    parser.add_argument("--import-models", default=None, metavar="DIR",
                        help="append the 'final' rows of a digits-train --recipe tuned model "
                        "repository (its metadata.json files) to the results, then continue")
    args = parser.parse_args(argv)
    cells = [c for c in args.cells.split(",") if c]
    results_path = Path(args.results)
    if args.import_models:
        with results_path.open("a") as handle:
            for row in rows_from_models(Path(args.import_models)):
                handle.write(json.dumps(row) + "\n")
    if not args.table_only:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from .data import load_dataset

        data = load_dataset(args.data, quiet=True)
        teachers: dict[Any, Any] = {}
        done = {(r["variant"], r["cell"], r["seed"], r.get("epochs_override"))
                for r in load_results(results_path)}
        for seed in [int(s) for s in args.seeds.split(",") if s]:
            for variant in [v for v in args.variants.split(",") if v]:
                for cell in cells:
                    if (variant, cell, seed, args.epochs) in done:
                        continue
                    started = time.perf_counter()
                    result = run_one(variant, VARIANTS[variant][1], cell, seed, data, teachers,
                                     args.epochs, args.verbose)
                    with results_path.open("a") as handle:
                        handle.write(json.dumps(result) + "\n")
                    print(f"{variant:14s} {cell:4s} seed {seed}: acc {result['test_accuracy']:.4f}"
                          f" ece {result['ece_before']:.4f}->{result['ece_after']:.4f} "
                          f"T {result['temperature']:.2f} {result['seconds']:.0f}s "
                          f"(epochs {result['epochs_run']}, best {result['best_epoch']}; "
                          f"wall {time.perf_counter() - started:.0f}s)", flush=True)
    results = [r for r in load_results(results_path)
               if args.epochs is None or r.get("epochs_override") == args.epochs]
    print(format_table(results, cells))
    for variant, (description, _) in VARIANTS.items():
        if any(r["variant"] == variant for r in results):
            print(f"- {variant}: {description}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
