"""`digits-server-healthcheck`: exit 0 when the server's `grpc.health.v1` service answers
SERVING, 1 otherwise. The container HEALTHCHECK of server/Dockerfile and docker-compose.yml.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def build_parser() -> argparse.ArgumentParser:
    """Flags: --target, --service, --timeout."""
    port = os.environ.get("DIGITS_SERVER_PORT", "50051")
    parser = argparse.ArgumentParser(prog="digits-server-healthcheck", description=__doc__)
    parser.add_argument("--target", default=f"127.0.0.1:{port}", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="health service name: '' = the server, or a model name")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Ask the health service once; print the status; 0 when SERVING."""
    args = build_parser().parse_args(argv)
    with grpc.insecure_channel(args.target) as channel:
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
