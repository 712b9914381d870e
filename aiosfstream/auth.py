"""Authenticators: obtain an OAuth access token and add it to every request.

:class:`AuthenticatorBase` is the base of them all: it holds the token and sends it.
:class:`OAuthAuthenticator` asks the token endpoint (``<login url>/services/oauth2/token``)
and reads every answer; each grant is a small subclass that only says which form fields
it posts (:meth:`OAuthAuthenticator._token_request_data`).  Reading the answer
(:func:`parse_token_response`) is a plain function, around one HTTP request that never
follows a redirect (it would send the credentials to a host nobody named) and reads at
most :attr:`OAuthAuthenticator.max_response_bytes` of the answer.

Every failure is an :exc:`~aiosfstream.exceptions.AuthenticationError`.  Its ``retryable``
tells a temporary cause (no connection, a timeout, HTTP 5xx, 408 or 429, a page that is
not a JSON object, an oversized answer) from a definitive refusal (an OAuth ``error`` on
a 4xx, a redirect, a success answer that cannot be used); ``retry_after`` carries the
``Retry-After`` of a 429 or 503.

The grants: username-password (:class:`PasswordAuthenticator`), refresh token
(:class:`RefreshTokenAuthenticator`), JWT bearer (:class:`JWTBearerAuthenticator`, needs
the ``jwt`` extra) and client credentials (:class:`ClientCredentialsAuthenticator`).
:class:`SessionTokenAuthenticator`, beside them, makes no token request: it uses a token
obtained elsewhere.

No secret (password, consumer secret, refresh token, private key, assertion, access
token, signature) ever appears in a ``repr``, a log record or an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import inspect
import ipaddress
import json
import logging
import math
import os
import re
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload
from urllib.parse import urlsplit

import aiohttp

from aiosfstream._redaction import redact
from aiosfstream.cometd.exceptions import (
    MAX_QUOTED_TEXT,
    ResponseTooLargeError,
    TransportError,
    TransportTimeoutError,
    shorten,
)
from aiosfstream.cometd.extensions import AuthExtension
from aiosfstream.cometd.transports.base import translate_transport_errors
from aiosfstream.exceptions import AuthenticationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from ssl import SSLContext

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Payload

__all__ = [
    "JWT_BEARER_GRANT_TYPE",
    "LOGIN_URL",
    "MAX_JWT_LIFETIME",
    "SANDBOX_LOGIN_URL",
    "SANDBOX_TOKEN_URL",
    "TOKEN_PATH",
    "TOKEN_URL",
    "AuthenticatorBase",
    "ClientCredentialsAuthenticator",
    "JWTBearerAuthenticator",
    "OAuthAuthenticator",
    "PasswordAuthenticator",
    "RefreshTokenAuthenticator",
    "SessionRefresher",
    "SessionTokenAuthenticator",
    "jwt_bearer_claims",
    "my_domain_url",
    "parse_token_response",
]

logger = logging.getLogger(__name__)

#: Where production orgs log in.
LOGIN_URL = "https://login.salesforce.com"
#: Where sandbox orgs log in.
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
#: The OAuth token endpoint, relative to the login URL.
TOKEN_PATH = "/services/oauth2/token"
#: The token endpoint of production orgs.  An authenticator created without
#: ``login_url`` reads it then, so assigning it (``aiosfstream.auth.TOKEN_URL =
#: "https://acme.my.salesforce.com/services/oauth2/token"``), as aiosfstream 0.5.0
#: allowed, points the authenticators created afterwards elsewhere.
TOKEN_URL = LOGIN_URL + TOKEN_PATH
#: The token endpoint of sandboxes, read like :data:`TOKEN_URL` when ``sandbox=True``.
SANDBOX_TOKEN_URL = SANDBOX_LOGIN_URL + TOKEN_PATH
#: The ``grant_type`` of the JWT bearer flow (RFC 7523).
JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Longest lifetime of a JWT assertion, in seconds: Salesforce wants ``exp`` "within
#: 5 minutes".
MAX_JWT_LIFETIME = 300.0

#: The ``refresh`` callback of :class:`SessionTokenAuthenticator`: an async function that
#: returns a new access token, or a new access token and instance URL.
SessionRefresher = Callable[[], Awaitable[str | tuple[str, str]]]

# Two bounded searches instead of one "<title>(.*?)</title>": on a page full of
# unclosed "<title" that pattern rescans the rest of the body from each of them.
_TITLE_OPEN = re.compile(r"<title\b[^>]{0,200}>", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\s*>", re.IGNORECASE)
_TITLE_MAX = 80
_CONTENT_TYPE_MAX = 80
# Request timeout, too many requests, and every server error: worth another try.
_TRANSIENT_CLIENT_STATUSES = frozenset({408, 429})
# The statuses whose Retry-After says when to come back (RFC 9110 section 10.2.3,
# RFC 6585 section 4).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_READ_CHUNK = 65_536
#: Seconds an authenticator may take to obtain a token.
_DEFAULT_TIMEOUT = 30.0

_T = TypeVar("_T")


# --- pure helpers -------------------------------------------------------------------


def _check_str(name: str, value: object) -> str:
    """Return *value* if it is a non-blank str; the message never shows the value."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _check_token(name: str, value: object) -> str:
    """Return *value* if it can go in an ``Authorization`` header; never show it."""
    token = _check_str(name, value)
    if any(char.isspace() for char in token):
        raise ValueError(f"{name} must not contain white space")
    return token


def is_loopback_host(host: str) -> bool:
    """Whether *host* names this machine: ``localhost`` or a loopback address.

    Plain http to such a host never crosses a network, so it needs no opt-in: a test
    server on ``http://localhost`` works as it did with 0.5.0.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: str, *, allow_http: bool, allow_credentials: bool = False) -> str:
    """Validate a base URL and return it without a trailing slash.

    :raises ValueError: not an absolute https URL (http only to a loopback host or when
        *allow_http*), or it
        carries credentials (unless *allow_credentials*), a query or a fragment
    """
    parts = urlsplit(url)
    if "@" in parts.netloc and not allow_credentials:
        # Do not echo the URL: it holds credentials.
        raise ValueError(f"{name} must not contain credentials")
    shown = repr(url) if "@" not in parts.netloc else "<URL with credentials>"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute https:// URL, got {shown}")
    if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{name} {shown} is plain http to another machine, which would send "
            "credentials unencrypted; pass allow_insecure_http=True to allow it"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not have a query or a fragment, got {shown}")
    return url.rstrip("/")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _no_redaction(text: str) -> str:
    return text


def _page_title(body_text: str) -> str | None:
    """Return the white-space-normalized ``<title>`` of an HTML page, if it has one."""
    opening = _TITLE_OPEN.search(body_text)
    if opening is None:
        return None
    closing = _TITLE_CLOSE.search(body_text, opening.end())
    if closing is None:
        return None
    return " ".join(body_text[opening.end() : closing.start()].split()) or None


def _quote(text: str, redact: Callable[[str], str], limit: int = MAX_QUOTED_TEXT) -> str:
    """Prepare server text for a message: redact first, so a cut never splits a secret."""
    return shorten(redact(text), limit)


def _describe_non_json(
    status: int, content_type: str | None, body_text: str, redact: Callable[[str], str]
) -> str:
    kind = _quote(_media_type(content_type), redact, _CONTENT_TYPE_MAX) or "no content type"
    message = f"token endpoint answered HTTP {status} with {kind} instead of JSON"
    title = _page_title(body_text)
    if title:
        message += f" (page title: {_quote(title, redact, _TITLE_MAX)!r})"
    return message


def _describe_redirect(status: int, location: str | None, redact: Callable[[str], str]) -> str:
    target = "without a Location" if location is None else f"to {_quote(location, redact)!r}"
    return (
        f"token endpoint answered HTTP {status}, a redirect {target}, which is not followed: "
        "it would send the credentials to another URL; set login_url to the right host"
    )


def _is_transient_status(status: int) -> bool:
    """Whether an HTTP error status is worth another try."""
    return status >= 500 or status in _TRANSIENT_CLIENT_STATUSES


def _optional_str(value: object) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    return str(value)


def _optional_redacted(value: object, redact: Callable[[str], str]) -> str | None:
    text = _optional_str(value)
    return None if text is None else _quote(text, redact)


def _parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, ``None`` if unusable.

    The header is either a number of seconds or an HTTP date (RFC 9110 section
    10.2.3); a date in the past means "now" (0).

    :param now: the current time, in seconds since the epoch
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        try:
            seconds = float(int(text))
        except (ValueError, OverflowError):
            # More digits than int() accepts, or too large for a float.
            return None
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # An HTTP date is always GMT, even when it says "-0000".
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        return max(0.0, when.timestamp() - now)
    except (OverflowError, OSError):
        return None


def parse_token_response(
    status: int,
    content_type: str | None,
    body_text: str,
    *,
    json_loads: JsonLoader = json.loads,
    redact: Callable[[str], str] = _no_redaction,
    location: str | None = None,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """Read the token endpoint's answer; return the token JSON object on success.

    Each failure says whether another try may succeed (``retryable``): yes for an HTTP
    5xx, 408 or 429, and for an answer that is not a JSON object (an HTML page from a
    proxy or a maintenance page, bad JSON, JSON nested too deeply), whatever its status;
    no for a redirect, an OAuth ``error`` on any other status, and a success answer
    without a token.

    :param status: HTTP status code
    :param content_type: the ``Content-Type`` header, if any
    :param body_text: the decoded body
    :param json_loads: the JSON decoder to use
    :param redact: applied to every piece of the answer that goes into an error, so an
        endpoint that echoes a secret cannot put it in a message
    :param location: the ``Location`` header, named in the error about a redirect
    :param retry_after: the seconds the ``Retry-After`` header asked to wait; kept as
        the error's ``retry_after`` when the status is 429 or 503
    :raises AuthenticationError: Salesforce refused (``error`` and ``error_description``
        are copied from its answer), the answer is a redirect or not JSON, or it lacks
        ``access_token`` or ``instance_url``.  The message never contains the body, only
        an HTML page's title; quoted server text is redacted and shortened.
    """
    if 300 <= status < 400:
        raise AuthenticationError(_describe_redirect(status, location, redact), status=status)
    wait = retry_after if status in _RETRY_AFTER_STATUSES else None
    media_type = _quote(_media_type(content_type), redact, _CONTENT_TYPE_MAX)
    looks_json = _is_json_type(media_type) or body_text.lstrip().startswith("{")
    if not looks_json:
        # A page instead of JSON comes from a proxy, a load balancer or a maintenance
        # page, not from the OAuth server deciding about these credentials.
        raise AuthenticationError(
            _describe_non_json(status, content_type, body_text, redact),
            status=status,
            retryable=True,
            retry_after=wait,
        )
    try:
        data = json_loads(body_text)
    except RecursionError as error:
        raise AuthenticationError(
            f"token endpoint answered HTTP {status} with JSON nested too deeply to decode",
            status=status,
            retryable=True,
            retry_after=wait,
        ) from error
    except ValueError as error:
        # json.JSONDecodeError is a ValueError; its message quotes no body text, but a
        # custom decoder's might, so it is not repeated here.
        raise AuthenticationError(
            f"token endpoint answered HTTP {status} with invalid JSON "
            f"({media_type or 'no content type'})",
            status=status,
            retryable=True,
            retry_after=wait,
        ) from error
    return _read_token_object(status, data, redact=redact, retry_after=wait)


def _read_token_object(
    status: int, data: object, *, redact: Callable[[str], str], retry_after: float | None
) -> dict[str, Any]:
    """Check a decoded token answer: a JSON object with a token, on a success status.

    The rules of :func:`parse_token_response` once the body is decoded; also applied to
    what a 0.5.0-style :meth:`AuthenticatorBase._authenticate` returns.
    """
    if not isinstance(data, dict):
        raise AuthenticationError(
            f"token endpoint answered HTTP {status} with a JSON {type(data).__name__}, "
            "not an object",
            status=status,
            retryable=True,
            retry_after=retry_after,
        )

    if "error" in data or not 200 <= status < 300:
        # An OAuth error on a 4xx is the server's verdict on these credentials; on a
        # 5xx (or 408, 429) it is the server's trouble, and may pass.
        raise AuthenticationError(
            f"token request refused with HTTP {status}",
            status=status,
            error=_optional_redacted(data.get("error"), redact),
            error_description=_optional_redacted(data.get("error_description"), redact),
            retryable=_is_transient_status(status),
            retry_after=retry_after,
        )

    missing = [
        field
        for field in ("access_token", "instance_url")
        if not isinstance(data.get(field), str) or not data[field]
    ]
    if missing:
        raise AuthenticationError(
            f"token response (HTTP {status}) lacks {' and '.join(missing)}", status=status
        )
    return data


# Hosts that serve every org's login but refuse the client credentials flow:
# "request not supported on this domain".
_SHARED_LOGIN_HOSTS = frozenset(
    urlsplit(url).hostname or "" for url in (LOGIN_URL, SANDBOX_LOGIN_URL)
)
_PYJWT_MISSING = "JWTBearerAuthenticator needs PyJWT: pip install 'aiosfstream[jwt]'"
_CRYPTOGRAPHY_MISSING = (
    "JWTBearerAuthenticator needs PyJWT with RSA support (the cryptography package): "
    "pip install 'aiosfstream[jwt]'"
)


def my_domain_url(domain: str, *, allow_http: bool = False) -> str:
    """Return the base URL of an org's My Domain, from a host name or a URL.

    ``acme.my.salesforce.com`` becomes ``https://acme.my.salesforce.com``; a URL is
    checked and kept (without a trailing slash).

    :param domain: the My Domain host, such as ``acme.my.salesforce.com``, or its URL
    :param allow_http: accept ``http://`` (local emulators only)
    :raises ValueError: not a host or a base URL, or it is ``login.salesforce.com`` or
        ``test.salesforce.com``, which serve every org and refuse the client credentials
        flow ("request not supported on this domain")
    """
    text = _check_str("domain", domain).strip()
    if any(char.isspace() for char in text):
        raise ValueError("domain must not contain white space")
    url = _check_url("domain", text if "://" in text else f"https://{text}", allow_http=allow_http)
    parts = urlsplit(url)
    if parts.path:
        raise ValueError(
            f"domain must be a host name or a URL without a path, got {parts.path!r} as path"
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if host in _SHARED_LOGIN_HOSTS:
        raise ValueError(
            f"domain must be your org's My Domain (such as acme.my.salesforce.com), not {host}: "
            "Salesforce refuses the client credentials flow there "
            "('request not supported on this domain')"
        )
    return url


def jwt_bearer_claims(
    consumer_key: str, username: str, audience: str, *, now: float, lifetime: float
) -> dict[str, str | int]:
    """Return the claims of a JWT bearer assertion, as Salesforce wants them.

    ``iss`` is the connected app's consumer key, ``sub`` the username, ``aud`` the login
    server (or Experience Cloud site) and ``exp`` the expiry, in whole seconds since the
    epoch: *now* + *lifetime*, rounded down.

    :param now: the current time, in seconds since the epoch
    :param lifetime: seconds the assertion stays valid
    """
    return {
        "iss": consumer_key,
        "sub": username,
        "aud": audience,
        "exp": math.floor(now + lifetime),
    }


def _require_pyjwt() -> None:
    """Check that PyJWT and its RSA support can be imported.

    :raises ImportError: naming the extra to install
    """
    try:
        import jwt  # noqa: F401 - only checking that it is there
    except ImportError as error:
        raise ImportError(_PYJWT_MISSING, name="jwt") from error
    try:
        from cryptography.hazmat.primitives.serialization import (  # noqa: F401
            load_pem_private_key,
        )
    except ImportError as error:
        raise ImportError(_CRYPTOGRAPHY_MISSING, name="cryptography") from error


def _load_rsa_private_key(pem: bytes, source: str) -> RSAPrivateKey:
    """Read an unencrypted PEM RSA private key; messages name *source*, never the key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except TypeError:
        # cryptography raises TypeError when the key needs a password.
        raise ValueError(f"{source} is encrypted; give the key without its passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        # The original message is not repeated: it might quote part of the key.
        raise ValueError(f"{source} is not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(
            f"{source} must be an RSA key (Salesforce signs with RS256), not {type(key).__name__}"
        )
    return key


class _Alias:
    """An attribute of aiosfstream 0.5.0, read and written through to ours.

    0.5.0 kept the credentials in public attributes (``client_id``, ``password``...);
    code that reads or changes them keeps working, while ``repr`` still shows none.
    """

    def __init__(self, target: str) -> None:
        self._target = target
        self._name = target

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Alias: ...
    @overload
    def __get__(self, instance: object, owner: type) -> str: ...
    def __get__(self, instance: object | None, owner: type) -> _Alias | str:
        if instance is None:
            return self
        value: str = getattr(instance, self._target)
        return value

    def __set__(self, instance: object, value: str) -> None:
        setattr(instance, self._target, _check_str(self._name, value))


class _TokenAnswer(NamedTuple):
    """What the token endpoint answered, as :func:`parse_token_response` needs it."""

    status: int
    content_type: str | None
    body_text: str
    location: str | None
    retry_after: str | None


def _split_token_url(name: str, value: object, *, allow_http: bool) -> tuple[str, str | None]:
    """Read a token endpoint URL: return its login URL, and the URL itself if it is not
    that login URL plus :data:`TOKEN_PATH`.

    ``https://acme.my.salesforce.com/services/oauth2/token`` gives the login URL
    ``https://acme.my.salesforce.com``.  A URL with another path is kept to the letter as
    the token URL, and its origin serves as login URL.

    :param name: names the URL in error messages
    """
    url = _check_str(name, value)
    _check_url(name, url, allow_http=allow_http)
    base = url[: -len(TOKEN_PATH)] if url.endswith(TOKEN_PATH) else ""
    if base and not base.endswith("/"):
        return base, None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", url


@contextlib.contextmanager
def _logging_failures() -> Iterator[None]:
    """Log an :exc:`AuthenticationError` leaving the block, at DEBUG."""
    try:
        yield
    except AuthenticationError as error:
        logger.debug(
            "token request failed (%s): %s",
            "retryable" if error.retryable else "definitive",
            error,
        )
        raise


# --- authenticators -----------------------------------------------------------------


class AuthenticatorBase(AuthExtension):
    """The base of every authenticator: it holds a token and sends it with every request.

    A subclass obtains the token in :meth:`authenticate`, which sets
    :attr:`access_token`, :attr:`token_type` and :attr:`instance_url`.  The grants that
    ask the OAuth token endpoint derive from :class:`OAuthAuthenticator`;
    :class:`SessionTokenAuthenticator` uses a token obtained elsewhere.  A subclass
    written for aiosfstream 0.5.0 implements :meth:`_authenticate` instead, whose answer
    this class's :meth:`authenticate` reads.

    Subclasses list their secrets in :meth:`_secrets`, so that no message shows them,
    and what ``repr`` shows in :meth:`_repr_fields`.

    :param sandbox: the org is a sandbox: the OAuth grants log in at
        ``https://test.salesforce.com``
    :param json_dumps: JSON encoder, kept for authenticators that need one
    :param json_loads: JSON decoder, for authenticators that read JSON
    :param timeout: seconds :meth:`authenticate` may take to obtain a token
    :param allow_insecure_http: accept ``http://`` URLs to other hosts than this one
        (loopback ones are always accepted), for emulators only
    :raises TypeError: an argument has the wrong type, or the class implements neither
        :meth:`authenticate` nor :meth:`_authenticate`
    :raises ValueError: *timeout* is not a positive number
    """

    def __init__(
        self,
        sandbox: bool = False,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        *,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        cls = type(self)
        if (
            cls.authenticate is AuthenticatorBase.authenticate
            and cls._authenticate is AuthenticatorBase._authenticate
        ):
            # What 0.5.0's abstract _authenticate made Python say: fail at creation.
            raise TypeError(
                f"Can't instantiate {cls.__name__}: it implements neither authenticate() "
                "nor _authenticate()"
            )
        if not isinstance(sandbox, bool):
            raise TypeError(f"sandbox must be a bool, got {type(sandbox).__name__}")
        if not isinstance(allow_insecure_http, bool):
            raise TypeError(
                f"allow_insecure_http must be a bool, got {type(allow_insecure_http).__name__}"
            )
        if not callable(json_dumps) or not callable(json_loads):
            raise TypeError("json_dumps and json_loads must be callables")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.sandbox = sandbox
        self.json_dumps = json_dumps
        self.json_loads = json_loads
        self.timeout = float(timeout)
        self.allow_insecure_http = allow_insecure_http

        #: The OAuth access token, after :meth:`authenticate`.
        self.access_token: str | None = None
        #: The token type, usually ``Bearer``.
        self.token_type: str | None = None
        #: The org's URL, e.g. ``https://acme.my.salesforce.com``.
        self.instance_url: str | None = None
        #: The identity URL of the user.
        self.id: str | None = None
        #: Base64 HMAC-SHA256 of :attr:`id` and :attr:`issued_at`.
        self.signature: str | None = None
        #: When the token was issued, in epoch milliseconds (a string).
        self.issued_at: str | None = None

    # --- what a subclass provides ---

    def _secrets(self) -> Iterable[str | None]:
        """Return every secret this object holds, so they can be kept out of messages."""
        return (self.access_token, self.signature)

    def _repr_fields(self) -> dict[str, object]:
        """Return the non-secret fields shown by ``repr``."""
        return {"instance_url": self.instance_url}

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        """Request a token; return the HTTP status and the JSON object of the answer.

        The hook of aiosfstream 0.5.0 for custom authenticators, awaited by the
        :meth:`authenticate` of this class; a subclass that overrides
        :meth:`authenticate` need not implement it.  It may raise aiohttp's errors.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement _authenticate()")

    # --- shared steps ---

    def _redact(self, text: str) -> str:
        """Replace every secret in *text*, which came from elsewhere (a server, aiohttp)."""
        return redact(text, self._secrets())

    def _apply_token_response(self, data: dict[str, Any]) -> None:
        """Take the fields of a successful token response."""
        instance_url = data["instance_url"]
        try:
            instance_url = _check_url(
                "instance_url", instance_url, allow_http=self.allow_insecure_http
            )
        except ValueError as error:
            shown = (
                "<URL with credentials>"
                if "@" in instance_url
                else repr(_quote(instance_url, self._redact))
            )
            hint = (
                " (plain http needs allow_insecure_http=True)"
                if instance_url.startswith("http:")
                else ""
            )
            raise AuthenticationError(
                f"token response has an unusable instance_url {shown}: "
                f"expected an absolute https:// URL without credentials, query or fragment{hint}"
            ) from error
        token_type = data.get("token_type")
        self.access_token = data["access_token"]
        self.token_type = token_type if isinstance(token_type, str) and token_type else "Bearer"
        self.instance_url = instance_url
        self.id = _optional_str(data.get("id"))
        self.signature = _optional_str(data.get("signature"))
        self.issued_at = _optional_str(data.get("issued_at"))

    async def _guard(self, what: str, request: Awaitable[_T]) -> _T:
        """Await *request*, the network call of :meth:`authenticate`, with our errors.

        :param what: names the call in messages, such as ``token request to <URL>``
        :raises AuthenticationError: retryable: the call failed in the network, timed
            out, or got an answer larger than allowed; not retryable: a TLS certificate
            failed verification
        """
        try:
            # The one place where aiohttp's errors become ours.
            with translate_transport_errors(f"{what} failed"):
                return await request
        except TransportError as error:
            if isinstance(error, TransportTimeoutError) or isinstance(
                error.__cause__, asyncio.TimeoutError
            ):
                # The cause is checked too, for versions of translate_transport_errors
                # that report a timeout as a plain TransportError.
                message = f"{what} timed out after {self.timeout:g} s"
            else:
                message = str(error) or type(error).__name__
            # A certificate that fails verification stays failing: retrying would only
            # hide the wrong ssl setting (or the impostor) for the whole
            # connection_timeout.
            retryable = not isinstance(error.__cause__, aiohttp.ClientConnectorCertificateError)
            # aiohttp's text may quote a proxy URL with its password.
            raise AuthenticationError(_quote(message, self._redact), retryable=retryable) from error

    # --- the extension hooks ---

    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        """Add the ``Authorization`` header, once a token was obtained."""
        if self.access_token is not None:
            headers["Authorization"] = f"{self.token_type} {self.access_token}"

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        """Do nothing."""

    async def authenticate(self) -> None:
        """Obtain a token from :meth:`_authenticate`, as aiosfstream 0.5.0 did.

        Its status and JSON object are read like the token endpoint's answer; aiohttp's
        errors and running longer than *timeout* become a retryable
        :exc:`~aiosfstream.exceptions.AuthenticationError`.

        :raises AuthenticationError: the answer is not a success with ``access_token``
            and ``instance_url``, or no answer came
        """
        what = f"{type(self).__name__}._authenticate()"
        with _logging_failures():
            status, data = await self._guard(
                what, asyncio.wait_for(self._authenticate(), self.timeout)
            )
            self._apply_token_response(
                _read_token_object(status, data, redact=self._redact, retry_after=None)
            )
        logger.debug("token obtained for instance %s", self.instance_url)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"


class OAuthAuthenticator(AuthenticatorBase):
    """Obtains the access token from the OAuth token endpoint, with one grant.

    This class owns the login URL, the token request and the reading of every answer
    (:func:`parse_token_response`); a grant implements :meth:`_token_request_data`, the
    form it posts, and lists its secrets in :meth:`AuthenticatorBase._secrets`.  The
    request never follows a redirect (it would send the credentials to a host nobody
    named) and reads at most :attr:`max_response_bytes` of the answer.

    Without *login_url*, the token endpoint is :data:`TOKEN_URL`, or
    :data:`SANDBOX_TOKEN_URL` with ``sandbox=True``, as the module has it when the
    authenticator is created: assigning them, as aiosfstream 0.5.0 allowed, points the
    authenticators created afterwards elsewhere.

    :param sandbox: log in at ``https://test.salesforce.com`` instead of
        ``https://login.salesforce.com``
    :param json_dumps: JSON encoder, kept for grants that need one
    :param json_loads: JSON decoder used to read the token response
    :param login_url: the login server, e.g. a My Domain URL
        ``https://acme.my.salesforce.com``; the request goes to it plus
        :data:`TOKEN_PATH`.  It takes precedence over *sandbox* and :data:`TOKEN_URL`.
    :param ssl: aiohttp's ``ssl`` argument: an :class:`ssl.SSLContext`, ``False`` to skip
        certificate checks, or ``None`` to verify as usual
    :param proxy: URL of an HTTP proxy for the token request
    :param timeout: seconds the token request may take
    :param allow_insecure_http: accept ``http://`` login and instance URLs on other hosts
        than this one (loopback ones are always accepted), for emulators only
    :raises ValueError: the login URL (or the :data:`TOKEN_URL` read) or the proxy URL
        is not usable
    """

    #: Largest token response body read, in bytes.  A larger answer (announced by its
    #: ``Content-Length`` or found while reading) fails as retryable without the rest
    #: being read; a real token response is a few kilobytes.
    max_response_bytes: int = 1_048_576

    def __init__(
        self,
        sandbox: bool = False,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        *,
        login_url: str | None = None,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        super().__init__(
            sandbox,
            json_dumps,
            json_loads,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
        if proxy is not None:
            # A proxy URL may carry its own credentials: they are kept out of messages.
            proxy = _check_url(
                "proxy", _check_str("proxy", proxy), allow_http=True, allow_credentials=True
            )
        if login_url is None:
            # Read now, not at import: 0.5.0 users point the client at their My Domain
            # or a test server by assigning these.
            name, token_url = (
                ("SANDBOX_TOKEN_URL", SANDBOX_TOKEN_URL) if sandbox else ("TOKEN_URL", TOKEN_URL)
            )
            login_url, self._given_token_url = _split_token_url(
                f"aiosfstream.auth.{name}", token_url, allow_http=allow_insecure_http
            )
        else:
            login_url = _check_url(
                "login_url", _check_str("login_url", login_url), allow_http=allow_insecure_http
            )
            self._given_token_url = None
        #: The login server, without a trailing slash.
        self.login_url = login_url
        self.ssl = ssl
        self.proxy = proxy

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint: :attr:`login_url` plus :data:`TOKEN_PATH`, unless a
        :data:`TOKEN_URL` with another path was read."""
        return self._given_token_url or self.login_url + TOKEN_PATH

    @abstractmethod
    def _token_request_data(self) -> dict[str, str]:
        """Return the form fields of the token request."""

    def _secrets(self) -> Iterable[str | None]:
        proxy_password = urlsplit(self.proxy).password if self.proxy else None
        return (*super()._secrets(), proxy_password)

    def _repr_fields(self) -> dict[str, object]:
        return {"login_url": self.login_url, **super()._repr_fields()}

    async def _exchange(self, data: dict[str, str]) -> _TokenAnswer:
        """POST *data* to the token endpoint; return its answer."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                self.token_url,
                data=data,
                headers={"Accept": "application/json"},
                ssl=True if self.ssl is None else self.ssl,
                proxy=self.proxy,
                # A 307 or 308 would re-post the credentials to whatever host it names,
                # even a plain-http one; parse_token_response refuses every redirect.
                allow_redirects=False,
            ) as response,
        ):
            status = response.status
            # A redirect's body says nothing that matters, and waiting for it could turn
            # a definitive refusal into a timeout.
            body = b"" if 300 <= status < 400 else await self._read_body(response)
            charset = response.charset or "utf-8"
            try:
                text = body.decode(charset, errors="replace")
            except LookupError:
                text = body.decode("utf-8", errors="replace")
            headers = response.headers
            return _TokenAnswer(
                status,
                headers.get("Content-Type"),
                text,
                headers.get("Location"),
                headers.get("Retry-After"),
            )

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the body, refusing it beyond :attr:`max_response_bytes`.

        :raises ResponseTooLargeError: the body is, or announces to be, too large; what
            is left of it is not read (leaving the block closes the connection)
        """
        limit = self.max_response_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            raise ResponseTooLargeError(
                f"token response announces {declared} bytes, more than "
                f"max_response_bytes ({limit} bytes); not read",
                limit,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(
                    f"token response is larger than max_response_bytes ({limit} bytes); "
                    "the rest was not read",
                    limit,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def authenticate(self) -> None:
        """Request a new access token from :attr:`token_url`.

        :raises AuthenticationError: the request failed or Salesforce refused it;
            ``retryable`` tells whether another try may succeed
        """
        logger.debug("requesting token from %s", self.token_url)
        with _logging_failures():
            answer = await self._guard(
                f"token request to {self.token_url}", self._exchange(self._token_request_data())
            )
            data = parse_token_response(
                answer.status,
                answer.content_type,
                answer.body_text,
                json_loads=self.json_loads,
                redact=self._redact,
                location=answer.location,
                retry_after=_parse_retry_after(answer.retry_after, now=time.time()),
            )
            self._apply_token_response(data)
        logger.debug("token obtained for instance %s", self.instance_url)


class PasswordAuthenticator(OAuthAuthenticator):
    """The username-password grant.

    Salesforce blocks this flow by default in orgs created since Summer '23 and is
    deprecating it; prefer another grant where possible.

    The parameters after *password* are those of :class:`OAuthAuthenticator`; the first
    seven are positional, as in aiosfstream 0.5.0.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param username: the user's name
    :param password: the user's password, followed by the security token if needed
    """

    # 0.5.0's names of the credentials.
    client_id = _Alias("consumer_key")
    client_secret = _Alias("_consumer_secret")
    password = _Alias("_password")

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        username: str,
        password: str,
        sandbox: bool = False,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        *,
        login_url: str | None = None,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        super().__init__(
            sandbox,
            json_dumps,
            json_loads,
            login_url=login_url,
            ssl=ssl,
            proxy=proxy,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
        self.consumer_key = _check_str("consumer_key", consumer_key)
        self._consumer_secret = _check_str("consumer_secret", consumer_secret)
        self.username = _check_str("username", username)
        self._password = _check_str("password", password)

    def _token_request_data(self) -> dict[str, str]:
        return {
            "grant_type": "password",
            "client_id": self.consumer_key,
            "client_secret": self._consumer_secret,
            "username": self.username,
            "password": self._password,
        }

    def _secrets(self) -> Iterable[str | None]:
        return (*super()._secrets(), self._consumer_secret, self._password)

    def _repr_fields(self) -> dict[str, object]:
        return {"username": self.username, **super()._repr_fields()}


class RefreshTokenAuthenticator(OAuthAuthenticator):
    """The refresh-token grant.

    If Salesforce rotates the refresh token (returns a new one), the new one is kept for
    the next :meth:`authenticate`.

    The parameters after *refresh_token* are those of :class:`OAuthAuthenticator`; the
    first six are positional, as in aiosfstream 0.5.0.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param refresh_token: a refresh token issued to the connected app
    """

    # 0.5.0's names of the credentials; refresh_token is the newest, once rotated.
    client_id = _Alias("consumer_key")
    client_secret = _Alias("_consumer_secret")
    refresh_token = _Alias("_refresh_token")

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        refresh_token: str,
        sandbox: bool = False,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        *,
        login_url: str | None = None,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        super().__init__(
            sandbox,
            json_dumps,
            json_loads,
            login_url=login_url,
            ssl=ssl,
            proxy=proxy,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
        self.consumer_key = _check_str("consumer_key", consumer_key)
        self._consumer_secret = _check_str("consumer_secret", consumer_secret)
        self._refresh_token = _check_str("refresh_token", refresh_token)

    def _token_request_data(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "client_id": self.consumer_key,
            "client_secret": self._consumer_secret,
            "refresh_token": self._refresh_token,
        }

    def _secrets(self) -> Iterable[str | None]:
        return (*super()._secrets(), self._consumer_secret, self._refresh_token)

    def _apply_token_response(self, data: dict[str, Any]) -> None:
        super()._apply_token_response(data)
        rotated = data.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh_token = rotated


class JWTBearerAuthenticator(OAuthAuthenticator):
    """The OAuth 2.0 JWT bearer grant: a signed assertion instead of a password.

    Each :meth:`authenticate` signs a new assertion with the private key (RS256) and
    posts it; Salesforce checks it with the certificate uploaded to the connected app.
    The user must be pre-authorized for the app (or have approved it once). No consumer
    secret is sent, and no refresh token is issued: the key is enough to get a new token.

    Needs PyJWT with RSA support: ``pip install 'aiosfstream[jwt]'``.  The parameters
    after *lifetime* are those of :class:`OAuthAuthenticator`.

    :param consumer_key: the connected app's consumer key (the ``iss`` claim)
    :param username: the user to act as (the ``sub`` claim)
    :param private_key: the PEM RSA private key, unencrypted
    :param private_key_file: the path of a file holding it, read once, here; give
        *private_key* or *private_key_file*, not both
    :param audience: the ``aud`` claim; by default ``https://login.salesforce.com``, or
        ``https://test.salesforce.com`` with ``sandbox=True``, also when *login_url* is a
        My Domain URL.  An Experience Cloud site uses its own URL here.
    :param lifetime: seconds the assertion stays valid, at most :data:`MAX_JWT_LIFETIME`
    :raises ImportError: PyJWT or cryptography is not installed
    :raises TypeError: neither or both of *private_key* and *private_key_file*
    :raises ValueError: the key cannot be read or is not an unencrypted RSA key, or the
        lifetime is out of range
    """

    def __init__(
        self,
        consumer_key: str,
        username: str,
        *,
        private_key: str | bytes | None = None,
        private_key_file: str | os.PathLike[str] | None = None,
        audience: str | None = None,
        lifetime: float = 180.0,
        sandbox: bool = False,
        login_url: str | None = None,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        _require_pyjwt()
        super().__init__(
            sandbox,
            json_dumps,
            json_loads,
            login_url=login_url,
            ssl=ssl,
            proxy=proxy,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
        self.consumer_key = _check_str("consumer_key", consumer_key)
        self.username = _check_str("username", username)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
            raise TypeError(f"lifetime must be a number of seconds, got {type(lifetime).__name__}")
        if not (math.isfinite(lifetime) and 1 <= lifetime <= MAX_JWT_LIFETIME):
            raise ValueError(
                f"lifetime must be between 1 and {MAX_JWT_LIFETIME:g} seconds "
                f"(Salesforce refuses assertions valid for longer), got {lifetime!r}"
            )
        self.lifetime = float(lifetime)
        if audience is None:
            audience = SANDBOX_LOGIN_URL if self.sandbox else LOGIN_URL
        else:
            _check_str("audience", audience)
            parts = urlsplit(audience)
            allowed = ("https", "http") if self.allow_insecure_http else ("https",)
            if parts.scheme not in allowed or not parts.hostname or "@" in parts.netloc:
                raise ValueError(
                    "audience must be an https:// URL without credentials, such as "
                    f"{LOGIN_URL!r} or an Experience Cloud site's URL"
                )
        #: The ``aud`` claim of the assertions.
        self.audience = audience

        self._pem_text: str | None = None
        if private_key is not None and private_key_file is not None:
            raise TypeError("give private_key or private_key_file, not both")
        if private_key is not None:
            if isinstance(private_key, str):
                pem = private_key.encode("utf-8")
            elif isinstance(private_key, bytes):
                pem = private_key
            else:
                raise TypeError(
                    f"private_key must be a str or bytes, got {type(private_key).__name__}"
                )
            source = "private_key"
        elif private_key_file is not None:
            if not isinstance(private_key_file, str | os.PathLike):
                raise TypeError(
                    "private_key_file must be a str or a path, "
                    f"got {type(private_key_file).__name__}"
                )
            path = os.fspath(private_key_file)
            source = f"private_key_file {path!r}"
            try:
                with open(path, "rb") as file:
                    pem = file.read()
            except OSError as error:
                raise ValueError(f"{source} cannot be read: {error.strerror or error}") from error
        else:
            raise TypeError("JWTBearerAuthenticator needs private_key or private_key_file")
        if not pem.strip():
            raise ValueError(f"{source} is empty")
        self._private_key = _load_rsa_private_key(pem, source)
        self._pem_text = pem.decode("utf-8", errors="replace").strip()
        self._assertion: str | None = None

    def _token_request_data(self) -> dict[str, str]:
        import jwt

        claims = jwt_bearer_claims(
            self.consumer_key,
            self.username,
            self.audience,
            now=time.time(),
            lifetime=self.lifetime,
        )
        self._assertion = jwt.encode(claims, self._private_key, algorithm="RS256")
        return {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": self._assertion}

    def _secrets(self) -> Iterable[str | None]:
        return (*super()._secrets(), self._assertion, self._pem_text)

    def _repr_fields(self) -> dict[str, object]:
        return {"username": self.username, "audience": self.audience, **super()._repr_fields()}


class ClientCredentialsAuthenticator(OAuthAuthenticator):
    """The OAuth 2.0 client credentials grant: the connected app logs in as itself.

    Salesforce issues the token for the app's *run-as* user, set in the app's policies.
    The flow works only on the org's My Domain: ``login.salesforce.com`` and
    ``test.salesforce.com`` answer "request not supported on this domain", so they are
    refused here.  *domain* replaces *login_url* and *sandbox*, and :data:`TOKEN_URL` is
    not read; the other keyword parameters are those of :class:`OAuthAuthenticator`.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param domain: the org's My Domain host, such as ``acme.my.salesforce.com``, or its
        URL (``https://acme.my.salesforce.com``); the token request goes there
    :raises ValueError: *domain* is not a host or base URL, or is a shared login host
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        domain: str,
        *,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        if not isinstance(allow_insecure_http, bool):
            raise TypeError(
                f"allow_insecure_http must be a bool, got {type(allow_insecure_http).__name__}"
            )
        super().__init__(
            json_dumps=json_dumps,
            json_loads=json_loads,
            login_url=my_domain_url(domain, allow_http=allow_insecure_http),
            ssl=ssl,
            proxy=proxy,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
        self.consumer_key = _check_str("consumer_key", consumer_key)
        self._consumer_secret = _check_str("consumer_secret", consumer_secret)

    def _token_request_data(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.consumer_key,
            "client_secret": self._consumer_secret,
        }

    def _secrets(self) -> Iterable[str | None]:
        return (*super()._secrets(), self._consumer_secret)


class SessionTokenAuthenticator(AuthenticatorBase):
    """Use an access token obtained elsewhere (simple-salesforce, a single sign-on, a CLI).

    The first :meth:`authenticate` takes the given token and makes no request.  The
    client calls :meth:`authenticate` again only when Salesforce rejects the token
    (expired or revoked); then the *refresh* callback is awaited for a new one.  Without
    a callback that call raises :exc:`~aiosfstream.exceptions.AuthenticationError` with
    ``status`` 401, which reaches :meth:`Client.receive <aiosfstream.client.Client.receive>`.

    The callback returns the new access token, or a tuple of the new access token and
    instance URL.  If it raises :exc:`~aiosfstream.exceptions.AuthenticationError`, that
    error is passed on as is; any other exception (or running longer than *timeout*) is
    raised as an :exc:`~aiosfstream.exceptions.AuthenticationError` without ``status``,
    which the client treats like a network failure and retries within its
    ``connection_timeout``.

    No token request is made, so there is no login URL, ``ssl`` or ``proxy`` here: give
    ``ssl`` and ``proxy`` to the :class:`~aiosfstream.client.Client`.

    :param access_token: the access token (a session id)
    :param instance_url: the org's URL, e.g. ``https://acme.my.salesforce.com``
    :param token_type: the scheme of the ``Authorization`` header
    :param refresh: an async function returning a new token, or ``(token, instance_url)``
    :param timeout: seconds *refresh* may take
    :param allow_insecure_http: accept ``http://`` instance URLs, for local emulators only
    """

    def __init__(
        self,
        access_token: str,
        instance_url: str,
        *,
        token_type: str = "Bearer",
        refresh: SessionRefresher | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
    ) -> None:
        super().__init__(timeout=timeout, allow_insecure_http=allow_insecure_http)
        self._pending_token: str | None = _check_token("access_token", access_token)
        _check_str("token_type", token_type)
        if any(char.isspace() for char in token_type):
            raise ValueError("token_type must not contain white space")
        self._given_token_type = token_type
        self.instance_url = _check_url(
            "instance_url",
            _check_str("instance_url", instance_url),
            allow_http=self.allow_insecure_http,
        )
        if refresh is not None and not callable(refresh):
            raise TypeError(f"refresh must be an async function, got {type(refresh).__name__}")
        #: The callback awaited for a new token, or ``None``.
        self.refresh = refresh

    def _secrets(self) -> Iterable[str | None]:
        return (*super()._secrets(), self._pending_token)

    def _repr_fields(self) -> dict[str, object]:
        return {**super()._repr_fields(), "refreshable": self.refresh is not None}

    async def authenticate(self) -> None:
        """Use the given token the first time; after that, ask *refresh* for a new one.

        :raises AuthenticationError: there is no *refresh* callback (``status`` 401), or
            it failed or timed out (no ``status``)
        :raises TypeError: *refresh* is not async, or returned something else than a
            token or a ``(token, instance_url)`` tuple
        :raises ValueError: *refresh* returned an empty token or an unusable instance URL
        """
        if self._pending_token is not None:
            self.access_token, self._pending_token = self._pending_token, None
            self.token_type = self._given_token_type
            logger.debug("using the given session token for instance %s", self.instance_url)
            return
        if self.refresh is None:
            logger.debug("session token rejected and no refresh callback")
            # 401: Salesforce rejected the token, and nothing here can get another one.
            raise AuthenticationError("session token rejected and no refresh callback", status=401)
        logger.debug("session token rejected; awaiting the refresh callback")
        awaitable = self.refresh()
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                "refresh must be an async function; it returned "
                f"{type(awaitable).__name__}, which cannot be awaited"
            )
        try:
            result = await asyncio.wait_for(awaitable, self.timeout)
        except AuthenticationError as error:
            logger.debug("refresh callback raised AuthenticationError (status %s)", error.status)
            raise
        except asyncio.TimeoutError as error:
            raise AuthenticationError(
                f"session refresh callback timed out after {self.timeout:g} s", retryable=True
            ) from error
        except Exception as error:
            # The message is not repeated: it may hold the password the callback used.
            logger.debug("refresh callback failed with %s", type(error).__name__)
            raise AuthenticationError(
                f"session refresh callback failed with {type(error).__name__}", retryable=True
            ) from error
        token, instance_url = self._read_refresh_result(result)
        self.access_token = token
        self.token_type = self._given_token_type
        if instance_url is not None:
            self.instance_url = instance_url
        logger.debug("session token refreshed for instance %s", self.instance_url)

    def _read_refresh_result(self, result: object) -> tuple[str, str | None]:
        if isinstance(result, str):
            return _check_token("the refreshed access token", result), None
        if (
            isinstance(result, tuple)
            and len(result) == 2
            and all(isinstance(item, str) for item in result)
        ):
            token = _check_token("the refreshed access token", result[0])
            instance_url = _check_url(
                "the refreshed instance_url",
                _check_str("the refreshed instance_url", result[1]),
                allow_http=self.allow_insecure_http,
            )
            return token, instance_url
        raise TypeError(
            "refresh must return an access token (str) or a (token, instance_url) tuple, "
            f"got {type(result).__name__}"
        )
