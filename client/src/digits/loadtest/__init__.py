"""Load generation for `digits bench`: the request driver and its latency statistics."""
