"""Where the emulator listens and which URLs it hands out, checked with real sockets."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator


def _bindable(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


#: The loopback addresses this machine has (::1 is missing without IPv6).
LOOPBACKS = [address for address in ("127.0.0.1", "::1") if _bindable(address)]


def url_of(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


async def answers(address: str, port: int) -> bool:
    """Whether an HTTP server answers on *address*:*port*."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{url_of(address, port)}/__admin__") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False


def password_form(emulator: SalesforceEmulator) -> dict[str, str]:
    credentials = emulator.credentials
    return {
        "grant_type": "password",
        "client_id": credentials.consumer_key,
        "client_secret": credentials.consumer_secret,
        "username": credentials.username,
        "password": credentials.password,
    }


async def test_every_url_names_localhost() -> None:
    async with SalesforceEmulator() as emulator, aiohttp.ClientSession() as http:
        base = f"http://localhost:{emulator.port}"
        assert emulator.url == emulator.instance_url == base
        assert emulator.token_url == f"{base}/services/oauth2/token"
        assert emulator.cometd_url() == f"{base}/cometd/66.0"
        async with http.post(emulator.token_url, data=password_form(emulator)) as response:
            token = await response.json()
        assert token["instance_url"] == base
        assert token["id"].startswith(f"{base}/id/")
        async with http.get(f"{base}/__admin__") as response:
            overview = await response.json()
        for name in ("url", "token_url", "instance_url", "cometd_url"):
            assert overview[name].startswith(f"{base}/") or overview[name] == base, name


async def test_localhost_is_served_on_every_loopback() -> None:
    async with SalesforceEmulator() as emulator:
        for address in LOOPBACKS:
            assert await answers(address, emulator.port), address
        # Whatever "localhost" resolves to here, first or not, is served.
        resolved = socket.getaddrinfo("localhost", emulator.port, type=socket.SOCK_STREAM)
        for *_, sockaddr in resolved:
            assert await answers(str(sockaddr[0]), emulator.port), sockaddr


async def test_restart_listens_on_every_loopback_again() -> None:
    async with SalesforceEmulator() as emulator:
        port = emulator.port
        await emulator.restart()
        assert emulator.port == port
        for address in LOOPBACKS:
            assert await answers(address, port), address


@pytest.mark.parametrize("address", LOOPBACKS)
async def test_an_address_as_host_is_listened_on_alone(address: str) -> None:
    async with SalesforceEmulator(host=address) as emulator:
        assert emulator.url == url_of(address, emulator.port)
        assert await answers(address, emulator.port)
        for other in LOOPBACKS:
            if other != address:
                assert not await answers(other, emulator.port), other


@pytest.mark.parametrize("address", LOOPBACKS)
async def test_a_port_taken_on_one_loopback_fails_cleanly(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as taken:
        taken.bind((address, 0))
        taken.listen()
        port = taken.getsockname()[1]
        emulator = SalesforceEmulator(port=port)
        with pytest.raises(OSError, match="address already in use"):
            await emulator.start()
        assert not emulator.running
        # Nothing is left listening on the other loopbacks.
        for other in LOOPBACKS:
            if other != address:
                other_family = socket.AF_INET6 if ":" in other else socket.AF_INET
                with socket.socket(other_family) as probe:
                    probe.bind((other, port))


async def stream_with_default_cookie_jar(emulator: SalesforceEmulator) -> list[dict[str, Any]]:
    """Log in, handshake, subscribe and connect twice with a plain ``aiohttp.ClientSession``.

    Every Bayeux request goes to the ``instance_url`` of the token answer; an event is
    published before the second connect. Return the replies after the handshake's.
    """
    emulator.create_channel("/topic/Plain")
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.token_url, data=password_form(emulator)) as response:
            token = await response.json()
        endpoint = f"{token['instance_url']}/cometd/66.0"
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        async def send(message: dict[str, Any]) -> list[dict[str, Any]]:
            async with http.post(endpoint, json=[message], headers=headers) as response:
                replies: list[dict[str, Any]] = await response.json()
                return replies

        [handshake] = await send(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        )
        client_id = handshake["clientId"]
        connect = {
            "channel": "/meta/connect",
            "clientId": client_id,
            "connectionType": "long-polling",
        }
        replies = await send(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/topic/Plain"}
        )
        replies += await send(connect)
        emulator.publish("/topic/Plain", {"Name": "Acme"})
        return replies + await send(connect)


async def test_a_plain_aiohttp_client_gets_events() -> None:
    async with SalesforceEmulator() as emulator:
        replies = await stream_with_default_cookie_jar(emulator)
    assert [reply["channel"] for reply in replies] == [
        "/meta/subscribe",
        "/meta/connect",
        "/topic/Plain",
        "/meta/connect",
    ]
    assert all(reply.get("successful", True) for reply in replies), replies
    assert replies[2]["data"]["sobject"]["Name"] == "Acme"


async def test_an_ip_address_host_loses_the_cookie_of_plain_clients() -> None:
    # Why the default is a name: aiohttp's default jar ignores cookies of IP hosts.
    async with SalesforceEmulator(host="127.0.0.1") as emulator:
        [subscribe, *_] = await stream_with_default_cookie_jar(emulator)
    assert subscribe["successful"] is False
    assert subscribe["error"].endswith(
        "has established a session, but no BAYEUX_BROWSER cookie present"
    )
