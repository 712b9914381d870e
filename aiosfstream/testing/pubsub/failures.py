"""How the emulator refuses an RPC: a gRPC status with Salesforce's trailers.

Salesforce ends the description with ``rpcId: <uuid>`` and sends the trailers
``error-code`` (a full ``sfdc.platform.eventbus.grpc.*`` string) and ``rpc-id``. Code deep
in the emulator raises :class:`RpcFailure`; :func:`answering_failures` turns it into that
status at the edge of the RPC.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc
from grpc import aio

__all__ = [
    "AUTH_ERROR",
    "AUTH_HEADERS_INVALID",
    "ERROR_CODE_PREFIX",
    "PUBLISH_EVENT_COUNT_INVALID",
    "PUBLISH_SWEEPER_TIMEOUT",
    "PUBLISH_TOPIC_EMPTY",
    "PUBLISH_TOPIC_MISMATCH",
    "REPLAY_ID_CORRUPTED",
    "REPLAY_ID_VALIDATION_FAILED",
    "REQUESTED_EVENTS_INVALID",
    "SCHEMA_VALIDATION_FAILED",
    "SUBSCRIBE_TOPIC_MISMATCH",
    "TOPIC_NOT_FOUND",
    "TOPIC_PERMISSION",
    "TOPIC_VALIDATION_EMPTY",
    "RpcFailure",
    "answering_failures",
    "full_error_code",
]

ERROR_CODE_PREFIX = "sfdc.platform.eventbus.grpc."

# The error codes the emulator sends, after the prefix (reference §5).
AUTH_ERROR = "service.auth.error"
AUTH_HEADERS_INVALID = "service.auth.headers.invalid"
TOPIC_NOT_FOUND = "topic.not.found"
TOPIC_VALIDATION_EMPTY = "topic.validation.empty"
TOPIC_PERMISSION = "topic.meta.permission"
SCHEMA_VALIDATION_FAILED = "schema.validation.failed"
REPLAY_ID_CORRUPTED = "subscription.fetch.replayid.corrupted"
REPLAY_ID_VALIDATION_FAILED = "subscription.fetch.replayid.validation.failed"
REQUESTED_EVENTS_INVALID = "subscription.fetch.requested.events.invalid"
SUBSCRIBE_TOPIC_MISMATCH = "subscription.fetch.topic.mismatch"
PUBLISH_TOPIC_MISMATCH = "publish.topic.mismatch"
PUBLISH_TOPIC_EMPTY = "publish.topic.validation.empty"
PUBLISH_EVENT_COUNT_INVALID = "publish.event.count.invalid"
PUBLISH_SWEEPER_TIMEOUT = "publish.stream.sweeper.timeout"


def full_error_code(code: str) -> str:
    """Return *code* with Salesforce's prefix (given with or without it)."""
    return code if code.startswith(ERROR_CODE_PREFIX) else ERROR_CODE_PREFIX + code


class RpcFailure(Exception):
    """The RPC fails with *status*; *error_code* (``None``: no such trailer) and *message*.

    *message* is the description without the ``rpcId:`` suffix, which is added when the
    failure is sent.
    """

    def __init__(self, status: grpc.StatusCode, error_code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = None if error_code is None else full_error_code(error_code)
        self.message = message

    def __repr__(self) -> str:
        return f"RpcFailure({self.status.name}, {self.error_code!r}, {self.message!r})"


class answering_failures:
    """Send an :class:`RpcFailure` raised inside ``async with`` as the RPC's status."""

    def __init__(self, context: aio.ServicerContext[Any, Any], rpc_id: str) -> None:
        self._context = context
        self._rpc_id = rpc_id

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(exc, RpcFailure):
            return
        trailers: tuple[tuple[str, str], ...] = (("rpc-id", self._rpc_id),)
        if exc.error_code is not None:
            trailers = (("error-code", exc.error_code), *trailers)
        await self._context.abort(
            exc.status, f"{exc.message} rpcId: {self._rpc_id}", trailing_metadata=trailers
        )
