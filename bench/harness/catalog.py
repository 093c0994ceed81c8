"""What the configuration offers: each column's values in canonical order (from
`bench.registry`) and the experiments of ``conf/experiment`` with what they sweep. The report's
labels and orders, the Makefile's experiment list (the files of ``conf/experiment``) and the
tests' grids derive from here.

Torch-free (YAML and the registry only), so the report can use it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from bench import registry

#: the configuration tree, shipped inside the package
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

#: config groups: the framework choice (one YAML file per option) and every component kind
GROUPS = ("framework", *registry.KINDS)

#: table columns that name a configuration
CONFIG_COLUMNS: tuple[str, ...] = registry.COLUMNS


def options(group: str) -> tuple[str, ...]:
    """The options of a config group: a component kind's registry entries; the framework
    group's YAML files."""
    if group in registry.KINDS:
        return tuple(registry.entries(group))
    directory = CONF_DIR / group
    if not directory.is_dir():
        raise ValueError(f"no config group {group!r} in {CONF_DIR}")
    return tuple(sorted(path.stem for path in directory.glob("*.yaml")))


@dataclass(frozen=True)
class Experiment:
    """One file of ``conf/experiment``: what it is and what its sweep varies."""

    name: str
    description: str
    defaults: dict[str, str]
    """The groups it overrides: ``{"framework": "both", ...}``."""
    sweep: dict[str, tuple[str, ...]]
    """Its ``hydra.sweeper.params``, in file order: ``{"activation": ("relu", ...), ...}``."""
    lr_grid: tuple[float, ...] = ()
    """The learning rates each of its jobs trains (empty: one, ``optimizer.lr``)."""
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    """Column values it sets apart from its defaults list: ``{"engine": "sequential"}``."""

    def fixed(self) -> dict[str, str]:
        """The configuration columns it holds at a value other than the default job's."""
        out = {k: v for k, v in self.defaults.items() if k in CONFIG_COLUMNS and k != "framework"}
        return out | self.settings

    @property
    def swept(self) -> tuple[str, ...]:
        """The configuration columns that differ between its jobs (or within one: ``framework``
        when a job trains both frameworks side by side)."""
        return tuple(self.expected())

    def expected(self) -> dict[str, tuple[str, ...]]:
        """The values each swept column is meant to take in this experiment's results."""
        frameworks: list[str] = []
        for option in self.sweep.get("framework") or (self.defaults.get("framework", "custom"),):
            names = OmegaConf.load(CONF_DIR / "framework" / f"{option}.yaml").names
            frameworks += [str(name) for name in names if str(name) not in frameworks]
        out = {"framework": tuple(frameworks)} if len(frameworks) > 1 else {}
        for column, values in self.sweep.items():
            if column in CONFIG_COLUMNS and column != "framework":
                out[column] = values
        return out


def _sweep_values(value: object) -> tuple[str, ...]:
    if isinstance(value, (list, ListConfig)):
        return tuple(str(v) for v in value)
    return tuple(v.strip() for v in str(value).split(","))


def _description(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines)


def _experiment(path: Path) -> Experiment:
    node = OmegaConf.load(path)
    assert isinstance(node, DictConfig)
    defaults = {}
    for entry in node.get("defaults", []):
        if isinstance(entry, (dict, DictConfig)):
            for key, value in entry.items():
                group = str(key).removeprefix("override ").strip().lstrip("/")
                defaults[group] = str(value)
    params = OmegaConf.select(node, "hydra.sweeper.params", default=None) or {}
    sweep = {str(key): _sweep_values(value) for key, value in params.items()}
    grid = tuple(float(lr) for lr in node.get("lr_grid", []))
    settings = {
        column: str(node[column])
        for column in registry.SETTINGS
        if column != "framework" and column in node
    }
    name = str(node.get("name", path.stem))
    return Experiment(name, _description(path), defaults, sweep, grid, settings)


@functools.cache
def experiments() -> dict[str, Experiment]:
    """Every experiment of ``conf/experiment``, by name, in file-name order."""
    found = [_experiment(p) for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
    return {e.name: e for e in found}


@functools.cache
def defaults() -> dict[str, str]:
    """The value of each configuration column in the default job (``conf/config.yaml``)."""
    node = OmegaConf.load(CONF_DIR / "config.yaml")
    chosen = {
        str(key): str(value)
        for entry in node.get("defaults", [])
        if isinstance(entry, (dict, DictConfig))
        for key, value in entry.items()
    }
    out = {column: chosen.get(column, str(node.get(column))) for column in CONFIG_COLUMNS}
    names = OmegaConf.load(CONF_DIR / "framework" / f"{out['framework']}.yaml").names
    out["framework"] = str(names[0])
    return out


@functools.cache
def levels() -> dict[str, tuple[str, ...]]:
    """Every value of each configuration column, in canonical order (the registry's)."""
    return {column: registry.levels(column) for column in CONFIG_COLUMNS}


def main() -> None:
    """``python -m bench.harness.catalog``: the experiments and each column's values."""
    for name, experiment in experiments().items():
        print(f"experiment {name}: sweeps {', '.join(experiment.swept) or '-'}")
    for column, values in levels().items():
        print(f"{column}: {', '.join(values)}")


if __name__ == "__main__":
    main()
