"""Metrics: every Prometheus metric, the observers that update them, and the /metrics endpoint. Never imports grpc."""
