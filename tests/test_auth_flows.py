"""Tests for the JWT bearer, client credentials and session token authenticators.

Pure tests check the request each flow builds and the argument checks.  End-to-end tests
run against the emulator over HTTP on 127.0.0.1: its token endpoint verifies JWT
signatures for real (RS256, with the public key registered for the app), and the full
streaming client subscribes and receives events with each authenticator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import aiosfstream.auth
from aiosfstream import Client, SalesforceStreamingClient
from aiosfstream.auth import (
    JWT_BEARER_GRANT_TYPE,
    LOGIN_URL,
    MAX_JWT_LIFETIME,
    SANDBOX_LOGIN_URL,
    TOKEN_PATH,
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    OAuthAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    SessionTokenAuthenticator,
    jwt_bearer_claims,
    my_domain_url,
)
from aiosfstream.cometd.exceptions import TransportError
from aiosfstream.exceptions import AuthenticationError, ServerError
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import self_signed_certificate

CONSUMER_KEY = "3MVG9-flows-consumer-key"
CONSUMER_SECRET = "cs-FLOWS-SECRET-5e1d"
USERNAME = "integration@example.com"
ACCESS_TOKEN = "00Dx0000000FLOWS!AR8AQ-SESSION-SECRET"
NEW_ACCESS_TOKEN = "00Dx0000000FLOWS!AR8AQ-REFRESHED-SECRET"
INSTANCE_URL = "https://acme.my.salesforce.com"
CHANNEL = "/topic/flows"
RECEIVE_TIMEOUT = 10.0


# --- keys -------------------------------------------------------------------------------


class KeyPair(NamedTuple):
    private_pem: str
    public_pem: str


def _rsa_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return _rsa_pair()


@pytest.fixture(scope="module")
def other_keys() -> KeyPair:
    return _rsa_pair()


def key_secrets(pair: KeyPair) -> list[str]:
    """The whole private key and each line of its body: none may ever be shown."""
    lines = [line for line in pair.private_pem.splitlines() if "-----" not in line]
    return [pair.private_pem.strip(), *lines]


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret shown in {text[:80]!r}"


def jwt_auth(pair: KeyPair, **kwargs: Any) -> JWTBearerAuthenticator:
    return JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=pair.private_pem, **kwargs)


def decode_assertion(assertion: str, pair: KeyPair, audience: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        assertion,
        pair.public_pem,
        algorithms=["RS256"],
        audience=audience,
        options={"require": ["iss", "sub", "aud", "exp"]},
    )
    return claims


# --- pure: JWT bearer ---------------------------------------------------------------------


def test_jwt_bearer_claims() -> None:
    claims = jwt_bearer_claims(
        "key", "me@example.com", LOGIN_URL, now=1_700_000_000.9, lifetime=180
    )
    assert claims == {
        "iss": "key",
        "sub": "me@example.com",
        "aud": LOGIN_URL,
        "exp": 1_700_000_180,
    }


def test_jwt_request_data(keys: KeyPair) -> None:
    auth = jwt_auth(keys, lifetime=120)
    before = time.time()
    data = auth._token_request_data()
    after = time.time()
    assert set(data) == {"grant_type", "assertion"}
    assert data["grant_type"] == JWT_BEARER_GRANT_TYPE
    assert jwt.get_unverified_header(data["assertion"])["alg"] == "RS256"
    claims = decode_assertion(data["assertion"], keys, LOGIN_URL)
    assert set(claims) == {"iss", "sub", "aud", "exp"}
    assert claims["iss"] == CONSUMER_KEY
    assert claims["sub"] == USERNAME
    assert claims["aud"] == LOGIN_URL
    assert int(before + 120) - 1 <= claims["exp"] <= after + 120
    assert isinstance(claims["exp"], int)


def test_jwt_assertion_is_fresh_each_time(keys: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = jwt_auth(keys)
    now = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    expiries = []
    for _ in range(2):
        assertion = auth._token_request_data()["assertion"]
        claims = jwt.decode(
            assertion,
            keys.public_pem,
            algorithms=["RS256"],
            audience=LOGIN_URL,
            options={"verify_exp": False},
        )
        expiries.append(claims["exp"])
        now[0] += 1000
    assert expiries == [1_700_000_180, 1_700_001_180]


@pytest.mark.parametrize(
    ("kwargs", "audience", "token_url"),
    [
        ({}, LOGIN_URL, f"{LOGIN_URL}/services/oauth2/token"),
        ({"sandbox": True}, SANDBOX_LOGIN_URL, f"{SANDBOX_LOGIN_URL}/services/oauth2/token"),
        # My Domain: the request goes there, the audience stays the login server.
        ({"login_url": INSTANCE_URL}, LOGIN_URL, f"{INSTANCE_URL}/services/oauth2/token"),
        (
            {"login_url": "https://acme--dev.sandbox.my.salesforce.com", "sandbox": True},
            SANDBOX_LOGIN_URL,
            "https://acme--dev.sandbox.my.salesforce.com/services/oauth2/token",
        ),
        # An Experience Cloud site is its own audience.
        (
            {
                "login_url": "https://acme.my.site.com/partners",
                "audience": "https://acme.my.site.com/partners",
            },
            "https://acme.my.site.com/partners",
            "https://acme.my.site.com/partners/services/oauth2/token",
        ),
    ],
)
def test_jwt_audience_and_token_url(
    keys: KeyPair, kwargs: dict[str, Any], audience: str, token_url: str
) -> None:
    auth = jwt_auth(keys, **kwargs)
    assert auth.audience == audience
    assert auth.token_url == token_url
    claims = decode_assertion(auth._token_request_data()["assertion"], keys, audience)
    assert claims["aud"] == audience


def test_jwt_private_key_as_bytes_or_file(keys: KeyPair, tmp_path: Path) -> None:
    key_file = tmp_path / "server.key"
    key_file.write_text(keys.private_pem)
    for auth in (
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=keys.private_pem.encode()),
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=key_file),
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=str(key_file)),
    ):
        decode_assertion(auth._token_request_data()["assertion"], keys, LOGIN_URL)


def test_jwt_traditional_rsa_pem_is_accepted(keys: KeyPair) -> None:
    # "openssl genrsa" writes "BEGIN RSA PRIVATE KEY" (PKCS#1), as Salesforce's guide does.
    key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    auth = JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=pkcs1)
    decode_assertion(auth._token_request_data()["assertion"], keys, LOGIN_URL)


def test_jwt_needs_exactly_one_key(keys: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="private_key or private_key_file"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME)
    with pytest.raises(TypeError, match="not both") as caught:
        JWTBearerAuthenticator(
            CONSUMER_KEY,
            USERNAME,
            private_key=keys.private_pem,
            private_key_file=tmp_path / "server.key",
        )
    assert_hidden([str(caught.value)], key_secrets(keys))


def test_jwt_key_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(ValueError, match=r"private_key_file .*missing\.key.* cannot be read"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=missing)
    with pytest.raises(ValueError, match="cannot be read"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=tmp_path)  # a directory
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=empty)
    with pytest.raises(TypeError, match="private_key_file"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=42)  # type: ignore[arg-type]


def test_jwt_bad_keys_are_refused_without_showing_them(keys: KeyPair, tmp_path: Path) -> None:
    body = "".join(key_secrets(keys)[1:])
    not_pem = f"-----BEGIN PRIVATE KEY-----\n{body[:-40]}\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="private_key is not a PEM private key") as caught:
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=not_pem)
    texts = [str(caught.value), repr(caught.value)]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__

    key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(ValueError, match="encrypted") as caught:
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=encrypted)
    texts.append(str(caught.value))

    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_file = tmp_path / "ec.key"
    ec_file.write_bytes(ec_key)
    with pytest.raises(ValueError, match=r"ec\.key.* must be an RSA key") as caught:
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key_file=ec_file)
    texts.append(str(caught.value))
    with pytest.raises(ValueError, match="is empty"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key="  ")
    with pytest.raises(TypeError, match="private_key must be a str or bytes"):
        JWTBearerAuthenticator(CONSUMER_KEY, USERNAME, private_key=key)  # type: ignore[arg-type]
    assert_hidden(texts, [*key_secrets(keys), body[:-40]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lifetime": MAX_JWT_LIFETIME + 1}, ValueError, "lifetime must be between 1 and 300"),
        ({"lifetime": 0}, ValueError, "lifetime"),
        ({"lifetime": -5}, ValueError, "lifetime"),
        ({"lifetime": float("nan")}, ValueError, "lifetime"),
        ({"lifetime": "180"}, TypeError, "lifetime"),
        ({"lifetime": True}, TypeError, "lifetime"),
        ({"audience": ""}, ValueError, "audience"),
        ({"audience": 42}, TypeError, "audience"),
        ({"audience": "login.salesforce.com"}, ValueError, "audience"),
        ({"audience": "http://acme.my.site.com"}, ValueError, "audience"),
        ({"audience": "https://user:pw@acme.my.site.com"}, ValueError, "audience"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"login_url": "http://192.0.2.1:1"}, ValueError, "allow_insecure_http"),
    ],
)
def test_jwt_options_validated(
    keys: KeyPair, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        jwt_auth(keys, **kwargs)
    assert "pw@" not in str(caught.value)


@pytest.mark.parametrize(("position", "name"), [(0, "consumer_key"), (1, "username")])
@pytest.mark.parametrize(("value", "error"), [(None, TypeError), ("", ValueError)])
def test_jwt_credentials_validated(
    keys: KeyPair, position: int, name: str, value: Any, error: type[Exception]
) -> None:
    args: list[Any] = [CONSUMER_KEY, USERNAME]
    args[position] = value
    with pytest.raises(error, match=name):
        JWTBearerAuthenticator(*args, private_key=keys.private_pem)


def test_jwt_lifetime_bounds_are_inclusive(keys: KeyPair) -> None:
    assert jwt_auth(keys, lifetime=MAX_JWT_LIFETIME).lifetime == 300.0
    assert jwt_auth(keys, lifetime=1).lifetime == 1.0


def test_jwt_http_audience_with_insecure_http(keys: KeyPair) -> None:
    auth = jwt_auth(
        keys,
        login_url="http://127.0.0.1:8080",
        audience="http://127.0.0.1:8080",
        allow_insecure_http=True,
    )
    assert auth.audience == "http://127.0.0.1:8080"


def test_jwt_repr_and_secrets(keys: KeyPair) -> None:
    auth = jwt_auth(keys, login_url=INSTANCE_URL)
    assert repr(auth) == (
        "JWTBearerAuthenticator(username='integration@example.com', "
        "audience='https://login.salesforce.com', "
        "login_url='https://acme.my.salesforce.com', instance_url=None)"
    )
    assert str(auth) == repr(auth)
    assertion = auth._token_request_data()["assertion"]
    assert assertion in auth._secrets()
    assert keys.private_pem.strip() in auth._secrets()
    assert_hidden([repr(auth), str(vars(auth).keys())], [*key_secrets(keys), assertion])


def test_missing_pyjwt_is_reported_at_construction(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError) as caught:
        jwt_auth(keys)
    assert str(caught.value) == (
        "JWTBearerAuthenticator needs PyJWT: pip install 'aiosfstream[jwt]'"
    )
    assert caught.value.name == "jwt"


def test_missing_cryptography_is_reported_at_construction(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.serialization", None)
    with pytest.raises(ImportError, match=r"cryptography.*pip install 'aiosfstream\[jwt\]'"):
        jwt_auth(keys)


def test_package_imports_without_pyjwt() -> None:
    code = (
        "import sys\n"
        "sys.modules['jwt'] = None\n"
        "sys.modules['cryptography'] = None\n"
        "import aiosfstream, aiosfstream.auth\n"
        "from aiosfstream.auth import JWTBearerAuthenticator\n"
        "try:\n"
        "    JWTBearerAuthenticator('k', 'u', private_key='x')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == (
        "JWTBearerAuthenticator needs PyJWT: pip install 'aiosfstream[jwt]'"
    )


# --- pure: client credentials -----------------------------------------------------------


def cc_auth(
    domain: str = "acme.my.salesforce.com", **kwargs: Any
) -> ClientCredentialsAuthenticator:
    return ClientCredentialsAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, domain, **kwargs)


def test_client_credentials_request_data() -> None:
    assert cc_auth()._token_request_data() == {
        "grant_type": "client_credentials",
        "client_id": CONSUMER_KEY,
        "client_secret": CONSUMER_SECRET,
    }


@pytest.mark.parametrize(
    ("domain", "login_url"),
    [
        ("acme.my.salesforce.com", "https://acme.my.salesforce.com"),
        (" acme.my.salesforce.com ", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com"),
        (
            "acme--uat.sandbox.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com",
        ),
        ("acme.my.salesforce.com:8443", "https://acme.my.salesforce.com:8443"),
    ],
)
def test_client_credentials_domain(domain: str, login_url: str) -> None:
    auth = cc_auth(domain)
    assert auth.login_url == login_url
    assert auth.token_url == f"{login_url}/services/oauth2/token"
    assert my_domain_url(domain) == login_url


@pytest.mark.parametrize(
    "domain",
    [
        "login.salesforce.com",
        "test.salesforce.com",
        "https://login.salesforce.com",
        "https://TEST.salesforce.com/",
        "LOGIN.SALESFORCE.COM.",
    ],
)
def test_client_credentials_refuses_shared_login_hosts(domain: str) -> None:
    with pytest.raises(ValueError, match="request not supported on this domain"):
        cc_auth(domain)


@pytest.mark.parametrize(
    ("domain", "error", "match"),
    [
        (None, TypeError, "domain"),
        ("", ValueError, "domain"),
        ("acme my.salesforce.com", ValueError, "white space"),
        ("ftp://acme.my.salesforce.com", ValueError, "domain"),
        ("https://acme.my.salesforce.com/services", ValueError, "path"),
        ("https://acme.my.salesforce.com?x=1", ValueError, "query"),
        ("http://acme.my.salesforce.com", ValueError, "allow_insecure_http"),
        ("admin:pw-SECRET@acme.my.salesforce.com", ValueError, "credentials"),
    ],
)
def test_client_credentials_bad_domains(domain: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        cc_auth(domain)
    assert "pw-SECRET" not in str(caught.value)


def test_client_credentials_takes_no_login_url_or_sandbox() -> None:
    with pytest.raises(TypeError, match="login_url"):
        cc_auth(login_url=INSTANCE_URL)
    with pytest.raises(TypeError, match="sandbox"):
        cc_auth(sandbox=True)


@pytest.mark.parametrize(("position", "name"), [(0, "consumer_key"), (1, "consumer_secret")])
def test_client_credentials_validated(position: int, name: str) -> None:
    args: list[Any] = [CONSUMER_KEY, CONSUMER_SECRET, "acme.my.salesforce.com"]
    args[position] = ""
    with pytest.raises(ValueError, match=name):
        ClientCredentialsAuthenticator(*args)


def test_client_credentials_repr() -> None:
    auth = cc_auth()
    assert repr(auth) == (
        "ClientCredentialsAuthenticator(login_url='https://acme.my.salesforce.com', "
        "instance_url=None)"
    )
    assert CONSUMER_SECRET in auth._secrets()


def test_client_credentials_with_local_http() -> None:
    auth = cc_auth("http://127.0.0.1:8080", allow_insecure_http=True)
    assert auth.token_url == "http://127.0.0.1:8080/services/oauth2/token"


# --- pure: session token ----------------------------------------------------------------


def session_auth(**kwargs: Any) -> SessionTokenAuthenticator:
    return SessionTokenAuthenticator(ACCESS_TOKEN, INSTANCE_URL, **kwargs)


async def test_session_token_first_use_makes_no_request() -> None:
    # It has no login URL to send a request to: no network is needed.
    auth = session_auth()
    assert not isinstance(auth, OAuthAuthenticator)
    assert auth.access_token is None
    assert auth.instance_url == INSTANCE_URL
    headers: dict[str, str] = {}
    await auth.outgoing([], headers)
    assert headers == {}
    await auth.authenticate()
    assert auth.access_token == ACCESS_TOKEN
    assert auth.token_type == "Bearer"
    await auth.outgoing([], headers)
    assert headers == {"Authorization": f"Bearer {ACCESS_TOKEN}"}


async def test_session_token_without_refresh_fails_the_second_time() -> None:
    auth = session_auth(token_type="OAuth")
    await auth.authenticate()
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert str(caught.value) == "session token rejected and no refresh callback"
    assert caught.value.status == 401
    assert auth.token_type == "OAuth"


async def test_session_token_refresh_with_token() -> None:
    calls: list[None] = []

    async def refresh() -> str:
        calls.append(None)
        return NEW_ACCESS_TOKEN

    auth = session_auth(refresh=refresh)
    await auth.authenticate()
    assert calls == []
    await auth.authenticate()
    assert calls == [None]
    assert auth.access_token == NEW_ACCESS_TOKEN
    assert auth.instance_url == INSTANCE_URL


async def test_session_token_refresh_with_token_and_instance_url() -> None:
    async def refresh() -> tuple[str, str]:
        return NEW_ACCESS_TOKEN, "https://acme2.my.salesforce.com/"

    auth = session_auth(refresh=refresh)
    await auth.authenticate()
    await auth.authenticate()
    assert auth.access_token == NEW_ACCESS_TOKEN
    assert auth.instance_url == "https://acme2.my.salesforce.com"


@pytest.mark.parametrize(
    ("result", "error", "match"),
    [
        (42, TypeError, "got int"),
        ((NEW_ACCESS_TOKEN,), TypeError, "got tuple"),
        ((NEW_ACCESS_TOKEN, INSTANCE_URL, "x"), TypeError, "got tuple"),
        ("", ValueError, "refreshed access token"),
        ("two words", ValueError, "white space"),
        ((NEW_ACCESS_TOKEN, "http://acme.my.salesforce.com"), ValueError, "instance_url"),
        ((NEW_ACCESS_TOKEN, "acme.my.salesforce.com"), ValueError, "instance_url"),
    ],
)
async def test_session_token_refresh_result_checked(
    result: Any, error: type[Exception], match: str
) -> None:
    async def refresh() -> Any:
        return result

    auth = session_auth(refresh=refresh)
    await auth.authenticate()
    with pytest.raises(error, match=match) as caught:
        await auth.authenticate()
    assert NEW_ACCESS_TOKEN not in str(caught.value)
    assert auth.access_token == ACCESS_TOKEN


async def test_session_token_refresh_must_be_async() -> None:
    auth = session_auth(refresh=lambda: NEW_ACCESS_TOKEN)
    await auth.authenticate()
    with pytest.raises(TypeError, match="async function"):
        await auth.authenticate()


async def test_session_token_refresh_failure() -> None:
    async def refresh() -> str:
        raise RuntimeError("login failed for password pw-SECRET-7788")

    auth = session_auth(refresh=refresh)
    await auth.authenticate()
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert str(caught.value) == "session refresh callback failed with RuntimeError"
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_session_token_refresh_authentication_error_passes_through() -> None:
    refused = AuthenticationError("refused", status=400, error="invalid_grant")

    async def refresh() -> str:
        raise refused

    auth = session_auth(refresh=refresh)
    await auth.authenticate()
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert caught.value is refused


async def test_session_token_refresh_timeout() -> None:
    async def refresh() -> str:
        await asyncio.sleep(10)
        return NEW_ACCESS_TOKEN

    auth = session_auth(refresh=refresh, timeout=0.1)
    await auth.authenticate()
    with pytest.raises(AuthenticationError, match=r"timed out after 0\.1 s") as caught:
        await auth.authenticate()
    assert caught.value.status is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((None, INSTANCE_URL), {}, TypeError, "access_token"),
        (("", INSTANCE_URL), {}, ValueError, "access_token"),
        (("a token", INSTANCE_URL), {}, ValueError, "access_token"),
        ((ACCESS_TOKEN, None), {}, TypeError, "instance_url"),
        ((ACCESS_TOKEN, "acme.my.salesforce.com"), {}, ValueError, "instance_url"),
        ((ACCESS_TOKEN, "http://192.0.2.1:1"), {}, ValueError, "allow_insecure_http"),
        ((ACCESS_TOKEN, INSTANCE_URL), {"token_type": ""}, ValueError, "token_type"),
        ((ACCESS_TOKEN, INSTANCE_URL), {"token_type": "Bearer x"}, ValueError, "token_type"),
        ((ACCESS_TOKEN, INSTANCE_URL), {"refresh": "token"}, TypeError, "refresh"),
    ],
)
def test_session_token_validated(
    args: tuple[Any, Any], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        SessionTokenAuthenticator(*args, **kwargs)
    assert ACCESS_TOKEN not in str(caught.value)


def test_session_token_http_instance_url_with_insecure_http() -> None:
    auth = SessionTokenAuthenticator(ACCESS_TOKEN, "http://127.0.0.1:1", allow_insecure_http=True)
    assert auth.instance_url == "http://127.0.0.1:1"


async def test_session_token_repr_and_secrets() -> None:
    async def refresh() -> str:
        return NEW_ACCESS_TOKEN

    auth = session_auth(refresh=refresh)
    assert repr(auth) == (
        "SessionTokenAuthenticator(instance_url='https://acme.my.salesforce.com', refreshable=True)"
    )
    assert ACCESS_TOKEN in auth._secrets()
    await auth.authenticate()
    assert ACCESS_TOKEN in auth._secrets()
    await auth.authenticate()
    assert NEW_ACCESS_TOKEN in auth._secrets()
    assert repr(session_auth()).endswith("refreshable=False)")
    assert_hidden([repr(auth), str(auth)], [ACCESS_TOKEN, NEW_ACCESS_TOKEN])


# --- end to end: the emulator's token endpoint --------------------------------------------


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=2.0, client_expiry=5.0) as server:
        server.create_channel(CHANNEL)
        yield server


def emulator_jwt(
    emulator: SalesforceEmulator, pair: KeyPair, **kwargs: Any
) -> JWTBearerAuthenticator:
    credentials = emulator.credentials
    return JWTBearerAuthenticator(
        credentials.consumer_key,
        credentials.username,
        private_key=pair.private_pem,
        login_url=emulator.url,
        allow_insecure_http=True,
        **kwargs,
    )


def emulator_cc(emulator: SalesforceEmulator, **kwargs: Any) -> ClientCredentialsAuthenticator:
    credentials = emulator.credentials
    return ClientCredentialsAuthenticator(
        credentials.consumer_key,
        credentials.consumer_secret,
        emulator.url,
        allow_insecure_http=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"sandbox": True}, {"audience": "emulator"}],
    ids=["login", "sandbox", "own-url"],
)
async def test_jwt_grant_against_the_emulator(
    emulator: SalesforceEmulator, keys: KeyPair, kwargs: dict[str, Any]
) -> None:
    emulator.set_jwt_public_key(keys.public_pem)
    if kwargs.get("audience") == "emulator":
        kwargs = {"audience": emulator.url}
    auth = emulator_jwt(emulator, keys, **kwargs)
    await auth.authenticate()
    assert auth.access_token
    assert auth.token_type == "Bearer"
    assert auth.instance_url == emulator.url
    assert emulator.stats.grants[JWT_BEARER_GRANT_TYPE] == 1
    # No refresh token: the next authenticate() signs a new assertion.
    first = auth.access_token
    await auth.authenticate()
    assert auth.access_token != first
    assert emulator.stats.grants[JWT_BEARER_GRANT_TYPE] == 2


async def test_jwt_signed_with_the_wrong_key_is_refused(
    emulator: SalesforceEmulator, keys: KeyPair, other_keys: KeyPair
) -> None:
    emulator.set_jwt_public_key(keys.public_pem)
    auth = emulator_jwt(emulator, other_keys)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    error = caught.value
    assert error.status == 400
    assert error.error == "invalid_grant"
    assert error.error_description == "invalid assertion"
    assert auth.access_token is None
    assert_hidden([str(error), repr(error)], key_secrets(other_keys))


@pytest.mark.parametrize(
    ("setup", "kwargs", "error", "description"),
    [
        (
            "key",
            {"audience": "https://acme.my.site.com"},
            "invalid_grant",
            "Audience validation failed",
        ),
        ("key", {"consumer_key": "unknown-app"}, "invalid_client_id", "client identifier invalid"),
        (
            "key",
            {"username": "nobody@example.com"},
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        ("no-key", {}, "invalid_grant", "invalid assertion"),
    ],
)
async def test_jwt_refusals_carry_salesforce_error_json(
    emulator: SalesforceEmulator,
    keys: KeyPair,
    setup: str,
    kwargs: dict[str, Any],
    error: str,
    description: str,
) -> None:
    if setup == "key":
        emulator.set_jwt_public_key(keys.public_pem)
    credentials = emulator.credentials
    auth = JWTBearerAuthenticator(
        kwargs.pop("consumer_key", credentials.consumer_key),
        kwargs.pop("username", credentials.username),
        private_key=keys.private_pem,
        login_url=emulator.url,
        allow_insecure_http=True,
        **kwargs,
    )
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate()
    assert (caught.value.status, caught.value.error, caught.value.error_description) == (
        400,
        error,
        description,
    )


async def test_client_credentials_against_the_emulator(emulator: SalesforceEmulator) -> None:
    auth = emulator_cc(emulator)
    await auth.authenticate()
    assert auth.access_token
    assert auth.instance_url == emulator.url
    assert emulator.stats.grants["client_credentials"] == 1


async def test_client_credentials_refusals(emulator: SalesforceEmulator) -> None:
    credentials = emulator.credentials
    wrong_secret = ClientCredentialsAuthenticator(
        credentials.consumer_key, "wrong-SECRET-1234", emulator.url, allow_insecure_http=True
    )
    with pytest.raises(AuthenticationError) as caught:
        await wrong_secret.authenticate()
    assert (caught.value.error, caught.value.error_description) == (
        "invalid_client",
        "invalid client credentials",
    )
    assert "wrong-SECRET-1234" not in str(caught.value)

    emulator.add_app("no-run-as-app", "no-run-as-secret")
    no_run_as = ClientCredentialsAuthenticator(
        "no-run-as-app", "no-run-as-secret", emulator.url, allow_insecure_http=True
    )
    with pytest.raises(AuthenticationError) as caught:
        await no_run_as.authenticate()
    assert (caught.value.status, caught.value.error, caught.value.error_description) == (
        400,
        "invalid_grant",
        "no client credentials user enabled",
    )


async def test_password_and_refresh_grants_against_the_emulator(
    emulator: SalesforceEmulator,
) -> None:
    credentials = emulator.credentials
    password = PasswordAuthenticator(
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.username,
        credentials.password,
        login_url=emulator.url,
        allow_insecure_http=True,
    )
    refresh = RefreshTokenAuthenticator(
        credentials.consumer_key,
        credentials.consumer_secret,
        emulator.issue_refresh_token(),
        login_url=emulator.url,
        allow_insecure_http=True,
    )
    for auth in (password, refresh):
        await auth.authenticate()
        assert auth.access_token
        assert auth.instance_url == emulator.url
    assert emulator.stats.grants["password"] == 1
    assert emulator.stats.grants["refresh_token"] == 1


async def test_flows_go_through_the_proxy(emulator: SalesforceEmulator, keys: KeyPair) -> None:
    # The emulator plays the proxy: it gets the absolute-form request for a host that
    # does not resolve, so the request can only have reached it through the proxy.
    emulator.set_jwt_public_key(keys.public_pem)
    credentials = emulator.credentials
    through_proxy: list[AuthenticatorBase] = [
        JWTBearerAuthenticator(
            credentials.consumer_key,
            credentials.username,
            private_key=keys.private_pem,
            login_url="http://login.example.invalid",
            allow_insecure_http=True,
            proxy=emulator.url,
        ),
        ClientCredentialsAuthenticator(
            credentials.consumer_key,
            credentials.consumer_secret,
            "http://acme.example.invalid",
            allow_insecure_http=True,
            proxy=emulator.url,
        ),
    ]
    for auth in through_proxy:
        await auth.authenticate()
        assert auth.instance_url == emulator.url
    assert emulator.stats.grants[JWT_BEARER_GRANT_TYPE] == 1
    assert emulator.stats.grants["client_credentials"] == 1


async def test_every_grant_without_login_url_honours_an_assigned_token_url(
    emulator: SalesforceEmulator, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As 0.5.0 users point the library at a test server.
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", emulator.url + TOKEN_PATH)
    emulator.set_jwt_public_key(keys.public_pem)
    credentials = emulator.credentials
    grants: list[OAuthAuthenticator] = [
        PasswordAuthenticator(
            credentials.consumer_key,
            credentials.consumer_secret,
            credentials.username,
            credentials.password,
            allow_insecure_http=True,
        ),
        RefreshTokenAuthenticator(
            credentials.consumer_key,
            credentials.consumer_secret,
            emulator.issue_refresh_token(),
            allow_insecure_http=True,
        ),
        JWTBearerAuthenticator(
            credentials.consumer_key,
            credentials.username,
            private_key=keys.private_pem,
            allow_insecure_http=True,
        ),
    ]
    for auth in grants:
        assert auth.token_url == emulator.token_url
        await auth.authenticate()
        assert auth.instance_url == emulator.url
    assert emulator.stats.grants == {
        "password": 1,
        "refresh_token": 1,
        JWT_BEARER_GRANT_TYPE: 1,
    }


async def test_client_credentials_goes_to_its_domain_whatever_token_url_says(
    emulator: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", "http://127.0.0.1:9/services/oauth2/token")
    auth = emulator_cc(emulator)
    await auth.authenticate()
    assert auth.token_url == emulator.token_url
    assert emulator.stats.grants["client_credentials"] == 1


async def test_streaming_client_of_050_follows_an_assigned_token_url(
    emulator: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", emulator.url + TOKEN_PATH)
    credentials = emulator.credentials
    async with SalesforceStreamingClient(
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.username,
        credentials.password,
        allow_insecure_http=True,
    ) as client:
        await client.subscribe(CHANNEL)
        emulator.publish(CHANNEL, {"Name": "via TOKEN_URL"})
        assert await receive_names(client, 1) == ["via TOKEN_URL"]
    assert emulator.stats.grants["password"] == 1


# --- end to end: TLS ----------------------------------------------------------------------


class TLSServer(NamedTuple):
    url: str
    client_context: ssl.SSLContext
    forms: list[dict[str, str]]


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TLSServer]:
    """An https token endpoint with a self-signed certificate, answering every grant."""
    cert_file, key_file, cert_pem = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    forms: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.StreamResponse:
        forms.append({key: str(value) for key, value in (await request.post()).items()})
        return web.json_response(
            {
                "access_token": "00Dtls!token",
                "instance_url": f"https://{request.host}",
                "token_type": "Bearer",
            }
        )

    app = web.Application()
    app.router.add_post("/services/oauth2/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    try:
        yield TLSServer(f"https://127.0.0.1:{port}", client_context, forms)
    finally:
        await runner.cleanup()


def tls_authenticators(server: TLSServer, pair: KeyPair, **kwargs: Any) -> list[AuthenticatorBase]:
    return [
        JWTBearerAuthenticator(
            CONSUMER_KEY, USERNAME, private_key=pair.private_pem, login_url=server.url, **kwargs
        ),
        ClientCredentialsAuthenticator(CONSUMER_KEY, CONSUMER_SECRET, server.url, **kwargs),
    ]


async def test_flows_use_the_given_ssl_context(tls_server: TLSServer, keys: KeyPair) -> None:
    for auth in tls_authenticators(tls_server, keys, ssl=tls_server.client_context):
        await auth.authenticate()
        assert auth.instance_url == tls_server.url
    assert [form["grant_type"] for form in tls_server.forms] == [
        JWT_BEARER_GRANT_TYPE,
        "client_credentials",
    ]


async def test_flows_verify_certificates_by_default(tls_server: TLSServer, keys: KeyPair) -> None:
    for auth in tls_authenticators(tls_server, keys):
        with pytest.raises(AuthenticationError, match="failed") as caught:
            await auth.authenticate()
        # aiohttp's error became ours once, in translate_transport_errors.
        assert isinstance(caught.value.__cause__, TransportError)
        assert isinstance(caught.value.__cause__.__cause__, aiohttp.ClientSSLError)
        assert caught.value.status is None
        # An unverifiable certificate does not pass by retrying: fail at once.
        assert not caught.value.retryable
    assert tls_server.forms == []


# --- end to end: the streaming client with each authenticator ---------------------------


AuthFactory = Callable[[SalesforceEmulator, KeyPair], AuthenticatorBase]


def _password(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    c = emulator.credentials
    return PasswordAuthenticator(
        c.consumer_key,
        c.consumer_secret,
        c.username,
        c.password,
        login_url=emulator.url,
        allow_insecure_http=True,
    )


def _refresh(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    c = emulator.credentials
    return RefreshTokenAuthenticator(
        c.consumer_key,
        c.consumer_secret,
        emulator.issue_refresh_token(),
        login_url=emulator.url,
        allow_insecure_http=True,
    )


def _jwt(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    emulator.set_jwt_public_key(pair.public_pem)
    return emulator_jwt(emulator, pair)


def _client_credentials(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    return emulator_cc(emulator)


def _session(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    return SessionTokenAuthenticator(
        emulator.issue_access_token(), emulator.url, allow_insecure_http=True
    )


class Legacy050Authenticator(AuthenticatorBase):
    """A custom authenticator as 0.5.0 had users write one: it implements ``_authenticate``."""

    def __init__(self, emulator: SalesforceEmulator) -> None:
        # allow_insecure_http: the emulator's instance URL is plain http.
        super().__init__(sandbox=False, allow_insecure_http=True)
        self.emulator = emulator

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        credentials = self.emulator.credentials
        data = {
            "grant_type": "password",
            "client_id": credentials.consumer_key,
            "client_secret": credentials.consumer_secret,
            "username": credentials.username,
            "password": credentials.password,
        }
        async with aiohttp.ClientSession() as session:
            response = await session.post(self.emulator.token_url, data=data)
            answer: dict[str, Any] = await response.json()
            return response.status, answer


def _legacy_050(emulator: SalesforceEmulator, pair: KeyPair) -> AuthenticatorBase:
    return Legacy050Authenticator(emulator)


FACTORIES: dict[str, AuthFactory] = {
    "password": _password,
    "refresh_token": _refresh,
    "jwt_bearer": _jwt,
    "client_credentials": _client_credentials,
    "session_token": _session,
    "legacy_050": _legacy_050,
}


async def receive_names(client: Client, count: int) -> list[str]:
    names = []
    for _ in range(count):
        message = await asyncio.wait_for(client.receive(), RECEIVE_TIMEOUT)
        names.append(message["data"]["sobject"]["Name"])
    return names


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())
async def test_streaming_client_with_each_authenticator(
    emulator: SalesforceEmulator, keys: KeyPair, factory: AuthFactory
) -> None:
    authenticator = factory(emulator, keys)
    async with Client(authenticator) as client:
        await client.subscribe(CHANNEL)
        emulator.publish(CHANNEL, {"Name": "first"})
        assert await receive_names(client, 1) == ["first"]
        assert client.url == emulator.cometd_url(client.api_version)


@pytest.mark.parametrize("name", ["jwt_bearer", "client_credentials", "legacy_050"])
async def test_revoked_token_is_renewed_by_the_flow(
    emulator: SalesforceEmulator, keys: KeyPair, name: str
) -> None:
    async with Client(FACTORIES[name](emulator, keys)) as client:
        await client.subscribe(CHANNEL)
        # One event first: the resubscription after the new login continues from its
        # replay id.  (Without one it subscribes for new events only, and an event
        # published during the new login may be missed.)
        emulator.publish(CHANNEL, {"Name": "before revoke"})
        assert await receive_names(client, 1) == ["before revoke"]
        token_requests = emulator.stats.token_requests
        emulator.revoke_tokens()
        emulator.publish(CHANNEL, {"Name": "after revoke"})
        assert await receive_names(client, 1) == ["after revoke"]
        assert emulator.stats.token_requests == token_requests + 1


async def test_session_token_refresh_callback_after_revocation(
    emulator: SalesforceEmulator,
) -> None:
    issued: list[str] = []

    async def refresh() -> str:
        issued.append(emulator.issue_access_token())
        return issued[-1]

    first = emulator.issue_access_token()
    authenticator = SessionTokenAuthenticator(
        first, emulator.url, refresh=refresh, allow_insecure_http=True
    )
    async with Client(authenticator) as client:
        await client.subscribe(CHANNEL)
        emulator.publish(CHANNEL, {"Name": "before revoke"})
        assert await receive_names(client, 1) == ["before revoke"]
        assert issued == []

        emulator.revoke_tokens()
        emulator.publish(CHANNEL, {"Name": "after revoke"})
        assert await receive_names(client, 1) == ["after revoke"]
        assert len(issued) == 1
        assert authenticator.access_token == issued[0] != first
    # The tokens came from elsewhere: the token endpoint was never asked.
    assert emulator.stats.token_requests == 0


async def test_session_token_refresh_failure_is_retried(emulator: SalesforceEmulator) -> None:
    attempts: list[str] = []

    async def refresh() -> str:
        attempts.append("call")
        if len(attempts) == 1:
            raise ConnectionError("the SSO server is down")
        return emulator.issue_access_token()

    authenticator = SessionTokenAuthenticator(
        emulator.issue_access_token(), emulator.url, refresh=refresh, allow_insecure_http=True
    )
    async with Client(authenticator, connection_timeout=RECEIVE_TIMEOUT) as client:
        await client.subscribe(CHANNEL)
        emulator.publish(CHANNEL, {"Name": "before revoke"})
        assert await receive_names(client, 1) == ["before revoke"]
        emulator.revoke_tokens()
        emulator.publish(CHANNEL, {"Name": "after revoke"})
        assert await receive_names(client, 1) == ["after revoke"]
    assert len(attempts) == 2


async def test_session_token_refresh_callback_with_new_instance_url(
    emulator: SalesforceEmulator,
) -> None:
    async with SalesforceEmulator(connect_timeout=2.0) as other:
        other.create_channel(CHANNEL)

        async def refresh() -> tuple[str, str]:
            return other.issue_access_token(), other.url

        authenticator = SessionTokenAuthenticator(
            emulator.issue_access_token(), emulator.url, refresh=refresh, allow_insecure_http=True
        )
        async with Client(authenticator) as client:
            await client.subscribe(CHANNEL)
            emulator.revoke_tokens()
            # The client moves to the other org and subscribes there again.
            for _ in range(50):
                if other.client_ids and other.subscriptions(other.client_ids[0]):
                    break
                await asyncio.sleep(0.1)
            other.publish(CHANNEL, {"Name": "moved"})
            assert await receive_names(client, 1) == ["moved"]
            assert client.url == other.cometd_url(client.api_version)


async def test_session_token_without_refresh_fails_receive(emulator: SalesforceEmulator) -> None:
    authenticator = SessionTokenAuthenticator(
        emulator.issue_access_token(), emulator.url, allow_insecure_http=True
    )
    async with Client(authenticator) as client:
        await client.subscribe(CHANNEL)
        emulator.revoke_tokens()
        with pytest.raises(AuthenticationError) as caught:
            await asyncio.wait_for(client.receive(), RECEIVE_TIMEOUT)
    assert str(caught.value) == "session token rejected and no refresh callback"
    assert caught.value.status == 401


async def test_revoked_session_token_at_open_is_refused(emulator: SalesforceEmulator) -> None:
    token = emulator.issue_access_token()
    emulator.revoke_tokens()
    client = Client(SessionTokenAuthenticator(token, emulator.url, allow_insecure_http=True))
    # Today the denied handshake itself is raised (ServerError, failure reason 401);
    # an AuthenticationError would do as well.
    with pytest.raises((ServerError, AuthenticationError)) as caught:
        await client.open()
    assert client.closed
    assert token not in str(caught.value)
    assert token not in repr(caught.value)


# --- secrets never shown ------------------------------------------------------------------


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A token endpoint that echoes every form field back in its error answer."""

    async def token(request: web.Request) -> web.StreamResponse:
        form = {key: str(value) for key, value in (await request.post()).items()}
        return web.json_response(
            {"error": "invalid_grant", "error_description": json.dumps(form)}, status=400
        )

    app = web.Application()
    app.router.add_post("/services/oauth2/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_echoed_secrets_are_redacted(echo_server: str, keys: KeyPair) -> None:
    jwt_flow = jwt_auth(keys, login_url=echo_server, allow_insecure_http=True)
    with pytest.raises(AuthenticationError) as caught:
        await jwt_flow.authenticate()
    assert jwt_flow._assertion is not None
    description = caught.value.error_description or ""
    assert '"assertion": "<redacted>"' in description
    assert_hidden([str(caught.value), description], [jwt_flow._assertion])

    cc_flow = cc_auth(echo_server, allow_insecure_http=True)
    with pytest.raises(AuthenticationError) as caught:
        await cc_flow.authenticate()
    description = caught.value.error_description or ""
    assert '"client_secret": "<redacted>"' in description
    assert_hidden([str(caught.value), description], [CONSUMER_SECRET])


async def test_no_secret_in_repr_str_logs_or_errors(
    emulator: SalesforceEmulator,
    keys: KeyPair,
    other_keys: KeyPair,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = emulator.credentials
    emulator.set_jwt_public_key(keys.public_pem)
    texts: list[str] = []
    tokens: list[str] = []
    assertions: list[str] = []

    def collect(auth: AuthenticatorBase) -> None:
        texts.extend([repr(auth), str(auth)])
        if auth.access_token:
            tokens.append(auth.access_token)
        assertion = getattr(auth, "_assertion", None)
        if assertion:
            assertions.append(assertion)

    key_file = tmp_path / "key.pem"
    key_file.write_text(keys.private_pem)
    good_jwt = JWTBearerAuthenticator(
        credentials.consumer_key,
        credentials.username,
        private_key_file=key_file,
        login_url=emulator.url,
        allow_insecure_http=True,
    )
    bad_jwt = emulator_jwt(emulator, other_keys)
    good_cc = emulator_cc(emulator)
    bad_cc = ClientCredentialsAuthenticator(
        credentials.consumer_key, "wrong-SECRET-9911", emulator.url, allow_insecure_http=True
    )
    for auth in (good_jwt, good_cc):
        await auth.authenticate()
        collect(auth)
    for auth in (bad_jwt, bad_cc):
        with pytest.raises(AuthenticationError) as caught:
            await auth.authenticate()
        texts.extend([str(caught.value), repr(caught.value)])
        collect(auth)

    session_token = emulator.issue_access_token()

    async def refresh() -> str:
        raise RuntimeError(f"could not log in with {credentials.consumer_secret}")

    session = SessionTokenAuthenticator(
        session_token, emulator.url, refresh=refresh, allow_insecure_http=True
    )
    texts.append(repr(session))
    await session.authenticate()
    with pytest.raises(AuthenticationError) as caught:
        await session.authenticate()
    texts.extend([str(caught.value), repr(caught.value), repr(session)])
    no_refresh = SessionTokenAuthenticator(session_token, emulator.url, allow_insecure_http=True)
    await no_refresh.authenticate()
    with pytest.raises(AuthenticationError) as caught:
        await no_refresh.authenticate()
    texts.extend([str(caught.value), repr(no_refresh)])

    # The streaming client logs at DEBUG too.
    async with Client(good_jwt) as client:
        await client.subscribe(CHANNEL)
        emulator.publish(CHANNEL, {"Name": "first"})
        assert await receive_names(client, 1) == ["first"]
        emulator.revoke_tokens()
        emulator.publish(CHANNEL, {"Name": "logged"})
        assert await receive_names(client, 1) == ["logged"]
        texts.append(repr(client))
        collect(good_jwt)

    assert caplog.records
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert tokens and assertions
    secrets = [
        *key_secrets(keys),
        *key_secrets(other_keys),
        credentials.consumer_secret,
        "wrong-SECRET-9911",
        session_token,
        *tokens,
        *assertions,
    ]
    assert_hidden(texts, secrets)
