"""Stopping cleanly on SIGINT, SIGTERM or a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from aiosfstream.cli.errors import ExitCode

__all__ = ["Stopper"]

logger = logging.getLogger(__name__)


class Stopper:
    """Runs one task and stops it on SIGINT, SIGTERM or a deadline.

    The stop cancels the task, except inside :meth:`critical` sections (writing an event
    and storing its marker), which are left to finish: the task then checks :attr:`code`.
    A second signal while stopping exits at once.
    """

    _SIGNALS = (
        (signal.SIGINT, ExitCode.SIGINT),
        (signal.SIGTERM, ExitCode.SIGTERM),
    )

    def __init__(self) -> None:
        #: Why the task is asked to stop, once it is.
        self.code: ExitCode | None = None
        self._task: asyncio.Task[ExitCode] | None = None
        self._critical = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, work: Callable[[Stopper], Coroutine[Any, Any, ExitCode]]) -> ExitCode:
        """Run ``work(self)``; return its status, or the stop's if it was cancelled."""
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(work(self))
        self._task = task
        installed = []
        for signum, code in self._SIGNALS:
            try:
                loop.add_signal_handler(signum, self._on_signal, code)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, threads
                continue
            installed.append(signum)
        try:
            try:
                return await task
            except asyncio.CancelledError:
                if task.cancelled() and self.code is not None:
                    return self.code
                raise
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self._timer is not None:
                self._timer.cancel()

    def _on_signal(self, code: ExitCode) -> None:
        if self.code is not None:
            logger.warning("second signal while stopping: exiting at once")
            os._exit(code)
        logger.info("received %s: stopping", code.name)
        self.stop(code)

    def stop(self, code: ExitCode) -> None:
        """Ask the task to stop, with exit status *code* (the first request wins)."""
        if self.code is not None:
            return
        self.code = code
        if self._task is not None and not self._critical and not self._task.done():
            self._task.cancel()

    def stop_after(self, seconds: float, code: ExitCode) -> None:
        """Stop with *code* in *seconds*."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self.stop, code)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A section a stop does not interrupt."""
        self._critical = True
        try:
            yield
        finally:
            self._critical = False

    def shield_rest(self) -> None:
        """From now on, a stop does not interrupt the task: it is cleaning up."""
        self._critical = True
