"""Fixtures for the emulator conformance tests: small timeouts, raw HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator

from .raw import RawClient, password_login

#: Timeouts small enough to keep every test well under a second.
CONNECT_TIMEOUT = 0.5
CLIENT_EXPIRY = 0.3


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(
        connect_timeout=CONNECT_TIMEOUT, client_expiry=CLIENT_EXPIRY
    ) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that keeps cookies from 127.0.0.1 (the default jar ignores IP hosts)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


ClientFactory = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def make_client(emulator: SalesforceEmulator) -> AsyncIterator[ClientFactory]:
    """Build logged-in raw clients, each with its own cookie jar unless one is given."""
    sessions: list[aiohttp.ClientSession] = []

    async def factory(
        *,
        session: aiohttp.ClientSession | None = None,
        version: str = "66.0",
        scheme: str = "Bearer",
        server: SalesforceEmulator | None = None,
    ) -> RawClient:
        target = server or emulator
        if session is None:
            session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(session)
        token = await password_login(session, target)
        return RawClient(target, session, token, version=version, scheme=scheme)

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> RawClient:
    return await make_client()
