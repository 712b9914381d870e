"""A deliberately naive Bayeux client for conformance tests: plain aiohttp, no library code."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

from aiosfstream.testing import SalesforceEmulator

Message = dict[str, Any]


async def password_login(session: aiohttp.ClientSession, emulator: SalesforceEmulator) -> str:
    """Log in with the default credentials; return the access token."""
    credentials = emulator.credentials
    form = {
        "grant_type": "password",
        "client_id": credentials.consumer_key,
        "client_secret": credentials.consumer_secret,
        "username": credentials.username,
        "password": credentials.password,
    }
    async with session.post(emulator.token_url, data=form) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    token = body["access_token"]
    assert isinstance(token, str)
    return token


class RawClient:
    """Sends hand-written Bayeux messages and returns the decoded replies."""

    def __init__(
        self,
        emulator: SalesforceEmulator,
        session: aiohttp.ClientSession,
        token: str | None,
        *,
        version: str = "66.0",
        scheme: str = "Bearer",
    ) -> None:
        self.emulator = emulator
        self.session = session
        self.token = token
        self.version = version
        self.scheme = scheme
        self.client_id: str | None = None
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return str(next(self._ids))

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"{self.scheme} {self.token}"}

    async def request(
        self, messages: Any, *, path: str | None = None
    ) -> tuple[aiohttp.ClientResponse, Any]:
        """POST *messages* as JSON; return the response and its decoded body."""
        url = self.emulator.url + (path or f"/cometd/{self.version}")
        async with self.session.post(url, json=messages, headers=self.headers) as response:
            body = await response.json(content_type=None)
        return response, body

    async def send(self, *messages: Message) -> list[Message]:
        """POST *messages*; assert HTTP 200 and return the reply array."""
        response, body = await self.request(list(messages))
        assert response.status == 200, body
        assert isinstance(body, list)
        return body

    def handshake_message(self) -> Message:
        return {
            "channel": "/meta/handshake",
            "id": self.next_id(),
            "version": "1.0",
            "minimumVersion": "1.0",
            "supportedConnectionTypes": ["long-polling"],
            "ext": {"replay": True},
        }

    async def handshake(self) -> Message:
        [reply] = await self.send(self.handshake_message())
        if reply.get("successful"):
            self.client_id = reply["clientId"]
        return reply

    def connect_message(self, **extra: Any) -> Message:
        message = {
            "channel": "/meta/connect",
            "clientId": self.client_id,
            "connectionType": "long-polling",
            "id": self.next_id(),
        }
        message.update(extra)
        return message

    async def connect(self, **extra: Any) -> list[Message]:
        return await self.send(self.connect_message(**extra))

    def subscribe_message(self, channel: str, replay: Any = None) -> Message:
        message: Message = {
            "channel": "/meta/subscribe",
            "clientId": self.client_id,
            "subscription": channel,
            "id": self.next_id(),
        }
        if replay is not None:
            message["ext"] = {"replay": {channel: replay}}
        return message

    async def subscribe(self, channel: str, replay: Any = None) -> Message:
        [reply] = await self.send(self.subscribe_message(channel, replay))
        return reply

    async def start(self, *channels: str, replay: Any = None) -> None:
        """Handshake, subscribe to *channels* and do the first (immediate) connect."""
        reply = await self.handshake()
        assert reply["successful"], reply
        for channel in channels:
            sub = await self.subscribe(channel, replay)
            assert sub["successful"], sub
        first = await self.connect()
        assert first[-1]["successful"], first


def events_of(replies: list[Message]) -> list[Message]:
    """Return the event messages (not /meta/ replies) of a reply array."""
    return [m for m in replies if not str(m.get("channel", "")).startswith("/meta/")]


def replay_ids(replies: list[Message]) -> list[int]:
    return [m["data"]["event"]["replayId"] for m in events_of(replies)]
