"""Who may call what: bearer tokens with two scopes, and the method -> scope policy.

Transport-free: the gRPC auth guard (`auth_guard.py`) hands in the full method name
(`/package.Service/Method`), the `authorization` metadata value and the peer address, and
gets back nothing (allowed) or an `Unauthenticated` / `PermissionDenied` error.

Scopes: `inference` (classify, feedback, read-only calls) and `admin` (every call that changes
the server). An admin token also carries the inference scope. Health checks and reflection
are always open. Unknown methods need the admin scope (fail closed).

Tokens come from a file (`<scope> <token>` per line) and/or the environment variables
`DIGITS_SERVER_INFERENCE_TOKENS` / `DIGITS_SERVER_ADMIN_TOKENS` (comma-separated), never
from a command-line flag, which `ps` would show to every user of the machine.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from digits_server.core.errors import ConfigurationError, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


class Scope(enum.Enum):
    """What a token allows."""

    INFERENCE = "inference"
    ADMIN = "admin"


TOKEN_ENV = {Scope.INFERENCE: "DIGITS_SERVER_INFERENCE_TOKENS", Scope.ADMIN: "DIGITS_SERVER_ADMIN_TOKENS"}

# Services every client may call, authenticated or not.
OPEN_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
# Liveness/readiness probes of the Open Inference Protocol v2 are health checks too.
OPEN_METHODS = frozenset({"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"})
# Services whose every method is an inference or read-only call.
INFERENCE_SERVICES = frozenset({"digits.v1.DigitClassifier", "tensorflow.serving.PredictionService"})
# Inference or read-only methods of services that also have admin methods.
INFERENCE_METHODS = frozenset(
    "/inference.GRPCInferenceService/" + m
    for m in (
        "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer", "ModelStreamInfer",
        "ModelConfig", "ModelStatistics", "RepositoryIndex",
    )
) | {"/tensorflow.serving.ModelService/GetModelStatus"}


def required_scope(method: str) -> Scope | None:
    """The scope a full method name (`/pkg.Service/Method`) needs; None when it is open to all."""
    service = method.lstrip("/").split("/", 1)[0]
    if service in OPEN_SERVICES or method in OPEN_METHODS:
        return None
    if service in INFERENCE_SERVICES or method in INFERENCE_METHODS:
        return Scope.INFERENCE
    return Scope.ADMIN  # DigitsAdmin, v2 repository load/unload, anything unknown


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """Configured tokens and their scopes; lookups compare in constant time."""

    def __init__(self, tokens: Mapping[Scope, Iterable[str]] | None = None) -> None:
        self._entries: list[tuple[bytes, frozenset[Scope]]] = []
        for scope, values in (tokens or {}).items():
            for token in values:
                if len(token) < MIN_TOKEN_LENGTH:
                    raise ConfigurationError(
                        f"{scope.value} token: shorter than {MIN_TOKEN_LENGTH} characters; "
                        "use a random one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                    )
                granted = frozenset(Scope) if scope is Scope.ADMIN else frozenset({scope})
                self._entries.append((_digest(token), granted))

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, scope: Scope) -> int:
        """How many configured tokens carry a scope."""
        return sum(1 for _, scopes in self._entries if scope in scopes)

    def scopes_of(self, token: str) -> frozenset[Scope]:
        """The scopes a presented token carries (empty when it matches none).

        Every configured token is compared, each with `hmac.compare_digest` on SHA-256
        digests, so the time taken reveals neither a token's length nor which one matched.
        """
        presented = _digest(token)
        granted: frozenset[Scope] = frozenset()
        for digest, scopes in self._entries:
            if hmac.compare_digest(presented, digest):
                granted = granted | scopes
        return granted


def read_token_file(path: Path) -> dict[Scope, list[str]]:
    """Parse a token file: `<scope> <token>` per line, `#` comments and blank lines ignored."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"tokens_file: cannot read {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("tokens file %s is accessible by other users (mode %o); chmod 600 it", path, mode & 0o777)
    tokens: dict[Scope, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        scopes = {s.value: s for s in Scope}
        if len(parts) != 2 or parts[0] not in scopes:
            raise ConfigurationError(
                f"tokens_file: {path} line {number}: expected '<scope> <token>' with scope inference or admin"
            )
        tokens.setdefault(scopes[parts[0]], []).append(parts[1])
    return tokens


def load_tokens(tokens_file: Path | None, environ: Mapping[str, str] | None = None) -> TokenTable:
    """Tokens from the file (if any) plus the DIGITS_SERVER_*_TOKENS environment variables."""
    env = os.environ if environ is None else environ
    tokens: dict[Scope, list[str]] = read_token_file(tokens_file) if tokens_file is not None else {}
    for scope, name in TOKEN_ENV.items():
        for token in env.get(name, "").split(","):
            if token.strip():
                tokens.setdefault(scope, []).append(token.strip())
    return TokenTable(tokens)


def is_loopback_peer(peer: str) -> bool:
    """Whether a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:...`) is local."""
    kind, _, rest = peer.partition(":")
    if kind in ("unix", "unix-abstract"):
        return True
    if kind == "ipv6":
        host = rest.rpartition("]")[0].lstrip("[")
    elif kind == "ipv4":
        host = rest.rpartition(":")[0]
    else:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `authorization: Bearer <token>` value; None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Authorizer:
    """Decides each call: open methods pass; otherwise the token must carry the method's scope.

    With no tokens configured every call is allowed, except admin calls from non-loopback
    peers (unless `allow_remote_admin`).
    """

    tokens: TokenTable
    allow_remote_admin: bool = False

    @property
    def enabled(self) -> bool:
        """Whether tokens are configured (otherwise the server runs open)."""
        return len(self.tokens) > 0

    def depends_on_peer(self, method: str) -> bool:
        """Whether the decision for `method` needs the peer address (the no-token loopback rule)."""
        return not self.enabled and not self.allow_remote_admin and required_scope(method) is Scope.ADMIN

    def check(self, method: str, authorization: str | None, peer: str) -> None:
        """Raise Unauthenticated or PermissionDenied unless the call may proceed."""
        scope = required_scope(method)
        if scope is None:
            return
        if not self.enabled:
            if scope is Scope.ADMIN and not self.allow_remote_admin and not is_loopback_peer(peer):
                raise PermissionDenied(
                    f"{method}: admin calls are served only to loopback clients when no tokens are "
                    "configured (configure admin tokens, or start the server with --allow-remote-admin)"
                )
            return
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated(f"{method}: missing credentials; send metadata 'authorization: Bearer <token>'")
        granted = self.tokens.scopes_of(token)
        if not granted:
            raise Unauthenticated(f"{method}: the bearer token matches no configured token")
        if scope not in granted:
            have = ", ".join(sorted(s.value for s in granted))
            raise PermissionDenied(f"{method}: needs the {scope.value} scope; this token has: {have}")
