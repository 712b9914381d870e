"""Run code with the real aiosfstream 0.5.0, in a Python 3.9 of its own.

The interpreter is named by ``AIOSFSTREAM_050_PYTHON`` (``.ci/run`` creates it with
``pip install aiosfstream==0.5.0``).  Without it a test skips, which fails the run under
``AIOSFSTREAM_STRICT=1``, as CI sets it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

#: Seconds a 0.5.0 script may run.
TIMEOUT = 60.0


def legacy_python() -> str:
    """The path of the Python that has aiosfstream 0.5.0; skip the test without one."""
    path = os.environ.get("AIOSFSTREAM_050_PYTHON")
    if not path or not Path(path).exists():
        pytest.skip("AIOSFSTREAM_050_PYTHON does not name a Python with aiosfstream 0.5.0")
    return path


def run_050(script: str, *args: str) -> Any:
    """Run *script* with aiosfstream 0.5.0 and return the JSON it prints.

    ``-I`` keeps this checkout (and ``PYTHONPATH``) off the path: ``import aiosfstream``
    finds 0.5.0.  The script's first act is to check that it did.
    """
    check = "import aiosfstream\nassert aiosfstream.__version__ == '0.5.0', aiosfstream.__file__\n"
    result = subprocess.run(
        [legacy_python(), "-I", "-c", check + script, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
