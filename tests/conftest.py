"""Suite-wide settings.

A test that needs a tool this machine lacks (node, redis-server, ...) calls
:func:`tests.helpers.require_tool`.  Locally that skips; with ``AIOSFSTREAM_STRICT=1``
(set by ``.ci/run``) every skip is turned into a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import require_tool
from tests.stores.conftest import RedisServer

STRICT = os.environ.get("AIOSFSTREAM_STRICT") == "1"


@pytest.fixture(scope="session")
def redis_server_process() -> Iterator[RedisServer]:
    """One redis-server subprocess on 127.0.0.1 for the whole session."""
    server = RedisServer(require_tool("redis-server"))
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_server_process: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    redis_server_process.flush()
    return redis_server_process


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under AIOSFSTREAM_STRICT=1: {reason}"
