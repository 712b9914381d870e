"""The OAuth 2.0 token endpoint (``/services/oauth2/token``) of the emulated org.

Grant types: ``password``, ``refresh_token``, ``client_credentials`` and
``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RS256, verified with PyJWT, which is
imported only when such a request arrives). Answers use Salesforce's JSON: a success body
with ``access_token``, ``instance_url``, ``id``, ``token_type``, ``issued_at`` and
``signature``; errors as ``{"error": ..., "error_description": ...}`` with HTTP 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .state import AccessToken, ConnectedApp, OrgState, RequestLog

__all__ = [
    "JWT_BEARER",
    "LOGIN_AUDIENCES",
    "OAuthError",
    "OAuthService",
    "error_page",
    "grant_token",
    "token_signature",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: ``aud`` values Salesforce accepts besides the org's own (My Domain / community) URL.
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")

_JSON = "application/json"


class OAuthError(Exception):
    """A token request was refused; carries Salesforce's ``error`` and description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def as_json(self) -> dict[str, str]:
        """Return the body Salesforce sends for this error."""
        return {"error": self.error, "error_description": self.description}


# Texts as Salesforce sends them (see the OAuth section of the protocol reference).
def _authentication_failure() -> OAuthError:
    return OAuthError("invalid_grant", "authentication failure")


def _invalid_client_id() -> OAuthError:
    return OAuthError("invalid_client_id", "client identifier invalid")


def _invalid_client() -> OAuthError:
    return OAuthError("invalid_client", "invalid client credentials")


def token_signature(consumer_secret: str, identity: str, issued_at: str) -> str:
    """Return the ``signature`` field: Base64 HMAC-SHA256 of id + issued_at, keyed by the secret."""
    digest = hmac.new(
        consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def grant_token(
    state: OrgState,
    form: Mapping[str, str],
    base_url: str,
    *,
    instance_url: str | None = None,
) -> dict[str, Any]:
    """Serve one token request; return the success body or raise :class:`OAuthError`.

    *base_url* is the org's own URL (identity URL, JWT audience); *instance_url*, the
    ``instance_url`` of the answer, defaults to it.
    """
    grant_type = form.get("grant_type", "")
    if grant_type == "password":
        token = _password_grant(state, form)
    elif grant_type == "refresh_token":
        token = _refresh_grant(state, form)
    elif grant_type == JWT_BEARER:
        token = _jwt_grant(state, form, base_url)
    elif grant_type == "client_credentials":
        token = _client_credentials_grant(state, form)
    else:
        raise OAuthError("unsupported_grant_type", "grant type not supported")
    state.stats.tokens_issued += 1
    state.stats.grants[grant_type] += 1
    return _success_body(state, token, base_url, grant_type, instance_url or base_url)


def _success_body(
    state: OrgState, token: AccessToken, base_url: str, grant_type: str, instance_url: str
) -> dict[str, Any]:
    user = state.users[token.username]
    app = state.apps[token.consumer_key]
    identity = f"{base_url}/id/{state.org_id}/{user.user_id}"
    issued_at = str(int(token.issued_at * 1000))
    body: dict[str, Any] = {
        "access_token": token.value,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": token_signature(app.consumer_secret, identity, issued_at),
    }
    if grant_type in (JWT_BEARER, "client_credentials"):
        body["scope"] = "api"
    return body


def _client(state: OrgState, form: Mapping[str, str], *, secret_required: bool) -> ConnectedApp:
    app = state.apps.get(form.get("client_id", ""))
    if app is None:
        raise _invalid_client_id()
    secret = form.get("client_secret")
    if (secret_required or secret is not None) and not hmac.compare_digest(
        (secret or "").encode(), app.consumer_secret.encode()
    ):
        raise _invalid_client()
    return app


def _password_grant(state: OrgState, form: Mapping[str, str]) -> AccessToken:
    app = _client(state, form, secret_required=True)
    user = state.users.get(form.get("username", ""))
    password = form.get("password", "")
    # A blocked flow (the default for orgs created since Summer '23) answers the same way
    # as a wrong password.
    if (
        not state.settings.password_flow_enabled
        or user is None
        or not user.active
        or not hmac.compare_digest(password.encode(), user.password.encode())
    ):
        raise _authentication_failure()
    return state.issue_token(user.username, app.consumer_key)


def _refresh_grant(state: OrgState, form: Mapping[str, str]) -> AccessToken:
    app = _client(state, form, secret_required=False)
    owner = state.refresh_tokens.get(form.get("refresh_token", ""))
    if owner is None or owner[1] != app.consumer_key:
        raise OAuthError("invalid_grant", "expired access/refresh token")
    user = state.users.get(owner[0])
    if user is None or not user.active:
        raise OAuthError("invalid_grant", "inactive user")
    return state.issue_token(user.username, app.consumer_key)


def _client_credentials_grant(state: OrgState, form: Mapping[str, str]) -> AccessToken:
    # The flow needs the org's My Domain host; login.salesforce.com and
    # test.salesforce.com refuse it before looking at the client.
    if not state.settings.my_domain:
        raise OAuthError("invalid_grant", "request not supported on this domain")
    app = _client(state, form, secret_required=True)
    user = state.users.get(app.run_as or "")
    if user is None:
        raise OAuthError("invalid_grant", "no client credentials user enabled")
    return state.issue_token(user.username, app.consumer_key)


def _jwt_grant(state: OrgState, form: Mapping[str, str], base_url: str) -> AccessToken:
    try:
        import jwt
    except ImportError:  # pragma: no cover - depends on the environment
        raise OAuthError(
            "unsupported_grant_type",
            "the emulator needs PyJWT for the JWT bearer flow: pip install 'aiosfstream[jwt]'",
        ) from None
    assertion = form.get("assertion", "")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    app = state.apps.get(str(unverified.get("iss", "")))
    if app is None:
        raise _invalid_client_id()
    if not app.jwt_public_key:
        raise OAuthError("invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(
            assertion,
            _public_key(app.jwt_public_key),
            algorithms=["RS256"],
            audience=[*LOGIN_AUDIENCES, base_url],
            options={"require": ["iss", "sub", "aud", "exp"]},
        )
    except jwt.InvalidAudienceError:
        raise OAuthError("invalid_grant", "Audience validation failed") from None
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_grant", "expired authorization code") from None
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    user = state.users.get(str(claims["sub"]))
    if user is None or not user.active:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    if app.jwt_approved_users is not None and user.username not in app.jwt_approved_users:
        raise OAuthError("invalid_app_access", "user is not admin approved to access this app")
    return state.issue_token(user.username, app.consumer_key)


def _public_key(pem: str) -> Any:
    """Return a verification key from a PEM public key or X.509 certificate."""
    if "BEGIN CERTIFICATE" not in pem:
        return pem
    from cryptography.x509 import load_pem_x509_certificate

    return load_pem_x509_certificate(pem.encode()).public_key()


class OAuthService:
    """aiohttp handlers for ``/services/oauth2/token`` and ``/services/oauth2/revoke``.

    :param base_url: returns the org's URL
    :param log: where requests are recorded
    :param instance_url: returns the ``instance_url`` to hand out (``None``: the org's URL)
    """

    def __init__(
        self,
        state: OrgState,
        base_url: Callable[[], str],
        log: RequestLog | None = None,
        instance_url: Callable[[], str | None] | None = None,
    ) -> None:
        self.state = state
        self._base_url = base_url
        self._log = log
        self._instance_url = instance_url or (lambda: None)

    def add_routes(self, app: web.Application) -> None:
        """Register the endpoints on *app*."""
        app.router.add_post("/services/oauth2/token", self.token)
        app.router.add_post("/services/oauth2/revoke", self.revoke)

    async def token(self, request: web.Request) -> web.StreamResponse:
        """Serve a token request."""
        self.state.stats.token_requests += 1
        form = {key: str(value) for key, value in (await request.post()).items()}
        grant_type = form.get("grant_type", "")
        fault = self.state.take_fault("token")
        if fault is not None:
            if fault.http_status is not None:
                response: web.StreamResponse = web.Response(
                    status=fault.http_status,
                    text=fault.body if fault.body is not None else error_page(fault.http_status),
                    content_type=fault.content_type,
                )
                response.headers.update(fault.headers or {})
            else:
                error = OAuthError(fault.error or "invalid_grant", fault.reason or "")
                response = _json(error.as_json(), error.status)
            self._record(request, grant_type, response.status)
            return response
        try:
            body = grant_token(
                self.state, form, self._base_url(), instance_url=self._instance_url()
            )
        except OAuthError as exc:
            response = _json(exc.as_json(), exc.status)
        else:
            response = _json(body, 200)
        self._record(request, grant_type, response.status)
        return response

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """Revoke the access or refresh token named by the ``token`` parameter."""
        form = await request.post()
        if not self.state.revoke_token(str(form.get("token", ""))):
            error = OAuthError("unsupported_token_type", "this token type is not supported")
            return _json(error.as_json(), error.status)
        return web.Response(status=200)

    def _record(self, request: web.Request, grant_type: str, status: int) -> None:
        if self._log is not None:
            self._log.add("oauth", request.path, status, {"grant_type": grant_type})


def _json(body: Mapping[str, Any], status: int) -> web.Response:
    response = web.json_response(dict(body), status=status, content_type=_JSON)
    response.headers["Cache-Control"] = "no-cache,no-store"
    return response


def error_page(status: int) -> str:
    """Return an HTML error page, like the ones a load balancer serves."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (
        f"<!DOCTYPE html><html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{phrase}</h1><p>The server cannot handle the request.</p></body></html>"
    )
