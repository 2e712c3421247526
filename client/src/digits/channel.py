"""Channel settings shared by the sync and asyncio clients: target, message sizes, TLS, token."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

__all__ = [
    "DEFAULT_TARGET",
    "TARGET_ENV",
    "MAX_MESSAGE_BYTES",
    "default_target",
    "channel_options",
    "channel_credentials",
    "auth_metadata",
]

#: Where the server listens when neither the caller nor DIGITS_TARGET says otherwise.
DEFAULT_TARGET = "localhost:50051"
#: Environment variable naming the server address (host:port).
TARGET_ENV = "DIGITS_TARGET"
#: Max gRPC message size, both directions. A ClassifyBatch of 10,000 raw digits is ~8 MB,
#: beyond gRPC's 4 MiB receive default, so the limit is raised deliberately on the channel.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_target() -> str:
    """The target from DIGITS_TARGET, or localhost:50051."""
    return os.environ.get(TARGET_ENV) or DEFAULT_TARGET


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel options used by both clients (message size limits)."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def _read(path: str | os.PathLike[str] | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def channel_credentials(
    tls_ca: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files, or None for a plaintext channel.

    ``tls_ca`` verifies the server (system roots when omitted but a client cert is given);
    ``tls_cert`` and ``tls_key`` (both or neither) authenticate the client (mutual TLS).
    """
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key must be given together")
    if tls_ca is None and tls_cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca),
        private_key=_read(tls_key),
        certificate_chain=_read(tls_cert),
    )


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``authorization: Bearer <token>``; empty without a token."""
    if token is None:
        return ()
    token = token.strip()
    if not token:
        return ()
    return (("authorization", f"Bearer {token}"),)
