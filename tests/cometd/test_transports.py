"""The transports used directly, against hostile aiohttp servers on loopback.

Each server is started inside its test and does one wrong thing: redirects, sends
too much, never answers, or sends websocket frames that are not Bayeux payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiosfstream.cometd import Client, ConnectionType
from aiosfstream.cometd.constants import DEFAULT_MAX_RESPONSE_BYTES
from aiosfstream.cometd.exceptions import (
    HTTPRedirectError,
    HTTPStatusError,
    ResponseTooLargeError,
    TransportConnectionClosed,
    TransportError,
    TransportTimeoutError,
)
from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.cometd.transports import LongPollingTransport, Transport, WebSocketTransport
from aiosfstream.typing import Message, Payload

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
REDIRECTS = [301, 302, 303, 307, 308]


def connect_request(id_: str = "1") -> Message:
    return {"channel": "/meta/connect", "id": id_, "clientId": "c1", "connectionType": "x"}


def reply_to(message: Message, **extra: Any) -> Message:
    return {"channel": message["channel"], "id": message["id"], "successful": True, **extra}


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run *app* on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def endpoint(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A server answering every request to ``/cometd`` with *handler*; yield that URL."""
    app = web.Application()
    app.router.add_route("*", "/cometd", handler)
    async with serve(app) as base:
        yield f"{base}/cometd"


class Witness:
    """A server that only counts what reaches it: a redirect must not."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        return web.json_response([{"channel": "/meta/connect", "id": "1", "successful": True}])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def long_polling(url: str, session: aiohttp.ClientSession, **options: Any) -> LongPollingTransport:
    return LongPollingTransport(
        url, session, json_dumps=json.dumps, json_loads=json.loads, **options
    )


def websocket(url: str, session: aiohttp.ClientSession, **options: Any) -> WebSocketTransport:
    return WebSocketTransport(url, session, json_dumps=json.dumps, json_loads=json.loads, **options)


# -- the constructor -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [LongPollingTransport, WebSocketTransport])
async def test_max_response_bytes_is_kept(
    cls: type[Transport], session: aiohttp.ClientSession
) -> None:
    # Old code: TypeError, the keyword did not exist.
    transport = cls("http://x/cometd", session, json_dumps=json.dumps, json_loads=json.loads)
    assert transport.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    transport = cls(
        "http://x/cometd",
        session,
        json_dumps=json.dumps,
        json_loads=json.loads,
        max_response_bytes=1234,
    )
    assert transport.max_response_bytes == 1234


@pytest.mark.parametrize("cls", [LongPollingTransport, WebSocketTransport])
@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("10", TypeError), (True, TypeError)],
)
async def test_max_response_bytes_is_validated(
    cls: type[Transport], value: object, error: type[Exception], session: aiohttp.ClientSession
) -> None:
    with pytest.raises(error, match="max_response_bytes"):
        cls(
            "http://x/cometd",
            session,
            json_dumps=json.dumps,
            json_loads=json.loads,
            max_response_bytes=value,  # type: ignore[arg-type]
        )


# -- long polling: redirects -----------------------------------------------------------------


@pytest.mark.parametrize("status", [300, *REDIRECTS])
async def test_long_polling_never_follows_a_redirect(
    status: int, session: aiohttp.ClientSession
) -> None:
    witness = Witness()
    async with endpoint(witness.handle) as elsewhere:

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": elsewhere})

        async with endpoint(redirect) as url:
            transport = long_polling(url, session)
            # Old code: the POST followed the redirect (the witness answered) or, for
            # statuses aiohttp does not follow, raised a plain HTTPStatusError.
            with pytest.raises(HTTPRedirectError) as caught:
                await transport.send([connect_request()], {"Authorization": "secret"}, timeout=5)
    assert caught.value.status == status
    assert caught.value.location == elsewhere
    assert f"HTTP {status}" in str(caught.value)
    assert elsewhere in str(caught.value)
    assert witness.requests == []


async def test_long_polling_redirect_quotes_a_long_location_shortened(
    session: aiohttp.ClientSession,
) -> None:
    location = "http://127.0.0.1:9/" + "x" * 5000

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": location})

    async with endpoint(redirect) as url:
        with pytest.raises(HTTPRedirectError) as caught:
            await long_polling(url, session).send([connect_request()], {}, timeout=5)
    assert caught.value.location == location
    assert len(str(caught.value)) < 1500


# -- long polling: bounded input ---------------------------------------------------------------


async def test_long_polling_refuses_a_declared_length_over_the_limit(
    session: aiohttp.ClientSession,
) -> None:
    body = json.dumps([reply_to(connect_request(), padding="x" * (2 * MiB))]).encode()

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with endpoint(large) as url:
        transport = long_polling(url, session, max_response_bytes=MiB)
        # Old code: read the 2 MiB and returned them.
        with pytest.raises(ResponseTooLargeError) as caught:
            await transport.send([connect_request()], {}, timeout=5)
    assert caught.value.limit == MiB
    assert str(MiB) in str(caught.value)
    assert str(len(body)) in str(caught.value)


async def test_long_polling_stops_reading_a_streamed_body_at_the_limit(
    session: aiohttp.ClientSession,
) -> None:
    total = 50 * 1000 * 1000
    chunk = b"x" * (64 * 1024)
    written = 0
    finished = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b'[{"channel": "/meta/connect", "data": "')
            while written < total:
                await response.write(chunk)
                written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        finally:
            finished.set()
        return response

    async with endpoint(endless) as url:
        transport = long_polling(url, session, max_response_bytes=MiB)
        started = time.monotonic()
        # Old code: read all 50 MB, then failed to decode the unfinished JSON.
        with pytest.raises(ResponseTooLargeError) as caught:
            await transport.send([connect_request()], {}, timeout=30)
        elapsed = time.monotonic() - started
        await asyncio.wait_for(finished.wait(), 10)
    assert caught.value.limit == MiB
    assert elapsed < 5
    # The limit plus what the socket buffers held when the client hung up; far from 50 MB.
    assert written < 20 * 1000 * 1000, written


async def test_long_polling_accepts_a_body_of_exactly_the_limit(
    session: aiohttp.ClientSession,
) -> None:
    start = json.dumps([reply_to(connect_request())])[:-2] + ', "pad": "'
    end = '"}]'
    limit = 10_000
    body = (start + "p" * (limit - len(start) - len(end)) + end).encode()
    assert len(body) == limit

    async def exact(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with endpoint(exact) as url:
        (reply,) = await long_polling(url, session, max_response_bytes=limit).send(
            [connect_request()], {}, timeout=5
        )
    assert reply["successful"] is True


async def test_long_polling_bounds_a_compressed_body_by_its_decoded_size(
    session: aiohttp.ClientSession,
) -> None:
    import gzip

    bomb = gzip.compress(b"[" + b" " * (50 * 1000 * 1000) + b"]")
    assert len(bomb) < MiB

    async def compressed(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with endpoint(compressed) as url:
        # Old code: inflated all 50 MB.
        with pytest.raises(ResponseTooLargeError):
            await long_polling(url, session, max_response_bytes=MiB).send(
                [connect_request()], {}, timeout=10
            )


# -- long polling: timeouts, statuses, server text -----------------------------------------


async def test_long_polling_timeout_is_a_transport_timeout_error(
    session: aiohttp.ClientSession,
) -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    async with endpoint(silent) as url:
        started = time.monotonic()
        # Old code: a plain TransportError.
        with pytest.raises(TransportTimeoutError) as caught:
            await long_polling(url, session).send([connect_request()], {}, timeout=0.3)
    assert time.monotonic() - started < 3
    assert "/meta/connect request to" in str(caught.value)
    assert "within 0.3 s" in str(caught.value)


async def test_long_polling_error_status_is_raised_without_reading_the_body(
    session: aiohttp.ClientSession,
) -> None:
    async def failing_slowly(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=503, headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"<p>still failing</p>")
            await asyncio.sleep(0.1)
        return response

    async with endpoint(failing_slowly) as url:
        started = time.monotonic()
        # Old code: read the body first, for 10 s, and timed out.
        with pytest.raises(HTTPStatusError) as caught:
            await long_polling(url, session).send([connect_request()], {}, timeout=5)
    assert time.monotonic() - started < 3
    assert type(caught.value) is HTTPStatusError
    assert caught.value.status == 503
    assert "HTTP 503" in str(caught.value)


async def test_long_polling_quotes_server_text_shortened(session: aiohttp.ClientSession) -> None:
    async def long_reason(request: web.Request) -> web.Response:
        return web.Response(status=500, reason="R" * 5000)

    async def long_content_type(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>", headers={"Content-Type": "text/" + "t" * 5000})

    for handler in (long_reason, long_content_type):
        async with endpoint(handler) as url:
            # Old code: quoted the whole reason or content type.
            with pytest.raises(HTTPStatusError) as caught:
                await long_polling(url, session).send([connect_request()], {}, timeout=5)
        assert len(str(caught.value)) < 1500, handler.__name__


async def test_long_polling_shortens_a_decoder_error_that_quotes_the_body(
    session: aiohttp.ClientSession,
) -> None:
    def loads(body: Any) -> Any:
        raise ValueError(f"cannot decode {body!r}")  # as some JSON libraries do

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 5000 + b"1]", content_type="application/json")

    async with endpoint(big) as url:
        transport = LongPollingTransport(url, session, json_dumps=json.dumps, json_loads=loads)
        # Old code: the message held the whole 10 kB body.
        with pytest.raises(InvalidMessage) as caught:
            await transport.send([connect_request()], {}, timeout=5)
    assert len(str(caught.value)) < 1500


async def test_long_polling_deeply_nested_json_is_an_invalid_message(
    session: aiohttp.ClientSession,
) -> None:
    async def nested(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000 + b"]" * 200_000, content_type="application/json")

    async with endpoint(nested) as url:
        with pytest.raises(InvalidMessage, match="nested too deeply"):
            await long_polling(url, session).send([connect_request()], {}, timeout=5)


# -- websocket: the scripted server -------------------------------------------------------------


#: Talks to one client socket; gets the socket and its number (1 for the first).
Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


class WsServer:
    """A websocket endpoint whose behaviour a script decides, one socket at a time."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.closed_by_client = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await self.script(socket, self.connections)
        return socket


async def requests(socket: web.WebSocketResponse) -> AsyncIterator[Payload]:
    """The payloads the client sends, until it closes the socket."""
    async for frame in socket:
        if frame.type is aiohttp.WSMsgType.TEXT:
            payload: Payload = json.loads(frame.data)
            yield payload


async def answer_everything(socket: web.WebSocketResponse) -> None:
    async for payload in requests(socket):
        await socket.send_json([reply_to(message) for message in payload])


def first_socket_then_answer(misbehave: Script) -> Script:
    """*misbehave* on the first socket; answer every request on the next ones."""

    async def script(socket: web.WebSocketResponse, number: int) -> None:
        if number == 1:
            await misbehave(socket, number)
        else:
            await answer_everything(socket)

    return script


@asynccontextmanager
async def ws_endpoint(script: Script) -> AsyncIterator[tuple[str, WsServer]]:
    server = WsServer(script)
    async with endpoint(server.handle) as url:
        yield url, server


@asynccontextmanager
async def ws_transport(
    url: str, session: aiohttp.ClientSession, **options: Any
) -> AsyncIterator[WebSocketTransport]:
    transport = websocket(url, session, **options)
    try:
        yield transport
    finally:
        await transport.aclose()


async def check_reconnects(transport: WebSocketTransport, server: WsServer) -> None:
    """The next request goes over a new socket, and is answered."""
    before = server.connections
    (reply,) = await transport.send([connect_request("again")], {}, timeout=5)
    assert reply == reply_to(connect_request("again"))
    assert server.connections == before + 1


# -- websocket: redirects and refused upgrades ------------------------------------------------


@pytest.mark.parametrize("status", [300, *REDIRECTS])
async def test_websocket_never_follows_a_redirect(
    status: int, session: aiohttp.ClientSession
) -> None:
    witness = Witness()
    async with endpoint(witness.handle) as elsewhere:

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": elsewhere})

        async with endpoint(redirect) as url, ws_transport(url, session) as transport:
            # Old code: ws_connect followed the redirect to the witness (or, for 300,
            # raised a plain TransportError).
            with pytest.raises(HTTPRedirectError) as caught:
                await transport.send([connect_request()], {"Authorization": "secret"}, timeout=5)
    assert caught.value.status == status
    assert caught.value.location == elsewhere
    assert f"HTTP {status}" in str(caught.value)
    assert witness.requests == []


async def test_websocket_upgrade_refused_with_an_error_status(
    session: aiohttp.ClientSession,
) -> None:
    async def unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401, reason="Unauthorized")

    async with endpoint(unauthorized) as url, ws_transport(url, session) as transport:
        # Old code: a plain TransportError, without the status.
        with pytest.raises(HTTPStatusError) as caught:
            await transport.send([connect_request()], {}, timeout=5)
    assert caught.value.status == 401
    assert "HTTP 401" in str(caught.value)


# -- websocket: bad frames fail the waiting requests, then a new socket is opened -------------


def send_garbage(text: str) -> Script:
    async def script(socket: web.WebSocketResponse, number: int) -> None:
        async for _ in requests(socket):
            await socket.send_str(text)

    return script


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        ("this is not JSON", "not valid JSON"),
        ('{"channel": "/meta/connect"}', "JSON array"),
        ('[{"id": "1", "successful": true}]', "no valid channel"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["not-json", "object", "no-channel", "nested"],
)
async def test_websocket_bad_frame_fails_the_request_and_the_next_one_reconnects(
    frame: str, match: str, session: aiohttp.ClientSession
) -> None:
    async with (
        ws_endpoint(first_socket_then_answer(send_garbage(frame))) as (url, server),
        ws_transport(url, session) as transport,
    ):
        with pytest.raises(InvalidMessage, match=match):
            await transport.send([connect_request()], {}, timeout=5)
        # Old code: the dead reader's socket was reused and the request timed out.
        await check_reconnects(transport, server)


async def test_websocket_binary_frame_is_an_invalid_message(
    session: aiohttp.ClientSession,
) -> None:
    async def binary(socket: web.WebSocketResponse, number: int) -> None:
        async for payload in requests(socket):
            await socket.send_bytes(json.dumps([reply_to(payload[0])]).encode())

    async with (
        ws_endpoint(first_socket_then_answer(binary)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        # Old code: the binary frame was skipped and the request timed out.
        with pytest.raises(InvalidMessage, match="binary"):
            await transport.send([connect_request()], {}, timeout=5)
        await check_reconnects(transport, server)


async def test_websocket_frame_over_the_limit_is_response_too_large(
    session: aiohttp.ClientSession,
) -> None:
    limit = 10_000

    async def oversized(socket: web.WebSocketResponse, number: int) -> None:
        async for payload in requests(socket):
            await socket.send_json([reply_to(payload[0], pad="p" * (2 * limit))])

    async with (
        ws_endpoint(first_socket_then_answer(oversized)) as (url, server),
        ws_transport(url, session, max_response_bytes=limit) as transport,
    ):
        with pytest.raises(ResponseTooLargeError) as caught:
            await transport.send([connect_request()], {}, timeout=5)
        assert caught.value.limit == limit
        assert str(limit) in str(caught.value)
        await check_reconnects(transport, server)


async def test_websocket_frame_of_exactly_the_limit_is_accepted(
    session: aiohttp.ClientSession,
) -> None:
    start = json.dumps([reply_to(connect_request())])[:-2] + ', "pad": "'
    end = '"}]'
    limit = 10_000
    frame = start + "p" * (limit - len(start) - len(end)) + end
    assert len(frame) == limit

    async def exact(socket: web.WebSocketResponse, number: int) -> None:
        async for _ in requests(socket):
            await socket.send_str(frame)

    async with (
        ws_endpoint(exact) as (url, _),
        ws_transport(url, session, max_response_bytes=limit) as transport,
    ):
        (reply,) = await transport.send([connect_request()], {}, timeout=5)
    assert reply["successful"] is True


async def test_websocket_close_frame_mid_request(session: aiohttp.ClientSession) -> None:
    async def closing(socket: web.WebSocketResponse, number: int) -> None:
        async for _ in requests(socket):
            await socket.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=b"bye")

    async with (
        ws_endpoint(first_socket_then_answer(closing)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        with pytest.raises(TransportConnectionClosed) as caught:
            await transport.send([connect_request()], {}, timeout=5)
        # Old code: "the websocket was closed", without the code.
        assert "1013" in str(caught.value)
        await check_reconnects(transport, server)


async def test_websocket_dropped_connection_mid_request(session: aiohttp.ClientSession) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.receive()
        assert request.transport is not None
        request.transport.abort()
        return socket

    async with endpoint(drop) as url, ws_transport(url, session) as transport:
        with pytest.raises(TransportConnectionClosed):
            await transport.send([connect_request()], {}, timeout=5)


async def test_websocket_server_that_never_answers_times_out(
    session: aiohttp.ClientSession,
) -> None:
    async def mute(socket: web.WebSocketResponse, number: int) -> None:
        async for _ in requests(socket):
            pass

    async with (
        ws_endpoint(first_socket_then_answer(mute)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        started = time.monotonic()
        # Old code: a plain TransportError.
        with pytest.raises(TransportTimeoutError) as caught:
            await transport.send([connect_request()], {}, timeout=0.5)
        assert time.monotonic() - started < 3
        assert "/meta/connect request over websocket" in str(caught.value)
        assert "within 0.5 s" in str(caught.value)
        # The socket that lost a reply is not trusted with the next request.
        await check_reconnects(transport, server)


async def test_websocket_every_waiting_request_gets_the_error(
    session: aiohttp.ClientSession,
) -> None:
    async def garbage_on_second(socket: web.WebSocketResponse, number: int) -> None:
        seen = 0
        async for payload in requests(socket):
            seen += len(payload)
            if seen == 2:
                await socket.send_str("garbage")

    async with (
        ws_endpoint(first_socket_then_answer(garbage_on_second)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        results = await asyncio.gather(
            transport.send([connect_request("a")], {}, timeout=5),
            transport.send([connect_request("b")], {}, timeout=5),
            return_exceptions=True,
        )
        assert [type(result) for result in results] == [InvalidMessage, InvalidMessage]
        assert server.connections == 1
        await check_reconnects(transport, server)


# -- websocket: a failure with no request waiting is raised by the next send -----------------


def fails_while_idle(failure: Callable[[web.WebSocketResponse], Awaitable[None]]) -> Script:
    """Answer the first request, then fail on the idle socket; the client must close it."""

    async def script(socket: web.WebSocketResponse, number: int) -> None:
        if number > 1:
            await answer_everything(socket)
            return
        async for payload in requests(socket):
            await socket.send_json([reply_to(payload[0])])
            await asyncio.sleep(0.05)
            await failure(socket)
            break
        async for _ in requests(socket):
            pytest.fail("the client sent a request over a socket it should have given up")

    return script


async def bad_json(socket: web.WebSocketResponse) -> None:
    await socket.send_str("not json")


async def close_frame(socket: web.WebSocketResponse) -> None:
    await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(bad_json, InvalidMessage), (close_frame, TransportConnectionClosed)],
    ids=["bad-json", "close"],
)
async def test_websocket_failure_while_idle_is_raised_by_the_next_send(
    failure: Callable[[web.WebSocketResponse], Awaitable[None]],
    expected: type[TransportError],
    session: aiohttp.ClientSession,
) -> None:
    async with (
        ws_endpoint(fails_while_idle(failure)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        await transport.send([connect_request()], {}, timeout=5)
        await asyncio.sleep(0.5)  # the failure arrives while nothing waits
        # Old code: the bad frame was swallowed and this request hung on a dead reader.
        with pytest.raises(expected):
            await transport.send([connect_request("2")], {}, timeout=5)
        assert server.connections == 1
        await check_reconnects(transport, server)
        # Raised once, not again.
        (reply,) = await transport.send([connect_request("3")], {}, timeout=5)
        assert reply["id"] == "3"


async def test_websocket_unsolicited_handler_error_is_raised_and_logged(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    event = {"channel": "/topic/x", "data": {"n": 1}}

    async def push_event(socket: web.WebSocketResponse) -> None:
        await socket.send_json([event])

    seen: list[Payload] = []

    async def handler(payload: Payload) -> None:
        seen.append(payload)
        raise RuntimeError("the handler broke")

    async with (
        ws_endpoint(fails_while_idle(push_event)) as (url, server),
        ws_transport(url, session) as transport,
    ):
        transport.unsolicited = handler
        with caplog.at_level(logging.ERROR, "aiosfstream.cometd.transports.websocket"):
            await transport.send([connect_request()], {}, timeout=5)
            await asyncio.sleep(0.5)
        assert seen == [[event]]
        assert any(record.exc_info for record in caplog.records), caplog.records
        # Old code: the reader died with the error and the next request hung.
        with pytest.raises(RuntimeError, match="the handler broke"):
            await transport.send([connect_request("2")], {}, timeout=5)
        await check_reconnects(transport, server)


async def test_websocket_routes_events_and_replies(session: aiohttp.ClientSession) -> None:
    events: list[Payload] = []

    async def handler(payload: Payload) -> None:
        events.append(payload)

    async def chatty(socket: web.WebSocketResponse, number: int) -> None:
        async for payload in requests(socket):
            await socket.send_json([{"channel": "/topic/x", "data": 1, "id": payload[0]["id"]}])
            await socket.send_json([reply_to(payload[0]), {"channel": "/topic/x", "data": 2}])

    async with ws_endpoint(chatty) as (url, server), ws_transport(url, session) as transport:
        transport.unsolicited = handler
        replies = await transport.send([connect_request()], {}, timeout=5)
        assert replies == [reply_to(connect_request())]
        await transport.send([connect_request("2")], {}, timeout=5)
        assert server.connections == 1
    assert [message["data"] for payload in events for message in payload] == [1, 2, 1, 2]


async def test_websocket_aclose_fails_waiting_requests_and_always_works(
    session: aiohttp.ClientSession,
) -> None:
    async def deaf(socket: web.WebSocketResponse, number: int) -> None:
        await socket.receive()
        await asyncio.sleep(30)  # never reads again: the close is not acknowledged

    async with ws_endpoint(deaf) as (url, _):
        transport = websocket(url, session)
        await transport.aclose()  # never opened
        waiting = asyncio.create_task(transport.send([connect_request()], {}, timeout=20))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await transport.aclose()
        # Old code: waited 10 s for the server to acknowledge the close.
        assert time.monotonic() - started < 5
        with pytest.raises(TransportConnectionClosed):
            await waiting
        await transport.aclose()


async def test_websocket_aclose_gives_up_on_a_server_that_talks_instead_of_closing(
    session: aiohttp.ClientSession,
) -> None:
    async def chatty(socket: web.WebSocketResponse, number: int) -> None:
        await socket.receive()
        await socket.send_json([reply_to(connect_request())])
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(300):  # never reads, so never sees the close
                await socket.send_json([{"channel": "/topic/x", "data": "chatter"}])
                await asyncio.sleep(0.05)

    async with ws_endpoint(chatty) as (url, _):
        transport = websocket(url, session)
        await transport.send([connect_request()], {}, timeout=5)
        started = time.monotonic()
        # Old code: aiohttp's close() waited for the close frame among the chatter,
        # restarting its timeout at every frame.
        await asyncio.wait_for(transport.aclose(), 10)
        assert time.monotonic() - started < 5


async def test_websocket_upgrade_that_never_answers_times_out(
    session: aiohttp.ClientSession,
) -> None:
    async def stalled(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(10)
        return web.Response()

    async with endpoint(stalled) as url, ws_transport(url, session) as transport:
        started = time.monotonic()
        # Old code: only the session's 5 minute timeout bounded the upgrade.
        with pytest.raises(TransportTimeoutError) as caught:
            await asyncio.wait_for(transport.send([connect_request()], {}, timeout=0.5), 5)
        assert time.monotonic() - started < 3
        assert "websocket connection to ws://" in str(caught.value)
        assert "within 0.5 s" in str(caught.value)


# -- websocket through the generic client ---------------------------------------------------------


class SabotagedBayeux:
    """A Bayeux server, handshake over HTTP and the rest over a websocket.

    Once the client has subscribed, the next ``/meta/connect`` gets a frame that is not
    JSON, followed by an event on the same socket: nothing after the bad frame is to be
    trusted. On the next socket the event ``{"n": 2}`` is delivered.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.subscribed = False
        self.sabotaged = False
        self.delivered = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cometd", self.handshake)
        app.router.add_get("/cometd", self.websocket)
        return app

    async def handshake(self, request: web.Request) -> web.Response:
        (message,) = await request.json()
        assert message["channel"] == "/meta/handshake"
        return web.json_response(
            [
                reply_to(
                    message,
                    clientId="sabotaged",
                    version="1.0",
                    supportedConnectionTypes=["websocket"],
                    advice={"reconnect": "retry", "interval": 50, "timeout": 1000},
                )
            ]
        )

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for payload in requests(socket):
            for message in payload:
                await self.answer(socket, message)
        return socket

    async def answer(self, socket: web.WebSocketResponse, message: Message) -> None:
        channel = message["channel"]
        if channel == "/meta/subscribe":
            self.subscribed = True
            await socket.send_json([reply_to(message, subscription=message["subscription"])])
        elif channel == "/meta/connect" and self.subscribed and not self.sabotaged:
            self.sabotaged = True
            await socket.send_str("<html>this is not JSON</html>")
            await socket.send_json([{"channel": "/topic/x", "data": {"n": 1}}])
        elif channel == "/meta/connect" and self.sabotaged and not self.delivered:
            self.delivered = True
            await socket.send_json([{"channel": "/topic/x", "data": {"n": 2}}])
            await socket.send_json([reply_to(message)])
        else:
            await socket.send_json([reply_to(message)])


async def test_client_over_websocket_delivers_the_next_event_after_a_bad_frame() -> None:
    server = SabotagedBayeux()
    async with (
        serve(server.app()) as base,
        Client(f"{base}/cometd", ConnectionType.WEBSOCKET) as client,
    ):
        assert client.connection_type is ConnectionType.WEBSOCKET
        await client.subscribe("/topic/x")
        # Old code: the reader died on the bad frame and its socket was reused.
        message = await asyncio.wait_for(client.receive(), 10)
        assert message["data"] == {"n": 2}
        assert server.sabotaged
        assert server.connections == 2
        assert not client.closed


@pytest.mark.parametrize("error", [ValueError("a bug in an extension"), asyncio.TimeoutError()])
async def test_long_polling_passes_errors_of_the_receiver_through_unchanged(
    session: aiohttp.ClientSession, error: Exception
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response([reply_to(connect_request())])

    async def deliver(messages: list[dict[str, Any]]) -> None:
        raise error

    async with endpoint(answer) as url:
        # Streaming first: the receiver ran inside the translation of transport errors,
        # which turned a ValueError into InvalidMessage and a timeout into a lost answer.
        with pytest.raises(type(error)) as caught:
            await long_polling(url, session).stream(
                [connect_request()], {}, timeout=5, deliver=deliver
            )
    assert caught.value is error


async def test_long_polling_sends_first_and_reads_only_once_pace_returns(
    session: aiohttp.ClientSession,
) -> None:
    received = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        received.set()
        return web.json_response([reply_to(connect_request())])

    room = asyncio.Event()
    paced = 0
    delivered: list[Message] = []

    async def pace() -> None:
        nonlocal paced
        paced += 1
        await room.wait()

    async def deliver(messages: list[Message]) -> None:
        delivered.extend(messages)

    async with endpoint(answer) as url:
        streaming = asyncio.ensure_future(
            long_polling(url, session).stream(
                [connect_request()], {}, timeout=5, deliver=deliver, pace=pace
            )
        )
        await asyncio.wait_for(received.wait(), 5)  # the request went out at once
        await asyncio.sleep(0.1)
        assert not streaming.done() and delivered == [] and paced == 1  # ... not read yet
        room.set()
        await asyncio.wait_for(streaming, 5)
    assert delivered == [reply_to(connect_request())]


async def test_websocket_paces_before_it_sends(session: aiohttp.ClientSession) -> None:
    # Its answer comes whole: waiting for room before the request is the only way not
    # to take in an answer beyond the room.
    seen: list[Payload] = []

    async def record_and_answer(socket: web.WebSocketResponse, number: int) -> None:
        async for payload in requests(socket):
            seen.append(payload)
            await socket.send_json([reply_to(message) for message in payload])

    delivered: list[Message] = []

    async def deliver(messages: list[Message]) -> None:
        delivered.extend(messages)

    room = asyncio.Event()

    async def pace() -> None:
        await room.wait()

    async with ws_endpoint(record_and_answer) as (url, _), ws_transport(url, session) as transport:
        streaming = asyncio.ensure_future(
            transport.stream([connect_request()], {}, timeout=5, deliver=deliver, pace=pace)
        )
        await asyncio.sleep(0.2)
        assert not streaming.done() and seen == []
        room.set()
        await asyncio.wait_for(streaming, 5)
    assert seen == [[connect_request()]]
    assert delivered == [reply_to(connect_request())]
