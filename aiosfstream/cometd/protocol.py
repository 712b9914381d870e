"""Bayeux 1.0 client logic without I/O.

:class:`BayeuxProtocol` builds the messages to send, matches replies to them,
tracks the client id, the negotiated connection type, the subscriptions and the
server's advice, and its state; what follows a failure is decided by
:mod:`aiosfstream.cometd.recovery`. It never sleeps, never reads the clock and
never touches a socket; the asyncio client in :mod:`aiosfstream.cometd.client`
does all of that.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiosfstream.cometd.advice import Advice, Reconnect
from aiosfstream.cometd.constants import BAYEUX_VERSION, ConnectionType, MetaChannel
from aiosfstream.cometd.exceptions import (
    ClientError,
    ClientInvalidOperation,
    ServerError,
)
from aiosfstream.cometd.messages import InvalidMessage, check_channel, is_meta_channel
from aiosfstream.typing import Message, Payload

__all__ = ["BayeuxProtocol", "Incoming", "State"]

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """Where the Bayeux session stands."""

    UNCONNECTED = "unconnected"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"


# The only way the state changes: (state, event) -> next state.
_TRANSITIONS: dict[tuple[State, str], State] = {
    (State.UNCONNECTED, "send_handshake"): State.HANDSHAKING,
    (State.CONNECTED, "send_handshake"): State.HANDSHAKING,
    (State.HANDSHAKING, "send_handshake"): State.HANDSHAKING,
    (State.HANDSHAKING, "handshake_succeeded"): State.CONNECTED,
    (State.HANDSHAKING, "handshake_failed"): State.UNCONNECTED,
    (State.CONNECTED, "session_lost"): State.UNCONNECTED,
    (State.UNCONNECTED, "session_lost"): State.UNCONNECTED,
    (State.CONNECTED, "send_disconnect"): State.DISCONNECTING,
    (State.UNCONNECTED, "close"): State.DISCONNECTED,
    (State.HANDSHAKING, "close"): State.DISCONNECTED,
    (State.CONNECTED, "close"): State.DISCONNECTED,
    (State.DISCONNECTING, "close"): State.DISCONNECTED,
    (State.DISCONNECTED, "close"): State.DISCONNECTED,
}


@dataclass
class Incoming:
    """A response body sorted into replies to our requests and everything else."""

    replies: dict[str, Message] = field(default_factory=dict)
    events: Payload = field(default_factory=list)
    #: Meta messages nobody asked for, such as a server-sent ``/meta/disconnect``.
    unsolicited: Payload = field(default_factory=list)


class BayeuxProtocol:
    """The state of one Bayeux client session, with no I/O.

    :param connection_types: the transports this client can use, preferred first
    """

    def __init__(self, connection_types: Sequence[ConnectionType]) -> None:
        if not connection_types:
            raise ValueError("at least one connection type is needed")
        self._connection_types = tuple(connection_types)
        self._state = State.UNCONNECTED
        self._next_id = 0
        self.client_id: str | None = None
        self.connection_type: ConnectionType | None = None
        self.advice = Advice()
        #: Channels the server confirmed, in subscription order.
        self._subscriptions: dict[str, None] = {}
        self._first_connect = True

    # -- state -----------------------------------------------------------------
    @property
    def state(self) -> State:
        """The current state of the session."""
        return self._state

    def _transition(self, event: str) -> None:
        try:
            new_state = _TRANSITIONS[self._state, event]
        except KeyError:
            raise ClientInvalidOperation(
                f"cannot {event.replace('_', ' ')} in state {self._state.value}"
            ) from None
        if new_state is not self._state:
            logger.debug("bayeux state %s -> %s", self._state.value, new_state.value)
        self._state = new_state

    @property
    def subscriptions(self) -> frozenset[str]:
        """Channels with a confirmed subscription."""
        return frozenset(self._subscriptions)

    @property
    def subscription_order(self) -> list[str]:
        """Confirmed channels in the order they were subscribed."""
        return list(self._subscriptions)

    def close(self) -> None:
        """Mark the session as finished."""
        self._transition("close")
        self.client_id = None

    # -- building messages -----------------------------------------------------
    def _message(self, channel: str, **fields: Any) -> Message:
        self._next_id += 1
        if isinstance(channel, MetaChannel):
            channel = channel.value  # plain strings on the wire and in error messages
        message: Message = {"channel": channel, "id": str(self._next_id)}
        if self.client_id is not None and channel != MetaChannel.HANDSHAKE:
            message["clientId"] = self.client_id
        message.update(fields)
        return message

    def _require_connected(self, operation: str) -> None:
        if self._state is not State.CONNECTED:
            raise ClientInvalidOperation(
                f"cannot {operation} in state {self._state.value}; the client must be open"
            )

    def handshake(self) -> Message:
        """Start a new session (Bayeux 1.0, section 3.4)."""
        self._transition("send_handshake")
        self.client_id = None
        return self._message(
            MetaChannel.HANDSHAKE,
            version=BAYEUX_VERSION,
            minimumVersion=BAYEUX_VERSION,
            supportedConnectionTypes=[ctype.value for ctype in self._connection_types],
        )

    def connect(self) -> Message:
        """Poll for events (Bayeux 1.0, section 3.5)."""
        self._require_connected("connect")
        assert self.connection_type is not None
        message = self._message(MetaChannel.CONNECT, connectionType=self.connection_type.value)
        if self._first_connect:
            # Ask the server not to hold the first poll, so that the session is
            # established before the client reports itself open.
            message["advice"] = {"timeout": 0}
            self._first_connect = False
        return message

    def subscribe(self, channel: str) -> Message:
        """Ask for the events of *channel*."""
        check_channel(channel)
        self._require_connected("subscribe")
        return self._message(MetaChannel.SUBSCRIBE, subscription=channel)

    def unsubscribe(self, channel: str) -> Message:
        """Stop the events of *channel*."""
        check_channel(channel)
        self._require_connected("unsubscribe")
        return self._message(MetaChannel.UNSUBSCRIBE, subscription=channel)

    def publish(self, channel: str, data: Any) -> Message:
        """Send *data* to the subscribers of *channel*."""
        check_channel(channel, allow_wildcards=False)
        if channel.startswith("/meta/"):
            raise ValueError(f"cannot publish to a meta channel: {channel!r}")
        self._require_connected("publish")
        return self._message(channel, data=data)

    def disconnect(self) -> Message:
        """End the session politely."""
        self._transition("send_disconnect")
        return self._message(MetaChannel.DISCONNECT)

    # -- handling replies --------------------------------------------------------
    def sort(self, payload: Payload, requests: Iterable[Message]) -> Incoming:
        """Split a validated response body into replies, events and unsolicited messages.

        A reply is matched to its request by ``id``; a reply without an ``id`` (some
        Salesforce errors have none) is matched by channel.
        """
        by_id = {str(request["id"]): request for request in requests}
        by_channel = {request["channel"]: key for key, request in by_id.items()}
        incoming = Incoming()
        events, unsolicited = incoming.events, incoming.unsolicited
        for message in payload:
            if "advice" in message:
                self.advice = self.advice.updated(message["advice"])
            if "successful" not in message:  # not a reply: is_event(), inlined (hot path)
                if "data" in message and not is_meta_channel(message["channel"]):
                    events.append(message)
                else:
                    unsolicited.append(message)
                continue
            message_id = message.get("id")
            if message_id is None:
                key = by_channel.get(message["channel"])
            else:
                key = str(message_id) if str(message_id) in by_id else None
            if key is not None and key not in incoming.replies:
                incoming.replies[key] = message
            else:
                unsolicited.append(message)
        return incoming

    def handle_handshake(self, reply: Message) -> None:
        """Take in the handshake reply; raise :class:`ServerError` if it failed."""
        if self._state is not State.HANDSHAKING:
            raise ClientInvalidOperation(
                f"cannot take a handshake reply in state {self._state.value}"
            )
        if not reply.get("successful"):
            self._transition("handshake_failed")
            raise ServerError("Handshake failed", reply)
        client_id = reply.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            self._transition("handshake_failed")
            raise InvalidMessage("the handshake reply carries no clientId")
        offered = reply.get("supportedConnectionTypes")
        offered = offered if isinstance(offered, list) else []
        chosen = next((ctype for ctype in self._connection_types if ctype.value in offered), None)
        if chosen is None:
            self._transition("handshake_failed")
            raise ClientError(
                f"the server supports none of the connection types "
                f"{[ctype.value for ctype in self._connection_types]}; it offers {offered}"
            )
        self.client_id = client_id
        self.connection_type = chosen
        self._first_connect = True
        # A new session starts with "retry": a stale "handshake" or "none" from the
        # old session must not end the new one (cometd/cometd#2057).
        self.advice = replace(self.advice.updated(reply.get("advice")), reconnect=Reconnect.RETRY)
        self._transition("handshake_succeeded")
        logger.debug("handshake done: connection type %s", chosen.value)

    def handle_subscribe(self, reply: Message, channel: str) -> None:
        """Record the subscription, or raise :class:`ServerError`."""
        if not reply.get("successful"):
            raise ServerError(f"Subscribe request to {channel} failed", reply)
        self._subscriptions[channel] = None

    def handle_unsubscribe(self, reply: Message, channel: str) -> None:
        """Forget the subscription, or raise :class:`ServerError`."""
        if not reply.get("successful"):
            raise ServerError(f"Unsubscribe request from {channel} failed", reply)
        self._subscriptions.pop(channel, None)

    def forget_subscription(self, channel: str) -> None:
        """Drop *channel* after the server refused to restore it."""
        self._subscriptions.pop(channel, None)

    def session_lost(self) -> None:
        """The server forgot us (for example it sent ``/meta/disconnect``)."""
        self._transition("session_lost")
