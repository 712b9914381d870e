"""aiosfstream: an asyncio client for the Salesforce Streaming API."""

import logging

from aiosfstream._version import __version__
from aiosfstream.auth import (
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    SessionTokenAuthenticator,
)
from aiosfstream.client import Client, SalesforceStreamingClient
from aiosfstream.replay import (
    ConstantReplayId,
    DefaultMappingStorage,
    MappingStorage,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage

__all__ = [
    "AuthenticatorBase",
    "Client",
    "ClientCredentialsAuthenticator",
    "ConstantReplayId",
    "DefaultMappingStorage",
    "JWTBearerAuthenticator",
    "MappingStorage",
    "PasswordAuthenticator",
    "RedisReplayStorage",
    "RefreshTokenAuthenticator",
    "ReplayMarker",
    "ReplayMarkerStorage",
    "ReplayMarkerStoragePolicy",
    "ReplayOption",
    "SQLiteReplayStorage",
    "SalesforceStreamingClient",
    "SessionTokenAuthenticator",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
