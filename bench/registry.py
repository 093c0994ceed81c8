"""Every component the harness offers, once: activations, losses, optimizers, initialisers,
datasets and models.

An entry is one option of a config group (``activation=gelu``): its name (the value in the
results table), its label in the report, its typed config (the Hydra group option, registered
from here in Hydra's ConfigStore: no YAML file per option), how to build the framework piece
and its torch twin (``"module:attribute"`` references, imported only when a job builds them, so
this module and the report never import torch), and whether it trains in a stacked program.
Everything else derives from this file: the config groups and their checks, the builders, the
torch twins, the report's labels and orders, the tests' grids.

Adding a component is: the piece (a class in ``framework/``, a function in
``bench/harness/datasets.py`` or ``models.py``), and one entry below (with a config dataclass if
it takes options). Options are keyword arguments of the piece and of its twin, by the same names
(the framework mirrors torch's signatures), so ``activation.approximate=tanh`` reaches both
``framework.GELU(approximate=...)`` and ``torch.nn.GELU(approximate=...)``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

# -- typed configs: one dataclass per set of options ------------------------------------------
# ``name`` is the entry's name (set below); the other fields are the piece's keyword arguments.


@dataclass
class ActivationConfig:
    name: str = MISSING


@dataclass
class LeakyReLUConfig(ActivationConfig):
    negative_slope: float = 0.01


@dataclass
class ELUConfig(ActivationConfig):
    alpha: float = 1.0


@dataclass
class GELUConfig(ActivationConfig):
    approximate: str = "none"  # or "tanh"


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class InitConfig:
    name: str = MISSING


# Optimizers: torch.optim's defaults for every hyperparameter but ``lr``, which each entry sets
# (the report's choice).
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
class AdamWConfig(AdamConfig):
    weight_decay: float = 1e-2  # torch.optim.AdamW's default: decoupled, θ ← θ (1 − γλ)


@dataclass
class RMSpropConfig:
    name: str = MISSING
    lr: float = MISSING
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False


#: the radius of the disk of area 1/2 centred in the unit square (balanced classes). The report's
#: text says 1/√2, which covers the whole square (every label 1): a transcription slip.
DISK_RADIUS = 1 / math.sqrt(2 * math.pi)


@dataclass
class DataConfig:
    """The sizes every dataset takes; a dataset's own options extend it."""

    name: str = MISSING
    n_train: int = 1000  # training points per fold
    n_test: int = 1000  # test points per fold
    n_val: int = 0  # validation points carved from the training points (0: none)


@dataclass
class DiskConfig(DataConfig):
    radius: float = DISK_RADIUS


@dataclass
class MoonsConfig(DataConfig):
    noise: float = 0.2  # sd of the Gaussian noise on each coordinate


@dataclass
class ModelConfig:
    """A stack of ``hidden_layers`` Linear layers of ``hidden_width``, the activation after each,
    then the output layer."""

    name: str = MISSING
    hidden_width: int = 25
    hidden_layers: int = 3


@dataclass
class CNNConfig(ModelConfig):
    """Convolution blocks (one per entry of ``channels``), then the ModelConfig's Linear head
    (``hidden_layers`` = 0: the output layer only; ``hidden_width`` then unused)."""

    channels: list[int] = field(default_factory=lambda: [16, 32])
    hidden_layers: int = 0


# -- entries ------------------------------------------------------------------------------------
KINDS = ("activation", "loss", "optimizer", "init", "dataset", "model")
"""The component kinds: each is a config group of that name and a column of the results."""

PACKAGES = {"dataset": "data"}
"""Where a group's option lands in the job config when not under the group's own name
(``dataset=moons`` fills ``data``, so ``data.noise=0.3``)."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One option of one component kind."""

    kind: str
    name: str
    label: str
    config: Any
    """The option's typed config with its defaults (a dataclass instance; ``name`` filled in)."""
    build: str | None
    """``"module:attribute"`` of what builds the framework piece from the options (None: the
    harness uses the name itself, as for an initialiser given to ``fw.Sequential(init=...)``)."""
    twin: str | None = None
    """``"module:attribute"`` of torch's equivalent, built with the same options (None: nothing
    to twin; the torch model loads the framework model's state)."""
    stacks: bool = True
    """Whether it trains in a stacked program (``engine=stacked``)."""

    def options(self) -> dict[str, Any]:
        """The default options: the config's fields but ``name``."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k != "name"}

    def load(self) -> Any:
        """The framework piece's builder (imports it)."""
        if self.build is None:
            raise TypeError(f"{self.kind} {self.name!r} has nothing to build")
        return resolve(self.build)

    def load_twin(self) -> Any:
        """Torch's equivalent (imports torch)."""
        if self.twin is None:
            raise TypeError(f"{self.kind} {self.name!r} has no torch twin")
        return resolve(self.twin)


@dataclass(frozen=True, kw_only=True)
class Loss(Entry):
    task: str
    """What it compares: ``"binary"`` (one sigmoid output and a 0/1 target) or ``"classes"``
    (class logits and integer classes)."""


@dataclass(frozen=True, kw_only=True)
class Dataset(Entry):
    shape: tuple[int, ...]
    """The shape of one example: ``(2,)`` for points, ``(1, 8, 8)`` for images."""
    classes: int = 2
    """2: a binary task (one output); more: that many class logits."""
    size: int | None = None
    """The examples there are (n_train + n_test at most); None: drawn fresh, any number."""

    @property
    def task(self) -> str:
        return "binary" if self.classes == 2 else "classes"

    @property
    def outputs(self) -> int:
        return 1 if self.classes == 2 else self.classes


@dataclass(frozen=True, kw_only=True)
class Model(Entry):
    images: bool = False
    """It needs image examples ``(C, H, W)``."""
    stack_chunk: int = 0
    """At most this many models per stacked program by default (0: no cap). A CNN's
    activations are large: past a few models a stacked step leaves the CPU's caches and costs
    more per model (measured for the digits CNN at batch 64: 1.1 ms per model-step at M = 3,
    1.2 at 5, 1.4 at 10, 1.8 at 30)."""
    eval_values: int = 1 << 17
    """Input values per evaluation forward (`bench.harness.training.predict`): a set is
    predicted in slices of its examples of about this size. The best size is measured, per
    family: an MLP's products grow more efficient up to slices of 2^17 input values (per
    evaluation of a set, 2^14 against 2^17 on 2 cores: the tuned Figure 3 stack of 256 disk
    MLPs 73 ms against 58 ms; 30 digits MLPs 73 ms against 34 ms, their torch.func peer 169 ms
    against 59 ms), while a CNN's activations, 16 times its input, leave the cache past 2^14
    (5 digits CNNs: 106 ms against 129 ms)."""


def _activation(name: str, label: str, piece: str, config: type = ActivationConfig) -> Entry:
    """An activation whose framework class and torch.nn class share their name."""
    return Entry(
        kind="activation",
        name=name,
        label=label,
        config=config(name=name),
        build=f"framework:{piece}",
        twin=f"torch.nn:{piece}",
    )


def _loss(name: str, label: str, piece: str, task: str) -> Loss:
    return Loss(
        kind="loss",
        name=name,
        label=label,
        config=LossConfig(name=name),
        build=f"framework:{piece}",
        twin=f"torch.nn:{piece}",
        task=task,
    )


def _optimizer(name: str, label: str, piece: str, config: Any) -> Entry:
    return Entry(
        kind="optimizer",
        name=name,
        label=label,
        config=config,
        build=f"framework.optim:{piece}",
        twin=f"torch.optim:{piece}",
    )


def _dataset(name: str, label: str, config: Any, **facts: Any) -> Dataset:
    """A dataset whose function is ``bench.harness.datasets.<name>``."""
    build = f"bench.harness.datasets:{name}"
    return Dataset(kind="dataset", name=name, label=label, config=config(name=name), build=build,
                   **facts)  # fmt: skip


def _model(name: str, label: str, config: Any, **facts: Any) -> Model:
    """A model whose layers ``bench.harness.models.<name>`` builds."""
    build = f"bench.harness.models:{name}"
    return Model(kind="model", name=name, label=label, config=config(name=name), build=build,
                 **facts)  # fmt: skip


def _init(name: str, label: str) -> Entry:
    return Entry(kind="init", name=name, label=label, config=InitConfig(name=name), build=None)


ENTRIES: tuple[Entry, ...] = (
    _activation("relu", "ReLU", "ReLU"),
    _activation("tanh", "Tanh", "Tanh"),
    _activation("leaky_relu", "LeakyReLU", "LeakyReLU", LeakyReLUConfig),
    _activation("elu", "ELU", "ELU", ELUConfig),
    _activation("gelu", "GELU", "GELU", GELUConfig),
    _loss("mse", "MSE", "MSELoss", "binary"),
    _loss("bce", "BCE", "BCELoss", "binary"),
    _loss("ce", "cross-entropy", "CrossEntropyLoss", "classes"),
    _optimizer("sgd", "SGD", "SGD", SGDConfig(name="sgd", lr=0.5)),
    _optimizer(
        "sgd_momentum",
        "SGD + momentum",
        "SGD",
        SGDConfig(name="sgd_momentum", lr=0.1, momentum=0.9),
    ),
    _optimizer("adam", "Adam", "Adam", AdamConfig(name="adam", lr=0.001)),
    _optimizer("adamw", "AdamW", "AdamW", AdamWConfig(name="adamw", lr=0.001)),
    # the report's lr (torch's default is 0.01)
    _optimizer("rmsprop", "RMSprop", "RMSprop", RMSpropConfig(name="rmsprop", lr=0.001)),
    _init("default", "torch default"),
    _init("xavier_uniform", "Xavier uniform"),
    _init("xavier_normal", "Xavier normal"),
    _init("kaiming_uniform", "Kaiming uniform"),
    _init("kaiming_normal", "Kaiming normal"),
    _dataset("disk", "disk (2-d points)", DiskConfig, shape=(2,)),
    _dataset("moons", "two moons (2-d points)", MoonsConfig, shape=(2,)),
    _dataset(
        "digits",
        "digits (8×8 images)",
        functools.partial(DataConfig, n_train=1437, n_test=360),  # 80% / 20% of the 1,797
        shape=(1, 8, 8),
        classes=10,
        size=1797,
    ),
    _model("mlp", "MLP", ModelConfig),
    # fw.stack takes Linear and element-wise layers only
    _model("cnn", "CNN", CNNConfig, images=True, stack_chunk=5, eval_values=1 << 14),
)
"""Every component, in the order figures, tables and option lists use."""

SETTINGS: dict[str, dict[str, str]] = {
    "framework": {"custom": "Custom framework", "torch": "PyTorch (torch.nn)"},
    "dtype": {"float32": "float32", "float64": "float64"},
    "vary": {
        "all": "all streams",
        "data": "data (points)",
        "init": "init (weights)",
        "shuffle": "shuffle (batch order)",
        "crossed": "crossed (data × init × shuffle)",
    },
    "engine": {"stacked": "stacked", "sequential": "sequential"},
}
"""The other configuration columns: each value and its label, in order."""

COLUMNS: tuple[str, ...] = (
    "framework",
    "activation",
    "optimizer",
    "loss",
    "init",
    "dtype",
    "vary",
    "engine",
    "dataset",
    "model",
)
"""The columns of the results table that name a configuration, in the table's order."""

TITLES: dict[str, str] = {
    "framework": "Framework",
    "activation": "Activation",
    "optimizer": "Optimizer",
    "loss": "Loss",
    "init": "Initializer",
    "dtype": "dtype",
    "vary": "Varying stream",
    "engine": "Engine",
    "dataset": "Dataset",
    "model": "Model",
    "lr": "lr",
}
"""Each column's title in the report."""


def entries(kind: str) -> dict[str, Entry]:
    """The entries of one kind, by name, in order."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; one of {', '.join(KINDS)}")
    return {e.name: e for e in ENTRIES if e.kind == kind}


def entry(kind: str, name: str) -> Entry:
    """One entry; ValueError naming the valid names when there is none."""
    found = entries(kind)
    if name not in found:
        raise ValueError(f"unknown {kind} {name!r}; one of {', '.join(found)}")
    return found[name]


def levels(column: str) -> tuple[str, ...]:
    """Every value of a configuration column, in order."""
    if column in KINDS:
        return tuple(entries(column))
    return tuple(SETTINGS[column])


def labels() -> dict[str, str]:
    """The report's label of every value of every column (values are unique across columns,
    or share their label)."""
    out = {e.name: e.label for e in ENTRIES}
    for values in SETTINGS.values():
        out |= values
    return out


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imports the module)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def references() -> tuple[str, ...]:
    """Every ``"module:attribute"`` reference of the entries (the modules a job may import by
    name: the code fingerprint follows them)."""
    found = [ref for e in ENTRIES for ref in (e.build, e.twin) if ref is not None]
    return tuple(dict.fromkeys(found))
