"""One entry per component: every list of options (the Hydra groups, the config checks, the
builders, the torch twins, the report's labels and orders, the tests' grids) derives from
`bench.registry`; these tests fail when an entry and what it names disagree, or when a new
experiment is added in one place and forgotten in another."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import framework as fw
from bench import registry
from bench.harness import catalog, config
from bench.report import views

config.register()
ENTRIES = {f"{e.kind}-{e.name}": e for e in registry.ENTRIES}


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_entry_is_an_option_of_its_hydra_group_and_nothing_else(kind):
    group = ConfigStore.instance().repo[kind]
    assert {name.removesuffix(".yaml") for name in group} == set(registry.entries(kind))
    assert catalog.options(kind) == registry.levels(kind)


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_config_names_its_entry_and_its_options_reach_piece_and_twin(name):
    entry = ENTRIES[name]
    assert dataclasses.is_dataclass(entry.config) and entry.config.name == entry.name
    for reference, piece in ((entry.build, "build"), (entry.twin, "twin")):
        if reference is None:
            continue
        target = entry.load() if piece == "build" else entry.load_twin()
        accepted = inspect.signature(target).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        # a dataset's n_val is the harness's (carved from the training points it draws)
        options = [k for k in entry.options() if not (entry.kind == "dataset" and k == "n_val")]
        missing = [k for k in options if k not in accepted and not takes_any]
        assert not missing, f"{entry.kind} {entry.name}: {piece} {reference} lacks {missing}"


def test_init_entries_are_the_framework_schemes():
    assert registry.levels("init") == fw.INIT_SCHEMES


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.kind == "optimizer"])
def test_optimizer_config_defaults_are_torch_optims_and_the_entry_sets_lr(name):
    entry = ENTRIES[name]
    torch_defaults = inspect.signature(entry.load_twin()).parameters
    schema = type(entry.config)()
    for key, value in dataclasses.asdict(schema).items():
        if key in ("name", "lr"):
            assert OmegaConf.is_missing(OmegaConf.structured(schema), key)
            continue
        expected = torch_defaults[key].default
        assert value == (list(expected) if isinstance(expected, tuple) else expected), key
    assert entry.options()["lr"] > 0


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.kind == "activation"])
def test_activation_twin_is_torch_nn_with_the_same_outputs(name):
    entry = ENTRIES[name]
    ours, theirs = entry.load()(**entry.options()), entry.load_twin()(**entry.options())
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "name", [n for n, e in ENTRIES.items() if e.kind in ("activation", "model")]
)
def test_stacks_flag_says_whether_fw_stack_takes_it(name):
    """The flag the config checks read is what `fw.stack` does (a model of the entry, or the
    MLP with the entry's activation, on a dataset it fits)."""
    entry = ENTRIES[name]
    overrides = [f"{entry.kind}={entry.name}", "engine=sequential", "folds=1"]
    if entry.kind == "model" and entry.images:
        overrides += ["dataset=digits", "loss=ce"]
    from bench.harness import models

    job = config.job_spec(compose(*overrides))
    model = models.build_model(job, torch.Generator().manual_seed(0))
    try:
        fw.stack([model, model])
        stacks = True
    except TypeError:
        stacks = False
    assert stacks == entry.stacks


def compose(*overrides):
    from bench_utils import compose as hydra_compose

    return hydra_compose(*overrides)


@pytest.mark.parametrize("column", catalog.CONFIG_COLUMNS)
def test_every_value_of_column_has_a_label_and_the_column_a_title(column):
    unlabelled = [v for v in catalog.levels()[column] if v not in views.LABELS]
    assert not unlabelled
    assert column in views.COLUMN_TITLES


def test_a_value_shared_by_two_columns_has_one_label():
    seen: dict[str, str] = {}
    pairs = [(e.name, e.label) for e in registry.ENTRIES]
    pairs += [pair for values in registry.SETTINGS.values() for pair in values.items()]
    for value, label in pairs:
        assert seen.setdefault(value, label) == label, value


@pytest.mark.parametrize("name", list(catalog.experiments()))
def test_experiment_file_name_is_its_name_and_it_sweeps_known_values(name):
    experiment = catalog.experiments()[name]
    node = OmegaConf.load(catalog.CONF_DIR / "experiment" / f"{name}.yaml")
    assert node.name == name
    assert experiment.swept, f"{name} sweeps no configuration column"
    for column, values in experiment.expected().items():
        unknown = set(values) - set(catalog.levels()[column])
        assert not unknown, f"{name} sweeps unknown {column} values {unknown}"


def test_every_experiment_gets_a_figure_in_the_report():
    from bench.report import figures

    assert {entry[0] for entry in figures.FIGURES} == set(catalog.experiments())


def test_the_papers_study_which_make_sweep_runs_sweeps_every_experiment_of_the_conf_tree():
    from bench import study

    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "print-STUDY"],
        cwd=catalog.CONF_DIR.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == study.DEFAULT
    assert study.load(study.DEFAULT).experiments == tuple(catalog.experiments())
