"""Shared CLI plumbing: global connection options, client construction, data loading, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeAlias

import numpy as np

from digits.aio import AsyncDigitsClient
from digits.channel import DEFAULT_TARGET, TARGET_ENV
from digits.client import DigitsClient

__all__ = [
    "Subparsers",
    "UsageError",
    "Connection",
    "global_options",
    "add_connection_options",
    "subcommand_parsers",
    "connection",
    "make_client",
    "make_async_client",
    "load_npz",
    "print_json",
    "served_name",
]

TOKEN_ENV = "DIGITS_TOKEN"
TOKEN_FILE_ENV = "DIGITS_TOKEN_FILE"
TIMEOUT_ENV = "DIGITS_TIMEOUT"
TLS_ENVS = {"tls_ca": "DIGITS_TLS_CA", "tls_cert": "DIGITS_TLS_CERT", "tls_key": "DIGITS_TLS_KEY"}
DEFAULT_TIMEOUT = 10.0

#: What ``add_parser(subparsers)`` of each subcommand module receives.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """A mistake in the command line or its input files: exit code 2, no server involved."""


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def global_options() -> argparse.ArgumentParser:
    """A parent parser with the connection flags (see :func:`add_connection_options`)."""
    parent = argparse.ArgumentParser(add_help=False)
    add_connection_options(parent)
    return parent


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add the connection flags to ``parser`` (unless it has them already).

    The top-level parser and every subcommand parser at every depth get them, so they work
    before or after any subcommand. Defaults are SUPPRESSed: a subcommand's copy sets nothing
    it was not given, so a flag given before the subcommand survives, and one given after it
    wins; :func:`connection` applies env vars and defaults afterwards.
    """
    if "--target" in parser._option_string_actions:
        return
    group = parser.add_argument_group("connection")
    S = argparse.SUPPRESS
    group.add_argument("--target", default=S, metavar="HOST:PORT",
                       help=f"server address (env {TARGET_ENV}, default {DEFAULT_TARGET})")
    group.add_argument("--timeout", type=positive_float, default=S, metavar="S",
                       help=f"deadline of each call in seconds (env {TIMEOUT_ENV}, default {DEFAULT_TIMEOUT:g})")
    group.add_argument("--token-file", default=S, metavar="FILE",
                       help=f"file holding the bearer token (env {TOKEN_FILE_ENV}; "
                            f"or env {TOKEN_ENV} holding the token itself)")
    group.add_argument("--tls-ca", default=S, metavar="PEM",
                       help=f"CA certificate to verify the server: use TLS (env {TLS_ENVS['tls_ca']})")
    group.add_argument("--tls-cert", default=S, metavar="PEM",
                       help=f"client certificate for mutual TLS (env {TLS_ENVS['tls_cert']})")
    group.add_argument("--tls-key", default=S, metavar="PEM",
                       help=f"client private key for mutual TLS (env {TLS_ENVS['tls_key']})")


def subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (subcommands at every depth), parents before children."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += [child, *subcommand_parsers(child)]
    return found


@dataclass(frozen=True)
class Connection:
    """Resolved connection settings (flags, then environment, then defaults)."""

    target: str
    timeout: float
    token: str | None
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for DigitsClient / AsyncDigitsClient."""
        return {
            "target": self.target, "timeout": self.timeout, "token": self.token,
            "tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key,
        }


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise UsageError(f"token file {path} is empty")
    return token


def connection(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Connection:
    """Resolve the connection flags of ``args`` against the environment."""
    env = os.environ if environ is None else environ
    target = getattr(args, "target", None) or env.get(TARGET_ENV) or DEFAULT_TARGET
    timeout = getattr(args, "timeout", None)
    if timeout is None:
        try:
            timeout = positive_float(env[TIMEOUT_ENV]) if env.get(TIMEOUT_ENV) else DEFAULT_TIMEOUT
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{TIMEOUT_ENV}: {exc}") from None
    token_file = getattr(args, "token_file", None) or env.get(TOKEN_FILE_ENV)
    token = _read_token(token_file) if token_file else (env.get(TOKEN_ENV) or "").strip() or None
    tls = {key: getattr(args, key, None) or env.get(var) or None for key, var in TLS_ENVS.items()}
    if (tls["tls_cert"] is None) != (tls["tls_key"] is None):
        raise UsageError("--tls-cert and --tls-key must be given together")
    for key, path in tls.items():
        if path is not None and not Path(path).is_file():
            raise UsageError(f"--{key.replace('_', '-')}: no such file: {path}")
    return Connection(target, timeout, token, **tls)


def make_client(args: argparse.Namespace) -> DigitsClient:
    """A DigitsClient for the resolved connection settings."""
    return DigitsClient(**connection(args).client_kwargs())


def make_async_client(args: argparse.Namespace) -> AsyncDigitsClient:
    """An AsyncDigitsClient for the resolved connection settings (open it inside the loop)."""
    return AsyncDigitsClient(**connection(args).client_kwargs())


def load_npz(path: str | os.PathLike[str], limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``x_test`` (N, 28, 28) and ``y_test`` (N,) or None from a Keras-layout .npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x_test" not in archive:
                raise UsageError(
                    f"{path}: no x_test array (Keras layout: x_train, y_train, x_test, y_test); "
                    f"found {', '.join(archive.files) or 'nothing'}"
                )
            x = archive["x_test"][:limit]
            y = archive["y_test"][:limit] if "y_test" in archive else None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not a valid .npz archive ({exc})") from None
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise UsageError(f"{path}: x_test must be N x 28 x 28, got shape {x.shape}")
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 10:  # one-hot
            y = y.argmax(axis=1)
        y = y.reshape(-1).astype(np.int64)
        if len(y) != len(x):
            raise UsageError(f"{path}: {len(x)} images in x_test but {len(y)} labels in y_test")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UsageError(f"{path}: y_test labels must be digits 0..9")
    return x, y


def print_json(document: Any, stream: TextIO | None = None) -> None:
    """Write one JSON document (and a newline) to stdout."""
    out = stream or sys.stdout
    json.dump(document, out, indent=2, allow_nan=False)
    out.write("\n")


def served_name(model: str, version: int) -> str:
    """"lstm:3"."""
    return f"{model}:{version}"
