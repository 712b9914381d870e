"""Every error aiosfstream raises, under one root.

::

    AiosfstreamException
    ├── AuthenticationError
    ├── LeaseLost
    ├── ReplayError
    ├── ClientError                  (also a cometd ClientError)
    │   └── ClientInvalidOperation
    ├── TransportError               (also a cometd TransportError)
    │   ├── HTTPStatusError
    │   │   └── HTTPRedirectError
    │   ├── InvalidMessage
    │   ├── ResponseTooLargeError
    │   ├── TransportInvalidOperation
    │   ├── TransportTimeoutError
    │   └── TransportConnectionClosed
    └── ServerError                  (also a cometd ServerError)

The CometD twins mean ``except aiosfstream.exceptions.ServerError`` and
``except aiosfstream.cometd.exceptions.ServerError`` both catch what
:class:`aiosfstream.Client` raises.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from aiosfstream.cometd import exceptions as cometd_errors
from aiosfstream.cometd import messages as cometd_messages

__all__ = [
    "AiosfstreamException",
    "AuthenticationError",
    "ClientError",
    "ClientInvalidOperation",
    "HTTPRedirectError",
    "HTTPStatusError",
    "InvalidMessage",
    "LeaseLost",
    "ReplayError",
    "ResponseTooLargeError",
    "ServerError",
    "TransportConnectionClosed",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
]


class AiosfstreamException(Exception):
    """Root of every error raised by aiosfstream."""


class AuthenticationError(AiosfstreamException):
    """Salesforce refused to issue an access token.

    :param message: what went wrong
    :param status: HTTP status of the token endpoint's answer, if there was one
    :param error: Salesforce's ``error`` code, e.g. ``invalid_grant``
    :param error_description: Salesforce's ``error_description``
    :param retryable: the cause is temporary (the token endpoint could not be
        reached, answered 5xx or 429, or sent a page that is not JSON); the client
        retries within ``connection_timeout``
    :param retry_after: seconds the token endpoint asked to wait (``Retry-After``)
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.error = error
        self.error_description = error_description
        details = ": ".join(part for part in (error, error_description) if part)
        super().__init__(f"{message} ({details})" if details else message)


class LeaseLost(AiosfstreamException):
    """This replica does not hold the lease (any more), so it must not consume or store.

    Raised by a storage fenced by the lease, and by a client whose lease was lost; the
    message says why: another replica took it, no renewal succeeded within the ttl, or it
    was released.  See :doc:`/replicas`.
    """


class ReplayError(AiosfstreamException):
    """A replay marker could not be read from a message or from storage."""


class ClientError(AiosfstreamException, cometd_errors.ClientError):
    """The client was used in a way it does not support."""


class ClientInvalidOperation(ClientError, cometd_errors.ClientInvalidOperation):
    """The operation is not allowed in the client's current state."""


class TransportError(AiosfstreamException, cometd_errors.TransportError):
    """The connection to Salesforce failed."""


class HTTPStatusError(TransportError, cometd_errors.HTTPStatusError):
    """Salesforce answered with an HTTP error status (``status``)."""


class HTTPRedirectError(HTTPStatusError, cometd_errors.HTTPRedirectError):
    """Salesforce answered with a redirect (``status``, ``location``); never followed."""


class InvalidMessage(TransportError, cometd_messages.InvalidMessage):
    """Salesforce sent something that is not a valid Bayeux message."""


class ResponseTooLargeError(TransportError, cometd_errors.ResponseTooLargeError):
    """A response body was larger than ``max_response_bytes`` (``limit``)."""


class TransportInvalidOperation(TransportError, cometd_errors.TransportInvalidOperation):
    """The transport was asked to do something it cannot do in its state."""


class TransportTimeoutError(TransportError, cometd_errors.TransportTimeoutError):
    """Salesforce could not be reached within ``connection_timeout``."""


class TransportConnectionClosed(TransportError, cometd_errors.TransportConnectionClosed):
    """The connection was closed."""


class ServerError(AiosfstreamException, cometd_errors.ServerError):
    """Salesforce answered a request with ``successful: false``."""


#: Each CometD error and its aiosfstream twin, most specific first: the first CometD
#: class that an error is an instance of decides its twin.
EXCEPTION_PAIRS: dict[type[cometd_errors.CometdException], type[AiosfstreamException]] = {
    cometd_errors.ClientInvalidOperation: ClientInvalidOperation,
    cometd_errors.ClientError: ClientError,
    cometd_errors.HTTPRedirectError: HTTPRedirectError,
    cometd_errors.HTTPStatusError: HTTPStatusError,
    cometd_messages.InvalidMessage: InvalidMessage,
    cometd_errors.ResponseTooLargeError: ResponseTooLargeError,
    cometd_errors.TransportInvalidOperation: TransportInvalidOperation,
    cometd_errors.TransportTimeoutError: TransportTimeoutError,
    cometd_errors.TransportConnectionClosed: TransportConnectionClosed,
    cometd_errors.TransportError: TransportError,
    cometd_errors.ServerError: ServerError,
}


def twin_of(error: cometd_errors.CometdException) -> AiosfstreamException | None:
    """Return *error* as its aiosfstream twin, built through its constructor.

    The twin's causes are twins too, so that ``except`` clauses and ``isinstance``
    checks on the chain see aiosfstream's classes all the way down; the twin keeps
    the original traceback.
    """
    if isinstance(error, AiosfstreamException):
        return error
    for cometd_class, twin_class in EXCEPTION_PAIRS.items():
        if isinstance(error, cometd_class):
            twin = twin_class(*error._constructor_args())
            cause = error.__cause__
            if isinstance(cause, cometd_errors.CometdException):
                cause = twin_of(cause) or cause
            twin.__cause__ = cause
            twin.__suppress_context__ = error.__suppress_context__
            return twin.with_traceback(error.__traceback__)
    return None


@contextmanager
def translate_errors_context() -> Iterator[None]:
    """Re-raise CometD errors as their aiosfstream twins."""
    try:
        yield
    except AiosfstreamException:
        raise
    except cometd_errors.CometdException as error:
        twin = twin_of(error)
        if twin is None:
            raise
        raise twin from twin.__cause__


#: Any function or coroutine function.
FuncType = Callable[..., Any]
#: The type of the function that :func:`translate_errors` decorates, kept as it is.
Func = TypeVar("Func", bound=FuncType)


def translate_errors(func: Func) -> Func:
    """Make *func*, a function or a coroutine function, raise aiosfstream's errors."""
    if not inspect.iscoroutinefunction(func):
        return translate_errors_context()(func)

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with translate_errors_context():
            return await func(*args, **kwargs)

    return cast(Func, wrapper)
