"""A/B experiments: routing traffic between arms, counting outcomes, the statistics and report. Never imports grpc."""
