"""Tests for aiosfstream.auth: request data, response parsing, and real token requests.

The end-to-end tests run a small aiohttp.web token endpoint on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import aiosfstream.auth
from aiosfstream.auth import (
    LOGIN_URL,
    SANDBOX_LOGIN_URL,
    SANDBOX_TOKEN_URL,
    TOKEN_PATH,
    TOKEN_URL,
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    OAuthAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    SessionTokenAuthenticator,
    _parse_retry_after,
    parse_token_response,
)
from aiosfstream.cometd.exceptions import TransportError
from aiosfstream.exceptions import AuthenticationError

CONSUMER_KEY = "3MVG9-consumer-key-4a1f"
CONSUMER_SECRET = "cs-SECRET-7f3a9e"
USERNAME = "testuser@salesforce.com"
PASSWORD = "pw-SECRET-91bc&token=x"
REFRESH_TOKEN = "rt-SECRET-44d0"
ACCESS_TOKEN = "00Dx0000000BV7z!AR8AQ-SECRET-ACCESS"
SIGNATURE = "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ="
SECRETS = (CONSUMER_SECRET, PASSWORD, REFRESH_TOKEN, ACCESS_TOKEN, SIGNATURE)

# The documented username-password response (it has no token_type).
TOKEN_RESPONSE: dict[str, Any] = {
    "id": "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
    "issued_at": "1278448832702",
    "instance_url": "https://na1.salesforce.com",
    "signature": SIGNATURE,
    "access_token": ACCESS_TOKEN,
}
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    f"<body>upstream said: password={PASSWORD}</body></html>"
)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def password_auth(**kwargs: Any) -> PasswordAuthenticator:
    return PasswordAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, USERNAME, PASSWORD, **kwargs)


# --- pure: request data -------------------------------------------------------------


def test_password_request_data() -> None:
    assert password_auth()._token_request_data() == {
        "grant_type": "password",
        "client_id": CONSUMER_KEY,
        "client_secret": CONSUMER_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
    }


def test_refresh_token_request_data() -> None:
    auth = RefreshTokenAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN)
    assert auth._token_request_data() == {
        "grant_type": "refresh_token",
        "client_id": CONSUMER_KEY,
        "client_secret": CONSUMER_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }


def test_bases_are_abstract() -> None:
    with pytest.raises(TypeError, match="neither authenticate"):
        AuthenticatorBase()
    with pytest.raises(TypeError, match="abstract"):
        OAuthAuthenticator()  # type: ignore[abstract]


# --- pure: parse_token_response -----------------------------------------------------


def test_parse_success() -> None:
    body = json.dumps(TOKEN_RESPONSE)
    assert parse_token_response(200, "application/json;charset=UTF-8", body) == TOKEN_RESPONSE


def test_parse_json_with_other_content_type() -> None:
    body = json.dumps(TOKEN_RESPONSE)
    assert parse_token_response(200, "text/plain", body) == TOKEN_RESPONSE


def test_parse_uses_given_json_loads() -> None:
    calls: list[str] = []

    def loads(text: str) -> Any:
        calls.append(text)
        return json.loads(text)

    parse_token_response(200, "application/json", json.dumps(TOKEN_RESPONSE), json_loads=loads)
    assert len(calls) == 1


def test_parse_salesforce_error() -> None:
    body = '{"error": "invalid_grant", "error_description": "authentication failure"}'
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(400, "application/json", body)
    error = caught.value
    assert error.status == 400
    assert error.error == "invalid_grant"
    assert error.error_description == "authentication failure"
    assert "400" in str(error)
    assert "invalid_grant: authentication failure" in str(error)


def test_parse_error_field_with_success_status() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(200, "application/json", '{"error": "invalid_client_id"}')
    assert caught.value.error == "invalid_client_id"
    assert caught.value.error_description is None


def test_parse_error_status_without_error_field() -> None:
    with pytest.raises(AuthenticationError, match="HTTP 500") as caught:
        parse_token_response(500, "application/json", "{}")
    assert caught.value.status == 500
    assert caught.value.error is None


def test_parse_html_page() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(502, "text/html; charset=utf-8", HTML_502)
    message = str(caught.value)
    assert caught.value.status == 502
    assert "502" in message
    assert "text/html" in message
    assert "502 Bad Gateway" in message
    assert "upstream" not in message
    assert_no_secret(message)


def test_parse_redacts_what_the_endpoint_echoes() -> None:
    def redact(text: str) -> str:
        return text.replace(PASSWORD, "***")

    body = json.dumps({"error": f"bad {PASSWORD}", "error_description": f"no {PASSWORD}"})
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(401, "application/json", body, redact=redact)
    assert (caught.value.error, caught.value.error_description) == ("bad ***", "no ***")
    assert_no_secret(str(caught.value))

    page = f"<html><title>Denied {PASSWORD}</title></html>"
    with pytest.raises(AuthenticationError, match=r"Denied \*\*\*") as caught:
        parse_token_response(403, "text/html", page, redact=redact)
    assert_no_secret(str(caught.value))


def test_parse_empty_body_without_content_type() -> None:
    with pytest.raises(AuthenticationError, match="HTTP 503 with no content type"):
        parse_token_response(503, None, "")


def test_parse_bad_json() -> None:
    body = '{"access_token": "' + ACCESS_TOKEN
    with pytest.raises(AuthenticationError, match="invalid JSON") as caught:
        parse_token_response(200, "application/json", body)
    assert isinstance(caught.value.__cause__, ValueError)
    assert_no_secret(str(caught.value))


def test_parse_json_that_is_not_an_object() -> None:
    with pytest.raises(AuthenticationError, match="JSON list"):
        parse_token_response(200, "application/json", "[1, 2]")


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        (("access_token",), "lacks access_token"),
        (("instance_url",), "lacks instance_url"),
        (("access_token", "instance_url"), "lacks access_token and instance_url"),
    ],
)
def test_parse_missing_fields(drop: tuple[str, ...], missing: str) -> None:
    data = {key: value for key, value in TOKEN_RESPONSE.items() if key not in drop}
    with pytest.raises(AuthenticationError, match=missing) as caught:
        parse_token_response(200, "application/json", json.dumps(data))
    assert_no_secret(str(caught.value))


def test_parse_empty_access_token() -> None:
    data = {**TOKEN_RESPONSE, "access_token": ""}
    with pytest.raises(AuthenticationError, match="lacks access_token"):
        parse_token_response(200, "application/json", json.dumps(data))


# --- pure: what may be retried ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "body", "retryable"),
    [
        (400, "application/json", '{"error": "invalid_grant"}', False),
        (401, "application/json", '{"error": "invalid_client"}', False),
        (403, "application/json", '{"error": "inactive_org"}', False),
        (404, "application/json", "{}", False),
        (200, "application/json", '{"error": "invalid_grant"}', False),
        (200, "application/json", '{"access_token": "t"}', False),
        (408, "application/json", "{}", True),
        (429, "application/json", '{"error": "rate_limit_exceeded"}', True),
        (500, "application/json", '{"error": "server_error"}', True),
        (503, "application/json", "{}", True),
        (200, "text/html", "<html></html>", True),
        (403, "text/html", "<html><title>Blocked</title></html>", True),
        (503, None, "", True),
        (400, "application/json", "{bad", True),
        (200, "application/json", "[1, 2]", True),
    ],
)
def test_parse_says_what_may_be_retried(
    status: int, content_type: str | None, body: str, retryable: bool
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(status, content_type, body)
    assert caught.value.retryable is retryable
    assert caught.value.status == status


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_parse_refuses_redirects(status: int) -> None:
    # Even a redirect whose body looks like a token is refused.
    with pytest.raises(AuthenticationError, match=f"HTTP {status}, a redirect to") as caught:
        parse_token_response(
            status,
            "application/json",
            json.dumps(TOKEN_RESPONSE),
            location="https://elsewhere.example/token",
        )
    assert not caught.value.retryable
    assert "'https://elsewhere.example/token'" in str(caught.value)


def test_parse_redirect_location_is_redacted_before_it_is_shortened() -> None:
    def redact(text: str) -> str:
        return text.replace(PASSWORD, "<redacted>")

    location = "https://evil.example/?" + "q" * 990 + PASSWORD
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(307, None, "", location=location, redact=redact)
    message = str(caught.value)
    assert "more characters" in message
    assert PASSWORD[:6] not in message


@pytest.mark.parametrize("status", [429, 503])
def test_parse_keeps_retry_after_of_429_and_503(status: int) -> None:
    for content_type, body in (("application/json", "{}"), ("text/html", "<p>busy</p>")):
        with pytest.raises(AuthenticationError) as caught:
            parse_token_response(status, content_type, body, retry_after=12.0)
        assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("status", [400, 500, 502])
def test_parse_drops_retry_after_of_other_statuses(status: int) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(status, "application/json", "{}", retry_after=12.0)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 100_000, '{"a":[' * 50_000])
def test_parse_deep_nesting_is_an_authentication_error(body: str) -> None:
    with pytest.raises(AuthenticationError, match="nested too deeply") as caught:
        parse_token_response(200, "application/json", body)
    assert caught.value.retryable


def test_parse_page_full_of_title_tags_is_quick() -> None:
    # The old "<title>(.*?)</title>" pattern took seconds here, minutes at the size cap.
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        parse_token_response(502, "text/html", "<title>" * 20_000)
    with pytest.raises(AuthenticationError):
        parse_token_response(502, "text/html", "<title" * 20_000)
    assert time.monotonic() - started < 1


def test_parse_shortens_server_text() -> None:
    body = json.dumps({"error": "e" * 3000, "error_description": "d" * 3000})
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(400, "application/json", body)
    assert len(caught.value.error or "") < 1100
    assert len(caught.value.error_description or "") < 1100
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(502, "text/" + "x" * 5000, "")
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: now
        ("Wed, 01 Jan 2030 00:01:00 GMT", 60.0),
        ("Wed, 01 Jan 2030 00:01:00 -0000", 60.0),  # no zone still means GMT
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("\u0661\u0662", None),  # digits, but not ASCII ones
        ("9" * 400, None),
        ("9" * 5000, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert _parse_retry_after(header, now=now) == seconds


# --- constructor --------------------------------------------------------------------


def test_login_url_selection() -> None:
    assert LOGIN_URL == "https://login.salesforce.com"
    assert SANDBOX_LOGIN_URL == "https://test.salesforce.com"
    assert password_auth().token_url == "https://login.salesforce.com/services/oauth2/token"
    assert (
        password_auth(sandbox=True).token_url == "https://test.salesforce.com/services/oauth2/token"
    )
    my_domain = password_auth(login_url="https://acme.my.salesforce.com/", sandbox=True)
    assert my_domain.login_url == "https://acme.my.salesforce.com"
    assert my_domain.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    community = password_auth(login_url="https://acme.force.com/customers")
    assert community.token_url == "https://acme.force.com/customers/services/oauth2/token"


def test_http_login_url_to_another_machine_refused_by_default() -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        password_auth(login_url="http://192.0.2.1:8080")
    auth = password_auth(login_url="http://192.0.2.1:8080", allow_insecure_http=True)
    assert auth.token_url == "http://192.0.2.1:8080/services/oauth2/token"


@pytest.mark.parametrize(
    "login_url",
    ["http://localhost:8080", "http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:80"],
)
def test_http_login_url_to_this_machine_needs_no_opt_in(login_url: str) -> None:
    # Nothing leaves the machine, and 0.5.0 pointed at a local test server this way.
    assert password_auth(login_url=login_url).token_url == f"{login_url}/services/oauth2/token"


@pytest.mark.parametrize("host", ["localhost.example.com", "127.0.0.1.example.com", "10.0.0.1"])
def test_http_to_a_name_that_only_looks_local_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        password_auth(login_url=f"http://{host}")


@pytest.mark.parametrize(
    "url", ["ftp://login.salesforce.com", "login.salesforce.com", "https://", "/services"]
)
def test_bad_login_urls(url: str) -> None:
    with pytest.raises(ValueError, match="login_url"):
        password_auth(login_url=url)


def test_login_url_with_credentials_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        password_auth(login_url=f"https://admin:{PASSWORD}@login.salesforce.com")
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["https://login.salesforce.com?x=1", "https://login.salesforce.com#frag"]
)
def test_login_url_with_query_or_fragment(url: str) -> None:
    with pytest.raises(ValueError, match="query or a fragment"):
        password_auth(login_url=url)


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, TypeError),
        (b"bytes", TypeError),
        (42, TypeError),
        ("", ValueError),
        ("  ", ValueError),
    ],
)
def test_password_credentials_validated(position: int, value: Any, error: type[Exception]) -> None:
    names = ("consumer_key", "consumer_secret", "username", "password")
    args: list[Any] = [CONSUMER_KEY, CONSUMER_SECRET, USERNAME, PASSWORD]
    args[position] = value
    with pytest.raises(error, match=names[position]) as caught:
        PasswordAuthenticator(*args)
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize("position", range(3))
@pytest.mark.parametrize(("value", "error"), [(None, TypeError), ("", ValueError)])
def test_refresh_credentials_validated(position: int, value: Any, error: type[Exception]) -> None:
    names = ("consumer_key", "consumer_secret", "refresh_token")
    args: list[Any] = [CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN]
    args[position] = value
    with pytest.raises(error, match=names[position]):
        RefreshTokenAuthenticator(*args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.5}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"timeout": "30"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"sandbox": "yes"}, TypeError, "sandbox"),
        ({"allow_insecure_http": 1}, TypeError, "allow_insecure_http"),
        ({"json_loads": "json"}, TypeError, "json_loads"),
        ({"proxy": 8080}, TypeError, "proxy"),
        ({"proxy": "proxy.local:3128"}, ValueError, "proxy"),
        ({"login_url": 42}, TypeError, "login_url"),
    ],
)
def test_options_validated(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        password_auth(**kwargs)


# --- signatures -----------------------------------------------------------------------

AUTHENTICATORS: list[type[AuthenticatorBase]] = [
    AuthenticatorBase,
    OAuthAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    JWTBearerAuthenticator,
    ClientCredentialsAuthenticator,
    SessionTokenAuthenticator,
]
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
#: The parameters of aiosfstream 0.5.0's constructors, in order: (name, default).
SIGNATURES_050: dict[type[AuthenticatorBase], list[tuple[str, Any]]] = {
    AuthenticatorBase: [("sandbox", False), ("json_dumps", json.dumps), ("json_loads", json.loads)],
    PasswordAuthenticator: [
        ("consumer_key", inspect.Parameter.empty),
        ("consumer_secret", inspect.Parameter.empty),
        ("username", inspect.Parameter.empty),
        ("password", inspect.Parameter.empty),
        ("sandbox", False),
        ("json_dumps", json.dumps),
        ("json_loads", json.loads),
    ],
    RefreshTokenAuthenticator: [
        ("consumer_key", inspect.Parameter.empty),
        ("consumer_secret", inspect.Parameter.empty),
        ("refresh_token", inspect.Parameter.empty),
        ("sandbox", False),
        ("json_dumps", json.dumps),
        ("json_loads", json.loads),
    ],
}


def parameters(cls: type[AuthenticatorBase]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls).parameters)


@pytest.mark.parametrize("cls", AUTHENTICATORS, ids=lambda cls: cls.__name__)
def test_constructors_declare_every_parameter(cls: type[AuthenticatorBase]) -> None:
    kinds = {parameter.kind for parameter in parameters(cls).values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    assert inspect.Parameter.VAR_POSITIONAL not in kinds


@pytest.mark.parametrize("cls", SIGNATURES_050, ids=lambda cls: cls.__name__)
def test_constructors_take_the_parameters_of_050_in_its_places(
    cls: type[AuthenticatorBase],
) -> None:
    ours = list(parameters(cls).values())[: len(SIGNATURES_050[cls])]
    assert [(p.name, p.kind, p.default) for p in ours] == [
        (name, POSITIONAL, default) for name, default in SIGNATURES_050[cls]
    ]


def test_050_positional_arguments_keep_their_meaning() -> None:
    def dumps(value: Any) -> str:
        return json.dumps(value)

    def loads(text: Any) -> Any:
        return json.loads(text)

    auth = PasswordAuthenticator(
        CONSUMER_KEY, CONSUMER_SECRET, USERNAME, PASSWORD, True, dumps, loads
    )
    refresh = RefreshTokenAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN, True, dumps)
    for authenticator in (auth, refresh):
        assert authenticator.sandbox is True
        assert authenticator.token_url == SANDBOX_TOKEN_URL
        assert authenticator.json_dumps is dumps
    assert auth.json_loads is loads
    assert refresh.json_loads is json.loads


def test_050_credential_attributes_read_and_write_through() -> None:
    auth = password_auth()
    assert (auth.client_id, auth.client_secret, auth.password) == (
        CONSUMER_KEY,
        CONSUMER_SECRET,
        PASSWORD,
    )
    auth.password = "pw-SECRET-changed"
    assert auth._token_request_data()["password"] == "pw-SECRET-changed"
    assert "pw-SECRET-changed" in auth._secrets()
    assert "pw-SECRET-changed" not in repr(auth)
    with pytest.raises(TypeError, match="password must be a str"):
        auth.password = None  # type: ignore[assignment]

    refresh = RefreshTokenAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN)
    assert (refresh.client_id, refresh.client_secret, refresh.refresh_token) == (
        CONSUMER_KEY,
        CONSUMER_SECRET,
        REFRESH_TOKEN,
    )
    refresh.client_id = "3MVG9-other-app"
    assert refresh._token_request_data()["client_id"] == "3MVG9-other-app"
    assert refresh.consumer_key == "3MVG9-other-app"


@pytest.mark.parametrize(
    ("cls", "left_out"),
    [
        (PasswordAuthenticator, set()),
        (RefreshTokenAuthenticator, set()),
        (JWTBearerAuthenticator, set()),
        # domain replaces them
        (ClientCredentialsAuthenticator, {"login_url", "sandbox"}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_grants_take_every_parameter_of_the_oauth_base(
    cls: type[AuthenticatorBase], left_out: set[str]
) -> None:
    base = parameters(OAuthAuthenticator)
    grant = parameters(cls)
    for name, parameter in base.items():
        if name in left_out:
            assert name not in grant
        else:
            assert grant[name].default == parameter.default, name


def test_session_token_takes_only_what_it_uses() -> None:
    names = set(parameters(SessionTokenAuthenticator))
    assert names == {
        "access_token",
        "instance_url",
        "token_type",
        "refresh",
        "timeout",
        "allow_insecure_http",
    }
    with pytest.raises(TypeError, match="login_url"):
        SessionTokenAuthenticator(  # type: ignore[call-arg]
            ACCESS_TOKEN, "https://na1.salesforce.com", login_url=LOGIN_URL
        )


# --- TOKEN_URL, as 0.5.0 users assign it -------------------------------------------------


def test_token_urls_of_050() -> None:
    assert TOKEN_URL == "https://login.salesforce.com/services/oauth2/token"
    assert SANDBOX_TOKEN_URL == "https://test.salesforce.com/services/oauth2/token"
    assert password_auth().token_url == TOKEN_URL
    assert password_auth(sandbox=True).token_url == SANDBOX_TOKEN_URL


def test_token_url_is_read_when_the_authenticator_is_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = password_auth()
    monkeypatch.setattr(
        aiosfstream.auth, "TOKEN_URL", f"https://acme.my.salesforce.com{TOKEN_PATH}"
    )
    after = password_auth()
    assert after.login_url == "https://acme.my.salesforce.com"
    assert after.token_url == f"https://acme.my.salesforce.com{TOKEN_PATH}"
    assert before.token_url == TOKEN_URL
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", f"https://other.example{TOKEN_PATH}")
    # Assigning it again moves no authenticator that exists already.
    assert after.token_url == f"https://acme.my.salesforce.com{TOKEN_PATH}"
    assert password_auth(sandbox=True).token_url == SANDBOX_TOKEN_URL


def test_sandbox_reads_sandbox_token_url_when_created(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://acme--uat.sandbox.my.salesforce.com{TOKEN_PATH}"
    monkeypatch.setattr(aiosfstream.auth, "SANDBOX_TOKEN_URL", url)
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", f"https://elsewhere.example{TOKEN_PATH}")
    auth = password_auth(sandbox=True)
    assert auth.token_url == url
    assert auth.login_url == "https://acme--uat.sandbox.my.salesforce.com"


def test_login_url_wins_over_token_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", f"https://elsewhere.example{TOKEN_PATH}")
    monkeypatch.setattr(aiosfstream.auth, "SANDBOX_TOKEN_URL", "https://elsewhere.example/sb")
    for sandbox in (False, True):
        auth = password_auth(login_url="https://acme.my.salesforce.com", sandbox=sandbox)
        assert auth.token_url == f"https://acme.my.salesforce.com{TOKEN_PATH}"


@pytest.mark.parametrize(
    ("token_url", "login_url"),
    [
        ("https://gateway.acme.example/salesforce/token", "https://gateway.acme.example"),
        (f"https://acme.my.salesforce.com{TOKEN_PATH}/", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com:8443/", "https://acme.my.salesforce.com:8443"),
        (f"https://acme.my.site.com/partners{TOKEN_PATH}", "https://acme.my.site.com/partners"),
    ],
)
def test_token_url_with_another_path_is_used_to_the_letter(
    monkeypatch: pytest.MonkeyPatch, token_url: str, login_url: str
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", token_url)
    auth = password_auth()
    assert auth.token_url == token_url
    assert auth.login_url == login_url


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (42, TypeError, r"aiosfstream\.auth\.TOKEN_URL must be a str"),
        ("", ValueError, r"aiosfstream\.auth\.TOKEN_URL must not be empty"),
        ("login.salesforce.com/services/oauth2/token", ValueError, "absolute https"),
        (f"http://192.0.2.1:8080{TOKEN_PATH}", ValueError, "allow_insecure_http=True"),
        (f"https://login.salesforce.com{TOKEN_PATH}?x=1", ValueError, "query"),
        (f"https://admin:{PASSWORD}@login.salesforce.com{TOKEN_PATH}", ValueError, "credentials"),
    ],
)
def test_unusable_token_url_is_named(
    monkeypatch: pytest.MonkeyPatch, value: Any, error: type[Exception], match: str
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", value)
    with pytest.raises(error, match=match) as caught:
        password_auth()
    assert "TOKEN_URL" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_plain_http_token_url_with_insecure_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", f"http://localhost:8080{TOKEN_PATH}")
    auth = password_auth(allow_insecure_http=True)
    assert auth.token_url == f"http://localhost:8080{TOKEN_PATH}"


def test_repr_hides_secrets() -> None:
    auth = password_auth(login_url="https://acme.my.salesforce.com")
    text = repr(auth)
    assert text == (
        "PasswordAuthenticator(username='testuser@salesforce.com', "
        "login_url='https://acme.my.salesforce.com', instance_url=None)"
    )
    assert CONSUMER_KEY not in text
    assert str(auth) == text
    refresh = RefreshTokenAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN)
    assert repr(refresh) == (
        "RefreshTokenAuthenticator(login_url='https://login.salesforce.com', instance_url=None)"
    )


async def test_outgoing_before_and_after_a_token() -> None:
    auth = password_auth()
    headers: dict[str, str] = {}
    payload: list[dict[str, Any]] = [{"channel": "/meta/handshake"}]
    await auth.outgoing(payload, headers)
    assert headers == {}
    auth.access_token, auth.token_type = ACCESS_TOKEN, "Bearer"
    await auth.outgoing(payload, headers)
    assert headers == {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    assert payload == [{"channel": "/meta/handshake"}]
    await auth.incoming(payload, headers)
    assert payload == [{"channel": "/meta/handshake"}]


def test_http_instance_url_refused() -> None:
    auth = password_auth()
    with pytest.raises(AuthenticationError, match=r"instance_url .*allow_insecure_http=True"):
        auth._apply_token_response({**TOKEN_RESPONSE, "instance_url": "http://na1.salesforce.com"})
    assert auth.access_token is None


# --- end to end against a local token endpoint --------------------------------------

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A token endpoint that is not at TOKEN_PATH, as a gateway might serve it.
OTHER_TOKEN_PATH = "/gateway/oauth/token"


async def _success(request: web.Request) -> web.StreamResponse:
    host = request.host
    return web.json_response(
        {**TOKEN_RESPONSE, "instance_url": f"http://{host}", "token_type": "Bearer"}
    )


class TokenServer:
    """A token endpoint that records the forms it receives and answers with *respond*."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.requests: list[web.Request] = []
        self.respond: Responder = _success
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        self.forms.append({key: str(value) for key, value in form.items()})
        self.requests.append(request)
        return await self.respond(request)


@pytest.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    server = TokenServer()
    app = web.Application()
    app.router.add_post("/services/oauth2/token", server.handle)
    app.router.add_post(OTHER_TOKEN_PATH, server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_password_flow(token_server: TokenServer) -> None:
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    await auth.authenticate()

    assert token_server.forms == [
        {
            "grant_type": "password",
            "client_id": CONSUMER_KEY,
            "client_secret": CONSUMER_SECRET,
            "username": USERNAME,
            "password": PASSWORD,
        }
    ]
    request = token_server.requests[0]
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert auth.access_token == ACCESS_TOKEN
    assert auth.token_type == "Bearer"
    assert auth.instance_url == token_server.url
    assert auth.id == TOKEN_RESPONSE["id"]
    assert auth.signature == SIGNATURE
    assert auth.issued_at == "1278448832702"

    headers: dict[str, str] = {}
    await auth.outgoing([], headers)
    assert headers == {"Authorization": f"Bearer {ACCESS_TOKEN}"}


async def test_missing_token_type_defaults_to_bearer(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response({**TOKEN_RESPONSE, "instance_url": f"http://{request.host}"})

    token_server.respond = respond
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    await auth.authenticate()
    assert auth.token_type == "Bearer"


async def test_refresh_flow_keeps_a_rotated_refresh_token(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                **TOKEN_RESPONSE,
                "instance_url": f"http://{request.host}",
                "refresh_token": f"rotated-{len(token_server.forms)}",
            }
        )

    token_server.respond = respond
    auth = RefreshTokenAuthenticator(
        CONSUMER_KEY,
        CONSUMER_SECRET,
        REFRESH_TOKEN,
        login_url=token_server.url,
        allow_insecure_http=True,
    )
    await auth.authenticate()
    await auth.authenticate()
    assert [form["refresh_token"] for form in token_server.forms] == [REFRESH_TOKEN, "rotated-1"]
    assert auth.refresh_token == "rotated-2"
    assert {form["grant_type"] for form in token_server.forms} == {"refresh_token"}
    assert auth.access_token == ACCESS_TOKEN


async def test_salesforce_error(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "authentication failure"}, status=400
        )

    token_server.respond = respond
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert caught.value.status == 400
    assert caught.value.error == "invalid_grant"
    assert caught.value.error_description == "authentication failure"
    assert auth.access_token is None


async def test_html_error_page(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text=HTML_502, content_type="text/html")

    token_server.respond = respond
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    with pytest.raises(AuthenticationError, match="HTTP 502 with text/html") as caught:
        await auth.authenticate()
    assert caught.value.status == 502
    assert_no_secret(str(caught.value))


async def test_failed_refresh_keeps_the_previous_token(token_server: TokenServer) -> None:
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    await auth.authenticate()

    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": "new"})  # no instance_url

    token_server.respond = respond
    with pytest.raises(AuthenticationError, match="lacks instance_url"):
        await auth.authenticate()
    assert auth.access_token == ACCESS_TOKEN
    assert auth.instance_url == token_server.url


@pytest.mark.parametrize("instance_url", ["ftp://na1.salesforce.com", "na1.salesforce.com"])
async def test_unusable_instance_url(token_server: TokenServer, instance_url: str) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response({**TOKEN_RESPONSE, "instance_url": instance_url})

    token_server.respond = respond
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    with pytest.raises(AuthenticationError, match="instance_url"):
        await auth.authenticate()
    assert auth.access_token is None


async def test_network_failure() -> None:
    url = closed_port_url()
    auth = password_auth(login_url=url, allow_insecure_http=True)
    with pytest.raises(AuthenticationError, match=r"token request to .* failed") as caught:
        await auth.authenticate()
    # aiohttp's error became ours once, in translate_transport_errors.
    assert isinstance(caught.value.__cause__, TransportError)
    assert isinstance(caught.value.__cause__.__cause__, aiohttp.ClientError)
    assert caught.value.status is None
    assert caught.value.retryable
    assert_no_secret(str(caught.value))


async def test_tls_to_a_plain_http_server_fails_cleanly(token_server: TokenServer) -> None:
    auth = password_auth(login_url=token_server.url.replace("http://", "https://"))
    with pytest.raises(AuthenticationError, match="failed") as caught:
        await auth.authenticate()
    assert isinstance(caught.value.__cause__, TransportError)
    assert isinstance(caught.value.__cause__.__cause__, aiohttp.ClientError)
    assert caught.value.retryable


async def test_timeout(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        await token_server.release.wait()
        return web.json_response(TOKEN_RESPONSE)

    token_server.respond = respond
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True, timeout=0.2)
    with pytest.raises(AuthenticationError, match=r"timed out after 0\.2 s") as caught:
        await auth.authenticate()
    assert isinstance(caught.value.__cause__, TransportError)
    assert isinstance(caught.value.__cause__.__cause__, asyncio.TimeoutError)
    assert caught.value.retryable


async def test_proxy_is_used(token_server: TokenServer) -> None:
    # The proxy receives the absolute-form request for the (unresolvable) login host.
    auth = password_auth(
        login_url="http://login.example.invalid",
        allow_insecure_http=True,
        proxy=token_server.url,
    )
    await auth.authenticate()
    assert token_server.requests[0].host == "login.example.invalid"
    assert token_server.forms[0]["grant_type"] == "password"


async def test_custom_json_loads_is_used(token_server: TokenServer) -> None:
    calls: list[str] = []

    def loads(text: str) -> Any:
        calls.append(text)
        return json.loads(text)

    auth = password_auth(login_url=token_server.url, allow_insecure_http=True, json_loads=loads)
    await auth.authenticate()
    assert len(calls) == 1


async def test_secrets_never_leak(
    token_server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    await auth.authenticate()
    texts = [repr(auth), str(auth)]

    # A misbehaving endpoint echoes the secrets back in its error answer.
    async def respond(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return web.json_response(
            {
                "error": f"invalid_grant {form['client_secret']!s}",
                "error_description": f"bad password {form['password']!s} for {ACCESS_TOKEN}",
            },
            status=400,
        )

    token_server.respond = respond
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    error = caught.value
    assert error.status == 400
    assert error.error == "invalid_grant <redacted>"
    assert error.error_description == "bad password <redacted> for <redacted>"
    texts += [str(error), repr(error), str(error.error), str(error.error_description)]

    refresh = RefreshTokenAuthenticator(
        CONSUMER_KEY,
        CONSUMER_SECRET,
        REFRESH_TOKEN,
        login_url=closed_port_url(),
        allow_insecure_http=True,
    )
    with pytest.raises(AuthenticationError) as network:
        await refresh.authenticate()
    texts += [str(network.value), repr(refresh)]

    messages = [record.getMessage() for record in caplog.records]
    assert f"requesting token from {token_server.url}/services/oauth2/token" in messages
    assert f"token obtained for instance {token_server.url}" in messages
    texts += messages
    texts += [str(record.args) for record in caplog.records]
    for text in texts:
        assert_no_secret(text)


def test_proxy_credentials_are_allowed_but_hidden() -> None:
    auth = password_auth(proxy=f"http://user:{PASSWORD}@proxy.local:3128")
    assert auth.proxy == f"http://user:{PASSWORD}@proxy.local:3128"
    assert PASSWORD in auth._secrets()
    assert_no_secret(repr(auth))
    with pytest.raises(ValueError, match="credentials") as caught:
        password_auth(proxy=f"ftp://user:{PASSWORD}@proxy.local:3128")
    assert PASSWORD not in str(caught.value)


async def test_proxy_failure_hides_proxy_password() -> None:
    proxy = closed_port_url().replace("http://", f"http://user:{CONSUMER_SECRET}@")
    auth = password_auth(proxy=proxy)
    with pytest.raises(AuthenticationError, match="failed") as caught:
        await auth.authenticate()
    assert_no_secret(str(caught.value))


async def test_short_secrets_do_not_garble_messages() -> None:
    auth = PasswordAuthenticator(
        "k", "s", "u", "p", login_url=closed_port_url(), allow_insecure_http=True
    )
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert "token request to http://127.0.0.1:" in str(caught.value)
    assert "<redacted>" not in str(caught.value)


# --- end to end: TOKEN_URL assigned ---------------------------------------------------


async def test_assigned_token_url_is_where_the_request_goes(
    token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", token_server.url + TOKEN_PATH)
    password = password_auth(allow_insecure_http=True)
    refresh = RefreshTokenAuthenticator(
        CONSUMER_KEY, CONSUMER_SECRET, REFRESH_TOKEN, allow_insecure_http=True
    )
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", token_server.url + OTHER_TOKEN_PATH)
    exact = password_auth(allow_insecure_http=True)
    for auth in (password, refresh, exact):
        await auth.authenticate()
        assert auth.access_token == ACCESS_TOKEN
    assert [request.path for request in token_server.requests] == [
        TOKEN_PATH,
        TOKEN_PATH,
        OTHER_TOKEN_PATH,
    ]
    assert [form["grant_type"] for form in token_server.forms] == [
        "password",
        "refresh_token",
        "password",
    ]


async def test_assigned_sandbox_token_url_is_where_a_sandbox_request_goes(
    token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "SANDBOX_TOKEN_URL", token_server.url + TOKEN_PATH)
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", closed_port_url() + TOKEN_PATH)
    auth = password_auth(sandbox=True, allow_insecure_http=True)
    await auth.authenticate()
    assert auth.instance_url == token_server.url
    assert len(token_server.forms) == 1


async def test_login_url_wins_over_an_assigned_token_url(
    token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request to the assigned URL would fail: nothing listens there.
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", closed_port_url() + TOKEN_PATH)
    auth = password_auth(login_url=token_server.url, allow_insecure_http=True)
    await auth.authenticate()
    assert auth.access_token == ACCESS_TOKEN


# --- a custom authenticator written for 0.5.0 -----------------------------------------


class Legacy050Authenticator(AuthenticatorBase):
    """A custom authenticator as 0.5.0 had users write them: only ``_authenticate``."""

    def __init__(self, token_url: str, sandbox: bool = False, timeout: float = 30.0) -> None:
        super().__init__(sandbox=sandbox, timeout=timeout)
        self.url = token_url

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            data = {"grant_type": "password", "client_secret": CONSUMER_SECRET}
            response = await session.post(self.url, data=data)
            answer: dict[str, Any] = await response.json()
            return response.status, answer


async def respond_with_token(request: web.Request) -> web.StreamResponse:
    return web.json_response(TOKEN_RESPONSE)


async def test_050_style_authenticator_gets_a_token(token_server: TokenServer) -> None:
    token_server.respond = respond_with_token
    auth = Legacy050Authenticator(token_server.url + TOKEN_PATH)
    await auth.authenticate()
    assert token_server.forms == [{"grant_type": "password", "client_secret": CONSUMER_SECRET}]
    assert auth.access_token == ACCESS_TOKEN
    assert auth.token_type == "Bearer"
    assert auth.instance_url == TOKEN_RESPONSE["instance_url"]
    assert (auth.id, auth.signature, auth.issued_at) == (
        TOKEN_RESPONSE["id"],
        SIGNATURE,
        "1278448832702",
    )
    headers: dict[str, str] = {}
    await auth.outgoing([], headers)
    assert headers == {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    assert repr(auth) == "Legacy050Authenticator(instance_url='https://na1.salesforce.com')"


async def test_050_style_authenticator_refusal(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        body = {"error": "invalid_grant", "error_description": "authentication failure"}
        return web.json_response(body, status=400)

    token_server.respond = respond
    auth = Legacy050Authenticator(token_server.url + TOKEN_PATH)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert (caught.value.status, caught.value.error, caught.value.error_description) == (
        400,
        "invalid_grant",
        "authentication failure",
    )
    assert not caught.value.retryable
    assert auth.access_token is None


@pytest.mark.parametrize(
    ("body", "match"),
    [([1, 2], "JSON list, not an object"), ({"access_token": "t"}, "lacks instance_url")],
)
async def test_050_style_authenticator_unusable_answer(
    token_server: TokenServer, body: Any, match: str
) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response(body)

    token_server.respond = respond
    with pytest.raises(AuthenticationError, match=match):
        await Legacy050Authenticator(token_server.url + TOKEN_PATH).authenticate()


async def test_050_style_authenticator_network_failure_is_retryable() -> None:
    auth = Legacy050Authenticator(closed_port_url() + TOKEN_PATH)
    with pytest.raises(
        AuthenticationError, match=r"Legacy050Authenticator\._authenticate\(\) failed"
    ) as caught:
        await auth.authenticate()
    assert isinstance(caught.value.__cause__, TransportError)
    assert isinstance(caught.value.__cause__.__cause__, aiohttp.ClientError)
    assert caught.value.retryable
    assert caught.value.status is None


async def test_050_style_authenticator_times_out(token_server: TokenServer) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        await token_server.release.wait()
        return web.json_response(TOKEN_RESPONSE)

    token_server.respond = respond
    auth = Legacy050Authenticator(token_server.url + TOKEN_PATH, timeout=0.2)
    with pytest.raises(AuthenticationError, match=r"timed out after 0\.2 s") as caught:
        await auth.authenticate()
    assert caught.value.retryable


def test_050_style_authenticator_without_a_hook_is_refused() -> None:
    class Incomplete(AuthenticatorBase):
        pass

    with pytest.raises(TypeError, match="Incomplete: it implements neither"):
        Incomplete()
