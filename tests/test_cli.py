"""Tests for aiosfstream.cli: the command runs as a real process against a real emulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiosfstream import __version__, cli
from aiosfstream.auth import PasswordAuthenticator, RefreshTokenAuthenticator
from aiosfstream.cli import ExitCode, UsageError
from aiosfstream.replay import ReplayOption
from aiosfstream.stores import SQLiteReplayStorage
from aiosfstream.testing import DEFAULT_CREDENTIALS, SalesforceEmulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

CHANNEL = "/topic/Orders"
CDC_CHANNEL = "/data/AccountChangeEvent"
#: Seconds any one step of a test may take.
STEP = 8.0
SECRETS = (DEFAULT_CREDENTIALS.consumer_secret, DEFAULT_CREDENTIALS.password)
ROOT = Path(__file__).resolve().parent.parent


# --- running the command ------------------------------------------------------------


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


async def stored_replay_id(path: Path, channel: str) -> int | None:
    async with SQLiteReplayStorage(path) as storage:
        marker = await storage.get_replay_marker(channel)
    return None if marker is None else marker.replay_id


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=1.0) as server:
        server.create_channel(CHANNEL)
        server.create_channel(CDC_CHANNEL)
        yield server


# --- listen ---------------------------------------------------------------------------


async def test_listen_prints_the_published_events(emulator: SalesforceEmulator) -> None:
    args = ("listen", "--allow-insecure-http", "--count", "4", CHANNEL, CDC_CHANNEL)
    async with command(*args, env=emulator_env(emulator)) as running:
        await wait_subscribed(emulator, CHANNEL, CDC_CHANNEL)
        published = [
            emulator.publish(CHANNEL, {"Name": "Acme"}),
            emulator.publish(CDC_CHANNEL, {"Name": "Acme", "Phone": "555-0100"}),
            emulator.publish(CHANNEL, {"Name": 'Zoë, ☃ and "quotes"'}, event_type="updated"),
            emulator.publish(CDC_CHANNEL, {"Name": "Globex"}, event_type="UPDATE"),
        ]
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == published
    # One compact line per event, in UTF-8 rather than with escapes.
    assert finished.stdout.splitlines() == [
        json.dumps(event, separators=(",", ":"), ensure_ascii=False) for event in published
    ]
    assert finished.stderr == ""
    finished.assert_clean()


async def test_count_stops_after_n_events(emulator: SalesforceEmulator) -> None:
    async with command(
        "listen", "--allow-insecure-http", "--count", "2", CHANNEL, env=emulator_env(emulator)
    ) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(5)]
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == published[:2]


async def test_replay_all_prints_retained_events(emulator: SalesforceEmulator) -> None:
    published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(3)]
    finished = await run(
        "listen",
        "--allow-insecure-http",
        "--replay",
        "all",
        "--count",
        "3",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.OK
    assert finished.events == published


async def test_replay_id_starts_after_it_and_timeout_ends_the_run(
    emulator: SalesforceEmulator,
) -> None:
    published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(4)]
    after = published[1]["data"]["event"]["replayId"]
    finished = await run(
        "listen",
        "--allow-insecure-http",
        "--replay",
        str(after),
        "--timeout",
        "0.5",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.OK
    assert finished.events == published[2:]
    finished.assert_clean()


async def test_timeout_before_count_exits_incomplete(emulator: SalesforceEmulator) -> None:
    finished = await run(
        "listen",
        "--allow-insecure-http",
        "--count",
        "3",
        "--timeout",
        "0.3",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.INCOMPLETE
    assert finished.stdout == ""
    finished.assert_clean()


async def test_replay_store_resumes_after_the_last_printed_event(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    store = str(tmp_path / "replay.db")
    env = emulator_env(emulator)
    async with command(
        "listen", "--allow-insecure-http", "--replay-store", store, "--count", "2", CHANNEL, env=env
    ) as first:
        await wait_subscribed(emulator, CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(2)]
        finished = await first.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == published

    # Published while nobody listens; the store's default (new events) must not apply.
    published = [emulator.publish(CHANNEL, {"Name": f"later{i}"}) for i in range(3)]
    second = await run(
        "listen",
        "--allow-insecure-http",
        "--replay-store",
        store,
        "--timeout",
        "0.5",
        CHANNEL,
        env=env,
    )
    assert second.code == ExitCode.OK
    assert second.events == published
    assert (
        await stored_replay_id(Path(store), CHANNEL) == published[-1]["data"]["event"]["replayId"]
    )


async def test_replay_fallback_replaces_an_expired_stored_id(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    store = tmp_path / "replay.db"
    env = emulator_env(emulator)
    emulator.publish(CHANNEL, {"Name": "old"})
    first = await run(
        "listen",
        "--allow-insecure-http",
        "--replay-store",
        str(store),
        "--replay",
        "all",
        "--count",
        "1",
        CHANNEL,
        env=env,
    )
    assert first.code == ExitCode.OK
    emulator.purge_retention(before=emulator.now() + 1)
    kept = emulator.publish(CHANNEL, {"Name": "kept"})
    args = ("listen", "--allow-insecure-http", "--replay-store", str(store), "--count", "1")

    refused = await run(*args, CHANNEL, env=env)
    assert refused.code == ExitCode.SERVER
    assert "replayId" in refused.stderr
    refused.assert_clean()

    recovered = await run(*args, "--replay-fallback", "all", CHANNEL, env=env)
    assert recovered.code == ExitCode.OK
    assert recovered.events == [kept]


async def test_bad_credentials(emulator: SalesforceEmulator) -> None:
    password = "wrong-password-4f9a"
    finished = await run(
        "listen",
        "--allow-insecure-http",
        CHANNEL,
        env=emulator_env(emulator, SF_PASSWORD=password),
    )
    assert finished.code == ExitCode.AUTHENTICATION
    assert finished.stdout == ""
    assert finished.stderr.count("\n") == 1
    assert finished.stderr.startswith("aiosfstream: login refused: ")
    assert "invalid_grant" in finished.stderr
    finished.assert_clean(password)


async def test_password_flag_wins_over_the_environment(emulator: SalesforceEmulator) -> None:
    finished = await run(
        "listen",
        "--allow-insecure-http",
        "--password",
        "wrong-password-flag",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.AUTHENTICATION
    finished.assert_clean("wrong-password-flag")


async def test_refresh_token_flow(emulator: SalesforceEmulator) -> None:
    token = emulator.issue_refresh_token()
    env = emulator_env(emulator, SF_REFRESH_TOKEN=token)
    del env["SF_PASSWORD"], env["SF_USERNAME"]
    async with command(
        "listen", "--allow-insecure-http", "-vv", "--count", "1", CHANNEL, env=env
    ) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = emulator.publish(CHANNEL, {"Name": "Acme"})
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == [published]
    finished.assert_clean(token, *emulator.state.tokens)


async def test_unknown_channel(emulator: SalesforceEmulator) -> None:
    finished = await run(
        "listen", "--allow-insecure-http", "/topic/Nope", env=emulator_env(emulator)
    )
    assert finished.code == ExitCode.SERVER
    assert finished.stderr.count("\n") == 1
    assert "/topic/Nope" in finished.stderr
    finished.assert_clean()


async def test_unreachable_server_is_a_network_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = base_env(
        SF_LOGIN_URL=url,
        SF_CONSUMER_KEY="key",
        SF_CONSUMER_SECRET="consumer-secret-1234",
        SF_USERNAME="user@example.com",
        SF_PASSWORD="password-1234",
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    finished = await run(
        "listen", "--allow-insecure-http", "--connection-timeout", "1", CHANNEL, env=env
    )
    assert finished.code == ExitCode.NETWORK
    assert loop.time() - started < STEP
    assert finished.stderr.count("\n") == 1
    assert finished.stderr.startswith("aiosfstream: network failure: ")
    finished.assert_clean("consumer-secret-1234", "password-1234")


async def test_plain_http_needs_the_option(emulator: SalesforceEmulator) -> None:
    finished = await run("listen", CHANNEL, env=emulator_env(emulator))
    assert finished.code == ExitCode.USAGE
    assert "--allow-insecure-http" in finished.stderr
    assert finished.stderr.count("\n") == 1
    finished.assert_clean()


async def test_unusable_replay_store(emulator: SalesforceEmulator, tmp_path: Path) -> None:
    store = tmp_path / "missing-directory" / "replay.db"
    finished = await run(
        "listen",
        "--allow-insecure-http",
        "--replay-store",
        str(store),
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.REPLAY_STORE
    assert finished.stderr.count("\n") == 1
    finished.assert_clean()


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, ExitCode.SIGINT), (signal.SIGTERM, ExitCode.SIGTERM)]
)
async def test_signal_stops_cleanly_and_keeps_the_markers(
    emulator: SalesforceEmulator, tmp_path: Path, signum: int, code: ExitCode
) -> None:
    store = tmp_path / "replay.db"
    env = emulator_env(emulator)
    async with command(
        "listen", "--allow-insecure-http", "--replay-store", str(store), CHANNEL, env=env
    ) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(3)]
        assert await running.events(3) == published
        running.process.send_signal(signum)
        finished = await running.finish()
    assert finished.code == code
    assert finished.stdout == ""
    assert finished.stderr == ""
    assert await stored_replay_id(store, CHANNEL) == published[-1]["data"]["event"]["replayId"]
    # The client said goodbye: no session is left behind.
    assert emulator.client_ids == []


async def test_closed_stdout(emulator: SalesforceEmulator) -> None:
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    try:
        async with command(
            "listen", "--allow-insecure-http", CHANNEL, env=emulator_env(emulator), stdout=write_end
        ) as running:
            os.close(write_end)
            write_end = -1
            await wait_subscribed(emulator, CHANNEL)
            published = emulator.publish(CHANNEL, {"Name": "first"})
            first = await asyncio.wait_for(
                loop.run_in_executor(None, os.read, read_end, 65536), STEP
            )
            assert json.loads(first) == published
            os.close(read_end)
            read_end = -1
            emulator.publish(CHANNEL, {"Name": "second"})
            finished = await running.finish()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert finished.code == ExitCode.BROKEN_PIPE
    assert finished.stderr == ""


async def test_listen_to_the_embedded_emulator() -> None:
    finished = await run("listen", "--emulator", "--count", "3", env=base_env())
    assert finished.code == ExitCode.OK
    events = finished.events
    assert len(events) == 3
    assert [event["channel"] for event in events] == [cli.DEMO_CHANNEL] * 3
    assert [event["data"]["event"]["replayId"] for event in events] == [1, 2, 3]
    assert all(event["data"]["sobject"]["Name"] for event in events)
    assert finished.stderr == ""


async def test_listen_emulator_ignores_credentials() -> None:
    env = base_env(SF_PASSWORD="not-the-emulator-password", SF_LOGIN_URL="https://example.com")
    finished = await run(
        "listen", "--emulator", "--count", "1", "/event/Demo__e", "--replay", "all", env=env
    )
    assert finished.code == ExitCode.OK
    (event,) = finished.events
    assert event["channel"] == "/event/Demo__e"
    assert "Message__c" in event["data"]["payload"]


# --- emulator -------------------------------------------------------------------------


async def test_emulator_command_serves_until_sigterm() -> None:
    async with command("emulator", "--port", "0", "--demo-rate", "20", env=base_env()) as running:
        first = await running.line()
        assert first.startswith("Salesforce emulator running at http://127.0.0.1:")
        url = first.split()[-1]
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
            listener = await run(
                "listen", "--allow-insecure-http", "--count", "2", "/topic/Demo", env=env
            )
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


async def test_demo_events_are_accepted_by_the_emulator() -> None:
    channels = ("/topic/Demo", "/data/AccountChangeEvent", "/event/Alert__e", "/u/Notices")
    async with SalesforceEmulator() as server:
        for channel in channels:
            server.create_channel(channel)
            for number in range(1, 9):
                payload, event_type = cli.demo_event(channel, number)
                server.publish(channel, payload, event_type=event_type)
        topic = server.events("/topic/Demo")
        assert [event["data"]["event"]["type"] for event in topic[5:8]] == [
            "created",
            "updated",
            "updated",
        ]
        # An update names the same record as the creation.
        assert topic[6]["data"]["sobject"]["Id"] == topic[0]["data"]["sobject"]["Id"]
        change = server.events("/data/AccountChangeEvent")[6]["data"]["payload"]
        assert change["ChangeEventHeader"]["changeType"] == "UPDATE"
        assert change["ChangeEventHeader"]["changedFields"] == ["AnnualRevenue"]
        assert isinstance(server.events("/u/Notices")[0]["data"]["payload"], str)


# --- arguments, in process ------------------------------------------------------------


def parse(*args: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("new", ReplayOption.NEW_EVENTS),
        ("ALL", ReplayOption.ALL_EVENTS),
        ("-1", ReplayOption.NEW_EVENTS),
        ("-2", ReplayOption.ALL_EVENTS),
        ("0", 0),
        ("1234", 1234),
    ],
)
def test_parse_replay(text: str, expected: int) -> None:
    assert cli.parse_replay(text) == expected
    assert type(cli.parse_replay(text)) is type(expected)


@pytest.mark.parametrize("text", ["", "newest", "-3", "1.5"])
def test_parse_replay_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="replay id"):
        cli.parse_replay(text)


FULL_ENV = {
    "SF_CONSUMER_KEY": "env-key",
    "SF_CONSUMER_SECRET": "env-secret",
    "SF_USERNAME": "env-user",
    "SF_PASSWORD": "env-password",
    "SF_LOGIN_URL": "https://acme.my.salesforce.com",
}


def test_environment_supplies_the_credentials() -> None:
    settings = cli.listen_settings(parse("listen", CHANNEL), FULL_ENV)
    assert settings.login == cli.LoginSettings(
        flow="password",
        consumer_key="env-key",
        consumer_secret="env-secret",
        username="env-user",
        password="env-password",
        login_url="https://acme.my.salesforce.com",
    )
    assert settings.channels == (CHANNEL,)
    assert settings.replay is ReplayOption.NEW_EVENTS
    assert settings.connection_timeout == 10.0
    assert settings.api_version == "66.0"
    assert "env-secret" not in repr(settings)
    assert "env-password" not in repr(settings)


def test_options_win_over_the_environment() -> None:
    args = parse(
        "listen",
        "--username",
        "flag-user",
        "--password",
        "flag-password",
        "--login-url",
        "https://flag.my.salesforce.com",
        "--api-version",
        "60.0",
        CHANNEL,
    )
    env = {**FULL_ENV, "SF_API_VERSION": "59.0", "SF_SANDBOX": "yes"}
    settings = cli.listen_settings(args, env)
    assert settings.login is not None
    assert settings.login.username == "flag-user"
    assert settings.login.password == "flag-password"
    assert settings.login.consumer_key == "env-key"
    assert settings.login.login_url == "https://flag.my.salesforce.com"
    assert settings.login.sandbox is True
    assert settings.api_version == "60.0"


def test_flow_follows_the_credentials() -> None:
    env = {**FULL_ENV, "SF_REFRESH_TOKEN": "env-refresh"}
    assert cli.login_settings(parse("listen", CHANNEL), env).flow == "refresh-token"
    assert cli.login_settings(parse("listen", "--auth", "password", CHANNEL), env).flow == (
        "password"
    )
    jwt_env = {"SF_CONSUMER_KEY": "k", "SF_USERNAME": "u", "SF_PRIVATE_KEY_FILE": "key.pem"}
    assert cli.login_settings(parse("listen", CHANNEL), jwt_env).flow == "jwt"
    client_env = {"SF_AUTH_FLOW": "client-credentials", **FULL_ENV}
    assert cli.login_settings(parse("listen", CHANNEL), client_env).flow == "client-credentials"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["listen", CHANNEL], {}, "no credentials"),
        (["listen", CHANNEL], {"SF_PASSWORD": "p", "SF_CONSUMER_KEY": " "}, "SF_CONSUMER_KEY"),
        (["listen", "--auth", "jwt", CHANNEL], FULL_ENV, "SF_PRIVATE_KEY_FILE"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_SANDBOX": "maybe"}, "SF_SANDBOX"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_AUTH_FLOW": "magic"}, "unknown auth flow"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_API_VERSION": "12"}, "api_version"),
        (["listen"], FULL_ENV, "CHANNEL"),
        (["listen", "topic/NoSlash"], FULL_ENV, "must start with '/'"),
    ],
)
def test_listen_settings_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cli.listen_settings(parse(*argv), env)


def test_emulator_option_needs_no_credentials() -> None:
    settings = cli.listen_settings(parse("listen", "--emulator", "--count", "5"), {})
    assert settings.emulator
    assert settings.channels == (cli.DEMO_CHANNEL,)
    assert settings.count == 5


def test_listen_options() -> None:
    args = parse(
        "listen",
        "--emulator",
        "--replay",
        "42",
        "--replay-store",
        "r.db",
        "--replay-fallback",
        "all",
        "--timeout",
        "2.5",
        "--connection-timeout",
        "0",
        CHANNEL,
        CHANNEL,
    )
    settings = cli.listen_settings(args, {})
    assert settings.channels == (CHANNEL,)
    assert settings.replay == 42
    assert settings.replay_store == "r.db"
    assert settings.replay_fallback is ReplayOption.ALL_EVENTS
    assert settings.timeout == 2.5
    assert settings.connection_timeout is None


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "--count", "0", CHANNEL],
        ["listen", "--count", "many", CHANNEL],
        ["listen", "--timeout", "0", CHANNEL],
        ["listen", "--connection-timeout", "-1", CHANNEL],
        ["listen", "--replay", "latest", CHANNEL],
        ["listen", "--replay-fallback", "42", CHANNEL],
        ["emulator", "--port", "70000"],
        ["emulator", "--demo-rate", "fast"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == ExitCode.USAGE
    assert "error:" in capsys.readouterr().err


def test_usage_error_is_one_line_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SF_PASSWORD", "secret-password-9876")
    for name in ("SF_CONSUMER_KEY", "SF_CONSUMER_SECRET", "SF_USERNAME", "SF_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["listen", CHANNEL]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("aiosfstream listen: error: the password flow needs")
    assert "secret-password-9876" not in captured.err


@pytest.mark.parametrize("argv", [["--help"], ["listen", "--help"], ["emulator", "--help"]])
def test_help_shows_no_secret(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in cli.ENVIRONMENT.values():
        monkeypatch.setenv(name, f"value-of-{name}")
    assert cli.main(argv) == ExitCode.OK
    out = capsys.readouterr().out
    assert "usage: aiosfstream" in out
    assert "value-of-" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == f"aiosfstream {__version__}"


def test_emulator_settings() -> None:
    settings = cli.emulator_settings(parse("emulator"))
    assert settings.port == cli.EMULATOR_PORT
    assert settings.demo_channels == cli.DEMO_CHANNELS
    assert settings.demo_rate == 0
    args = parse("emulator", "--demo-channel", "/event/A__e", "--demo-channel", "/u/B")
    assert cli.emulator_settings(args).demo_channels == ("/event/A__e", "/u/B")
    with pytest.raises(UsageError, match="not a streaming channel"):
        cli.emulator_settings(parse("emulator", "--demo-channel", "/foo/bar"))


def test_build_authenticator() -> None:
    settings = cli.LoginSettings(
        flow="password",
        consumer_key="key",
        consumer_secret="consumer-secret",
        username="user",
        password="the-password",
        sandbox=True,
    )
    authenticator = cli.build_authenticator(settings, timeout=3)
    assert isinstance(authenticator, PasswordAuthenticator)
    assert authenticator.login_url == "https://test.salesforce.com"
    assert authenticator.timeout == 3
    refresh = cli.LoginSettings(
        flow="refresh-token", consumer_key="k", consumer_secret="s", refresh_token="rt"
    )
    assert isinstance(cli.build_authenticator(refresh), RefreshTokenAuthenticator)
    insecure = cli.LoginSettings(
        flow="refresh-token",
        consumer_key="k",
        consumer_secret="s",
        refresh_token="rt",
        login_url="http://127.0.0.1:1",
    )
    with pytest.raises(UsageError, match="--allow-insecure-http"):
        cli.build_authenticator(insecure)
    missing_key = cli.LoginSettings(
        flow="jwt", consumer_key="k", username="u", private_key_file="/nonexistent/key.pem"
    )
    with pytest.raises(UsageError):
        cli.build_authenticator(missing_key)


def test_every_exit_code_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    assert cli.main(["listen", "--help"]) == ExitCode.OK
    help_text = capsys.readouterr().out
    exit_statuses = help_text.split("exit status:")[1]
    for code in ExitCode:
        assert f"``{code.value}``" in page, code
        assert f"{code.value} " in exit_statuses, code
    for variable in cli.ENVIRONMENT.values():
        assert f"``{variable}``" in page
        assert variable in help_text


async def test_lost_connection_is_a_network_failure(emulator: SalesforceEmulator) -> None:
    args = ("listen", "--allow-insecure-http", "--connection-timeout", "1", CHANNEL)
    async with command(*args, env=emulator_env(emulator)) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = emulator.publish(CHANNEL, {"Name": "before"})
        assert await running.events(1) == [published]
        loop = asyncio.get_running_loop()
        stopped = loop.time()
        await emulator.stop()
        finished = await running.finish()
    assert finished.code == ExitCode.NETWORK
    assert loop.time() - stopped < 5
    assert finished.stderr.startswith("aiosfstream: network failure: ")
    assert finished.stderr.count("\n") == 1
    finished.assert_clean()


async def test_jwt_flow(emulator: SalesforceEmulator, tmp_path: Path) -> None:
    pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    emulator.set_jwt_public_key(public.decode())
    env = emulator_env(emulator, SF_PRIVATE_KEY_FILE=str(key_file))
    del env["SF_PASSWORD"], env["SF_CONSUMER_SECRET"]
    async with command(
        "listen", "--allow-insecure-http", "--count", "1", CHANNEL, env=env
    ) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = emulator.publish(CHANNEL, {"Name": "Acme"})
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == [published]
    finished.assert_clean()


async def test_client_credentials_flow(emulator: SalesforceEmulator) -> None:
    env = emulator_env(emulator, SF_AUTH_FLOW="client-credentials")
    del env["SF_PASSWORD"], env["SF_USERNAME"]
    async with command(
        "listen", "--allow-insecure-http", "--count", "1", CHANNEL, env=env
    ) as running:
        await wait_subscribed(emulator, CHANNEL)
        published = emulator.publish(CHANNEL, {"Name": "Acme"})
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == [published]
    finished.assert_clean()
