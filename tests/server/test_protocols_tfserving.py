"""TensorFlow Serving's PredictionService and ModelService on the digits port, driven by
tensorflow-serving-api's own stubs (in their own venv) against a real server with trainer-made
models; answers must equal digits.v1's."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.ecosystem import ours
from tests.ecosystem.ours import (  # noqa: F401 (fixtures)
    CELLS,
    LABELS,
    VERSIONS,
    digits,
    expected,
    pngs,
    protocol_repo,
    same_predictions,
    server,
    value,
)
from tests.ecosystem.venv import readme_snippet, run_code, run_script

SIGNATURE_DEF = {
    "inputs": {
        "images": {
            "name": "serving_default_images:0",
            "dtype": "DT_UINT8",
            "tensorShape": {"dim": [{"size": "-1"}, {"size": "28"}, {"size": "28"}]},
        }
    },
    "outputs": {
        "probabilities": {
            "name": "probabilities:0",
            "dtype": "DT_FLOAT",
            "tensorShape": {"dim": [{"size": "-1"}, {"size": "10"}]},
        },
        "digit": {"name": "digit:0", "dtype": "DT_INT32", "tensorShape": {"dim": [{"size": "-1"}]}},
    },
    "methodName": "tensorflow/serving/predict",
}


@pytest.fixture(scope="module")
def seen(server, digits: np.ndarray, pngs: list[bytes]) -> dict:
    """Everything tensorflow-serving-api's stubs saw, from one run of tests/ecosystem/tfserving_client.py."""
    return run_script("tfserving_client.py", ours.payload(server.target, CELLS, digits, pngs))


@pytest.mark.parametrize("cell", CELLS)
def test_predict_by_version_equals_our_api(seen: dict, expected: dict, cell: str) -> None:
    got = value(seen["cells"][cell]["by_version"])
    assert got["model_spec"] == {"name": cell, "version": "1", "signatureName": "serving_default"}
    assert got["outputs"] == ["digit", "probabilities"]
    assert got["dtypes"] == {"probabilities": "float32", "digit": "int32"}
    assert got["packed"] == {"probabilities": True, "digit": True}, "packed in, packed out"
    same_predictions(got, expected[cell])


@pytest.mark.parametrize("cell", CELLS)
def test_predict_newest_and_typed_values(seen: dict, expected: dict, cell: str) -> None:
    newest = value(seen["cells"][cell]["newest"])
    assert newest["model_spec"]["version"] == str(VERSIONS[cell][0])
    same_predictions(newest, expected[cell])
    typed = value(seen["cells"][cell]["typed"])
    assert typed["packed"] == {"probabilities": False, "digit": False}, "typed in, typed out"
    same_predictions(typed, expected[cell])


@pytest.mark.parametrize("cell", CELLS)
def test_model_metadata_is_the_signature_predict_serves(seen: dict, cell: str) -> None:
    got = value(seen["cells"][cell]["metadata"])
    assert got["model_spec"] == {"name": cell, "version": str(VERSIONS[cell][0]), "signatureName": "serving_default"}
    assert got["signature_def"] == {"serving_default": SIGNATURE_DEF}


@pytest.mark.parametrize("cell", CELLS)
def test_model_status_uses_tf_serving_states(seen: dict, cell: str) -> None:
    def available(*versions: int) -> dict:
        return {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": {}} for v in versions]}

    assert value(seen["cells"][cell]["status"]) == available(*VERSIONS[cell])
    assert value(seen["cells"][cell]["status_v1"]) == available(1)


@pytest.mark.parametrize(("label", "version"), LABELS.items())
def test_predict_by_version_label(seen: dict, expected: dict, label: str, version: int) -> None:
    got = value(seen["by_label"][f"gru@{label}"])
    assert got["model_spec"] == {"name": "gru", "version": str(version), "signatureName": "serving_default"}
    same_predictions(got, expected["gru"])


def test_float32_pixels_equal_uint8(seen: dict, expected: dict) -> None:
    same_predictions(value(seen["float32"]), expected[CELLS[0]])


def test_encoded_png_strings_are_served_like_our_api(server, seen: dict, pngs: list[bytes]) -> None:
    ours.served_like(seen["png_strings"], ours.classify_batch(server.target, CELLS[0], ours.encoded(pngs)))


def test_output_filter(seen: dict, expected: dict) -> None:
    got = value(seen["only_digit"])
    assert got["outputs"] == ["digit"] and got["digits"] == expected[CELLS[0]]["digits"]


@pytest.mark.parametrize(
    ("case", "code", "names"),
    [
        ("unknown_model", "NOT_FOUND", "no-such-model"),
        ("unknown_version", "NOT_FOUND", "version 7"),
        ("unknown_label", "NOT_FOUND", "no-such-label"),
        ("bad_shape", "INVALID_ARGUMENT", "inputs['images'].shape"),
        ("wrong_dtype", "INVALID_ARGUMENT", "DT_INT64"),
        ("wrong_input_name", "INVALID_ARGUMENT", "'pixels'"),
        ("unknown_signature", "INVALID_ARGUMENT", "signature_name"),
        ("unknown_output", "INVALID_ARGUMENT", "output_filter[0]"),
        ("unknown_model_status", "NOT_FOUND", "no-such-model"),
        ("unknown_version_status", "NOT_FOUND", "version 7"),
        ("unknown_metadata_field", "INVALID_ARGUMENT", "metadata_field[0]"),
        ("classify", "UNIMPLEMENTED", "Classify: not supported"),
        ("regress", "UNIMPLEMENTED", "Regress: not supported"),
    ],
)
def test_errors_carry_the_right_code(seen: dict, case: str, code: str, names: str) -> None:
    ours.failed_with(seen["errors"][case], code, names)


def test_readme_tf_serving_snippet_works(server) -> None:
    printed = run_code(readme_snippet("tensorflow-serving", server.target))
    digit, probabilities = printed.split("]", 1)
    assert re.fullmatch(r"\[\d", digit.strip()), printed
    assert probabilities.count(" ") >= 9 and "[[" in probabilities, printed
