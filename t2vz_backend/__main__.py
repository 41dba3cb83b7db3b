"""``python -m t2vz_backend``: the command line (see :mod:`t2vz_backend.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
