"""The exit statuses of the command, its own errors, and the one line each error gets.

Every failure ends as one line on stderr, ``PROG: KIND: DETAIL``, and a status from
:class:`ExitCode`; :func:`explain` is the one table from an exception to both.
"""

from __future__ import annotations

import enum
import sys

from aiosfstream.exceptions import AuthenticationError, ReplayError, ServerError, TransportError
from aiosfstream.policy import is_invalid_replay_error

__all__ = [
    "PROG",
    "EmulatorAddressError",
    "ExitCode",
    "IncompleteError",
    "OutputClosed",
    "ReplayStoreError",
    "UsageError",
    "error_line",
    "explain",
]

#: The command's name, first on every line it writes to stderr.
PROG = "aiosfstream"


class ExitCode(enum.IntEnum):
    """The exit statuses of the ``aiosfstream`` command."""

    #: Done: ``--count`` events printed, ``--timeout`` elapsed, or the emulator stopped.
    OK = 0
    #: An unexpected error (a bug: run again with ``-vv`` for the traceback).
    ERROR = 1
    #: Bad arguments, missing credentials or a bad setting (argparse's status).
    USAGE = 2
    #: Salesforce refused to log in (:class:`~aiosfstream.exceptions.AuthenticationError`).
    AUTHENTICATION = 3
    #: Salesforce refused a request, such as a subscription to an unknown channel
    #: (:class:`~aiosfstream.exceptions.ServerError`).
    SERVER = 4
    #: Salesforce could not be reached, or the connection was lost for longer than
    #: ``--connection-timeout`` (:class:`~aiosfstream.exceptions.TransportError`); for
    #: ``emulator``, the address cannot be listened on.
    NETWORK = 5
    #: The replay store cannot be opened, read or written.
    REPLAY_STORE = 6
    #: ``--timeout`` elapsed before ``--count`` events were printed.
    INCOMPLETE = 7
    #: Stopped by SIGINT (Ctrl+C): 128 + 2.
    SIGINT = 130
    #: stdout was closed by its reader (e.g. ``| head``), as after SIGPIPE: 128 + 13.
    BROKEN_PIPE = 141
    #: Stopped by SIGTERM: 128 + 15.
    SIGTERM = 143


class UsageError(Exception):
    """A setting is missing or wrong: the command exits with :attr:`ExitCode.USAGE`."""


class ReplayStoreError(Exception):
    """The replay store cannot be opened: the command exits with :attr:`ExitCode.REPLAY_STORE`."""


class EmulatorAddressError(Exception):
    """The emulator cannot listen on its address: the command exits with
    :attr:`ExitCode.NETWORK`."""


class IncompleteError(Exception):
    """``--timeout`` came before ``--count`` events: the command exits with
    :attr:`ExitCode.INCOMPLETE`."""

    def __init__(self, printed: int, count: int, timeout: float) -> None:
        super().__init__(f"{printed} of {count} events printed before --timeout ({timeout:g} s)")


class OutputClosed(Exception):
    """The reader of stdout went away: the command exits with :attr:`ExitCode.BROKEN_PIPE`,
    quietly, as a program killed by SIGPIPE would."""


# Most specific first: the first match names the error.
_KINDS: tuple[tuple[type[Exception], ExitCode, str], ...] = (
    (AuthenticationError, ExitCode.AUTHENTICATION, "login refused"),
    (ServerError, ExitCode.SERVER, "Salesforce refused"),
    (TransportError, ExitCode.NETWORK, "network failure"),
    (EmulatorAddressError, ExitCode.NETWORK, "emulator"),
    (ReplayStoreError, ExitCode.REPLAY_STORE, "replay store"),
    (ReplayError, ExitCode.REPLAY_STORE, "replay store"),
    (IncompleteError, ExitCode.INCOMPLETE, "incomplete"),
)

_REPLAY_HINT = (
    "the replay id has left the retention window: --replay-fallback new or "
    "--replay-fallback all subscribes anyway, without the events lost in between"
)


def _replay_refused(error: ServerError) -> bool:
    """Whether *error* refused a replay id, by CometD's or the Pub/Sub API's rules."""
    if is_invalid_replay_error(error):
        return True
    # A Pub/Sub error can only exist once its package (and grpcio) was imported.
    if "aiosfstream.pubsub" not in sys.modules:
        return False
    from aiosfstream.pubsub.errors import PubSubServerError
    from aiosfstream.pubsub.policy import Reaction, reaction_to

    return (
        isinstance(error, PubSubServerError)
        and reaction_to(error.status or "", error.error) is Reaction.FALL_BACK
    )


def explain(error: Exception) -> tuple[ExitCode, str]:
    """Return the exit status for *error* and its line, without the ``PROG:`` prefix.

    An error of no known kind is a bug: status :attr:`ExitCode.ERROR`.
    """
    for kind, code, label in _KINDS:
        if isinstance(error, kind):
            detail = str(error)
            if isinstance(error, ServerError) and _replay_refused(error):
                detail = f"{detail} ({_REPLAY_HINT})"
            return code, f"{label}: {detail}"
    return ExitCode.ERROR, f"unexpected error: {type(error).__name__}: {error} (-vv shows more)"


def error_line(message: str, *, prog: str = PROG) -> str:
    """The line that reports *message* on stderr: ``PROG: message``, newlines folded.

    Server texts may hold line breaks or runs of spaces; a script reads one line.
    """
    return f"{prog}: {' '.join(message.split())}\n"
