"""The typed, frozen description of one job: what `app.run` hands to everything below it.

The Hydra config stops at the edge: `app.run` validates it and turns it into a `JobSpec`
(``config.job_spec``); data, models, engines and the training loop read only these objects. They
are frozen (a job cannot change its own settings half-way) and hashable; a learning rate of a
grid is a new spec (`Component.replace`), not an edited config. Torch-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench import registry


class ConfigError(ValueError):
    """A configuration value that is well typed but not allowed; the message names the key,
    the value and what is allowed."""


def _frozen(value: Any) -> Any:
    """Lists (from the config) as tuples, so a spec is hashable and cannot be changed."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Component:
    """One registry entry chosen, with its options (the piece's keyword arguments)."""

    kind: str
    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, name: str, **options: Any) -> Component:
        return cls(kind, name, tuple((k, _frozen(v)) for k, v in options.items()))

    @property
    def entry(self) -> registry.Entry:
        return registry.entry(self.kind, self.name)

    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments."""
        return dict(self.options)

    def __getitem__(self, key: str) -> Any:
        return self.kwargs()[key]

    def replace(self, **changes: Any) -> Component:
        """This component with some options changed (``optimizer.replace(lr=0.1)``)."""
        unknown = set(changes) - set(self.kwargs())
        if unknown:
            raise KeyError(f"{self.kind} {self.name!r} has no option(s) {sorted(unknown)}")
        return Component.of(self.kind, self.name, **(self.kwargs() | changes))


@dataclass(frozen=True)
class DataSpec:
    """The dataset (its own options: a disk's radius, the moons' noise) and its sizes."""

    dataset: Component
    n_train: int  # training points per fold, validation points included
    n_test: int
    n_val: int  # the last n_val of the n_train points, held out for validation

    @property
    def entry(self) -> registry.Dataset:
        return self.dataset.entry  # type: ignore[return-value]

    @classmethod
    def of(cls, name: str, **changes: Any) -> DataSpec:
        """Dataset ``name`` with its registry defaults, some options or sizes changed
        (``DataSpec.of("disk", n_train=200, radius=0.2)``)."""
        options = registry.entry("dataset", name).options() | changes
        sizes = {key: options.pop(key) for key in ("n_train", "n_test", "n_val")}
        return cls(Component.of("dataset", name, **options), **sizes)


@dataclass(frozen=True)
class ModelSpec:
    """The architecture (its options: widths, channels), its activation and initialiser."""

    model: Component
    activation: Component
    init: str


@dataclass(frozen=True)
class TrainingSpec:
    """How every model of the job trains, and on which replicates."""

    loss: Component
    epochs: int
    batch_size: int
    folds: int
    seed: int
    vary: str  # the streams that differ between folds: all, data, init, shuffle, or crossed
    lrs: tuple[float, ...]  # the learning rates each fold trains (lr_grid, or optimizer.lr)


@dataclass(frozen=True)
class EngineSpec:
    """How the models are computed: one after another or stacked, where, in which precision."""

    name: str  # "sequential" or "stacked"
    chunk: int  # models per stacked program (0: sized automatically)
    threads: int
    device: str
    dtype: str


@dataclass(frozen=True)
class JobSpec:
    """One job: one configuration trained on every fold (and every learning rate of its grid),
    by each of its frameworks."""

    experiment: str
    frameworks: tuple[str, ...]
    data: DataSpec
    model: ModelSpec
    optimizer: Component
    training: TrainingSpec
    engine: EngineSpec

    def choices(self) -> dict[str, str]:
        """The configuration labels a row of the results table carries."""
        return {
            "experiment": self.experiment,
            "activation": self.model.activation.name,
            "optimizer": self.optimizer.name,
            "loss": self.training.loss.name,
            "init": self.model.init,
            "dtype": self.engine.dtype,
            "vary": self.training.vary,
            "engine": self.engine.name,
            "dataset": self.data.dataset.name,
            "model": self.model.model.name,
        }

    def replace_engine(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, engine=dataclasses.replace(self.engine, **changes))
