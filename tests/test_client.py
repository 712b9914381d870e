"""The Salesforce client's argument checks and lifecycle, without a server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aiosfstream.client
from aiosfstream import (
    Client,
    ConstantReplayId,
    MappingStorage,
    PasswordAuthenticator,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    ReplayParameter,
    SalesforceStreamingClient,
)
from aiosfstream.cometd import Client as CometdClient
from aiosfstream.exceptions import AiosfstreamException, ClientInvalidOperation, ServerError
from aiosfstream.policy import DEFAULT_API_VERSION


def authenticator() -> PasswordAuthenticator:
    return PasswordAuthenticator("key", "secret", "user@example.com", "hunter2")


def test_is_a_cometd_client() -> None:
    assert isinstance(Client(authenticator()), CometdClient)


@pytest.mark.parametrize(
    ("replay", "storage_type"),
    [
        (ReplayOption.NEW_EVENTS, ConstantReplayId),
        (ReplayOption.ALL_EVENTS, ConstantReplayId),
        ({}, MappingStorage),
    ],
)
def test_replay_accepts_options_mappings_and_storages(replay: Any, storage_type: type) -> None:
    client = Client(authenticator(), replay=replay)
    assert isinstance(client.replay_storage, storage_type)
    storage = client.replay_storage
    assert Client(authenticator(), replay=storage).replay_storage is storage
    assert client.extensions == [storage]


def test_create_replay_storage_is_a_static_method() -> None:
    mapping: dict[str, Any] = {}
    storage = Client.create_replay_storage(mapping)
    assert isinstance(storage, MappingStorage)
    assert storage.mapping is mapping
    assert Client.create_replay_storage(replay_param=storage) is storage
    constant = Client.create_replay_storage(ReplayOption.ALL_EVENTS)
    assert isinstance(constant, ConstantReplayId)
    assert constant.default_id is ReplayOption.ALL_EVENTS
    with pytest.raises(TypeError, match="replay must be"):
        Client.create_replay_storage("all")  # type: ignore[arg-type]


def test_the_client_makes_its_storage_with_create_replay_storage() -> None:
    made = ConstantReplayId(ReplayOption.ALL_EVENTS)

    class OwnStorage(Client):
        @staticmethod
        def create_replay_storage(replay_param: ReplayParameter) -> ReplayMarkerStorage:
            return made

    assert OwnStorage(authenticator()).replay_storage is made


def test_get_cometd_url_is_a_static_method() -> None:
    assert Client.get_cometd_url("https://acme.my.salesforce.com") == (
        f"https://acme.my.salesforce.com/cometd/{aiosfstream.client.API_VERSION}"
    )
    assert Client.get_cometd_url("https://acme.my.salesforce.com/", "52.0") == (
        "https://acme.my.salesforce.com/cometd/52.0"
    )
    with pytest.raises(ValueError, match="api_version"):
        Client.get_cometd_url("https://acme.my.salesforce.com", "latest")


def test_assigning_api_version_changes_clients_created_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = Client(authenticator())
    monkeypatch.setattr(aiosfstream.client, "API_VERSION", "45.0")
    assert Client(authenticator()).api_version == "45.0"
    assert Client(authenticator(), api_version="60.0").api_version == "60.0"
    assert Client.get_cometd_url("https://acme.my.salesforce.com") == (
        "https://acme.my.salesforce.com/cometd/45.0"
    )
    assert before.api_version == DEFAULT_API_VERSION
    monkeypatch.setattr(aiosfstream.client, "API_VERSION", "36.0")
    with pytest.raises(ValueError, match=r"36\.0"):
        Client(authenticator())


def test_the_loop_argument_of_050_is_accepted_and_ignored() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.warns(DeprecationWarning, match="loop argument is ignored"):
            client = Client(authenticator(), loop=loop)
        with pytest.warns(DeprecationWarning, match="loop argument is ignored"):
            SalesforceStreamingClient(
                consumer_key="k", consumer_secret="s", username="u", password="p", loop=loop
            )
    finally:
        loop.close()
    assert client.closed


def test_the_names_050_code_imports_from_the_client_module() -> None:
    assert aiosfstream.client.ServerError is ServerError
    assert aiosfstream.client.ReplayMarkerStoragePolicy is ReplayMarkerStoragePolicy
    assert aiosfstream.client.LOGGER is logging.getLogger("aiosfstream.client")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"replay": 5}, TypeError),
        ({"replay": "all"}, TypeError),
        ({"replay": [1, 2]}, TypeError),
        ({"replay_fallback": -2}, TypeError),
        ({"replay_storage_policy": "manual"}, TypeError),
        ({"connection_timeout": -1}, ValueError),
        ({"connection_timeout": 0}, ValueError),
        ({"connection_timeout": "10"}, TypeError),
        ({"connection_timeout": True}, TypeError),
        ({"max_pending_count": "100"}, TypeError),
        ({"max_pending_count": 1.5}, TypeError),
        ({"api_version": "36.0"}, ValueError),
        ({"api_version": "latest"}, ValueError),
        ({"json_loads": "json"}, TypeError),
        ({"ssl": "yes"}, TypeError),
    ],
)
def test_bad_arguments_are_refused_at_the_call(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Client(authenticator(), **options)


def test_authenticator_must_be_an_authenticator() -> None:
    with pytest.raises(TypeError, match="AuthenticatorBase"):
        Client("user:password")  # type: ignore[arg-type]


def test_plain_http_login_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="http"):
        SalesforceStreamingClient("k", "s", "u", "p", login_url="http://login.example.com")
    client = SalesforceStreamingClient(
        "k", "s", "u", "p", login_url="http://login.example.com", allow_insecure_http=True
    )
    assert isinstance(client.authenticator, PasswordAuthenticator)
    assert client.authenticator.login_url == "http://login.example.com"


@pytest.mark.parametrize(
    ("sandbox", "login_url", "expected"),
    [
        (False, None, "https://login.salesforce.com"),
        (True, None, "https://test.salesforce.com"),
        (True, "https://acme.my.salesforce.com", "https://acme.my.salesforce.com"),
    ],
)
def test_login_host(sandbox: bool, login_url: str | None, expected: str) -> None:
    client = SalesforceStreamingClient("k", "s", "u", "p", sandbox=sandbox, login_url=login_url)
    assert isinstance(client.authenticator, PasswordAuthenticator)
    assert client.authenticator.login_url == expected


@pytest.mark.parametrize(
    ("channel", "error"), [("topic/foo", ValueError), ("", ValueError), (5, TypeError)]
)
async def test_bad_channels_are_refused_before_any_io(channel: Any, error: type) -> None:
    client = Client(authenticator())
    with pytest.raises(error):
        await client.subscribe(channel)
    with pytest.raises(error):
        await client.unsubscribe(channel)


async def test_operations_on_an_unopened_client() -> None:
    client = Client(authenticator())
    assert client.closed
    assert client.pending_count == 0
    assert not client.has_pending_messages
    with pytest.raises(ClientInvalidOperation):
        await client.subscribe("/topic/foo")
    with pytest.raises(ClientInvalidOperation):
        await client.receive()
    with pytest.raises(AiosfstreamException):
        await client.receive()


async def test_a_closed_client_cannot_be_reopened() -> None:
    client = Client(authenticator())
    await client.close()
    with pytest.raises(ClientInvalidOperation, match="new one"):
        await client.open()


def test_repr_shows_state_but_no_secret() -> None:
    client = SalesforceStreamingClient("key", "consumer-secret", "user", "hunter2")
    text = repr(client) + repr(client.authenticator)
    assert "unopened" in repr(client)
    assert "hunter2" not in text
    assert "consumer-secret" not in text


def test_defaults() -> None:
    client = Client(authenticator())
    assert client.connection_timeout == 10.0
    assert client.max_pending_count == 100
    assert client.replay_fallback is None
    assert client.replay_storage_policy is ReplayMarkerStoragePolicy.AUTOMATIC
    assert float(client.api_version) >= 52.0


def test_constructing_needs_no_running_loop() -> None:
    # No get_event_loop() at construction: it raises without a running loop on 3.14.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    Client(authenticator())


def test_interpreter_exit_with_an_open_client_is_quiet(tmp_path: Path) -> None:
    script = tmp_path / "exit.py"
    script.write_text(
        "import asyncio, sys\n"
        "from aiosfstream.testing import SalesforceEmulator, DEFAULT_CREDENTIALS as C\n"
        "from aiosfstream import SalesforceStreamingClient\n"
        "async def main():\n"
        "    async with SalesforceEmulator() as emulator:\n"
        "        emulator.create_channel('/topic/foo')\n"
        "        async with SalesforceStreamingClient(C.consumer_key, C.consumer_secret,\n"
        "                C.username, C.password, login_url=emulator.url,\n"
        "                allow_insecure_http=True) as client:\n"
        "            await client.subscribe('/topic/foo')\n"
        "            emulator.publish('/topic/foo', {'Name': 'x'})\n"
        "            await client.receive()\n"
        "            sys.exit(0)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
