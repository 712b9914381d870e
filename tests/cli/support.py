"""Running ``python -m aiosfstream`` as a real process, and reading what it wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosfstream.stores import SQLiteReplayStorage
from aiosfstream.testing import DEFAULT_CREDENTIALS, SalesforceEmulator

if TYPE_CHECKING:
    from aiosfstream.testing.pubsub import PubSubEmulator

CHANNEL = "/topic/Orders"
CDC_CHANNEL = "/data/AccountChangeEvent"
#: Seconds any one step of a test may take.
STEP = 8.0
SECRETS = (DEFAULT_CREDENTIALS.consumer_secret, DEFAULT_CREDENTIALS.password)
ROOT = Path(__file__).resolve().parent.parent.parent
#: What starts every log line on stderr: its time.
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def base_env(**variables: str) -> dict[str, str]:
    """The test's environment without any SF_ variable, plus *variables*."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SF_")}
    env.update(variables)
    return env


def emulator_env(emulator: SalesforceEmulator, **overrides: str) -> dict[str, str]:
    """Environment variables that log in to *emulator* with its default user."""
    credentials = emulator.credentials
    variables = {
        "SF_LOGIN_URL": emulator.url,
        "SF_CONSUMER_KEY": credentials.consumer_key,
        "SF_CONSUMER_SECRET": credentials.consumer_secret,
        "SF_USERNAME": credentials.username,
        "SF_PASSWORD": credentials.password,
    }
    variables.update(overrides)
    return base_env(**variables)


class Command:
    """A running ``python -m aiosfstream`` whose stderr is collected in the background."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stderr is not None
        self._stderr = asyncio.ensure_future(process.stderr.read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], stdout: Any = None) -> Command:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "error",
            "-m",
            "aiosfstream",
            *args,
            stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        return cls(process)

    async def line(self) -> str:
        """The next line of stdout."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), STEP)
        assert line, "stdout closed"
        return line.decode("utf-8")

    async def events(self, count: int) -> list[dict[str, Any]]:
        """The next *count* events printed."""
        return [json.loads(await self.line()) for _ in range(count)]

    async def finish(self) -> Finished:
        """Wait for the exit; return the status, the rest of stdout and all of stderr."""
        stdout = b""
        if self.process.stdout is not None:
            stdout = await asyncio.wait_for(self.process.stdout.read(), STEP)
        code = await asyncio.wait_for(self.process.wait(), STEP)
        stderr = await asyncio.wait_for(self._stderr, STEP)
        return Finished(code, stdout.decode("utf-8"), stderr.decode("utf-8"))

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    @property
    def log(self) -> list[str]:
        """The lines of stderr, without the time that starts a log line."""
        return [_TIMESTAMP.sub("", line) for line in self.stderr.splitlines()]

    def cli_log(self) -> list[str]:
        """The command's own progress lines (logger ``aiosfstream.cli``), messages only."""
        prefix = "INFO aiosfstream.cli: "
        return [line.removeprefix(prefix) for line in self.log if line.startswith(prefix)]

    def assert_clean(self, *secrets: str) -> None:
        """No traceback, no warning, and none of *secrets* (or the default ones)."""
        output = self.stdout + self.stderr
        assert "Traceback" not in output
        assert "Warning" not in output
        for secret in (*SECRETS, *secrets):
            assert secret not in output


@contextlib.asynccontextmanager
async def command(*args: str, env: dict[str, str], stdout: Any = None) -> AsyncIterator[Command]:
    """Start the command; kill it if the test ends while it runs."""
    running = await Command.start(*args, env=env, stdout=stdout)
    try:
        yield running
    finally:
        running.kill()
        with contextlib.suppress(Exception):
            await running.finish()


async def run(*args: str, env: dict[str, str]) -> Finished:
    async with command(*args, env=env) as running:
        return await running.finish()


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll *check* until it is true; fail after :data:`STEP` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} within {STEP} s")
        await asyncio.sleep(0.02)


async def wait_subscribed(emulator: SalesforceEmulator, *channels: str) -> None:
    """Wait until one client of *emulator* is subscribed to every channel."""

    async def subscribed() -> bool:
        return any(
            set(channels) <= set(emulator.subscriptions(client_id))
            for client_id in emulator.client_ids
        )

    await wait_until(subscribed, f"no subscription to {channels}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def stored_replay_id(path: Path, channel: str) -> int | bytes | None:
    async with SQLiteReplayStorage(path) as storage:
        marker = await storage.get_replay_marker(channel)
    return None if marker is None else marker.replay_id


def pubsub_args(pubsub: PubSubEmulator, *args: str) -> tuple[str, ...]:
    """``listen`` through *pubsub* (plaintext), logging in to its org."""
    return ("listen", "--allow-insecure-http", "--pubsub", "--pubsub-plaintext",
            "--pubsub-endpoint", pubsub.endpoint, *args)  # fmt: skip


async def wait_streaming(pubsub: PubSubEmulator, *topics: str) -> None:
    """Wait until an open Subscribe stream of each of *topics* asks for events."""

    async def streaming() -> bool:
        asking = {s.topic for s in pubsub.stats() if s.open and s.requested_total > 0}
        return set(topics) <= asking

    await wait_until(streaming, f"no stream of {topics}")
