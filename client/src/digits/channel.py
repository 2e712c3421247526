"""Channel settings shared by the sync and asyncio clients: target, load balancing, message
sizes, TLS, token.

Targets: ``host:port`` (one server); ``dns:///name:port`` (every address the name resolves to,
re-resolved by gRPC, e.g. a Kubernetes headless Service); ``ipv4:127.0.0.1:P1,127.0.0.1:P2``
and ``ipv6:[::1]:P1,[::1]:P2`` (gRPC's own address lists); and a comma list
``host:p1,host:p2`` (resolved once, when the channel is made). The last three spread calls over
every address with gRPC's ``round_robin`` policy unless ``lb_policy`` says ``pick_first``: one
gRPC channel is one connection per address, so balancing must happen per call, in the client
(or in an L7 proxy).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "DEFAULT_TARGET",
    "TARGET_ENV",
    "MAX_MESSAGE_BYTES",
    "default_target",
    "channel_options",
    "LB_POLICIES",
    "balanced_target",
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


#: The client-side load-balancing policies a channel can use.
LB_POLICIES = ("pick_first", "round_robin")
_MULTI_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def _split_host_port(address: str) -> tuple[str, str]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"target: {address!r} in a comma list is not host:port")
    return host.strip("[]"), port


def _address_list(target: str) -> tuple[str, list[tuple[str, Any]]]:
    """A comma list host:p1,host:p2 as a gRPC ipv4:/ipv6: target (hostnames resolved now)."""
    v4: list[str] = []
    v6: list[str] = []
    named = False
    for address in target.split(","):
        host, port = _split_host_port(address)
        try:
            ip = ipaddress.ip_address(host)
            candidates = [str(ip)]
        except ValueError:
            named = True
            try:
                infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise ValueError(f"target: cannot resolve {host!r} ({exc.strerror})") from None
            candidates = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for candidate in candidates:
            if ipaddress.ip_address(candidate).version == 4:
                v4.append(f"{candidate}:{port}")
            else:
                v6.append(f"[{candidate}]:{port}")
    resolved = "ipv4:" + ",".join(v4) if v4 else "ipv6:" + ",".join(v6)
    # Named hosts: keep the first name as the channel's authority (TLS checks the certificate against it).
    options: list[tuple[str, Any]] = [("grpc.default_authority", target.split(",")[0].strip())] if named else []
    return resolved, options


def balanced_target(target: str, lb_policy: str | None = None) -> tuple[str, list[tuple[str, Any]]]:
    """(gRPC target, channel options) for a target: multi-address and ``dns:`` targets get
    round_robin unless ``lb_policy`` is given; a single host:port keeps gRPC's pick_first.

    ValueError for an unknown policy or an unresolvable comma list."""
    if lb_policy is not None and lb_policy not in LB_POLICIES:
        raise ValueError(f"lb_policy: {lb_policy!r} is not one of {', '.join(LB_POLICIES)}")
    options: list[tuple[str, Any]] = []
    resolved = target
    if "," in target and not target.startswith(_MULTI_SCHEMES):
        resolved, options = _address_list(target)
    balanced = resolved.startswith(_MULTI_SCHEMES)
    policy = lb_policy or ("round_robin" if balanced else None)
    if policy is not None:
        options.append(("grpc.service_config", json.dumps({"loadBalancingConfig": [{policy: {}}]})))
    return resolved, options


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
