"""Security wiring: turn the settings into the gRPC port's credentials and auth guard, the
REST port's TLS context and the /metrics endpoint's TLS/basic-auth configuration. Reads every file at once, so a bad
setting fails at start (ConfigurationError) before any model is loaded.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from digits_server.core.errors import ConfigurationError
from digits_server.observability.http_endpoint import MetricsEndpointConfig
from digits_server.security.auth import Authorizer, Scope, load_tokens
from digits_server.security.auth_guard import AuthGuard
from digits_server.security.tls import ServerTLS
from digits_server.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrpcSecurity:
    """How the gRPC port is secured: TLS credentials (or none) and the auth guard."""

    credentials: grpc.ServerCredentials | None
    auth: AuthGuard
    transport: str  # "plaintext", "TLS" or "mutual TLS"

    def add_port(self, server: grpc.aio.Server, address: str) -> int:
        """Bind `address` with TLS when configured; returns the bound port."""
        try:
            if self.credentials is None:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, self.credentials)
        except RuntimeError:  # grpc's way of saying the bind failed
            raise ConfigurationError(
                f"port: cannot listen on {address}: the port is in use by another process or the address "
                "is not on this machine (choose another --port/--host, or 0 for a free port)"
            ) from None


def describe(authorizer: Authorizer) -> str:
    """One log line about who may call what."""
    if authorizer.enabled:
        tokens = authorizer.tokens
        return (
            f"token auth on: {tokens.count(Scope.INFERENCE)} token(s) with the inference scope, "
            f"{tokens.count(Scope.ADMIN)} with the admin scope"
        )
    admin = "from any client (--allow-remote-admin)" if authorizer.allow_remote_admin else "from loopback clients only"
    return (
        "no tokens configured: the server is OPEN, every client may call inference RPCs, "
        f"admin RPCs are served {admin}; see --tokens-file"
    )


def grpc_security(settings: Settings, on_reject: Callable[[str, str], None] | None = None) -> GrpcSecurity:
    """Read TLS files and tokens; log the resulting posture (a warning when the server is open)."""
    tls = ServerTLS.from_paths(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    credentials = tls.credentials() if tls is not None else None
    authorizer = Authorizer(load_tokens(settings.tokens_file), settings.allow_remote_admin)
    (log.info if authorizer.enabled else log.warning)("%s", describe(authorizer))
    transport = "plaintext" if tls is None else "mutual TLS" if tls.mutual else "TLS"
    return GrpcSecurity(credentials, AuthGuard(authorizer, on_reject), transport)


def rest_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The REST port's TLS: the gRPC port's certificate, key and client CA (None: plain HTTP)."""
    tls = ServerTLS.from_paths(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    return tls.ssl_context() if tls is not None else None


def metrics_endpoint(settings: Settings) -> MetricsEndpointConfig:
    """Where and how /metrics is served; its TLS files are checked now."""
    config = MetricsEndpointConfig(
        settings.metrics_host,
        settings.metrics_port,
        settings.metrics_tls_cert,
        settings.metrics_tls_key,
        settings.metrics_auth_file,
        settings.metrics_tls_client_ca,
    )
    config.ssl_context()
    return config
