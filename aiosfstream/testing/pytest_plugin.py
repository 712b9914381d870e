"""pytest fixtures for testing Streaming API consumers against the emulator.

Installed as the ``aiosfstream`` pytest plugin. The ``sf_emulator`` fixture yields a started
:class:`~aiosfstream.testing.SalesforceEmulator` and stops it after the test; options go
through a marker::

    @pytest.mark.sf_emulator(connect_timeout=1.0, client_expiry=0.5)
    async def test_reconnect(sf_emulator):
        ...

The fixture needs pytest-asyncio, in either mode: in ``strict`` mode the tests that use
it need ``@pytest.mark.asyncio``, as every async test does. It runs in the event loop of
``asyncio_default_fixture_loop_scope`` (``function`` by default), so a test with another
``loop_scope`` needs that option to match. Without pytest-asyncio only the tests that use
the fixture fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import SalesforceEmulator

__all__ = ["pytest_configure", "sf_emulator"]

_MARKER = "sf_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sf_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): keyword arguments for the SalesforceEmulator of the "
        "sf_emulator fixture",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    return dict(marker.kwargs) if marker is not None else {}


def _make_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:

        @pytest.fixture(name="sf_emulator")
        def missing_pytest_asyncio() -> None:
            pytest.fail(
                "the sf_emulator fixture needs pytest-asyncio: pip install pytest-asyncio",
                pytrace=False,
            )

        return missing_pytest_asyncio

    @pytest_asyncio.fixture(name="sf_emulator")
    async def emulator_fixture(
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[SalesforceEmulator]:
        """A started Salesforce emulator, stopped after the test."""
        from .server import SalesforceEmulator

        async with SalesforceEmulator(**_options(request)) as emulator:
            yield emulator

    return emulator_fixture


sf_emulator = _make_fixture()
