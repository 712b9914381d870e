"""Every error aiosfstream raises, under one root.

::

    AiosfstreamException
    ├── AuthenticationError
    ├── ReplayError
    ├── ClientError                  (also a cometd ClientError)
    │   └── ClientInvalidOperation
    ├── TransportError               (also a cometd TransportError)
    │   ├── TransportInvalidOperation
    │   ├── TransportTimeoutError
    │   └── TransportConnectionClosed
    └── ServerError                  (also a cometd ServerError)

The CometD twins mean ``except aiosfstream.exceptions.ServerError`` and
``except aiosfstream.cometd.exceptions.ServerError`` both catch what
:class:`aiosfstream.Client` raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiosfstream.cometd import exceptions as cometd_errors

__all__ = [
    "AiosfstreamException",
    "AuthenticationError",
    "ClientError",
    "ClientInvalidOperation",
    "ReplayError",
    "ServerError",
    "TransportConnectionClosed",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
    "translate_errors",
    "twin_of",
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
        reached); the client retries within ``connection_timeout``
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.status = status
        self.retryable = retryable
        self.error = error
        self.error_description = error_description
        details = ": ".join(part for part in (error, error_description) if part)
        super().__init__(f"{message} ({details})" if details else message)


class ReplayError(AiosfstreamException):
    """A replay marker could not be read from a message or from storage."""


class ClientError(AiosfstreamException, cometd_errors.ClientError):
    """The client was used in a way it does not support."""


class ClientInvalidOperation(ClientError, cometd_errors.ClientInvalidOperation):
    """The operation is not allowed in the client's current state."""


class TransportError(AiosfstreamException, cometd_errors.TransportError):
    """The connection to Salesforce failed."""


class TransportInvalidOperation(TransportError, cometd_errors.TransportInvalidOperation):
    """The transport was asked to do something it cannot do in its state."""


class TransportTimeoutError(TransportError, cometd_errors.TransportTimeoutError):
    """Salesforce could not be reached within ``connection_timeout``."""


class TransportConnectionClosed(TransportError, cometd_errors.TransportConnectionClosed):
    """The connection was closed."""


class ServerError(AiosfstreamException, cometd_errors.ServerError):
    """Salesforce answered a request with ``successful: false``."""


# Most specific first: the first base class that matches wins.
_TWINS: tuple[tuple[type[cometd_errors.CometdException], type[AiosfstreamException]], ...] = (
    (cometd_errors.ClientInvalidOperation, ClientInvalidOperation),
    (cometd_errors.ClientError, ClientError),
    (cometd_errors.TransportInvalidOperation, TransportInvalidOperation),
    (cometd_errors.TransportTimeoutError, TransportTimeoutError),
    (cometd_errors.TransportConnectionClosed, TransportConnectionClosed),
    (cometd_errors.TransportError, TransportError),
    (cometd_errors.ServerError, ServerError),
)


def twin_of(error: cometd_errors.CometdException) -> AiosfstreamException | None:
    """Return *error* as its aiosfstream twin, carrying the same attributes."""
    if isinstance(error, AiosfstreamException):
        return error
    for cometd_class, twin_class in _TWINS:
        if isinstance(error, cometd_class):
            twin = twin_class.__new__(twin_class)
            twin.__dict__.update(error.__dict__)
            twin.args = error.args
            return twin
    return None


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise CometD errors as their aiosfstream twins."""
    try:
        yield
    except AiosfstreamException:
        raise
    except cometd_errors.CometdException as error:
        twin = twin_of(error)
        if twin is None:
            raise
        raise twin from error
