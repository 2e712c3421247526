"""The rollout's looks at a whole fleet (``digits ab rollout --prometheus URL``): every replica's
counters summed in Prometheus, exactly and across restarts, since the experiment was created
(fleet_report.py, counter_history.py) — one growing sample, not a sliding window — with the
always-valid statistics folded into the controller's own running state: the running minimum of
each p-value and the running intersection of each confidence sequence, as a single server keeps
for its own share. The sample-ratio test (sample_ratio.py) keeps its e-process here too, a weight
change starting a new period once `settle` seconds have passed (the replicas' config polls and
Prometheus' scrapes catch up meanwhile).

Refuses (FleetError) an experiment without a recorded creation time (nothing says where the sample
begins) and a Prometheus that has scraped no replica's series of it (within `first_scrape` seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from digits.client import DigitsClient
from digits.experiments import always_valid as av
from digits.experiments import sample_ratio
from digits.experiments.counter_history import identities, prometheus_range
from digits.experiments.fleet_report import build_fleet_report, counts_source, fleet_counts
from digits.experiments.rollout import FleetError
from digits.experiments.sequential import Running
from digits.v1 import digits_pb2

SETTLE_SECONDS = 10.0
SERIES = "digits_experiment_labelled_predictions_total"  # created at 0 on every replica that runs the experiment


@dataclass
class FleetLooks:
    """Looks at the fleet's totals with running always-valid state kept here, between looks."""

    client: DigitsClient
    experiment: str
    prometheus: str
    settle: float = SETTLE_SECONDS
    first_scrape: float = 30.0  # seconds to wait for Prometheus to scrape the experiment's first series
    running: dict[tuple[str, ...], Running] = field(default_factory=dict)
    replicas: set[str] = field(default_factory=set)  # Prometheus instances seen reporting the experiment
    sample_ratio: sample_ratio.SampleRatio | None = None

    def fold(self, key: tuple[str, ...], p_value: float, low: float, high: float) -> tuple[float, float, float]:
        """The controller's Fold: running minimum p, running intersection of the interval."""
        state = self.running.setdefault(key, Running()).update(p_value, low, high)
        return state.p_value, state.low, state.high

    def look(self) -> digits_pb2.ExperimentReport:
        experiment = self._experiment()
        if not experiment.created_unix_time:
            raise FleetError(f"experiment {self.experiment!r} has no creation time (created before the server "
                             "recorded one, or written into the config by hand): re-create it with digits ab create "
                             "so the fleet's sample has a beginning")
        selector = f'{SERIES}{{experiment="{self.experiment}"}}'
        deadline = time.monotonic() + (self.first_scrape if not self.replicas else 0.0)
        while True:  # a rollout started right after `digits ab create` waits for the first scrape
            self.replicas |= identities(prometheus_range(self.prometheus), selector, experiment.created_unix_time)
            if self.replicas or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if not self.replicas:
            raise FleetError(f"--prometheus {self.prometheus} has no replica's {SERIES} for experiment "
                             f"{self.experiment!r}: is it scraping the fleet?")
        counts = fleet_counts(self.prometheus, experiment)
        if self.sample_ratio is None:
            self.sample_ratio = sample_ratio.SampleRatio(settle=self.settle)
        srm = sample_ratio.guardrail(self.sample_ratio, experiment.arms[0].name,
                                     {arm.name: arm.weight for arm in experiment.arms}, counts.labelled,
                                     experiment.paused, time.monotonic())
        source = f"{counts_source(experiment)}; {len(self.replicas)} replica(s) seen in Prometheus"
        return build_fleet_report(experiment, counts, source, fold=self.fold, looks=av.RUNNING_LOOKS,
                                  extra_guardrails=[srm])

    def _experiment(self) -> digits_pb2.Experiment:
        for experiment in self.client.list_experiments():
            if experiment.name == self.experiment:
                return experiment
        raise ValueError(f"no experiment {self.experiment!r} on the server")
