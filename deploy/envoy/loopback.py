"""The loopback variant of deploy/envoy/envoy.yaml: the same listener, routes, retries, health checks,
outlier detection and circuit breakers, with the replicas given as host:port (a STATIC cluster) and
Envoy's own ports chosen by the caller. `make fleet` and the tests use it; the policy lives only in
envoy.yaml.

    python deploy/envoy/loopback.py --listen 8080 --admin 9901 127.0.0.1:50061 127.0.0.1:50062 > envoy.yaml
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ENVOY_YAML = Path(__file__).resolve().with_name("envoy.yaml")
#: envoy.yaml's listener for Envoy's own metrics and the cluster of its admin (not the replicas).
METRICS_LISTENER, ADMIN_CLUSTER = "envoy_metrics", "envoy_admin"


def render(
    upstreams: list[str],
    listen_port: int,
    admin_port: int,
    *,
    health_check_interval: float | None = None,
    source: Path = ENVOY_YAML,
) -> dict[str, Any]:
    """envoy.yaml with its listener on 127.0.0.1:`listen_port`, admin on 127.0.0.1:`admin_port` and its
    clusters (`digits`, and `digits_feedback` for Feedback) made of the `upstreams` ("host:port", IP
    addresses) instead of a DNS name.
    `health_check_interval` (seconds) overrides the active health check's interval (tests)."""
    if not upstreams:
        raise ValueError("give at least one upstream host:port")
    config = copy.deepcopy(yaml.safe_load(source.read_text()))
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    resources = config["static_resources"]
    # Left out: the metrics listener and the admin cluster behind it (the caller has the admin port),
    # and the REST listener and cluster (digits_http: the loopback fleet is driven over gRPC).
    resources["listeners"] = [x for x in resources["listeners"] if x["name"] not in (METRICS_LISTENER, "digits_http")]
    resources["clusters"] = [x for x in resources["clusters"] if x["name"] not in (ADMIN_CLUSTER, "digits_http")]
    (listener,) = resources["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen_port}
    endpoints = []
    for upstream in upstreams:
        host, _, port = upstream.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"upstream {upstream!r}: expected IP:PORT")
        endpoints.append({"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}})
    # Every cluster of envoy.yaml is the replicas (digits; digits_feedback, hashed by request id).
    for cluster in resources["clusters"]:
        cluster["type"] = "STATIC"
        for key in ("dns_lookup_family", "dns_refresh_rate", "respect_dns_ttl"):
            cluster.pop(key, None)
        cluster["load_assignment"] = {"cluster_name": cluster["name"], "endpoints": [{"lb_endpoints": endpoints}]}
        if health_check_interval is not None:
            for check in cluster["health_checks"]:
                check["interval"] = f"{health_check_interval:g}s"
                check["no_traffic_interval"] = f"{health_check_interval:g}s"
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstreams", nargs="+", metavar="IP:PORT", help="the replicas' gRPC addresses")
    parser.add_argument("--listen", type=int, default=8080, help="Envoy's gRPC port on 127.0.0.1 (default 8080)")
    parser.add_argument("--admin", type=int, default=9901, help="Envoy's admin port on 127.0.0.1 (default 9901)")
    parser.add_argument("--health-check-interval", type=float, metavar="SECONDS")
    args = parser.parse_args(argv)
    config = render(args.upstreams, args.listen, args.admin, health_check_interval=args.health_check_interval)
    yaml.safe_dump(config, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
