"""The structured-config schema: every group and knob typed, so Hydra rejects a wrong type or an
unknown key before any training; `validate` checks the values types cannot (ranges, sizes)."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

#: Radius of the disk of area 1/2 centred in the unit square: balanced classes. The report's text
#: says 1/√2, which covers the whole square (every label 1): a transcription slip.
DISK_RADIUS = 1 / math.sqrt(2 * math.pi)


class ActivationName(StrEnum):
    relu = "relu"
    tanh = "tanh"
    leaky_relu = "leaky_relu"
    elu = "elu"


class LossName(StrEnum):
    mse = "mse"
    bce = "bce"
    ce = "ce"  # cross-entropy over class logits (the digits task)


class InitName(StrEnum):
    default = "default"
    xavier_uniform = "xavier_uniform"
    xavier_normal = "xavier_normal"
    kaiming_uniform = "kaiming_uniform"
    kaiming_normal = "kaiming_normal"


class FrameworkName(StrEnum):
    custom = "custom"
    torch = "torch"


class DType(StrEnum):
    float32 = "float32"
    float64 = "float64"


class DatasetName(StrEnum):
    disk = "disk"  # the report's task: 2-d points, label 1 inside a disk
    digits = "digits"  # scikit-learn's bundled 8x8 handwritten digits, 10 classes


class ModelName(StrEnum):
    mlp = "mlp"  # Linear layers (hidden_layers × hidden_width) with the configured activation
    cnn = "cnn"  # (Conv2d-BatchNorm2d-ReLU-MaxPool2d) × 2, Flatten, Linear: digits only


class Engine(StrEnum):
    """How a job trains its models (folds × learning rates)."""

    stacked = "stacked"  # as one batched program (framework.stack; torch.func for torch.nn)
    sequential = "sequential"  # one after another


class Vary(StrEnum):
    """Which random streams differ between folds (the others stay at fold 0's)."""

    all = "all"
    data = "data"
    init = "init"
    shuffle = "shuffle"


@dataclass
class FrameworkConfig:
    names: list[FrameworkName] = field(default_factory=lambda: [FrameworkName.custom])


@dataclass
class ActivationConfig:
    name: ActivationName = ActivationName.relu
    negative_slope: float = 0.01  # leaky_relu only
    alpha: float = 1.0  # elu only


@dataclass
class LossConfig:
    name: LossName = LossName.mse


@dataclass
class InitConfig:
    name: InitName = InitName.default


# Optimizers: torch.optim's defaults for every hyperparameter but ``lr``, which each file of
# conf/optimizer/ sets (the report's choice); ``name`` is the label in tables and figures.
@dataclass
class SGDConfig:
    name: str = MISSING
    lr: float = MISSING
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass
class AdamConfig:
    name: str = MISSING
    lr: float = MISSING
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class RMSpropConfig:
    name: str = MISSING
    lr: float = MISSING
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False


#: schema class -> framework optimizer class name
ALGORITHMS = {SGDConfig: "SGD", AdamConfig: "Adam", RMSpropConfig: "RMSprop"}


@dataclass
class DataConfig:
    name: DatasetName = DatasetName.disk
    n_train: int = 1000
    n_test: int = 1000
    n_val: int = 0  # validation points carved from the n_train training points (0: none)
    radius: float = DISK_RADIUS


@dataclass
class ModelConfig:
    name: ModelName = ModelName.mlp
    hidden_width: int = 25
    hidden_layers: int = 3


@dataclass
class Config:
    framework: FrameworkConfig = MISSING
    activation: ActivationConfig = MISSING
    optimizer: Any = MISSING
    loss: LossConfig = MISSING
    init: InitConfig = MISSING
    name: str = "default"
    epochs: int = 100
    batch_size: int = 100
    folds: int = 10
    seed: int = 0
    dtype: DType = DType.float32
    device: str = "cpu"
    threads: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr_grid: list[float] = field(default_factory=list)  # train each lr (× each fold) in one job
    vary: Vary = Vary.all
    engine: Engine = Engine.stacked
    chunk: int = 0  # models per stacked program (0: sized so that a chunk takes seconds)


def register() -> None:
    """Put the schema in Hydra's ConfigStore (the YAML files extend these nodes)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    # In their own "schema" groups, so they are not listed among a group's choices.
    store.store(group="schema/framework", name="framework", node=FrameworkConfig)
    store.store(group="schema/activation", name="activation", node=ActivationConfig)
    store.store(group="schema/loss", name="loss", node=LossConfig)
    store.store(group="schema/init", name="init", node=InitConfig)
    store.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    store.store(group="schema/optimizer", name="adam", node=AdamConfig)
    store.store(group="schema/optimizer", name="rmsprop", node=RMSpropConfig)


class ConfigError(ValueError):
    """A configuration value that is well typed but not allowed."""


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def algorithm(cfg: DictConfig) -> str:
    """The framework optimizer class name for ``cfg.optimizer`` (from its schema)."""
    schema = OmegaConf.get_type(cfg.optimizer)
    if schema not in ALGORITHMS:
        raise ConfigError(f"optimizer: unknown schema {schema!r}; use one of conf/optimizer/*.yaml")
    return ALGORITHMS[schema]


def _check_device(device: str) -> None:
    """A device torch knows and this machine has (checked before any training)."""
    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", device)
    _require(match is not None, "device", device, "cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    import torch  # here, not at the top: the report reads this module's enums without torch

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


def _require_number(cfg: DictConfig, key: str, value: float, low: float, high: float) -> None:
    """``value`` finite, in [low, high], and representable in the run's dtype (neither inf nor
    rounded to 0 there)."""
    largest, smallest = DTYPE_RANGE[str(cfg.dtype.value)]
    _require(math.isfinite(value), key, value, "a finite number")
    _require(low <= value <= high, key, value, f"in [{low:g}, {high:g}]")
    _require(
        abs(value) <= largest and (value == 0 or abs(value) >= smallest),
        key,
        value,
        f"representable in {cfg.dtype.value} (magnitude in [{smallest:.3g}, {largest:.3g}] or 0)",
    )


#: images in scikit-learn's bundled digits data
DIGITS_SIZE = 1797
#: the losses each dataset's task takes: one sigmoid output, or class logits
TASK_LOSSES = {"disk": ("mse", "bce"), "digits": ("ce",)}


def _check_task(cfg: DictConfig) -> None:
    """The dataset, model and loss must fit together."""
    dataset, model, loss = cfg.data.name.value, cfg.model.name.value, cfg.loss.name.value
    if dataset == "digits":
        _require(
            loss in TASK_LOSSES[dataset], "loss", loss, "ce with data.name=digits (10 classes)"
        )
        total = cfg.data.n_train + cfg.data.n_test
        _require(
            total <= DIGITS_SIZE,
            "data.n_train + data.n_test",
            total,
            f"at most {DIGITS_SIZE}, the number of digits images",
        )
    else:
        _require(
            loss in TASK_LOSSES[dataset],
            "loss",
            loss,
            "mse or bce with data.name=disk (one output)",
        )
        _require(model == "mlp", "model.name", model, "mlp with data.name=disk (2-d points)")


def validate(cfg: DictConfig) -> None:
    """Check every value a type cannot: raises ConfigError naming key, value and what is allowed."""
    _check_keys(cfg)
    _require(0 <= cfg.seed <= SEED_MAX, "seed", cfg.seed, f"in [0, 2**63 - 1 = {SEED_MAX}]")
    _require(cfg.epochs >= 1, "epochs", cfg.epochs, "at least 1")
    _require(cfg.folds >= 1, "folds", cfg.folds, "at least 1")
    _require(cfg.threads >= 1, "threads", cfg.threads, "at least 1")
    _require(cfg.chunk >= 0, "chunk", cfg.chunk, ">= 0 (0: sized automatically)")
    _require(cfg.data.n_train >= 1, "data.n_train", cfg.data.n_train, "at least 1")
    _require(cfg.data.n_test >= 1, "data.n_test", cfg.data.n_test, "at least 1")
    n_fit = cfg.data.n_train - cfg.data.n_val
    _require(
        0 <= cfg.data.n_val < cfg.data.n_train,
        "data.n_val",
        cfg.data.n_val,
        f"in [0, data.n_train={cfg.data.n_train}): it is carved from the training points",
    )
    _require(
        1 <= cfg.batch_size <= n_fit,
        "batch_size",
        cfg.batch_size,
        f"between 1 and the training points left, data.n_train - data.n_val = {n_fit}",
    )
    _require(cfg.model.hidden_width >= 1, "model.hidden_width", cfg.model.hidden_width, ">= 1")
    _require(cfg.model.hidden_layers >= 0, "model.hidden_layers", cfg.model.hidden_layers, ">= 0")
    _require(len(cfg.framework.names) >= 1, "framework.names", [], "custom and/or torch")
    _require(bool(cfg.name), "name", cfg.name, "a non-empty experiment name")
    _check_task(cfg)
    _require(
        0 < cfg.data.radius < math.sqrt(0.5),
        "data.radius",
        cfg.data.radius,
        "in (0, 0.7071): at 1/sqrt(2) the disk covers the square and every label is 1",
    )
    _check_device(cfg.device)
    activation = cfg.activation
    defaults = ActivationConfig()
    for key, owner in (("negative_slope", "leaky_relu"), ("alpha", "elu")):
        _require_number(cfg, f"activation.{key}", activation[key], -math.inf, math.inf)
        _require(
            activation.name == owner or activation[key] == getattr(defaults, key),
            f"activation.{key}",
            activation[key],
            f"only with activation={owner} (it would be ignored by {activation.name.value})",
        )
    optimizer = cfg.optimizer
    name = algorithm(cfg)
    for key in ("lr", "weight_decay", "eps", "momentum", "dampening", "alpha"):
        if key in optimizer:
            _require_number(cfg, f"optimizer.{key}", optimizer[key], 0.0, math.inf)
    for index, lr in enumerate(cfg.lr_grid):
        _require_number(cfg, f"lr_grid[{index}]", lr, 0.0, math.inf)
    _require(
        len(set(cfg.lr_grid)) == len(cfg.lr_grid), "lr_grid", list(cfg.lr_grid), "distinct values"
    )
    if name == "Adam":
        _require(len(optimizer.betas) == 2, "optimizer.betas", list(optimizer.betas), "a pair")
        for index, beta in enumerate(optimizer.betas):
            _require_number(cfg, f"optimizer.betas[{index}]", beta, 0.0, 1.0)
            _require(beta < 1, f"optimizer.betas[{index}]", beta, "in [0, 1)")
    if name == "SGD" and optimizer.nesterov:
        _require(
            optimizer.momentum > 0 and optimizer.dampening == 0,
            "optimizer.nesterov",
            True,
            "only with momentum > 0 and dampening = 0",
        )
    # last: it builds a model, which needs every value above checked
    if cfg.engine.value == "stacked":
        from .models import stack_problem  # here: it builds a model, with torch and framework

        problem = stack_problem(cfg)
        _require(problem is None, "engine", "stacked", f"{problem} (use engine=sequential)")
