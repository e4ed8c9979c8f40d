"""``python -m colorlab.sweep --config sweeps/X.yaml``: the design card's form of ``python -m colorlab sweep``."""

from __future__ import annotations

import sys

from colorlab.cli import main

if __name__ == "__main__":
    main(["sweep", *sys.argv[1:]])
