"""The token request against hostile or broken token endpoints.

Each test programs a small aiohttp.web server on 127.0.0.1 and checks what
:meth:`AuthenticatorBase.authenticate` makes of its answer: never follow a redirect,
read a bounded body, survive any JSON, and tell a temporary failure (``retryable``) from
a definitive refusal.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import json.scanner
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from aiosfstream.auth import TOKEN_PATH, PasswordAuthenticator
from aiosfstream.exceptions import AuthenticationError

CONSUMER_KEY = "3MVG9-hostile-key-0c2e"
CONSUMER_SECRET = "cs-HOSTILE-SECRET-5d1b"
USERNAME = "victim@example.com"
PASSWORD = "pw-HOSTILE-SECRET-77aa"
SECRETS = (CONSUMER_SECRET, PASSWORD)
CAP = PasswordAuthenticator.max_response_bytes

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            # Not even a piece of it, as a careless cut could leave.
            assert secret[:8] not in text


async def _token(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {
            "access_token": "00Dx-token",
            "instance_url": f"http://{request.host}",
            "token_type": "Bearer",
        }
    )


class HostileServer:
    """A server on 127.0.0.1 that answers every request with :attr:`respond`."""

    def __init__(self) -> None:
        self.respond: Responder = _token
        self.requests: list[tuple[str, str]] = []
        #: Set when the test ends, to let a stalling handler finish.
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append((request.method, request.path))
        return await self.respond(request)

    async def stall(self, request: web.Request) -> web.StreamResponse:
        """Answer nothing until the test ends."""
        await self.release.wait()
        return web.Response(status=204)


ServerFactory = Callable[[], Awaitable[HostileServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start hostile servers on demand; all are stopped when the test ends."""
    started: list[tuple[HostileServer, web.AppRunner]] = []

    async def start() -> HostileServer:
        server = HostileServer()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        started.append((server, runner))
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return server

    yield start
    for server, _ in started:
        server.release.set()
    for _, runner in started:
        await runner.cleanup()


@pytest.fixture
async def server(start_server: ServerFactory) -> HostileServer:
    return await start_server()


def authenticator(url: str, **kwargs: Any) -> PasswordAuthenticator:
    kwargs.setdefault("timeout", 5.0)
    return PasswordAuthenticator(
        CONSUMER_KEY,
        CONSUMER_SECRET,
        USERNAME,
        PASSWORD,
        login_url=url,
        allow_insecure_http=True,
        **kwargs,
    )


async def refusal(auth: PasswordAuthenticator) -> AuthenticationError:
    """Run :meth:`authenticate`, which must fail; return its error."""
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    error = caught.value
    assert_no_secret(str(error), repr(error))
    assert auth.access_token is None
    return error


def answer(
    status: int, body: str = "", content_type: str = "application/json", **headers: str
) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type, headers=headers)

    return respond


def http_date(seconds_from_now: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=seconds_from_now
    )
    return email.utils.format_datetime(moment, usegmt=True)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- redirects ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_refused_and_not_followed(
    start_server: ServerFactory, status: int
) -> None:
    first, second = await start_server(), await start_server()
    # The Location echoes the password: it is named in the message, redacted.
    location = f"{second.url}{TOKEN_PATH}?echo={PASSWORD}"
    first.respond = answer(status, Location=location)
    error = await refusal(authenticator(first.url))

    assert second.requests == []
    assert first.requests == [("POST", TOKEN_PATH)]
    assert error.status == status
    assert not error.retryable
    message = str(error)
    assert f"HTTP {status}" in message
    assert f"{second.url}{TOKEN_PATH}?echo=<redacted>" in message


async def test_redirect_without_location(server: HostileServer) -> None:
    server.respond = answer(307)
    error = await refusal(authenticator(server.url))
    assert (error.status, error.retryable) == (307, False)
    assert "HTTP 307, a redirect without a Location" in str(error)


async def test_redirect_location_is_shortened(server: HostileServer) -> None:
    location = "http://127.0.0.1:9/" + "a" * 5000
    server.respond = answer(308, Location=location)
    error = await refusal(authenticator(server.url))
    assert "more characters" in str(error)
    assert len(str(error)) < 1500


async def test_redirect_body_is_not_awaited(server: HostileServer) -> None:
    # The redirect's body never comes: the refusal must not wait for it.
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=307, headers={"Location": "http://127.0.0.1:9/"})
        response.content_length = 1000
        await response.prepare(request)
        await server.release.wait()
        return response

    server.respond = respond
    error = await refusal(authenticator(server.url, timeout=5.0))
    assert (error.status, error.retryable) == (307, False)


# --- temporary failures ---------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retryable(server: HostileServer, status: int) -> None:
    body = json.dumps({"error": "server_error", "error_description": "try again later"})
    server.respond = answer(status, body)
    error = await refusal(authenticator(server.url))
    assert error.retryable
    assert error.status == status
    assert (error.error, error.error_description) == ("server_error", "try again later")
    assert error.retry_after is None


async def test_json_without_error_on_5xx_is_retryable(server: HostileServer) -> None:
    server.respond = answer(500, "{}")
    error = await refusal(authenticator(server.url))
    assert (error.status, error.retryable, error.error) == (500, True, None)


async def test_request_timeout_status_is_retryable(server: HostileServer) -> None:
    server.respond = answer(408, '{"error": "timeout"}')
    error = await refusal(authenticator(server.url))
    assert (error.status, error.retryable) == (408, True)


async def test_503_retry_after_seconds(server: HostileServer) -> None:
    server.respond = answer(503, "{}", **{"Retry-After": "120"})
    error = await refusal(authenticator(server.url))
    assert (error.retryable, error.retry_after) == (True, 120.0)


async def test_429_retry_after_seconds(server: HostileServer) -> None:
    body = json.dumps({"error": "rate_limit_exceeded", "error_description": "slow down"})
    server.respond = answer(429, body, **{"Retry-After": "7"})
    error = await refusal(authenticator(server.url))
    assert error.retryable
    assert error.retry_after == 7.0
    assert (error.status, error.error, error.error_description) == (
        429,
        "rate_limit_exceeded",
        "slow down",
    )


async def test_429_retry_after_http_date(server: HostileServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        # The date is made when the request comes, not when the test starts.
        headers = {"Retry-After": http_date(60)}
        return await answer(429, '{"error": "rate_limit_exceeded"}', **headers)(request)

    server.respond = respond
    error = await refusal(authenticator(server.url))
    assert error.retryable
    # An HTTP date has whole seconds, and some time passes on the way.
    assert error.retry_after is not None
    assert 55 <= error.retry_after <= 60


@pytest.mark.parametrize(
    ("header", "expected"),
    [("soon", None), ("-5", None), ("1.5", None), ("", None), ("9" * 400, None)],
)
async def test_429_unusable_retry_after(
    server: HostileServer, header: str, expected: float | None
) -> None:
    server.respond = answer(429, "{}", **{"Retry-After": header})
    error = await refusal(authenticator(server.url))
    assert (error.retryable, error.retry_after) == (True, expected)


async def test_429_retry_after_in_the_past_means_now(server: HostileServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return await answer(429, "{}", **{"Retry-After": http_date(-3600)})(request)

    server.respond = respond
    error = await refusal(authenticator(server.url))
    assert error.retry_after == 0.0


async def test_429_without_retry_after(server: HostileServer) -> None:
    server.respond = answer(429, "{}")
    error = await refusal(authenticator(server.url))
    assert (error.retryable, error.retry_after) == (True, None)


async def test_retry_after_is_ignored_on_other_statuses(server: HostileServer) -> None:
    # RFC 9110 gives Retry-After a meaning on 503 (and RFC 6585 on 429) only.
    server.respond = answer(500, "{}", **{"Retry-After": "30"})
    error = await refusal(authenticator(server.url))
    assert (error.retryable, error.retry_after) == (True, None)


HTML_PAGE = (
    "<html><head><title>Down for Maintenance</title></head>"
    f"<body>upstream refused password={PASSWORD}</body></html>"
)


@pytest.mark.parametrize("status", [200, 503])
async def test_html_page_is_retryable(server: HostileServer, status: int) -> None:
    server.respond = answer(status, HTML_PAGE, "text/html", **{"Retry-After": "5"})
    error = await refusal(authenticator(server.url))
    assert error.retryable
    assert error.status == status
    message = str(error)
    assert f"HTTP {status} with text/html instead of JSON" in message
    assert "Down for Maintenance" in message
    assert "upstream" not in message
    assert error.retry_after == (5.0 if status == 503 else None)


async def test_html_page_title_is_shortened(server: HostileServer) -> None:
    page = f"<html><title>{'Z' * 3000}</title></html>"
    server.respond = answer(502, page, "text/html")
    error = await refusal(authenticator(server.url))
    assert "more characters" in str(error)
    assert len(str(error)) < 300


@pytest.mark.parametrize("status", [200, 400, 500])
async def test_invalid_json_is_retryable(server: HostileServer, status: int) -> None:
    server.respond = answer(status, '{"access_token": "00Dx-tok')
    error = await refusal(authenticator(server.url))
    assert (error.status, error.retryable) == (status, True)
    assert "invalid JSON" in str(error)


@pytest.mark.parametrize("body", ["[1, 2]", '"token"', "42", "null"])
async def test_json_that_is_not_an_object_is_retryable(server: HostileServer, body: str) -> None:
    server.respond = answer(200, body)
    error = await refusal(authenticator(server.url))
    assert error.retryable
    assert "not an object" in str(error)


def python_json_loads(text: str) -> Any:
    """A JSON decoder written in Python: it recurses with Python frames."""
    decoder = json.JSONDecoder()
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 100_000])
@pytest.mark.parametrize("loads", [json.loads, python_json_loads], ids=["json", "python"])
async def test_deeply_nested_json(
    server: HostileServer, body: str, loads: Callable[[str], Any]
) -> None:
    server.respond = answer(200, body)
    error = await refusal(authenticator(server.url, json_loads=loads))
    assert error.retryable
    assert "nested too deeply" in str(error)
    assert isinstance(error.__cause__, RecursionError)


# --- bounded body ---------------------------------------------------------------------


async def test_announced_body_over_the_cap_is_not_read(server: HostileServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        # It announces 50 MB, sends a little, then stalls: reading it would time out.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 50_000_000
        await response.prepare(request)
        await response.write(b"{" + b" " * 1000)
        await server.release.wait()
        return response

    server.respond = respond
    started = time.monotonic()
    error = await refusal(authenticator(server.url, timeout=5.0))
    assert time.monotonic() - started < 4
    assert error.retryable
    assert f"max_response_bytes ({CAP} bytes)" in str(error)
    assert "50000000" in str(error)


async def test_body_over_the_cap_with_content_length(server: HostileServer) -> None:
    server.respond = answer(200, "{" + " " * CAP + "}")
    error = await refusal(authenticator(server.url))
    assert error.retryable
    assert f"max_response_bytes ({CAP} bytes)" in str(error)


async def test_endless_body_without_content_length(server: HostileServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * 65_536
        try:
            # Far more than any cap: only the client closing the connection ends it.
            for _ in range(10_000):
                await response.write(chunk)
        except ConnectionError:
            pass
        return response

    server.respond = respond
    started = time.monotonic()
    error = await refusal(authenticator(server.url, timeout=5.0))
    assert time.monotonic() - started < 4
    assert error.retryable
    assert f"max_response_bytes ({CAP} bytes)" in str(error)
    assert "the rest was not read" in str(error)


def padded_token(size: int) -> bytes:
    body = json.dumps({"access_token": "00Dx-token", "instance_url": "http://127.0.0.1:9"})
    return (body + " " * (size - len(body))).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_cap_is_inclusive_and_can_be_changed(server: HostileServer, chunked: bool) -> None:
    sizes = iter([4096, 4097])

    async def respond(request: web.Request) -> web.StreamResponse:
        body = padded_token(next(sizes))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    server.respond = respond
    auth = authenticator(server.url)
    auth.max_response_bytes = 4096
    await auth.authenticate()
    assert auth.access_token == "00Dx-token"
    with pytest.raises(AuthenticationError, match=r"max_response_bytes \(4096 bytes\)") as caught:
        await auth.authenticate()
    assert caught.value.retryable


# --- no answer ------------------------------------------------------------------------


async def test_closed_port_is_retryable() -> None:
    error = await refusal(authenticator(closed_port_url()))
    assert error.retryable
    assert error.status is None
    assert "failed" in str(error)


async def test_stalling_server_times_out_retryable(server: HostileServer) -> None:
    server.respond = server.stall
    started = time.monotonic()
    error = await refusal(authenticator(server.url, timeout=0.3))
    assert time.monotonic() - started < 3
    assert error.retryable
    assert error.status is None
    assert "timed out after 0.3 s" in str(error)


async def test_body_that_stalls_times_out_retryable(server: HostileServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 500
        await response.prepare(request)
        await response.write(b'{"access_token": ')
        await server.release.wait()
        return response

    server.respond = respond
    error = await refusal(authenticator(server.url, timeout=0.3))
    assert error.retryable
    assert "timed out after 0.3 s" in str(error)


# --- definitive refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "description"),
    [
        (400, "invalid_grant", "authentication failure"),
        (400, "invalid_grant", "expired access/refresh token"),
        (400, "invalid_client_id", "client identifier invalid"),
        (401, "invalid_client", "invalid client credentials"),
        (400, "unsupported_grant_type", "grant type not supported"),
        (400, "invalid_request", "request not supported on this domain"),
        (400, "inactive_user", "user is inactive"),
        (403, "inactive_org", "organization is inactive"),
        (400, "invalid_app_access", "user is not admin approved to access this app"),
        (200, "invalid_grant", "an error field even on a success status"),
    ],
)
async def test_oauth_refusal_is_definitive(
    server: HostileServer, status: int, code: str, description: str
) -> None:
    server.respond = answer(status, json.dumps({"error": code, "error_description": description}))
    error = await refusal(authenticator(server.url))
    assert not error.retryable
    assert (error.status, error.error, error.error_description) == (status, code, description)
    assert f"{code}: {description}" in str(error)


async def test_long_error_description_is_shortened_after_redaction(
    server: HostileServer,
) -> None:
    # The echoed password straddles the cut: redacting first leaves no piece of it.
    description = "x" * 995 + PASSWORD + "y" * 5000
    server.respond = answer(
        400, json.dumps({"error": "invalid_grant", "error_description": description})
    )
    error = await refusal(authenticator(server.url))
    assert not error.retryable
    assert error.error_description is not None
    assert "more characters" in error.error_description
    assert len(str(error)) < 1200
    assert_no_secret(error.error_description)


async def test_token_response_without_token_is_definitive(server: HostileServer) -> None:
    server.respond = answer(200, '{"instance_url": "https://na1.salesforce.com"}')
    error = await refusal(authenticator(server.url))
    assert not error.retryable
    assert "lacks access_token" in str(error)


async def test_unusable_instance_url_is_definitive(server: HostileServer) -> None:
    instance_url = "ftp://" + "h" * 3000
    server.respond = answer(200, json.dumps({"access_token": "t0k", "instance_url": instance_url}))
    error = await refusal(authenticator(server.url))
    assert not error.retryable
    assert "unusable instance_url" in str(error)
    assert len(str(error)) < 1300
