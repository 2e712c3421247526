"""TLS material for the gRPC port (and the REST port, which shares it): server certificate and key, optionally a client CA (mTLS).

Files are read once at start; any problem is a ConfigurationError naming the setting, so the
server exits with a clear message instead of a traceback or a silently insecure port.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from digits_server.core.errors import ConfigurationError
from digits_server.core.pem import read_pem
from digits_server.core.ssl_contexts import server_ssl_context


@dataclass(frozen=True)
class ServerTLS:
    """Which files make up the gRPC port's TLS configuration."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_paths(cls, cert: Path | None, key: Path | None, client_ca: Path | None) -> "ServerTLS | None":
        """None when TLS is off; ConfigurationError when the combination is incomplete."""
        if cert is None and key is None:
            if client_ca is not None:
                raise ConfigurationError("tls_client_ca: mutual TLS needs --tls-cert and --tls-key as well")
            return None
        if cert is None or key is None:
            missing = "tls_cert" if cert is None else "tls_key"
            raise ConfigurationError(f"{missing}: TLS needs both --tls-cert and --tls-key")
        return cls(cert, key, client_ca)

    @property
    def mutual(self) -> bool:
        """Whether client certificates signed by `client_ca` are required."""
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials; with a client CA, clients must present a certificate it signed."""
        key = read_pem(self.key, "tls_key")
        cert = read_pem(self.cert, "tls_cert")
        root = read_pem(self.client_ca, "tls_client_ca") if self.client_ca is not None else None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=root, require_client_auth=self.mutual)

    def ssl_context(self) -> ssl.SSLContext:
        """The same certificate, key and client CA as an `ssl` server context, for the REST port."""
        return server_ssl_context(self.cert, self.key, self.client_ca, "tls")
