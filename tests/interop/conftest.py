"""Fixtures that run third-party Bayeux servers (Faye, cometd-nodejs-server) under node.

Each server is a small script in ``servers/`` that listens on 127.0.0.1 and prints
``LISTENING <port>`` once it accepts connections.  :class:`NodeServer` starts it, reads that
line, and can stop it and start it again on the same port, which the tests use to simulate a
server restart or an outage.

The servers come from npm: run ``npm ci --prefix tests/interop`` once before these tests.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.helpers import require_tool
from tests.interop.support import TcpProxy

INTEROP_DIR = Path(__file__).resolve().parent
SERVERS_DIR = INTEROP_DIR / "servers"
NODE_MODULES = INTEROP_DIR / "node_modules"

#: Seconds a server holds a ``/meta/connect`` open: small, so that tests are fast.
SERVER_TIMEOUT = 2.0
#: Seconds allowed for node to start a server and print its port.
STARTUP_TIMEOUT = 15.0
#: Seconds allowed for a server to exit after SIGTERM.
SHUTDOWN_TIMEOUT = 5.0
#: Seconds to keep retrying when the port is still taken by a previous run on restart.
REBIND_TIMEOUT = 5.0


class ServerStartError(RuntimeError):
    """The server process did not report that it was listening."""


class NodeServer:
    """One Bayeux server process, which can be stopped and started again on the same port.

    :param script: the node script that runs the server
    :param mount: path of the Bayeux endpoint, e.g. ``"/faye"``
    :param log_path: file that collects the output of the server's runs
    :param timeout: seconds the server holds a ``/meta/connect``
    """

    def __init__(
        self,
        node: str,
        script: Path,
        mount: str,
        log_path: Path,
        timeout: float = SERVER_TIMEOUT,
    ) -> None:
        self.node = node
        self.script = script
        self.mount = mount
        self.log_path = log_path
        self.timeout = timeout
        self.port: int | None = None
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The Bayeux endpoint, e.g. ``http://127.0.0.1:PORT/faye``."""
        if self.port is None:
            raise RuntimeError("the server was never started")
        return f"http://127.0.0.1:{self.port}{self.mount}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server, on the port of its previous run if it had one."""
        if self.running:
            raise RuntimeError("the server is already running")
        deadline = time.monotonic() + REBIND_TIMEOUT
        while True:
            try:
                self._spawn()
                return
            except ServerStartError as error:
                # A restart may race the kernel releasing the port; a fresh port never does.
                in_use = "EADDRINUSE" in str(error)
                if not (in_use and self.port is not None and time.monotonic() < deadline):
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Send SIGTERM, wait for the process to end and check that it exited cleanly."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"{self.script.name} ignored SIGTERM for {SHUTDOWN_TIMEOUT} s\n{self.output()}"
            ) from None
        self._release()
        if returncode != 0:
            raise RuntimeError(f"{self.script.name} exited with {returncode}\n{self.output()}")

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server, stay down for *downtime* seconds, and start it on the same port."""
        self.stop()
        if downtime > 0:
            time.sleep(downtime)
        self.start()

    def kill(self) -> None:
        """End the process whatever its state; used at teardown."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()

    def output(self) -> str:
        """What the server printed on stderr over all its runs (for error messages)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def _spawn(self) -> None:
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1} on port {self.port or 0}\n".encode())
        self._log.flush()
        process = subprocess.Popen(
            [self.node, str(self.script), str(self.port or 0), str(self.timeout)],
            cwd=INTEROP_DIR,
            env={**os.environ, "WATCH_STDIN": "1"},
            # Held open until the server is stopped: if pytest dies, node sees it close and exits.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._process = process
        try:
            line = self._read_first_line(process)
        except BaseException:
            self.kill()
            raise
        parts = line.split()
        if len(parts) != 2 or parts[0] != "LISTENING" or not parts[1].isdigit():
            self.kill()
            raise ServerStartError(f"unexpected first line {line!r}\n{self.output()}")
        port = int(parts[1])
        if self.port is not None and port != self.port:
            self.kill()
            raise ServerStartError(f"asked for port {self.port}, got {port}")
        self.port = port
        self.starts += 1

    def _read_first_line(self, process: subprocess.Popen[bytes]) -> str:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        buffer = b""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerStartError(
                        f"{self.script.name} did not print LISTENING within "
                        f"{STARTUP_TIMEOUT} s\n{self.output()}"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    process.wait(SHUTDOWN_TIMEOUT)
                    raise ServerStartError(
                        f"{self.script.name} exited with {process.returncode} before "
                        f"listening\n{self.output()}"
                    )
                buffer += chunk
        return buffer.split(b"\n", 1)[0].decode(errors="replace").strip()

    def _release(self) -> None:
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _node_server(tmp_path: Path, script: str, mount: str, package: str) -> Iterator[NodeServer]:
    node = require_tool("node")
    if not (NODE_MODULES / package).is_dir():
        pytest.skip(f"npm package {package!r} is missing: run `npm ci --prefix tests/interop`")
    server = NodeServer(node, SERVERS_DIR / script, mount, tmp_path / f"{package}.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def faye_server(tmp_path: Path) -> Iterator[NodeServer]:
    """A running Faye server (long polling and websocket) at ``/faye``."""
    yield from _node_server(tmp_path, "faye_server.js", "/faye", "faye")


@pytest.fixture
def cometd_server(tmp_path: Path) -> Iterator[NodeServer]:
    """A running cometd-nodejs-server (long polling only) at ``/cometd``."""
    yield from _node_server(tmp_path, "cometd_server.js", "/cometd", "cometd-nodejs-server")


@pytest.fixture
async def faye_proxy(faye_server: NodeServer) -> AsyncIterator[TcpProxy]:
    """A relay in front of :func:`faye_server` that can drop every connection at once."""
    proxy = TcpProxy(faye_server.port or 0)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
