"""The ``aiosfstream`` command: print a stream as JSON lines, or run the local emulator.

``aiosfstream listen CHANNEL...`` logs in, subscribes (over CometD, or the Pub/Sub API
with ``--pubsub``) and writes every event to stdout as one line of compact JSON, so that
``jq``, a log shipper or a program in any language can consume it; with ``--lease`` it
is one replica of several, of which one prints. ``aiosfstream emulator`` runs the
Salesforce emulator of :mod:`aiosfstream.testing` as a standalone server, optionally
publishing demo events.

Logs and errors go to stderr. An error is reported in one line, without a traceback and
without any secret, and the exit status tells a script what happened
(:class:`~aiosfstream.cli.errors.ExitCode`).

The modules, one job each: :mod:`~aiosfstream.cli.settings` (options and environment),
:mod:`~aiosfstream.cli.parser`, :mod:`~aiosfstream.cli.authenticator`,
:mod:`~aiosfstream.cli.replay_store` (SQLite or Redis), :mod:`~aiosfstream.cli.clients`
(CometD or Pub/Sub), :mod:`~aiosfstream.cli.replica` (``--lease``),
:mod:`~aiosfstream.cli.writer`, :mod:`~aiosfstream.cli.signals`,
:mod:`~aiosfstream.cli.progress` (``-v``), :mod:`~aiosfstream.cli.listen`,
:mod:`~aiosfstream.cli.emulator`, :mod:`~aiosfstream.cli.pubsub_emulator`,
:mod:`~aiosfstream.cli.errors` and :mod:`~aiosfstream.cli.command` (``main``).
"""

from aiosfstream.cli.command import main

__all__ = ["main"]
