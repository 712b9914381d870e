"""Authenticators: obtain an OAuth access token and add it to every request.

Every grant posts a form to ``<login url>/services/oauth2/token`` and reads the same JSON
answer; a grant only says which form fields it sends (:meth:`AuthenticatorBase.
_token_request_data`).  Building the request and reading the answer
(:func:`parse_token_response`) are plain functions; :meth:`AuthenticatorBase.authenticate`
does the one HTTP request.

No secret (password, consumer secret, refresh token, access token, signature) ever appears
in a ``repr``, a log record or an exception message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from aiosfstream.cometd.extensions import AuthExtension
from aiosfstream.exceptions import AuthenticationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from ssl import SSLContext

    from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Payload

__all__ = [
    "LOGIN_URL",
    "SANDBOX_LOGIN_URL",
    "TOKEN_PATH",
    "AuthenticatorBase",
    "PasswordAuthenticator",
    "RefreshTokenAuthenticator",
    "parse_token_response",
]

logger = logging.getLogger(__name__)

#: Where production orgs log in.
LOGIN_URL = "https://login.salesforce.com"
#: Where sandbox orgs log in.
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
#: The OAuth token endpoint, relative to the login URL.
TOKEN_PATH = "/services/oauth2/token"

_REDACTED = "<redacted>"
_MIN_REDACTED_LENGTH = 4
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TITLE_MAX = 80


# --- pure helpers -------------------------------------------------------------------


def _check_str(name: str, value: object) -> str:
    """Return *value* if it is a non-blank str; the message never shows the value."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _check_url(name: str, url: str, *, allow_http: bool, allow_credentials: bool = False) -> str:
    """Validate a base URL and return it without a trailing slash.

    :raises ValueError: not an absolute https URL (http only when *allow_http*), or it
        carries credentials (unless *allow_credentials*), a query or a fragment
    """
    parts = urlsplit(url)
    if "@" in parts.netloc and not allow_credentials:
        # Do not echo the URL: it holds credentials.
        raise ValueError(f"{name} must not contain credentials")
    shown = repr(url) if "@" not in parts.netloc else "<URL with credentials>"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute https:// URL, got {shown}")
    if parts.scheme == "http" and not allow_http:
        raise ValueError(
            f"{name} {shown} is plain http, which would send credentials unencrypted; "
            "pass allow_insecure_http=True to allow it (local emulators only)"
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


def _describe_non_json(
    status: int, content_type: str | None, body_text: str, redact: Callable[[str], str]
) -> str:
    kind = redact(_media_type(content_type)) or "no content type"
    message = f"token endpoint answered HTTP {status} with {kind} instead of JSON"
    title = _TITLE.search(body_text)
    if title:
        text = " ".join(title.group(1).split())[:_TITLE_MAX]
        if text:
            message += f" (page title: {redact(text)!r})"
    return message


def _optional_str(value: object) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    return str(value)


def _optional_redacted(value: object, redact: Callable[[str], str]) -> str | None:
    text = _optional_str(value)
    return None if text is None else redact(text)


def parse_token_response(
    status: int,
    content_type: str | None,
    body_text: str,
    *,
    json_loads: JsonLoader = json.loads,
    redact: Callable[[str], str] = _no_redaction,
) -> dict[str, Any]:
    """Read the token endpoint's answer; return the token JSON object on success.

    :param status: HTTP status code
    :param content_type: the ``Content-Type`` header, if any
    :param body_text: the decoded body
    :param json_loads: the JSON decoder to use
    :param redact: applied to every piece of the answer that goes into an error, so an
        endpoint that echoes a secret cannot put it in a message
    :raises AuthenticationError: Salesforce refused (``error`` and ``error_description``
        are copied from its answer), the answer is not JSON (HTML error page, bad JSON), or
        it lacks ``access_token`` or ``instance_url``.  The message never contains the body,
        only an HTML page's title.
    """
    media_type = redact(_media_type(content_type))
    looks_json = _is_json_type(media_type) or body_text.lstrip().startswith("{")
    if not looks_json:
        raise AuthenticationError(
            _describe_non_json(status, content_type, body_text, redact), status=status
        )
    try:
        data = json_loads(body_text)
    except ValueError as error:
        # json.JSONDecodeError is a ValueError; its message quotes no body text, but a
        # custom decoder's might, so it is not repeated here.
        raise AuthenticationError(
            f"token endpoint answered HTTP {status} with invalid JSON "
            f"({media_type or 'no content type'})",
            status=status,
        ) from error
    if not isinstance(data, dict):
        raise AuthenticationError(
            f"token endpoint answered HTTP {status} with a JSON {type(data).__name__}, "
            "not an object",
            status=status,
        )

    if "error" in data or not 200 <= status < 300:
        raise AuthenticationError(
            f"token request refused with HTTP {status}",
            status=status,
            error=_optional_redacted(data.get("error"), redact),
            error_description=_optional_redacted(data.get("error_description"), redact),
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


# --- authenticators -----------------------------------------------------------------


class AuthenticatorBase(AuthExtension):
    """Obtains an access token with one OAuth grant and sends it with every request.

    Subclasses implement :meth:`_token_request_data`, and list their secrets in
    :meth:`_secrets` and their other fields in :meth:`_repr_fields`.

    :param login_url: the login host, e.g. a My Domain URL ``https://acme.my.salesforce.com``;
        overrides *sandbox*
    :param sandbox: log in at ``https://test.salesforce.com`` instead of
        ``https://login.salesforce.com``
    :param json_dumps: JSON encoder, kept for grants that need one
    :param json_loads: JSON decoder used to read the token response
    :param ssl: aiohttp's ``ssl`` argument: an :class:`ssl.SSLContext`, ``False`` to skip
        certificate checks, or ``None`` to verify as usual
    :param proxy: URL of an HTTP proxy for the token request
    :param timeout: seconds the token request may take
    :param allow_insecure_http: accept ``http://`` login and instance URLs, for local
        emulators only
    """

    def __init__(
        self,
        *,
        login_url: str | None = None,
        sandbox: bool = False,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        proxy: str | None = None,
        timeout: float = 30.0,
        allow_insecure_http: bool = False,
    ) -> None:
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
        if proxy is not None:
            # A proxy URL may carry its own credentials: they are kept out of messages.
            proxy = _check_url(
                "proxy", _check_str("proxy", proxy), allow_http=True, allow_credentials=True
            )
        if login_url is None:
            login_url = SANDBOX_LOGIN_URL if sandbox else LOGIN_URL
        else:
            _check_str("login_url", login_url)
        self.allow_insecure_http = allow_insecure_http
        self.login_url = _check_url("login_url", login_url, allow_http=allow_insecure_http)
        self.sandbox = sandbox
        self.json_dumps = json_dumps
        self.json_loads = json_loads
        self.ssl = ssl
        self.proxy = proxy
        self.timeout = float(timeout)

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

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return self.login_url + TOKEN_PATH

    # --- what a grant provides ---

    @abstractmethod
    def _token_request_data(self) -> dict[str, str]:
        """Return the form fields of the token request."""

    def _secrets(self) -> Iterable[str | None]:
        """Return every secret this object holds, so they can be kept out of messages."""
        proxy_password = urlsplit(self.proxy).password if self.proxy else None
        return (self.access_token, self.signature, proxy_password)

    def _repr_fields(self) -> dict[str, object]:
        """Return the non-secret fields shown by ``repr``."""
        return {"login_url": self.login_url, "instance_url": self.instance_url}

    def _apply_token_response(self, data: dict[str, Any]) -> None:
        """Take the fields of a successful token response."""
        instance_url = data["instance_url"]
        try:
            instance_url = _check_url(
                "instance_url", instance_url, allow_http=self.allow_insecure_http
            )
        except ValueError as error:
            shown = "<URL with credentials>" if "@" in instance_url else repr(instance_url)
            hint = (
                " (plain http needs allow_insecure_http=True)"
                if instance_url.startswith("http:")
                else ""
            )
            raise AuthenticationError(
                f"token response has an unusable instance_url {self._redact(shown)}: "
                f"expected an absolute https:// URL without credentials, query or fragment{hint}"
            ) from error
        token_type = data.get("token_type")
        self.access_token = data["access_token"]
        self.token_type = token_type if isinstance(token_type, str) and token_type else "Bearer"
        self.instance_url = instance_url
        self.id = _optional_str(data.get("id"))
        self.signature = _optional_str(data.get("signature"))
        self.issued_at = _optional_str(data.get("issued_at"))

    # --- the extension hooks ---

    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        """Add the ``Authorization`` header, once a token was obtained."""
        if self.access_token is not None:
            headers["Authorization"] = f"{self.token_type} {self.access_token}"

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        """Do nothing."""

    # --- the one I/O call ---

    def _redact(self, text: str) -> str:
        """Replace every secret in *text*, which came from elsewhere (a server, aiohttp).

        Secrets shorter than a few characters are left: replacing them would garble the
        text without hiding anything.
        """
        for secret in self._secrets():
            if secret and len(secret) >= _MIN_REDACTED_LENGTH:
                text = text.replace(secret, _REDACTED)
        return text

    async def _post_token_request(self, data: dict[str, str]) -> tuple[int, str | None, str]:
        """POST *data* to the token endpoint; return status, content type and body."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    self.token_url,
                    data=data,
                    headers={"Accept": "application/json"},
                    ssl=True if self.ssl is None else self.ssl,
                    proxy=self.proxy,
                ) as response,
            ):
                body = await response.read()
                charset = response.charset or "utf-8"
                try:
                    text = body.decode(charset, errors="replace")
                except LookupError:
                    text = body.decode("utf-8", errors="replace")
                return response.status, response.headers.get("Content-Type"), text
        except asyncio.TimeoutError as error:
            raise AuthenticationError(
                f"token request to {self.token_url} timed out after {self.timeout:g} s"
            ) from error
        except aiohttp.ClientError as error:
            detail = self._redact(str(error)) or type(error).__name__
            raise AuthenticationError(
                f"token request to {self.token_url} failed: {detail}"
            ) from error

    async def authenticate(self) -> None:
        """Request a new access token.

        :raises AuthenticationError: the request failed or Salesforce refused it
        """
        logger.debug("requesting token from %s", self.token_url)
        try:
            status, content_type, body_text = await self._post_token_request(
                self._token_request_data()
            )
            data = parse_token_response(
                status, content_type, body_text, json_loads=self.json_loads, redact=self._redact
            )
            self._apply_token_response(data)
        except AuthenticationError as error:
            logger.debug("token request failed: %s", error)
            raise
        logger.debug("token obtained for instance %s", self.instance_url)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"


class PasswordAuthenticator(AuthenticatorBase):
    """The username-password grant.

    Salesforce blocks this flow by default in orgs created since Summer '23 and is
    deprecating it; prefer another grant where possible.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param username: the user's name
    :param password: the user's password, followed by the security token if needed
    :param kwargs: the keyword arguments of :class:`AuthenticatorBase`
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        username: str,
        password: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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


class RefreshTokenAuthenticator(AuthenticatorBase):
    """The refresh-token grant.

    If Salesforce rotates the refresh token (returns a new one), the new one is kept for
    the next :meth:`authenticate`.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param refresh_token: a refresh token issued to the connected app
    :param kwargs: the keyword arguments of :class:`AuthenticatorBase`
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        refresh_token: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
