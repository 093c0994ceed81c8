"""``python -m bench [overrides]``: the Hydra app (see bench/harness/app.py)."""

from bench.harness.app import cli

if __name__ == "__main__":
    cli()
