"""Reading PEM files named by a setting, with an error that names the setting. Transport-free:
used by the gRPC port's TLS and by the /metrics endpoint's HTTPS alike."""

from __future__ import annotations

from pathlib import Path

from digits_server.core.errors import ConfigurationError

PEM_MARKER = b"-----BEGIN "


def read_pem(path: Path, setting: str) -> bytes:
    """The bytes of a PEM file; ConfigurationError naming `setting` when unreadable or not PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None
    if PEM_MARKER not in data:
        raise ConfigurationError(f"{setting}: {path} is not a PEM file (no '-----BEGIN' line)")
    return data
