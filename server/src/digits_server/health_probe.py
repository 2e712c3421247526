"""`digits-server-healthcheck`: exit 0 when the server's `grpc.health.v1` service answers
SERVING, 1 otherwise. The container HEALTHCHECK of server/Dockerfile and docker-compose.yml.
The health service needs no token; with `--tls-ca` it speaks TLS (not mutual TLS).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def build_parser() -> argparse.ArgumentParser:
    """Flags: --target, --service, --timeout, --tls-ca."""
    port = os.environ.get("DIGITS_SERVER_PORT", "50051")
    parser = argparse.ArgumentParser(prog="digits-server-healthcheck", description=__doc__)
    parser.add_argument("--target", default=f"localhost:{port}", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="health service name: '' = the server, or a model name")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca", type=Path, default=None, help="PEM CA bundle: connect with TLS, trusting it")
    return parser


def open_channel(target: str, tls_ca: Path | None) -> grpc.Channel:
    """A plaintext channel, or a TLS one that trusts `tls_ca`."""
    if tls_ca is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(tls_ca.read_bytes()))


def main(argv: Sequence[str] | None = None) -> int:
    """Ask the health service once; print the status; 0 when SERVING."""
    args = build_parser().parse_args(argv)
    try:
        channel = open_channel(args.target, args.tls_ca)
    except OSError as exc:
        print(f"--tls-ca: {exc}", file=sys.stderr)
        return 1
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"{args.target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.target} {args.service or '(server)'}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
