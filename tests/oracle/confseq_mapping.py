"""Our always-valid statistics' parameters in confseq's, and a call to confseq in .venv-oracle
(tests/oracle/confseq_boundaries.py): shared by tests/client/test_always_valid_oracle.py and
bench/always_valid_speed.py. No confseq import here: it runs in the project's venv.

- Normal mixture (the accuracy mSPRT and every confidence sequence of digits/experiments/sequential.py):
  an estimate theta_hat with variance V is confseq's sum s = theta_hat / V at intrinsic time v = 1 / V;
  mixing theta over N(0, tau^2) is confseq's rho = 1 / tau^2. Our log Lambda is confseq's two-sided
  log mixture, and our radius is V times its two-sided boundary at (v, alpha).
- Beta-binomial mixture (the paired p-value): among b + c discordant pairs the only-a-right
  indicator minus 1/2 lies in [-g, h] = [-1/2, 1/2], so s = (b - c) / 2 at v = g h (b + c) = (b + c) / 4;
  confseq's two-sided prior Beta(r / (g (g + h)), r / (h (g + h))) = Beta(2r, 2r) with r = rho - g h,
  so our Beta(a, a) prior is rho = a / 2 + 1 / 4.

confseq chooses rho from its tuning (v_opt, alpha_opt) by its two-sided best_rho, rho = v_opt /
(2 L + log(1 + 2 L)), L = log(1 / alpha_opt): `v_opt_for` inverts it, so every alpha_opt names the
same mixture.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT = Path(__file__).resolve().parent / "confseq_boundaries.py"


def v_opt_for(rho: Any, alpha_opt: Any) -> Any:
    """The v_opt for which confseq's two-sided best_rho(v_opt, alpha_opt) is rho."""
    log_inverse = np.log(1 / np.asarray(alpha_opt, dtype=float))
    return np.asarray(rho, dtype=float) * (2 * log_inverse + np.log1p(2 * log_inverse))


def normal_points(variance: Any, estimate: Any, tau: Any, alpha: Any, alpha_opt: Any) -> dict[str, Any]:
    """Our (estimate, variance, tau, alpha) as confseq's normal-mixture arguments."""
    variance = np.asarray(variance, dtype=float)
    return {"s": np.asarray(estimate, dtype=float) / variance, "v": 1 / variance, "alpha": alpha,
            "v_opt": v_opt_for(1 / np.asarray(tau, dtype=float) ** 2, alpha_opt), "alpha_opt": alpha_opt}


def paired_points(only_a_right: Any, only_b_right: Any, prior: Any, alpha: Any, alpha_opt: Any) -> dict[str, Any]:
    """Our discordant pairs (b, c) and Beta(prior, prior) as confseq's beta-binomial arguments."""
    b, c = np.asarray(only_a_right, dtype=float), np.asarray(only_b_right, dtype=float)
    half = np.full_like(b, 0.5)
    return {"s": (b - c) / 2, "v": (b + c) / 4, "alpha": alpha, "alpha_opt": alpha_opt,
            "v_opt": v_opt_for(np.asarray(prior, dtype=float) / 2 + 0.25, alpha_opt), "g": half, "h": half}


def run_confseq(python: Path, repeat: int = 0, **families: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """confseq's answer (see confseq_boundaries.py) for each family's points, computed by `python`."""
    request: dict[str, Any] = {"repeat": repeat}
    for family, columns in families.items():
        arrays = np.broadcast_arrays(*(np.asarray(values, dtype=float) for values in columns.values()))
        request[family] = {name: np.atleast_1d(array).tolist() for name, array in zip(columns, arrays)}
    run = subprocess.run([str(python), str(SCRIPT)], input=json.dumps(request),
                         capture_output=True, text=True, timeout=600, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} failed: {run.stderr[-3000:]}")
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    return {family: {key: value if key == "seconds_per_call" else np.asarray(value)
                     for key, value in answer[family].items()}
            for family in families}
