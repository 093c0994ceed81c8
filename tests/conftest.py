"""Shared fixtures. ``parity`` records every framework-vs-torch comparison of the session and the
terminal summary reports how many there were and the largest difference seen:

    def test_something(parity):
        parity.check("relu grad_input", ours, theirs)        # asserts and records
        parity.record("adam params", max_abs_diff)           # records a number computed elsewhere
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, settings

# One hypothesis profile for every property test: reproducible (derandomized, no example
# database) and without deadlines (a float64 autograd comparison can take a while). A test file
# only sets its own ``max_examples``.
settings.register_profile(
    "framework",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("framework")


class Parity:
    """The largest |ours − torch| per named case, and how close each came to its tolerance."""

    def __init__(self) -> None:
        self.cases: dict[str, float] = {}  # case -> largest |diff|
        self.used: dict[str, float] = {}  # case -> largest |diff| / (atol + rtol·|expected|)
        self.comparisons = 0

    def record(self, name: str, max_abs_diff: float, tolerance_used: float = 0.0) -> None:
        self.comparisons += 1
        self.cases[name] = max(self.cases.get(name, 0.0), float(max_abs_diff))
        self.used[name] = max(self.used.get(name, 0.0), float(tolerance_used))

    def check(
        self,
        name: str,
        actual: torch.Tensor,
        expected: torch.Tensor,
        *,
        atol: float = 1e-10,
        rtol: float = 1e-10,
    ) -> None:
        """``torch.testing.assert_close(actual, expected, atol, rtol)``, recorded under ``name``."""
        expected = torch.as_tensor(expected).detach()
        actual = torch.as_tensor(actual)
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        if actual.numel():
            diff = (actual - expected).abs()
            used = (diff / (atol + rtol * expected.abs())).max().item()
            self.record(name, diff.max().item(), used)
        torch.testing.assert_close(
            actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}"
        )

    def merge(self, other: dict) -> None:
        for name, diff in other["cases"].items():
            self.cases[name] = max(self.cases.get(name, 0.0), diff)
        for name, used in other["used"].items():
            self.used[name] = max(self.used.get(name, 0.0), used)
        self.comparisons += other["comparisons"]

    def summary(self) -> list[str]:
        if not self.cases:
            return []
        worst = max(self.cases, key=lambda name: self.cases[name])
        closest = max(self.used, key=lambda name: self.used[name])
        return [
            f"parity: {len(self.cases)} cases ({self.comparisons} comparisons), "
            f"largest |diff| = {self.cases[worst]:.3g} ({worst})",
            f"parity: closest to tolerance = {self.used[closest]:.3g} of atol + rtol·|expected| "
            f"({closest})",
        ]


_PARITY = Parity()


@pytest.fixture(scope="session")
def parity() -> Parity:
    return _PARITY


@pytest.fixture(scope="module", autouse=True)
def _framework_tests_on_one_thread(request: pytest.FixtureRequest):
    """The framework tests use tiny tensors: one intra-op thread is fastest and keeps them quick
    on a loaded 2-core machine (OpenMP threads spinning against each other cost 10x)."""
    if not request.module.__name__.rpartition(".")[2].startswith("test_framework_"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist each worker sends its records to the controller.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["parity"] = {
            "cases": _PARITY.cases,
            "used": _PARITY.used,
            "comparisons": _PARITY.comparisons,
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    records = getattr(node, "workeroutput", {}).get("parity")
    if records:
        _PARITY.merge(records)


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _PARITY.summary():
        terminalreporter.write_line(line)
    if _PARITY.cases and any(math.isnan(d) for d in _PARITY.cases.values()):
        terminalreporter.write_line("parity: some comparisons produced NaN differences")
