"""TLS: the emulator's generated certificate, given as PEM bytes or as a CA bundle file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiosfstream.exceptions import TransportTimeoutError
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator
from tests.pubsub.conftest import ORDER_TOPIC, Org, receive_numbers


@pytest.fixture
async def tls_org() -> AsyncIterator[Org]:
    async with SalesforceEmulator() as salesforce, PubSubEmulator(salesforce, tls=True) as pubsub:
        yield Org(salesforce, pubsub)


async def test_the_certificate_as_pem_bytes(tls_org: Org) -> None:
    assert tls_org.pubsub.certificate is not None
    async with tls_org.client(ssl=tls_org.pubsub.certificate) as client:
        await client.subscribe(ORDER_TOPIC)
        tls_org.order(1)
        assert await receive_numbers(client, 1) == ["1"]


async def test_the_certificate_as_a_ca_bundle_file(tls_org: Org, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    assert tls_org.pubsub.certificate is not None
    bundle.write_bytes(tls_org.pubsub.certificate)
    async with tls_org.client(ssl=str(bundle)) as client:
        results = await client.publish(ORDER_TOPIC, {"OrderNumber__c": "1"})
    assert results[0].replay_id == tls_org.pubsub.events(ORDER_TOPIC)[0][0]


async def test_an_untrusted_certificate_is_refused(tls_org: Org) -> None:
    # The system's CAs do not know the emulator's certificate.
    async with tls_org.client(ssl=None, connection_timeout=1.0) as client:
        with pytest.raises(TransportTimeoutError):
            await asyncio.wait_for(client.subscribe(ORDER_TOPIC), 10)


async def test_plaintext_cannot_talk_to_a_tls_server(tls_org: Org) -> None:
    async with tls_org.client(ssl=False, connection_timeout=1.0) as client:
        with pytest.raises(TransportTimeoutError):
            await asyncio.wait_for(client.subscribe(ORDER_TOPIC), 10)
