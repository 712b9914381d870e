"""aiosfstream: an asyncio client for the Salesforce Streaming API.

The package re-exports the public names of :mod:`aiosfstream.auth`,
:mod:`aiosfstream.client`, :mod:`aiosfstream.ha`, :mod:`aiosfstream.replay` and
:mod:`aiosfstream.stores`, except their module-level constants: settings such as
``aiosfstream.auth.TOKEN_URL`` are read from their module, so they are used, and
assigned, there.
"""

import logging

from aiosfstream._version import __version__
from aiosfstream.auth import (
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    OAuthAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    SessionRefresher,
    SessionTokenAuthenticator,
    jwt_bearer_claims,
    my_domain_url,
    parse_token_response,
)
from aiosfstream.client import Client, ReplayParameter, SalesforceStreamingClient
from aiosfstream.ha import Lease, LeaseLost, RedisLease
from aiosfstream.replay import (
    ConstantReplayId,
    DefaultMappingStorage,
    DefaultReplayIdMixin,
    MappingStorage,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStorageContextManager,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage

# Grouped by the module that defines each name, not sorted as one list.
__all__ = [  # noqa: RUF022
    "__version__",
    # aiosfstream.auth
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
    # aiosfstream.client
    "Client",
    "ReplayParameter",
    "SalesforceStreamingClient",
    # aiosfstream.ha
    "Lease",
    "LeaseLost",
    "RedisLease",
    # aiosfstream.replay
    "ConstantReplayId",
    "DefaultMappingStorage",
    "DefaultReplayIdMixin",
    "MappingStorage",
    "ReplayMarker",
    "ReplayMarkerStorage",
    "ReplayMarkerStorageContextManager",
    "ReplayMarkerStoragePolicy",
    "ReplayOption",
    # aiosfstream.stores
    "RedisReplayStorage",
    "SQLiteReplayStorage",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
