"""The /metrics HTTP endpoint: prometheus_client's WSGI app, optionally behind TLS and HTTP
basic auth, on the interface the settings choose. Prometheus supports both in its scrape
config (`scheme: https`, `tls_config`, `basic_auth`); see server/monitoring/.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from digits_server.core.errors import ConfigurationError
from digits_server.core.ssl_contexts import server_ssl_context

log = logging.getLogger(__name__)

REALM = "digits metrics"
WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class BasicAuth:
    """`user:password` pairs; every check compares against all of them in constant time."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._digests = [_digest(f"{user}:{password}") for user, password in pairs]
        if not self._digests:
            raise ConfigurationError("metrics_auth_file: no 'user:password' line")

    @classmethod
    def from_file(cls, path: Path) -> "BasicAuth":
        """Read `user:password` lines (`#` comments and blank lines ignored)."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"metrics_auth_file: cannot read {path}: {exc.strerror or exc}") from None
        pairs = []
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user or not password:
                raise ConfigurationError(f"metrics_auth_file: {path} line {number}: expected 'user:password'")
            pairs.append((user, password))
        return cls(pairs)

    def allows(self, authorization: str | None) -> bool:
        """Whether an HTTP `Authorization: Basic ...` header carries a configured pair."""
        scheme, _, encoded = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            presented = _digest(base64.b64decode(encoded.strip(), validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            return False
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """The WSGI app, answering 401 to requests without valid credentials."""

        def protected(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self.allows(environ.get("HTTP_AUTHORIZATION")):
                return app(environ, start_response)
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", f'Basic realm="{REALM}"'), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"401: /metrics needs HTTP basic auth\n"]

        return protected


@dataclass(frozen=True)
class MetricsEndpointConfig:
    """Where and how /metrics is served."""

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_file: Path | None = None
    tls_client_ca: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context, or None for plain HTTP."""
        if self.tls_cert is None and self.tls_key is None:
            if self.tls_client_ca is not None:
                raise ConfigurationError("metrics_tls_client_ca: needs --metrics-tls-cert and --metrics-tls-key as well")
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ConfigurationError("metrics_tls_cert: HTTPS on /metrics needs both --metrics-tls-cert and --metrics-tls-key")
        return server_ssl_context(self.tls_cert, self.tls_key, self.tls_client_ca, "metrics_tls")


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # seconds a connection may sit idle (a stalled client frees its thread)

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs stay off."""


def _server_class(host: str, port: int) -> tuple[type[WSGIServer], str]:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class MetricsServer(ThreadingWSGIServer):
        address_family = family

        def handle_error(self, request: Any, client_address: Any) -> None:
            # A client that fails the TLS handshake or hangs up is not the server's problem.
            log.debug("metrics request from %s failed", client_address, exc_info=True)

    return MetricsServer, sockaddr[0]


def serve_metrics_endpoint(registry: CollectorRegistry, config: MetricsEndpointConfig) -> tuple[WSGIServer, int]:
    """Start /metrics in a daemon thread; returns (server, bound port). Stop with `server.shutdown()`."""
    context = config.ssl_context()
    app: WSGIApp = make_wsgi_app(registry)
    if config.auth_file is not None:
        app = BasicAuth.from_file(config.auth_file).wrap(app)
    server_class, address = _server_class(config.host, config.port)
    try:
        httpd = make_server(address, config.port, app, server_class, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"metrics_port: {config.host}:{config.port} is already in use by another process "
                "(choose another --metrics-port, 0 for a free one, or -1 to disable /metrics)"
            ) from None
        raise ConfigurationError(f"metrics_port: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    if context is not None:
        # Handshake in the request's own thread, so a silent client cannot stall accept().
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return httpd, int(httpd.server_port)
