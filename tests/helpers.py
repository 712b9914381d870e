"""Small helpers shared by the test modules."""

from __future__ import annotations

import shutil

import pytest


def require_tool(name: str) -> str:
    """Return the path of the executable *name*, or skip the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path
