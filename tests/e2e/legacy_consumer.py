"""A consumer written for aiosfstream 0.5.0, run by the real 0.5.0 on Python 3.9.

It uses only 0.5.0's API and points the library at a test server the way 0.5.0 users
do: by assigning ``aiosfstream.auth.TOKEN_URL``. It prints ``subscribed`` once its
subscription is in place, then one JSON line per event, and exits after ``COUNT`` events.

Usage: ``python legacy_consumer.py TOKEN_URL CHANNEL COUNT SHELF``
"""

import asyncio
import json
import shelve
import sys

import aiosfstream.auth
from aiosfstream import DefaultMappingStorage, ReplayOption, SalesforceStreamingClient

# The emulator's well-known credentials (aiosfstream.testing.DEFAULT_CREDENTIALS).
CONSUMER_KEY = "3MVG9emulatorConsumerKey"
CONSUMER_SECRET = "emulator-consumer-secret"
USERNAME = "user@example.com"
PASSWORD = "emulator-password"


async def consume(channel: str, count: int, shelf_path: str) -> None:
    with shelve.open(shelf_path) as shelf:
        replay = DefaultMappingStorage(shelf, ReplayOption.NEW_EVENTS)
        async with SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=replay,
        ) as client:
            await client.subscribe(channel)
            print("subscribed", flush=True)
            received = 0
            async for message in client:
                event = {
                    "channel": message["channel"],
                    "replayId": message["data"]["event"]["replayId"],
                    "data": message["data"].get("sobject") or message["data"].get("payload"),
                }
                print(json.dumps(event), flush=True)
                received += 1
                if received == count:
                    break


def main() -> None:
    token_url, channel, count, shelf_path = sys.argv[1:]
    aiosfstream.auth.TOKEN_URL = token_url
    asyncio.run(asyncio.wait_for(consume(channel, int(count), shelf_path), 60))


if __name__ == "__main__":
    main()
