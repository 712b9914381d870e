"""``aiosfstream listen``, run as a real process against a real emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.cli.settings import DEMO_CHANNEL
from aiosfstream.testing import SalesforceEmulator

from .support import (
    CDC_CHANNEL,
    CHANNEL,
    STEP,
    base_env,
    command,
    emulator_env,
    free_port,
    run,
    stored_replay_id,
    wait_subscribed,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


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


async def test_plain_http_to_another_machine_needs_the_option(
    emulator: SalesforceEmulator,
) -> None:
    env = emulator_env(emulator, SF_LOGIN_URL="http://192.0.2.1:1")
    finished = await run("listen", CHANNEL, env=env)
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
    assert [event["channel"] for event in events] == [DEMO_CHANNEL] * 3
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


async def test_the_readme_command() -> None:
    # Word for word the README's first command: the demo in one line.
    finished = await run("listen", "--emulator", "--count", "5", env=base_env())
    assert finished.code == ExitCode.OK
    assert [event["data"]["event"]["replayId"] for event in finished.events] == [1, 2, 3, 4, 5]
    assert finished.stderr == ""
