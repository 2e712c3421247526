"""What signed request ids cost: their length, the response bytes they add, and the time to make
and verify one (`python bench/request_ids.py`). A measurement, not a test."""

from __future__ import annotations

import timeit

import numpy as np

from digits.v1 import digits_pb2 as pb
from digits_server.core.domain import ServedBy
from digits_server.core.feedback import FeedbackStore
from digits_server.core.request_ids import RequestIds

OLD_ID = "0123456789abcdef" * 2  # the unsigned id it replaces: 32 hex digits


def response_bytes(images: int, request_id: str) -> int:
    """Serialized ClassifyResponse (1 image) or ClassifyBatchResponse size with this id."""
    served = pb.ServedBy(model="lstm", version=1, experiment="cells", arm="lstm")
    probabilities = [0.1] * 10
    if images == 1:
        return pb.ClassifyResponse(digit=7, probabilities=probabilities, served_by=served,
                                   request_id=request_id).ByteSize()
    predictions = [pb.Prediction(digit=7, probabilities=probabilities) for _ in range(images)]
    return pb.ClassifyBatchResponse(predictions=predictions, served_by=served, request_id=request_id).ByteSize()


def main() -> None:
    ids = RequestIds(b"k" * 32)
    loops = 20_000
    hmac_alone = min(timeit.repeat(lambda: ids._mac(b"x" * 40), number=loops, repeat=5)) / loops
    print(f"HMAC-SHA256 of a 40-byte payload alone: {hmac_alone * 1e6:.2f} us (the machine's load scales all figures)")
    served = ServedBy("lstm", 1, "cells", "lstm")
    for images in (1, 512):
        digits = np.arange(images) % 10
        labels: list[int | None] = [None] * images
        made = ids.issue(served, digits, labels)
        old, new = response_bytes(images, OLD_ID), response_bytes(images, made)
        loops = 20_000 if images == 1 else 2_000
        issue = min(timeit.repeat(lambda: ids.issue(served, digits, labels), number=loops, repeat=5)) / loops
        verify = min(timeit.repeat(lambda: ids.verify(made), number=loops, repeat=5)) / loops
        store = FeedbackStore(max_predictions=10**7, request_ids=ids)
        fresh = [ids.issue(served, digits, labels) for _ in range(loops)]
        feedback = min(timeit.repeat(lambda it=iter(fresh * 5): store.give(next(it), 0, 7), number=loops // 5,
                                     repeat=5)) / (loops // 5)
        print(f"{images:>4} image(s): id {len(made)} chars; response {old} -> {new} bytes "
              f"(+{new - old}, +{(new - old) / old:.1%}); issue {issue * 1e6:.2f} us, verify {verify * 1e6:.2f} us, "
              f"feedback accepted {feedback * 1e6:.2f} us")


if __name__ == "__main__":
    main()
