"""``python -m bench.study NAME``: run a study and write its report (bench/study/run.py)."""

import sys

from bench.study.run import main

if __name__ == "__main__":
    sys.exit(main())
