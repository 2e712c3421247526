"""The ``digits`` CLI: argument parsing, output formats and exit codes, against the fake server."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from digits import cli
from digits.cli.common import Connection, UsageError, connection

ENV_VARS = ("DIGITS_TARGET", "DIGITS_TIMEOUT", "DIGITS_TOKEN", "DIGITS_TOKEN_FILE",
            "DIGITS_TLS_CA", "DIGITS_TLS_CERT", "DIGITS_TLS_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def digits_set(labels: list[int], predictions: list[int]) -> dict[str, np.ndarray]:
    """x_test whose fake prediction (first pixel % 10) is ``predictions``; y_test = labels."""
    x = np.zeros((len(labels), 28, 28), np.uint8)
    x[:, 0, 0] = predictions
    return {"x_test": x, "y_test": np.asarray(labels, np.uint8),
            "x_train": x[:1], "y_train": np.asarray(labels[:1], np.uint8)}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- parsing --------------------------------------------------------------------------
def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_global_flags_before_or_after_subcommand():
    assert connection(parse("--target", "a:1", "models")).target == "a:1"
    assert connection(parse("models", "--target", "b:2")).target == "b:2"
    assert connection(parse("--target", "a:1", "models", "--target", "b:2")).target == "b:2"
    assert connection(parse("--timeout", "3", "models")).timeout == 3.0
    assert connection(parse("models", "--timeout", "0.5")).timeout == 0.5


def test_defaults_and_environment(monkeypatch, tmp_path):
    assert connection(parse("models")) == Connection("localhost:50051", 10.0, None, None, None, None)
    monkeypatch.setenv("DIGITS_TARGET", "env:9")
    monkeypatch.setenv("DIGITS_TIMEOUT", "2.5")
    monkeypatch.setenv("DIGITS_TOKEN", " tok-env ")
    resolved = connection(parse("models"))
    assert (resolved.target, resolved.timeout, resolved.token) == ("env:9", 2.5, "tok-env")
    (tmp_path / "token").write_text("tok-file\n")
    assert connection(parse("models", "--token-file", str(tmp_path / "token"))).token == "tok-file"
    assert connection(parse("--target", "flag:1", "models")).target == "flag:1"
    monkeypatch.setenv("DIGITS_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="DIGITS_TIMEOUT"):
        connection(parse("models"))


def test_token_file_problems_are_usage_errors(tmp_path, capsys):
    (tmp_path / "empty").write_text("\n")
    code, _, err = run(capsys, "models", "--token-file", str(tmp_path / "empty"))
    assert code == 2 and "empty" in err
    code, _, err = run(capsys, "models", "--token-file", str(tmp_path / "missing"))
    assert code == 2 and err.startswith("error: cannot read token file")


def test_tls_flags_validated(tmp_path, capsys):
    code, _, err = run(capsys, "models", "--tls-cert", str(tmp_path / "c.pem"))
    assert code == 2 and "together" in err
    code, _, err = run(capsys, "models", "--tls-ca", str(tmp_path / "nope.pem"))
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["classify"], ["eval"], ["models", "--token", "x"], ["frobnicate"], ["eval", "--data", "d.npz", "--limit", "0"],
     ["feedback", "r", "10"], ["feedback", "r", "1", "--index", "-1"], ["eval", "--data", "x", "--concurrency", "x"],
     ["models", "--timeout", "-1"]],
)
def test_usage_errors_exit_2(argv, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "usage:" in err


def test_help_and_version_exit_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "classify" in out and "eval" in out and "--token-file" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("digits ")
    for command in ("classify", "eval", "models", "feedback", "reload"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "--target" in out


# -- classify -------------------------------------------------------------------------
def test_classify_npy_human_output(fake_server, servicer, tmp_path, capsys):
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = 6
    np.save(tmp_path / "six.npy", image)
    code, out, err = run(capsys, "classify", str(tmp_path / "six.npy"), "--model", "lstm:3",
                         "--target", fake_server.target)
    assert code == 0, err
    assert re.fullmatch(re.escape(f"{tmp_path / 'six.npy'}: 6 (0.910) lstm:3 request ") + r"srv-\S+\n", out)
    (request,) = servicer.requests("Classify")
    assert request.image.pixels == image.tobytes() and request.model_spec.version == 3


def test_classify_json_is_one_document(fake_server, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.full((28, 28), 2, np.uint8))
    np.save(tmp_path / "b.npy", np.full((28, 28), 13, np.uint8))
    code, out, _ = run(capsys, "--target", fake_server.target, "classify", "--json",
                       str(tmp_path / "a.npy"), str(tmp_path / "b.npy"))
    assert code == 0
    document = json.loads(out)
    assert [r["digit"] for r in document["results"]] == [2, 3]
    first = document["results"][0]
    assert first["model"] == "lstm" and first["version"] == 7 and first["index"] is None
    assert first["confidence"] == pytest.approx(0.91) and len(first["probabilities"]) == 10
    assert first["request_id"].startswith("srv-") and document["datasets"] == []


def test_classify_image_file_sent_encoded(fake_server, servicer, tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    canvas = pil.new("L", (120, 120), 255)
    canvas.paste(0, (50, 20, 70, 100))  # a dark vertical bar: a "1" on white
    canvas.save(tmp_path / "one.png")
    code, out, err = run(capsys, "classify", str(tmp_path / "one.png"), "--show", "--target", fake_server.target)
    assert code == 0, err
    (request,) = servicer.requests("Classify")
    assert request.image.encoded == (tmp_path / "one.png").read_bytes()
    art = out.splitlines()[:28]
    assert len(art) == 28 and any("@" in line for line in art)  # ink is drawn
    ink_columns = {i for line in art for i, ch in enumerate(line) if ch != " "}
    assert min(ink_columns) > 10 and max(ink_columns) < 46  # a narrow centred bar
    assert out.splitlines()[-1].startswith(f"{tmp_path / 'one.png'}: ")


def test_classify_broken_image_is_usage_error(fake_server, servicer, tmp_path, capsys):
    pytest.importorskip("PIL")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, out, err = run(capsys, "classify", str(tmp_path / "broken.png"), "--target", fake_server.target)
    assert code == 2 and out == "" and err.startswith("error: ") and "broken.png" in err
    assert servicer.calls == []


def test_classify_missing_file_and_bad_npy(fake_server, servicer, tmp_path, capsys):
    code, _, err = run(capsys, "classify", str(tmp_path / "nope.npy"), "--target", fake_server.target)
    assert code == 2 and "no such file" in err
    np.save(tmp_path / "wide.npy", np.zeros((28, 30), np.uint8))
    code, _, err = run(capsys, "classify", str(tmp_path / "wide.npy"), "--target", fake_server.target)
    assert code == 2 and "784" in err and "Traceback" not in err
    code, _, err = run(capsys, "classify", str(tmp_path / "wide.npy"), "--model", "lstm:v2")
    assert code == 2 and "--model" in err
    assert servicer.calls == []


def test_classify_npz_in_chunks_with_accuracy(fake_server, servicer, tmp_path, capsys):
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    predictions = [0, 1, 2, 3, 4, 5, 6, 7, 9, 9]  # one mistake: 8 -> 9
    np.savez(tmp_path / "set.npz", **digits_set(labels, predictions))
    code, out, err = run(capsys, "classify", str(tmp_path / "set.npz"), "--batch-size", "4",
                         "--model", "gru", "--target", fake_server.target)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 11
    assert lines[8] == f"{tmp_path / 'set.npz'}[8]: 9 (0.910) gru:7 (true 8, wrong)"
    assert lines[-1] == f"{tmp_path / 'set.npz'}: 9/10 correct, accuracy 0.9000 (gru:7)"
    batches = servicer.requests("ClassifyBatch")
    assert [len(b.images) for b in batches] == [4, 4, 2]
    assert [list(b.true_labels) for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    code, out, _ = run(capsys, "classify", str(tmp_path / "set.npz"), "-q", "--target", fake_server.target)
    assert out.splitlines() == [f"{tmp_path / 'set.npz'}: 9/10 correct, accuracy 0.9000 (lstm:7)"]


def test_classify_npz_json_and_unlabelled(fake_server, tmp_path, capsys):
    data = digits_set([1, 2, 3], [1, 2, 2])
    del data["y_test"]
    np.savez(tmp_path / "nolabels.npz", **data)
    code, out, _ = run(capsys, "classify", str(tmp_path / "nolabels.npz"), "--json", "--target", fake_server.target)
    document = json.loads(out)
    assert code == 0 and [r["digit"] for r in document["results"]] == [1, 2, 2]
    assert [r["index"] for r in document["results"]] == [0, 1, 2]
    assert document["datasets"] == [{"file": str(tmp_path / "nolabels.npz"), "n": 3, "correct": None,
                                     "accuracy": None, "served": {"lstm:7": 3}}]


def test_classify_npz_without_x_test(tmp_path, capsys):
    np.savez(tmp_path / "odd.npz", images=np.zeros((2, 28, 28), np.uint8))
    code, _, err = run(capsys, "classify", str(tmp_path / "odd.npz"))
    assert code == 2 and "x_test" in err


# -- eval -----------------------------------------------------------------------------
def test_eval_json_accuracy_is_exact(fake_server, servicer, tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 97).tolist()
    predictions = [l if rng.random() < 0.7 else (l + 1) % 10 for l in labels]
    np.savez(tmp_path / "test.npz", **digits_set(labels, predictions))
    code, out, err = run(capsys, "eval", "--data", str(tmp_path / "test.npz"), "--model", "gru:2",
                         "--json", "--concurrency", "5", "--target", fake_server.target)
    assert code == 0, err
    report = json.loads(out)
    correct = sum(p == l for p, l in zip(predictions, labels))
    assert report["n"] == 97 and report["correct"] == correct
    assert report["accuracy"] == correct / 97  # exact, not approximately
    assert (report["model"], report["version"]) == ("gru", 2)
    for d in range(10):
        total = labels.count(d)
        right = sum(1 for p, l in zip(predictions, labels) if l == d and p == d)
        assert report["per_class_accuracy"][d] == (right / total if total else None)
    assert set(report["latency_ms"]) >= {"p50", "p90", "p99", "mean"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p90"] <= report["latency_ms"]["p99"]
    assert sum(map(sum, report["confusion"])) == 97
    requests = servicer.requests("Classify")
    assert len(requests) == 97 and all(r.HasField("true_label") for r in requests)
    assert sorted((r.image.pixels[0], r.true_label) for r in requests) == sorted(zip(predictions, labels))
    assert {r.model_spec.name for r in requests} == {"gru"}


def test_eval_human_output_and_limit(fake_server, servicer, tmp_path, capsys):
    np.savez(tmp_path / "t.npz", **digits_set([3, 3, 5, 5, 7], [3, 8, 5, 5, 7]))
    code, out, _ = run(capsys, "--target", fake_server.target, "eval", "--data", str(tmp_path / "t.npz"),
                       "--limit", "4")
    assert code == 0
    assert out.splitlines()[0] == f"lstm:7 on {tmp_path / 't.npz'}: 4 digits, accuracy 0.750000 (3/4)"
    assert "3->8 x1" in out and "p50" in out and "p99" in out
    assert len(servicer.requests("Classify")) == 4


def test_eval_needs_labels(tmp_path, capsys):
    data = digits_set([1], [1])
    del data["y_test"]
    np.savez(tmp_path / "u.npz", **data)
    code, _, err = run(capsys, "eval", "--data", str(tmp_path / "u.npz"))
    assert code == 2 and "y_test" in err


def test_eval_server_error_exit_1(fake_server, servicer, tmp_path, capsys):
    import grpc

    servicer.abort = (grpc.StatusCode.NOT_FOUND, "unknown model 'cnn'; known: gru, lstm, rnn")
    np.savez(tmp_path / "t.npz", **digits_set([1, 2], [1, 2]))
    code, out, err = run(capsys, "eval", "--data", str(tmp_path / "t.npz"), "--model", "cnn",
                         "--target", fake_server.target)
    assert (code, out) == (1, "")
    assert err == "error: NOT_FOUND: unknown model 'cnn'; known: gru, lstm, rnn\n"


# -- models, feedback, reload ---------------------------------------------------------
def test_models_table(fake_server, capsys):
    code, out, _ = run(capsys, "models", "--target", fake_server.target)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "STATE", "LABELS", "TEST", "ACC", "ECE", "CELL", "RECIPE",
                                "PARAMS", "RUNTIME", "REFERENCE"]
    assert lines[1].split() == ["lstm*", "3", "AVAILABLE", "stable,canary", "0.9812", "0.0123", "lstm", "tuned",
                                "24,586", "savedmodel", "-"]
    assert lines[2].split()[:3] == ["lstm*", "2", "FAILED"]
    assert lines[3].strip() == "error: no serving signature"
    assert lines[4].split()[:3] == ["gru", "1", "AVAILABLE"]
    assert lines[-1].startswith("* default model")


def test_models_json_and_single(fake_server, servicer, capsys):
    code, out, _ = run(capsys, "models", "--json", "--target", fake_server.target)
    document = json.loads(out)
    assert code == 0 and [m["name"] for m in document["models"]] == ["lstm", "gru"]
    assert document["models"][0]["is_default"] is True
    assert document["models"][0]["versions"][0]["state"] == "AVAILABLE"
    assert document["models"][0]["versions"][0]["labels"] == ["stable", "canary"]
    code, out, _ = run(capsys, "models", "gru", "--json", "--target", fake_server.target)
    assert [m["name"] for m in json.loads(out)["models"]] == ["gru"]
    code, _, err = run(capsys, "models", "cnn", "--target", fake_server.target)
    assert code == 1 and err.startswith("error: NOT_FOUND: unknown model 'cnn'")


def test_feedback_and_reload(fake_server, servicer, capsys, tmp_path):
    (tmp_path / "token").write_text("admin-token")
    code, out, _ = run(capsys, "feedback", "req-9", "4", "--target", fake_server.target)
    assert code == 0 and out == "correct: lstm:3 predicted 4, true digit 4\n"
    code, out, _ = run(capsys, "feedback", "req-9", "7", "--index", "2", "--json", "--target", fake_server.target)
    document = json.loads(out)
    assert code == 0 and document["correct"] is False and document["predicted"] == 4
    request = servicer.requests("Feedback")[1]
    assert (request.request_id, request.true_label, request.index) == ("req-9", 7, 2)
    code, out, _ = run(capsys, "reload", "--token-file", str(tmp_path / "token"), "--target", fake_server.target)
    assert code == 0 and "lstm*" in out and len(servicer.requests("ReloadModels")) == 1
    assert servicer.metadata[-1]["authorization"] == "Bearer admin-token"


def test_token_from_environment_reaches_server(fake_server, servicer, monkeypatch, capsys):
    monkeypatch.setenv("DIGITS_TOKEN", "env-token")
    monkeypatch.setenv("DIGITS_TARGET", fake_server.target)
    code, _, _ = run(capsys, "models")
    assert code == 0 and servicer.metadata[0]["authorization"] == "Bearer env-token"


def test_unreachable_server_exit_1(free_port_target, capsys):
    code, out, err = run(capsys, "models", "--target", free_port_target, "--timeout", "3")
    assert (code, out) == (1, "")
    assert err.startswith("error: UNAVAILABLE: ") and "Traceback" not in err


def test_console_entry_point_exit_codes(free_port_target):
    """The real process: exit status and stderr as a shell user sees them."""
    done = subprocess.run([sys.executable, "-m", "digits.cli", "models", "--target", free_port_target,
                           "--timeout", "3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("error: UNAVAILABLE: ")
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "digits.cli", "bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2


def test_commands_registered_by_modules():
    parser = cli.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == {"classify", "eval", "models", "reload", "monitor", "feedback", "ab", "bench"}
    for module in cli.COMMANDS:
        assert callable(module.add_parser)
