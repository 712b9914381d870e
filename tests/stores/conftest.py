"""The storage tests' servers: the redis-server subprocess (its fixtures are suite-wide,
in tests/conftest.py), and the Salesforce emulator."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from aiosfstream.testing import SalesforceEmulator

if TYPE_CHECKING:
    import redis.asyncio

#: How long redis-server may take to answer its first PING.
STARTUP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(port: int, *words: str) -> bytes:
    """Send one command to the server at *port* in RESP, return its first reply line."""
    request = f"*{len(words)}\r\n".encode()
    for word in words:
        request += f"${len(word.encode())}\r\n{word}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(request)
        return sock.makefile("rb").readline()


class RedisServer:
    """A redis-server subprocess on 127.0.0.1."""

    def __init__(self, executable: str, *options: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                # With --requirepass the answer is a NOAUTH error, which is fine.
                if _command(self.port, "PING").startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        assert _command(self.port, "FLUSHALL") == b"+OK\r\n"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    pytest.importorskip("redis", reason="redis-py is not installed")
    return redis_server.url


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the test's own, to look at (and meddle with) what was written."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=1.0) as server:
        yield server
