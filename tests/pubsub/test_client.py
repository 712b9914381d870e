"""PubSubClient's arguments, lifecycle, TLS settings and headers."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import ReplayOption, SessionTokenAuthenticator
from aiosfstream.exceptions import AuthenticationError, ClientInvalidOperation
from aiosfstream.pubsub import DEFAULT_ENDPOINT, PubSubClient
from aiosfstream.pubsub.client import channel_credentials, org_id_of
from tests.pubsub.conftest import ORDER_TOPIC, Org, receive_numbers

ORG_ID = "00D5e000003TIrBEAW"


def session(token: str = f"{ORG_ID[:15]}!secret-part") -> SessionTokenAuthenticator:
    return SessionTokenAuthenticator(token, "https://acme.my.salesforce.com")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"replay": 5}, TypeError, "replay"),
        ({"replay_fallback": -1}, TypeError, "replay_fallback"),
        ({"replay_storage_policy": "manual"}, TypeError, "replay_storage_policy"),
        ({"connection_timeout": "10"}, TypeError, "connection_timeout"),
        ({"connection_timeout": 0}, ValueError, "connection_timeout"),
        ({"max_pending_count": 1.5}, TypeError, "max_pending_count"),
        ({"endpoint": 7443}, TypeError, "endpoint"),
        ({"endpoint": "https://api.pubsub.salesforce.com"}, ValueError, "endpoint"),
        ({"endpoint": "api.pubsub.salesforce.com"}, ValueError, "endpoint"),
        ({"ssl": 3}, TypeError, "ssl"),
        ({"backoff": 1.0}, TypeError, "backoff"),
    ],
)
def test_bad_arguments_are_named(options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        PubSubClient(session(), **options)


def test_the_authenticator_must_be_one_of_ours() -> None:
    with pytest.raises(TypeError, match="authenticator"):
        PubSubClient("token")  # type: ignore[arg-type]


def test_defaults() -> None:
    client = PubSubClient(session())
    assert client.endpoint == DEFAULT_ENDPOINT == "api.pubsub.salesforce.com:7443"
    assert client.connection_timeout == 10.0
    assert client.max_pending_count == 100
    assert client.replay_storage.default_id == ReplayOption.NEW_EVENTS
    assert client.closed
    assert client.subscriptions == set()
    assert client.pending_count == 0
    assert not client.has_pending_messages


def test_repr_shows_the_state_and_endpoint_but_no_token() -> None:
    text = repr(PubSubClient(session()))
    assert text == "<PubSubClient unopened endpoint='api.pubsub.salesforce.com:7443'>"
    assert "secret" not in text


def test_an_ssl_context_is_refused_with_what_to_give_instead() -> None:
    with pytest.raises(TypeError, match="CA bundle"):
        channel_credentials(ssl.create_default_context())


def test_an_unreadable_ca_bundle_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the CA bundle"):
        channel_credentials(tmp_path / "missing.pem")


def test_tls_settings() -> None:
    assert channel_credentials(False) is None
    assert channel_credentials(None) is not None
    assert channel_credentials(True) is not None


def test_the_org_id_comes_from_the_identity_url() -> None:
    authenticator = session("not-an-org-id")
    authenticator.id = f"https://login.salesforce.com/id/{ORG_ID}/005xx000001Sv6AAAS"
    assert org_id_of(authenticator) == ORG_ID


def test_the_org_id_of_a_session_id_is_its_prefix() -> None:
    authenticator = session()
    authenticator.access_token = f"{ORG_ID[:15]}!AQ0AQ..."
    assert org_id_of(authenticator) == ORG_ID[:15]


def test_without_an_org_id_the_error_shows_no_token() -> None:
    authenticator = session()
    authenticator.access_token = "opaque-secret-token"
    with pytest.raises(AuthenticationError, match="org id") as caught:
        org_id_of(authenticator)
    assert "opaque-secret-token" not in str(caught.value)


async def test_receive_before_open_is_refused() -> None:
    with pytest.raises(ClientInvalidOperation, match="not open"):
        await PubSubClient(session()).receive()


async def test_a_closed_client_cannot_be_reopened(org: Org) -> None:
    client = org.client()
    async with client:
        assert not client.closed
        assert "open" in repr(client)
    assert client.closed
    with pytest.raises(ClientInvalidOperation, match="create a new one"):
        await client.open()
    with pytest.raises(ClientInvalidOperation, match="closed"):
        await client.subscribe(ORDER_TOPIC)
    await client.close()  # twice is fine


async def test_a_session_token_works_and_its_prefix_is_the_tenant(org: Org) -> None:
    token = org.org.issue_access_token()
    authenticator = SessionTokenAuthenticator(token, org.org.instance_url)
    client = PubSubClient(authenticator, endpoint=org.pubsub.endpoint, ssl=False)
    async with client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]


async def test_unsubscribe_ends_the_stream(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        await client.subscribe(ORDER_TOPIC)  # again: nothing changes
        assert len(org.pubsub.stats()) == 1
        await client.unsubscribe(ORDER_TOPIC)
        assert client.subscriptions == set()
        await asyncio.sleep(0.1)
        assert not any(stream.open for stream in org.pubsub.stats())
        with pytest.raises(ClientInvalidOperation, match="not subscribed"):
            await client.unsubscribe(ORDER_TOPIC)


@pytest.mark.parametrize("topic", ["", "event/X__e", 5])
async def test_bad_topics_are_refused(org: Org, topic: Any) -> None:
    async with org.client() as client:
        with pytest.raises((TypeError, ValueError), match="topic"):
            await client.subscribe(topic)
