"""Suite-wide settings.

A test that needs a tool this machine lacks (node, redis-server, ...) calls
:func:`tests.helpers.require_tool`.  Locally that skips; with ``AIOSFSTREAM_STRICT=1``
(set by ``.ci/run``) every skip is turned into a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os

import pytest

STRICT = os.environ.get("AIOSFSTREAM_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under AIOSFSTREAM_STRICT=1: {reason}"
