"""Where the spread between folds comes from: the variance table of ``variance_sources``."""

from __future__ import annotations

import numpy as np
import pytest

from bench.report import variance


def test_variance_shares_recover_known_sources():
    """Draws with known sds: each source's variance interval covers its true variance, and the
    share of the all-streams variance is near its true share."""
    import pandas as pd

    rng = np.random.default_rng(11)
    truth = {"data": 0.02, "init": 0.03, "shuffle": 0.005, "all": 0.037}
    rows = [
        {"vary": source, "test_error": 0.1 + rng.normal(0, sd), "fold": k}
        for source, sd in truth.items()
        for k in range(200)
    ]
    frame = pd.DataFrame(rows)
    table = variance.variance_table_from(frame)
    by = table.set_index("source")
    for source, sd in truth.items():
        assert by.loc[source, "variance_ci_low"] <= sd**2 <= by.loc[source, "variance_ci_high"]
    assert by.loc["init", "share"] == pytest.approx(0.03**2 / 0.037**2, rel=0.3)
    assert by.loc["all", "share"] == 1.0 and np.isnan(by.loc["all", "share_ci_low"])
