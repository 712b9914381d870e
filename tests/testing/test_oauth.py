"""Conformance of ``/services/oauth2/token`` with Salesforce's answers, over real HTTP."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def post_token(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, form: Mapping[str, str]
) -> tuple[int, Any]:
    async with http.post(emulator.token_url, data=dict(form)) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


def password_form(emulator: SalesforceEmulator, **changes: str) -> dict[str, str]:
    credentials = emulator.credentials
    form = {
        "grant_type": "password",
        "client_id": credentials.consumer_key,
        "client_secret": credentials.consumer_secret,
        "username": credentials.username,
        "password": credentials.password,
    }
    form.update(changes)
    return form


async def test_password_grant(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    before = int(time.time() * 1000)
    async with http.post(emulator.token_url, data=password_form(emulator)) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    }
    assert body["instance_url"] == emulator.url
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("00D")
    assert "!" in body["access_token"]
    assert body["id"].startswith(f"{emulator.url}/id/00D")
    assert body["id"].split("/")[-1].startswith("005")
    assert isinstance(body["issued_at"], str)
    assert before <= int(body["issued_at"]) <= int(time.time() * 1000)
    digest = hmac.new(
        emulator.credentials.consumer_secret.encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert body["signature"] == base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"password": "wrong"},
            {"error": "invalid_grant", "error_description": "authentication failure"},
        ),
        (
            {"username": "nobody@example.com"},
            {"error": "invalid_grant", "error_description": "authentication failure"},
        ),
        (
            {"client_id": "unknown"},
            {"error": "invalid_client_id", "error_description": "client identifier invalid"},
        ),
        (
            {"client_secret": "wrong"},
            {"error": "invalid_client", "error_description": "invalid client credentials"},
        ),
        (
            {"grant_type": "authorization_code"},
            {"error": "unsupported_grant_type", "error_description": "grant type not supported"},
        ),
    ],
)
async def test_password_grant_errors(
    http: aiohttp.ClientSession,
    emulator: SalesforceEmulator,
    changes: dict[str, str],
    error: dict[str, str],
) -> None:
    async with http.post(emulator.token_url, data=password_form(emulator, **changes)) as response:
        assert response.status == 400
        assert response.content_type == "application/json"
        assert await response.json() == error


async def test_blocked_password_flow(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.password_flow_enabled = False
    status, body = await post_token(http, emulator, password_form(emulator))
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "authentication failure"},
    )


async def test_added_user_can_log_in(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.add_user("second@example.com", "pw2")
    form = password_form(emulator, username="second@example.com", password="pw2")
    status, body = await post_token(http, emulator, form)
    assert status == 200
    assert body["token_type"] == "Bearer"


async def test_refresh_token_grant(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    refresh = emulator.issue_refresh_token()
    form = {
        "grant_type": "refresh_token",
        "client_id": emulator.credentials.consumer_key,
        "client_secret": emulator.credentials.consumer_secret,
        "refresh_token": refresh,
    }
    status, body = await post_token(http, emulator, form)
    assert status == 200
    assert body["instance_url"] == emulator.url
    assert "refresh_token" not in body
    # The secret is optional for this grant.
    del form["client_secret"]
    status, _ = await post_token(http, emulator, form)
    assert status == 200
    emulator.revoke_tokens()
    status, body = await post_token(http, emulator, form)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )


async def test_unknown_refresh_token(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": emulator.credentials.consumer_key,
        "refresh_token": "nope",
    }
    status, body = await post_token(http, emulator, form)
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


async def test_client_credentials_grant(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.credentials.consumer_key,
        "client_secret": emulator.credentials.consumer_secret,
    }
    status, body = await post_token(http, emulator, form)
    assert status == 200
    assert body["token_type"] == "Bearer"
    emulator.add_app("no-run-as", "secret")
    form.update(client_id="no-run-as", client_secret="secret")
    status, body = await post_token(http, emulator, form)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "no client credentials user enabled"},
    )


async def test_client_credentials_need_my_domain(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.configure(my_domain=False)
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.credentials.consumer_key,
        "client_secret": emulator.credentials.consumer_secret,
    }
    status, body = await post_token(http, emulator, form)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "request not supported on this domain"},
    )
    # login.salesforce.com still serves the other flows.
    status, _ = await post_token(http, emulator, password_form(emulator))
    assert status == 200
    emulator.configure(my_domain=True)
    status, _ = await post_token(http, emulator, form)
    assert status == 200


async def test_revoke_endpoint(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    _, body = await post_token(http, emulator, password_form(emulator))
    token = body["access_token"]
    async with http.post(
        f"{emulator.url}/services/oauth2/revoke", data={"token": token}
    ) as response:
        assert response.status == 200
    assert emulator.state.check_token(token) is None
    async with http.post(
        f"{emulator.url}/services/oauth2/revoke", data={"token": token}
    ) as response:
        assert response.status == 400


async def test_fail_next_token_with_html_page(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.fail_next("token", http_status=503)
    status, body = await post_token(http, emulator, password_form(emulator))
    assert status == 503
    assert isinstance(body, str)
    assert "<html>" in body.replace("<html><head>", "<html>")
    status, _ = await post_token(http, emulator, password_form(emulator))
    assert status == 200


async def test_fail_next_token_with_oauth_error(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.fail_next("token", "too many requests", error="rate_limit_exceeded")
    status, body = await post_token(http, emulator, password_form(emulator))
    assert (status, body) == (
        400,
        {"error": "rate_limit_exceeded", "error_description": "too many requests"},
    )
    assert emulator.stats.token_requests == 1
    assert emulator.stats.tokens_issued == 0


# -- JWT bearer ----------------------------------------------------------------------------


@pytest.fixture
def rsa_keys() -> tuple[Any, str]:
    """Return a private key and its PEM public key."""
    pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def make_assertion(private: Any, **claims: Any) -> str:
    import jwt

    body = {
        "iss": "3MVG9emulatorConsumerKey",
        "sub": "user@example.com",
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    body.update(claims)
    token = jwt.encode({k: v for k, v in body.items() if v is not None}, private, "RS256")
    return str(token)


async def jwt_grant(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, assertion: str
) -> tuple[int, Any]:
    return await post_token(http, emulator, {"grant_type": JWT_BEARER, "assertion": assertion})


async def test_jwt_grant(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, rsa_keys: tuple[Any, str]
) -> None:
    private, public = rsa_keys
    emulator.set_jwt_public_key(public)
    for audience in ("https://login.salesforce.com", "https://test.salesforce.com", emulator.url):
        status, body = await jwt_grant(http, emulator, make_assertion(private, aud=audience))
        assert status == 200, body
        assert body["token_type"] == "Bearer"
        assert body["instance_url"] == emulator.url
    assert emulator.stats.grants[JWT_BEARER] == 3


async def test_jwt_grant_with_certificate(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, rsa_keys: tuple[Any, str]
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    private, _ = rsa_keys
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    emulator.set_jwt_public_key(certificate.public_bytes(serialization.Encoding.PEM).decode())
    status, body = await jwt_grant(http, emulator, make_assertion(private))
    assert status == 200, body


async def test_jwt_grant_errors(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, rsa_keys: tuple[Any, str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    private, public = rsa_keys
    emulator.set_jwt_public_key(public)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        (
            make_assertion(private, aud="https://example.com"),
            "invalid_grant",
            "Audience validation failed",
        ),
        (make_assertion(private, iss="unknown"), "invalid_client_id", "client identifier invalid"),
        (make_assertion(other_key), "invalid_grant", "invalid assertion"),
        (
            make_assertion(private, exp=int(time.time()) - 600),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            make_assertion(private, sub="nobody@example.com"),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (make_assertion(private, exp=None), "invalid_grant", "invalid assertion"),
        ("not.a.jwt", "invalid_grant", "invalid assertion"),
    ]
    for assertion, error, description in cases:
        status, body = await jwt_grant(http, emulator, assertion)
        assert (status, body) == (400, {"error": error, "error_description": description})


async def test_jwt_requires_approval(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, rsa_keys: tuple[Any, str]
) -> None:
    private, public = rsa_keys
    emulator.add_app("approved-app", "s", jwt_public_key=public, jwt_approved_users=[])
    status, body = await jwt_grant(http, emulator, make_assertion(private, iss="approved-app"))
    assert (status, body) == (
        400,
        {
            "error": "invalid_app_access",
            "error_description": "user is not admin approved to access this app",
        },
    )


async def test_jwt_without_registered_key(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, rsa_keys: tuple[Any, str]
) -> None:
    private, _ = rsa_keys
    status, body = await jwt_grant(http, emulator, make_assertion(private))
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "invalid assertion"},
    )
