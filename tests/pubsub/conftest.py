"""Fixtures of the Pub/Sub client's end-to-end tests: both emulators on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from aiosfstream import PasswordAuthenticator
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.pubsub import PubSubClient
from aiosfstream.testing import DEFAULT_CREDENTIALS, SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator

ORDER_TOPIC = "/event/Order_Event__e"
ACCOUNT_TOPIC = "/data/AccountChangeEvent"
#: Short delays between attempts keep the recovery tests quick.
FAST_BACKOFF = Backoff(initial=0.05, cap=0.5)


def authenticator(org: SalesforceEmulator) -> PasswordAuthenticator:
    """The emulator's default user, logging in at the emulator."""
    return PasswordAuthenticator(
        DEFAULT_CREDENTIALS.consumer_key,
        DEFAULT_CREDENTIALS.consumer_secret,
        DEFAULT_CREDENTIALS.username,
        DEFAULT_CREDENTIALS.password,
        login_url=org.url,
    )


@dataclass
class Org:
    """The two emulators of one org, and a way to make clients for them."""

    org: SalesforceEmulator
    pubsub: PubSubEmulator

    def client(self, **options: Any) -> PubSubClient:
        options.setdefault("ssl", False)
        options.setdefault("backoff", Backoff(initial=0.05, cap=0.5))
        return PubSubClient(authenticator(self.org), endpoint=self.pubsub.endpoint, **options)

    def order(self, number: int | str) -> bytes:
        """Publish an order event; return its replay id."""
        return self.pubsub.publish(ORDER_TOPIC, {"OrderNumber__c": str(number)})


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    async with SalesforceEmulator() as salesforce, PubSubEmulator(salesforce) as pubsub:
        yield Org(salesforce, pubsub)


@pytest.fixture
def make_org() -> Callable[..., Any]:
    """Start emulators with options: ``async with make_org(keepalive_interval=0.2) as o``."""

    class _Started:
        def __init__(self, **options: Any) -> None:
            self.options = options

        async def __aenter__(self) -> Org:
            self.salesforce = SalesforceEmulator()
            await self.salesforce.start()
            self.pubsub = PubSubEmulator(self.salesforce, **self.options)
            await self.pubsub.start()
            return Org(self.salesforce, self.pubsub)

        async def __aexit__(self, *exc_info: object) -> None:
            await self.pubsub.stop()
            await self.salesforce.stop()

    return _Started


async def receive_numbers(client: PubSubClient, count: int, timeout: float = 10.0) -> list[str]:
    """The order numbers of the next *count* events."""
    numbers = []
    for _ in range(count):
        message = await asyncio.wait_for(client.receive(), timeout)
        numbers.append(message["payload"]["OrderNumber__c"])
    return numbers
