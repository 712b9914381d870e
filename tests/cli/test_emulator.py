"""``aiosfstream emulator``, run as a real process."""

from __future__ import annotations

import re
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.testing import DEFAULT_CREDENTIALS

from .support import base_env, command, run, wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


async def test_emulator_command_serves_until_sigterm() -> None:
    async with command("emulator", "--port", "0", "--demo-rate", "20", env=base_env()) as running:
        first = await running.line()
        # The emulator's own URL: on 127.0.0.1, or on localhost for versions naming it.
        match = re.fullmatch(
            r"Salesforce emulator running at (http://(?:127\.0\.0\.1|localhost):\d+)\n", first
        )
        assert match is not None, first
        url = match[1]
        banner = [first]
        while not banner[-1].startswith("Stop with Ctrl+C."):
            banner.append(await running.line())
        assert f"export SF_LOGIN_URL={url}\n" in banner
        assert f"export SF_PASSWORD={DEFAULT_CREDENTIALS.password}\n" in banner

        async with aiohttp.ClientSession() as session:

            async def demo_events(channel: str) -> list[Any]:
                params = {"channel": channel}
                async with session.get(f"{url}/__admin__/events", params=params) as response:
                    assert response.status == 200
                    events: list[Any] = await response.json()
                    return events

            async def published() -> bool:
                return len(await demo_events("/topic/Demo")) >= 2

            await wait_until(published, "no demo event")
            (change,) = (await demo_events("/data/AccountChangeEvent"))[:1]
            header = change["data"]["payload"]["ChangeEventHeader"]
            assert header["changeType"] == "CREATE"

            # A client in another process can use the printed settings.
            env = base_env(
                **{
                    line.split("=", 1)[0].removeprefix("export "): line.split("=", 1)[1].strip()
                    for line in banner
                    if line.startswith("export ")
                }
            )
            # The printed command needs no --allow-insecure-http: localhost is this machine.
            assert "aiosfstream listen /topic/Demo\n" in banner
            listener = await run("listen", "--count", "2", "/topic/Demo", env=env)
            assert listener.code == ExitCode.OK
            assert len(listener.events) == 2

        running.process.send_signal(signal.SIGTERM)
        finished = await running.finish()
    assert finished.code == ExitCode.SIGTERM
    assert finished.stderr == ""


async def test_emulator_command_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        finished = await run("emulator", "--port", str(port), env=base_env())
    assert finished.code == ExitCode.NETWORK
    assert finished.stderr.count("\n") == 1
    assert str(port) in finished.stderr


async def test_emulator_on_all_interfaces_prints_a_url_clients_can_use() -> None:
    args = ("emulator", "--host", "0.0.0.0", "--port", "0", "--demo-rate", "20")
    async with command(*args, env=base_env()) as running:
        banner = [await running.line()]
        while not banner[-1].startswith("Stop with Ctrl+C."):
            banner.append(await running.line())
        match = re.fullmatch(r"Salesforce emulator running at http://([^:/]+):(\d+)\n", banner[0])
        assert match is not None, banner[0]
        assert match[1] == socket.gethostname()
        url = f"http://{match[1]}:{match[2]}"
        assert banner[1:5] == [
            "  Listening on all interfaces (0.0.0.0): anyone who can reach this machine can "
            "use it\n",
            f"  OAuth token endpoint: {url}/services/oauth2/token\n",
            f"  Streaming API:        {url}/cometd/66.0\n",
            f"  Admin API:            {url}/__admin__\n",
        ]
        assert not any("0.0.0.0:" in line for line in banner)
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in banner
            if line.startswith("export ")
        )
        assert exports["SF_LOGIN_URL"] == url

        # Token answers send clients to the same URL, not to 0.0.0.0.
        form = {
            "grant_type": "password",
            "client_id": exports["SF_CONSUMER_KEY"],
            "client_secret": exports["SF_CONSUMER_SECRET"],
            "username": exports["SF_USERNAME"],
            "password": exports["SF_PASSWORD"],
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/services/oauth2/token", data=form) as response,
        ):
            assert response.status == 200
            token: dict[str, Any] = await response.json()
        assert token["instance_url"] == url

        # The printed settings work.
        listener = await run(
            "listen",
            "--allow-insecure-http",
            "--count",
            "2",
            "/topic/Demo",
            env=base_env(**exports),
        )
        assert listener.code == ExitCode.OK
        assert len(listener.events) == 2
        running.process.send_signal(signal.SIGTERM)
        finished = await running.finish()
    assert finished.code == ExitCode.SIGTERM
    assert finished.log == [
        "WARNING aiosfstream.cli.emulator: listening on 0.0.0.0: the emulator's credentials "
        "are public, anyone who can reach it can use it"
    ]
