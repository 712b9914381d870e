"""The authenticator of the chosen OAuth flow, built from the login settings."""

from __future__ import annotations

from typing import Any, TypeAlias

from aiosfstream.auth import (
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
)
from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.settings import LoginSettings

__all__ = ["FlowAuthenticator", "build_authenticator"]

#: What :func:`build_authenticator` returns: an authenticator with a token endpoint.
FlowAuthenticator: TypeAlias = (
    PasswordAuthenticator
    | RefreshTokenAuthenticator
    | JWTBearerAuthenticator
    | ClientCredentialsAuthenticator
)


def _given(value: str | None) -> str:
    # login_settings() checked that the flow's settings are there.
    assert value is not None
    return value


def build_authenticator(
    settings: LoginSettings, *, timeout: float | None = None
) -> FlowAuthenticator:
    """Return the authenticator of *settings*'s flow.

    :param timeout: seconds a token request may take (the authenticator's default if
        ``None``)
    :raises UsageError: a setting is rejected (a plain-http URL without
        ``--allow-insecure-http``, an unreadable key file, PyJWT missing...)
    """
    options: dict[str, Any] = {"allow_insecure_http": settings.allow_insecure_http}
    if timeout is not None:
        options["timeout"] = timeout
    if settings.flow != "client-credentials":
        options.update(login_url=settings.login_url, sandbox=settings.sandbox)
    try:
        if settings.flow == "password":
            return PasswordAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.username),
                _given(settings.password),
                **options,
            )
        if settings.flow == "refresh-token":
            return RefreshTokenAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.refresh_token),
                **options,
            )
        if settings.flow == "jwt":
            return JWTBearerAuthenticator(
                _given(settings.consumer_key),
                _given(settings.username),
                private_key_file=settings.private_key_file,
                **options,
            )
        if settings.flow == "client-credentials":
            return ClientCredentialsAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.login_url),
                **options,
            )
    except ImportError as error:
        raise UsageError(f"the {settings.flow} flow cannot run here: {error}") from None
    except (TypeError, ValueError) as error:
        # The library names its keyword argument; here it is an option.
        message = str(error).replace("allow_insecure_http=True", "--allow-insecure-http")
        raise UsageError(message) from None
    raise UsageError(f"unknown auth flow {settings.flow!r}")
