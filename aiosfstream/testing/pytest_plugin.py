"""pytest fixtures for testing Streaming API consumers against the emulator.

Installed as the ``aiosfstream`` pytest plugin. The ``sf_emulator`` fixture yields a started
:class:`~aiosfstream.testing.SalesforceEmulator` and stops it after the test; options go
through a marker::

    @pytest.mark.sf_emulator(connect_timeout=1.0, client_expiry=0.5)
    async def test_reconnect(sf_emulator):
        ...

The ``sf_pubsub_emulator`` fixture yields a started
:class:`~aiosfstream.testing.pubsub.PubSubEmulator` (it needs the ``pubsub`` extra) whose
``.org`` is the test's ``sf_emulator``, so a test that takes both fixtures gets one org
behind both APIs. Its options go through the ``sf_pubsub_emulator`` marker::

    @pytest.mark.sf_pubsub_emulator(keepalive_interval=0.5)
    async def test_keepalive(sf_pubsub_emulator):
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
    from .pubsub import PubSubEmulator
    from .server import SalesforceEmulator

__all__ = ["pytest_configure", "sf_emulator", "sf_pubsub_emulator"]

_MARKER = "sf_emulator"
_PUBSUB_MARKER = "sf_pubsub_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sf_emulator`` and ``sf_pubsub_emulator`` markers."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): keyword arguments for the SalesforceEmulator of the "
        "sf_emulator fixture",
    )
    config.addinivalue_line(
        "markers",
        f"{_PUBSUB_MARKER}(**options): keyword arguments for the PubSubEmulator of the "
        "sf_pubsub_emulator fixture",
    )


def _options(request: pytest.FixtureRequest, marker_name: str = _MARKER) -> dict[str, Any]:
    marker = request.node.get_closest_marker(marker_name)
    return dict(marker.kwargs) if marker is not None else {}


def _missing_pytest_asyncio(name: str) -> Any:
    @pytest.fixture(name=name)
    def missing_pytest_asyncio() -> None:
        pytest.fail(
            f"the {name} fixture needs pytest-asyncio: pip install pytest-asyncio",
            pytrace=False,
        )

    return missing_pytest_asyncio


def _make_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:
        return _missing_pytest_asyncio("sf_emulator")

    @pytest_asyncio.fixture(name="sf_emulator")
    async def emulator_fixture(
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[SalesforceEmulator]:
        """A started Salesforce emulator, stopped after the test."""
        from .server import SalesforceEmulator

        async with SalesforceEmulator(**_options(request)) as emulator:
            yield emulator

    return emulator_fixture


def _make_pubsub_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:
        return _missing_pytest_asyncio("sf_pubsub_emulator")

    @pytest_asyncio.fixture(name="sf_pubsub_emulator")
    async def pubsub_emulator_fixture(
        request: pytest.FixtureRequest, sf_emulator: SalesforceEmulator
    ) -> AsyncIterator[PubSubEmulator]:
        """A started Pub/Sub emulator in front of ``sf_emulator``'s org, stopped after the test."""
        try:
            from .pubsub import PubSubEmulator
        except ImportError as error:
            pytest.fail(
                f"the sf_pubsub_emulator fixture needs the pubsub extra "
                f"(pip install 'aiosfstream[pubsub]'): {error}",
                pytrace=False,
            )
        async with PubSubEmulator(sf_emulator, **_options(request, _PUBSUB_MARKER)) as emulator:
            yield emulator

    return pubsub_emulator_fixture


sf_emulator = _make_fixture()
sf_pubsub_emulator = _make_pubsub_fixture()
