"""Feedback counted once per fleet behind the shipped Envoy (issue 21 §4). Three real replicas share
the feedback key, so any of them accepts feedback for an id another made, once per replica. Envoy
routes Feedback by a ring hash of the `digits-request-id` header our client sets: every feedback for
one id reaches the same replica, and every duplicate sent through Envoy is ALREADY_EXISTS. A stock
client that does not set the header is spread like any call, and its duplicates do get counted again
at other replicas (docs/scaling.md says so)."""

from __future__ import annotations

from collections import Counter

import grpc
import numpy as np
import yaml

from digits import DigitsClient
from digits.calls import REQUEST_ID_HEADER
from digits.errors import AlreadyExistsError
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc
from tests.envoyproc import ENVOY_DIR, Fleet, grpc_routes, requests_per_replica
from tests.fleet import wait_for

IDS = 24
ROUNDS = 6  # each id's feedback sent this many times, each round on a new connection to Envoy


def request_ids(fleet: Fleet, count: int) -> list[str]:
    images = np.random.default_rng(1).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    with DigitsClient(fleet.envoy.target, timeout=30) as client:
        return [client.classify(image).request_id for image in images]


def test_every_duplicate_feedback_sent_through_envoy_is_already_exists(fleet: Fleet) -> None:
    fleet.restore()
    ids = request_ids(fleet, IDS)
    before = requests_per_replica(fleet, "Feedback")
    accepted: Counter[str] = Counter()
    duplicates = 0
    for _ in range(ROUNDS):
        with DigitsClient(fleet.envoy.target, timeout=30) as client:
            for request_id in ids:
                try:
                    client.feedback(request_id, 3)
                    accepted[request_id] += 1
                except AlreadyExistsError:
                    duplicates += 1
    def counted() -> list[float]:
        return [after - earlier for after, earlier in zip(requests_per_replica(fleet, "Feedback"), before)]

    # a replica counts a call just after answering it: wait until the last one is counted
    wait_for(lambda: sum(counted()) == IDS * ROUNDS, 10, "every Feedback call counted")
    per_replica = counted()
    print(f"\nFeedback calls per replica through Envoy (hashed by request id): {per_replica}")
    assert sorted(accepted.values()) == [1] * IDS  # each id counted once in the fleet
    assert duplicates == IDS * (ROUNDS - 1)
    assert sum(1 for count in per_replica if count > 0) >= 2  # the ids spread; each id stays on one
    assert all(count % ROUNDS == 0 for count in per_replica), per_replica


def test_without_the_header_duplicates_reach_other_replicas(fleet: Fleet) -> None:
    """Why the client sets the header: a stock stub's Feedback carries none, Envoy picks any
    replica, and a duplicate is counted again wherever it lands first (the documented limit)."""
    fleet.restore()
    ids = request_ids(fleet, IDS)
    accepted = 0
    for _ in range(ROUNDS):
        with grpc.insecure_channel(fleet.envoy.target) as channel:
            stub = digits_pb2_grpc.DigitClassifierStub(channel)
            for request_id in ids:
                try:
                    stub.Feedback(pb.FeedbackRequest(request_id=request_id, true_label=3), timeout=30)
                    accepted += 1
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error
    assert accepted > IDS  # some ids counted at two or three replicas


def test_envoy_hashes_feedback_on_the_header_the_client_sets_and_nothing_else() -> None:
    config = yaml.safe_load((ENVOY_DIR / "envoy.yaml").read_text())
    routes = grpc_routes()
    hashed = [r for r in routes if "hash_policy" in r.get("route", {})]
    assert [r["match"] for r in hashed] == [{"path": "/digits.v1.DigitClassifier/Feedback"}]
    assert hashed[0]["route"]["hash_policy"] == [{"header": {"header_name": REQUEST_ID_HEADER}}]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert clusters[hashed[0]["route"]["cluster"]]["lb_policy"] == "RING_HASH"
    assert clusters["digits"]["lb_policy"] == "LEAST_REQUEST"  # every other method as before
    assert {r["route"]["cluster"] for r in routes if r is not hashed[0]} == {"digits"}
