"""The transport-free serving core: models, batching, routing inputs, feedback. Never imports grpc."""
