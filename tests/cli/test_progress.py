"""``listen -v``: the login, the subscriptions and where they start, reconnects,
re-authentications, and the summary at exit, in the command's words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.testing import SalesforceEmulator

from .support import (
    CDC_CHANNEL,
    CHANNEL,
    command,
    emulator_env,
    run,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

LISTEN = ("listen", "--allow-insecure-http", "-v")


def replay_id(event: dict[str, object]) -> object:
    data = event["data"]
    assert isinstance(data, dict)
    return data["event"]["replayId"]


async def test_login_subscriptions_and_summary(emulator: SalesforceEmulator) -> None:
    async with command(
        *LISTEN, "--count", "2", CHANNEL, CDC_CHANNEL, env=emulator_env(emulator)
    ) as running:
        await wait_subscribed(emulator, CHANNEL, CDC_CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(2)]
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == published
    # Nothing but the command's own lines: which URL and grant, never a secret.
    assert finished.log == [
        f"INFO aiosfstream.cli: {line}"
        for line in (
            f"logging in at {emulator.url}/services/oauth2/token (password flow)",
            f"logged in; Streaming API at {emulator.url}/cometd/66.0",
            f"subscribed to {CHANNEL}, replay new",
            f"subscribed to {CDC_CHANNEL}, replay new",
            f"summary: 2 events, 0 reconnects, 0 re-authentications; last replay id: "
            f"{CHANNEL} {replay_id(published[1])}, {CDC_CHANNEL} none",
        )
    ]
    finished.assert_clean()


async def test_where_each_subscription_starts(emulator: SalesforceEmulator, tmp_path: Path) -> None:
    store = str(tmp_path / "replay.db")
    env = emulator_env(emulator)
    first = emulator.publish(CHANNEL, {"Name": "first"})
    emulator.publish(CDC_CHANNEL, {"Name": "first"})

    given = await run(*LISTEN, "--replay", "all", "--count", "1", CHANNEL, env=env)
    assert given.cli_log()[2] == f"subscribed to {CHANNEL}, replay all"
    after = await run(
        *LISTEN, "--replay", str(replay_id(first)), "--timeout", "0.2", CHANNEL, env=env
    )
    assert after.cli_log()[2] == f"subscribed to {CHANNEL}, replay after {replay_id(first)}"

    # The store has a marker for one channel only: the other starts at --replay.
    stored = await run(
        *LISTEN, "--replay-store", store, "--replay", "all", "--count", "1", CHANNEL, env=env
    )
    assert stored.code == ExitCode.OK
    resumed = await run(
        *LISTEN,
        "--replay-store",
        store,
        "--replay",
        "new",
        "--timeout",
        "0.2",
        CHANNEL,
        CDC_CHANNEL,
        env=env,
    )
    assert resumed.code == ExitCode.OK
    assert resumed.cli_log()[2:4] == [
        f"subscribed to {CHANNEL}, replay after the stored id {replay_id(first)}",
        f"subscribed to {CDC_CHANNEL}, replay new",
    ]
    assert resumed.cli_log()[-1] == (
        f"summary: 0 events, 0 reconnects, 0 re-authentications; last replay id: "
        f"{CHANNEL} none, {CDC_CHANNEL} none"
    )


async def test_reconnects_and_reauthentications(emulator: SalesforceEmulator) -> None:
    async with command(*LISTEN, "--count", "2", CHANNEL, env=emulator_env(emulator)) as running:
        await wait_subscribed(emulator, CHANNEL)

        async def new_session(old: list[str]) -> None:
            async def subscribed() -> bool:
                return any(
                    CHANNEL in emulator.subscriptions(client_id)
                    for client_id in emulator.client_ids
                    if client_id not in old
                )

            await wait_until(subscribed, "no new session")

        # A session that expired: a new handshake, the same token.
        await new_session(emulator.expire_client())
        first = emulator.publish(CHANNEL, {"Name": "after the reconnect"})
        assert await running.events(1) == [first]
        # A revoked token: a new token, then a new session.
        old = emulator.client_ids
        emulator.revoke_tokens()
        await new_session(old)
        second = emulator.publish(CHANNEL, {"Name": "after the new login"})
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == [second]
    token_url = f"{emulator.url}/services/oauth2/token"
    progress = [
        line
        for line in finished.cli_log()
        if line.startswith(("reconnected", "re-authenticated", "summary"))
    ]
    assert progress == [
        "reconnected: new session (1 so far)",
        f"re-authenticated at {token_url} (1 so far)",
        "reconnected: new session (2 so far)",
        f"summary: 2 events, 2 reconnects, 1 re-authentications; last replay id: "
        f"{CHANNEL} {replay_id(second)}",
    ]
    finished.assert_clean(*emulator.state.tokens)
