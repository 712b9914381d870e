"""``aiosfstream listen --pubsub``, run as a real process against the Pub/Sub emulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import CDC_TOPIC, PLATFORM_EVENT_TOPIC, PubSubEmulator
from tests.stores.conftest import RedisServer

from .support import base_env, command, emulator_env, pubsub_args, run, wait_streaming

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


def order(number: int) -> dict[str, Any]:
    return {"OrderNumber__c": f"n{number}", "Amount__c": float(number)}


async def test_listen_prints_the_published_events_in_order(
    emulator: SalesforceEmulator, pubsub: PubSubEmulator
) -> None:
    args = pubsub_args(pubsub, "--count", "6", PLATFORM_EVENT_TOPIC, CDC_TOPIC)
    async with command(*args, env=emulator_env(emulator)) as running:
        await wait_streaming(pubsub, PLATFORM_EVENT_TOPIC, CDC_TOPIC)
        orders = [pubsub.publish(PLATFORM_EVENT_TOPIC, order(i)) for i in range(4)]
        change = pubsub.publish(CDC_TOPIC, {"Name": "Acme", "Phone": "555-0100"})
        orders.append(pubsub.publish(PLATFORM_EVENT_TOPIC, order(4)))
        finished = await running.finish()
    assert finished.code == ExitCode.OK
    assert finished.stderr == ""
    events = finished.events
    by_topic = [event for event in events if event["topic"] == PLATFORM_EVENT_TOPIC]
    # Replay ids are printed in hex, and each topic's events arrive in order.
    assert [event["replay_id"] for event in by_topic] == [replay.hex() for replay in orders]
    assert [event["payload"]["OrderNumber__c"] for event in by_topic] == [f"n{i}" for i in range(5)]
    (changed,) = [event for event in events if event["topic"] == CDC_TOPIC]
    assert changed["replay_id"] == change.hex()
    assert changed["payload"]["Phone"] == "555-0100"
    assert changed["payload"]["ChangeEventHeader"]["changedFields"] == ["Name", "Phone"]
    assert set(changed) == {"topic", "replay_id", "event_id", "schema_id", "payload"}
    finished.assert_clean()


async def test_verbose_names_the_pubsub_endpoint(
    emulator: SalesforceEmulator, pubsub: PubSubEmulator
) -> None:
    first = pubsub.publish(PLATFORM_EVENT_TOPIC, order(1))
    args = pubsub_args(pubsub, "-v", "--replay", "all", "--count", "1", PLATFORM_EVENT_TOPIC)
    finished = await run(*args, env=emulator_env(emulator))
    assert finished.code == ExitCode.OK
    assert [event["replay_id"] for event in finished.events] == [first.hex()]
    assert finished.cli_log() == [
        f"logging in at {emulator.url}/services/oauth2/token (password flow)",
        f"logged in; Pub/Sub API at {pubsub.endpoint}",
        f"subscribed to {PLATFORM_EVENT_TOPIC}, replay all",
        f"summary: 1 events, 0 reconnects, 0 re-authentications; last replay id: "
        f"{PLATFORM_EVENT_TOPIC} {first.hex()}",
    ]


async def stored_sqlite(path: str, topic: str) -> int | bytes | None:
    async with SQLiteReplayStorage(path) as storage:
        marker = await storage.get_replay_marker(topic)
    return None if marker is None else marker.replay_id


async def stored_redis(url: str, topic: str) -> int | bytes | None:
    async with RedisReplayStorage(url) as storage:
        marker = await storage.get_replay_marker(topic)
    return None if marker is None else marker.replay_id


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_replay_store_resumes_with_bytes_ids(
    emulator: SalesforceEmulator,
    pubsub: PubSubEmulator,
    redis_server: RedisServer,
    tmp_path: Path,
    kind: str,
) -> None:
    store = str(tmp_path / "replay.db") if kind == "sqlite" else redis_server.url
    stored = stored_sqlite if kind == "sqlite" else stored_redis
    env = emulator_env(emulator)
    args = pubsub_args(pubsub, "--replay-store", store)
    async with command(*args, "--count", "2", PLATFORM_EVENT_TOPIC, env=env) as first:
        await wait_streaming(pubsub, PLATFORM_EVENT_TOPIC)
        published = [pubsub.publish(PLATFORM_EVENT_TOPIC, order(i)) for i in range(2)]
        finished = await first.finish()
    assert finished.code == ExitCode.OK
    assert [event["replay_id"] for event in finished.events] == [id.hex() for id in published]
    assert await stored(store, PLATFORM_EVENT_TOPIC) == published[-1]

    # Published while nobody listens: the next run starts after the stored id.
    later = [pubsub.publish(PLATFORM_EVENT_TOPIC, order(i)) for i in range(2, 5)]
    second = await run(*args, "-v", "--count", "3", PLATFORM_EVENT_TOPIC, env=env)
    assert second.code == ExitCode.OK
    assert [event["replay_id"] for event in second.events] == [id.hex() for id in later]
    assert (
        f"subscribed to {PLATFORM_EVENT_TOPIC}, replay after the stored id {published[-1].hex()}"
        in second.cli_log()
    )
    assert await stored(store, PLATFORM_EVENT_TOPIC) == later[-1]
    second.assert_clean()


async def test_listen_emulator_pubsub_works_out_of_the_box() -> None:
    finished = await run("listen", "--emulator", "--pubsub", "--count", "3", env=base_env())
    assert finished.code == ExitCode.OK
    assert finished.stderr == ""
    events = finished.events
    assert [event["topic"] for event in events] == [PLATFORM_EVENT_TOPIC] * 3
    ids = [bytes.fromhex(event["replay_id"]) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    numbers = [int(event["payload"]["OrderNumber__c"].removeprefix("ORD-")) for event in events]
    assert numbers == list(range(numbers[0], numbers[0] + 3))


async def test_listen_emulator_pubsub_change_events() -> None:
    finished = await run(
        "listen", "--emulator", "--pubsub", "--replay", "all", "--count", "2", CDC_TOPIC,
        env=base_env(),
    )  # fmt: skip
    assert finished.code == ExitCode.OK
    first, second = finished.events
    assert first["payload"]["ChangeEventHeader"]["changeType"] == "CREATE"
    assert first["payload"]["Name"]
    assert first["payload"]["BillingAddress"]["City"]
    assert second["payload"]["ChangeEventHeader"]["changeType"] == "CREATE"


async def test_an_unknown_topic_is_refused_by_the_server(
    emulator: SalesforceEmulator, pubsub: PubSubEmulator
) -> None:
    finished = await run(*pubsub_args(pubsub, "/event/Nope__e"), env=emulator_env(emulator))
    assert finished.code == ExitCode.SERVER
    assert finished.stderr.startswith("aiosfstream: Salesforce refused: ")
    assert "/event/Nope__e" in finished.stderr
    assert finished.stderr.count("\n") == 1
    finished.assert_clean()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--pubsub", "/topic/Orders"),
            "--pubsub listens to platform events and change events only (/event/... or "
            "/data/...), not '/topic/Orders'",
        ),
        (
            ("--pubsub-plaintext", "/event/Order_Event__e"),
            "--pubsub-endpoint and --pubsub-plaintext need --pubsub",
        ),
        (
            ("--pubsub", "--pubsub-plaintext", "--pubsub-endpoint", "pubsub.example.com:7443",
             "/event/Order_Event__e"),
            "--pubsub-plaintext sends the access token unencrypted to pubsub.example.com: add "
            "--allow-insecure-http if that machine is a test emulator",
        ),
        (
            ("--pubsub", "--pubsub-endpoint", "no-port", "/event/Order_Event__e"),
            "--pubsub-endpoint: ",
        ),
    ],
)  # fmt: skip
async def test_pubsub_usage_errors(
    emulator: SalesforceEmulator, args: tuple[str, ...], message: str
) -> None:
    finished = await run("listen", *args, env=emulator_env(emulator))
    assert finished.code == ExitCode.USAGE
    assert finished.stderr.startswith(f"aiosfstream listen: error: {message}")
    assert finished.stderr.count("\n") == 1
    finished.assert_clean()


@pytest.mark.parametrize("emulated", [False, True])
async def test_without_grpcio_the_error_says_what_to_install(
    emulator: SalesforceEmulator, tmp_path: Path, emulated: bool
) -> None:
    # A package named grpc that fails to import stands for grpcio not being there.
    fake = tmp_path / "grpc"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named grpc', name='grpc')\n"
    )
    env = emulator_env(emulator, PYTHONPATH=str(tmp_path))
    args = ("--emulator",) if emulated else ("--pubsub-endpoint", "127.0.0.1:1")
    finished = await run("listen", "--pubsub", *args, PLATFORM_EVENT_TOPIC, env=env)
    assert finished.code == ExitCode.USAGE
    assert finished.stderr.startswith("aiosfstream listen: error: --pubsub cannot run here: ")
    assert "pip install 'aiosfstream[pubsub]'" in finished.stderr
    assert finished.stderr.count("\n") == 1


async def test_an_expired_stored_id_fails_or_falls_back(
    emulator: SalesforceEmulator, pubsub: PubSubEmulator, tmp_path: Path
) -> None:
    env = emulator_env(emulator)
    args = pubsub_args(pubsub, "--replay-store", str(tmp_path / "replay.db"))
    pubsub.publish(PLATFORM_EVENT_TOPIC, order(1))
    # Purged unread: replaying after the first would lose it, so the stored id is refused.
    pubsub.publish(PLATFORM_EVENT_TOPIC, order(2))
    first = await run(*args, "--replay", "all", "--count", "1", PLATFORM_EVENT_TOPIC, env=env)
    assert first.code == ExitCode.OK
    pubsub.purge_retention(before=emulator.now() + 1)
    kept = pubsub.publish(PLATFORM_EVENT_TOPIC, order(3))

    refused = await run(*args, "--count", "1", PLATFORM_EVENT_TOPIC, env=env)
    assert refused.code == ExitCode.SERVER
    assert refused.stderr.startswith("aiosfstream: Salesforce refused: ")
    assert "--replay-fallback" in refused.stderr
    refused.assert_clean()

    fallback = ("--replay-fallback", "all", "--count", "1", PLATFORM_EVENT_TOPIC)
    recovered = await run(*args, *fallback, env=env)
    assert recovered.code == ExitCode.OK
    assert [event["replay_id"] for event in recovered.events] == [kept.hex()]
    (warning,) = recovered.log
    assert warning.startswith(
        f"WARNING aiosfstream.cli: replay id refused for {PLATFORM_EVENT_TOPIC}"
    )
    assert warning.endswith("subscribing with --replay-fallback all instead")
