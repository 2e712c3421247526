"""Howard, Ramdas, McAuliffe & Sekhon's two-sided mixture boundaries from `confseq` (the methods'
authors, pinned in the Makefile's setup-oracle), run in .venv-oracle by
tests/client/test_always_valid_oracle.py and bench/always_valid_speed.py.

Reads one JSON object from stdin, each family's arguments as equal-length lists in confseq's own
parameterisation (s: the sum process, v: intrinsic time, v_opt / alpha_opt: the tuning):

    {"normal": {"s", "v", "alpha", "v_opt", "alpha_opt"},
     "beta_binomial": {"s", "v", "alpha", "v_opt", "alpha_opt", "g", "h"},
     "repeat": N}

and prints one JSON line: per family the two-sided log mixture supermartingale at (s, v) and the
boundary at (v, alpha) ("log_mixture", "bound"); with repeat > 0 also "seconds_per_call": the mean
wall time of one scalar call (one look) of each, timed over N calls (bench/always_valid_speed.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from confseq import boundaries


def _two_sided(arguments: dict[str, list[float]], extra: tuple[str, ...]) -> dict[str, Any]:
    """The arrays confseq's vectorised functions take, two-sided."""
    columns = {name: np.asarray(arguments[name], dtype=np.float64)
               for name in ("s", "v", "alpha", "v_opt", "alpha_opt", *extra)}
    columns["is_one_sided"] = np.zeros(len(columns["v"]), dtype=bool)
    return columns


def normal_log_mixture(c: dict[str, Any]) -> Any:
    """log of the two-sided normal mixture supermartingale at (s, v)."""
    return boundaries.normal_log_mixture(s=c["s"], v=c["v"], v_opt=c["v_opt"], alpha_opt=c["alpha_opt"],
                                         is_one_sided=c["is_one_sided"])


def normal_bound(c: dict[str, Any]) -> Any:
    """The two-sided normal mixture boundary at (v, alpha): closed form."""
    return boundaries.normal_mixture_bound(v=c["v"], alpha=c["alpha"], v_opt=c["v_opt"], alpha_opt=c["alpha_opt"],
                                           is_one_sided=c["is_one_sided"])


def beta_binomial_log_mixture(c: dict[str, Any]) -> Any:
    """log of the two-sided beta-binomial mixture supermartingale at (s, v), range [-g, h]."""
    return boundaries.beta_binomial_log_mixture(s=c["s"], v=c["v"], v_opt=c["v_opt"], g=c["g"], h=c["h"],
                                                alpha_opt=c["alpha_opt"], is_one_sided=c["is_one_sided"])


def beta_binomial_bound(c: dict[str, Any]) -> Any:
    """The two-sided beta-binomial mixture boundary at (v, alpha), range [-g, h]: found by bisection."""
    return boundaries.beta_binomial_mixture_bound(v=c["v"], alpha=c["alpha"], v_opt=c["v_opt"], g=c["g"],
                                                  h=c["h"], alpha_opt=c["alpha_opt"], is_one_sided=c["is_one_sided"])


Function = Callable[[dict[str, Any]], Any]
FAMILIES: dict[str, tuple[tuple[str, ...], dict[str, Function]]] = {
    "normal": ((), {"log_mixture": normal_log_mixture, "bound": normal_bound}),
    "beta_binomial": (("g", "h"), {"log_mixture": beta_binomial_log_mixture, "bound": beta_binomial_bound}),
}


def seconds_per_call(function: Function, columns: dict[str, Any], repeat: int) -> float:
    """Mean wall time of one look: the function on the first point alone (arrays of one, as a caller
    holding one experiment's counts would pass them)."""
    one = {name: values[:1] for name, values in columns.items()}
    start = time.perf_counter()
    for _ in range(repeat):
        function(one)
    return (time.perf_counter() - start) / repeat


def main() -> None:
    request = json.load(sys.stdin)
    repeat = int(request.get("repeat", 0))
    answer: dict[str, Any] = {}
    for family, (extra, functions) in FAMILIES.items():
        if family not in request:
            continue
        columns = _two_sided(request[family], extra)
        answer[family] = {name: np.asarray(function(columns), dtype=float).tolist()
                          for name, function in functions.items()}
        if repeat > 0:
            answer[family]["seconds_per_call"] = {name: seconds_per_call(function, columns, repeat)
                                                  for name, function in functions.items()}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
