"""Studies: a research question as data (experiments and claims in
``bench/conf/study/<name>.yaml``), run by ``python -m bench.study NAME`` (``make sweep
STUDY=name``) until every claim is decided or the budget is spent."""

from bench.study.spec import (
    DEFAULT,
    KINDS,
    METRICS,
    STATE_FILE,
    STUDY_DIR,
    Budget,
    ClaimSpec,
    Study,
    StudyError,
    load,
    names,
    read_state,
    report_dir,
)

__all__ = [
    "DEFAULT",
    "KINDS",
    "METRICS",
    "STATE_FILE",
    "STUDY_DIR",
    "Budget",
    "ClaimSpec",
    "Study",
    "StudyError",
    "load",
    "names",
    "read_state",
    "report_dir",
]
