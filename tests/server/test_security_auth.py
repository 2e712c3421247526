"""The transport-free security decisions: method scopes, token matching, token sources, peers,
the model trust boundary and the TLS/metrics settings checks."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest

from digits_server.core.errors import ConfigurationError, PermissionDenied, Unauthenticated
from digits_server.core.model_trust import UntrustedModelFolder, guard_loader, writable_by_others
from digits_server.observability.http_endpoint import BasicAuth, MetricsEndpointConfig
from digits_server.security.auth import (
    TOKEN_ENV,
    Authorizer,
    Scope,
    TokenTable,
    bearer_token,
    is_loopback_peer,
    load_tokens,
    required_scope,
)
from digits_server.security.tls import ServerTLS

INFER = "i" * 8 + "nference-token-1"
ADMIN = "a" * 8 + "dmin-token-00001"
LOCAL, REMOTE = "ipv4:127.0.0.1:5000", "ipv4:192.0.2.7:5000"


@pytest.mark.parametrize(
    "method, scope",
    [
        ("/digits.v1.DigitClassifier/Classify", Scope.INFERENCE),
        ("/digits.v1.DigitClassifier/ClassifyStream", Scope.INFERENCE),
        ("/digits.v1.DigitClassifier/Feedback", Scope.INFERENCE),
        ("/digits.v1.DigitClassifier/GetExperimentReport", Scope.INFERENCE),
        ("/digits.v1.DigitsAdmin/ReloadModels", Scope.ADMIN),
        ("/digits.v1.DigitsAdmin/CreateExperiment", Scope.ADMIN),
        ("/inference.GRPCInferenceService/ModelInfer", Scope.INFERENCE),
        ("/inference.GRPCInferenceService/RepositoryIndex", Scope.INFERENCE),
        ("/inference.GRPCInferenceService/RepositoryModelLoad", Scope.ADMIN),
        ("/inference.GRPCInferenceService/RepositoryModelUnload", Scope.ADMIN),
        ("/tensorflow.serving.PredictionService/Predict", Scope.INFERENCE),
        ("/tensorflow.serving.ModelService/GetModelStatus", Scope.INFERENCE),
        ("/tensorflow.serving.ModelService/HandleReloadConfigRequest", Scope.ADMIN),
        ("/some.future.Service/DoSomething", Scope.ADMIN),  # unknown: fail closed
        ("/grpc.health.v1.Health/Check", None),
        ("/grpc.health.v1.Health/Watch", None),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None),
        ("/inference.GRPCInferenceService/ServerLive", None),
    ],
)
def test_every_method_needs_its_documented_scope(method: str, scope: Scope | None) -> None:
    assert required_scope(method) is scope


def test_tokens_match_exactly_and_admin_implies_inference() -> None:
    table = TokenTable({Scope.INFERENCE: [INFER], Scope.ADMIN: [ADMIN]})
    assert table.scopes_of(INFER) == {Scope.INFERENCE}
    assert table.scopes_of(ADMIN) == {Scope.INFERENCE, Scope.ADMIN}
    assert table.scopes_of(INFER[:-1]) == frozenset()
    assert table.scopes_of(INFER + "x") == frozenset()
    assert table.scopes_of("") == frozenset()
    assert (table.count(Scope.INFERENCE), table.count(Scope.ADMIN)) == (2, 1)


def test_tokens_are_compared_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    import digits_server.security.auth as auth

    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    table = TokenTable({Scope.INFERENCE: [INFER], Scope.ADMIN: [ADMIN]})
    table.scopes_of(INFER)
    # Every configured token is compared (no early exit), always on equal-length digests.
    assert len(calls) == 2 and all(len(a) == len(b) == 32 for a, b in calls)


def test_short_tokens_are_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        TokenTable({Scope.ADMIN: ["hunter2"]})


def test_token_file_and_environment_are_both_read(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n\ninference {INFER}\nadmin   {ADMIN}\n")
    path.chmod(0o600)
    extra = "e" * 20
    table = load_tokens(path, {TOKEN_ENV[Scope.INFERENCE]: f" {extra} ,", TOKEN_ENV[Scope.ADMIN]: ""})
    assert table.scopes_of(INFER) == {Scope.INFERENCE}
    assert Scope.ADMIN in table.scopes_of(ADMIN)
    assert table.scopes_of(extra) == {Scope.INFERENCE}
    assert len(load_tokens(None, {})) == 0


@pytest.mark.parametrize("line", ["root " + INFER, INFER, "admin a b"])
def test_malformed_token_file_names_the_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"inference {INFER}\n{line}\n")
    with pytest.raises(ConfigurationError, match="line 2"):
        load_tokens(path, {})


def test_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tokens_file: cannot read"):
        load_tokens(tmp_path / "absent", {})


def test_token_file_readable_by_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin {ADMIN}\n")
    path.chmod(0o644)
    load_tokens(path, {})
    assert "chmod 600" in caplog.text


@pytest.mark.parametrize(
    "peer, local",
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.3.4.5:1", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/digits.sock", True),
        ("ipv4:192.0.2.7:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
        ("ipv6:[::ffff:192.0.2.7]:5000", False),
        ("", False),
        ("garbage", False),
        ("ipv4:not-an-ip:1", False),
    ],
)
def test_loopback_peers_are_recognised(peer: str, local: bool) -> None:
    assert is_loopback_peer(peer) is local


@pytest.mark.parametrize(
    "header, token",
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None), (None, None)],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_authorizer_with_tokens() -> None:
    authorizer = Authorizer(TokenTable({Scope.INFERENCE: [INFER], Scope.ADMIN: [ADMIN]}))
    classify, reload = "/digits.v1.DigitClassifier/Classify", "/digits.v1.DigitsAdmin/ReloadModels"
    authorizer.check(classify, f"Bearer {INFER}", REMOTE)
    authorizer.check(classify, f"Bearer {ADMIN}", REMOTE)
    authorizer.check(reload, f"Bearer {ADMIN}", REMOTE)
    authorizer.check("/grpc.health.v1.Health/Check", None, REMOTE)
    with pytest.raises(Unauthenticated, match="missing credentials"):
        authorizer.check(classify, None, LOCAL)
    with pytest.raises(Unauthenticated, match="matches no configured token"):
        authorizer.check(classify, "Bearer " + "x" * 20, LOCAL)
    with pytest.raises(Unauthenticated):
        authorizer.check(classify, INFER, LOCAL)  # no "Bearer " scheme
    with pytest.raises(PermissionDenied, match="needs the admin scope"):
        authorizer.check(reload, f"Bearer {INFER}", LOCAL)
    assert not authorizer.depends_on_peer(reload)


def test_open_server_serves_admin_calls_only_to_loopback() -> None:
    open_server = Authorizer(TokenTable())
    reload = "/digits.v1.DigitsAdmin/ReloadModels"
    open_server.check("/digits.v1.DigitClassifier/Classify", None, REMOTE)
    open_server.check(reload, None, LOCAL)
    assert open_server.depends_on_peer(reload) and not open_server.depends_on_peer("/grpc.health.v1.Health/Check")
    with pytest.raises(PermissionDenied, match="--allow-remote-admin"):
        open_server.check(reload, None, REMOTE)
    Authorizer(TokenTable(), allow_remote_admin=True).check(reload, None, REMOTE)


def make_version(root: Path, mode: int = 0o755) -> Path:
    version = root / "lstm" / "3"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "variables" / "variables.index").write_bytes(b"index")
    for path in (root, root / "lstm", version, version / "variables"):
        path.chmod(mode)
    return version


def test_group_and_world_writable_model_folders_are_found(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version = make_version(root)
    assert writable_by_others(version, root) == []
    (version / "variables" / "variables.index").chmod(0o646)
    assert writable_by_others(version, root) == [version / "variables" / "variables.index"]
    (version / "variables" / "variables.index").chmod(0o664)  # group-writable: other users too
    assert writable_by_others(version, root) == [version / "variables" / "variables.index"]
    (version / "variables" / "variables.index").chmod(0o644)
    (root / "lstm").chmod(0o775)
    assert writable_by_others(version, root) == [root / "lstm"]
    root.chmod(0o777)  # anyone could drop a new version here
    assert root in writable_by_others(version, root)
    assert tmp_path not in writable_by_others(version, root)  # above the repository: not our business


@pytest.mark.parametrize("mode", [0o666, 0o664])
def test_guarded_loader_refuses_unless_allowed(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "models"
    version = make_version(root)
    (version / "saved_model.pb").chmod(mode)
    loaded = []
    load = lambda name, number, path: loaded.append((name, number)) or "model"  # noqa: E731
    with pytest.raises(UntrustedModelFolder, match="writable by other users.*saved_model.pb.*--allow-world-writable"):
        guard_loader(load, root)("lstm", 3, version)
    assert loaded == []
    assert guard_loader(load, root, allow_world_writable=True)("lstm", 3, version) == "model"
    (version / "saved_model.pb").chmod(0o644)
    assert guard_loader(load, root)("lstm", 3, version) == "model"


def refused_in_thread(guarded, version: Path) -> BaseException | None:
    """Run the guarded loader in a thread (an open() of a FIFO would block it for good); its error."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            guarded("lstm", 3, version)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert outcome, "the guard blocked on a special file instead of refusing it"
    return outcome[0]


def test_a_fifo_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version = make_version(root)
    os.mkfifo(version / "variables" / "variables.data-00000-of-00001", 0o600)
    loaded = []
    error = refused_in_thread(guard_loader(lambda *a: loaded.append(a), root), version)
    assert isinstance(error, UntrustedModelFolder) and "not a regular file" in str(error), error
    assert "variables.data-00000-of-00001" in str(error) and loaded == []
    # the guard's verdict does not depend on the permission check: allowed or not, a FIFO is refused
    error = refused_in_thread(guard_loader(lambda *a: loaded.append(a), root, allow_world_writable=True), version)
    assert isinstance(error, UntrustedModelFolder) and loaded == []


def test_a_symlink_inside_a_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version = make_version(root)
    elsewhere = tmp_path / "elsewhere.pb"
    elsewhere.write_bytes(b"graph")
    elsewhere.chmod(0o666)  # a writable file outside the checked folders, reached through a link
    (version / "saved_model.pb").unlink()
    (version / "saved_model.pb").symlink_to(elsewhere)
    with pytest.raises(UntrustedModelFolder, match="not a regular file or folder.*saved_model.pb"):
        guard_loader(lambda *a: "model", root, allow_world_writable=True)("lstm", 3, version)


def test_tls_settings_must_come_in_pairs(tmp_path: Path) -> None:
    assert ServerTLS.from_paths(None, None, None) is None
    with pytest.raises(ConfigurationError, match="tls_key"):
        ServerTLS.from_paths(tmp_path / "c", None, None)
    with pytest.raises(ConfigurationError, match="tls_client_ca"):
        ServerTLS.from_paths(None, None, tmp_path / "ca")
    assert ServerTLS.from_paths(tmp_path / "c", tmp_path / "k", tmp_path / "ca").mutual


def test_tls_files_that_are_not_pem_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("not a certificate")
    (tmp_path / "k").write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match="tls_cert: .* is not a PEM file"):
        ServerTLS(tmp_path / "c", tmp_path / "k").credentials()
    with pytest.raises(ConfigurationError, match="tls_client_ca: cannot read"):
        ServerTLS(tmp_path / "k", tmp_path / "k", tmp_path / "absent").credentials()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_metrics_basic_auth(tmp_path: Path) -> None:
    path = tmp_path / "metrics-users"
    path.write_text("# scrapers\nprometheus:s3cret:with:colons\nother:pw\n")
    auth = BasicAuth.from_file(path)
    assert auth.allows(basic("prometheus", "s3cret:with:colons"))
    assert auth.allows(basic("other", "pw"))
    for header in (basic("prometheus", "s3cret"), basic("nobody", "pw"), "Basic !!!", "Bearer x", "", None):
        assert not auth.allows(header)


@pytest.mark.parametrize("content, message", [("", "no 'user:password'"), ("justuser\n", "line 1"), (":pw\n", "line 1")])
def test_metrics_auth_file_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "metrics-users"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        BasicAuth.from_file(path)


def test_metrics_tls_needs_both_files(tmp_path: Path) -> None:
    assert MetricsEndpointConfig("127.0.0.1", 0).ssl_context() is None
    with pytest.raises(ConfigurationError, match="both --metrics-tls-cert and --metrics-tls-key"):
        MetricsEndpointConfig("127.0.0.1", 0, tls_cert=tmp_path / "c").ssl_context()


def test_no_token_value_can_be_given_as_a_flag() -> None:
    from digits_server.settings import build_parser

    flags = " ".join(build_parser().format_help().split())
    assert "--tokens-file" in flags
    assert "--token " not in flags and "--admin-token" not in flags and "--inference-token" not in flags
    assert os.environ.get(TOKEN_ENV[Scope.ADMIN]) is None  # the tests never leak tokens into the environment


def test_read_through_reads_every_file_and_refuses_special_ones(tmp_path: Path) -> None:
    from digits_server.core.model_trust import read_through

    root = tmp_path / "models"
    version = make_version(root)
    assert read_through(version) == len(b"graph") + len(b"index")
    os.mkfifo(version / "variables" / "variables.data-00000-of-00001")
    # no writer: opened without blocking and refused by its type before any read
    with pytest.raises(UntrustedModelFolder, match="is not a regular file"):
        read_through(version)

