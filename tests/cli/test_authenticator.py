"""The authenticator built for each OAuth flow."""

from __future__ import annotations

import pytest

from aiosfstream.auth import PasswordAuthenticator, RefreshTokenAuthenticator
from aiosfstream.cli.authenticator import build_authenticator
from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.settings import LoginSettings


def test_build_authenticator() -> None:
    settings = LoginSettings(
        flow="password",
        consumer_key="key",
        consumer_secret="consumer-secret",
        username="user",
        password="the-password",
        sandbox=True,
    )
    authenticator = build_authenticator(settings, timeout=3)
    assert isinstance(authenticator, PasswordAuthenticator)
    assert authenticator.login_url == "https://test.salesforce.com"
    assert authenticator.timeout == 3
    refresh = LoginSettings(
        flow="refresh-token", consumer_key="k", consumer_secret="s", refresh_token="rt"
    )
    assert isinstance(build_authenticator(refresh), RefreshTokenAuthenticator)
    insecure = LoginSettings(
        flow="refresh-token",
        consumer_key="k",
        consumer_secret="s",
        refresh_token="rt",
        login_url="http://192.0.2.1:1",
    )
    with pytest.raises(UsageError, match="--allow-insecure-http"):
        build_authenticator(insecure)
    missing_key = LoginSettings(
        flow="jwt", consumer_key="k", username="u", private_key_file="/nonexistent/key.pem"
    )
    with pytest.raises(UsageError):
        build_authenticator(missing_key)
