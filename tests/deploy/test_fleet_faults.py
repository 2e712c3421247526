"""Faults at fleet level: three real replicas behind a real Envoy, under open-loop load from the real
`digits bench --rate 200` (its own process) through Envoy. Figures are printed (pytest -s) and copied
into docs/scaling.md; only failure counts are asserted.

Default run (one fleet shared, in file order): a new model version published to the shared repository
reaches every replica; one replica stopped gracefully (SIGTERM); one replica killed (SIGKILL).
Slow (-m slow): a full rolling restart of the three replicas; SIGKILL and the replica's return."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tests.envoyproc import Fleet, bench_result, start_bench
from tests.modelrepo import publish_version, wait_for

RATE = 200


def served_version(target: str) -> int:
    """The gru version a replica (or Envoy) answers with right now."""
    from digits.v1 import digits_pb2 as pb
    from digits.v1 import digits_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        answer = digits_pb2_grpc.DigitClassifierStub(channel).Classify(
            pb.ClassifyRequest(model_spec=pb.ModelSpec(name="gru"), image=pb.Image(pixels=bytes(784))), timeout=10)
    return answer.served_by.version


def under_load(fleet: Fleet, tmp_path: Path, seconds: float, faults: Callable[[], None]) -> dict:
    """Run `digits bench --rate 200` through Envoy for `seconds`, call `faults` meanwhile (after 2 s of
    steady load); the bench's JSON summary plus Envoy's cluster counters over the run."""
    before = fleet.envoy.stats()
    log_offset = fleet.envoy.log_path.stat().st_size
    bench = start_bench(fleet.envoy.target, "--rate", str(RATE), "--duration", str(seconds), "--warmup", "1",
                        "--model", "gru", "--timeout", "10", out=tmp_path / "bench.json")
    try:
        time.sleep(2.0)
        assert bench.poll() is None, "the load ended before the faults started"
        faults()
        covered = bench.poll() is None
    finally:
        result = bench_result(bench, tmp_path / "bench.json")
    assert covered, f"the load ({seconds:g} s) ended before the faults were over: give it longer"
    after = fleet.envoy.stats()
    with open(fleet.envoy.log_path, "rb") as log:  # Envoy's access log: failed calls only
        log.seek(log_offset)
        result["envoy_failed_calls"] = [line for line in log.read().decode(errors="replace").splitlines()
                                        if "grpc-status=" in line]
    result["envoy"] = {name.removeprefix("cluster.digits."): after[name] - before.get(name, 0) for name in after
                       if any(key in name for key in ("upstream_rq_retry", "upstream_cx_connect_fail",
                                                      "upstream_rq_pending_overflow", "upstream_rq_total",
                                                      "outlier_detection.ejections_enforced_total"))}
    return result


def report(title: str, result: dict, **extra: object) -> None:
    latency = result["latency_ms"]
    failed = sum(result["errors"].values())
    print(f"\n{title}: {result['requests']} requests at {RATE}/s in {result['seconds']:.1f} s, "
          f"{result['ok']} OK, {failed} failed {result['errors'] or ''}; "
          f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms")
    print(f"  Envoy: {result['envoy']}")
    for line in result["envoy_failed_calls"][:20]:
        print(f"  Envoy access log: {line}")
    for name, value in extra.items():
        print(f"  {name}: {value}")


def test_a_new_version_reaches_every_replica_without_failed_requests(fleet: Fleet, tmp_path: Path) -> None:
    fleet.restore()
    current = max(served_version(r.target) for r in fleet.replicas)
    new = current + 1
    reached: dict[int, float] = {}

    def publish_and_wait() -> None:
        published = time.monotonic()
        publish_version(fleet.models, "gru", current, new)
        pending = set(range(len(fleet.replicas)))

        def all_serve_it() -> bool:
            for index in sorted(pending):
                if served_version(fleet.replicas[index].target) == new:
                    reached[index] = time.monotonic() - published
                    pending.discard(index)
            return not pending

        wait_for(all_serve_it, timeout=120, what=f"every replica serving gru v{new}")
        time.sleep(3)  # keep the load on while the old version drains and unloads

    result = under_load(fleet, tmp_path, 40, publish_and_wait)
    report(f"new version gru v{new} published", result,
           seconds_until_each_replica_served_it=[round(reached[i], 1) for i in sorted(reached)],
           poll_seconds=fleet.flags[fleet.flags.index("--poll-seconds") + 1])
    assert served_version(fleet.envoy.target) == new
    assert result["errors"] == {} and result["ok"] == result["requests"] > 0


def test_a_replica_stopped_with_sigterm_fails_no_request(fleet: Fleet, tmp_path: Path) -> None:
    """One step of a rolling restart: SIGTERM (health NOT_SERVING, new calls refused, in-flight ones
    finish) while Envoy keeps sending; its retries move what the stopping replica refuses."""
    fleet.restore()
    victim = fleet.replicas[0]
    exit_code: list[int] = []

    def stop_one() -> None:
        exit_code.append(victim.stop())
        wait_for(lambda: victim.target not in fleet.envoy.healthy(), timeout=30, what="Envoy marking it unhealthy")
        time.sleep(3)  # load on the two others

    result = under_load(fleet, tmp_path, 15, stop_one)
    report("SIGTERM one of three replicas", result, exit_code=exit_code[0])
    assert exit_code == [0]
    assert result["errors"] == {} and result["ok"] == result["requests"] > 0


def test_a_replica_killed_with_sigkill(fleet: Fleet, tmp_path: Path) -> None:
    """SIGKILL: connections reset mid-request, no NOT_SERVING first. Envoy retries the reset and
    refused requests on another replica; the failed requests are reported (target: none)."""
    fleet.restore()  # the replica the previous test stopped comes back: kill one of three
    alive = list(fleet.replicas)
    victim = alive[1]

    def kill_one() -> None:
        victim.process.kill()
        victim.process.wait()
        wait_for(lambda: victim.target not in fleet.envoy.healthy(), timeout=30, what="Envoy marking it unhealthy")
        time.sleep(3)

    result = under_load(fleet, tmp_path, 15, kill_one)
    report(f"SIGKILL one of {len(alive)} replicas", result)
    assert result["ok"] > 0 and result["requests"] >= RATE * 10
    assert result["errors"] == {}, f"failed requests despite Envoy's retries: {result['errors']}"


@pytest.mark.slow
def test_rolling_restart_of_every_replica_fails_no_request(fleet: Fleet, tmp_path: Path) -> None:
    """SIGTERM replica 1, wait until Envoy sees it healthy again (restarted: loaded, warmed up), then the
    next; the load runs through the whole restart."""
    fleet.restore()
    started = time.monotonic()
    fleet.replicas[0].stop()
    fleet.restart(0)
    fleet.wait_healthy()
    one_restart = time.monotonic() - started
    steps: list[float] = []

    def rolling_restart() -> None:
        for index in range(len(fleet.replicas)):
            began = time.monotonic()
            assert fleet.replicas[index].stop() == 0
            fleet.restart(index)
            fleet.wait_healthy()
            steps.append(round(time.monotonic() - began, 1))
        time.sleep(3)

    result = under_load(fleet, tmp_path, 3 * (2 * one_restart + 15), rolling_restart)
    report("rolling restart of 3 replicas", result, seconds_per_replica=steps)
    assert result["errors"] == {} and result["ok"] == result["requests"] > 0


@pytest.mark.slow
def test_sigkill_and_return_of_a_replica(fleet: Fleet, tmp_path: Path) -> None:
    """SIGKILL one replica, start it again, wait until Envoy routes to it: the whole cycle under load."""
    fleet.restore()
    started = time.monotonic()
    fleet.replicas[2].process.kill()
    fleet.replicas[2].process.wait()
    fleet.restart(2)
    fleet.wait_healthy()
    one_restart = time.monotonic() - started

    def kill_and_return() -> None:
        fleet.replicas[1].process.kill()
        fleet.replicas[1].process.wait()
        fleet.restart(1)
        fleet.wait_healthy()
        time.sleep(3)

    result = under_load(fleet, tmp_path, 2 * one_restart + 20, kill_and_return)
    report("SIGKILL one of 3 replicas and restart it", result)
    assert result["ok"] > 0
    assert result["errors"] == {}, f"failed requests despite Envoy's retries: {result['errors']}"
