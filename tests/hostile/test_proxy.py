"""The cutting proxy and the recording server do what the recovery tests rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator
from tests.hostile import (
    CuttingProxy,
    RecordingServer,
    always,
    on_channel,
    reply_carries,
)
from tests.testing.raw import RawClient, password_login, replay_ids

CHANNEL = "/topic/foo"


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=1.0, client_expiry=5.0) as server:
        server.create_channel(CHANNEL)
        yield server


@pytest.fixture
async def proxy(emulator: SalesforceEmulator) -> AsyncIterator[CuttingProxy]:
    async with CuttingProxy(emulator.url) as running:
        emulator.instance_url = running.url
        yield running


class ProxiedClient(RawClient):
    """A raw client whose Bayeux requests go through the proxy (cookies and all)."""

    def __init__(
        self,
        proxy: CuttingProxy,
        emulator: SalesforceEmulator,
        session: aiohttp.ClientSession,
        token: str,
    ) -> None:
        super().__init__(emulator, session, token)
        self.proxy = proxy

    async def request(
        self, messages: Any, *, path: str | None = None
    ) -> tuple[aiohttp.ClientResponse, Any]:
        url = self.proxy.url + (path or f"/cometd/{self.version}")
        async with self.session.post(url, json=messages, headers=self.headers) as response:
            body = await response.json(content_type=None)
        return response, body


@pytest.fixture
async def raw(emulator: SalesforceEmulator, proxy: CuttingProxy) -> AsyncIterator[RawClient]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        token = await password_login(session, emulator)
        yield ProxiedClient(proxy, emulator, session, token)


async def test_forwards_and_keeps_the_session_cookie(
    raw: RawClient, proxy: CuttingProxy, emulator: SalesforceEmulator
) -> None:
    await raw.start(CHANNEL)
    task = asyncio.create_task(raw.connect())
    await asyncio.sleep(0.05)
    emulator.publish(CHANNEL, {"Name": "a"})
    assert replay_ids(await task) == [1]
    assert [exchange.channels for exchange in proxy.exchanges] == [
        ["/meta/handshake"],
        ["/meta/subscribe"],
        ["/meta/connect"],
        ["/meta/connect"],
    ]


async def test_drop_reply_loses_the_events_the_upstream_sent(
    raw: RawClient, proxy: CuttingProxy, emulator: SalesforceEmulator
) -> None:
    await raw.start(CHANNEL)
    rule = proxy.drop_reply(reply_carries(CHANNEL))
    task = asyncio.create_task(raw.connect())
    await asyncio.sleep(0.05)
    emulator.publish(CHANNEL, {"Name": "a"})
    with pytest.raises(aiohttp.ClientError):
        await task
    assert rule.hits == 1
    assert emulator.stats.events_delivered == 1  # the emulator believes it was delivered
    assert replay_ids(await raw.connect(advice={"timeout": 0})) == []


async def test_rewrite_reply(
    raw: RawClient, proxy: CuttingProxy, emulator: SalesforceEmulator
) -> None:
    await raw.start(CHANNEL)
    proxy.rewrite_reply(reply_carries(CHANNEL), lambda replies: [42, *replies[1:]])
    task = asyncio.create_task(raw.connect())
    await asyncio.sleep(0.05)
    emulator.publish(CHANNEL, {"Name": "a"})
    emulator.publish(CHANNEL, {"Name": "b"})
    replies: list[Any] = await task
    assert replies[0] == 42
    assert replies[1]["data"]["event"]["replayId"] == 2


async def test_hang_and_delay(raw: RawClient, proxy: CuttingProxy) -> None:
    rule = proxy.hang(on_channel("/meta/handshake"))
    task = asyncio.create_task(raw.handshake())
    await rule.fired()
    await asyncio.sleep(0.2)
    assert not task.done()
    task.cancel()
    proxy.delay(on_channel("/meta/handshake"), 0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await raw.handshake())["successful"] is True
    assert loop.time() - started >= 0.3


async def test_answer_without_forwarding(
    raw: RawClient, proxy: CuttingProxy, emulator: SalesforceEmulator
) -> None:
    proxy.answer(always, 307, headers={"Location": "http://127.0.0.1:9/"})
    async with raw.session.post(
        proxy.url + "/cometd/66.0", json=[raw.handshake_message()], allow_redirects=False
    ) as response:
        assert response.status == 307
        assert response.headers["Location"] == "http://127.0.0.1:9/"
    assert emulator.stats.handshakes == 0


@pytest.mark.parametrize("chunked", [True, False])
async def test_oversize_reply_stops_when_the_client_hangs_up(
    raw: RawClient, proxy: CuttingProxy, chunked: bool
) -> None:
    size = 64 * 1024**2
    rule = proxy.oversize_reply(on_channel("/meta/handshake"), size, chunked=chunked)
    async with raw.session.post(
        proxy.url + "/cometd/66.0", json=[raw.handshake_message()], headers=raw.headers
    ) as response:
        assert (response.content_length is None) is chunked
        first = await response.content.read(1000)
        assert first.startswith(b'[{"ext"')
        response.close()
    await asyncio.sleep(0.3)
    assert 0 < rule.bytes_sent < size / 2


async def test_oversize_reply_is_valid_json(raw: RawClient, proxy: CuttingProxy) -> None:
    proxy.oversize_reply(on_channel("/meta/handshake"), 300_000)
    [reply] = await raw.send(raw.handshake_message())
    assert reply["successful"] is True
    assert len(reply["padding"]) >= 300_000 - 1000


async def test_stop_refuses_and_start_reuses_the_port(raw: RawClient, proxy: CuttingProxy) -> None:
    port = proxy.port
    await proxy.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await raw.handshake()
    await proxy.start()
    assert proxy.port == port
    assert (await raw.handshake())["successful"] is True


async def test_cut_everything_and_upstream_cuts(
    raw: RawClient, proxy: CuttingProxy, emulator: SalesforceEmulator
) -> None:
    await raw.start(CHANNEL)
    proxy.cut_everything = True
    with pytest.raises(aiohttp.ClientError):
        await raw.connect()
    proxy.cut_everything = False
    held = asyncio.create_task(raw.connect())
    await asyncio.sleep(0.1)
    await emulator.drop_connections()  # the upstream side is cut: so is the client's
    with pytest.raises(aiohttp.ClientError):
        await held


async def test_recording_server_records() -> None:
    async with (
        RecordingServer(status=201, body=b"ok", content_type="text/plain") as server,
        aiohttp.ClientSession() as session,
        session.post(server.url + "/a?b=1", data=b"secret") as response,
    ):
        assert (response.status, await response.text()) == (201, "ok")
    assert [(r.method, r.path, r.body) for r in server.requests] == [("POST", "/a?b=1", b"secret")]
