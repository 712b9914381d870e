"""Wire fuzzing: random and malformed server responses, over real HTTP on loopback.

A small aiohttp server, run in a thread of its own, answers every request with whatever
the current example says: any status code, content type and body (JSON of any shape,
Bayeux-like messages with fields of the wrong type, truncated JSON, invalid UTF-8, HTML
error pages, nothing), or a connection cut in the middle of the body, or no answer.

The contract checked: :meth:`LongPollingTransport.send` followed by
:meth:`BayeuxProtocol.sort` either raises a :class:`TransportError` whose message names the
cause, or returns dicts that each land in exactly one of replies, events and unsolicited;
no other exception, and never a hang. One level up, a generic CometD :class:`Client` that
gets garbage in reply to its connects raises a typed error from ``receive()`` within a
bounded time, and ``close()`` leaves no task, warning or error log behind.

Each example runs in a fresh event loop (``asyncio.run``), so that what a client leaves
behind is visible: pending tasks, unclosed sessions, errors sent to the loop's exception
handler and warnings all fail the example.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from aiosfstream.cometd import Client, ConnectionType
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.exceptions import (
    HTTPStatusError,
    ServerError,
    TransportError,
    TransportTimeoutError,
)
from aiosfstream.cometd.messages import InvalidMessage, is_event
from aiosfstream.cometd.protocol import BayeuxProtocol, Incoming
from aiosfstream.cometd.transports import LongPollingTransport
from aiosfstream.typing import Message, Payload

_T = TypeVar("_T")

STATUSES = (200, 400, 401, 403, 413, 500, 502, 503)
#: ``None``: no content type given to aiohttp, which then sends its default,
#: ``application/octet-stream`` (what the client also assumes for a missing header).
CONTENT_TYPES = ("application/json", "text/html", "text/plain", "text/json", None)
#: Seconds any single exchange may take before the test calls it a hang.
HANG_LIMIT = 10.0

PROXY_502_PAGE = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


# -- the fuzzing server ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    :param mode: ``"normal"``; ``"cut"``: promise twice the body's length, send half of
        it and drop the connection; ``"hang"``: never answer
    :param delay: seconds to wait before answering
    """

    status: int = 200
    content_type: str | None = "application/json"
    body: bytes = b"[]"
    mode: str = "normal"
    delay: float = 0.0


#: Decides the reply from the decoded request body (``None`` if it was not JSON).
Script = Callable[[Any], Reply]


class FuzzServer:
    """An aiohttp server in a background thread whose answers a test chooses."""

    def __init__(self) -> None:
        self.script: Script = lambda request: Reply()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cometd/66.0"

    def answer(self, reply: Reply) -> None:
        """Answer every request with *reply*."""
        self.script = lambda request: reply

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def start(self) -> None:
        self._thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = None
        reply = self.script(decoded)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.mode == "hang":
            # Longer than any client waits: it gives up first.
            await asyncio.sleep(HANG_LIMIT)
            return web.Response(status=204)
        if reply.mode == "cut":
            response = web.StreamResponse(status=reply.status)
            if reply.content_type is not None:
                response.content_type = reply.content_type
            response.content_length = 2 * len(reply.body) + 10
            await response.prepare(request)
            await response.write(reply.body[: len(reply.body) // 2])
            assert request.transport is not None
            request.transport.abort()
            return response
        if reply.content_type is None:
            return web.Response(status=reply.status, body=reply.body)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


@pytest.fixture(scope="module")
def server() -> Iterator[FuzzServer]:
    fuzz = FuzzServer()
    fuzz.start()
    try:
        yield fuzz
    finally:
        fuzz.stop()


# -- running an example in a clean event loop ----------------------------------------------


def run_clean(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* in a new event loop; fail on anything it leaves behind.

    Pending tasks at the end, errors reported to the loop's exception handler (unclosed
    sessions, "Task exception was never retrieved", "Exception in callback") and warnings
    all fail the example.
    """
    reported: list[dict[str, Any]] = []

    async def main() -> _T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        try:
            return await asyncio.wait_for(coro, HANG_LIMIT)
        finally:
            await asyncio.sleep(0)  # let transports finish closing
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            assert not leftover, f"tasks left behind: {leftover}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = asyncio.run(main())
        gc.collect()
    assert not reported, f"errors reported to the event loop: {reported}"
    assert not caught, f"warnings: {[str(w.message) for w in caught]}"
    return result


# -- driving the transport and the protocol ----------------------------------------------


def connect_request() -> Message:
    return {
        "channel": "/meta/connect",
        "id": "2",
        "clientId": "fuzzclient",
        "connectionType": "long-polling",
    }


async def send_and_sort(url: str, request: Message, timeout: float = 5.0) -> Incoming:
    """POST *request* through the long-polling transport; sort the answer."""
    async with aiohttp.ClientSession() as session:
        transport = LongPollingTransport(url, session, json_dumps=json.dumps, json_loads=json.loads)
        payload = await transport.send([request], {}, timeout=timeout)
        assert isinstance(payload, list)
        assert all(isinstance(message, dict) for message in payload)
        protocol = BayeuxProtocol([ConnectionType.LONG_POLLING])
        incoming = protocol.sort(payload, [request])
        check_partition(payload, incoming, request)
        return incoming


def check_partition(payload: Payload, incoming: Incoming, request: Message) -> None:
    """Every message lands in exactly one of replies, events and unsolicited."""
    placed = Counter(map(id, [*incoming.replies.values(), *incoming.events, *incoming.unsolicited]))
    assert placed == Counter(map(id, payload))
    assert set(incoming.replies) <= {request["id"]}
    assert all("successful" in reply for reply in incoming.replies.values())
    assert all(is_event(event) for event in incoming.events)


def exchange(server: FuzzServer, reply: Reply) -> Incoming | TransportError:
    """Have the server answer *reply*; return the sorted answer or the typed error.

    Any exception other than a :class:`TransportError` propagates and fails the test.
    """
    server.answer(reply)

    async def attempt() -> Incoming | TransportError:
        try:
            return await send_and_sort(server.url, connect_request())
        except TransportError as error:
            return error

    return run_clean(attempt())


def check_typed(error: TransportError, reply: Reply) -> None:
    """A typed error names its cause; an HTTP error status gives an HTTPStatusError."""
    assert str(error).strip(), f"{type(error).__name__} with an empty message"
    if reply.status >= 400 and reply.mode == "normal":
        assert isinstance(error, HTTPStatusError), repr(error)
        assert error.status == reply.status
        assert f"HTTP {reply.status}" in str(error)


# -- strategies -------------------------------------------------------------------------


def _same(value: _T) -> _T:
    return value


def weighted(*choices: tuple[int, st.SearchStrategy[_T]]) -> st.SearchStrategy[_T]:
    """``one_of`` with weights (``one_of`` itself drops repeated branches)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(_same)


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.integers(min_value=-(2**80), max_value=2**80)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
VALID_CHANNELS = st.sampled_from(
    [
        "/meta/connect",
        "/meta/handshake",
        "/meta/subscribe",
        "/meta/unsubscribe",
        "/meta/disconnect",
        "/meta/unknown",
        "/topic/fuzz",
        "/event/Fuzz__e",
        "/u/fuzz",
        "/",
    ]
)
# Mostly plausible values, some of any type.
CHANNELS = weighted(
    (3, VALID_CHANNELS),
    (1, st.sampled_from(["", "meta/connect", "topic"]) | st.text(max_size=12)),
    (1, JSON_VALUES),
)
IDS = st.sampled_from(["1", "2", "3", 2, 2.0, "02"]) | JSON_VALUES
SUCCESSFUL = weighted(
    (3, st.booleans()),
    (1, st.sampled_from(["true", "false", 1, 0, None])),
    (1, JSON_VALUES),
)
ADVICE = (
    st.fixed_dictionaries(
        {},
        optional={
            "reconnect": st.sampled_from(["retry", "handshake", "none", "bogus"]) | JSON_VALUES,
            "interval": st.integers(-(10**12), 10**12) | st.floats() | JSON_VALUES,
            "timeout": st.integers(-(10**12), 10**12) | st.floats() | JSON_VALUES,
        },
    )
    | JSON_VALUES
)
ERRORS = (
    st.sampled_from(
        [
            "403::Unknown client",
            "402::Unknown client",
            "401::Authentication invalid",
            "403::Handshake denied",
            "400::The replayId {5} you provided was invalid.",
            "::",
            "500",
        ]
    )
    | JSON_VALUES
)
DATA = (
    st.fixed_dictionaries(
        {"event": st.fixed_dictionaries({"replayId": st.integers() | JSON_VALUES})},
        optional={"sobject": JSON_VALUES, "payload": JSON_VALUES},
    )
    | JSON_VALUES
)


def bayeux_messages(successful: st.SearchStrategy[Any] = SUCCESSFUL) -> st.SearchStrategy[Any]:
    """Dicts shaped like Bayeux messages, any field missing or of the wrong type."""
    optional = {
        "id": IDS,
        "successful": successful,
        "advice": ADVICE,
        "data": DATA,
        "error": ERRORS,
        "clientId": st.text(max_size=8) | JSON_VALUES,
        "ext": JSON_VALUES,
        "subscription": CHANNELS,
    }
    return st.fixed_dictionaries({"channel": CHANNELS}, optional=optional) | st.fixed_dictionaries(
        {}, optional={"channel": CHANNELS, **optional}
    )


def json_bodies(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Arrays of messages, a message instead of an array, or any JSON at all."""
    arrays = st.lists(messages, max_size=6)
    values = weighted((3, arrays), (1, messages), (1, JSON_VALUES))
    return values.map(lambda value: json.dumps(value).encode())


def _cut(body: bytes) -> Callable[[int], bytes]:
    return lambda end: body[:end]


def truncated_bodies(bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """*bodies* cut short at a random byte."""
    return bodies.flatmap(lambda body: st.integers(0, max(len(body) - 1, 0)).map(_cut(body)))


INVALID_UTF8 = st.binary(min_size=1, max_size=16).map(
    lambda raw: b'[{"channel": "/topic/fuzz", "data": "' + raw + b'\xff"}]'
)
CANNED = st.sampled_from(
    [
        b"",
        b" ",
        b"null",
        b"[",
        b"[]",
        b"{}",
        b"[{}]",
        b"[[]]",
        b"\xef\xbb\xbf[]",  # a UTF-8 byte order mark
        b"\xff\xfe[\x00]\x00",  # UTF-16
        b"\x00\x00\x00[",
        PROXY_502_PAGE,
        b"<!DOCTYPE html><html><body>Service Unavailable</body></html>",
        b"[NaN, Infinity]",
        b'[{"channel": "/meta/connect", "id": "2", "successful": true}] trailing',
    ]
)


def bodies(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    structured = json_bodies(messages)
    return weighted(
        (5, structured),
        (1, truncated_bodies(structured)),
        (1, INVALID_UTF8),
        (1, CANNED),
        (1, st.binary(max_size=64)),
    )


#: Well-formed messages: replies with a boolean ``successful``, and events.
VALID_MESSAGES = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["/meta/connect", "/meta/subscribe", "/meta/handshake"]),
        "successful": st.booleans(),
    },
    optional={"id": IDS, "advice": ADVICE, "error": ERRORS, "clientId": st.text(max_size=8)},
) | st.fixed_dictionaries(
    {"channel": st.sampled_from(["/topic/fuzz", "/event/Fuzz__e", "/u/fuzz"]), "data": DATA},
    optional={"id": IDS, "advice": ADVICE, "clientId": st.text(max_size=8)},
)


#: Mostly 200 with JSON, so that bodies get decoded and sorted; every status and type.
STATUS = st.sampled_from([200] * len(STATUSES) + list(STATUSES))
CONTENT_TYPE = st.sampled_from(["application/json"] * len(CONTENT_TYPES) + list(CONTENT_TYPES))
MODE = st.sampled_from(["normal"] * 7 + ["cut"])


def replies(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[Reply]:
    return st.builds(
        Reply, status=STATUS, content_type=CONTENT_TYPE, body=bodies(messages), mode=MODE
    )


REPLIES = replies(weighted((2, VALID_MESSAGES), (1, bayeux_messages())))


# -- transport + protocol: the property ----------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=REPLIES)
@example(reply=Reply(502, "text/html", PROXY_502_PAGE))
@example(reply=Reply(200, "text/html", b'[{"channel": "/meta/connect", "successful": true}]'))
@example(reply=Reply(200, None, b"[]"))
def test_any_response_is_sorted_or_a_typed_error(server: FuzzServer, reply: Reply) -> None:
    outcome = exchange(server, reply)
    if isinstance(outcome, TransportError):
        check_typed(outcome, reply)
        event(type(outcome).__name__)
    else:
        assert reply.status == 200 and reply.mode == "normal"
        event("sorted: " + ("events" if outcome.events else "no events"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies(weighted((2, VALID_MESSAGES), (1, bayeux_messages()))))
@example(body=b'[{"channel": "/meta/connect", "id": "2", "successful": true, "advice": 5}]')
@example(body=b'[{"channel": "/topic/fuzz", "data": {}, "advice": {"timeout": 1e400}}]')
def test_any_json_body_is_sorted_or_invalid(server: FuzzServer, body: bytes) -> None:
    """With status 200 and a JSON content type, the only possible error is InvalidMessage."""
    outcome = exchange(server, Reply(200, "application/json", body))
    if isinstance(outcome, TransportError):
        assert isinstance(outcome, InvalidMessage), repr(outcome)
        check_typed(outcome, Reply(200, "application/json", body))
        event("InvalidMessage")
    else:
        event("sorted: " + ("events" if outcome.events else "no events"))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    messages=st.lists(VALID_MESSAGES, max_size=8),
    content_type=st.sampled_from(["application/json", "text/json", "text/plain", None]),
)
def test_valid_bayeux_arrays_are_accepted(
    server: FuzzServer, messages: list[Message], content_type: str | None
) -> None:
    """No false alarm: a 200 with a JSON array of well-formed messages is never refused."""
    outcome = exchange(server, Reply(200, content_type, json.dumps(messages).encode()))
    assert isinstance(outcome, Incoming), repr(outcome)


# -- transport + protocol: explicit cases --------------------------------------------------


def expect_error(server: FuzzServer, reply: Reply, error_type: type[TransportError]) -> str:
    outcome = exchange(server, reply)
    assert isinstance(outcome, error_type), repr(outcome)
    check_typed(outcome, reply)
    return str(outcome)


def test_proxy_502_html_page(server: FuzzServer) -> None:
    message = expect_error(server, Reply(502, "text/html", PROXY_502_PAGE), HTTPStatusError)
    assert "502" in message and "text/html" in message


def test_html_page_with_status_200(server: FuzzServer) -> None:
    """A captive portal or login page: not JSON, whatever the status says."""
    page = b"<html><body>Please log in</body></html>"
    message = expect_error(server, Reply(200, "text/html", page), HTTPStatusError)
    assert "expected JSON" in message and "text/html" in message


def test_json_object_instead_of_array(server: FuzzServer) -> None:
    body = json.dumps({"channel": "/meta/connect", "id": "2", "successful": True}).encode()
    message = expect_error(server, Reply(200, "application/json", body), InvalidMessage)
    assert "array" in message and "dict" in message


def test_message_without_channel(server: FuzzServer) -> None:
    body = json.dumps([{"id": "2", "successful": True}]).encode()
    message = expect_error(server, Reply(200, "application/json", body), InvalidMessage)
    assert "channel" in message


def test_successful_as_a_string(server: FuzzServer) -> None:
    body = json.dumps([{"channel": "/meta/connect", "id": "2", "successful": "true"}]).encode()
    message = expect_error(server, Reply(200, "application/json", body), InvalidMessage)
    assert "successful" in message


def test_invalid_utf8(server: FuzzServer) -> None:
    body = b'[{"channel": "/topic/fuzz", "data": "caf\xe9"}]'
    message = expect_error(server, Reply(200, "application/json", body), InvalidMessage)
    assert "JSON" in message


def test_truncated_json(server: FuzzServer) -> None:
    body = b'[{"channel": "/meta/connect", "id": "2", "succ'
    expect_error(server, Reply(200, "application/json", body), InvalidMessage)


def test_empty_body(server: FuzzServer) -> None:
    expect_error(server, Reply(200, "application/json", b""), InvalidMessage)


def test_connection_cut_in_the_middle_of_the_body(server: FuzzServer) -> None:
    body = json.dumps([{"channel": "/meta/connect", "id": "2", "successful": True}]).encode()
    expect_error(server, Reply(200, "application/json", body, mode="cut"), TransportError)


def test_no_answer_is_a_timeout_not_a_hang(server: FuzzServer) -> None:
    server.answer(Reply(mode="hang"))

    async def attempt() -> TransportError:
        started = time.monotonic()
        with pytest.raises(TransportError) as raised:
            await send_and_sort(server.url, connect_request(), timeout=0.5)
        assert time.monotonic() - started < 5
        return raised.value

    error = run_clean(attempt())
    assert "no answer within" in str(error)


def test_deeply_nested_json(server: FuzzServer) -> None:
    """JSON nested deeper than the recursion limit: the decoder raises RecursionError,
    which must reach the client as InvalidMessage like any other undecodable body."""
    depth = 100_000
    body = b"[" * depth + b"]" * depth
    expect_error(server, Reply(200, "application/json", body), InvalidMessage)


def sample_event(replay_id: int, filler: str) -> Message:
    return {
        "channel": "/topic/big",
        "data": {
            "event": {"replayId": replay_id, "createdDate": "2024-05-01T10:00:00.000Z"},
            "sobject": {"Id": f"001{replay_id:015d}", "Name": filler},
        },
    }


def big_batch(size: int = 10 * 1024**2) -> tuple[Payload, int]:
    """Valid events totalling about *size* bytes of JSON; return them and their count."""
    filler = "x" * 1000
    one = len(json.dumps(sample_event(0, filler)))
    count = size // one + 1
    return [sample_event(replay_id, filler) for replay_id in range(1, count + 1)], count


def test_a_10_mb_batch_of_events_is_accepted(server: FuzzServer) -> None:
    events, count = big_batch()
    body = json.dumps([*events, {"channel": "/meta/connect", "id": "2", "successful": True}])
    assert len(body) >= 10 * 1024**2
    outcome = exchange(server, Reply(200, "application/json", body.encode()))
    assert isinstance(outcome, Incoming), repr(outcome)
    assert [e["data"]["event"]["replayId"] for e in outcome.events] == list(range(1, count + 1))
    assert outcome.replies["2"]["successful"] is True


# -- the generic client ----------------------------------------------------------------


def handshake_reply(request: Message) -> Reply:
    reply = {
        "channel": "/meta/handshake",
        "id": request.get("id"),
        "version": "1.0",
        "clientId": "fuzzclient",
        "supportedConnectionTypes": ["long-polling"],
        "successful": True,
    }
    return Reply(200, "application/json", json.dumps([reply]).encode())


def first_request(decoded: Any) -> Message:
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], dict):
        return decoded[0]
    return {}


def handshake_then(connect: Callable[[Message, int], Reply]) -> Script:
    """A script that handshakes properly and answers the n-th other request with
    ``connect(request, n)``."""
    count = 0

    def script(decoded: Any) -> Reply:
        nonlocal count
        request = first_request(decoded)
        if request.get("channel") == "/meta/handshake":
            return handshake_reply(request)
        count += 1
        return connect(request, count)

    return script


def make_client(server: FuzzServer, connection_timeout: float) -> Client:
    return Client(
        server.url,
        ConnectionType.LONG_POLLING,
        connection_timeout=connection_timeout,
        backoff=Backoff(initial=0.01, cap=0.05),
    )


CLIENT_TIMEOUT = 0.3
#: Failed replies to the client's connects (ids count up from "2"), any error and advice.
CONNECT_FAILURES = st.fixed_dictionaries(
    {"channel": st.just("/meta/connect"), "successful": st.just(False)},
    optional={
        "id": st.sampled_from([str(n) for n in range(2, 10)]),
        "error": ERRORS,
        "advice": weighted(
            (
                3,
                st.sampled_from(
                    [{"reconnect": "none"}, {"reconnect": "handshake"}, {"interval": 0}, {}]
                ),
            ),
            (1, ADVICE),
        ),
    },
)
#: Garbage answers to connects: nothing in them may be a successful reply.
NOT_TRUE = weighted(
    (3, st.just(False)),
    (1, st.sampled_from(["true", "false", 1, 0, None])),
    (1, JSON_VALUES.filter(lambda value: value is not True)),
)
GARBAGE_MESSAGES = CONNECT_FAILURES | bayeux_messages(NOT_TRUE)
#: Well-formed refusals, which the client must act on (retry, handshake or give up).
REFUSALS = st.builds(
    Reply,
    body=st.lists(CONNECT_FAILURES, min_size=1, max_size=2).map(
        lambda messages: json.dumps(messages).encode()
    ),
)
GARBAGE = st.lists(REFUSALS | replies(GARBAGE_MESSAGES), min_size=1, max_size=4)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(garbage=GARBAGE)
@example(garbage=[Reply(502, "text/html", PROXY_502_PAGE)])
@example(
    garbage=[
        Reply(
            200,
            "application/json",
            b'[{"channel": "/meta/connect", "id": "2", "successful": false, '
            b'"error": "403::Unknown client", "advice": {"reconnect": "none"}}]',
        )
    ]
)
def test_client_gets_garbage_on_connect(server: FuzzServer, garbage: list[Reply]) -> None:
    """``receive()`` ends in a typed error that names the refusal; close() is clean.

    ServerError for a refusal, HTTPStatusError for a 401 that fresh credentials did
    not cure, TransportTimeoutError when the garbage outlasts connection_timeout.
    """
    server.script = handshake_then(lambda request, n: garbage[(n - 1) % len(garbage)])

    async def attempt() -> None:
        client = make_client(server, CLIENT_TIMEOUT)
        await client.open()
        started = time.monotonic()

        async def drain() -> None:
            while True:  # events in the garbage are delivered; then the error comes
                message = await client.receive()
                assert isinstance(message, dict)

        try:
            with pytest.raises((ServerError, HTTPStatusError, TransportTimeoutError)) as raised:
                await asyncio.wait_for(drain(), 5)
            elapsed = time.monotonic() - started
            event(type(raised.value).__name__)
            assert str(raised.value).strip()
            if isinstance(raised.value, TransportTimeoutError):
                assert elapsed >= CLIENT_TIMEOUT * 0.9, elapsed
            assert elapsed < 5
        finally:
            await client.close()
        assert client.closed

    run_clean(attempt())


def test_client_delivers_a_10_mb_batch(server: FuzzServer) -> None:
    events, count = big_batch()

    def connect(request: Message, n: int) -> Reply:
        reply = {"channel": request.get("channel"), "id": request.get("id"), "successful": True}
        if request.get("channel") == "/meta/connect" and n == 2:
            return Reply(200, "application/json", json.dumps([*events, reply]).encode())
        # Later connects: held a little, as a real server would.
        delay = 0.1 if request.get("channel") == "/meta/connect" else 0.0
        return Reply(200, "application/json", json.dumps([reply]).encode(), delay=delay)

    server.script = handshake_then(connect)

    async def attempt() -> list[int]:
        async with make_client(server, 5.0) as client:
            return [(await client.receive())["data"]["event"]["replayId"] for _ in range(count)]

    assert run_clean(attempt()) == list(range(1, count + 1))


def test_client_survives_deeply_nested_json(server: FuzzServer) -> None:
    """An undecodable answer is a connection problem: connects are retried, then
    TransportTimeoutError after connection_timeout; the disconnect of close() is best
    effort. Never an untyped error."""
    depth = 100_000
    nested = Reply(200, "application/json", b"[" * depth + b"]" * depth)
    server.script = handshake_then(lambda request, n: nested)

    async def attempt() -> tuple[BaseException | None, BaseException | None]:
        client = make_client(server, CLIENT_TIMEOUT)
        await client.open()
        received: BaseException | None = None
        closed: BaseException | None = None
        try:
            await asyncio.wait_for(client.receive(), 5)
        except Exception as error:
            received = error
        try:
            await client.close()
        except Exception as error:
            closed = error
        return received, closed

    received, closed = run_clean(attempt())
    assert isinstance(received, TransportTimeoutError) and closed is None, (
        f"receive() raised {received!r}, close() raised {closed!r}"
    )
