#!/usr/bin/env python3
"""The benchmark's command: ``python bench/run.py --help``. Its code is the ``bench`` package around this file."""

import sys

sys.dont_write_bytecode = True  # the bench writes nothing to the project tree

from pathlib import Path  # noqa: E402

if __name__ == "__main__":
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # where ``bench`` is a package
    from bench.cli import main

    sys.exit(main())
