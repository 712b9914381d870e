"""``python -m aiosfstream``: the same as the ``aiosfstream`` command."""

from __future__ import annotations

import sys

from aiosfstream.cli import main

if __name__ == "__main__":
    sys.exit(main())
