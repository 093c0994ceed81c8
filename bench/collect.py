"""``python -m bench.collect RUNS_DIR --out FILE``: every job's result as one tidy table
(the implementation is bench/harness/collect.py)."""

import sys

from bench.harness.collect import main

if __name__ == "__main__":
    sys.exit(main())
