"""NannyML's CBPE accuracy estimate of one analysis chunk, the oracle of digits.monitoring.estimate.

Runs in .venv-oracle (tests/oracle/setup.sh), never in the project's venv. Usage:
    nannyml_cbpe.py DATA.npz
DATA.npz holds reference_probabilities [N, K], reference_labels [N], analysis_probabilities
[M, K] (labels withheld). Prints {"accuracy": estimate} as JSON.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pandas as pd


def frame(probabilities: np.ndarray, labels: np.ndarray | None) -> pd.DataFrame:
    data = {f"p{k}": probabilities[:, k] for k in range(probabilities.shape[1])}
    data["y_pred"] = probabilities.argmax(axis=1)
    if labels is not None:
        data["y_true"] = labels
    return pd.DataFrame(data)


def main() -> None:
    import nannyml

    warnings.simplefilter("ignore")
    with np.load(sys.argv[1]) as data:
        reference = frame(data["reference_probabilities"], data["reference_labels"])
        analysis = frame(data["analysis_probabilities"], None)
        classes = data["reference_probabilities"].shape[1]
    estimator = nannyml.CBPE(
        problem_type="classification_multiclass", y_pred_proba={k: f"p{k}" for k in range(classes)},
        y_pred="y_pred", y_true="y_true", metrics=["accuracy"], chunk_number=1,
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    print(json.dumps({"accuracy": float(result[("accuracy", "value")].iloc[0])}))


if __name__ == "__main__":
    main()
