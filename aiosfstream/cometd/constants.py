"""Names and defaults of the Bayeux protocol."""

from __future__ import annotations

import enum

__all__ = [
    "BAYEUX_VERSION",
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_MAX_PENDING_COUNT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_REQUEST_BYTES",
    "META_CHANNEL_PREFIX",
    "SERVICE_CHANNEL_PREFIX",
    "ConnectionType",
    "MetaChannel",
]

#: Protocol version sent in the handshake (Bayeux 1.0).
BAYEUX_VERSION = "1.0"
META_CHANNEL_PREFIX = "/meta/"
SERVICE_CHANNEL_PREFIX = "/service/"
#: Seconds the client may stay disconnected before ``receive()`` gives up.
DEFAULT_CONNECTION_TIMEOUT = 10.0
#: Messages prefetched before the client stops asking the server for more.
DEFAULT_MAX_PENDING_COUNT = 100
#: The largest response body a client reads. One /meta/connect reply may carry a
#: whole backlog (Salesforce asks for room for at least 10 MB); such a reply is decoded
#: as it arrives and read only as fast as it is consumed, so its size costs no memory.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
#: Salesforce rejects larger request bodies with "413 Maximum Request Size Exceeded".
MAX_REQUEST_BYTES = 32_768


class ConnectionType(str, enum.Enum):
    """Transports a Bayeux client can negotiate at handshake."""

    LONG_POLLING = "long-polling"
    WEBSOCKET = "websocket"


class MetaChannel(str, enum.Enum):
    """The Bayeux meta channels."""

    HANDSHAKE = "/meta/handshake"
    CONNECT = "/meta/connect"
    DISCONNECT = "/meta/disconnect"
    SUBSCRIBE = "/meta/subscribe"
    UNSUBSCRIBE = "/meta/unsubscribe"
