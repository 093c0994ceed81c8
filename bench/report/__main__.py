"""``python -m bench.report [--results FILE] [--out DIR]`` (see bench/report/build.py)."""

import sys

from bench.report.build import main

if __name__ == "__main__":
    sys.exit(main())
