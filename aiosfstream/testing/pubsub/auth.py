"""The per-call metadata check: ``accesstoken``, ``instanceurl`` and ``tenantid`` on every RPC.

The token is checked against the OAuth state of the CometD emulator's org, so a token that
org revoked, or that outlived its session timeout, is refused here too. Keys match
case-insensitively. Nothing here repeats a token: refusals name the header, not its value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc

from .failures import AUTH_ERROR, AUTH_HEADERS_INVALID, RpcFailure

if TYPE_CHECKING:
    from ..server import SalesforceEmulator

__all__ = ["AUTH_MESSAGE", "authenticate", "token_is_live"]

AUTH_MESSAGE = (
    "An authentication exception occurred. Provide valid authentication via metadata headers."
)


def _headers(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            found[key.lower()] = value
    return found


def _tenant_matches(tenant: str, org_id: str) -> bool:
    # Bare 15- or 18-character id, or the full "core/<subdomain>/<org id>" form.
    bare = tenant.rsplit("/", 1)[-1] if tenant.startswith("core/") else tenant
    return bare in (org_id, org_id[:15])


def authenticate(
    org: SalesforceEmulator, metadata: Iterable[tuple[str, str | bytes]] | None
) -> str:
    """Return the call's access token, or raise an UNAUTHENTICATED :class:`RpcFailure`."""
    headers = _headers(metadata)
    token, instance_url, tenant = (
        headers.get(key, "").strip() for key in ("accesstoken", "instanceurl", "tenantid")
    )
    missing = [
        name
        for name, value in (
            ("accesstoken", token),
            ("instanceurl", instance_url),
            ("tenantid", tenant),
        )
        if not value
    ]
    if missing:
        raise RpcFailure(
            grpc.StatusCode.UNAUTHENTICATED,
            AUTH_HEADERS_INVALID,
            f"{AUTH_MESSAGE} Missing or blank: {', '.join(missing)}.",
        )
    if not _tenant_matches(tenant, org.state.org_id):
        raise RpcFailure(
            grpc.StatusCode.UNAUTHENTICATED,
            AUTH_HEADERS_INVALID,
            f"{AUTH_MESSAGE} The tenantid header does not name this org.",
        )
    if instance_url.rstrip("/") != _org_instance_url(org):
        raise RpcFailure(
            grpc.StatusCode.UNAUTHENTICATED,
            AUTH_HEADERS_INVALID,
            f"{AUTH_MESSAGE} The instanceurl header is not this org's instance URL.",
        )
    if not token_is_live(org, token):
        raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, AUTH_MESSAGE)
    return token


def token_is_live(org: SalesforceEmulator, token: str) -> bool:
    """Whether *token* still authenticates (it is used, so its session lives on)."""
    return org.state.check_token(token) is not None


def _org_instance_url(org: SalesforceEmulator) -> str | None:
    try:
        return org.instance_url.rstrip("/")
    except RuntimeError:  # the org was never started, so it handed out no instance URL
        return None
