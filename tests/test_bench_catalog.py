"""One source for every list: the conf/ tree and the config enums. The report's labels and orders,
the Makefile's experiments and the tests' grids derive from it; these tests fail when a new option
or experiment is added in one place and forgotten in another."""

from __future__ import annotations

import subprocess

import pytest
from omegaconf import OmegaConf

from bench.harness import catalog
from bench.report import views

ENUM_GROUPS = [c for c, enum in catalog.COLUMN_ENUMS.items() if enum and c in catalog.GROUPS]


@pytest.mark.parametrize("group", catalog.GROUPS)
def test_every_option_file_of_group_names_itself(group):
    for option in catalog.options(group):
        node = OmegaConf.load(catalog.CONF_DIR / group / f"{option}.yaml")
        if group == "framework":
            assert set(node.names) <= set(catalog.levels()["framework"]), option
        else:
            assert node.name == option, f"{group}/{option}.yaml says name: {node.name}"


@pytest.mark.parametrize("group", [g for g in ENUM_GROUPS if g != "framework"])
def test_enum_of_group_lists_exactly_its_files(group):
    assert set(catalog.levels()[group]) == set(catalog.options(group))


@pytest.mark.parametrize("column", catalog.CONFIG_COLUMNS)
def test_every_value_of_column_has_a_label_in_the_report(column):
    unlabelled = [v for v in catalog.levels()[column] if v not in views.LABELS]
    assert not unlabelled, f"add a label to bench/report/views.py LABELS for {unlabelled}"
    assert column in views.COLUMN_TITLES


def test_kaiming_normal_is_a_known_level_with_a_label():
    assert "kaiming_normal" in views.LEVELS["init"]
    assert views.label("kaiming_normal") == "Kaiming normal"


def test_every_experiment_has_a_figure_title_in_the_report():
    assert set(views.PRESENTATION) == set(catalog.experiments())


@pytest.mark.parametrize("name", list(catalog.experiments()))
def test_experiment_file_name_is_its_name_and_it_sweeps_known_values(name):
    experiment = catalog.experiments()[name]
    node = OmegaConf.load(catalog.CONF_DIR / "experiment" / f"{name}.yaml")
    assert node.name == name
    assert experiment.swept, f"{name} sweeps no configuration column"
    for column, values in experiment.expected().items():
        unknown = set(values) - set(catalog.levels()[column])
        assert not unknown, f"{name} sweeps unknown {column} values {unknown}"


def test_makefile_sweeps_every_experiment_of_the_conf_tree():
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "print-EXPERIMENTS"],
        cwd=catalog.CONF_DIR.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == list(catalog.experiments())


def test_optimizer_defaults_are_torch_defaults_and_lr_comes_from_its_file():
    """The schema holds torch.optim's defaults; each file of conf/optimizer sets lr (one place)."""
    import inspect

    import torch

    from bench.harness import config

    for schema, algorithm in config.ALGORITHMS.items():
        torch_defaults = inspect.signature(getattr(torch.optim, algorithm)).parameters
        for key, value in vars(schema()).items():
            if key in ("name", "lr"):
                assert OmegaConf.is_missing(OmegaConf.structured(schema), key)
                continue
            expected = torch_defaults[key].default
            assert value == (list(expected) if isinstance(expected, tuple) else expected), key
    for option in catalog.options("optimizer"):
        node = OmegaConf.load(catalog.CONF_DIR / "optimizer" / f"{option}.yaml")
        assert "lr" in node, f"conf/optimizer/{option}.yaml sets no lr"
