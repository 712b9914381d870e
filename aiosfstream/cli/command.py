"""The command itself: parse the arguments, log to stderr, run, and report the outcome."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from aiosfstream._redaction import redact
from aiosfstream.cli.emulator import serve_emulator
from aiosfstream.cli.errors import PROG, ExitCode, OutputClosed, UsageError, error_line, explain
from aiosfstream.cli.listen import listen
from aiosfstream.cli.parser import build_parser, parse_args
from aiosfstream.cli.settings import emulator_settings, listen_settings
from aiosfstream.cli.writer import silence_stdout

__all__ = ["main"]

logger = logging.getLogger(__name__)

_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


class _Redactor(logging.Formatter):
    """Formats log records to stderr, with every known secret replaced."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        #: The secrets to hide; ``listen`` adds the login's as soon as it knows them.
        self.secrets: list[str] = []

    def redact(self, text: str) -> str:
        """Replace each secret in *text*."""
        return redact(text, self.secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def _report(redactor: _Redactor, message: str, *, prog: str = PROG) -> None:
    """Write *message* to stderr as the command's one error line, secrets replaced."""
    sys.stderr.write(error_line(redactor.redact(message), prog=prog))
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiosfstream`` command with *argv* (``sys.argv[1:]``); return its status."""
    parser = build_parser()
    try:
        args = parse_args(parser, None if argv is None else list(argv))
    except SystemExit as exit_:  # --help, --version or a usage error
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE

    redactor = _Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(redactor)
    # The handler's level decides what is shown: ``listen`` makes some library loggers
    # produce DEBUG records that it reads but that -v must not show.
    level = _LEVELS[min(args.verbose, len(_LEVELS) - 1)]
    handler.setLevel(level)
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        if args.command == "listen":
            return listen(listen_settings(args, os.environ), redactor.secrets)
        return serve_emulator(emulator_settings(args))
    except UsageError as error:
        prog = args.subparser.prog
        _report(redactor, f"error: {error} (see '{prog} --help')", prog=prog)
        return ExitCode.USAGE
    except OutputClosed:
        silence_stdout()
        return ExitCode.BROKEN_PIPE
    except KeyboardInterrupt:  # before the signal handlers were in place
        return ExitCode.SIGINT
    except Exception as error:
        code, line = explain(error)
        if code is ExitCode.ERROR:
            logger.debug("unexpected error", exc_info=True)
        _report(redactor, line)
        return code
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
