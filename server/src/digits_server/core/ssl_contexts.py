"""Server-side TLS contexts for the HTTP ports (REST and /metrics), from PEM files named by
settings. No gRPC here, and in core: the /metrics endpoint (observability) uses it too.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from digits_server.core.errors import ConfigurationError
from digits_server.core.pem import read_pem


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None, prefix: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with `client_ca`, clients must present a certificate it signed.

    `prefix` names the settings in error messages ("tls" -> tls_cert, tls_key, tls_client_ca).
    """
    read_pem(cert, f"{prefix}_cert")
    read_pem(key, f"{prefix}_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"{prefix}_cert: cannot use {cert} / {key}: {exc}") from None
    if client_ca is not None:
        read_pem(client_ca, f"{prefix}_client_ca")
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
