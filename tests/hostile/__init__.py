"""Hostile servers for recovery tests: a cutting proxy and a recording server, on 127.0.0.1.

:class:`CuttingProxy` forwards HTTP requests to an upstream server (the emulator) and, when
a rule matches, misbehaves instead: it hangs, cuts the connection before or after the
upstream answered (the reply is then lost in transit, though the upstream believes it was
delivered), answers by itself (a redirect), delays, rewrites the reply (a spoiled event) or
streams an oversized body. It can also refuse connections (:meth:`~CuttingProxy.stop`, then
:meth:`~CuttingProxy.start` on the same port) or cut everything (:attr:`cut_everything`).

:class:`RecordingServer` answers every request the same way and records it: the target of
a redirect, which must receive nothing.

Put the proxy in front of the Bayeux endpoint with ``emulator.instance_url = proxy.url``,
or in front of the token endpoint by giving the client ``login_url=proxy.url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "CuttingProxy",
    "Exchange",
    "Match",
    "RecordedRequest",
    "RecordingServer",
    "Rule",
    "always",
    "on_channel",
    "reply_carries",
]

Message = dict[str, Any]
#: Decides whether a rule applies to an exchange.
Match = Callable[["Exchange"], bool]
# What a rule does. ``None`` means "go on as usual" (forward the request, or pass on the
# reply); a response is sent instead.
_Action = Callable[["Rule", "Exchange", web.Request], Awaitable[web.StreamResponse | None]]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
_CHUNK = b"x" * 65536


def _decode(body: bytes | None) -> list[Any]:
    """The JSON array in *body*, or ``[]`` if it is not one."""
    if not body:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


@dataclass
class Exchange:
    """One request that reached the proxy, and the upstream answer once it was read."""

    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    status: int | None = None
    reply_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    reply_body: bytes | None = None

    @property
    def messages(self) -> list[Message]:
        """The Bayeux messages of the request (``[]`` if it is not a JSON array)."""
        return [item for item in _decode(self.body) if isinstance(item, dict)]

    @property
    def channels(self) -> list[str]:
        """The channels of the request's messages."""
        return [str(message.get("channel")) for message in self.messages]

    @property
    def replies(self) -> list[Any]:
        """The decoded upstream reply array (``[]`` before it was read or if not an array)."""
        return _decode(self.reply_body)

    def reply_messages(self, channel: str) -> list[Message]:
        """The messages of the upstream reply on *channel*."""
        return [
            item
            for item in self.replies
            if isinstance(item, dict) and item.get("channel") == channel
        ]


def always(exchange: Exchange) -> bool:
    """Match every exchange."""
    return True


def on_channel(channel: str) -> Match:
    """Match a request that carries a message on *channel* (e.g. ``/meta/connect``)."""

    def match(exchange: Exchange) -> bool:
        return channel in exchange.channels

    return match


def reply_carries(channel: str, request_channel: str = "/meta/connect") -> Match:
    """Match a *request_channel* request whose upstream reply carries events on *channel*."""

    def match(exchange: Exchange) -> bool:
        return request_channel in exchange.channels and bool(exchange.reply_messages(channel))

    return match


class Rule:
    """A misbehaviour armed on a :class:`CuttingProxy`; applies *times* times (``None``: always).

    ``stage`` is ``"request"`` (before forwarding) or ``"reply"`` (after the upstream
    answered). :attr:`hits` counts the exchanges it applied to, :attr:`exchanges` keeps them.
    """

    def __init__(
        self, stage: str, match: Match, action: _Action, times: int | None, name: str
    ) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every match")
        self.stage = stage
        self.match = match
        self.action = action
        self.remaining = times
        self.name = name
        self.hits = 0
        self.exchanges: list[Exchange] = []
        #: Bytes of body written by an ``oversize`` rule, all hits together.
        self.bytes_sent = 0
        self._fired = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Rule {self.name} at {self.stage}, {self.hits} hits, {self.remaining} left>"

    @property
    def active(self) -> bool:
        """Whether the rule still applies to new exchanges."""
        return self.remaining is None or self.remaining > 0

    def cancel(self) -> None:
        """Stop applying the rule."""
        self.remaining = 0

    def _take(self, exchange: Exchange) -> bool:
        if not self.active or not self.match(exchange):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.hits += 1
        self.exchanges.append(exchange)
        self._fired.set()
        return True

    async def fired(self, timeout: float = 10.0) -> None:
        """Wait until the rule has applied at least once."""
        await asyncio.wait_for(self._fired.wait(), timeout)


def _abort(request: web.Request) -> web.Response:
    """Cut the client's connection; the returned response is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=502)


class CuttingProxy:
    """An HTTP proxy in front of *upstream* that misbehaves when told to.

    :param upstream: base URL of the real server, e.g. ``emulator.url``
    :param host: address to listen on
    """

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self._host = host
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.rules: list[Rule] = []
        #: Every request that reached the proxy, oldest first.
        self.exchanges: list[Exchange] = []
        #: While true, every connection is cut as soon as a request arrives.
        self.cut_everything = False

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return f"<CuttingProxy :{self._port} -> {self.upstream} {state}>"

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy's base URL (kept across :meth:`stop` and :meth:`start`)."""
        if not self._port:
            raise RuntimeError("the proxy has not been started yet")
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port (0 until the first :meth:`start`)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether connections are accepted (a stopped proxy refuses them)."""
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on the same port as before after a :meth:`stop`)."""
        if self._runner is not None:
            raise RuntimeError("the proxy is already running")
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that hangs up cancels the forwarding, which hangs up on the upstream
        # in turn, as a TCP proxy would.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=0.1,
            handler_cancellation=True,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._site = site
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._site is not None:
            await self._site.stop()  # refuse new connections first
            self._site = None
        self._cut(runner)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        await runner.cleanup()

    async def __aenter__(self) -> CuttingProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def cut(self) -> None:
        """Cut every open client connection now (requests in flight get no answer)."""
        if self._runner is not None:
            self._cut(self._runner)

    @staticmethod
    def _cut(runner: web.AppRunner) -> None:
        server = runner.server
        for handler in list(server.connections) if server is not None else []:
            if handler.transport is not None:
                handler.transport.abort()

    # -- arming rules -------------------------------------------------------------------

    def _arm(self, stage: str, match: Match, action: _Action, times: int | None, name: str) -> Rule:
        rule = Rule(stage, match, action, times, name)
        self.rules.append(rule)
        return rule

    def hang(self, match: Match = always, *, times: int | None = 1) -> Rule:
        """Accept matching requests and never answer them (nothing is forwarded)."""

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        return self._arm("request", match, action, times, "hang")

    def drop_request(self, match: Match = always, *, times: int | None = 1) -> Rule:
        """Cut the connection of matching requests before anything is forwarded."""

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            return _abort(request)

        return self._arm("request", match, action, times, "drop_request")

    def answer(
        self,
        match: Match,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        times: int | None = 1,
    ) -> Rule:
        """Answer matching requests with *status*, *headers* and *body*; forward nothing."""

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            return web.Response(status=status, headers=headers, body=body)

        return self._arm("request", match, action, times, f"answer {status}")

    def delay(self, match: Match, seconds: float, *, times: int | None = 1) -> Rule:
        """Forward matching requests only after *seconds*."""

        async def action(rule: Rule, exchange: Exchange, request: web.Request) -> None:
            await asyncio.sleep(seconds)

        return self._arm("request", match, action, times, f"delay {seconds}")

    def drop_reply(self, match: Match, *, times: int | None = 1) -> Rule:
        """Forward matching requests, read the upstream reply, then cut the connection.

        The upstream believes the reply was delivered: events it carried are gone.
        """

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            return _abort(request)

        return self._arm("reply", match, action, times, "drop_reply")

    def rewrite_reply(
        self, match: Match, rewrite: Callable[[list[Any]], Any], *, times: int | None = 1
    ) -> Rule:
        """Send ``rewrite(reply array)`` (JSON-encoded) instead of the upstream reply."""

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            body = json.dumps(rewrite(copy.deepcopy(exchange.replies))).encode()
            return web.Response(
                status=exchange.status or 200,
                headers=_forwarded(exchange.reply_headers),
                body=body,
            )

        return self._arm("reply", match, action, times, "rewrite_reply")

    def oversize_reply(
        self,
        match: Match,
        size: int,
        *,
        chunked: bool = True,
        times: int | None = 1,
        pad_first: bool = False,
    ) -> Rule:
        """Send the upstream reply padded to about *size* bytes, written 64 KiB at a time.

        The body stays valid JSON: the last message of the array (the first with
        *pad_first*, so that nothing before the padding can be decoded) gets a long
        ``padding`` string. With *chunked* no ``Content-Length`` is sent, so the client can
        only tell by counting. A client that hangs up early stops the writing;
        :attr:`Rule.bytes_sent` tells how much was written.
        """

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            text = json.dumps(exchange.replies).encode()
            if not text.endswith(b"}]"):
                text = b'[{"channel": "/meta/padding"}]'
            if pad_first:
                head, tail = b'[{"padding": "', b'", ' + text[2:]
            else:
                head, tail = text[:-2] + b', "padding": "', b'"}]'
            chunks = max(1, (size - len(head) - len(tail)) // len(_CHUNK) + 1)
            response = web.StreamResponse(status=exchange.status or 200)
            response.content_type = "application/json"
            if not chunked:
                response.content_length = len(head) + chunks * len(_CHUNK) + len(tail)
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write(head)
                rule.bytes_sent += len(head)
                for _ in range(chunks):
                    await response.write(_CHUNK)
                    rule.bytes_sent += len(_CHUNK)
                await response.write(tail)
                rule.bytes_sent += len(tail)
                await response.write_eof()
            return response

        return self._arm("reply", match, action, times, f"oversize {size}")

    def cut_reply(self, match: Match, fraction: float, *, times: int | None = 1) -> Rule:
        """Send the first *fraction* of the upstream reply's body, slowly, then cut.

        As a proxy does that gives up on a response its client reads too slowly: the
        client has decoded part of the array when the connection ends.
        """

        async def action(
            rule: Rule, exchange: Exchange, request: web.Request
        ) -> web.StreamResponse:
            body = exchange.reply_body or b""
            sent = body[: int(len(body) * fraction)]
            response = web.StreamResponse(status=exchange.status or 200)
            response.content_type = "application/json"
            response.content_length = len(body)
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                for start in range(0, len(sent), 4096):
                    await response.write(sent[start : start + 4096])
                    rule.bytes_sent += len(sent[start : start + 4096])
                    await asyncio.sleep(0.002)
            return _abort(request)

        return self._arm("reply", match, action, times, f"cut at {fraction:.0%}")

    # -- serving ------------------------------------------------------------------------

    def _rule_for(self, stage: str, exchange: Exchange) -> Rule | None:
        for rule in self.rules:
            if rule.stage == stage and rule._take(exchange):
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self._serve(request)
        finally:
            self._tasks.discard(task)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if self.cut_everything:
            return _abort(request)
        exchange = Exchange(request.method, request.path_qs, request.headers, await request.read())
        self.exchanges.append(exchange)
        rule = self._rule_for("request", exchange)
        if rule is not None:
            response = await rule.action(rule, exchange, request)
            if response is not None:
                return response
        if self.cut_everything or self._session is None or self._session.closed:
            return _abort(request)
        headers = CIMultiDict(
            (key, value) for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP
        )
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                data=exchange.body,
                headers=headers,
                allow_redirects=False,
            ) as upstream:
                exchange.reply_body = await upstream.read()
                exchange.status = upstream.status
                exchange.reply_headers = CIMultiDict(upstream.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            # The upstream cut the connection: so does the proxy.
            return _abort(request)
        if self.cut_everything:
            return _abort(request)
        rule = self._rule_for("reply", exchange)
        if rule is not None:
            response = await rule.action(rule, exchange, request)
            if response is not None:
                return response
        return web.Response(
            status=exchange.status,
            headers=_forwarded(exchange.reply_headers),
            body=exchange.reply_body,
        )


def _forwarded(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """*headers* without the hop-by-hop ones (``Set-Cookie`` repeats are kept)."""
    return CIMultiDict(
        (key, value) for key, value in headers.items() if key.lower() not in _HOP_BY_HOP
    )


@dataclass(frozen=True)
class RecordedRequest:
    """A request received by a :class:`RecordingServer`."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """Answers every request with *status* and *body*, and records it in :attr:`requests`.

    :param status: HTTP status of every answer
    :param body: body of every answer
    :param content_type: its content type
    """

    def __init__(
        self, *, status: int = 200, body: bytes = b"[]", content_type: str = "application/json"
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        if not self._port:
            raise RuntimeError("the server has not been started yet")
        return f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                request.method, request.path_qs, dict(request.headers), await request.read()
            )
        )
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)

    async def __aenter__(self) -> RecordingServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._port = runner.addresses[0][1]
        self._runner = runner
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
