"""Transports, picked by connection type."""

from __future__ import annotations

from aiosfstream.cometd.constants import ConnectionType
from aiosfstream.cometd.transports.base import Transport
from aiosfstream.cometd.transports.long_polling import LongPollingTransport
from aiosfstream.cometd.transports.websocket import WebSocketTransport

__all__ = ["TRANSPORTS", "LongPollingTransport", "Transport", "WebSocketTransport"]

#: The transport class that implements each connection type.
TRANSPORTS: dict[ConnectionType, type[Transport]] = {
    ConnectionType.LONG_POLLING: LongPollingTransport,
    ConnectionType.WEBSOCKET: WebSocketTransport,
}
