"""The Pub/Sub emulator of ``listen --emulator --pubsub``, and its demo events.

It serves the org of the CometD emulator that ``--emulator`` starts, so one login works
for both. The emulator has two topics, a platform event and the accounts' change events;
the demo publishes orders on the first and account creations and updates on the second.
The emulator's modules (and grpcio) are imported only when one is started.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from aiosfstream.cli.emulator import in_background
from aiosfstream.cli.errors import UsageError

if TYPE_CHECKING:
    from aiosfstream.testing import SalesforceEmulator
    from aiosfstream.testing.pubsub import PubSubEmulator

__all__ = ["demo_payload", "running_pubsub_emulator"]

_ORDER_STATUSES = ("Placed", "Packed", "Shipped")
# Name, industry, city.
_ACCOUNTS = (
    ("Alder Creek Bakery", "Food", "Asheville"),
    ("Northwind Rail", "Transportation", "Duluth"),
    ("Tidewater Labs", "Biotechnology", "Norfolk"),
)


def demo_payload(topic_kind: str, number: int) -> dict[str, Any]:
    """Demo event *number* (from 1): an order (``"event"``) or an account change (``"data"``).

    Each account is created the first time it comes up, and updated after.
    """
    if topic_kind == "event":
        return {
            "OrderNumber__c": f"ORD-{number:05d}",
            "Amount__c": float(40 + (number * 37) % 400),
            "Status__c": _ORDER_STATUSES[number % len(_ORDER_STATUSES)],
        }
    name, industry, city = _ACCOUNTS[(number - 1) % len(_ACCOUNTS)]
    revenue = float(250_000 + number * 5_000)
    if number <= len(_ACCOUNTS):
        return {
            "ChangeEventHeader": {"changeType": "CREATE"},
            "Name": name,
            "Industry": industry,
            "BillingAddress": {"City": city},
            "AnnualRevenue": revenue,
        }
    return {"AnnualRevenue": revenue}


async def _publish_demo(emulator: PubSubEmulator, topics: Sequence[str], rate: float) -> None:
    """Publish a demo event on each of *topics*, *rate* per second, until cancelled."""
    from aiosfstream.testing.demo import every_tick

    def publish(number: int) -> None:
        for topic in topics:
            emulator.publish(topic, demo_payload(topic.split("/")[1], number))

    await every_tick(rate, publish)


@contextlib.asynccontextmanager
async def running_pubsub_emulator(
    org: SalesforceEmulator, topics: Sequence[str], demo_rate: float
) -> AsyncIterator[PubSubEmulator]:
    """Serve the Pub/Sub API for *org* on 127.0.0.1, publishing demo events on *topics*.

    A topic the emulator does not have is left out: its subscription fails as it would
    on Salesforce.

    :raises UsageError: the ``pubsub`` extra is not installed
    """
    try:
        from aiosfstream.testing.pubsub import PubSubEmulator
    except ImportError as error:
        raise UsageError(
            f"--pubsub cannot run here: {error.name or error} is missing: "
            "pip install 'aiosfstream[pubsub]'"
        ) from None

    async with PubSubEmulator(org) as emulator:
        known = [topic for topic in dict.fromkeys(topics) if topic in emulator.topics()]
        demo = _publish_demo(emulator, known, demo_rate) if demo_rate > 0 and known else None
        async with in_background(demo):
            yield emulator
