"""Entry point: ``python -m benchmarks.run [...]`` or ``python benchmarks/run.py [...]``."""

import os
import sys

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import main

if __name__ == "__main__":
    sys.exit(main())
