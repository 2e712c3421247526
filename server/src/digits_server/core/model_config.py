"""The model config file (`--model-config`, YAML or JSON): version policies, labels, experiments.

    models:
      lstm:
        version_policy: {latest: 2}      # or: all, or {specific: [1, 3]}; default latest 1
        labels: {stable: 1, canary: 2}   # label -> version; labelled versions are loaded too
        payload_log_sample: 0.1          # share of its requests the payload log keeps (--payload-log)
      gru:
        version_policy: all
    experiments: [...]                   # passed through untouched for the experiment engine

Parsing is strict: an unknown key or a bad value raises ConfigError naming its path
(`models.lstm.version_policy.latest`), so typos are caught at startup or on reload.

The file is the one source of truth a fleet of replicas shares: `save_config` writes it
atomically (a temporary file in the same directory, renamed over it) and `update_config` does a
read-modify-write under a lock file beside it. A symlinked path (a Kubernetes ConfigMap mounted
as a directory: `name -> ..data/name`) is read through the link on every read, so the kubelet's
swap of `..data` is seen at the next read; writing one fails (read-only), which callers report.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digits_server.core.errors import ConfigurationError, InvalidConfig
from digits_server.core.repository import VersionPolicy

TOP_LEVEL_KEYS = ("models", "experiments")
MODEL_KEYS = ("version_policy", "labels", "payload_log_sample")


class ConfigError(InvalidConfig, ConfigurationError):
    """The model config file cannot be read or says something invalid; the message names the key.

    At startup it stops the server (a ConfigurationError); on ReloadModels it is the call's
    FAILED_PRECONDITION (an InvalidConfig) and the previous config stays in force."""


@dataclass(frozen=True)
class ModelConfig:
    """One model's serving config: which versions to serve and which labels point where."""

    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)
    payload_log_sample: float | None = None  # None: the server's --payload-log-sample


@dataclass(frozen=True)
class ServingConfig:
    """The whole config file: per-model configs plus the raw `experiments` list (not interpreted here)."""

    models: dict[str, ModelConfig] = field(default_factory=dict)
    experiments: list[Any] = field(default_factory=list)

    def policies(self) -> dict[str, VersionPolicy]:
        """{model: version policy} for the models the file names."""
        return {name: model.policy for name, model in self.models.items()}

    def labels(self) -> dict[str, dict[str, int]]:
        """{model: {label: version}}."""
        return {name: dict(model.labels) for name, model in self.models.items() if model.labels}

    def payload_log_samples(self) -> dict[str, float]:
        """{model: share of its requests to log} for the models whose entry sets one."""
        return {name: m.payload_log_sample for name, m in self.models.items() if m.payload_log_sample is not None}


def load_config(path: Path | None) -> ServingConfig:
    """Read and validate a config file (YAML, or JSON by the `.json` suffix); None gives the defaults."""
    if path is None:
        return ServingConfig()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model config ({exc.strerror or exc})") from None
    return parse_config(text, json_syntax=Path(path).suffix.lower() == ".json", origin=str(path))


def with_label(config: ServingConfig, model: str, label: str, version: int) -> ServingConfig:
    """The config with `label` of `model` pointing at `version` (other labels and keys unchanged)."""
    models = dict(config.models)
    current = models.get(model, ModelConfig())
    models[model] = replace(current, labels={**current.labels, label: version})
    return replace(config, models=models)


def parse_config(text: str, json_syntax: bool = False, origin: str = "model config") -> ServingConfig:
    """Parse config text; raises ConfigError with the offending key's path."""
    try:
        if json_syntax:
            raw = json.loads(text) if text.strip() else {}
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: report, never crash
        raise ConfigError(f"{origin}: not valid {'JSON' if json_syntax else 'YAML'}: {exc}") from None
    raw = {} if raw is None else raw
    _expect(isinstance(raw, dict), origin, "must be a mapping with keys " + ", ".join(TOP_LEVEL_KEYS))
    _no_unknown_keys(raw, TOP_LEVEL_KEYS, "")
    models_raw = raw.get("models") or {}
    _expect(isinstance(models_raw, dict), "models", "must be a mapping of model name -> settings")
    models = {str(name): _model(str(name), value) for name, value in models_raw.items()}
    experiments = raw.get("experiments") or []
    _expect(isinstance(experiments, list), "experiments", "must be a list")
    return ServingConfig(models=models, experiments=list(experiments))


def config_to_raw(config: ServingConfig) -> dict[str, Any]:
    """The config as the plain mapping its file holds (`parse_config` of its dump gives it back)."""
    models: dict[str, Any] = {}
    for name, model in sorted(config.models.items()):
        entry: dict[str, Any] = {}
        policy = model.policy
        if policy.kind == "all":
            entry["version_policy"] = "all"
        elif policy.kind == "specific":
            entry["version_policy"] = {"specific": list(policy.versions)}
        elif policy.count != 1:
            entry["version_policy"] = {"latest": policy.count}
        if model.labels:
            entry["labels"] = dict(sorted(model.labels.items()))
        if model.payload_log_sample is not None:
            entry["payload_log_sample"] = model.payload_log_sample
        models[name] = entry
    return {"models": models, "experiments": list(config.experiments)}


def config_hash(config: ServingConfig, experiments: list[Any] | None = None) -> str:
    """16 hex digits of SHA-256 over the config's canonical JSON (formatting and comments do not count).

    `experiments` replaces the file's list (the experiments in force, when they were changed in memory)."""
    raw = config_to_raw(config)
    if experiments is not None:
        raw["experiments"] = experiments
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save_config(path: Path, config: ServingConfig) -> None:
    """Write the config atomically: a temporary file in the target's directory, fsynced, renamed over it.

    A symlink is followed (its target is replaced, the link kept). OSError when the directory is
    not writable (a ConfigMap, a read-only volume): callers turn it into a ConfigError."""
    target = Path(os.path.realpath(path))
    raw = config_to_raw(config)
    if target.suffix.lower() == ".json":
        text = json.dumps(raw, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temporary, os.stat(target).st_mode & 0o777)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself durable
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `.<name>.lock` beside the (resolved) config file, across processes."""
    target = Path(os.path.realpath(path))
    with open(target.parent / f".{target.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_config(path: Path, change: Callable[[ServingConfig], ServingConfig]) -> ServingConfig:
    """Read the file, apply `change`, write it back atomically, under the lock; returns the new config.

    ConfigError naming the file when it cannot be written (nothing changed then); `change`'s own
    exceptions pass through."""
    try:
        with _locked(path):
            new = change(load_config(path))
            save_config(path, new)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the model config ({exc.strerror or exc}); experiments are kept in that "
            "file, so change them there (e.g. in its ConfigMap): no replica was changed"
        ) from None
    return new


def _model(name: str, raw: Any) -> ModelConfig:
    where = f"models.{name}"
    raw = {} if raw is None else raw
    _expect(isinstance(raw, dict), where, "must be a mapping with keys " + ", ".join(MODEL_KEYS))
    _no_unknown_keys(raw, MODEL_KEYS, where + ".")
    policy = _policy(raw.get("version_policy"), where + ".version_policy")
    labels_raw = raw.get("labels") or {}
    _expect(isinstance(labels_raw, dict), where + ".labels", "must be a mapping of label -> version")
    labels = {str(label): _version(v, f"{where}.labels.{label}") for label, v in labels_raw.items()}
    sample = raw.get("payload_log_sample")
    if sample is not None:
        _expect(isinstance(sample, (int, float)) and not isinstance(sample, bool) and 0.0 <= sample <= 1.0,
                where + ".payload_log_sample", f"must be a number from 0 to 1, got {sample!r}")
        sample = float(sample)
    return ModelConfig(policy=policy, labels=labels, payload_log_sample=sample)


def _policy(raw: Any, where: str) -> VersionPolicy:
    if raw is None:
        return VersionPolicy()
    if raw == "all" or raw == {"all": None} or raw == {"all": {}}:
        return VersionPolicy("all")
    hint = "must be 'all', {latest: N} or {specific: [versions]}"
    _expect(isinstance(raw, dict) and len(raw) == 1, where, hint)
    (kind, value), = raw.items()
    if kind == "latest":
        count = value if value is not None else 1
        _expect(isinstance(count, int) and not isinstance(count, bool) and count > 0,
                f"{where}.latest", f"must be a positive integer, got {count!r}")
        return VersionPolicy("latest", count=count)
    if kind == "specific":
        _expect(isinstance(value, list) and value, f"{where}.specific", "must be a non-empty list of versions")
        versions = tuple(sorted({_version(v, f"{where}.specific[{i}]") for i, v in enumerate(value)}))
        return VersionPolicy("specific", versions=versions)
    raise ConfigError(f"{where}: unknown policy {kind!r}; {hint}")


def _version(value: Any, where: str) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool) and value > 0,
            where, f"must be a positive integer version, got {value!r}")
    return int(value)


def _no_unknown_keys(raw: dict, allowed: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}: unknown key (allowed: {', '.join(allowed)})")


def _expect(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{where}: {message}")
