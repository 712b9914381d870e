"""A loop-free asyncio client for Bayeux 1.0 (CometD) servers."""

from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.client import Client
from aiosfstream.cometd.constants import ConnectionType
from aiosfstream.cometd.exceptions import (
    ClientError,
    ClientInvalidOperation,
    CometdException,
    HTTPStatusError,
    ServerError,
    TransportConnectionClosed,
    TransportError,
    TransportInvalidOperation,
    TransportTimeoutError,
)
from aiosfstream.cometd.extensions import AuthExtension, Extension

__all__ = [
    "AuthExtension",
    "Backoff",
    "Client",
    "ClientError",
    "ClientInvalidOperation",
    "CometdException",
    "ConnectionType",
    "Extension",
    "HTTPStatusError",
    "ServerError",
    "TransportConnectionClosed",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
]
