"""``python -m hathora_async``: the same program as the ``hathora-async`` console script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
