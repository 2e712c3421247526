"""The experiment router: weighted split, sticky keys, minimal movement on weight changes,
pause, shadows, and the create/update/delete and config-file rules."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from scipy import stats as scipy_stats

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import AlreadyExists, InvalidInput, ModelNotFound, ModelUnavailable, NotFound
from digits_server.experiments.router import Arm, Experiment, ExperimentRouter, check_models, from_config, sticky_arm

KEYS = [f"user-{i}" for i in range(6000)]


def experiment(weights: dict[str, float], name: str = "cells", **kwargs) -> Experiment:
    arms = tuple(Arm(arm, ModelSelector(arm), weight) for arm, weight in weights.items())
    return Experiment(name, arms, **kwargs)


def router_with(exp: Experiment, seed: int = 7) -> ExperimentRouter:
    router = ExperimentRouter(random.Random(seed))
    router.create(exp)
    return router


def assert_split_matches(counts: Counter, weights: dict[str, float]) -> None:
    total = sum(counts.values())
    observed = [counts[arm] for arm in weights]
    expected = [total * w / sum(weights.values()) for w in weights.values()]
    result = scipy_stats.chisquare(observed, expected)
    assert result.pvalue > 0.001, (observed, expected)


@pytest.mark.parametrize("weights", [{"rnn": 1, "lstm": 1}, {"rnn": 70, "lstm": 20, "gru": 10}])
def test_random_split_converges_to_the_weights(weights: dict[str, float]) -> None:
    router = router_with(experiment(weights))
    counts = Counter(router.route(ModelSelector(experiment="cells"))[2] for _ in range(6000))
    assert_split_matches(counts, weights)


@pytest.mark.parametrize("weights", [{"rnn": 1, "lstm": 1}, {"rnn": 70, "lstm": 20, "gru": 10}])
def test_sticky_split_converges_to_the_weights(weights: dict[str, float]) -> None:
    router = router_with(experiment(weights))
    counts = Counter(router.route(ModelSelector(experiment="cells", routing_key=k))[2] for k in KEYS)
    assert_split_matches(counts, weights)


def test_sticky_keys_never_switch_arms_while_weights_are_unchanged() -> None:
    exp = experiment({"rnn": 30, "lstm": 30, "gru": 40}, shadow_percent=50)
    router = router_with(exp)
    first = {k: router.route(ModelSelector(experiment="cells", routing_key=k)) for k in KEYS[:1000]}
    for _ in range(3):
        for key, routed in first.items():
            assert router.route(ModelSelector(experiment="cells", routing_key=key)) == routed
    # An update that leaves the weights alone (shadowing, here) moves nobody either; nor does a new router.
    router.update(replace(exp, arms=(), shadow_percent=0))
    again = ExperimentRouter()
    again.create(exp)
    for key, routed in first.items():
        assert router.route(ModelSelector(experiment="cells", routing_key=key)) == routed
        assert again.route(ModelSelector(experiment="cells", routing_key=key)) == routed


def test_arm_models_are_what_requests_are_routed_to() -> None:
    exp = Experiment("v", (Arm("old", ModelSelector("lstm", 1), 1), Arm("new", ModelSelector("lstm", 2), 1)))
    router = router_with(exp)
    seen = {router.route(ModelSelector(experiment="v", routing_key=k)) for k in KEYS[:200]}
    assert seen == {(ModelSelector("lstm", 1), "v", "old"), (ModelSelector("lstm", 2), "v", "new")}


def test_changing_weights_moves_only_the_expected_share_of_keys() -> None:
    before = experiment({"rnn": 50, "lstm": 50})
    after = experiment({"rnn": 80, "lstm": 20})
    moved = [(sticky_arm(before, k).name, sticky_arm(after, k).name) for k in KEYS]
    switched = [pair for pair in moved if pair[0] != pair[1]]
    # The least any assignment can move is the total variation distance: 0.8 - 0.5 = 30% of keys,
    # all of them from lstm to rnn.
    assert set(switched) <= {("lstm", "rnn")}
    assert len(switched) / len(KEYS) == pytest.approx(0.30, abs=0.025)


def test_raising_one_of_three_weights_only_moves_keys_to_that_arm() -> None:
    before = experiment({"rnn": 40, "lstm": 40, "gru": 20})
    after = experiment({"rnn": 40, "lstm": 40, "gru": 60})  # gru: 20% -> 42.9% of keys
    switched = [(sticky_arm(before, k).name, sticky_arm(after, k).name) for k in KEYS]
    switched = [pair for pair in switched if pair[0] != pair[1]]
    assert {new for _, new in switched} == {"gru"}
    assert len(switched) / len(KEYS) == pytest.approx(60 / 140 - 0.2, abs=0.025)


def test_a_zero_weight_arm_gets_no_traffic_but_is_shadowed() -> None:
    router = router_with(experiment({"lstm": 1, "candidate": 0}, shadow_percent=100))
    arms = {router.route(ModelSelector(experiment="cells", routing_key=k))[2] for k in KEYS[:500]}
    arms |= {router.route(ModelSelector(experiment="cells"))[2] for _ in range(500)}
    assert arms == {"lstm"}
    assert router.shadows("cells", "lstm") == [(ModelSelector("candidate"), "candidate")]


def test_paused_experiment_routes_everything_to_the_first_arm_without_shadows() -> None:
    router = router_with(experiment({"rnn": 1, "lstm": 99}, paused=True, shadow_percent=100))
    arms = {router.route(ModelSelector(experiment="cells", routing_key=k))[2] for k in KEYS[:300]}
    assert arms == {"rnn"}
    assert router.shadows("cells", "rnn") == []


def test_shadow_percent_mirrors_that_share_of_requests_to_every_other_arm() -> None:
    router = router_with(experiment({"rnn": 1, "lstm": 1, "gru": 1}, shadow_percent=25))
    mirrored = [router.shadows("cells", "lstm") for _ in range(4000)]
    assert {tuple(arm for _, arm in m) for m in mirrored} == {(), ("rnn", "gru")}
    assert sum(bool(m) for m in mirrored) / 4000 == pytest.approx(0.25, abs=0.03)
    assert router.shadows("gone", "lstm") == []


def test_unknown_experiment_is_model_not_found_naming_the_field() -> None:
    router = router_with(experiment({"rnn": 1, "lstm": 1}))
    with pytest.raises(ModelNotFound, match=r"model_spec.experiment: no experiment 'nope' \(experiments: cells\)"):
        router.route(ModelSelector(experiment="nope"))


def test_create_update_delete() -> None:
    router = ExperimentRouter()
    changes: list[tuple[str, bool]] = []
    router.on_change.append(lambda name, exp: changes.append((name, exp is not None)))
    exp = experiment({"rnn": 1, "lstm": 1}, shadow_percent=10)
    router.create(exp)
    with pytest.raises(AlreadyExists, match="name: experiment 'cells' exists"):
        router.create(exp)
    change = Experiment("cells", (Arm("lstm", ModelSelector(), 3),), shadow_percent=5, paused=True)
    updated = router.update(change)
    assert [(a.name, a.model.name, a.weight) for a in updated.arms] == [("rnn", "rnn", 1), ("lstm", "lstm", 3)]
    assert updated.shadow_percent == 5 and updated.paused
    assert router.list() == [updated]
    router.delete("cells")
    assert router.list() == []
    assert changes == [("cells", True), ("cells", True), ("cells", False)]
    with pytest.raises(NotFound, match="name: no experiment 'cells'"):
        router.delete("cells")
    with pytest.raises(NotFound):
        router.update(change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (Experiment("cells", (Arm("gru", ModelSelector(), 1),)), r"arms\[0\].name: experiment 'cells' has no arm 'gru'"),
        (Experiment("cells", (Arm("rnn", ModelSelector("gru"), 1),)), r"arms\[0\].model: an update cannot change"),
        (Experiment("cells", (Arm("rnn", ModelSelector(), -1),)), r"arms\[0\].weight: must be a finite number >= 0"),
        (Experiment("cells", (Arm("rnn", ModelSelector(), 0), Arm("lstm", ModelSelector(), 0))), "at least one arm"),
        (Experiment("cells", (), shadow_percent=101), "shadow_percent: must be between 0 and 100"),
    ],
)
def test_bad_updates_are_rejected_and_change_nothing(change: Experiment, message: str) -> None:
    exp = experiment({"rnn": 1, "lstm": 1})
    router = router_with(exp)
    with pytest.raises(InvalidInput, match=message):
        router.update(change)
    assert router.list() == [exp]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Experiment("", (Arm("a", ModelSelector("rnn"), 1), Arm("b", ModelSelector("gru"), 1))), "experiment.name"),
        (experiment({"rnn": 1}), r"experiment.arms: an experiment needs at least two arms"),
        (Experiment("x", (Arm("a", ModelSelector("rnn"), 1), Arm("a", ModelSelector("gru"), 1))), r"arms\[1\].name: arm 'a' appears twice"),
        (Experiment("x", (Arm("a", ModelSelector(""), 1), Arm("b", ModelSelector("gru"), 1))), r"arms\[0\].model.name"),
        (Experiment("x", (Arm("a", ModelSelector("rnn", 0), 1), Arm("b", ModelSelector("gru"), 1))), r"arms\[0\].model.version"),
        (Experiment("x", (Arm("a", ModelSelector("rnn", 1, "stable"), 1), Arm("b", ModelSelector("gru"), 1))), "version or version_label"),
        (Experiment("x", (Arm("a", ModelSelector("rnn"), float("nan")), Arm("b", ModelSelector("gru"), 1))), r"arms\[0\].weight"),
    ],
)
def test_invalid_experiments_name_the_field(bad: Experiment, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ExperimentRouter().create(bad)


def test_check_models_names_the_arm_whose_model_is_missing() -> None:
    def resolve(selector: ModelSelector) -> None:
        if selector.name != "lstm":
            raise ModelNotFound(f"model_spec.name: no model '{selector.name}' (models: lstm)")

    check_models(Experiment("ok", (Arm("a", ModelSelector("lstm"), 1), Arm("b", ModelSelector("lstm", 2), 1))), resolve)
    with pytest.raises(InvalidInput, match=r"arms\[1\].model: model_spec.name: no model 'gru'"):
        check_models(experiment({"lstm": 1, "gru": 1}), resolve)


def test_check_models_accepts_a_loading_version_and_lets_a_real_fault_through() -> None:
    def loading(selector: ModelSelector) -> None:
        raise ModelUnavailable(f"model '{selector.name}' version 2 is LOADING")

    check_models(experiment({"lstm": 1, "gru": 1}), loading)  # exists, not ready yet: accepted

    def broken(selector: ModelSelector) -> None:
        raise RuntimeError("the manager's table is broken")

    with pytest.raises(RuntimeError, match="broken"):  # a bug is not mistaken for "still loading"
        check_models(experiment({"lstm": 1, "gru": 1}), broken)


def test_experiments_from_the_config_file() -> None:
    entries = [
        {
            "name": "cells",
            "shadow_percent": 10,
            "arms": [
                {"model": "lstm", "weight": 50},
                {"name": "gru-v1", "model": "gru", "version": 1, "weight": 50},
                {"name": "rnn-stable", "model": "rnn", "version_label": "stable", "weight": 0},
            ],
        },
        {"name": "paused", "paused": True, "arms": [{"model": "rnn"}, {"model": "gru"}]},
    ]
    cells, paused = from_config(entries)
    assert cells == Experiment(
        "cells",
        (
            Arm("lstm", ModelSelector("lstm"), 50.0),
            Arm("gru-v1", ModelSelector("gru", 1), 50.0),
            Arm("rnn-stable", ModelSelector("rnn", None, "stable"), 0.0),
        ),
        shadow_percent=10.0,
    )
    assert paused.paused and [a.weight for a in paused.arms] == [1.0, 1.0]
    assert from_config(None) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"name": "x"}, "experiments: must be a list"),
        (["x"], r"experiments\[0\]: must be a mapping"),
        ([{"name": "x", "arms": "lstm"}], r"experiments\[0\].arms: must be a list"),
        ([{"name": "x", "arm": []}], r"experiments\[0\]: unknown key\(s\) arm"),
        ([{"name": "x", "arms": [{"model": "a", "wieght": 1}, {"model": "b"}]}], r"arms\[0\]: unknown key\(s\) wieght"),
        ([{"name": "x", "arms": [{"model": "a", "weight": "1"}, {"model": "b"}]}], r"arms\[0\].weight: must be a number"),
        ([{"name": "x", "arms": [{"model": "a", "version": "1"}, {"model": "b"}]}], r"arms\[0\].version: must be an integer"),
        ([{"name": "x", "paused": "no", "arms": [{"model": "a"}, {"model": "b"}]}], r"experiments\[0\].paused"),
        ([{"name": "x", "arms": [{"model": "a"}, {"model": "a"}]}], r"experiments\[0\].arms\[1\].name: arm 'a' appears twice"),
        ([{"name": "x", "arms": [{"model": "a"}, {"model": "b"}]}] * 2, r"experiments\[1\].name: experiment 'x' is defined twice"),
    ],
)
def test_bad_config_entries_name_the_key(entries, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        from_config(entries)
