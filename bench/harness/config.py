"""The structured-config schema and its checks, and the edge where the config becomes a `JobSpec`.

Every component group (activation, loss, optimizer, init, dataset, model) takes its options from
`bench.registry`, registered in Hydra's ConfigStore by `register`, each option typed by its own
dataclass: Hydra refuses a wrong type or an unknown key before any training. `validate` checks the
values types cannot (ranges, sizes, the dataset, model and loss fitting together) and names the
key, the value and what is allowed; `job_spec` then turns the config into the frozen spec that
everything below `app.run` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from bench import registry

from .spec import (
    Component,
    ConfigError,
    DataSpec,
    EngineSpec,
    JobSpec,
    ModelSpec,
    TrainingSpec,
)

__all__ = ["Config", "ConfigError", "job_spec", "register", "validate"]


def _enum(name: str, column: str) -> type[StrEnum]:
    return StrEnum(name, {value: value for value in registry.levels(column)})  # type: ignore[return-value]


FrameworkName = _enum("FrameworkName", "framework")
DType = _enum("DType", "dtype")
Engine = _enum("Engine", "engine")  # stacked: a job's models as one batched program
Vary = _enum("Vary", "vary")  # which random streams differ between folds


@dataclass
class FrameworkConfig:
    names: list[FrameworkName] = field(default_factory=lambda: [FrameworkName.custom])


@dataclass
class Config:
    framework: FrameworkConfig = MISSING
    activation: Any = MISSING  # each group's option is typed by its registry entry's config
    optimizer: Any = MISSING
    loss: Any = MISSING
    init: Any = MISSING
    data: Any = MISSING  # the group `dataset`
    model: Any = MISSING
    name: str = "default"
    epochs: int = 100
    batch_size: int = 100
    folds: int = 10
    seed: int = 0
    dtype: DType = DType.float32
    device: str = "cpu"
    threads: int = 1
    lr_grid: list[float] = field(default_factory=list)  # train each lr (× each fold) in one job
    vary: Vary = Vary.all
    engine: Engine = Engine.stacked
    chunk: int = 0  # models per stacked program (0: sized so that a chunk takes seconds)


#: the longest job directory name kept as is, in bytes (file systems allow 255)
DIRNAME_MAX = 200


def job_dirname(overrides: str) -> str:
    """A job's directory name: its overrides (``activation=relu,folds=3``) when they fit a
    file name, else ``overrides-`` and a 16-digit hash of them (the full overrides are in the
    job's ``result.json``). ``conf/config.yaml`` names job directories with it."""
    if len(overrides.encode("utf-8")) <= DIRNAME_MAX:
        return overrides
    return "overrides-" + hashlib.sha256(overrides.encode("utf-8")).hexdigest()[:16]


def register() -> None:
    """Put the schema and every registry entry's option in Hydra's ConfigStore, and the
    ``bench_dirname`` resolver (`job_dirname`) in OmegaConf."""
    OmegaConf.register_new_resolver("bench_dirname", job_dirname, replace=True)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="schema/framework", name="framework", node=FrameworkConfig)
    for entry in registry.ENTRIES:
        package = registry.PACKAGES.get(entry.kind, entry.kind)
        store.store(group=entry.kind, name=entry.name, node=entry.config, package=package)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _check_device(device: str) -> None:
    """A device torch knows and this machine has (checked before any training)."""
    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", device)
    _require(match is not None, "device", device, "cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    import torch  # here, not at the top: the report reads this module without torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        _require(count > 0, "device", device, "CUDA is not available on this machine")
        _require(index is None or int(index) < count, "device", device, f"{count} CUDA device(s)")
    elif kind == "mps":
        _require(torch.backends.mps.is_available(), "device", device, "MPS is not available")


#: the seeds the results table stores (an int64 column)
SEED_MAX = 2**63 - 1
#: (largest finite, smallest positive) value of each dtype: a hyperparameter outside it becomes
#: inf or 0 once it meets the dtype's tensors
DTYPE_RANGE = {
    "float32": (3.4028234663852886e38, 1.401298464324817e-45),
    "float64": (sys.float_info.max, 5e-324),
}


def _check_keys(node: DictConfig, path: str = "") -> None:
    """Refuse keys the schema does not have. Hydra's ``+key=value`` adds a key even to a typed
    config (after the typo ``epoch=5`` it suggests ``+epoch=5``, which would train with ``epochs``
    unchanged): name the key and the nearest valid one."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        valid = [f.name for f in dataclasses.fields(schema)]
        for key in node:
            if key in valid or (not path and key == "hydra"):
                continue
            near = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean '{path}{near[0]}'? " if near else ""
            raise ConfigError(
                f"unknown key '{path}{key}': {hint}valid keys here: {', '.join(valid)}"
            )
    for key, value in node.items_ex(resolve=False) if isinstance(node, DictConfig) else ():
        if isinstance(value, DictConfig) and key != "hydra":
            _check_keys(value, f"{path}{key}.")


def _require_number(dtype: str, key: str, value: float, low: float, high: float) -> None:
    """``value`` finite, in [low, high], and representable in the run's dtype (neither inf nor
    rounded to 0 there)."""
    largest, smallest = DTYPE_RANGE[dtype]
    _require(math.isfinite(value), key, value, "a finite number")
    _require(low <= value <= high, key, value, f"in [{low:g}, {high:g}]")
    _require(
        abs(value) <= largest and (value == 0 or abs(value) >= smallest),
        key,
        value,
        f"representable in {dtype} (magnitude in [{smallest:.3g}, {largest:.3g}] or 0)",
    )


#: where each component kind's option is in the job config
NODES = {kind: registry.PACKAGES.get(kind, kind) for kind in registry.KINDS}


def _entry(cfg: DictConfig, kind: str) -> registry.Entry:
    """The registry entry of the option in ``cfg`` (its ``name``), of the option's config type."""
    node = cfg[NODES[kind]]
    name = node.name
    choices = registry.entries(kind)
    _require(name in choices, f"{NODES[kind]}.name", name, f"one of {', '.join(choices)}")
    entry = choices[name]
    _require(
        OmegaConf.get_type(node) is type(entry.config),
        f"{NODES[kind]}.name",
        name,
        f"the name of the {kind} chosen (select another with {kind}={name})",
    )
    return entry


def _check_numbers(cfg: DictConfig, kind: str) -> None:
    """Every number of a component's options finite and representable in the dtype (an
    optimizer's hyperparameters also non-negative); the piece itself checks the rest when the
    job is built (`models.check`)."""
    dtype = str(cfg.dtype.value)
    node = cfg[NODES[kind]]
    low = 0.0 if kind == "optimizer" else -math.inf
    for key, value in node.items():
        values = list(enumerate(value)) if isinstance(value, ListConfig) else [(None, value)]
        for index, item in values:
            if isinstance(item, float):
                where = f"{NODES[kind]}.{key}" + ("" if index is None else f"[{index}]")
                _require_number(dtype, where, item, low, math.inf)


def _check_task(cfg: DictConfig) -> None:
    """The dataset, model and loss must fit together (from what their entries declare)."""
    dataset = _entry(cfg, "dataset")
    model = _entry(cfg, "model")
    loss = _entry(cfg, "loss")
    assert isinstance(dataset, registry.Dataset) and isinstance(model, registry.Model)
    fitting = [n for n, e in registry.entries("loss").items() if e.task == dataset.task]
    _require(
        loss.task == dataset.task,
        "loss",
        loss.name,
        f"{' or '.join(fitting)} with dataset={dataset.name} "
        + ("(one output)" if dataset.task == "binary" else f"({dataset.classes} classes)"),
    )
    _require(
        not model.images or len(dataset.shape) == 3,
        "model",
        model.name,
        f"a dataset of images (C, H, W); dataset={dataset.name} has examples of shape "
        f"{dataset.shape}",
    )
    if dataset.size is not None:
        total = cfg.data.n_train + cfg.data.n_test
        _require(
            total <= dataset.size,
            "data.n_train + data.n_test",
            total,
            f"at most {dataset.size}, the number of {dataset.name} examples",
        )


def validate(cfg: DictConfig) -> None:
    """Check every value a type cannot: raises ConfigError naming key, value and what is allowed."""
    _check_keys(cfg)
    _require(0 <= cfg.seed <= SEED_MAX, "seed", cfg.seed, f"in [0, 2**63 - 1 = {SEED_MAX}]")
    _require(cfg.epochs >= 1, "epochs", cfg.epochs, "at least 1")
    _require(cfg.folds >= 1, "folds", cfg.folds, "at least 1")
    if cfg.vary.value == "crossed":  # every (data, init, shuffle) combination of L draws once
        levels = round(cfg.folds ** (1 / 3))
        _require(
            levels >= 2 and levels**3 == cfg.folds,
            "folds",
            cfg.folds,
            "with vary=crossed, a cube L**3 of L >= 2 levels per stream (8, 27, 64, 125, 216, ...)",
        )
    _require(cfg.threads >= 1, "threads", cfg.threads, "at least 1")
    _require(cfg.chunk >= 0, "chunk", cfg.chunk, ">= 0 (0: sized automatically)")
    _require(len(cfg.framework.names) >= 1, "framework.names", [], "custom and/or torch")
    _require(bool(cfg.name), "name", cfg.name, "a non-empty experiment name")
    for kind in registry.KINDS:
        _entry(cfg, kind)
        _check_numbers(cfg, kind)
    data = cfg.data
    _require(data.n_train >= 1, "data.n_train", data.n_train, "at least 1")
    _require(data.n_test >= 1, "data.n_test", data.n_test, "at least 1")
    n_fit = data.n_train - data.n_val
    _require(
        0 <= data.n_val < data.n_train,
        "data.n_val",
        data.n_val,
        f"in [0, data.n_train={data.n_train}): it is carved from the training points",
    )
    _require(
        1 <= cfg.batch_size <= n_fit,
        "batch_size",
        cfg.batch_size,
        f"between 1 and the training points left, data.n_train - data.n_val = {n_fit}",
    )
    model = cfg.model
    _require(model.hidden_width >= 1, "model.hidden_width", model.hidden_width, ">= 1")
    _require(model.hidden_layers >= 0, "model.hidden_layers", model.hidden_layers, ">= 0")
    for index, channels in enumerate(model.get("channels", [])):
        _require(channels >= 1, f"model.channels[{index}]", channels, ">= 1")
    _check_task(cfg)
    _check_device(cfg.device)
    for index, lr in enumerate(cfg.lr_grid):
        _require_number(str(cfg.dtype.value), f"lr_grid[{index}]", lr, 0.0, math.inf)
    _require(
        len(set(cfg.lr_grid)) == len(cfg.lr_grid), "lr_grid", list(cfg.lr_grid), "distinct values"
    )
    if cfg.engine.value == "stacked":
        for kind in registry.KINDS:
            entry = _entry(cfg, kind)
            _require(
                entry.stacks,
                "engine",
                "stacked",
                f"{kind}={entry.name} does not train stacked (use engine=sequential)",
            )


def _component(cfg: DictConfig, kind: str) -> Component:
    plain = OmegaConf.to_container(cfg[NODES[kind]], resolve=True)
    assert isinstance(plain, dict)
    name = plain.pop("name")
    return Component.of(kind, name, **plain)


def job_spec(cfg: DictConfig) -> JobSpec:
    """Validate ``cfg`` and turn it into the frozen `JobSpec` of its job (raises ConfigError)."""
    validate(cfg)
    dataset = _component(cfg, "dataset")
    sizes = {key: dataset[key] for key in ("n_train", "n_test", "n_val")}
    dataset = Component.of(
        "dataset", dataset.name, **{k: v for k, v in dataset.options if k not in sizes}
    )
    optimizer = _component(cfg, "optimizer")
    return JobSpec(
        experiment=str(cfg.name),
        frameworks=tuple(str(name.value) for name in cfg.framework.names),
        data=DataSpec(dataset, **sizes),
        model=ModelSpec(
            model=_component(cfg, "model"),
            activation=_component(cfg, "activation"),
            init=str(cfg.init.name),
        ),
        optimizer=optimizer,
        training=TrainingSpec(
            loss=_component(cfg, "loss"),
            epochs=int(cfg.epochs),
            batch_size=int(cfg.batch_size),
            folds=int(cfg.folds),
            seed=int(cfg.seed),
            vary=str(cfg.vary.value),
            lrs=tuple(float(lr) for lr in cfg.lr_grid) or (float(optimizer["lr"]),),
        ),
        engine=EngineSpec(
            name=str(cfg.engine.value),
            chunk=int(cfg.chunk),
            threads=int(cfg.threads),
            device=str(cfg.device),
            dtype=str(cfg.dtype.value),
        ),
    )
