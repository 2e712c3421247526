"""The gRPC layer for digits.v1: servicers, wire<->domain codec, the error->status mapping, health, handler guards."""
