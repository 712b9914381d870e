"""Small helpers shared by the test modules."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from aiosfstream import SalesforceStreamingClient
from aiosfstream.testing import DEFAULT_CREDENTIALS


def require_tool(name: str) -> str:
    """Return the path of the executable *name*, or skip the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def emulator_client(login_url: str, **options: Any) -> SalesforceStreamingClient:
    """A client that logs in to the emulator at *login_url* as its default user."""
    return SalesforceStreamingClient(
        consumer_key=DEFAULT_CREDENTIALS.consumer_key,
        consumer_secret=DEFAULT_CREDENTIALS.consumer_secret,
        username=DEFAULT_CREDENTIALS.username,
        password=DEFAULT_CREDENTIALS.password,
        login_url=login_url,
        allow_insecure_http=True,
        **options,
    )
