"""Chaos over Pub/Sub: streams reset mid-batch, services failing, tokens revoked, the server
restarted, the client restarted, all while events are published. Lost 0, duplicates 0."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from aiosfstream import DefaultMappingStorage, ReplayOption
from tests.pubsub.conftest import ORDER_TOPIC, Org

EVENTS = 600
KINDS = ["drop", "mid-batch", "unavailable", "revoke", "restart"]
PREFIX = "sfdc.platform.eventbus.grpc."


async def publisher(org: Org, rng: random.Random) -> None:
    # Publishing from inside the org goes on while the server restarts.
    for number in range(EVENTS):
        org.order(number)
        await asyncio.sleep(rng.uniform(0, 0.02))


async def chaos(org: Org, rng: random.Random, done: asyncio.Event) -> list[str]:
    actions: list[str] = []
    while not done.is_set():
        await asyncio.sleep(rng.uniform(0.05, 0.2))
        # Every kind of failure once per round, in a random order.
        if len(actions) % len(KINDS) == 0:
            plan = rng.sample(KINDS, len(KINDS))
        action = plan[len(actions) % len(KINDS)]
        actions.append(action)
        if action == "drop":
            org.pubsub.drop_streams()
        elif action == "mid-batch":
            org.pubsub.fail_next("Subscribe", "UNAVAILABLE", None, after_events=rng.randint(1, 5))
            org.pubsub.drop_streams()
        elif action == "unavailable":
            org.pubsub.fail_next("Subscribe", "INTERNAL", PREFIX + "service.unavailable", times=2)
            org.pubsub.drop_streams()
        elif action == "revoke":
            org.org.revoke_tokens()
            # A fresh token refused at once is final: give the new one time to work.
            await asyncio.sleep(1.5)
        else:
            await org.pubsub.stop()
            await asyncio.sleep(rng.uniform(0, 0.3))
            await org.pubsub.start()
    return actions


@pytest.mark.parametrize("seed", [1, 2])
async def test_chaos_loses_and_repeats_nothing(make_org: Callable[..., Any], seed: int) -> None:
    rng = random.Random(seed)
    async with make_org(keepalive_interval=0.2) as org:
        markers: dict[str, Any] = {}
        received: list[int] = []
        done = asyncio.Event()
        publishing = asyncio.create_task(publisher(org, rng))
        chaos_task = asyncio.create_task(chaos(org, rng, done))
        try:
            while len(received) < EVENTS:
                # A client lives for a while, then a new one resumes from the stored markers.
                storage = DefaultMappingStorage(markers, ReplayOption.ALL_EVENTS)
                client = org.client(replay=storage, max_pending_count=rng.randint(1, 30))
                async with client:
                    await client.subscribe(ORDER_TOPIC)
                    for _ in range(rng.randint(50, 150)):
                        if len(received) == EVENTS:
                            break
                        message = await asyncio.wait_for(client.receive(), 30)
                        received.append(int(message["payload"]["OrderNumber__c"]))
                        if rng.random() < 0.05:
                            await asyncio.sleep(0.05)  # a slow moment
        finally:
            done.set()
            await publishing
            actions = await chaos_task
    lost = sorted(set(range(EVENTS)) - set(received))
    duplicates = len(received) - len(set(received))
    assert (lost, duplicates) == ([], 0), actions
    assert received == list(range(EVENTS))
    assert set(actions) == set(KINDS)
