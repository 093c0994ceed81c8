"""``python -m bench [overrides]``: the Hydra app (see bench/app.py)."""

from .app import main

if __name__ == "__main__":
    main()
